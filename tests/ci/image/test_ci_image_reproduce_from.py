"""``reproduce --from``: a release's inputs pushed as one OCI artifact to a real registry
on loopback, then the commit rebuilt from that artifact alone — an empty download cache,
no package index (pip), no Debian archive (an unreachable mirror) — to the same digest.
Here rather than under tests/ci/release: it needs the fixture project (``locked``)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot4.infrastructure.secrets.file import FileSecrets
from ci.image import lock_format
from ci.release import attest, cosign
from ci.release.local_registry import LocalRegistry, find_binary
from ci.release.registry import Registry


def _run(module: str, *argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *argv], env=env, capture_output=True, text=True, check=False
    )


def test_a_release_rebuilds_from_its_inputs_artifact_alone(locked: Any, tmp_path: Path) -> None:
    if find_binary() is None:
        pytest.fail("docker-registry is not installed (Debian package docker-registry)")
    env = {**os.environ, "TMPDIR": str(tmp_path), "PIP_NO_INDEX": "1"}
    base = ["--root", str(locked.root)]
    built = _run("ci.image", *base, "--cache", str(locked.cache), "build",
                 "--out", str(tmp_path / "out"), env=env)  # fmt: skip
    assert built.returncode == 0, built.stderr
    digest = built.stdout.strip().splitlines()[-1]
    with LocalRegistry(tmp_path / "registry", host="127.0.0.1") as registry:
        pushed = _run("ci.release", *base, "push-inputs", f"{registry.host}/bot4/inputs:0.1.0",
                      "--cache", str(locked.cache), env=env)  # fmt: skip
        assert pushed.returncode == 0, pushed.stderr
        ref = pushed.stdout.strip()
        assert ref.startswith(f"{registry.host}/bot4/inputs@sha256:")
        empty = tmp_path / "empty-cache"
        offline = {
            **env,
            "BOT4_DEBIAN_MIRROR": "http://127.0.0.1:9/debian",
            "BOT4_DEBIAN_SECURITY_MIRROR": "http://127.0.0.1:9/debian-security",
            "PIP_FIND_LINKS": "",
        }
        argv = [*base, "--cache", str(empty), "reproduce", "--from", ref, "--digest", digest]
        rebuilt = _run("ci.image", *argv, env=offline)
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert rebuilt.stdout.strip().splitlines()[-1] == digest
        assert "building with no archive or index" in rebuilt.stderr
        assert not empty.exists()  # the named cache was never needed
        # a tag alone is refused before anything is fetched
        tag_only = _run("ci.image", *argv[:-4], "--from", ref.split("@")[0], "--digest", digest,
                        env=offline)  # fmt: skip
        assert tag_only.returncode == 1
        assert tag_only.stderr.strip().splitlines() == [
            f"ci.image: error: --from needs a digest (REF@sha256:…), not a tag: {ref.split('@')[0]}"
        ]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bot4-tmp")] == []


def _provenance(registry: Registry, repo: str, digest: str) -> dict[str, Any]:
    """The SLSA provenance predicate attached to ``digest`` (read back from the registry)."""
    att = registry.manifest(repo, cosign.tag_for(digest, "att")).json()
    for layer in att["layers"]:
        envelope = json.loads(registry.blob(repo, layer["digest"]))
        body = json.loads(base64.b64decode(envelope["payload"]))
        if body["predicateType"] == attest.PROVENANCE:
            return dict(body["predicate"])
    raise AssertionError("no provenance attestation")


def test_a_release_pushes_its_inputs_and_its_provenance_names_them(
    locked: Any, tmp_path: Path
) -> None:
    """``release --inputs``: the artifact is pushed beside the image (TAG-inputs), the
    signed provenance names it by digest, and that reference rebuilds the image."""
    if find_binary() is None:
        pytest.fail("docker-registry is not installed (Debian package docker-registry)")
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    FileSecrets(secrets).create_signing_key("release")
    env = {**os.environ, "TMPDIR": str(tmp_path), "PIP_NO_INDEX": "1"}
    env["BOT4_SECRETS_DIR"] = str(secrets)
    base = ["--root", str(locked.root)]
    out = tmp_path / "out"
    built = _run("ci.image", *base, "--cache", str(locked.cache), "build", "--out", str(out),
                 env=env)  # fmt: skip
    assert built.returncode == 0, built.stderr
    digest = built.stdout.strip().splitlines()[-1]
    with LocalRegistry(tmp_path / "registry", host="127.0.0.1") as running:
        image = f"{running.host}/bot4/engine"
        released = _run("ci.release", *base, "release", str(out / "oci"), f"{image}:0.1.0",
                        "--key", "file:release", "--inputs", "--cache", str(locked.cache),
                        env=env)  # fmt: skip
        assert released.returncode == 0, released.stderr
        assert released.stdout.strip() == f"{image}@{digest}"
        registry = running.client()
        inputs_digest = registry.resolve("bot4/engine", "0.1.0-inputs")
        deps = _provenance(registry, "bot4/engine", digest)["buildDefinition"]
        named = [d for d in deps["resolvedDependencies"] if d.get("name") == "image-inputs"]
        assert named == [
            {
                "uri": f"oci://{image}",
                "name": "image-inputs",
                "digest": {"sha256": inputs_digest.removeprefix("sha256:")},
            }
        ]
        offline = {**env, "BOT4_DEBIAN_MIRROR": "http://127.0.0.1:9/debian", "PIP_FIND_LINKS": ""}
        from_ref = f"{image}@{inputs_digest}"
        argv = [*base, "--cache", str(tmp_path / "empty"), "reproduce", "--from", from_ref]
        rebuilt = _run("ci.image", *argv, "--digest", digest, env=offline)
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert rebuilt.stdout.strip().splitlines()[-1] == digest


def test_a_tampered_cache_entry_is_not_pushed_as_an_input(locked: Any, tmp_path: Path) -> None:
    """The first input's cache entry holds other bytes: ``push-inputs`` refuses it in one
    line before any registry is contacted (the port is closed) and evicts the entry."""
    cache = tmp_path / "cache"
    shutil.copytree(locked.cache, cache)
    first = lock_format.read_lock(locked.root / "image.lock").debs[0]
    entry = cache / "sha256" / first.sha256
    entry.write_bytes(b"!<arch>\nswapped\n")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    pushed = _run("ci.release", "--root", str(locked.root), "push-inputs",
                  "127.0.0.1:9/bot4/inputs:0.1.0", "--cache", str(cache), env=env)  # fmt: skip
    assert pushed.returncode == 1, pushed.stderr
    assert pushed.stdout == ""
    assert len(pushed.stderr.strip().splitlines()) == 1 and "Traceback" not in pushed.stderr
    assert "changed after its sha256 was checked; not using it" in pushed.stderr
    assert not entry.exists()
