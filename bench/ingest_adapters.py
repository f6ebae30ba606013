"""Adapter translation alone: ``registry.translate`` over distinct payloads, per platform.

No hub, no database: each platform's generated payloads (JSON text, as the RPC carries
them) are translated one after the other in this process, several times; the median
repetition is reported, with the slowest and fastest. JSON parsing alone
(``registry.parse_payload``) is timed the same way, to tell parsing from mapping.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from adapters import registry
from bench.ingest_orders import Generator, Ingest
from hub.domain.orders import PlatformOrder, TranslationError


@dataclass(slots=True)
class AdapterResult:
    """One platform's timings (seconds per repetition) and its check."""

    platform: str
    orders: int
    translate_s: list[float] = field(default_factory=list)
    parse_s: list[float] = field(default_factory=list)
    payload_bytes: int = 0
    problems: list[str] = field(default_factory=list)

    def rate(self, seconds: float) -> float:
        """Orders per second for a repetition that took ``seconds``."""
        return self.orders / seconds if seconds > 0 else 0.0

    @property
    def median_rate(self) -> float:
        """Orders per second of the median repetition."""
        return self.rate(statistics.median(self.translate_s))

    @property
    def median_us(self) -> float:
        """Microseconds per order, median repetition."""
        return statistics.median(self.translate_s) / self.orders * 1e6

    @property
    def parse_us(self) -> float:
        """Microseconds per order spent parsing the JSON, median repetition."""
        return statistics.median(self.parse_s) / self.orders * 1e6 if self.parse_s else 0.0


def _timed(work: Callable[[], object]) -> float:
    gc.collect()
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def measure(platform: str, orders: list[Ingest], repetitions: int) -> AdapterResult:
    """Translate every payload ``repetitions`` times; check each run's answers."""
    result = AdapterResult(platform, len(orders))
    payloads = [o.payload for o in orders]
    shop_id = orders[0].shop_id
    result.payload_bytes = sum(len(p.encode()) for p in payloads) // len(payloads)
    translate = registry.translate
    for payload in payloads[:50]:  # warm up (first use loads configured channels)
        translate(platform, payload, shop_id)
    wanted = [o.platform_order_id for o in orders]
    for _ in range(repetitions):
        out: list[PlatformOrder] = []

        def run(out: list[PlatformOrder] = out) -> None:
            append = out.append
            for payload in payloads:
                try:
                    append(translate(platform, payload, shop_id))
                except TranslationError as err:
                    result.problems.append(f"{platform}: {err}")
                    return

        result.translate_s.append(_timed(run))
        got = [o.platform_order_id for o in out]
        if got != wanted:
            result.problems.append(
                f"{platform}: {len(got)} of {len(wanted)} translated, "
                f"{len(set(got))} distinct ids; not the generated ids"
            )
        if len(set(got)) != len(got):
            result.problems.append(f"{platform}: {len(got) - len(set(got))} repeated ids")
    parse = registry.parse_payload

    def parse_all() -> None:
        # Each parsed payload is dropped at once, as translation drops it: kept in a list,
        # 20,000 of them made the collector walk them all and the parse look slower than the
        # whole translation.
        for payload in payloads:
            parse(payload)

    for _ in range(repetitions):
        result.parse_s.append(_timed(parse_all))
    return result


def run(
    generator: Generator, platforms: tuple[str, ...], count: int, repetitions: int
) -> list[AdapterResult]:
    """Every platform in turn: ``count`` distinct orders, ``repetitions`` times each."""
    results = []
    for platform in platforms:
        orders = generator.for_platform(platform, count, first=50_000_000)
        results.append(measure(platform, orders, repetitions))
    return results


def markdown_table(results: list[AdapterResult], target: float) -> str:
    """One row per platform: median orders/s and µs per order, with the range."""
    rows = [
        "| platform | orders x reps | payload bytes | orders/s (median) | µs/order | "
        "range orders/s | of which JSON parse µs | target | check |",
        "|---|---:|---:|---:|---:|---|---:|:-:|:-:|",
    ]
    for r in results:
        rates = sorted(r.rate(s) for s in r.translate_s)
        rows.append(
            f"| {r.platform} | {r.orders:,} x {len(r.translate_s)} | {r.payload_bytes:,} "
            f"| {r.median_rate:,.0f} | {r.median_us:.1f} | {rates[0]:,.0f}-{rates[-1]:,.0f} "
            f"| {r.parse_us:.1f} | {'met' if r.median_rate >= target else 'missed'} "
            f"| {'✓' if not r.problems else '✗'} |"
        )
    return "\n".join(rows)
