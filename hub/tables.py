"""Plain-text tables for the terminal, aligned even with Chinese (double-width) text."""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Sequence

GAP = "  "


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes: wide and full-width characters take two."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def pad(text: str, width: int, *, right: bool = False) -> str:
    """``text`` padded with spaces to ``width`` display columns (left- or right-aligned)."""
    fill = " " * max(0, width - display_width(text))
    return fill + text if right else text + fill


def format_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    numeric: Collection[int] = (),
    footer: Sequence[str] | None = None,
) -> str:
    """An aligned table: headers, a rule, the rows, then (after a rule) an optional footer.

    Columns whose index is in ``numeric`` are right-aligned, headers included. Lines carry
    no trailing spaces.
    """
    body = [list(r) for r in rows]
    if any(len(r) != len(headers) for r in body) or (
        footer is not None and len(footer) != len(headers)
    ):
        raise ValueError("every row must have one cell per header")
    lines = [list(headers), *body, *([list(footer)] if footer is not None else [])]
    widths = [max(display_width(line[i]) for line in lines) for i in range(len(headers))]

    def render(cells: Sequence[str]) -> str:
        return GAP.join(
            pad(cell, widths[i], right=i in numeric) for i, cell in enumerate(cells)
        ).rstrip()

    rule = GAP.join("-" * w for w in widths)
    out = [render(headers), rule, *(render(r) for r in body)]
    if footer is not None:
        out += [rule, render(footer)]
    return "\n".join(out)
