"""A throwaway OCI registry on loopback: Debian's ``docker-registry`` (distribution 2.8)
with filesystem storage in a directory we own, started and stopped by PID.

Used by the tests and by ``deploy-check``; never for production storage.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from types import TracebackType

from ci.daemon import Daemon, free_port
from ci.errors import GateError
from ci.oci.digest import check_digest
from ci.release.auth import Credentials
from ci.release.errors import RegistryError
from ci.release.registry import Registry, Retry

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
        start_timeout: float = 60.0,  # a bound: ~1 s idle, far more on a loaded machine
        stop_timeout: float = 30.0,
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
        self._stop_timeout = stop_timeout
        self._daemon: Daemon | None = None
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
        log_path = self._workdir / "registry.log"
        problem = "no output"
        for _ in range(3):  # a port taken between probing and binding: try another
            self.port = free_port(self._bind)
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
            self._daemon = Daemon(
                [self._binary, "serve", str(config)],
                log_path,
                self._ready,
                name="docker-registry",
                start_timeout=self._start_timeout,
                stop_timeout=self._stop_timeout,  # it takes seconds to exit after SIGTERM
            )
            try:
                self._daemon.start()
            except GateError as exc:
                problem = str(exc)
                continue
            return self
        raise RegistryError(f"docker-registry did not start: {problem} (log in {log_path})")

    def _ready(self) -> bool:
        try:
            self.client(Retry(attempts=1, timeout=2.0)).ping()
        except RegistryError:
            return False
        return True

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM, then wait (it takes a few seconds); SIGKILL only if it hangs."""
        if self._daemon is not None:
            self._daemon.stop(timeout)

    def blob_file(self, digest: str) -> Path:
        """Where the registry keeps a blob (or manifest) on disk: what an attacker with
        write access to the storage would edit (deploy-check's tamper attacks)."""
        hex_ = check_digest(digest).removeprefix("sha256:")
        return self._workdir / "storage/docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"

    @property
    def pid(self) -> int | None:
        """The running process id, or None."""
        daemon = self._daemon
        return (
            daemon.process.pid if daemon is not None and daemon.process and daemon.running else None
        )

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
