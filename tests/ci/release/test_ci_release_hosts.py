"""Host-enforced trust: the shipped Podman policy.json/registries.d/unit, and real Podman
refusing unsigned and wrong-key images from the loopback registry (``nox -s host-check``
runs the whole check on the built engine image, Docker included)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from ci.release import e2e, gpg, hosts, transfer
from ci.release.errors import ReleaseError
from ci.release.reference import parse
from ci.release.registry import Registry

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_the_shipped_host_files_render_strict(tmp_path: Path) -> None:
    ref = parse("localhost:5000/bot4/engine@sha256:" + "a" * 64)
    policy, regd = hosts.render_host_files(
        REPO_ROOT, tmp_path / "etc", ref, tmp_path / "k.asc", tmp_path / "sigs"
    )
    doc = json.loads(policy.read_text(encoding="utf-8"))
    assert doc["default"] == [{"type": "reject"}]
    assert doc["transports"]["docker"] == {
        "localhost:5000/bot4/engine": [
            {
                "type": "signedBy",
                "keyType": "GPGKeys",
                "keyPath": str(tmp_path / "k.asc"),
                "signedIdentity": {"type": "matchRepoDigestOrExact"},
            }
        ]
    }
    text = (regd / "bot4.yaml").read_text(encoding="utf-8")
    assert f"localhost:5000/bot4/engine:\n    lookaside: {(tmp_path / 'sigs').as_uri()}" in text


def test_the_unit_runs_hardened_and_a_weakened_unit_is_refused(tmp_path: Path) -> None:
    args = hosts.unit_run_args(REPO_ROOT)
    assert set(hosts.HARDENING) <= set(args)
    quadlet = (REPO_ROOT / "ops/podman/bot4-engine.container").read_text(encoding="utf-8")
    for line in ("ReadOnly=true", "Network=none", "DropCapability=all", "User=65532"):
        assert line in quadlet
    weak = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "ops" / "podman", weak / "ops" / "podman")
    unit = weak / "ops/podman/bot4-engine.service"
    unit.write_text(unit.read_text().replace(" --read-only", ""), encoding="utf-8")
    with pytest.raises(ReleaseError, match="ExecStart lacks --read-only"):
        hosts.unit_run_args(weak)


LAST_FLAG = " --user=65532:65532 ${BOT4_IMAGE}\n"  # the end of ExecStart (not ExecStartPre)


def _add(option: str, text: str) -> str:
    assert text.count(LAST_FLAG) == 1
    return text.replace(LAST_FLAG, f" --user=65532:65532 {option} ${{BOT4_IMAGE}}\n")


# The ExecStart line (or the unit around it) edited the way an attacker would widen what
# the container reaches: each must be refused before anything runs.
HOSTILE_UNITS: dict[str, tuple[Callable[[str], str], str]] = {
    **{
        f"adds {added}": (partial(_add, added), f"ExecStart adds {added}: only ")
        for added in (
            "--privileged",
            "-v /:/host",
            "--volume=/:/host",
            "--pid=host",
            "--security-opt seccomp=unconfined",
            "--security-opt=seccomp=unconfined",
            "--cap-add=SYS_ADMIN",
            "--cap-add SYS_ADMIN",
            "--user=0",  # a second --user overrides the first
            "--network=host",
            "--env-file=/root/.aws/credentials",
            "--name other",
        )
    },
    "a second ExecStart": (
        lambda t: t.replace("ExecStop=", "ExecStart=\nExecStart=/bin/sh -c id\nExecStop=", 1),
        "[Service] must have one ExecStart, not 3",
    ),
    "a root command before the start": (
        lambda t: t.replace(
            "ExecStartPre=/usr/bin/podman pull",
            "ExecStartPre=/bin/sh -c 'id' ; /usr/bin/podman pull",
        ),
        "[Service] needs exactly ExecStartPre=/usr/bin/podman pull ${BOT4_IMAGE}",
    ),
    "a second command before the start": (
        lambda t: t.replace("ExecStop=", "ExecStartPre=/bin/sh -c id\nExecStop=", 1),
        "[Service] needs exactly ExecStartPre=",
    ),
    "another key": (
        lambda t: t.replace("Restart=", "ExecStartPost=/bin/sh -c id\nRestart=", 1),
        "[Service] must not set ExecStartPost (allowed: Environment, ExecStart, ",
    ),
    "podman configured from the environment": (
        lambda t: t.replace("Restart=", "Environment=CONTAINERS_CONF=/tmp/x\nRestart=", 1),
        "[Service] needs exactly one Environment=BOT4_IMAGE=REF",
    ),
    "flags on a continued line": (
        lambda t: t.replace(" --rm ", " --rm \\\n  --privileged ", 1),
        "a line continued with \\ is not accepted",
    ),
    "an unbalanced quote": (
        lambda t: t.replace(" --rm ", " --rm '", 1),
        "ExecStart is not a command line",
    ),
    "not podman": (
        lambda t: t.replace("ExecStart=/usr/bin/podman run", "ExecStart=/bin/sh -c", 1),
        "ExecStart must be /usr/bin/podman run",
    ),
}


@pytest.mark.parametrize("attack", sorted(HOSTILE_UNITS))
def test_a_widened_unit_is_refused_before_anything_runs(attack: str, tmp_path: Path) -> None:
    """Through ``host-check``: refused in one line (exit 3, refused) before the layout is
    read, a registry started or podman run (the layout named does not even exist)."""
    edit, message = HOSTILE_UNITS[attack]
    weak = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "ops" / "podman", weak / "ops" / "podman")
    unit = weak / "ops/podman/bot4-engine.service"
    text = unit.read_text(encoding="utf-8")
    unit.write_text(edit(text), encoding="utf-8")
    assert unit.read_text(encoding="utf-8") != text
    done = subprocess.run(
        [sys.executable, "-m", "ci.release", "--root", str(weak), "host-check",
         "--layout", str(tmp_path / "no-layout" / "oci")],
        capture_output=True, text=True, check=False, cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert message in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # no scratch, no layout


def test_the_shipped_unit_options_are_exactly_the_allowed_ones() -> None:
    assert hosts.unit_run_args(REPO_ROOT) == [
        "--rm", "--pull=never", "--name", "bot4-engine", *hosts.HARDENING
    ]  # fmt: skip


def test_the_rlimit_wrapper_drops_only_rlimits(tmp_path: Path) -> None:
    shim = tmp_path / "shim"
    shim.write_text(hosts.SHIM.format(python=sys.executable, runc="/bin/echo"), encoding="utf-8")
    shim.chmod(0o755)
    spec = {
        "process": {"rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1, "soft": 1}], "args": ["x"]},
        "root": {"readonly": True},
    }
    (tmp_path / "config.json").write_text(json.dumps(spec), encoding="utf-8")
    done = subprocess.run(
        [str(shim), "create", "--bundle", str(tmp_path), "ctr"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == f"create --bundle {tmp_path} ctr"  # runc got podman's argv
    assert json.loads((tmp_path / "config.json").read_text()) == {
        "process": {"args": ["x"]},
        "root": {"readonly": True},
    }


def test_podman_enforces_the_shipped_policy(
    registry: Registry,
    make_layout: Callable[..., tuple[Path, str]],
    tmp_path: Path,
) -> None:
    """Real podman (rootful, vfs) with the rendered policy.json: the signed image is pulled
    by digest; an unsigned one and one signed by another key are refused."""
    for tool in ("podman", "skopeo", "gpg"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (apt-get install podman skopeo gnupg)")
    if os.geteuid() != 0:
        pytest.fail("rootful podman needs root")
    src, _ = make_layout({"etc/podman": (b"p\n", 0o644)}, tag="p1")
    homes = [tmp_path / "gnupg-release", tmp_path / "gnupg-other"]
    try:
        fpr = gpg.new_key(homes[0], "release <r@example.invalid>")
        other = gpg.new_key(homes[1], "other <o@example.invalid>")
        ref = parse(f"{registry.host}/bot4/engine:p1")
        public = gpg.export_public(homes[0], fpr, tmp_path / "release.asc")
        policy, regd = hosts.render_host_files(
            REPO_ROOT, tmp_path / "etc", ref, public, tmp_path / "sigs"
        )
        env = {**os.environ, "GNUPGHOME": str(homes[0])}
        digest = gpg.sign(src, "p1", ref, fpr, regd, env, plain_http=True)
        podman = hosts.Podman(tmp_path / "podman", regd)
        top = registry.manifest(ref.repository, digest)
        unsigned = e2e.crafted(registry, ref.repository, top)
        refused = podman.pull(f"{ref.name}@{unsigned.digest}", policy, "refused")
        assert refused.returncode != 0 and "no signature exists" in refused.stderr

        wrong_src = tmp_path / "wrong"
        transfer.pull(registry, ref.with_digest(unsigned.digest), wrong_src, tag="w")
        other_env = {**os.environ, "GNUPGHOME": str(homes[1])}
        wrong = gpg.sign(wrong_src, "w", ref.with_tag("w"), other, regd, other_env, plain_http=True)
        refused = podman.pull(f"{ref.name}@{wrong}", policy, "refused")
        assert refused.returncode != 0 and "Invalid GPG signature" in refused.stderr

        accepted = podman.pull(f"{ref.name}@{digest}", policy)
        assert accepted.returncode == 0, accepted.stderr
        listed = podman.run("images", "--digests", "--format", "{{.Digest}}")
        assert digest in listed.stdout.split()
        podman.close()
    finally:
        for home in homes:
            gpg.stop_agent(home)


def test_refusal_reports_are_strict() -> None:
    ok = subprocess.CompletedProcess(["x"], 0, "", "")
    with pytest.raises(ReleaseError, match="was accepted; it must be refused"):
        hosts._refused("thing", ok, "x")
    other = subprocess.CompletedProcess(["x"], 1, "", "Error: something else")
    with pytest.raises(ReleaseError, match="refused for another reason: Error: something else"):
        hosts._refused("thing", other, "no signature exists")
    with pytest.raises(ReleaseError, match="confinement differs"):
        hosts._probe("uid 0 0", "run")
