"""History import, the shell: read an export file, check every row, store the orders, report.

The rules live in :mod:`adapters.history`; this module does the I/O around them:

1. **Read** the file (CSV in UTF-8 with or without a BOM, GB18030/GBK or UTF-16; JSON as
   an array or as JSON Lines) and hash it (SHA-256): the hash names the checkpoint.
2. **Check** every row and build the orders; what is rejected is known before anything is
   written, and goes to the report file (row, order, column, problem, reason).
3. **Store** the accepted orders through :class:`~hub.store.orders.OrderStore`, many per
   transaction: each batch looks up which orders the hub already has (skipped, counted as
   already in the hub), maps the lines' SKU codes through the shops' mappings, and inserts
   the rest with their events (``received``, then ``imported`` saying who imported them
   from which file and rows) in one transaction. An order is written whole or not at all.
   Imported orders hold no stock: they go in through the store, not through order intake,
   so no hold is taken and no routing is triggered (see ``docs/importing.md``).
4. **Checkpoint** after every committed batch (``<data dir>/imports/<sha256>.json``), so a
   run that stopped resumes where it stopped (``resume=True``); re-importing is safe
   anyway, because orders the hub has are skipped.

A dry run reads, checks, looks up duplicates and SKU mappings, and writes the report, but
writes nothing to the database and no checkpoint.
"""

from __future__ import annotations

import codecs
import csv
import gc
import hashlib
import io
import json
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy import Engine, inspect
from sqlalchemy.exc import DataError, IntegrityError

from adapters import history
from adapters.history import Assembled, Code, Options, ParsedRow, Problem, Record
from hub.domain.lifecycle import Change
from hub.domain.orders import PlatformOrder
from hub.store.db import make_engine, upgrade
from hub.store.master_data import MasterData
from hub.store.orders import NewOrder, OrderStore, StoredOrder, new_order_id

#: The kind of the event that records an import in an order's history.
IMPORTED_EVENT = "imported"
DEFAULT_BATCH = 500
CHECKPOINT_VERSION = 1
_READ_CHUNK = 1 << 20
_SNIFF_BYTES = 1 << 16
_DELIMITERS = (",", "\t", ";")
#: How many unmapped SKU codes the summary names.
_UNMAPPED_SHOWN = 10
#: How many rejected rows the summary shows.
_FIRST_SHOWN = 5


class ImportFailed(Exception):
    """The import could not run at all (a file it cannot read, a bad option, no header)."""


class Format(StrEnum):
    """How an export file is written."""

    CSV = "csv"
    JSON = "json"
    JSONL = "jsonl"


class Bar(Protocol):
    """A progress bar: told how far the work got."""

    def update(self, n: int = 1) -> object: ...

    def close(self) -> None: ...


#: Makes a progress bar: (description, total or None, unit, already done).
BarFactory = Callable[[str, int | None, str, int], Bar]


@dataclass(frozen=True, slots=True)
class ImportJob:
    """One import: the file, how to read it, and what to do."""

    path: Path
    options: Options = field(default_factory=Options)
    #: None: by the file's suffix, else by its first character.
    format: Format | None = None
    #: Empty: detect (a BOM, else UTF-8, else GB18030).
    encoding: str = ""
    dry_run: bool = False
    resume: bool = False
    batch_size: int = DEFAULT_BATCH
    #: Where the rejected rows go; None: beside the input, ``<name>.rejected.csv``.
    report: Path | None = None
    #: Where checkpoints are kept (the data directory's ``imports/``).
    checkpoints: Path = Path(".orderhub/imports")
    #: Who imports, recorded in every imported order's history.
    actor: str = "import"

    @property
    def report_path(self) -> Path:
        """The report file."""
        return self.report or self.path.with_name(self.path.stem + ".rejected.csv")


