"""The shops the hub takes orders from: platform credentials, webhook secrets, polling.

A deployment lists its shops in a TOML file (``ORDERHUB_SHOPS_FILE``, default
``shops.toml`` in the data directory)::

    [[shop]]
    platform = "taobao"            # taobao, jd, douyin, pdd, shopify, or a configured channel
    shop_id = "tb-flagship"
    app_key = "12345678"
    app_secret_env = "TB_APP_SECRET"      # secrets come from the environment...
    access_token_env = "TB_SESSION"
    webhook_secret_env = "TB_WEBHOOK_SECRET"
    api_url = ""                   # the platform's gateway; empty means its public one
    poll = true                    # pull orders on a schedule
    poll_interval_s = 60
    rate_per_s = 5                 # API calls per second this shop may make

Secrets may also be written inline (``app_secret = "..."``), which suits a test but not a
file kept in version control. A shop missing from the file can still push orders through
``IngestPlatformOrder``; it just has no poller and no webhook secret.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ShopConfigError(ValueError):
    """The shops file is wrong; the message names the shop and the key."""


@dataclass(frozen=True, slots=True)
class Shop:
    """One shop on one platform, and how the hub talks to it."""

    platform: str
    shop_id: str
    app_key: str = ""
    app_secret: str = field(default="", repr=False)
    access_token: str = field(default="", repr=False)
    webhook_secret: str = field(default="", repr=False)
    api_url: str = ""
    poll: bool = False
    poll_interval_s: float = 60.0
    rate_per_s: float = 5.0
    # How far back the first poll of a shop looks, in seconds (then: from its cursor on).
    first_window_s: float = 3600.0

    @property
    def key(self) -> tuple[str, str]:
        """(platform, shop_id): how a shop is found."""
        return (self.platform, self.shop_id)


_SECRETS = ("app_secret", "access_token", "webhook_secret")
_TEXT = ("platform", "shop_id", "app_key", "api_url")
_NUMBERS = ("poll_interval_s", "rate_per_s", "first_window_s")


def _shop(entry: Mapping[str, Any], where: str, env: Mapping[str, str]) -> Shop:
    known = {*_TEXT, *_NUMBERS, "poll", *_SECRETS, *(f"{s}_env" for s in _SECRETS)}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ShopConfigError(f"{where}: unknown key {unknown[0]!r}")
    values: dict[str, Any] = {}
    for name in _TEXT:
        value = entry.get(name, "")
        if not isinstance(value, str):
            raise ShopConfigError(f"{where}: {name} must be a string")
        values[name] = value.strip()
    values["platform"] = values["platform"].lower()
    for name in ("platform", "shop_id"):
        if not values[name]:
            raise ShopConfigError(f"{where}: {name} is required")
    for name in _SECRETS:
        inline, var = entry.get(name), entry.get(f"{name}_env")
        if inline is not None and var is not None:
            raise ShopConfigError(f"{where}: give {name} or {name}_env, not both")
        if var is not None:
            if var not in env:
                raise ShopConfigError(f"{where}: {name}_env names {var!r}, which is not set")
            values[name] = env[var]
        elif inline is not None:
            if not isinstance(inline, str):
                raise ShopConfigError(f"{where}: {name} must be a string")
            values[name] = inline
    for name in _NUMBERS:
        if name in entry:
            value = entry[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ShopConfigError(f"{where}: {name} must be a positive number")
            values[name] = float(value)
    if "poll" in entry:
        if not isinstance(entry["poll"], bool):
            raise ShopConfigError(f"{where}: poll must be true or false")
        values["poll"] = entry["poll"]
    return Shop(**values)


class Shops:
    """The configured shops, found by (platform, shop_id)."""

    def __init__(self, shops: Iterable[Shop] = ()) -> None:
        self._by_key: dict[tuple[str, str], Shop] = {}
        for shop in shops:
            if shop.key in self._by_key:
                raise ShopConfigError(f"shop {shop.platform}/{shop.shop_id} is listed twice")
            self._by_key[shop.key] = shop

    @classmethod
    def parse(cls, text: str, *, env: Mapping[str, str] | None = None) -> Shops:
        """Shops from the text of a shops file."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ShopConfigError(f"not valid TOML: {err}") from err
        unknown = sorted(set(data) - {"shop"})
        if unknown:
            raise ShopConfigError(f"unknown table {unknown[0]!r}; shops are [[shop]] entries")
        entries = data.get("shop", [])
        if not isinstance(entries, list):
            raise ShopConfigError("shops are [[shop]] entries")
        environ = os.environ if env is None else env
        return cls(_shop(e, f"shop #{i + 1}", environ) for i, e in enumerate(entries))

    @classmethod
    def load(cls, path: Path) -> Shops:
        """Shops from a file; none when the file does not exist."""
        if not path.exists():
            return cls()
        try:
            return cls.parse(path.read_text(encoding="utf-8"))
        except ShopConfigError as err:
            raise ShopConfigError(f"{path}: {err}") from err

    def get(self, platform: str, shop_id: str) -> Shop | None:
        """The shop, or None when it is not configured."""
        return self._by_key.get((platform, shop_id))

    def polled(self) -> list[Shop]:
        """The shops whose orders are pulled on a schedule."""
        return [s for s in self._by_key.values() if s.poll]

    def __iter__(self) -> Any:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)
