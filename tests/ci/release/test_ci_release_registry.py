"""The distribution API client against a real docker-registry: pushes keep the digest,
tampering is refused, failures are retried with back-off and reported in one line.

Misbehaving registries (5xx, redirects, garbage) are small HTTP servers on loopback."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ci.daemon import free_port
from ci.oci.descriptor import REF_NAME
from ci.oci.digest import sha256
from ci.oci.errors import OCIError
from ci.oci.layout import Layout
from ci.oci.manifest import Manifest
from ci.release import transfer
from ci.release.errors import RegistryError, ReleaseError
from ci.release.local_registry import LocalRegistry
from ci.release.reference import parse
from ci.release.registry import Registry, Retry, is_loopback

Reply = tuple[int, dict[str, str], bytes]
Handler = Callable[[str, str, dict[str, str]], Reply]


@pytest.fixture
def fake(serve: Callable[[Handler], str]) -> Callable[[Callable[[str, str], Reply]], str]:
    """``fake(answer)`` serves ``answer(method, path)`` on 127.0.0.1; returns HOST:PORT."""
    return lambda answer: serve(lambda method, path, _headers: answer(method, path))


def unique_files(tag: str) -> dict[str, tuple[bytes, int]]:
    return {"etc/unique": (f"{tag}\n".encode(), 0o644)}


def test_push_keeps_the_digest_and_pull_reproduces_the_layout(
    registry: Registry, repo: str, make_layout: Callable[..., tuple[Path, str]], tmp_path: Path
) -> None:
    src, digest = make_layout()
    ref = parse(f"{registry.host}/{repo}:0.1.0")
    assert transfer.push(registry, Layout(src), ref) == digest
    assert registry.resolve(repo, "0.1.0") == digest
    stored = registry.manifest(repo, digest)
    assert stored.data == Layout(src).blob(digest)  # the exact bytes
    # pushing again is idempotent (blobs already there)
    assert transfer.push(registry, Layout(src), ref) == digest

    pulled = transfer.pull(registry, ref.with_digest(digest), tmp_path / "pulled")
    assert pulled.digest == digest
    again = Layout(tmp_path / "pulled")
    assert again.select().digest == digest
    for blob in (src / "blobs" / "sha256").iterdir():
        assert again.blob(f"sha256:{blob.name}") == blob.read_bytes()


def test_push_by_digest_and_checks(
    registry: Registry, repo: str, make_layout: Callable[..., tuple[Path, str]], tmp_path: Path
) -> None:
    src, digest = make_layout()
    assert transfer.push(registry, Layout(src), parse(f"{registry.host}/{repo}@{digest}")) == digest
    other = "sha256:" + "0" * 64
    with pytest.raises(ReleaseError, match="the layout holds"):
        transfer.push(registry, Layout(src), parse(f"{registry.host}/{repo}@{other}"))
    with pytest.raises(ReleaseError, match="pull needs a digest"):
        transfer.pull(registry, parse(f"{registry.host}/{repo}:0.1.0"), tmp_path / "x")
    (tmp_path / "exists").mkdir()
    with pytest.raises(OCIError, match="already exists"):
        transfer.pull(registry, parse(f"{registry.host}/{repo}@{digest}"), tmp_path / "exists")


def test_an_image_index_is_pushed_with_its_children(
    registry: Registry, repo: str, make_layout: Callable[..., tuple[Path, str]], tmp_path: Path
) -> None:
    src, child = make_layout(unique_files("index-child"))
    child_bytes = Layout(src).blob(child)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": child,
                    "size": len(child_bytes),
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            ],
        }
    ).encode()
    (src / "blobs" / "sha256" / sha256(index)[7:]).write_bytes(index)
    (src / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "digest": sha256(index),
                        "size": len(index),
                        "annotations": {REF_NAME: "multi"},
                    }
                ],
            }
        )
    )
    ref = parse(f"{registry.host}/{repo}:multi")
    assert transfer.push(registry, Layout(src), ref, "multi") == sha256(index)
    assert registry.manifest(repo, child).data == child_bytes
    pulled = transfer.pull(registry, ref.with_digest(sha256(index)), tmp_path / "p")
    assert pulled.media_type == "application/vnd.oci.image.index.v1+json"
    assert Layout(tmp_path / "p").blob(child) == child_bytes


def _stored_blob(local: LocalRegistry, digest: str) -> Path:
    hex_ = digest[7:]
    path = (
        Path(local._workdir) / "storage/docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"
    )
    assert path.exists()
    return path


def test_a_tampered_manifest_or_blob_in_the_registry_is_refused(
    local_registry: LocalRegistry,
    registry: Registry,
    repo: str,
    make_layout: Callable[..., tuple[Path, str]],
    tmp_path: Path,
) -> None:
    src, digest = make_layout(unique_files("tamper"))
    ref = parse(f"{registry.host}/{repo}:t")
    transfer.push(registry, Layout(src), ref)
    manifest = registry.manifest(repo, digest).json()
    layer = manifest["layers"][0]["digest"]
    _stored_blob(local_registry, layer).write_bytes(b"evil layer")
    with pytest.raises(RegistryError, match=f"served blob {layer} .*tampered"):
        transfer.pull(registry, ref.with_digest(digest), tmp_path / "p1")
    assert not (tmp_path / "p1").exists()  # no partial layout
    stored = _stored_blob(local_registry, digest)
    stored.write_bytes(stored.read_bytes().replace(b'"schemaVersion":2', b'"schemaVersion":2 '))
    with pytest.raises(RegistryError, match=f"served manifest {digest} .*tampered"):
        registry.manifest(repo, digest)


def test_registry_down_is_retried_with_backoff_then_one_line() -> None:
    waits: list[float] = []
    down = Registry(
        f"127.0.0.1:{free_port()}", retry=Retry(attempts=3, backoff=0.5), sleep=waits.append
    )
    with pytest.raises(
        RegistryError, match=r"unreachable or failing after 3 attempts \(ConnectionRefusedError"
    ):
        down.ping()
    assert waits == [0.5, 1.0]


def test_an_interrupted_push_leaves_no_tag(
    registry: Registry, repo: str, make_layout: Callable[..., tuple[Path, str]]
) -> None:
    src, digest = make_layout(unique_files("interrupted"))
    manifest = json.loads(Layout(src).blob(digest))
    (src / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]).unlink()
    with pytest.raises(OCIError, match="missing"):
        transfer.push(registry, Layout(src), parse(f"{registry.host}/{repo}:half"))
    assert registry.find_manifest(repo, "half") is None
    assert registry.find_manifest(repo, digest) is None


def test_server_errors_are_retried_and_reported(fake: Callable[..., str]) -> None:
    calls: list[str] = []

    def flaky(method: str, path: str) -> Reply:
        calls.append(path)
        if len(calls) == 1:
            return 503, {}, b'{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}'
        return 200, {}, b"{}"

    waits: list[float] = []
    Registry(fake(flaky), retry=Retry(attempts=3, backoff=0.25), sleep=waits.append).ping()
    assert waits == [0.25]

    always = Registry(
        fake(lambda m, p: (500, {}, b"boom")),
        retry=Retry(attempts=2, backoff=0),
        sleep=waits.append,
    )
    with pytest.raises(RegistryError, match=r"after 2 attempts .*HTTP 500 boom"):
        always.ping()


def test_redirects_are_followed_for_reads_but_not_forever(
    fake: Callable[..., str],
    registry: Registry,
    repo: str,
    make_layout: Callable[..., tuple[Path, str]],
) -> None:
    src, digest = make_layout()
    transfer.push(registry, Layout(src), parse(f"{registry.host}/{repo}:r"))
    config = registry.manifest(repo, digest).json()["config"]["digest"]
    target = f"http://{registry.host}/v2/{repo}/blobs/{config}"
    hop = Registry(fake(lambda m, p: (307, {"Location": target}, b"")))
    assert sha256(hop.blob(repo, config)) == config

    loop = Registry(fake(lambda m, p: (302, {"Location": p}, b"")))
    with pytest.raises(RegistryError, match="more than 3 redirects"):
        loop.ping()


def test_refusals_carry_the_registry_message(
    registry: Registry, repo: str, fake: Callable[..., str]
) -> None:
    orphan = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + "1" * 64,
                "size": 2,
            },
            "layers": [],
        }
    ).encode()
    manifest = Manifest(orphan, "application/vnd.oci.image.manifest.v1+json", sha256(orphan))
    with pytest.raises(RegistryError, match=r"refused manifest .*HTTP 400 MANIFEST_BLOB_UNKNOWN"):
        registry.put_manifest(repo, "orphan", manifest)
    with pytest.raises(RegistryError, match="do not hash"):
        registry.put_manifest(
            repo, "x", Manifest(orphan, manifest.media_type, "sha256:" + "2" * 64)
        )
    with pytest.raises(RegistryError, match="no manifest nothing-here"):
        registry.manifest(repo, "nothing-here")
    with pytest.raises(RegistryError, match=r"refused GET blob .*HTTP 404 BLOB_UNKNOWN"):
        registry.blob(repo, "sha256:" + "3" * 64)

    def odd(method: str, path: str) -> Reply:
        if path.endswith("/manifests/garbage"):
            return 200, {"Content-Type": "text/plain"}, b"not json"
        if path.endswith("/manifests/huge"):
            return 200, {}, b" " * ((4 << 20) + 1)
        if path.endswith("/manifests/teapot"):
            return 418, {}, b"<html>teapot</html>"
        if method == "POST":
            return 202, {}, b""  # no Location: a broken upload
        if method == "HEAD":
            return 403, {}, b""
        if path.endswith("/manifests/rewritten"):
            return 201, {"Docker-Content-Digest": "sha256:" + "4" * 64}, b""
        return 200, {}, b""

    weird = Registry(fake(odd), retry=Retry(attempts=1))
    with pytest.raises(RegistryError, match="is not JSON"):
        weird.find_manifest("a", "garbage")
    with pytest.raises(RegistryError, match="larger than"):
        weird.find_manifest("a", "huge")
    with pytest.raises(RegistryError, match="HTTP 418 <html>teapot</html>"):
        weird.find_manifest("a", "teapot")
    with pytest.raises(RegistryError, match="refused HEAD blob"):
        weird.push_blob("a", b"data")
    with pytest.raises(RegistryError, match="rewrote the manifest"):
        weird.put_manifest("a", "rewritten", manifest)
    with pytest.raises(RegistryError, match="refused GET /v2/"):
        Registry(fake(lambda m, p: (404, {}, b"")), retry=Retry(attempts=1)).ping()

    def no_location(method: str, path: str) -> Reply:
        return (404, {}, b"") if method == "HEAD" else (202, {}, b"")

    with pytest.raises(RegistryError, match="starting an upload"):
        Registry(fake(no_location), retry=Retry(attempts=1)).push_blob("a", b"data")

    def upload_fails(method: str, path: str) -> Reply:
        if method == "HEAD":
            return 404, {}, b""
        if method == "POST":
            return 202, {"Location": "/v2/a/blobs/uploads/1?_state=x"}, b""
        return 400, {}, b'{"errors":[{"code":"DIGEST_INVALID","message":"bad"}]}'

    with pytest.raises(RegistryError, match="DIGEST_INVALID: bad"):
        Registry(fake(upload_fails), retry=Retry(attempts=1)).push_blob("a", b"data")


def test_scheme_follows_loopback_unless_told() -> None:
    assert is_loopback("localhost:5000") and is_loopback("127.0.0.1") and is_loopback("[::1]:5000")
    assert is_loopback("[::1]")
    assert not is_loopback("registry.example.org:443")
    assert Registry("localhost:5000").scheme == "http"
    assert Registry("registry.example.org").scheme == "https"
    assert Registry("registry.example.org", plain_http=True).scheme == "http"
    assert repr(Registry("localhost:1")) == "Registry(http://localhost:1)"
    assert sha256(b"") == "sha256:" + hashlib.sha256(b"").hexdigest()


def test_https_is_attempted_for_remote_hosts(fake: Callable[..., str]) -> None:
    host = fake(lambda m, p: (200, {}, b"{}"))
    tls = Registry(host, plain_http=False, retry=Retry(attempts=1, timeout=5))
    with pytest.raises(RegistryError, match="SSL"):
        tls.ping()


def test_local_registry_lifecycle(tmp_path: Path) -> None:
    with LocalRegistry(tmp_path / "r", host="127.0.0.1") as running:
        assert running.pid is not None
        running.client().ping()
    assert not running.pid
    running.stop()  # stopping twice is harmless


def test_local_registry_start_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ci.release import local_registry

    monkeypatch.setattr(local_registry, "BINARIES", (str(tmp_path / "absent"),))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RegistryError, match="docker-registry is not installed"):
        LocalRegistry(tmp_path / "r")
    failing = tmp_path / "fails"
    failing.write_text("#!/bin/sh\necho cannot listen >&2\nexit 1\n")
    failing.chmod(0o755)
    monkeypatch.setattr(local_registry, "BINARIES", (str(failing),))
    with pytest.raises(RegistryError, match=r"docker-registry did not start: .*cannot listen"):
        LocalRegistry(tmp_path / "r2", start_timeout=2).start()


def test_a_registry_that_ignores_sigterm_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ci.release import local_registry

    stubborn = tmp_path / "stubborn"
    stubborn.write_text("#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 0.05; done\n")
    stubborn.chmod(0o755)
    monkeypatch.setattr(local_registry, "BINARIES", (str(stubborn),))
    never_ready = LocalRegistry(tmp_path / "r", start_timeout=0.3, stop_timeout=0.2)
    with pytest.raises(RegistryError, match=r"did not start: timed out after 0\.3s"):
        never_ready.start()
    assert never_ready.pid is None
