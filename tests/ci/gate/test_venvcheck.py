"""The reused-venv check over real files laid out as an installer leaves them."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

from ci.gate import venvcheck

PINS = {"demo": "1.0"}


def _h(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def install(venv: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """Write a distribution the way pip/uv do: files, METADATA and a hashed RECORD."""
    site = venv / "lib" / "python3.11" / "site-packages"
    info = f"{name}-{version}.dist-info"
    files = {**files, f"{info}/METADATA": f"Name: {name}\nVersion: {version}\n\nbody".encode()}
    for rel, data in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
    rows = "".join(f"{rel},{_h(data)},{len(data)}\n" for rel, data in files.items())
    (site / info / "RECORD").write_text(rows + f"{info}/RECORD,,\n", encoding="utf-8")
    return site


def make(tmp_path: Path) -> tuple[Path, Path, Path]:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to("/usr/bin/python3")
    site = install(
        venv, "demo", "1.0", {"demo/__init__.py": b"x = 1\n", "../../../bin/demo": b"#!"}
    )
    install(venv, "bot4", "0.1.0", {"_bot4.pth": b"/src\n"})
    install(venv, "bot4-ci", "0.1.0", {"_bot4_ci.pth": b"/\n"})
    state = tmp_path / "state.json"
    assert venvcheck.record(venv, PINS, state, "in1") == []
    return venv, site, state


def test_a_clean_venv_passes_and_is_complete(tmp_path: Path) -> None:
    venv, site, state = make(tmp_path)
    (site / "demo" / "__pycache__").mkdir()
    (site / "demo" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"pyc")
    assert venvcheck.check(venv, PINS, state, "in1") == ([], True)
    assert venvcheck.check(venv, PINS, state, "in2") == ([], False)  # other inputs: reinstall
    assert venvcheck.check(venv, {**PINS, "more": "2"}, state, "in1") == ([], False)
    assert venvcheck.check(tmp_path / "absent", PINS, state, "in1") == ([], False)


def test_planted_altered_and_extra_files_are_found(tmp_path: Path) -> None:
    venv, site, state = make(tmp_path)
    install(venv, "evil", "6.6", {"evil.pth": b"import os\n"})
    (site / "demo" / "__init__.py").write_bytes(b"x = 2\n")  # same size, other bytes
    (site / "sitecustomize.py").write_bytes(b"print()\n")
    (venv / "bin" / "git").write_bytes(b"#!/bin/sh\n")
    (site / "demo" / "__pycache__").mkdir()
    (site / "demo" / "__pycache__" / "other.cpython-311.pyc").write_bytes(b"pyc")
    problems, complete = venvcheck.check(venv, PINS, state, "in1")
    assert not complete
    assert sorted(problems) == sorted(
        [
            "evil 6.6 installed but not in the lock",
            "lib/python3.11/site-packages/demo/__init__.py: altered (hash differs from "
            "lib/python3.11/site-packages/demo-1.0.dist-info/RECORD)",
            "lib/python3.11/site-packages/evil-6.6.dist-info/RECORD: changed since the last "
            "verified install",
            "lib/python3.11/site-packages/demo/__pycache__/other.cpython-311.pyc: not installed "
            "from the lock",
            "lib/python3.11/site-packages/sitecustomize.py: not installed from the lock",
            "bin/git: not installed from the lock",
        ]
    )


def test_a_rewritten_record_and_a_wrong_version_are_found(tmp_path: Path) -> None:
    venv, site, state = make(tmp_path)
    record = site / "demo-1.0.dist-info" / "RECORD"
    record.write_text(record.read_text() + "demo/new.py,,\n", encoding="utf-8")
    (site / "demo" / "new.py").write_bytes(b"planted\n")
    problems, _ = venvcheck.check(venv, PINS, state, "in1")
    assert problems == [
        "lib/python3.11/site-packages/demo-1.0.dist-info/RECORD: changed since the last "
        "verified install"
    ]
    assert venvcheck.check(venv, {"demo": "2.0"}, state, "in1")[0][0] == (
        "demo 1.0 installed, the lock pins 2.0"
    )


def test_no_baseline_means_rebuild_and_a_missing_file_is_found(tmp_path: Path) -> None:
    venv, site, state = make(tmp_path)
    (site / "demo" / "__init__.py").unlink()
    problems, _ = venvcheck.check(venv, PINS, tmp_path / "none.json", "in1")
    assert problems[0] == "venv: no record of a verified install (made before this check)"
    assert any(p.endswith("demo/__init__.py: missing (listed in "
                          "lib/python3.11/site-packages/demo-1.0.dist-info/RECORD)")
               for p in problems)  # fmt: skip
    assert venvcheck.record(venv, PINS, state, "in1") != []
    assert not state.exists()


def test_record_entries_outside_the_venv_and_bad_metadata(tmp_path: Path) -> None:
    venv, site, state = make(tmp_path)
    record = site / "demo-1.0.dist-info" / "RECORD"
    record.write_text(
        record.read_text() + "../../../../outside,,\n/etc/hosts,,\n", encoding="utf-8"
    )
    (site / "broken-1.dist-info").mkdir()
    problems, _ = venvcheck.scan(venv, PINS, venvcheck.State(), compare_baseline=False)
    assert "broken-1.dist-info: no readable Name/Version in METADATA" in problems
    assert any("lists ../../../../outside, outside the venv" in p for p in problems)
    assert any("lists /etc/hosts, outside the venv" in p for p in problems)
    nosite = tmp_path / "nosite"
    nosite.mkdir()
    assert venvcheck.check(nosite, PINS, state, "x")[0] == [
        "nosite: no single lib/python3*/site-packages"
    ]


def test_hashes_are_reused_only_while_the_file_is_untouched(
    tmp_path: Path, monkeypatch: Any
) -> None:
    venv, site, state = make(tmp_path)
    hashed: list[str] = []
    real = hashlib.sha256

    def counting() -> Any:
        hashed.append("h")
        return real()

    monkeypatch.setattr(hashlib, "sha256", counting)
    assert venvcheck.check(venv, PINS, state, "in1") == ([], True)
    assert hashed == []  # warm: stat only
    target = site / "demo" / "__init__.py"
    st = target.stat()
    target.write_bytes(b"x = 9\n")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime forged back; ctime cannot be
    problems, _ = venvcheck.check(venv, PINS, state, "in1")
    assert hashed and any("demo/__init__.py: altered" in p for p in problems)


def test_state_file_garbage_is_an_empty_state(tmp_path: Path) -> None:
    bad = tmp_path / "s.json"
    for text in ("{", "[]", '{"version": 0}', '{"version": 1, "baseline": [], "cache": {}}'):
        bad.write_text(text, encoding="utf-8")
        assert venvcheck.State.load(bad) == venvcheck.State()


def test_script_mode_for_the_runner_venv(tmp_path: Path, capsys: Any) -> None:
    venv, _, _ = make(tmp_path)
    lock = tmp_path / "bootstrap.txt"
    lock.write_text("demo==1.0 --hash=sha256:" + "a" * 64 + "\n", encoding="utf-8")
    assert venvcheck.main([str(venv), str(lock)]) == 1  # no baseline inside the venv yet
    assert "rebuilding from the lock: venv: no record of a verified install" in (
        capsys.readouterr().err
    )
    assert venvcheck.main(["--record", str(venv), str(lock)]) == 0
    assert (venv / ".bot4-verified.json").is_file()
    assert venvcheck.main([str(venv), str(lock)]) == 0
    install(venv, "evil", "6.6", {"evil.pth": b"import os\n"})
    assert venvcheck.main([str(venv), str(lock)]) == 1
    assert "evil 6.6 installed but not in the lock" in capsys.readouterr().err
    assert venvcheck.main(["--record", str(venv), str(lock)]) == 1
    assert "differs from the lock after installing: evil 6.6" in capsys.readouterr().err


def test_an_unlocked_seed_is_not_exempt(tmp_path: Path) -> None:
    """``python -m venv``'s setuptools, virtualenv's wheel, a pip the lock does not pin: the
    reused venv is rebuilt (the gate's own venvs hold the locked pip only)."""
    venv, _, state = make(tmp_path)
    install(venv, "setuptools", "65.5.0", {"setuptools/__init__.py": b""})
    install(venv, "wheel", "0.38.4", {"wheel/__init__.py": b""})
    install(venv, "pip", "23.0.1", {"pip/__init__.py": b""})
    problems, complete = venvcheck.check(venv, PINS, state, "in1")
    assert not complete
    for seed in ("setuptools 65.5.0", "wheel 0.38.4", "pip 23.0.1"):
        assert f"{seed} installed but not in the lock" in problems
    # the locked pip, at the locked version, is what passes
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    venv, _, state = make(fresh)
    install(venv, "pip", "26.3", {"pip/__init__.py": b""})
    pins = {**PINS, "pip": "26.3"}
    assert venvcheck.record(venv, pins, state, "in1") == []
    assert venvcheck.check(venv, pins, state, "in1") == ([], True)
