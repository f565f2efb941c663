"""Fixtures for the gate's attacker tests: throwaway clones, a recording index, marker wheels."""

from __future__ import annotations

import base64
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def marker_files(marker: Path, name: str = "bot4marker", version: str = "1.0") -> dict[str, bytes]:
    """A distribution whose .pth creates ``marker`` whenever an interpreter starts."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.pth": f"import os; open({str(marker)!r}, 'w').close()\n".encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    return files


def build_marker_wheel(directory: Path, marker: Path) -> tuple[Path, str]:
    """A real wheel of the marker distribution; returns its path and sha256 hex."""
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / "bot4marker-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in sorted(marker_files(marker).items()):
            zf.writestr(zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return wheel, hashlib.sha256(wheel.read_bytes()).hexdigest()


@dataclass
class Index:
    """A loopback HTTP server that records every request and serves nothing."""

    url: str
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def recording_index() -> Iterator[Index]:
    """A package index on 127.0.0.1 that answers 404 and remembers each request."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _any(self) -> None:
            seen.append(f"{self.command} {self.path}")
            self.send_error(404)

        do_GET = do_HEAD = do_POST = _any  # noqa: N815

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # bot4: allow-ip
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Index(f"http://127.0.0.1:{server.server_address[1]}", seen)  # bot4: allow-ip
    finally:
        server.shutdown()
        server.server_close()


def copy_work_tree(dest: Path) -> Path:
    """This work tree's tracked and new files, committed in a fresh git repository."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    env = {**os.environ, **GIT_ENV}
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "base"]):
        subprocess.run(["git", *argv], cwd=dest, env=env, check=True)
    return dest


@pytest.fixture(scope="session")
def gate_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One .venv-gate, bootstrapped for real by scripts/gate, shared by every clone.

    Bootstrapping costs ~20 s, so the other clones link to this one (its baseline for
    the runner-venv check lives inside it).
    """
    where = copy_work_tree(tmp_path_factory.mktemp("gate") / "clone")
    result = subprocess.run(
        ["scripts/gate", "-l"], cwd=where, env=gate_env(), capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return where / ".venv-gate"


Clone = Callable[..., Path]


@pytest.fixture
def clone(tmp_path: Path, gate_venv: Path) -> Clone:
    """A committed copy of this work tree (tracked + new files) in a fresh git repository."""

    def make(with_gate_venv: bool = True) -> Path:
        dest = copy_work_tree(tmp_path / "clone")
        if with_gate_venv:
            (dest / ".venv-gate").symlink_to(gate_venv)
        return dest

    return make


def gate_env() -> dict[str, str]:
    """The environment of a user running scripts/gate: not inside this test venv."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
    env["BOT4_SKIP_DEBS"] = "1"
    return env


@pytest.fixture
def run_gate() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``scripts/gate ARGS`` in a clone, as a user would."""

    def run(where: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["scripts/gate", *args], cwd=where, env=gate_env(), capture_output=True,
            text=True, timeout=timeout, check=False,
        )  # fmt: skip

    return run


@pytest.fixture
def marker_wheel() -> Callable[[Path, Path], tuple[Path, str]]:
    """``build_marker_wheel`` as a fixture (test modules cannot import conftest)."""
    return build_marker_wheel


@pytest.fixture
def marker_dist() -> Callable[[Path], dict[str, bytes]]:
    """``marker_files`` as a fixture."""
    return marker_files
