"""One entry point for every channel: platform name + raw JSON → the unified order.

The five built-in platforms have adapters in code; any other channel is a mapping file
(:mod:`adapters.mapping`) registered with :func:`register_channel`. The mappings shipped in
``adapters/channels/`` (WooCommerce) are registered on first use. JSON is parsed (with
msgspec, several times faster than the standard library) into exact values: every
non-integer number becomes a ``Decimal`` of the digits the platform wrote, integers stay
integers however large, and NaN or Infinity are refused.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from adapters import douyin, jd, pdd, shopify, taobao
from adapters.mapping import ChannelMapping, load_mapping
from hub.domain.orders import PlatformOrder, TranslationError

#: A translator: parsed payload and shop id → the unified order.
Translator = Callable[[Any, str], PlatformOrder]

BUILTIN: Mapping[str, Translator] = {
    "taobao": taobao.translate,
    "jd": jd.translate,
    "douyin": douyin.translate,
    "pdd": pdd.translate,
    "shopify": shopify.translate,
}
SHIPPED_CHANNELS = Path(__file__).parent / "channels"

_channels: dict[str, ChannelMapping] = {}
_lock = threading.Lock()


_decoder = msgspec.json.Decoder(float_hook=Decimal)


def parse_payload(payload: str | bytes | Mapping[str, Any]) -> Any:
    """The payload as JSON values, with every non-integer number as an exact ``Decimal``."""
    if isinstance(payload, Mapping):
        return payload
    try:
        return _decoder.decode(payload)
    except UnicodeError as exc:  # bytes that are not UTF-8, or a str with lone surrogates
        raise TranslationError("payload", f"not UTF-8: {exc}") from exc
    except (msgspec.DecodeError, RecursionError) as exc:
        if isinstance(payload, bytes):  # say so when the bytes were not text at all
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError as bad:
                raise TranslationError("payload", f"not UTF-8: {bad.reason}") from exc
        raise TranslationError("payload", f"not JSON: {exc}") from exc


def register_channel(name: str, mapping: ChannelMapping) -> None:
    """Make a configured channel translatable under ``name`` (the mapping's own name)."""
    if name in BUILTIN:
        raise ValueError(f"{name!r} is a built-in platform; a mapping cannot replace it")
    if name != mapping.name:
        raise ValueError(f"the mapping is for {mapping.name!r}, not {name!r}")
    with _lock:
        _channels[name] = mapping


def load_channels(directory: Path) -> list[str]:
    """Register every mapping file (``*.toml``, ``*.json``) in a directory; their names."""
    names = []
    for file in sorted([*directory.glob("*.toml"), *directory.glob("*.json")]):
        mapping = load_mapping(file)
        register_channel(mapping.name, mapping)
        names.append(mapping.name)
    return names


@functools.cache
def _shipped_channels() -> tuple[str, ...]:
    return tuple(load_channels(SHIPPED_CHANNELS))


def platforms() -> list[str]:
    """Every platform name that can be translated: built-in, then configured."""
    _shipped_channels()
    return [*BUILTIN, *sorted(_channels)]


def translator(platform: str) -> Translator:
    """The translator for a platform name, or a translation error naming ``platform``."""
    found = BUILTIN.get(platform)
    if found is not None:
        return found
    _shipped_channels()
    channel = _channels.get(platform)
    if channel is None:
        known = ", ".join(platforms())
        raise TranslationError("platform", f"unknown platform {platform!r} (known: {known})")
    return channel.translate


def translate(
    platform: str, payload: str | bytes | Mapping[str, Any], shop_id: str
) -> PlatformOrder:
    """A platform's raw order (JSON text, bytes or already parsed) → the unified order.

    Raises :class:`TranslationError` for anything that cannot be translated; the caller
    keeps such payloads as dead letters.
    """
    convert = translator(platform)
    parsed = parse_payload(payload)
    try:
        return convert(parsed, shop_id)
    except TranslationError:
        raise
    except RecursionError as exc:
        raise TranslationError("payload", "nested too deeply") from exc
