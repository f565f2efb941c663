"""The supply-chain commands on a project that is not bot4: every input is given on the
command line, nothing is read from bot4's layout (toolchain.lock, ci/policy.toml,
pyproject.toml), and the toolkit's neutral default policy applies."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from ci import cli
from ci.gate.requirements import read_lock
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
    assert cli.main([*args, "--lock", "requirements.txt", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["denied"] == 0  # stdout is the JSON alone
    assert err == "licenses: 1 distributions allowed; sources: 1 locks clean\n"
    # certifi passes in bot4 only through bot4's own (toolchain-scoped) exception.
    site(root / "other", {"certifi": "License-Expression: MPL-2.0\n"})
    assert cli.main(["--root", str(root), "licenses", "--venv", "other/venv"]) == 1
    assert capsys.readouterr().err == (
        "ci: error: licence: certifi 1.0: MPL-2.0 is copyleft (copyleft = deny); add an "
        "exception with a reason\n"
    )


@pytest.mark.e2e
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


def readme_commands() -> list[str]:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- any-project: begin -->", 1)[1].split("<!-- any-project: end -->")[0]
    return [line for line in block.splitlines() if line.startswith("python -m ci ")]


@pytest.mark.e2e
def test_readme_three_commands_on_another_project(tmp_path: Path) -> None:
    """The README's three commands, as written, on flask 3.1.2 (the corpus' lock and wheel
    metadata): run as processes from the project's directory, with only the environment a
    user's machine would give them — a package index (here a file:// one serving the
    locked hashes) and a pip-audit service that cannot be reached (a refused proxy)."""
    commands = readme_commands()
    assert [c.split()[3] for c in commands] == ["licenses", "audit", "sbom"]
    corpus = Path(__file__).resolve().parent / "data" / "corpus" / "flask"
    project = tmp_path / "project"
    project.mkdir()
    shutil.copyfile(corpus / "requirements.txt", project / "requirements.txt")
    env_dir = project / ".venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    site_dir = next(env_dir.glob("lib/python3*/site-packages"))
    site_dir.rmdir()
    site_dir.symlink_to(corpus / "site", target_is_directory=True)
    index = tmp_path / "index" / "simple"
    for pin in read_lock(project / "requirements.txt"):
        page = index / pin.name
        page.mkdir(parents=True)
        links = "".join(
            f'<a href="../../f/{pin.name}-{pin.version}.tar.gz#{h.replace(":", "=")}">f</a>\n'
            for h in pin.hashes
        )
        (page / "index.html").write_text(links, encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "BOT4_", "UV_"))}
    environ |= {
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": index.as_uri(),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '')}",
    }
    outputs = []
    for command in commands:
        argv = [sys.executable, *shlex.split(command)[1:]]
        done = subprocess.run(  # nosec B603
            argv, cwd=project, env=environ, capture_output=True, text=True, timeout=600,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{command}: {done.stderr}"
        outputs.append(done.stdout)
    licences, audit_out, sbom_out = outputs
    assert licences.endswith("licenses: 7 distributions allowed; sources: 1 locks clean\n")
    assert "jinja2" in licences.lower() and "licence file jinja2-3.1.6.dist-info" in licences
    assert "auditing 7 pins from requirements.txt" in audit_out
    assert "index: 7 pins checked" in audit_out and audit_out.endswith("audit: passed\n")
    assert sbom_out == "sbom: wrote sbom.cdx.json (requirements.txt, CycloneDX 1.6, valid)\n"
    bom = json.loads((project / "sbom.cdx.json").read_text(encoding="utf-8"))
    assert sorted(c["purl"] for c in bom["components"])[0] == "pkg:pypi/blinker@1.9.0"
    assert not (project / "toolchain.lock").exists() and not (project / "ci").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["audit", "--lock", "gone.txt"], "{root}/gone.txt: lock file not found"),
        (["sbom", "--lock", "gone.txt"], "{root}/gone.txt: lock file not found"),
        (
            ["licenses", "--venv", "v", "--runtime-lock", "gone.txt"],
            "{root}/gone.txt: lock file not found",
        ),
        (
            ["licenses", "--venv", "v", "--policy", "nope.toml"],
            "{root}/nope.toml: policy file not found",
        ),
        (
            ["audit", "--lock", "requirements.txt", "--policy", "bad.toml"],
            "{root}/bad.toml: malformed policy TOML",
        ),
        (
            ["sbom", "--lock", "evil.txt", "--output", "out.json"],
            "{root}/evil.txt:1: option '--index-url' is not allowed in a lock",
        ),
    ],
)
def test_hostile_or_missing_inputs_are_one_line_refusals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Nothing is installed, contacted or written: the inputs are refused first."""
    root = bare_project(tmp_path, f"six==1.17.0{HASH}\n")
    site(root, {"fine": "License-Expression: MIT\n"})
    (root / "v").symlink_to(root / "venv")
    (root / "bad.toml").write_text("[licenses\n", encoding="utf-8")
    (root / "evil.txt").write_text(
        f"--index-url https://mirror.invalid/simple\nsix==1.17.0{HASH}\n", encoding="utf-8"
    )
    before = sorted(p.name for p in root.iterdir())
    assert cli.main(["--root", str(root), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ci: error: " + message.format(root=root)) and err.count("\n") == 1
    assert sorted(p.name for p in root.iterdir()) == before
