"""Tokens and the audit log in SQLite and PostgreSQL; `orderhub token` on a data directory."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import DBAPIError

from hub.auth import Principal, Tokens, Unauthenticated, Verifier
from hub.cli import main
from hub.domain.inventory import InvalidRequest
from hub.store import schema
from hub.store.access import AccessStore, AuditEntry, AuditQuery, TokenNotFound
from hub.store.db import make_engine

KEY = b"integration-test-signing-key-of-48-bytes-length!"
ADMIN = Principal(subject="alice", role="admin", token_id="t-alice")


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, new_database: Callable[[str], str]) -> Engine:
    return make_engine(new_database(request.param))


def test_the_audit_log_refuses_updates_and_deletes(engine: Engine) -> None:
    store = AccessStore(engine)
    store.append(
        [
            AuditEntry(
                at=datetime.now(UTC),
                actor="alice",
                role="admin",
                action="/orderhub.v1.StockService/SetStock",
                outcome="OK",
            )
        ]
    )
    for statement in (
        update(schema.audit_events).values(actor="mallory"),
        delete(schema.audit_events),
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(statement)
    with engine.connect() as conn:
        assert conn.execute(select(schema.audit_events.c.actor)).scalars().all() == ["alice"]


def test_issue_and_revoke_are_audited_with_before_and_after(engine: Engine) -> None:
    store = AccessStore(engine)
    tokens = Tokens(store, KEY)
    token, record = tokens.issue("finance", "bob", by=ADMIN, action="test issue", note="books")
    assert token.count(".") == 2 and record.token_id not in ("", token)
    assert [r.token_id for r in tokens.list(role="finance")] == [record.token_id]

    revoked = tokens.revoke(record.token_id, by=ADMIN, action="test revoke", reason="left")
    assert revoked.revoked_at is not None and revoked.revoke_reason == "left"
    again = tokens.revoke(record.token_id, by=ADMIN, action="test revoke", reason="twice")
    assert again.revoked_at == revoked.revoked_at and again.revoke_reason == "left"
    assert tokens.list(role="finance") == []
    assert len(tokens.list(role="finance", include_inactive=True)) == 1

    entries = store.audit(AuditQuery(target_prefix=f"token:{record.token_id}"))
    second, first, issued = entries
    assert (issued.action, issued.actor, issued.before) == ("test issue", "alice", "")
    assert json.loads(issued.after)["role"] == "finance"
    assert token not in issued.after + issued.request
    assert "revoked_at" not in json.loads(first.before)
    assert json.loads(first.after)["revoke_reason"] == "left"
    assert first.token_id == "t-alice"
    assert second.before == second.after  # the second revocation changed nothing

    with pytest.raises(TokenNotFound):
        tokens.revoke("nope", by=ADMIN, action="test revoke")
    for role, subject, ttl, field in (
        ("root", "x", None, "role"),
        ("ops", "", None, "subject"),
        ("ops", "x", timedelta(days=400), "ttl_seconds"),
    ):
        with pytest.raises(InvalidRequest) as bad:
            tokens.issue(role, subject, by=ADMIN, action="t", ttl=ttl)
        assert bad.value.field == field
    assert len(store.audit(AuditQuery())) == 3  # refused issues store nothing


async def test_a_verifier_follows_tokens_issued_and_revoked_by_another_process(
    engine: Engine,
) -> None:
    """Two replicas share the database and the key: one issues and revokes, one checks."""
    here = AccessStore(engine)
    verifier = Verifier(here, KEY, refresh_s=3600)
    await verifier.start()
    try:
        elsewhere = Tokens(AccessStore(engine), KEY)
        token, record = elsewhere.issue("wms", "wms-hz", by=ADMIN, action="t")
        who = await verifier.check(f"Bearer {token}")  # unknown id: looked up at once
        assert (who.subject, who.role, who.token_id) == ("wms-hz", "wms", record.token_id)
        elsewhere.revoke(record.token_id, by=ADMIN, action="t")
        await verifier.check(f"bearer {token}")  # still cached until the next refresh
        await verifier.refresh()
        with pytest.raises(Unauthenticated, match="revoked"):
            await verifier.check(f"Bearer {token}")
        with pytest.raises(Unauthenticated, match="Bearer"):
            await verifier.check(None)
        forged, _ = Tokens(here, b"x" * 48).issue("admin", "mallory", by=ADMIN, action="t")
        with pytest.raises(Unauthenticated, match="Signature"):
            await verifier.check(f"Bearer {forged}")
    finally:
        await verifier.stop()


def test_the_token_command_issues_lists_and_revokes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    assert (
        main(["token", "create", "--role", "wms", "--subject", "wms-hz", "--ttl", "7d", *data]) == 0
    )
    token = capsys.readouterr().out.strip()
    assert token.count(".") == 2
    key = (tmp_path / "data" / "token.key").read_bytes()
    assert (tmp_path / "data" / "token.key").stat().st_mode & 0o077 == 0

    assert main(["token", "list", "--format", "json", *data]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["role"], row["subject"], row["state"]) == ("wms", "wms-hz", "active")
    assert row["issued_by"].startswith("cli:")
    issued = datetime.fromisoformat(row["issued_at"])
    expires = datetime.fromisoformat(row["expires_at"])
    assert expires - issued == timedelta(days=7)

    assert main(["token", "revoke", row["token_id"], "--reason", "rotated", *data]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["token", "list", "--all", "--format", "json", *data]) == 0
    assert json.loads(capsys.readouterr().out)[0]["state"] == "revoked"
    assert main(["token", "revoke", "no-such-id", *data]) == 1
    assert "no token" in capsys.readouterr().err

    assert main(["token", "roles", "--format", "json"]) == 0
    roles = json.loads(capsys.readouterr().out)
    assert "UpdateRoutingRules" not in roles["cs_lead"]
    assert key == (tmp_path / "data" / "token.key").read_bytes()  # one key, kept
