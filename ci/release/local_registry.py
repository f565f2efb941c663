"""A throwaway OCI registry on loopback: Debian's ``docker-registry`` (distribution 2.8)
with filesystem storage in a directory we own, started and stopped by PID.

Used by the tests and by ``deploy-check``; never for production storage.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

from ci.release.auth import Credentials
from ci.release.errors import RegistryError
from ci.release.reference import check_digest
from ci.release.registry import Registry, Retry, free_port

log = logging.getLogger(__name__)

BINARIES = ("/usr/bin/docker-registry", "/usr/bin/registry")
CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: {host}:{port}
{auth}"""


def find_binary() -> str | None:
    """The registry binary (Debian package ``docker-registry``), if installed."""
    return next((b for b in BINARIES if Path(b).exists()), None) or shutil.which("docker-registry")


class LocalRegistry:
    """A registry process on ``localhost:<free port>``; a context manager."""

    def __init__(
        self,
        workdir: Path,
        *,
        host: str = "localhost",
        start_timeout: float = 20.0,
        auth: str = "",
        credentials: Credentials | None = None,
    ) -> None:
        """``auth`` is the config's ``auth:`` section (YAML, e.g. htpasswd or token);
        ``credentials`` the login the readiness probe and ``client()`` use."""
        binary = find_binary()
        if binary is None:
            raise RegistryError(
                "docker-registry is not installed (apt-get install docker-registry)"
            )
        self._binary = binary
        self._workdir = workdir
        self._bind = host
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._auth = auth
        self._credentials = credentials
        self.port = 0

    @property
    def host(self) -> str:
        """``HOST:PORT`` as it appears in image references."""
        return f"{self._bind}:{self.port}"

    def client(self, retry: Retry | None = None) -> Registry:
        """A client for this registry."""
        return Registry(self.host, retry=retry, credentials=self._credentials)

    def start(self) -> LocalRegistry:
        """Start on a free port and wait until ``/v2/`` answers."""
        self._workdir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a port taken between probing and binding: try another
            self.port = free_port()
            config = self._workdir / "config.yml"
            config.write_text(
                CONFIG.format(
                    root=self._workdir / "storage",
                    host=self._bind,
                    port=self.port,
                    auth=self._auth,
                ),
                encoding="utf-8",
            )
            log_file = (self._workdir / "registry.log").open("ab")
            self._proc = subprocess.Popen(  # noqa: S603  # nosec B603
                [self._binary, "serve", str(config)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            log_file.close()
            if self._wait_ready():
                return self
            self.stop()
        tail = (self._workdir / "registry.log").read_text(errors="replace").strip().splitlines()
        raise RegistryError(
            f"docker-registry did not start: {tail[-1] if tail else 'no output'} "
            f"(log in {self._workdir / 'registry.log'})"
        )

    def _wait_ready(self) -> bool:
        probe = self.client(Retry(attempts=1, timeout=2.0))
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            try:
                probe.ping()
            except RegistryError:
                time.sleep(0.05)
                continue
            return True
        return False

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then wait (it takes a few seconds); SIGKILL only if it hangs."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("docker-registry (pid %d) ignored SIGTERM; killing it", proc.pid)
            proc.kill()
            proc.wait()

    def blob_file(self, digest: str) -> Path:
        """Where the registry keeps a blob (or manifest) on disk: what an attacker with
        write access to the storage would edit (deploy-check's tamper attacks)."""
        hex_ = check_digest(digest).removeprefix("sha256:")
        return self._workdir / "storage/docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"

    @property
    def pid(self) -> int | None:
        """The running process id, or None."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
