"""Deploy = pin, verify, pull, scan, run hardened: a tiny image with a confinement probe
as its entrypoint runs under runc, and every refusal stops before anything runs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ci.image import smoke
from ci.release import attest, deploy, layout, run, sign, verify
from ci.release.errors import RefusedError, ReleaseError
from ci.release.keys import PublicKey, Signer
from ci.release.policy import DeployPolicy, Runtime, TrustedKey
from ci.release.reference import Reference, parse
from ci.release.registry import Registry

REPO_ROOT = Path(__file__).resolve().parents[3]
TODAY = dt.date(2026, 11, 30)
SBOM = {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []}
PROVENANCE = {"runDetails": {"builder": {"id": "urn:builder:ci"}}}


def released(
    registry: Registry, repo: str, src: Path, signer: Signer, sbom: object = SBOM
) -> Reference:
    ref = parse(f"{registry.host}/{repo}:1")
    pinned = ref.with_digest(layout.push(registry, layout.Layout(src), ref))
    sign.sign(registry, pinned, signer)
    attest.attest(registry, pinned, signer, attest.SBOM, sbom)  # type: ignore[arg-type]
    attest.attest(registry, pinned, signer, attest.PROVENANCE, PROVENANCE)
    return pinned


def policy_for(signer: Signer, **changes: object) -> DeployPolicy:
    base = DeployPolicy((TrustedKey("release", PublicKey(signer.public_pem)),))
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def probe(stdout: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        key, _, value = line.partition("=")
        out.setdefault(key, []).append(value)
    return out


def test_deploy_runs_the_verified_image_hardened(
    registry: Registry,
    repo: str,
    runnable_layout: tuple[Path, str],
    make_signer: Callable[[str], Signer],
    tmp_path: Path,
) -> None:
    signer = make_signer("release")
    pinned = released(registry, repo, runnable_layout[0], signer)
    said: list[str] = []
    done = deploy.deploy(
        registry, pinned, policy_for(signer), tmp_path, REPO_ROOT, TODAY, said.append
    )
    assert done.outcome.returncode == 0
    seen = probe(done.outcome.stdout)
    assert seen["uid"] == ["65532"] and seen["gid"] == ["65532"]
    assert seen["capeff"] == ["0000000000000000"]
    assert seen["nnp"] == ["1"]
    assert seen["rootfs"] == ["readonly"]
    assert seen["if"] == ["lo"]  # a new, empty network namespace
    assert said[0].startswith("signature: ok, key 'release'")
    assert said[-1].startswith("run: /bin/sh -c")
    assert done.findings == 0


def test_policy_user_network_and_command_apply(
    registry: Registry,
    repo: str,
    runnable_layout: tuple[Path, str],
    make_signer: Callable[[str], Signer],
    tmp_path: Path,
) -> None:
    signer = make_signer("release")
    pinned = released(registry, repo, runnable_layout[0], signer)
    runtime = Runtime(
        user=(4242, 4343), network="host", command=("/bin/sh", "-c", 'echo "custom=$0"')
    )
    done = deploy.deploy(
        registry,
        pinned,
        policy_for(signer, runtime=runtime),
        tmp_path,
        REPO_ROOT,
        TODAY,
        lambda _: None,
    )
    assert done.outcome.stdout.strip() == "custom=/bin/sh"
    layout_dir = tmp_path / "image"
    _, config = smoke.read_image(layout_dir)
    spec = run.hardened_spec(
        {
            "process": {},
            "mounts": [],
            "linux": {"namespaces": [{"type": "network"}, {"type": "pid"}]},
        },
        config,
        ["x"],
        runtime,
    )
    assert spec["process"]["user"] == {"uid": 4242, "gid": 4343}
    assert {"type": "network"} not in spec["linux"]["namespaces"]
    assert spec["root"] == {"path": "rootfs", "readonly": True}


def test_a_failing_container_fails_the_deploy(
    registry: Registry,
    repo: str,
    make_layout: Callable[..., tuple[Path, str]],
    host_runtime: dict[str, tuple[bytes, int]],
    make_signer: Callable[[str], Signer],
    tmp_path: Path,
) -> None:
    src, _ = make_layout(host_runtime, entrypoint=("/bin/sh", "-c", "echo broken >&2; exit 3"))
    signer = make_signer("release")
    pinned = released(registry, repo, src, signer)
    with pytest.raises(ReleaseError, match="exited 3 in the container: broken"):
        deploy.deploy(
            registry, pinned, policy_for(signer), tmp_path, REPO_ROOT, TODAY, lambda _: None
        )
    slow = Runtime(command=("/bin/sh", "-c", "while :; do :; done"), timeout=0.5)
    with pytest.raises(ReleaseError, match=r"did not finish within 0.5s"):
        deploy.deploy(
            registry,
            pinned,
            policy_for(signer, runtime=slow),
            tmp_path / "again",
            REPO_ROOT,
            TODAY,
            lambda _: None,
        )


def test_tag_only_is_refused_with_the_digest_to_pin(
    registry: Registry,
    repo: str,
    make_layout: Callable[..., tuple[Path, str]],
    make_signer: Callable[[str], Signer],
    tmp_path: Path,
) -> None:
    src, digest = make_layout({"etc/tagged": (b"t\n", 0o644)})
    signer = make_signer("release")
    pinned = released(registry, repo, src, signer)
    tag = parse(f"{registry.host}/{repo}:1")
    with pytest.raises(
        RefusedError,
        match=f"is a tag, not a digest; deploy the digest it points at now: {tag.name}@{digest}$",
    ):
        deploy.deploy(registry, tag, policy_for(signer), tmp_path, REPO_ROOT, TODAY, lambda _: None)
    said: list[str] = []
    assert deploy.pin(registry, tag, True, said.append) == pinned
    assert "deploying tag" in said[0]
    assert not (tmp_path / "image").exists()  # nothing pulled, nothing ran


def test_the_scan_of_the_attested_sbom_can_refuse(
    registry: Registry,
    repo: str,
    make_layout: Callable[..., tuple[Path, str]],
    make_signer: Callable[[str], Signer],
    tmp_path: Path,
) -> None:
    signer = make_signer("release")
    db = tmp_path / "osv"
    db.mkdir()
    (db / "TEST-1.json").write_text(
        json.dumps(
            {
                "id": "TEST-2026-1",
                "summary": "remote code execution in examplepkg",
                "modified": "2026-11-01T00:00:00Z",
                "severity": [
                    {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}
                ],
                "affected": [
                    {
                        "package": {"ecosystem": "PyPI", "name": "examplepkg"},
                        "ranges": [
                            {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}
                        ],
                    }
                ],
            }
        )
    )
    vulnerable = dict(
        SBOM,
        components=[
            {
                "type": "library",
                "name": "examplepkg",
                "version": "1.0",
                "purl": "pkg:pypi/examplepkg@1.0",
            }
        ],
    )
    src, _ = make_layout({"etc/scan": (b"s\n", 0o644)})
    pinned = released(registry, repo, src, signer, vulnerable)
    policy = policy_for(signer, advisory_db=(db,))
    with pytest.raises(
        RefusedError,
        match=r"scan failed: 1 finding\(s\) at or above HIGH, "
        r"e.g. CRITICAL examplepkg 1.0: TEST-2026-1",
    ):
        deploy.deploy(registry, pinned, policy, tmp_path / "w", REPO_ROOT, TODAY, lambda _: None)

    setuid, _ = make_layout({"bin/su": (b"x", 0o4755)}, user="0")
    bad = released(registry, f"{repo}-root", setuid, signer)
    with pytest.raises(RefusedError, match="scan failed: 2 finding"):
        deploy.deploy(registry, bad, policy, tmp_path / "w2", REPO_ROOT, TODAY, lambda _: None)

    expired = tmp_path / "scan.toml"
    expired.write_text(
        '[image-scan]\n[[image-scan.ignore]]\nid = "X"\nreason = "r"\nexpires = 2020-01-01\n'
    )
    with pytest.raises(RefusedError, match="scan failed: ignore of X expired"):
        verify.scan(
            SBOM,
            tmp_path / "w2" / "image",
            policy_for(signer, scan_policy=expired),
            REPO_ROOT,
            TODAY,
        )
    with pytest.raises(RefusedError, match=r"advisory database .*nowhere not found"):
        verify.scan(
            SBOM,
            tmp_path / "w2" / "image",
            policy_for(signer, advisory_db=(Path("nowhere"),)),
            REPO_ROOT,
            TODAY,
        )


def test_advisory_database_selection(tmp_path: Path) -> None:
    policy = DeployPolicy(())
    assert verify.advisory_dbs(policy, REPO_ROOT, {}) == [
        REPO_ROOT / "ci/advisories/pypa-advisory-db.zip"
    ]
    assert verify.advisory_dbs(policy, REPO_ROOT, {"BOT4_ADVISORY_DB": "/x"}) == [Path("/x")]
    assert verify.advisory_dbs(policy, tmp_path, {}) == [tmp_path / verify.DEFAULT_DB]
    chosen = dataclasses.replace(policy, advisory_db=(Path("/abs"), Path("rel")))
    assert verify.advisory_dbs(chosen, tmp_path, {}) == [Path("/abs"), tmp_path / "rel"]
    assert (
        verify.sbom_release(
            {"components": [{"purl": "pkg:deb/debian/x@1?arch=amd64&distro=debian-12"}]}
        )
        == "12"
    )
    assert verify.sbom_release({"components": [{"purl": "pkg:pypi/x@1"}]}) == ""


def test_run_needs_an_entrypoint(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="no entrypoint or command"):
        run.command({"config": {}}, Runtime())
    assert run.command({"config": {"Entrypoint": ["/a"], "Cmd": ["b"]}}, Runtime()) == ["/a", "b"]
    assert run.command({}, Runtime(command=("/x",))) == ["/x"]