@dataclass(slots=True)
class Counts:
    """What happened to the rows and orders of a file, so far."""

    rows: int = 0
    orders: int = 0
    imported_orders: int = 0
    imported_rows: int = 0
    in_hub_orders: int = 0
    in_hub_rows: int = 0
    repeated_rows: int = 0
    rejected_orders: int = 0
    rejected_rows: int = 0
    unmapped_lines: int = 0
    #: Rejected rows by (column, problem code).
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        """The counts as a JSON object (for the checkpoint and ``--json``)."""
        out: dict[str, Any] = {
            name: getattr(self, name) for name in self.__dataclass_fields__ if name != "reasons"
        }
        out["reasons"] = [
            {"field": f, "code": c, "rows": n} for (f, c), n in self.reasons.most_common()
        ]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Counts:
        """Counts from :meth:`to_json`."""
        counts = cls()
        for name in cls.__dataclass_fields__:
            if name != "reasons":
                setattr(counts, name, int(data.get(name, 0)))
        for item in data.get("reasons", []):
            counts.reasons[(str(item["field"]), str(item["code"]))] = int(item["rows"])
        return counts


@dataclass(slots=True)
class Summary:
    """The outcome of an import (or of a dry run), whole or as far as it got."""

    path: Path
    sha256: str
    format: Format
    encoding: str
    dry_run: bool
    counts: Counts
    report: Path | None
    #: Orders accepted by the checks (imported, or found in the hub), in file order.
    accepted: int = 0
    #: Of those, how many an earlier run had done (resumed from its checkpoint).
    resumed_from: int = 0
    #: How many accepted orders this run has processed so far (resumed ones included).
    done: int = 0
    ignored_columns: tuple[str, ...] = ()
    #: SKU codes without a mapping: the first few, and how many there are.
    unmapped_codes: tuple[str, ...] = ()
    unmapped_code_count: int = 0
    #: Why the database was not consulted in a dry run ("" when it was).
    no_database: str = ""
    #: Things the operator should know (a checkpoint not resumed, nothing to resume).
    notes: list[str] = field(default_factory=list)
    #: The first rejected rows, for a glance without opening the report.
    first_problems: tuple[Problem, ...] = ()
    elapsed_s: float = 0.0
    finished: bool = False

    @property
    def exit_code(self) -> int:
        """0 when nothing was rejected, 1 when rows were (see the report)."""
        return 1 if self.counts.rejected_rows else 0

    def to_json(self) -> dict[str, Any]:
        """The summary as a JSON object."""
        return {
            "file": str(self.path),
            "sha256": self.sha256,
            "format": self.format.value,
            "encoding": self.encoding,
            "dry_run": self.dry_run,
            "finished": self.finished,
            "counts": self.counts.to_json(),
            "report": str(self.report) if self.report else None,
            "accepted": self.accepted,
            "resumed_from": self.resumed_from,
            "ignored_columns": list(self.ignored_columns),
            "unmapped_codes": list(self.unmapped_codes),
            "unmapped_code_count": self.unmapped_code_count,
            "no_database": self.no_database,
            "notes": self.notes,
            "first_problems": [
                {"row": p.row, "field": p.field, "problem": p.code.value, "reason": p.reason}
                for p in self.first_problems
            ],
            "elapsed_s": round(self.elapsed_s, 3),
        }


# ---------------------------------------------------------------------- reading


