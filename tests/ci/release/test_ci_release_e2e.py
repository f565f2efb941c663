"""``deploy-check`` end to end with a tiny runnable image (the nox session runs it on the
real engine image): push, every refusal, the hardened run, and GPG simple signing."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ci.release import cli, e2e, trust_policy
from ci.release.errors import ReleaseError

REPO_ROOT = Path(__file__).resolve().parents[3]


def head() -> str:
    return subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_deploy_check_passes_on_a_runnable_image(
    make_layout: Callable[..., tuple[Path, str]],
    host_runtime: dict[str, tuple[bytes, int]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = [tool for tool in ("skopeo", "gpg") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"deploy-check needs {' and '.join(missing)} (apt-get install skopeo gnupg)")
    src, digest = make_layout(
        host_runtime, entrypoint=("/bin/sh", "-c", "echo ok"), revision=head()
    )
    args = ["--root", str(REPO_ROOT), "deploy-check", "--layout", str(src)]
    assert cli.main([*args, "--policy", str(REPO_ROOT / trust_policy.POLICY_FILE)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"ok   push keeps the digest {digest}"
    checks = [line.split(":", 1)[0] for line in lines[1:]]
    attacks = [
        "tampered layer (deploy)",
        "tampered layer (verify)",
        "tampered manifest (deploy)",
        "tampered manifest (verify)",
        "tag moved to a crafted image (deploy TAG)",
        "tag moved to a crafted image (deploy --allow-tag TAG)",
        "signature copied onto another digest",
        "attestation about another digest",
        "another repository's signature",
    ]
    assert checks == [
        "ok   unsigned image",
        "ok   signed by an untrusted key",
        "ok   signed by a revoked key",
        "ok   provenance missing",
        "ok   tag-only reference",
        *(f"ok   {attack}" for attack in attacks),
        "ok   deploy bot4/engine@sha256",
        "ok   GPG simple signature by " + lines[-2].split()[5] + " accepted by skopeo's policy",
        "ok   GPG signature checked against a wrong key",
    ]
    for line in lines[6 : 6 + len(attacks)]:
        assert ": exit 3: refused: " in line
    assert "exited 0 under runc" in lines[-3]
    assert "accepted by skopeo's policy" in lines[-2]


def test_an_attack_that_is_not_refused_fails_the_check(tmp_path: Path) -> None:
    """``_cli_refusal`` runs the real entry point: exit 2 (usage) or 0 is not a refusal."""
    with pytest.raises(ReleaseError, match="exit 2, expected 3"):
        e2e._cli_refusal("bad usage", ["verify", "not a ref"], "x", REPO_ROOT)
    with pytest.raises(ReleaseError, match="exit 0, expected 3"):
        e2e._cli_refusal("accepted", ["--help"], "x", REPO_ROOT)


def test_deploy_check_reports_a_wrong_expectation() -> None:
    with pytest.raises(ReleaseError, match="was accepted; it must be refused"):
        e2e._expect_refusal("thing", lambda: None, "x")
    from ci.release.errors import RefusedError

    def refuse() -> None:
        raise RefusedError("refused: for a reason")

    with pytest.raises(ReleaseError, match="refused for another reason"):
        e2e._expect_refusal("thing", refuse, "other")
    assert e2e._expect_refusal("thing", refuse, "reason") == "ok   thing: refused: for a reason"


def test_deploy_check_needs_a_tagged_layout(
    make_layout: Callable[..., tuple[Path, str]], tmp_path: Path
) -> None:
    import json

    src, _ = make_layout()
    index = json.loads((src / "index.json").read_text())
    index["manifests"][0]["annotations"] = {}
    (src / "index.json").write_text(json.dumps(index))
    with pytest.raises(ReleaseError, match="names no tag for skopeo"):
        list(e2e._gpg_checks(src, tmp_path, "localhost:1", None))  # type: ignore[arg-type]
