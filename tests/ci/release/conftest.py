"""Fixtures for the release toolkit: a real registry on loopback, tiny byte-stable OCI
layouts built here (a layer tar, config, manifest, index.json), and throwaway keys."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from bot4.infrastructure.secrets.file import FileSecrets
from ci.release.bot4_signer import open_signer
from ci.release.keys import Signer
from ci.release.local_registry import LocalRegistry, find_binary
from ci.release.registry import Registry, Retry

REPO_ROOT = Path(__file__).resolve().parents[3]
_names = itertools.count()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def layer_tar(files: Mapping[str, tuple[bytes, int]]) -> bytes:
    """A byte-stable tar: sorted paths, parents first, mtime 0, root-owned."""
    dirs = sorted({"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path in sorted(files):
            data, mode = files[path]
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_layout(
    dest: Path,
    files: Mapping[str, tuple[bytes, int]],
    *,
    tag: str = "0.1.0",
    entrypoint: tuple[str, ...] = ("/bin/sh",),
    cmd: tuple[str, ...] = (),
    user: str = "65532:65532",
    revision: str = "0" * 40,
    sbom: Mapping[str, Any] | None = None,
) -> str:
    """Write an OCI image layout with one gzip layer; returns the manifest digest."""
    raw = layer_tar(files)
    layer = gzip.compress(raw, mtime=0)
    config = _json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "User": user,
                "Entrypoint": list(entrypoint),
                "Cmd": list(cmd),
                "Env": ["PATH=/bin:/usr/bin"],
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": [_sha(raw)]},
        }
    )
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _sha(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _sha(layer),
                    "size": len(layer),
                }
            ],
            "annotations": {"org.opencontainers.image.revision": revision},
        }
    )
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for blob in (layer, config, manifest):
        (blobs / _sha(blob)[7:]).write_bytes(blob)
    (dest / "oci-layout").write_bytes(_json({"imageLayoutVersion": "1.0.0"}))
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": _sha(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (dest / "index.json").write_bytes(_json(index))
    bom = (
        sbom
        if sbom is not None
        else {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []}
    )
    (dest.parent / "sbom.cdx.json").write_text(json.dumps(bom), encoding="utf-8")
    return _sha(manifest)


LayoutFactory = Callable[..., tuple[Path, str]]


@pytest.fixture
def make_layout(tmp_path: Path) -> LayoutFactory:
    """``make_layout(files=…, **options) -> (layout dir, digest)`` in a fresh directory."""

    def make(
        files: Mapping[str, tuple[bytes, int]] | None = None, **options: Any
    ) -> tuple[Path, str]:
        base = tmp_path / f"image-{next(_names)}"
        layout = base / "oci"
        content = files if files is not None else {"etc/hello": (b"hello\n", 0o644)}
        return layout, build_layout(layout, content, **options)

    return make


def _host_runtime() -> dict[str, tuple[bytes, int]] | None:
    """/bin/sh (dash) and the shared objects it loads, copied from this host."""
    sh = Path("/bin/dash")
    ldd = shutil.which("ldd")
    if not sh.exists() or ldd is None:
        return None
    out = subprocess.run([ldd, str(sh)], capture_output=True, text=True, check=False).stdout
    files = {"bin/sh": (sh.read_bytes(), 0o755)}
    for path in re.findall(r"(/\S+\.so[.\d]*)", out):
        files[path.lstrip("/")] = (Path(path).resolve().read_bytes(), 0o755)
    return files


# Runs in the container: who am I, what can I do, which network interfaces exist.
PROBE = (
    'while read -r key a rest; do case "$key" in '
    'Uid:) echo "uid=$a";; Gid:) echo "gid=$a";; CapEff:) echo "capeff=$a";; '
    'NoNewPrivs:) echo "nnp=$a";; esac; done < /proc/self/status; '
    "if ( : > /probe ) 2>/dev/null; then echo rootfs=writable; else echo rootfs=readonly; fi; "
    'n=0; while read -r line; do n=$((n+1)); [ $n -gt 2 ] && echo "if=${line%%:*}"; done '
    "< /proc/net/dev; exit ${PROBE_EXIT:-0}"
)


@pytest.fixture(scope="session")
def host_runtime() -> dict[str, tuple[bytes, int]]:
    """The files of a runnable rootfs; fails (never skips) without root, runc or dash."""
    files = _host_runtime()
    if files is None or os.geteuid() != 0 or shutil.which("runc") is None:
        pytest.fail("running images needs root, runc (Debian package runc) and /bin/dash")
    return files


@pytest.fixture
def runnable_layout(
    make_layout: LayoutFactory, host_runtime: dict[str, tuple[bytes, int]]
) -> tuple[Path, str]:
    """A tiny image whose entrypoint is the confinement probe."""
    return make_layout(host_runtime, entrypoint=("/bin/sh", "-c", PROBE))


# -- registry --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """Debian's docker-registry on 127.0.0.1, started once per session by PID."""
    if find_binary() is None:
        pytest.fail("docker-registry is not installed (Debian package docker-registry)")
    with LocalRegistry(tmp_path_factory.mktemp("registry"), host="127.0.0.1") as running:
        yield running


@pytest.fixture
def registry(local_registry: LocalRegistry) -> Registry:
    """A client with quick retries."""
    return local_registry.client(Retry(attempts=2, backoff=0.01, timeout=30))


@pytest.fixture
def repo() -> str:
    """A repository name no other test uses."""
    return f"test/r{next(_names)}"


# -- keys ------------------------------------------------------------------------------------

SignerFactory = Callable[[str], Signer]


@pytest.fixture
def make_signer(tmp_path: Path) -> Iterator[SignerFactory]:
    """``make_signer(name)``: a fresh ECDSA P-256 key in a private file-backend directory."""
    directory = tmp_path / "secrets"
    directory.mkdir(mode=0o700)
    provider = FileSecrets(directory)
    made: list[Signer] = []

    def make(name: str) -> Signer:
        provider.create_signing_key(name)
        signer = open_signer(f"file:{name}", {"BOT4_SECRETS_DIR": str(directory)})
        made.append(signer)
        return signer

    yield make
    for signer in made:
        signer.close()


@pytest.fixture
def secrets_env(tmp_path: Path) -> dict[str, str]:
    """Environment for the file backend with a key named ``release``."""
    directory = tmp_path / "cli-secrets"
    directory.mkdir(mode=0o700)
    FileSecrets(directory).create_signing_key("release")
    return {"BOT4_SECRETS_DIR": str(directory)}


Handler = Callable[[str, str, dict[str, str]], tuple[int, dict[str, str], bytes]]


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], str]]:
    """``serve(answer)`` → ``127.0.0.1:PORT`` answering ``answer(method, path, headers)``."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(answer: Handler) -> str:
        class Fake(http.server.BaseHTTPRequestHandler):
            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                status, headers, body = answer(self.command, self.path, dict(self.headers))
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_HEAD = _reply  # noqa: N815 - http.server's names

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fake)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
