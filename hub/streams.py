"""The JetStream streams the hub needs: created when absent, used as they are when present."""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

log = logging.getLogger("orderhub.streams")

DAY_S = 24 * 3600.0


async def ensure_stream(
    js: JetStreamContext,
    name: str,
    subjects: list[str],
    *,
    max_age_s: float = 7 * DAY_S,
    duplicate_window_s: float = 120.0,
) -> str:
    """The stream that stores ``subjects`` (one made by someone else counts); its name."""
    try:
        return await js.find_stream_name_by_subject(subjects[0])
    except NotFoundError:
        pass
    config = StreamConfig(
        name=name,
        subjects=subjects,
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        max_age=max_age_s,
        duplicate_window=duplicate_window_s,
        description="created by OrderHub",
    )
    try:
        await js.add_stream(config)
        log.info("created stream %s for %s", name, ", ".join(subjects))
        return name
    except BadRequestError:
        # Another hub created it at the same moment, or a stream of that name exists
        # for other subjects: use whichever stream now stores our subjects, if any.
        try:
            return await js.find_stream_name_by_subject(subjects[0])
        except NotFoundError:
            raise RuntimeError(
                f"stream {name!r} exists but does not store {subjects[0]!r}; "
                "pick another name or add the subject to it"
            ) from None
