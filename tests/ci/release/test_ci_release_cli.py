"""``python -m ci.release``: each command end to end through ``main`` against the real
registry; failures are one line on stderr with exit 1 (broken) or 3 (refused)."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ci.release import cli, cosign
from ci.release.registry import Registry

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, secrets_env: dict[str, str]) -> dict[str, str]:
    for name, value in secrets_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BOT4_SECRETS", raising=False)
    monkeypatch.delenv("BOT4_BUILDER_ID", raising=False)
    return secrets_env


def write_policy(tmp_path: Path, pem: str, *extra: str) -> Path:
    (tmp_path / "release.pub").write_text(pem)
    policy = tmp_path / "policy.toml"
    policy.write_text(
        "\n".join(
            [
                "[deploy]",
                *extra,
                "[[deploy.keys]]",
                'name = "release"',
                'public-key = "release.pub"',
                "[deploy.scan]",
                f'advisory-db = ["{tmp_path / "osv"}"]',
            ]
        )
    )
    (tmp_path / "osv").mkdir(exist_ok=True)
    return policy


def test_release_then_verify_then_deploy(
    env: dict[str, str],
    registry: Registry,
    repo: str,
    runnable_layout: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src, digest = runnable_layout
    ref = f"{registry.host}/{repo}:1.0"
    pinned = f"{registry.host}/{repo}@{digest}"
    assert (
        cli.main(
            [
                "--root",
                str(REPO_ROOT),
                "release",
                str(src),
                ref,
                "--key",
                "file:release",
                "--commit",
                "HEAD",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    assert out.out.strip() == pinned
    assert "signed" in out.err and "attested SLSA provenance" in out.err

    assert cli.main(["public-key", "--key", "file:release"]) == 0
    pem = capsys.readouterr().out
    policy = write_policy(tmp_path, pem)
    assert cli.main(["verify", pinned, "--policy", str(policy), "--today", "2026-11-30"]) == 0
    assert "signed by 'release'" in capsys.readouterr().out

    assert cli.main(["deploy", ref, "--policy", str(policy)]) == 3
    err = capsys.readouterr().err.strip()
    assert (
        err == f"ci.release: error: refused: {ref} is a tag, not a digest; "
        f"deploy the digest it points at now: {pinned}"
    )
    assert len(err.splitlines()) == 1

    assert (
        cli.main(
            [
                "--root",
                str(REPO_ROOT),
                "deploy",
                pinned,
                "--policy",
                str(policy),
                "--workdir",
                str(tmp_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    assert "uid=65532" in out.out and out.out.strip().endswith(f"deployed {pinned}")
    assert "scan: ok" in out.err


def test_push_pull_resolve_sign_attest(
    env: dict[str, str],
    registry: Registry,
    repo: str,
    make_layout: Callable[..., tuple[Path, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src, digest = make_layout({"etc/cli": (b"cli\n", 0o644)})
    ref = f"{registry.host}/{repo}:2"
    pinned = f"{registry.host}/{repo}@{digest}"
    assert cli.main(["push", str(src), ref]) == 0
    assert capsys.readouterr().out.strip() == digest
    assert cli.main(["resolve", ref]) == 0
    assert capsys.readouterr().out.strip() == pinned
    assert cli.main(["pull", pinned, str(tmp_path / "pulled")]) == 0
    assert (tmp_path / "pulled" / "index.json").exists()
    capsys.readouterr()

    assert cli.main(["sign", pinned, "--key", "file:release", "-a", "commit=abc"]) == 0
    layers = cosign.attached(registry, repo, digest, "sig")
    assert cosign.parse_payload(layers[0].data).optional == {"commit": "abc"}

    predicate = tmp_path / "pred.json"
    predicate.write_text('{"tests": "passed"}')
    sbom = src.parent / "sbom.cdx.json"
    assert cli.main(
        ["--root", str(REPO_ROOT), "attest", pinned, "--key", "file:release", "--sbom", str(sbom),
         "--provenance", "--commit", "HEAD", "--builder-id", "urn:b", "--param", "k=v",
         "--predicate", str(predicate), "--predicate-type", "https://example.org/tests/v1"]
    ) == 0  # fmt: skip
    kinds = [
        layer.annotations[cosign.PREDICATE_ANNOTATION]
        for layer in cosign.attached(registry, repo, digest, "att")
    ]
    assert kinds == [
        "https://cyclonedx.org/bom",
        "https://slsa.dev/provenance/v1",
        "https://example.org/tests/v1",
    ]
    capsys.readouterr()

    policy = write_policy(
        tmp_path, registry_pem(capsys), 'require = ["https://example.org/tests/v1"]'
    )
    assert cli.main(["verify", ref, "--allow-tag", "--policy", str(policy)]) == 0
    assert "warning: deploying tag" in capsys.readouterr().err


def test_deploy_workdir_must_exist(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked before the registry is contacted: one line, exit 2, a remedy that works."""
    missing = tmp_path / "no" / "such"
    argv = ["deploy", "localhost:1/a@sha256:" + "a" * 64, "--workdir", str(missing)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        f"ci.release: error: --workdir {missing}: no such directory "
        f"(create it first: mkdir -p {missing})\n"
    )
    remedy = err.rpartition("create it first: ")[2].rstrip(")\n")
    subprocess.run(remedy.split(), check=True)
    assert missing.is_dir()


