"""`orderhub import`: load old orders from a CSV or JSON export into the hub, as history.

Runs against the database of the usual settings (``--data-dir``, ``--database-url``,
``ORDERHUB_DATABASE_URL``), so it works with the hub stopped or running. Prints a summary
(read / imported / already in the hub / repeated / rejected by reason) and writes the
rejected rows to a CSV report. Exit status, for scripts:

- 0: every order was imported or was already in the hub;
- 1: it finished, but rows were rejected (they are in the report; the rest is imported);
- 2: it could not run (a bad option, a file it cannot read, the database unreachable);
- 130: interrupted (Ctrl-C, SIGTERM): what was committed stays; ``--resume`` continues.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from hub.tables import format_table

if TYPE_CHECKING:  # SQLAlchemy and the store load only when the command runs
    from sqlalchemy import Engine

    from hub.importing import ImportJob, Summary
    from hub.settings import Settings

OK, REJECTED, FAILED, INTERRUPTED = 0, 1, 2, 130


def add_command(sub: Any) -> None:
    """Register ``orderhub import`` with the command's subparsers."""
    parser = sub.add_parser(
        "import",
        help="load old orders from a CSV or JSON export (history: holds no stock)",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    add_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommand's options."""
    parser.add_argument("file", type=Path, help="the export: .csv, .json (an array) or .jsonl")
    parser.add_argument("--platform", default="", help="platform of rows without one (taobao…)")
    parser.add_argument("--shop", default="", help="shop id of rows without one")
    parser.add_argument(
        "--format", dest="file_format", choices=["csv", "json", "jsonl"], help="default: guessed"
    )
    parser.add_argument(
        "--encoding",
        default="",
        help="the file's encoding (default: a BOM, else UTF-8, else GB18030, which reads GBK)",
    )
    parser.add_argument(
        "--timezone",
        default="Asia/Shanghai",
        help="zone of times written without an offset (Asia/Shanghai; +08:00; any IANA name)",
    )
    parser.add_argument("--currency", default="CNY", help="currency of rows without one (CNY)")
    parser.add_argument(
        "--open-orders",
        choices=["reject", "review"],
        default="reject",
        help="orders not finished (unpaid, paid, on hold): reject them (default) or take "
        "them into the review queue, holding nothing until a person approves them",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check everything and say what would be imported; write nothing to the database",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue an import of this file that stopped"
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="PATH",
        help="where to write the rejected rows (default: <file>.rejected.csv beside it)",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive,
        default=500,
        metavar="N",
        help="orders per transaction (500)",
    )
    parser.add_argument(
        "--actor",
        default="",
        help="who imports, recorded in each order's history (default: import:<user name>)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw a progress bar on stderr (default: when stderr is a terminal)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--data-dir", help="state directory (ORDERHUB_DATA_DIR, .orderhub/)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (ORDERHUB_DATABASE_URL)")
    parser.add_argument("--log-format", choices=["json", "text"], help="log format")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a positive whole number")
    return value


class _Stop(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C: the batch being written rolls back, the rest stays."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop()


def run(args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> int:
    """Import ``args.file`` into the database of ``settings``; the exit status (see above)."""
    from sqlalchemy.exc import SQLAlchemyError

    from adapters.history import OpenOrders, Options
    from adapters.money import MoneyError, exponent
    from hub.cli_reconcile import UsageError, zone
    from hub.importing import Format, Importer, ImportFailed, ImportJob, open_database, tqdm_bars

    out = out or sys.stdout
    try:
        currency = args.currency.strip().upper()
        exponent(currency)
        options = Options(
            platform=args.platform.strip().lower(),
            shop_id=args.shop.strip(),
            currency=currency,
            zone=zone(args.timezone),
            open_orders=OpenOrders(args.open_orders),
            now=datetime.now(UTC),
        )
    except (MoneyError, UsageError) as err:
        print(f"orderhub import: {err}", file=sys.stderr)
        return FAILED
    job = ImportJob(
        path=args.file,
        options=options,
        format=Format(args.file_format) if args.file_format else None,
        encoding=args.encoding,
        dry_run=args.dry_run,
        resume=args.resume,
        batch_size=args.batch_size,
        report=args.report,
        checkpoints=settings.data_dir / "imports",
        actor=args.actor.strip() or _default_actor(),
    )
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    # Migrations say what they do at INFO; the import's own output is the summary.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        engine, no_database = open_database(settings.resolved_database_url(), dry_run=args.dry_run)
    except (SQLAlchemyError, OSError) as err:
        print(f"orderhub import: cannot open the database: {_first_line(err)}", file=sys.stderr)
        return FAILED
    importer = Importer(job, engine, bar=tqdm_bars() if progress else None)
    try:
        previous = signal.signal(signal.SIGTERM, _stop)
    except ValueError:  # not the main thread: SIGTERM keeps its handler
        previous = None
    try:
        summary = importer.run(no_database)
        if not job.dry_run and engine is not None:
            _audit(engine, job, summary)
    except KeyboardInterrupt:
        partial = importer.summary
        if partial is not None:
            print(render(partial, as_json=args.json), file=out)
            print(
                f"interrupted after {partial.done:,} of {partial.accepted:,} orders; every "
                "committed order is whole and any batch being written was rolled back. "
                "Run the same command with --resume to continue.",
                file=sys.stderr,
            )
        else:
            print("interrupted before anything was written", file=sys.stderr)
        return INTERRUPTED
    except ImportFailed as err:
        print(f"orderhub import: {err}", file=sys.stderr)
        return FAILED
    except SQLAlchemyError as err:
        done = importer.summary.done if importer.summary else 0
        print(
            f"orderhub import: the database failed after {done:,} orders: {_first_line(err)}. "
            "Committed orders are whole; run the same command with --resume to continue.",
            file=sys.stderr,
        )
        return FAILED
    except OSError as err:
        print(f"orderhub import: {err}", file=sys.stderr)
        return FAILED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if engine is not None:
            engine.dispose()
    print(render(summary, as_json=args.json), file=out)
    return summary.exit_code


def _audit(engine: Engine, job: ImportJob, summary: Summary) -> None:
    """Record the run in the audit log: who imported which file, and what came of it."""
    from hub.store.access import AccessStore, AuditEntry

    AccessStore(engine).append(
        [
            AuditEntry(
                at=datetime.now(UTC),
                actor=job.actor,
                role="admin",
                action="orderhub import",
                target=f"import:{job.path.name}",
                request=json.dumps(
                    {"file": str(job.path), "resume": job.resume, "batch_size": job.batch_size},
                    ensure_ascii=False,
                ),
                after=json.dumps(summary.to_json(), ensure_ascii=False, default=str)[:64_000],
                outcome="OK" if summary.exit_code == 0 else "REJECTED_ROWS",
            )
        ]
    )


def _default_actor() -> str:
    from hub.cli_token import os_user

    return f"import:{os_user()}"


def _first_line(err: BaseException) -> str:
    orig = getattr(err, "orig", None)
    return str(orig or err).strip().splitlines()[0] if str(orig or err).strip() else repr(err)


def render(summary: Summary, *, as_json: bool = False) -> str:
    """The summary as text for a person, or as JSON."""
    if as_json:
        return json.dumps(summary.to_json(), ensure_ascii=False, indent=2)
    c = summary.counts
    done = "would import" if summary.dry_run else "imported"
    head = (
        f"{summary.path.name}: {summary.format.value.upper()}, {summary.encoding}, "
        f"{c.rows:,} rows, sha256 {summary.sha256[:12]}…"
    )
    if summary.dry_run:
        head += "\ndry run: nothing was written to the database"
    if not summary.finished:
        head += f"\nstopped after {summary.done:,} of {summary.accepted:,} orders"
    table = format_table(
        ["", "orders", "rows"],
        [
            ["read", f"{c.orders:,}", f"{c.rows:,}"],
            [done, f"{c.imported_orders:,}", f"{c.imported_rows:,}"],
            ["already in the hub", f"{c.in_hub_orders:,}", f"{c.in_hub_rows:,}"],
            ["repeated in the file", "-", f"{c.repeated_rows:,}"],
            ["rejected", f"{c.rejected_orders:,}", f"{c.rejected_rows:,}"],
        ],
        numeric=(1, 2),
    )
    parts = [head, table]
    if c.reasons:
        parts.append(
            format_table(
                ["rejected rows by reason", "rows"],
                [[_reason(f, code), f"{n:,}"] for (f, code), n in c.reasons.most_common()],
                numeric=(1,),
            )
        )
    if summary.first_problems:
        parts.append("first rejected rows:\n" + "\n".join(f"  {p}" for p in summary.first_problems))
    notes: list[str] = []
    if summary.report is not None and c.rejected_rows:
        notes.append(f"rejected rows with their reasons: {summary.report}")
    if summary.resumed_from:
        notes.append(f"resumed after {summary.resumed_from:,} orders done by an earlier run")
    if c.unmapped_lines:
        codes = ", ".join(summary.unmapped_codes)
        more = ", …" if summary.unmapped_code_count > len(summary.unmapped_codes) else ""
        notes.append(
            f"{c.unmapped_lines:,} lines have SKU codes no shop mapping knows ({codes}{more}); "
            "their sku is left empty (map them with MapPlatformSku before importing to fill it)"
        )
    if summary.ignored_columns:
        notes.append("columns not read: " + ", ".join(summary.ignored_columns))
    if summary.no_database:
        notes.append(f"duplicates in the hub not checked: {summary.no_database}")
    notes.extend(summary.notes)
    if summary.elapsed_s > 0:
        rate = (c.imported_orders + c.in_hub_orders) / summary.elapsed_s
        notes.append(f"took {summary.elapsed_s:.1f} s ({rate:,.0f} orders/s)")
    parts.append("\n".join(notes))
    return "\n\n".join(p for p in parts if p)


def _reason(field: str, code: str) -> str:
    if code == "with_order":
        return "rejected with their order (another row is bad)"
    return f"{field or 'row'}: {code.replace('_', ' ')}"