def file_digest(path: Path) -> str:
    """The SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def detect_encoding(path: Path) -> str:
    """The file's text encoding: by its BOM, else UTF-8 if it decodes, else GB18030."""
    with path.open("rb") as f:
        head = f.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in ("utf-8", "gb18030"):
        if _decodes(path, encoding):
            return encoding
    raise ImportFailed(f"{path}: neither UTF-8 nor GB18030 text; name the encoding with --encoding")


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with path.open("rb") as f:
            while chunk := f.read(_READ_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _normal_encoding(name: str) -> str:
    try:
        found = codecs.lookup(name).name
    except LookupError as exc:
        raise ImportFailed(f"--encoding: unknown encoding {name!r}") from exc
    # A UTF-8 file may still start with a BOM: read it without one either way.
    return "utf-8-sig" if found in ("utf-8", "utf-8-sig") else found


def guess_format(path: Path, encoding: str) -> Format:
    """CSV, a JSON array or JSON Lines: by the suffix, else by the first character."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return Format.JSONL
    with path.open(encoding=encoding, errors="replace") as f:
        start = f.read(_SNIFF_BYTES).lstrip("\ufeff \t\r\n")
    if suffix == ".json" or start[:1] in ("[", "{"):
        return Format.JSON if start[:1] == "[" else Format.JSONL
    return Format.CSV


@dataclass(slots=True)
class _Source:
    """The records of a file, read lazily, and the columns it has that are not read."""

    records: Iterator[Record]
    ignored: list[str]


def _csv_source(path: Path, encoding: str, options: Options) -> _Source:
    with path.open(encoding=encoding, newline="") as f:
        sample = f.read(_SNIFF_BYTES)
    found = _find_header(sample)
    if found is None:
        raise ImportFailed(
            f"{path}: no header row naming the order id column (订单号, order_id, …) in the "
            f"first {history.HEADER_SEARCH_ROWS} rows"
        )
    delimiter, header_line, header = found
    columns = history.columns_of(header)
    missing = history.missing_columns(columns.positions, options)
    if missing:
        raise ImportFailed(
            f"{path}: the header (row {header_line}) has no column for "
            + "; ".join(missing)
            + ". Rename the columns (see docs/importing.md), or give --platform/--shop"
        )

    def records() -> Iterator[Record]:
        with path.open(encoding=encoding, newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            last = 0
            for cells in reader:
                start, last = last + 1, reader.line_num
                if last <= header_line or not any(c.strip() for c in cells):
                    continue
                record = history.record_of_cells(start, cells, columns)
                if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
                    extra = Problem(
                        start,
                        "",
                        f"{len(cells)} cells but the header has {len(header)} "
                        "(a comma in a value that is not quoted?)",
                    )
                    record = replace(record, problems=(*record.problems, extra))
                yield record

    return _Source(records(), list(columns.ignored))


def _find_header(sample: str) -> tuple[str, int, list[str]] | None:
    """The delimiter, line number and cells of the header row, or None."""
    for delimiter in _DELIMITERS:
        reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter)
        try:
            for i, cells in enumerate(reader):
                if i >= history.HEADER_SEARCH_ROWS:
                    break
                if history.is_header(cells):
                    return delimiter, reader.line_num, cells
        except csv.Error:
            continue
    return None


def _json_source(path: Path, encoding: str, lines: bool) -> _Source:
    ignored: list[str] = []

    def one(row: int, value: Any) -> Record:
        if not isinstance(value, dict):
            return Record(row, {}, problems=(Problem(row, "", "not a JSON object"),))
        record, unknown = history.record_of_object(row, value)
        ignored.extend(k for k in unknown if k not in ignored)
        return record

    def array() -> Iterator[Record]:
        with path.open(encoding=encoding) as f:
            try:
                items = json.load(f, parse_float=Decimal)
            except ValueError as exc:
                raise ImportFailed(f"{path}: not JSON ({exc})") from exc
        if not isinstance(items, list):
            raise ImportFailed(f"{path}: expected an array of orders or JSON Lines")
        for i, item in enumerate(items, start=1):
            yield one(i, item)

    def json_lines() -> Iterator[Record]:
        with path.open(encoding=encoding) as f:
            for n, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                try:
                    value = json.loads(text, parse_float=Decimal)
                except ValueError as exc:
                    yield Record(n, {}, problems=(Problem(n, "", f"not JSON: {exc}"),))
                    continue
                yield one(n, value)

    return _Source(json_lines() if lines else array(), ignored)


# ---------------------------------------------------------------------- checking


@dataclass(slots=True)
class Checked:
    """A file read and checked: its orders (accepted and rejected) and how it was read."""

    path: Path
    sha256: str
    format: Format
    encoding: str
    outcomes: list[Assembled]
    rows: int
    ignored: tuple[str, ...]

    @property
    def accepted(self) -> list[Assembled]:
        """The orders to import, in the order they first appear in the file."""
        return [a for a in self.outcomes if a.order is not None]


def check_file(job: ImportJob, bar: BarFactory | None = None) -> Checked:
    """Read a file and check every row; raises :class:`ImportFailed` if it cannot be read."""
    if not job.path.is_file():
        raise ImportFailed(f"{job.path}: no such file")
    if job.report_path.resolve() == job.path.resolve():
        raise ImportFailed(f"{job.path}: the report would overwrite the file it reports on")
    sha = file_digest(job.path)
    encoding = _normal_encoding(job.encoding) if job.encoding else detect_encoding(job.path)
    kind = job.format or guess_format(job.path, encoding)
    options = job.options
    if kind is Format.CSV:
        source = _csv_source(job.path, encoding, options)
    else:
        source = _json_source(job.path, encoding, kind is Format.JSONL)
    progress = bar("reading", None, "row", 0) if bar else None
    parsed: list[ParsedRow] = []
    try:
        for record in source.records:
            parsed.append(history.read_row(record, options))
            if progress is not None:
                progress.update()
    except UnicodeDecodeError as exc:
        raise ImportFailed(
            f"{job.path}: not {encoding} text ({exc.reason} at byte {exc.start} of a chunk); "
            "name the encoding with --encoding"
        ) from exc
    except csv.Error as exc:
        raise ImportFailed(f"{job.path}: not readable as CSV ({exc})") from exc
    finally:
        if progress is not None:
            progress.close()
    outcomes = list(history.orders_of(parsed, options))
    return Checked(job.path, sha, kind, encoding, outcomes, len(parsed), tuple(source.ignored))


# ---------------------------------------------------------------------- checkpoints


def _fingerprint(job: ImportJob) -> dict[str, str]:
    """The options that decide which orders a file yields: a resume must use the same."""
    o = job.options
    return {
        "platform": o.platform,
        "shop_id": o.shop_id,
        "currency": o.currency,
        "timezone": str(o.zone),
        "open_orders": o.open_orders.value,
    }


@dataclass(slots=True)
class Checkpoint:
    """How far an import of one file got: orders done, counts, and rows the store refused."""

    path: Path
    sha256: str
    options: dict[str, str]
    run_id: str
    done: int = 0
    counts: Counts = field(default_factory=Counts)
    refused: list[Problem] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Checkpoint | None:
        """The checkpoint in ``path``, or None when there is none (or it is unreadable)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("version") != CHECKPOINT_VERSION:
            return None
        return cls(
            path=path,
            sha256=str(data["sha256"]),
            options={str(k): str(v) for k, v in data["options"].items()},
            run_id=str(data["run_id"]),
            done=int(data["done"]),
            counts=Counts.from_json(data["counts"]),
            refused=[
                Problem(int(p["row"]), str(p["field"]), str(p["reason"]), Code(p["code"]))
                for p in data.get("refused", [])
            ],
        )

    def save(self, file: Path) -> None:
        """Write the checkpoint atomically (a crash leaves the old one or the new one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "version": CHECKPOINT_VERSION,
            "file": str(file),
            "sha256": self.sha256,
            "options": self.options,
            "run_id": self.run_id,
            "done": self.done,
            "counts": self.counts.to_json(),
            "refused": [
                {"row": p.row, "field": p.field, "reason": p.reason, "code": p.code.value}
                for p in self.refused
            ],
            "saved_at": datetime.now(UTC).isoformat(),
        }
        partial = self.path.with_suffix(".tmp")
        with partial.open("w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, self.path)

    def remove(self) -> None:
        """Forget the checkpoint (the import finished)."""
        self.path.unlink(missing_ok=True)


def checkpoint_path(job: ImportJob, sha256: str) -> Path:
    """Where the checkpoint of this file's import is kept."""
    return job.checkpoints / f"{sha256}.json"


# ---------------------------------------------------------------------- storing


def open_database(url: str, *, dry_run: bool) -> tuple[Engine | None, str]:
    """The engine to import into, or (for a dry run) None and why there is no database yet.

    A real import brings the database to the newest schema first, as the hub does when it
    starts; a dry run only reads, and treats a database that does not exist yet as empty.
    """
    if dry_run:
        if url.startswith("sqlite:///"):
            file = Path(url.removeprefix("sqlite:///"))
            if not file.exists():
                return None, f"no database at {file} yet"
        engine = make_engine(url)
        if not inspect(engine).has_table("orders"):
            engine.dispose()
            return None, "the database has no orders table yet (orderhub db upgrade)"
        return engine, ""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    upgrade(url)
    return make_engine(url), ""


class Importer:
    """Runs one import, keeping its progress where a caller can read it if it stops."""

    def __init__(
        self, job: ImportJob, engine: Engine | None, *, bar: BarFactory | None = None
    ) -> None:
        self.job = job
        self._engine = engine
        self._bar = bar
        self._store = OrderStore(engine) if engine is not None else None
        self._master = MasterData(engine) if engine is not None else None
        self._unmapped: list[str] = []
        self.summary: Summary | None = None
        self._refused: list[tuple[Assembled, Problem]] = []

    def run(self, no_database: str = "") -> Summary:
        """Check the file, store what is accepted, write the report; the summary says how."""
        began = time.monotonic()
        job = self.job
        checked = _without_gc(check_file, job, self._bar)
        accepted = checked.accepted
        counts = _validation_counts(checked)
        summary = Summary(
            path=job.path,
            sha256=checked.sha256,
            format=checked.format,
            encoding=checked.encoding,
            dry_run=job.dry_run,
            counts=counts,
            report=None,
            accepted=len(accepted),
            ignored_columns=checked.ignored,
            no_database=no_database,
        )
        self.summary = summary
        try:
            checkpoint = self._checkpoint(checked, summary)
            self._store_all(accepted, summary, checkpoint)
            summary.finished = True
            if checkpoint is not None:
                checkpoint.remove()
        finally:
            summary.unmapped_codes = tuple(self._unmapped[:_UNMAPPED_SHOWN])
            summary.unmapped_code_count = len(self._unmapped)
            summary.report, summary.first_problems = self._write_report(checked)
            summary.elapsed_s = time.monotonic() - began
            gc.unfreeze()  # the run's objects may be collected again once let go
        return summary

    # ------------------------------------------------------------------ steps

    def _checkpoint(self, checked: Checked, summary: Summary) -> Checkpoint | None:
        """The checkpoint to continue from (``resume``) or to start, None for a dry run."""
        job = self.job
        if job.dry_run:
            return None
        path = checkpoint_path(job, checked.sha256)
        fresh = Checkpoint(path, checked.sha256, _fingerprint(job), uuid.uuid4().hex[:12])
        earlier = Checkpoint.load(path)
        if earlier is None:
            if job.resume:
                summary.notes.append("nothing to resume for this file: importing it whole")
            return fresh
        if not job.resume:
            summary.notes.append(
                f"an earlier run of this file stopped after {earlier.done:,} of "
                f"{summary.accepted:,} orders; this run checks them again (they count as "
                "already in the hub); --resume would have continued it"
            )
            return fresh
        if earlier.options != fresh.options:
            changed = ", ".join(
                f"{k} was {earlier.options.get(k)!r}, now {v!r}"
                for k, v in fresh.options.items()
                if earlier.options.get(k) != v
            )
            raise ImportFailed(
                f"the interrupted import of {job.path} used other options ({changed}); resume "
                "with the same options, or run again without --resume"
            )
        if earlier.done > summary.accepted:
            return fresh  # not this file's checkpoint after all: start again, dedupe is safe
        # The earlier run's counts began with the same checks of the same file, and add
        # what its batches did; the orders the store refused are found by their first row.
        summary.resumed_from = earlier.done
        summary.counts = earlier.counts
        by_first_row = {a.rows[0]: a for a in checked.accepted}
        self._refused = [(by_first_row[p.row], p) for p in earlier.refused if p.row in by_first_row]
        return earlier

    def _store_all(
        self, accepted: Sequence[Assembled], summary: Summary, checkpoint: Checkpoint | None
    ) -> None:
        start = summary.resumed_from
        summary.done = start
        title = "checking" if self.job.dry_run else "importing"
        progress = self._bar(title, len(accepted), "order", start) if self._bar else None
        try:
            for at in range(start, len(accepted), self.job.batch_size):
                batch = accepted[at : at + self.job.batch_size]
                self._store_batch(batch, summary.counts)
                summary.done = at + len(batch)
                if checkpoint is not None:
                    checkpoint.done = summary.done
                    checkpoint.counts = summary.counts
                    checkpoint.refused = [p for _, p in self._refused]
                    checkpoint.save(self.job.path)
                if progress is not None:
                    progress.update(len(batch))
        finally:
            if progress is not None:
                progress.close()

    def _store_batch(self, batch: Sequence[Assembled], counts: Counts) -> None:
        """One batch: map SKUs, then insert in one transaction what the hub does not have.

        The insert itself finds the orders the hub has (``ON CONFLICT DO NOTHING`` on the
        platform identity), so an order stored meanwhile by the running hub is counted as
        already there, never written twice. A dry run looks them up instead.
        """
        orders = [a for a in batch if a.order is not None]
        if self._store is None or self._master is None:  # a dry run without a database
            for a in orders:
                _count(counts, a, imported=True)
            return
        if self.job.dry_run:
            found = self._store.find_many([_key(a) for a in orders])
            for a, stored in zip(orders, found, strict=True):
                if stored is not None:
                    _count(counts, a, imported=False)
            orders = [a for a, stored in zip(orders, found, strict=True) if stored is None]
        mappings = self._master.resolve_many(
            [
                (o.platform, o.shop_id, [ln.platform_sku_id for ln in o.lines])
                for o in (_order(a) for a in orders)
            ]
        )
        new: list[tuple[Assembled, NewOrder, int]] = []
        for a, mapped in zip(orders, mappings, strict=True):
            order = _order(a)
            lines = [replace(ln, sku=mapped.get(ln.platform_sku_id, "")) for ln in order.lines]
            unmapped = [ln.platform_sku_id for ln in lines if not ln.sku]
            for code in unmapped:
                if code not in self._unmapped:
                    self._unmapped.append(code)
            new.append((a, self._new_order(a, replace(order, lines=tuple(lines))), len(unmapped)))
        if self.job.dry_run:
            for a, _, unmapped_lines in new:
                _count(counts, a, imported=True)
                counts.unmapped_lines += unmapped_lines
            return
        written = self._insert([n for _, n, _ in new])
        for (a, _, unmapped_lines), outcome in zip(new, written, strict=True):
            if isinstance(outcome, Problem):
                self._refuse(a, outcome, counts)
                continue
            # None: the hub has it (from an earlier import, or its platform sent it).
            _count(counts, a, imported=outcome is not None)
            if outcome is not None:
                counts.unmapped_lines += unmapped_lines

    def _new_order(self, a: Assembled, order: PlatformOrder) -> NewOrder:
        """The order to insert, with the ``imported`` event saying who, from where."""
        summary = self.summary
        assert summary is not None
        rows = _spans(a.rows)
        reason = f"imported from {self.job.path.name} (row {rows}) by {self.job.actor}"
        details = {
            "by": self.job.actor,
            "tool": "orderhub import",
            "file": self.job.path.name,
            "sha256": summary.sha256,
            "rows": list(a.rows),
        }
        return NewOrder(
            new_order_id(),
            order,
            a.tags,
            a.placement,
            (Change(IMPORTED_EVENT, reason), details),
            hold_actor=self.job.actor,
        )

    def _insert(self, new: Sequence[NewOrder]) -> list[StoredOrder | Problem | None]:
        """Insert orders in one transaction; when the database refuses the batch for one
        order's data, find that order by halves and store the others."""
        assert self._store is not None
        if not new:
            return []
        try:
            return [*self._store.insert_many(new)]
        except (DataError, IntegrityError) as err:
            if len(new) == 1:
                reason = str(err.orig or err).strip().splitlines()[0][:300]
                return [Problem(0, "", f"the database refused the order: {reason}", Code.DATABASE)]
            half = len(new) // 2
            return [*self._insert(new[:half]), *self._insert(new[half:])]

    def _refuse(self, a: Assembled, problem: Problem, counts: Counts) -> None:
        first = a.rows[0]
        refused = replace(problem, row=first)
        self._refused.append((a, refused))
        counts.rejected_orders += 1
        counts.rejected_rows += len(a.rows)
        counts.reasons[(refused.field, refused.code.value)] += 1
        if len(a.rows) > 1:
            counts.reasons[("", Code.WITH_ORDER.value)] += len(a.rows) - 1
        counts.repeated_rows += len(a.repeated)

    def _write_report(self, checked: Checked) -> tuple[Path, tuple[Problem, ...]]:
        """Write the rejected rows (row, order, column, problem, reason) as CSV for Excel."""
        lines: list[tuple[int, str, str, str, str, str, str]] = []
        for a in checked.outcomes:
            for p in a.problems:
                lines.append(_report_line(a, p))
        for a, p in self._refused:
            lines.append(_report_line(a, p))
            for row in a.rows[1:]:
                with_order = Problem(
                    row, "", f"rejected with its order (row {p.row}: {p.reason})", Code.WITH_ORDER
                )
                lines.append(_report_line(a, with_order))
        path = self.job.report_path
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".tmp")
        # UTF-8 with a BOM, so Excel shows the Chinese as Chinese.
        with partial.open("w", encoding="utf-8-sig", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(
                ["row", "order_id", "platform", "shop_id", "field", "problem", "reason"]
            )
            lines.sort(key=lambda line: (line[0], line[4]))
            writer.writerows(lines)
        os.replace(partial, path)
        first = tuple(
            Problem(row, column, reason, Code(code))
            for row, _, _, _, column, code, reason in lines[:_FIRST_SHOWN]
        )
        return path, first


def _without_gc(read: Callable[[ImportJob, BarFactory | None], Checked], *args: Any) -> Checked:
    """Read a file with the cycle collector paused, then keep it out of the collector's way.

    Reading makes millions of small objects that form no cycles, and they stay in memory
    for the whole run; left alone, the collector walks them again and again (a third of
    the run's time for 100k orders).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        checked = read(*args)
    finally:
        gc.freeze()  # what was read is never garbage while the run lasts
        if was_enabled:
            gc.enable()
    return checked


def _report_line(a: Assembled, p: Problem) -> tuple[int, str, str, str, str, str, str]:
    platform, shop, order_id = a.key or ("", "", "")
    return (p.row, order_id, platform, shop, p.field, p.code.value, p.reason)


def _order(a: Assembled) -> PlatformOrder:
    assert a.order is not None
    return a.order


def _key(a: Assembled) -> tuple[str, str, str]:
    assert a.key is not None
    return a.key


def _count(counts: Counts, a: Assembled, *, imported: bool) -> None:
    """Count an accepted order as imported (or to be), or as already in the hub."""
    if imported:
        counts.imported_orders += 1
        counts.imported_rows += len(a.rows)
    else:
        counts.in_hub_orders += 1
        counts.in_hub_rows += len(a.rows)
    counts.repeated_rows += len(a.repeated)


def _validation_counts(checked: Checked) -> Counts:
    """The counts the checks alone decide: rows and orders read, and what was rejected."""
    counts = Counts(rows=checked.rows)
    for a in checked.outcomes:
        if a.key is not None:
            counts.orders += 1
        if a.order is not None:
            continue
        counts.rejected_orders += 1 if a.key is not None else 0
        counts.rejected_rows += len(a.rows)
        counts.repeated_rows += len(a.repeated)
        rows_counted: set[int] = set()
        for p in a.problems:
            # A row with several problems counts once, under its first.
            if p.row in rows_counted:
                continue
            rows_counted.add(p.row)
            counts.reasons[(p.field, p.code.value)] += 1
    return counts


def _spans(rows: Sequence[int]) -> str:
    """Row numbers as short spans: ``2-4, 9``."""
    spans: list[str] = []
    start = prev = rows[0]
    for r in [*rows[1:], None]:
        if r is not None and r == prev + 1:
            prev = r
            continue
        spans.append(f"{start}-{prev}" if prev != start else str(start))
        if r is not None:
            start = prev = r
    return ", ".join(spans)


def tqdm_bars(stream: IO[str] | None = None) -> BarFactory:
    """Progress bars drawn by tqdm on ``stream`` (standard error)."""
    from tqdm import tqdm  # type: ignore[import-untyped]

    def make(title: str, total: int | None, unit: str, initial: int) -> Bar:
        bar: Bar = tqdm(
            total=total,
            initial=initial,
            desc=title,
            unit=unit,
            unit_scale=False,
            file=stream or sys.stderr,
            dynamic_ncols=True,
            leave=False,
        )
        return bar

    return make
