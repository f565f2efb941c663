"""``python -m ci.release dockerfile-check``: build the Dockerfile on a local dockerd on top
of our own hermetic base and prove it installs the same files as the hermetic image.

Slow (a vfs-storage dockerd copies every layer): opt-in, run by ``nox -s dockerfile``.
Needs root, Debian's ``docker.io`` and ``docker-registry``, and a built image
(``build/image/oci``) whose wheels are in the image cache. Everything it starts
(registry, dockerd) it stops by PID; its state lives in a temporary directory.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from ci.daemon import Daemon
from ci.errors import GateError
from ci.image import elf, engine, output
from ci.image.fetch import Cache, find_pip, pip_download
from ci.image.lock_format import read_lock, read_spec
from ci.image.tarball import Entry, read_tar
from ci.oci.layout import Layout
from ci.release import dockerfile_context
from ci.release.errors import ReleaseError
from ci.release.local_registry import LocalRegistry

log = logging.getLogger(__name__)
TIMEOUT = 900
DEBIAN_DOCKER = Path("/usr/bin/docker")
BUILDER_DOCKERFILE = """\
# A builder for the Dockerfile made only from our inputs: the hermetic base + pinned pip.
ARG BASE
FROM ${{BASE}}
COPY {wheel} /tmp/{wheel}
RUN ["python3.11", "/tmp/{wheel}/pip", "install", "--no-index", "--no-cache-dir", \
"--no-compile", "--root-user-action=ignore", "--target", \
"/usr/local/lib/python3.11/dist-packages", "/tmp/{wheel}"]
"""


def _pin(toolchain_lock: Path, name: str) -> tuple[str, list[str]]:
    """``NAME==VERSION`` and its hashes from a uv/pip-compile lock."""
    text = toolchain_lock.read_text(encoding="utf-8")
    found = re.search(
        rf"^{re.escape(name)}==(\S+)((?:\s*\\\n\s*--hash=sha256:[0-9a-f]{{64}})+)", text, re.M
    )
    if found is None:
        raise ReleaseError(f"{toolchain_lock} pins no {name}")
    return found.group(1), re.findall(r"sha256:([0-9a-f]{64})", found.group(2))


# dockerd starts its own containerd, which listens on <exec-root>/containerd/containerd.sock
# (and .ttrpc beside it). A unix socket path holds at most 107 bytes: past that containerd
# never listens and dockerd gives up with "timeout waiting for containerd to start" — which
# a deep work directory (a test's tmp_path under pytest-xdist, popen-gwN/) reaches.
CONTAINERD_SOCKET = Path("containerd", "containerd.sock.ttrpc")
SOCKET_PATH_MAX = 107


def exec_root_fits(exec_root: Path) -> bool:
    """Whether containerd's sockets under ``exec_root`` fit a unix socket path."""
    return len(os.fsencode(exec_root / CONTAINERD_SOCKET)) <= SOCKET_PATH_MAX


class Dockerd:
    """A dockerd on a private socket (vfs storage, no bridge, no iptables), stopped by PID.

    Its API socket and exec root (runtime sockets) are ``workdir/docker.sock`` and
    ``workdir/exec``, or both in a short private directory in /tmp, removed on stop, when
    ``workdir`` is too deep for containerd's socket path.
    """

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("dockerd")
        if binary is None:
            raise ReleaseError("dockerd is not installed (apt-get install docker.io)")
        self._binary = binary
        self._dir = workdir
        self._daemon: Daemon | None = None
        self._short_exec_root: Path | None = None
        self.exec_root = workdir / "exec"
        self.socket = workdir / "docker.sock"

    def env(self) -> dict[str, str]:
        """The environment for the docker client: our socket, the legacy builder."""
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_BUILDKIT": "0"}

    def __enter__(self) -> Dockerd:
        self._dir.mkdir(parents=True, exist_ok=True)
        if not exec_root_fits(self.exec_root):
            # mkdtemp: a new 0700 directory of unique name; /tmp itself for a short path
            short = tempfile.mkdtemp(prefix="bot4-dockerd-", dir="/tmp")  # nosec B108
            self._short_exec_root = Path(short)
            self.exec_root = self._short_exec_root / "exec"
            self.socket = self._short_exec_root / "docker.sock"
        self._daemon = Daemon(
            [
                self._binary,
                "--storage-driver=vfs",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                f"--data-root={self._dir / 'data'}",
                f"--exec-root={self.exec_root}",
                f"--pidfile={self._dir / 'dockerd.pid'}",
                f"--host=unix://{self.socket}",
            ],
            self._dir / "dockerd.log",
            self._ready,
            name="dockerd",
            start_timeout=180.0,  # a bound, not a wait: ~10 s idle, much more on a busy box
            stop_timeout=60.0,
        )
        try:
            self._daemon.start()
        except GateError as exc:
            self._cleanup()
            raise ReleaseError(f"dockerd did not start: {exc}") from None
        return self

    def _ready(self) -> bool:
        probe = subprocess.run(  # noqa: S603  # nosec B603
            [docker_binary(), "version"], env=self.env(), capture_output=True, check=False
        )
        return probe.returncode == 0

    def stop(self) -> None:
        """SIGTERM by PID, wait; SIGKILL only if it hangs."""
        if self._daemon is not None:
            self._daemon.stop()
        self._cleanup()

    def _cleanup(self) -> None:
        # dockerd bind-mounts its data root onto itself and undoes that only on a clean
        # shutdown; one left behind by a failed start makes the directory unremovable
        # (EBUSY), and pytest's cleanup of old temporary directories then fails the run.
        data = str(self._dir / "data")
        try:
            mounts = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
        except OSError:
            mounts = []
        umount = shutil.which("umount")
        if umount is not None and any(line.split()[1:2] == [data] for line in mounts):
            subprocess.run(  # noqa: S603  # nosec B603 - fixed argv, our own path
                [umount, data], capture_output=True, check=False
            )
        if self._short_exec_root is not None:
            shutil.rmtree(self._short_exec_root, ignore_errors=True)
            self._short_exec_root = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def docker(self, *args: str, what: str, capture: bool = True) -> str:
        """Run the docker client against this daemon; a failure is one line."""
        result = subprocess.run(  # noqa: S603  # nosec B603
            [docker_binary(), *args],
            env=self.env(),
            capture_output=capture,
            text=True,
            check=False,
            timeout=TIMEOUT,
        )
        if result.returncode != 0:
            lines = (result.stderr or "").strip().splitlines() or ["no output"]
            raise ReleaseError(f"{what} failed: {lines[-1]}")
        return result.stdout or ""

    def export(self, image: str) -> bytes:
        """The image's root filesystem as a tar (``docker create`` + ``docker export``)."""
        # never started: the argument only satisfies images without a command
        container = self.docker("create", image, "export-only", what="docker create").strip()
        try:
            out = self._dir / "rootfs.tar"
            self.docker("export", "-o", str(out), container, what="docker export")
            return out.read_bytes()
        finally:
            self.docker("rm", container, what="docker rm")


