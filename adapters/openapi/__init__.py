"""Pull clients for the platforms' open APIs: signing, requests, pages, errors — no I/O.

One :class:`OpenApi` per platform builds signed :class:`HttpRequest` values for "orders
modified in this window, page n" and "this one order", and reads the bodies that come back
into raw orders (passed on to intake as JSON) or a classified :class:`ApiError`. The hub's
pollers (``hub.pollers``) send the requests and keep the cursor.
"""

from __future__ import annotations

from adapters.openapi.base import (
    ApiError,
    Credentials,
    ErrorKind,
    HttpRequest,
    ListPage,
    OpenApi,
    RawOrder,
    Window,
)
from adapters.openapi.douyin import DouyinApi
from adapters.openapi.jd import JdApi
from adapters.openapi.pdd import PddApi
from adapters.openapi.taobao import TaobaoApi

__all__ = [
    "ApiError",
    "Credentials",
    "DouyinApi",
    "ErrorKind",
    "HttpRequest",
    "JdApi",
    "ListPage",
    "OpenApi",
    "PddApi",
    "RawOrder",
    "TaobaoApi",
    "Window",
    "api_for",
    "platforms",
]

_APIS: dict[str, OpenApi] = {
    "taobao": TaobaoApi(),
    "jd": JdApi(),
    "douyin": DouyinApi(),
    "pdd": PddApi(),
}


def platforms() -> tuple[str, ...]:
    """The platforms whose orders can be pulled."""
    return tuple(_APIS)


def api_for(platform: str) -> OpenApi:
    """The pull client of ``platform``; KeyError when it has none."""
    try:
        return _APIS[platform]
    except KeyError:
        raise KeyError(f"no pull client for platform {platform!r}") from None
