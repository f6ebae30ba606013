"""JSON logs carry the id of the RPC they were written under."""

from __future__ import annotations

import io
import json
import logging

from hub import logs


def test_a_record_written_during_an_rpc_carries_its_request_id() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.RequestIdFilter())
    log = logging.getLogger("orderhub.test.request-id")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("outside any call")
        token = logs.request_id.set("req-42")
        try:
            log.warning("permission denied", extra={"role": "finance"})
        finally:
            logs.request_id.reset(token)
    finally:
        log.removeHandler(handler)
    outside, inside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert "request_id" not in outside
    assert inside["request_id"] == "req-42" and inside["role"] == "finance"
    assert inside["msg"] == "permission denied" and inside["level"] == "warning"
