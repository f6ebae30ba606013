"""`orderhub token`: issue, revoke and list bearer tokens, straight in the hub's database.

It needs no running hub and no token of its own (it is how the first one is made): whoever
can read the data directory's key and reach the database can issue tokens, as whoever can
run ``orderhub db upgrade`` can change the schema. Every issue and revocation is audited
with the operating-system user as the actor (``cli:<user>``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import grpc

from hub.auth import ADMIN_TOKEN_FILE, Principal, Tokens, signing_key, write_private
from hub.domain.access import ROLES, rpcs_of
from hub.domain.inventory import InvalidRequest
from hub.settings import Settings
from hub.store.access import AccessStore, TokenNotFound, TokenRecord
from hub.store.db import make_engine, upgrade
from hub.tables import format_table
from orderhub.client import authorized_channel, read_token

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"": 86400, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``2w``, ``30`` (days) → a timedelta."""
    m = _DURATION.match(text)
    if not m or int(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a positive number with s, m, h, d or w")
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


def add_arguments(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register ``orderhub token create|revoke|list``."""
    token = sub.add_parser("token", help="issue, revoke and list bearer tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--database-url", help="SQLAlchemy URL (ORDERHUB_DATABASE_URL)")
    create = token_sub.add_parser(
        "create", parents=[common, db], help="issue a token and print it (shown once)"
    )
    create.add_argument("--role", required=True, choices=ROLES, help="what the token may do")
    create.add_argument("--subject", help="who or what holds it (default: <role>@<your user name>)")
    create.add_argument(
        "--ttl", type=duration, default=None, help="lifetime: 90d, 12h, 2w (default 30d)"
    )
    create.add_argument("--note", default="", help="why it exists")
    create.add_argument("--save", metavar="PATH", help="also write it to this file (mode 600)")
    create.add_argument("--format", choices=["text", "json"], default="text")
    revoke = token_sub.add_parser("revoke", parents=[common, db], help="revoke a token by its id")
    revoke.add_argument("token_id")
    revoke.add_argument("--reason", default="", help="why (kept in the audit log)")
    listing = token_sub.add_parser("list", parents=[common, db], help="list issued tokens")
    listing.add_argument("--role", choices=ROLES)
    listing.add_argument("--all", action="store_true", help="also revoked and expired ones")
    listing.add_argument("--format", choices=["table", "json"], default="table")
    roles = token_sub.add_parser("roles", help="print what each role may call")
    roles.add_argument("--format", choices=["table", "json"], default="table")


def os_user() -> str:
    """Who runs the command, for the audit log: the login name, else the numeric user id
    (a bare container has no name for it)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def cli_principal() -> Principal:
    """The command line's actor in the audit log."""
    return Principal(subject=f"cli:{os_user()}", role="admin", token_id="")


def open_tokens(settings: Settings) -> tuple[Tokens, AccessStore]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url()
    upgrade(url)
    store = AccessStore(make_engine(url, pool_size=1))
    return Tokens(store, signing_key(settings)), store


def ensure_admin_token(settings: Settings, tokens: Tokens, store: AccessStore) -> str | None:
    """On a hub with no valid admin token, issue one into ``<data-dir>/admin.token``.

    Returns the file's path when it wrote one. A deployment that made its own admin
    tokens (``orderhub token create --role admin``) gets none.
    """
    now = datetime.now(UTC)
    if store.tokens(role="admin", active_at=now):
        return None
    token, _ = tokens.issue(
        "admin",
        "local-admin",
        by=Principal(subject="orderhub up", role="admin", token_id=""),
        action="orderhub up (first admin token)",
        note="issued by orderhub up: no admin token was valid",
    )
    path = settings.data_dir / ADMIN_TOKEN_FILE
    write_private(path, token + "\n")
    return str(path)


def _rows(records: list[TokenRecord], now: datetime) -> list[dict[str, str]]:
    rows = []
    for r in records:
        state = "revoked" if r.revoked_at else ("expired" if r.expires_at <= now else "active")
        rows.append(
            {
                "token_id": r.token_id,
                "role": r.role,
                "subject": r.subject,
                "state": state,
                "issued_at": r.issued_at.isoformat(timespec="seconds"),
                "expires_at": r.expires_at.isoformat(timespec="seconds"),
                "issued_by": r.issued_by,
                "note": r.note,
            }
        )
    return rows


def run(args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> int:
    """Run ``orderhub token …``; 1 with a message on bad input."""
    out = out or sys.stdout
    if args.token_command == "roles":
        table = {role: [m.rsplit(".", 1)[-1] for m in rpcs_of(role)] for role in ROLES}
        if args.format == "json":
            print(json.dumps(table, indent=2), file=out)
        else:
            print(
                format_table(
                    ["role", "may call"],
                    [[role, ", ".join(rpcs)] for role, rpcs in table.items()],
                ),
                file=out,
            )
        return 0
    tokens, _ = open_tokens(settings)
    who = cli_principal()
    try:
        if args.token_command == "create":
            subject = args.subject or f"{args.role}@{who.subject.removeprefix('cli:')}"
            token, record = tokens.issue(
                args.role,
                subject,
                by=who,
                action="orderhub token create",
                ttl=args.ttl,
                note=args.note,
            )
            if args.save:
                write_private(Path(args.save), token + "\n")
            if args.format == "json":
                print(json.dumps({"token": token, **record.as_dict()}, indent=2), file=out)
            else:
                print(token, file=out)
                print(
                    f"token {record.token_id}: role {record.role}, held by {record.subject}, "
                    f"expires {record.expires_at.isoformat(timespec='seconds')}",
                    file=sys.stderr,
                )
            return 0
        if args.token_command == "revoke":
            record = tokens.revoke(
                args.token_id, by=who, action="orderhub token revoke", reason=args.reason
            )
            print(f"token {record.token_id} ({record.role}, {record.subject}) is revoked", file=out)
            return 0
        records = tokens.list(role=args.role or "", include_inactive=args.all)
        rows = _rows(records, datetime.now(UTC))
        if args.format == "json":
            print(json.dumps(rows, indent=2, ensure_ascii=False), file=out)
        else:
            columns = ["token_id", "role", "subject", "state", "expires_at", "issued_by", "note"]
            print(format_table(columns, [[r[c] for c in columns] for r in rows]), file=out)
        return 0
    except InvalidRequest as err:
        print(f"orderhub token: {err.field}: {err}", file=sys.stderr)
        return 1
    except TokenNotFound:
        print(f"orderhub token: no token {args.token_id!r}", file=sys.stderr)
        return 1


def hub_channel(args: argparse.Namespace) -> grpc.Channel:
    """A channel to ``args.addr`` carrying ``--token``, ``ORDERHUB_TOKEN`` or the admin token
    ``orderhub up`` left in the data directory (plaintext when none is found: the hub then
    answers UNAUTHENTICATED)."""
    token = getattr(args, "token", None) or read_token()
    if not token:
        return grpc.insecure_channel(args.addr)
    return authorized_channel(args.addr, token)
