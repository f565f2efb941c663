"""The supply-chain commands on a project that is not bot4: every input is given on the
command line, nothing is read from bot4's layout (toolchain.lock, ci/policy.toml,
pyproject.toml), and the toolkit's neutral default policy applies."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci import cli
from ci.supply_chain import DEFAULT_POLICY, licenses

HASH = " --hash=sha256:" + "a" * 64


def bare_project(tmp_path: Path, lock: str) -> Path:
    """A directory with one lock and nothing else bot4 has."""
    (tmp_path / "requirements.txt").write_text(lock, encoding="utf-8")
    return tmp_path


def site(root: Path, dists: dict[str, str]) -> Path:
    packages = root / "venv" / "lib" / "python3.11" / "site-packages"
    packages.mkdir(parents=True)
    (root / "venv" / "pyvenv.cfg").write_text("version_info = 3.11.7\n", encoding="utf-8")
    for name, headers in dists.items():
        info = packages / f"{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.4\nName: {name}\nVersion: 1.0\n{headers}", encoding="utf-8"
        )
    return packages


def test_default_policy_is_neutral() -> None:
    pol = licenses.load_policy(DEFAULT_POLICY)
    assert pol.exceptions == () and pol.clarify == () and pol.copyleft == "deny"
    assert {"MIT", "Apache-2.0", "BSD-3-Clause"} <= pol.allow


def test_sources_takes_locks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = bare_project(tmp_path, f"six==1.17.0{HASH}\n")
    assert cli.main(["--root", str(root), "sources", "--lock", "requirements.txt"]) == 0
    assert capsys.readouterr().out == "sources: 1 locks clean\n"
    (root / "evil.txt").write_text(
        f"--extra-index-url https://mirror.invalid/simple\nsix==1.17.0{HASH}\nflask>=2\n",
        encoding="utf-8",
    )
    args = ["--root", str(root), "sources", "--lock", "requirements.txt", "--lock", "evil.txt"]
    assert cli.main(args) == 1
    assert capsys.readouterr().err == (
        f"ci: error: source: {root}/evil.txt:1: option '--extra-index-url' is not allowed in "
        "a lock\n"
        f"ci: error: source: {root}/evil.txt:3: flask must be pinned with ==, got 'flask>=2'\n"
    )
    with pytest.raises(SystemExit) as exc:
        cli.main(["--root", str(root), "sources"])
    assert exc.value.code == 2


def test_licenses_with_the_default_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = bare_project(tmp_path, f"fine==1.0{HASH}\n")
    site(root, {"fine": "License-Expression: MIT\n"})
    args = ["--root", str(root), "licenses", "--venv", "venv"]
    assert cli.main(args) == 0
    assert capsys.readouterr().out.endswith(
        "licenses: 1 distributions allowed; sources: not checked (no --lock given)\n"
    )
    assert cli.main([*args, "--lock", "requirements.txt"]) == 0
    assert capsys.readouterr().out.endswith("sources: 1 locks clean\n")
    # certifi passes in bot4 only through bot4's own (toolchain-scoped) exception.
    site(root / "other", {"certifi": "License-Expression: MPL-2.0\n"})
    assert cli.main(["--root", str(root), "licenses", "--venv", "other/venv"]) == 1
    assert capsys.readouterr().err == (
        "ci: error: licence: certifi 1.0: MPL-2.0 is copyleft (copyleft = deny); add an "
        "exception with a reason\n"
    )


def test_audit_with_a_lock_and_the_shipped_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = bare_project(tmp_path, f"urllib3==2.0.3{HASH}\n")
    args = ["--root", str(root), "audit", "--online", "never", "--no-index-check"]
    assert cli.main(args) == 1
    assert (
        capsys.readouterr().err == "ci: error: no locks to audit: pass --lock FILE (repeatable)\n"
    )
    assert cli.main([*args, "--lock", "requirements.txt"]) == 1
    out, err = capsys.readouterr()
    assert "auditing 1 pins from requirements.txt" in out
    assert "scope: the locked pins only" in out
    assert "ci: error: urllib3 2.0.3: " in err
