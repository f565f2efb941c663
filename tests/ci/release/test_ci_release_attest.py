"""In-toto statements and SLSA provenance of a real git repository."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from ci.release import attest
from ci.release.errors import ReleaseError

DIGEST = "sha256:" + "c" * 64


def test_statement_is_in_toto_v1() -> None:
    doc = json.loads(attest.statement("localhost:5000/bot4", DIGEST, attest.SBOM, {"a": 1}))
    assert doc == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "localhost:5000/bot4", "digest": {"sha256": "c" * 64}}],
        "predicateType": "https://cyclonedx.org/bom",
        "predicate": {"a": 1},
    }


def test_provenance_names_the_commit_and_every_lock(git_repo: Path) -> None:
    (git_repo / "image.lock").write_text("lock\n")
    (git_repo / "locks").mkdir()
    (git_repo / "locks" / "runtime.txt").write_text("numpy==2\n")
    (git_repo / "pyproject.toml").write_text('[project]\nname = "x"\n')
    subprocess.run(["git", "-C", str(git_repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(git_repo), "commit", "-qm", "c"], check=True)
    commit = subprocess.run(
        ["git", "-C", str(git_repo), "rev-parse", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (git_repo / "image.lock").write_text("edited, not committed\n")

    prov = attest.provenance(
        git_repo, "HEAD", "urn:builder:test", {"out": "build/image"}, started="2026-11-30T00:00:00Z"
    )
    definition = prov["buildDefinition"]
    assert definition["buildType"] == attest.BUILD_TYPE
    assert definition["externalParameters"] == {
        "source": "",  # no [project.urls] in this commit, and never the clone's path
        "revision": commit,
        "out": "build/image",
    }
    assert str(git_repo) not in json.dumps(prov)
    deps = {d.get("name") or d["uri"]: d["digest"] for d in definition["resolvedDependencies"]}
    assert deps["source"] == {"gitCommit": commit}
    assert deps["image.lock"] == {"sha256": hashlib.sha256(b"lock\n").hexdigest()}  # as committed
    assert deps["locks/runtime.txt"] == {"sha256": hashlib.sha256(b"numpy==2\n").hexdigest()}
    assert "toolchain.lock" not in deps
    assert prov["runDetails"] == {
        "builder": {"id": "urn:builder:test"},
        "metadata": {"startedOn": "2026-11-30T00:00:00Z"},
    }
    # A remote is never read; the commit's [project.urls] Repository is the source.
    subprocess.run(
        ["git", "-C", str(git_repo), "remote", "add", "origin", "https://example.org/fork.git"],
        check=True,
    )
    (git_repo / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[project.urls]\nRepository = "https://example.org/bot4"\n'
    )
    subprocess.run(["git", "-C", str(git_repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(git_repo), "commit", "-qm", "urls"], check=True)
    named = attest.provenance(git_repo, "HEAD", "urn:b", {})
    definition = named["buildDefinition"]
    assert definition["externalParameters"]["source"] == "https://example.org/bot4"
    assert definition["resolvedDependencies"][0]["uri"].startswith("git+https://example.org/bot4@")
    assert "metadata" not in named["runDetails"]


def test_provenance_of_an_unknown_commit_is_one_line(git_repo: Path, tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match=r"git rev-parse .* failed"):
        attest.provenance(git_repo, "no-such-rev", "urn:b", {})
