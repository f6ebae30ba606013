"""One owner per SKU and per lane, whichever hub process asks: the shared actors' layout.

Shard actors are named ``<prefix>-<index>-of-<count>`` in the deployment's Ray namespace,
so every hub process of a deployment finds the same actors. Two mistakes would break the
single-owner rule silently, and both are refused at start: a hub configured with another
shard count (its actors would own SKUs the running ones own too), and a hub on another
database than the actors it found (they would hold another deployment's stock).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import ray
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

log = logging.getLogger("orderhub.actors")


class LayoutMismatch(RuntimeError):
    """The actors running in the namespace do not match this hub's settings."""


def database_fingerprint(url: str) -> str:
    """A short, password-free identity of a database URL."""
    shown = make_url(url).render_as_string(hide_password=True)
    return hashlib.sha256(shown.encode()).hexdigest()[:16]


def running_counts(prefix: str, namespace: str) -> set[int]:
    """The shard counts of live actors named ``<prefix>-<i>-of-<n>`` in ``namespace``."""
    pattern = re.compile(rf"^{re.escape(prefix)}-\d+-of-(\d+)$")
    counts = set()
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor.get("namespace") != namespace:
            continue
        m = pattern.match(str(actor.get("name", "")))
        if m:
            counts.add(int(m.group(1)))
    return counts


def check_count(prefix: str, count: int, namespace: str, setting: str) -> None:
    """Refuse to add a second layout of shards beside a running one."""
    others = running_counts(prefix, namespace) - {count}
    if others:
        running = ", ".join(str(n) for n in sorted(others))
        raise LayoutMismatch(
            f"Ray namespace {namespace!r} already runs {running} {prefix} shard(s), this hub "
            f"is set to {count}: set {setting}={running} like the running hubs (changing the "
            "count needs every hub stopped first)"
        )


def check_statuses(statuses: Sequence[dict[str, Any]], database_url: str, what: str) -> None:
    """Refuse actors that serve another database than this hub's."""
    mine = database_fingerprint(database_url)
    theirs = {s.get("database") for s in statuses}
    if theirs != {mine}:
        raise LayoutMismatch(
            f"the running {what} actors serve another database than this hub's "
            f"({sorted(str(t) for t in theirs)} vs {mine}): use another ORDERHUB_RAY_NAMESPACE "
            "for another deployment"
        )


T = TypeVar("T")


def when_reachable(
    load: Callable[[], T],
    what: str,
    *,
    first_wait_s: float = 0.5,
    max_wait_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``load()``, retried for as long as the database cannot be reached.

    An actor loads its state in its constructor. If that raises, Ray counts the actor as
    failed for good (restarts cover a running actor that dies, not a constructor that
    fails), so a shard restarted during a database outage would stay dead until every hub
    restarted. Instead the constructor waits here, and calls queue until it is loaded.
    Errors other than an unreachable database are raised at once.
    """
    wait = first_wait_s
    while True:
        try:
            return load()
        except OperationalError as err:
            log.warning(
                "%s: the database cannot be reached (%s); trying again in %.1f s",
                what,
                str(err.orig or err).strip().splitlines()[0] if str(err).strip() else err,
                wait,
            )
            sleep(wait)
            wait = min(wait * 2, max_wait_s)
