"""The real-project suite: hashed locks of jupyterlab, poetry, flask and sphinx, with the
metadata and licence files of the wheels they install (tests/ci/data/corpus/, origin in
its README). The verdicts were reviewed by hand; pip-licenses runs live on the same data
and every place it disagrees must be a reviewed disagreement, with who is right."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from ci import cli
from ci.compat import tomllib
from ci.gate.requirements import read_lock
from ci.supply_chain import DEFAULT_POLICY, licenses, sbom, sources

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
EXPECTED: dict[str, Any] = tomllib.loads((CORPUS / "expected.toml").read_text(encoding="utf-8"))
PROJECTS = sorted(EXPECTED)
# Where the corpus wheels were installed: Linux x86_64, CPython 3.11 (markers select by it).
LINUX_CPYTHON_311 = {
    "implementation_name": "cpython",
    "implementation_version": "3.11.7",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": "3.11.7",
    "python_version": "3.11",
    "sys_platform": "linux",
}


def corpus_venv(tmp_path: Path, project: str) -> Path:
    """A real venv whose site-packages is the project's corpus (read-only use)."""
    root = tmp_path / f"venv-{project}"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root)
    site = next(root.glob("lib/python3*/site-packages"))
    site.rmdir()
    site.symlink_to(CORPUS / project / "site", target_is_directory=True)
    return root


def test_corpus_covers_four_projects() -> None:
    assert PROJECTS == ["flask", "jupyterlab", "poetry", "sphinx"]
    assert sum(len(EXPECTED[p]["verdicts"]) for p in PROJECTS) == 172


@pytest.mark.e2e
@pytest.mark.parametrize("project", PROJECTS)
def test_verdicts_are_the_reviewed_ones(project: str) -> None:
    rows, warnings = licenses.check_environment(
        CORPUS / project / "site", licenses.load_policy(DEFAULT_POLICY), None
    )
    got = {str(canonicalize_name(r.package)): [r.verdict, r.expression] for r in rows}
    assert got == EXPECTED[project]["verdicts"]
    assert warnings == []
    assert all(r.source for r in rows)  # every verdict says where it came from


@pytest.mark.parametrize("project", PROJECTS)
def test_lock_is_clean_and_its_markers_pick_what_was_installed(project: str) -> None:
    lock = CORPUS / project / "requirements.txt"
    assert sources.check_locks([lock]) == []
    chosen, skipped = sbom.applicable_pins([(lock.name, read_lock(lock))], LINUX_CPYTHON_311)
    assert sorted(chosen) == sorted(EXPECTED[project]["verdicts"])
    if project == "jupyterlab":  # a universal lock: other platforms' pins are not missing
        assert 'colorama 0.4.6 ; sys_platform == "win32"' in skipped
        assert any(s.startswith("soupsieve 2.10 ;") for s in skipped)


@pytest.mark.e2e
def test_pyzmq_bundled_libzmq_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pyzmq declares BSD-3-Clause; its wheel bundles libzmq under MPL-2.0 with no
    License-File line. The default policy denies it, saying which file says so."""
    env = corpus_venv(tmp_path, "jupyterlab")
    lock = CORPUS / "jupyterlab" / "requirements.txt"
    assert cli.main(["licenses", "--venv", str(env), "--lock", str(lock), "--json"]) == 1
    out, err = capsys.readouterr()
    pyzmq = next(p for p in json.loads(out)["packages"] if p["package"] == "pyzmq")
    assert pyzmq["verdict"] == "deny"
    assert (
        "MPL-2.0 from pyzmq-27.3.0.dist-info/licenses/licenses/LICENSE.zeromq.txt"
        in (pyzmq["source"])
    )
    assert (
        "ISC from pyzmq-27.3.0.dist-info/licenses/licenses/LICENSE.libsodium.txt"
        in (pyzmq["source"])
    )
    assert (
        "ci: error: licence: pyzmq 27.3.0: bundled MPL-2.0: MPL-2.0 is copyleft "
        "(copyleft = deny); add an exception with a reason\n" in err
    )


def _peer_spdx(text: str) -> str | None:
    """pip-licenses' answer as SPDX, when it names exactly one licence per part."""
    parts = [licenses.CLASSIFIERS.get(p.strip()) or licenses.ALIASES.get(p.strip().lower())
             or licenses.spdx(p.strip()) for p in text.split(";")]  # fmt: skip
    if not all(parts):
        return None
    return " AND ".join(dict.fromkeys(p for p in parts if p))


@pytest.mark.parametrize("project", PROJECTS)
def test_pip_licenses_disagreements_are_the_reviewed_ones(project: str, tmp_path: Path) -> None:
    peer_tool = Path(sys.executable).parent / "pip-licenses"
    assert peer_tool.exists(), "pip-licenses is in the toolchain lock; install the lock"
    env = corpus_venv(tmp_path, project)
    done = subprocess.run(  # nosec B603
        [str(peer_tool), "--python", str(env / "bin" / "python"), "--format=json",
         "--from=mixed"],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    peer = {str(canonicalize_name(p["Name"])): p["License"] for p in json.loads(done.stdout)}
    found: dict[str, str] = {}
    for package, (_, expression) in EXPECTED[project]["verdicts"].items():
        said = peer.get(package, "(absent)")
        main, *bundled = expression.split(" + bundled ")
        mapped = _peer_spdx(said)
        same = mapped is not None and main != "?" and licenses.spdx(mapped) == main
        if not same or bundled:
            found[package] = said
    reviewed = {d["package"]: d["pip-licenses"] for d in EXPECTED[project]["disagreements"]}
    assert found == reviewed
    assert {d["right"] for d in EXPECTED[project]["disagreements"]} <= {
        "ci",
        "pip-licenses",
        "neither",
    }