def docker_binary() -> str:
    """Debian's client (matches its dockerd) before any other on PATH."""
    found = str(DEBIAN_DOCKER) if DEBIAN_DOCKER.exists() else shutil.which("docker")
    if found is None:
        raise ReleaseError("the docker client is not installed (apt-get install docker.io)")
    return found


def _push(daemon: Dockerd, tag: str) -> str:
    daemon.docker("push", tag, what=f"docker push {tag}")
    digests = json.loads(
        daemon.docker("inspect", "--format", "{{json .RepoDigests}}", tag, what="docker inspect")
    )
    return str(digests[0])


def make_context(root: Path, cache: Path, revision: str, out: Path, work: Path) -> Path:
    """The Dockerfile's build context for ``revision``: the engine wheel built from that
    commit (as the hermetic build does) and the locked wheels from the image cache."""
    lock = read_lock(root / "image.lock")
    store = Cache(cache)
    wheels = {w.name: p for w in lock.wheels if (p := store.get(w.sha256)) is not None}
    wheel = engine.build_wheel(root, engine.resolve(root, revision), work / "engine")
    return dockerfile_context.prepare_context(lock, wheels, wheel, root / "Dockerfile", out)


def check(
    root: Path,
    image_dir: Path,
    cache: Path,
    say: Callable[[str], None],
    pip: Sequence[str] | None = None,
) -> dockerfile_context.Comparison:
    """Build the Dockerfile on our base and compare it with the hermetic image."""
    lay = Layout(image_dir / "oci")
    top = lay.select()
    manifest: dict[str, Any] = json.loads(lay.blob(top.digest))
    config: dict[str, Any] = json.loads(lay.blob(manifest["config"]["digest"]))
    layers = [lay.blob(layer["digest"]) for layer in manifest["layers"]]
    spec = read_spec(root / "ci" / "image" / "image.toml")
    revision = manifest.get("annotations", {}).get("org.opencontainers.image.revision", "HEAD")
    with output.short_scratch("df") as work:
        say(f"build context with the engine wheel of {revision[:12]}")
        context = make_context(root, cache, revision, work / "context", work)
        version, hashes = _pin(root / "locks" / "toolchain.txt", "pip")
        pip_dir = work / "builder"
        got = pip_download(
            pip or find_pip(None), [("pip", version, hashes)], spec.platform, "3.11", pip_dir
        )
        (pip_dir / "Dockerfile").write_text(BUILDER_DOCKERFILE.format(wheel=got[0].name))
        base_tar = work / "base-layer.tar.gz"
        base_tar.write_bytes(layers[0])
        with (
            LocalRegistry(work / "registry") as registry,
            Dockerd(work / "dockerd") as daemon,
        ):
            base_tag = f"{registry.host}/bot4/base:check"
            daemon.docker("import", str(base_tar), base_tag, what="docker import")
            base = _push(daemon, base_tag)
            say(f"base {base}")
            builder_tag = f"{registry.host}/bot4/builder:check"
            daemon.docker(
                "build",
                "--network=none",
                "--build-arg",
                f"BASE={base}",
                "-t",
                builder_tag,
                str(pip_dir),
                what="building the builder",
            )
            builder = _push(daemon, builder_tag)
            say(f"builder {builder} (base + pip {version})")
            daemon.docker(
                "build",
                "--network=none",
                "--build-arg",
                f"BASE={base}",
                "--build-arg",
                f"BUILDER={builder}",
                "-t",
                "bot4:dockerfile-check",
                str(context),
                what="docker build of the Dockerfile",
            )
            inspected = json.loads(
                daemon.docker("inspect", "bot4:dockerfile-check", what="docker inspect")
            )[0]["Config"]
            rootfs = read_tar(daemon.export("bot4:dockerfile-check"))
    # the hermetic build strips the wheels' shared objects (ci/image/elf.py, [paths] strip);
    # the same deterministic function applied to pip's files must give the same bytes
    rootfs = list(elf.strip_entries(rootfs, spec.strip))
    hermetic: list[Entry] = [e for blob in layers[1:] for e in read_tar(blob)]
    return dockerfile_context.compare(
        rootfs, hermetic, inspected, config.get("config", {}), spec.drop, spec.keep
    )
