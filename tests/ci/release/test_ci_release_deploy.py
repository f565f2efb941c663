"""Deploy = pin, verify, pull, scan, run hardened: a tiny image with a confinement probe
as its entrypoint runs under runc, and every refusal stops before anything runs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ci.image import bundle
from ci.image import scan as image_scan
from ci.oci.layout import Layout
from ci.release import attest, bot4_signer, deploy, run, sign, transfer, verify
from ci.release.errors import RefusedError, ReleaseError
from ci.release.keys import PublicKey, Signer
from ci.release.reference import Reference, parse
from ci.release.registry import Registry
from ci.release.trust_policy import DeployPolicy, Runtime, TrustedKey

REPO_ROOT = Path(__file__).resolve().parents[3]
TODAY = dt.date(2026, 11, 30)
SBOM = {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []}
PROVENANCE = {"runDetails": {"builder": {"id": "urn:builder:ci"}}}


def released(
    registry: Registry, repo: str, src: Path, signer: Signer, sbom: object = SBOM
) -> Reference:
    ref = parse(f"{registry.host}/{repo}:1")
    pinned = ref.with_digest(transfer.push(registry, Layout(src), ref))
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
    _, config = bundle.read_image(layout_dir)
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
    assert image_scan.default_dbs(REPO_ROOT, {}) == [
        REPO_ROOT / "ci/advisories/pypa-advisory-db.zip"
    ]
    assert image_scan.default_dbs(REPO_ROOT, {"BOT4_ADVISORY_DB": "/x"}) == [Path("/x")]
    assert image_scan.default_dbs(tmp_path, {}) == [tmp_path / image_scan.DEFAULT_DB]


LIBC = {
    "type": "library",
    "name": "libc6",
    "version": "2.36-9+deb12u9",
    "purl": "pkg:deb/debian/libc6@2.36-9%2Bdeb12u9?arch=amd64&distro=debian-12",
    "properties": [
        {"name": "debian:source", "value": "glibc"},
        {"name": "debian:source-version", "value": "2.36-9+deb12u9"},
        {"name": "debian:suite", "value": "bookworm"},
    ],
}


def packages_index(path: Path, version: str) -> Path:
    path.write_text(
        f"Package: libc6\nVersion: {version}\nArchitecture: amd64\nFilename: pool/libc6.deb\n"
        f"Size: 1\nSHA256: {'1' * 64}\n",
        encoding="utf-8",
    )
    return path


def test_a_finding_that_fails_the_gates_scan_refuses_the_deploy(
    registry: Registry,
    repo: str,
    make_layout: Callable[..., tuple[Path, str]],
    host_runtime: dict[str, tuple[bytes, int]],
    secrets_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The issue's case: a pending Debian security update fails ``scan`` — and the same
    image, signed and attested, is refused by ``deploy`` (exit 3) before anything runs;
    without the update both pass and the deploy runs."""
    from ci.image import cli as image_cli
    from ci.release import cli as release_cli

    for name, value in secrets_env.items():
        monkeypatch.setenv(name, value)
    signer = bot4_signer.open_signer("file:release", secrets_env)
    bom = dict(SBOM, components=[LIBC])
    src, _ = make_layout(host_runtime, entrypoint=("/bin/sh", "-c", "echo ran"), sbom=bom)
    pinned = released(registry, repo, src, signer, bom)
    (tmp_path / "release.pub").write_bytes(signer.public_pem)
    signer.close()
    db = tmp_path / "osv"
    db.mkdir()
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[deploy]\n[[deploy.keys]]\nname = "release"\npublic-key = "release.pub"\n'
        f'[deploy.scan]\nadvisory-db = ["{db}"]\n',
        encoding="utf-8",
    )
    common = ["--today", "2026-11-30", "--index"]
    scan_argv = ["--root", str(REPO_ROOT), "scan", "--layout", str(src), "--db", str(db)]
    deploy_argv = ["--root", str(REPO_ROOT), "deploy", str(pinned), "--policy", str(policy)]
    security = f"bookworm-security={packages_index(tmp_path / 'sec', '2.36-9+deb12u10')}"

    assert image_cli.main([*scan_argv, *common, security]) == 1
    gate = capsys.readouterr()
    assert "pending-security-update" in gate.out and "libc6 2.36-9+deb12u9" in gate.out
    workdir = tmp_path / "work"
    workdir.mkdir()
    assert release_cli.main([*deploy_argv, "--workdir", str(workdir), *common, security]) == 3
    refused = capsys.readouterr()
    assert refused.err.strip().splitlines()[-1] == (
        "ci.release: error: refused: scan failed: 1 finding(s) at or above HIGH, e.g. HIGH "
        "libc6 2.36-9+deb12u9: bookworm-security has 2.36-9+deb12u10; "
        "run scripts/gate -s refresh"
    )
    assert "run:" not in refused.err and refused.out == ""  # nothing ran
    assert list(workdir.iterdir()) == []

    current = f"bookworm-security={packages_index(tmp_path / 'cur', '2.36-9+deb12u9')}"
    assert image_cli.main([*scan_argv, *common, current]) == 0
    assert "image scan: passed (0 finding(s) below HIGH or ignored)" in capsys.readouterr().out
    assert release_cli.main([*deploy_argv, "--workdir", str(workdir), *common, current]) == 0
    ran = capsys.readouterr()
    assert "scan: ok (passed (0 finding(s) below HIGH or ignored))" in ran.err
    assert ran.out.splitlines() == ["ran", f"deployed {pinned}"]


def test_deploy_scans_with_the_gates_function(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Not a copy: ``verify.scan`` is ``scan_image`` with the deploy policy's choices."""
    seen: list[dict[str, object]] = []

    def spy(*args: object, **kwargs: object) -> image_scan.Report:
        seen.append({"args": args, **kwargs})
        return image_scan.Report([], [], "HIGH")

    monkeypatch.setattr(image_scan, "scan_image", spy)
    policy = DeployPolicy((), advisory_db=(Path("db"),), scan_policy=Path("s.toml"))
    verify.scan(SBOM, tmp_path, policy, REPO_ROOT, TODAY, {}, ["x=y"])
    assert seen == [
        {
            "args": (REPO_ROOT, tmp_path, SBOM, TODAY),
            "environ": {},
            "dbs": (Path("db"),),
            "policy_file": Path("s.toml"),
            "index": ["x=y"],
        }
    ]


def test_run_needs_an_entrypoint(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="no entrypoint or command"):
        run.command({"config": {}}, Runtime())
    assert run.command({"config": {"Entrypoint": ["/a"], "Cmd": ["b"]}}, Runtime()) == ["/a", "b"]
    assert run.command({}, Runtime(command=("/x",))) == ["/x"]