def test_exit_codes_through_the_module(tmp_path: Path) -> None:
    """The table, as a user meets it: python -m ci.release, no traceback on any bad path."""
    cases = [
        ([], 2),  # argparse: a command is required
        (["verify", "not a reference"], 2),
        (["pull", "localhost:1/a:tag", str(tmp_path / "x")], 2),
        (["verify", "localhost:1/a@sha256:" + "a" * 64, "--policy", str(tmp_path / "no.toml")], 1),
        (["push", str(tmp_path / "nolayout"), "localhost:1/a:1"], 1),
    ]
    for argv, code in cases:
        done = subprocess.run(
            [sys.executable, "-m", "ci.release", "--retries", "1", *argv],
            cwd=REPO_ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == code, (argv, done.stderr)
        assert "Traceback" not in done.stderr
        errors = [ln for ln in done.stderr.splitlines() if " error: " in ln]
        assert len(errors) == 1 and done.stderr.strip().endswith(errors[0])  # after usage


def registry_pem(capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(["public-key", "--key", "file:release"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sign", "localhost:5000/a:tag", "--key", "file:release"], "is a tag; name the digest"),
        (
            ["attest", "localhost:5000/a@sha256:" + "a" * 64, "--key", "file:release"],
            "nothing to attest",
        ),
        (["verify", "nohost/a@sha256:" + "a" * 64], "explicit registry host"),
        (
            ["verify", "localhost:5000/a@sha256:" + "a" * 64, "--today", "30.11.2026"],
            "--today expects",
        ),
        (
            [
                "sign",
                "localhost:5000/a@sha256:" + "a" * 64,
                "--key",
                "file:release",
                "-a",
                "novalue",
            ],
            "-a expects KEY=VALUE",
        ),
    ],
)
def test_bad_usage_is_one_line_exit_2(
    env: dict[str, str], argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ci.release: error: ") and message in err
    assert len(err.splitlines()) == 1


def test_attest_reads_json_carefully(
    env: dict[str, str],
    registry: Registry,
    repo: str,
    make_layout: Callable[..., tuple[Path, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src, digest = make_layout({"etc/json": (b"j\n", 0o644)})
    assert cli.main(["push", str(src), f"{registry.host}/{repo}:j"]) == 0
    pinned = f"{registry.host}/{repo}@{digest}"
    (tmp_path / "list.json").write_text("[]")
    for extra, message, code in (
        (
            ["--predicate", str(tmp_path / "list.json"), "--predicate-type", "urn:x"],
            "is not a JSON object",
            1,
        ),
        (["--predicate", str(tmp_path / "list.json")], "--predicate needs --predicate-type", 2),
        (["--sbom", str(tmp_path / "absent.json")], "cannot read SBOM", 1),
    ):
        assert cli.main(["attest", pinned, "--key", "file:release", *extra]) == code
        assert message in capsys.readouterr().err
    # provenance without --commit takes the image's revision annotation (an unknown commit here)
    assert (
        cli.main(
            ["--root", str(REPO_ROOT), "attest", pinned, "--key", "file:release", "--provenance"]
        )
        == 1
    )
    assert (
        "git rev-parse --verify 0000000000000000000000000000000000000000^{commit} failed"
        in capsys.readouterr().err
    )


def test_gpg_commands(
    registry: Registry, repo: str, make_layout: Callable[..., tuple[Path, str]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from ci.release import gpg

    if subprocess.run(["which", "skopeo"], capture_output=True, check=False).returncode:
        pytest.fail("skopeo is not installed (apt-get install skopeo)")
    home = tmp_path / "gnupg"
    fingerprint = gpg.new_key(home, "cli <cli@example.invalid>")
    try:
        src, digest = make_layout({"etc/gpgcli": (b"g\n", 0o644)}, tag="g1")
        ref = f"{registry.host}/{repo}:g1"
        lookaside = str(tmp_path / "lookaside")
        assert cli.main(
            ["gpg-sign", str(src), ref, "--layout-tag", "g1", "--fingerprint", fingerprint,
             "--lookaside", lookaside, "--gnupghome", str(home)]
        ) == 0  # fmt: skip
        assert capsys.readouterr().out.strip() == digest
        public = gpg.export_public(home, fingerprint, tmp_path / "pub.asc")
        pinned = f"{registry.host}/{repo}@{digest}"
        assert (
            cli.main(["gpg-verify", pinned, "--public-key", str(public), "--lookaside", lookaside])
            == 0
        )
        assert "accepted" in capsys.readouterr().out
        assert (
            cli.main(
                ["gpg-verify", pinned, "--public-key", str(public), "--lookaside", str(tmp_path)]
            )
            == 3
        )
    finally:
        gpg.stop_agent(home)


def test_module_entry_point_and_help(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["python -m ci.release", "--help"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("ci.release", run_name="__main__")
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in ("push", "sign", "attest", "deploy", "deploy-check", "gpg-sign"):
        assert command in out
    assert json.dumps(cli.build_parser().prog) == '"python -m ci.release"'
