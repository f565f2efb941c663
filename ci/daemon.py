"""One way to run a local daemon for a check: start, wait until ready, stop by PID.

The registry, dockerd, Prometheus and Alertmanager the toolkit starts on loopback all
need the same four things: a free port, a log file the error can quote, a bounded wait
for readiness that notices an early exit, and a stop that sends SIGTERM and only then
SIGKILL (a registry takes seconds to exit). They live here once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from ci.errors import GateError

# typing.Self is 3.11+ and the toolkit runs on 3.10: a bound TypeVar says the same.
_D = TypeVar("_D", bound="Daemon")


class DaemonError(GateError):
    """A daemon that would not start; the message quotes its log's last words."""


def free_port(host: str = "localhost") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, *, interval: float = 0.1
) -> None:
    """Poll ``check`` until it is true; after ``timeout`` seconds, fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise DaemonError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


class Daemon:
    """A process started with its output in ``log_path``, ready when ``ready()`` says so.

    A context manager: leaving it (or ``stop()``) sends SIGTERM, waits ``stop_timeout``
    seconds, then SIGKILL. An exit before readiness is an error quoting the log's tail.
    """

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        ready: Callable[[], bool],
        *,
        name: str | None = None,
        start_timeout: float = 20.0,
        stop_timeout: float = 10.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.name = name or Path(self.argv[0]).name
        self._ready = ready
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._env = env
        self.process: subprocess.Popen[bytes] | None = None

    def log_tail(self, chars: int = 1000) -> str:
        """The end of the daemon's log on one line (for error messages)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "no output"
        return " ".join(text.split())[-chars:] or "no output"

    def start(self: _D) -> _D:
        """Start the process and wait until it is ready (or fail, having stopped it)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as sink:
            self.process = subprocess.Popen(  # noqa: S603 - argv built by the caller  # nosec B603
                self.argv,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env,
            )
        try:
            wait_until(self._check, self._start_timeout, self.name)
        except GateError:
            self.stop()
            raise
        return self

    def _check(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise DaemonError(f"{self.name} exited with status {code}: {self.log_tail()}")
        return self._ready()

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM by PID, wait (``timeout``, default the daemon's); SIGKILL only if it
        hangs. Idempotent; ``process`` keeps the exit status."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(self._stop_timeout if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self: _D) -> _D:
        return self if self.running else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
