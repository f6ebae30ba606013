"""Where the CPU went during a run: this process's tree and PostgreSQL, from /proc.

On a small machine every engine competes with its own helpers (the hub, the shard
actors, Ray, PostgreSQL) for the same cores, so each result carries the CPU seconds
each of them used. PostgreSQL is counted as a whole (all its backends, including
ones that exited), so other databases' load on the same server shows up there too;
client processes report their own CPU time. Elsewhere than Linux the
numbers are simply absent.
"""

from __future__ import annotations

import os
from pathlib import Path

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _snapshot() -> dict[int, tuple[int, float, str]]:
    """pid -> (parent pid, CPU seconds so far, category)."""
    found: dict[int, tuple[int, float, str]] = {}
    if not _PROC.is_dir():
        return found
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2 :].split()
        category = _category(comm, cmd)
        seconds = (int(fields[11]) + int(fields[12])) / _TICKS
        if category == "postgres":
            # Backends come and go with connections; the postmaster keeps the CPU
            # time of the ones that exited (its waited-for children).
            seconds += (int(fields[13]) + int(fields[14])) / _TICKS
        found[int(entry.name)] = (int(fields[1]), seconds, category)
    return found


def _category(comm: str, cmd: str) -> str:
    if comm.startswith("postgres") or cmd.startswith("postgres"):
        return "postgres"
    if "InventoryShard" in comm or "InventoryShard" in cmd[:60]:
        return "shard actors"
    if "nats-server" in cmd:
        return "nats"
    if "hub.cli" in cmd or "bin/orderhub" in cmd:
        return "hub process"
    if comm.startswith("ray::") or "ray/" in cmd or "bin/ray " in cmd or "raylet" in cmd:
        return "ray"
    return "other"


class CpuMeter:
    """CPU seconds used between ``__init__`` and :meth:`stop`, by category."""

    def __init__(self) -> None:
        self._root = os.getpid()
        self._before = _snapshot()

    def stop(self) -> dict[str, float]:
        """CPU seconds per category: this process, its descendants, and PostgreSQL."""
        after = _snapshot()
        children: dict[int, list[int]] = {}
        for pid, (parent, _, _) in after.items():
            children.setdefault(parent, []).append(pid)
        members: set[int] = set()
        stack = [self._root]
        while stack:
            pid = stack.pop()
            members.add(pid)
            stack += children.get(pid, [])
        used: dict[str, float] = {}
        for pid, (_, seconds, category) in after.items():
            if pid not in members and category != "postgres":
                continue
            name = "benchmark process" if pid == self._root else category
            previous = self._before.get(pid)
            used[name] = used.get(name, 0.0) + seconds - (previous[1] if previous else 0.0)
        return used


def describe(used: dict[str, float]) -> str:
    """``hub process 8.2s, shard actors 3.7s, …`` (largest first, tiny ones left out)."""
    ranked = sorted(used.items(), key=lambda item: -item[1])
    return ", ".join(f"{name} {s:.1f}s" for name, s in ranked if s >= 0.05)
