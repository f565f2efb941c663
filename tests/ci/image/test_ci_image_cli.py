"""``python -m ci.image``: every command through main(), on the fixture project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ci.image import cli, lock_format

needs_runc = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runc") is None, reason="needs root and runc"
)


def base(locked: Any) -> list[str]:
    return ["--root", str(locked.root), "--cache", str(locked.cache)]


def test_build_prints_the_digest_last(
    locked: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([*base(locked), "build", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("sha256:") and len(out[-1]) == 71
    assert (tmp_path / "out" / "digest").read_text(encoding="utf-8").strip() == out[-1]


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--root", str(tmp_path), "build"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ci.image: error: ") and err.count("\n") == 1
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2


def test_sbom_write_and_check(
    locked: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "repo"
    shutil.copytree(locked.root, root, symlinks=True)
    args = ["--root", str(root), "--cache", str(locked.cache), "sbom"]
    assert cli.main([*args, "--check"]) == 1
    assert "is out of date" in capsys.readouterr().err
    assert cli.main(args) == 0
    assert cli.main([*args, "--check"]) == 0
    assert "up to date (4 debs, 2 wheels)" in capsys.readouterr().out
    path = root / "sbom" / "bot4-image.cdx.json"
    bom = json.loads(path.read_text(encoding="utf-8"))
    bom["components"] = bom["components"][1:]
    path.write_text(json.dumps(bom), encoding="utf-8")
    assert cli.main([*args, "--check"]) == 1
    assert "+ ca-certificates 20250419" in capsys.readouterr().out  # the fresh one has it


def test_scan(locked: Any, built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "db"
    db.mkdir()
    record = {
        "id": "DSA-9999-1",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
        "affected": [
            {
                "package": {"ecosystem": "Debian:12", "name": "glibc"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.36-9+t2"}]}
                ],
            }
        ],
    }
    (db / "DSA-9999-1.json").write_text(json.dumps(record), encoding="utf-8")
    args = [*base(locked), "scan", "--layout", str(built / "oci"), "--today", "2026-11-30"]
    out_json, sarif = tmp_path / "scan.json", tmp_path / "scan.sarif"
    code = cli.main(
        [*args, "--db", str(db), "--no-pending", "--json", str(out_json), "--sarif", str(sarif)]
    )
    captured = capsys.readouterr()
    assert code == 1 and "DSA-9999-1" in captured.out
    assert "1 finding(s) at or above HIGH" in captured.err
    assert json.loads(out_json.read_text(encoding="utf-8"))["findings"][0]["fails"] is True
    assert json.loads(sarif.read_text(encoding="utf-8"))["version"] == "2.1.0"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main([*args, "--db", str(empty), "--index", f"bookworm={locked.packages}"]) == 0
    assert "image scan: passed" in capsys.readouterr().out
    assert cli.main([*args, "--sbom", str(tmp_path / "missing.json"), "--no-pending"]) == 1
    assert "cannot read the image SBOM" in capsys.readouterr().err


@needs_runc
def test_smoke_command(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "smoke",
        "--layout",
        str(built / "oci"),
        "--bind",
        "/usr/bin:/usr/bin",
        "--bind",
        "/usr/lib:/usr/lib",
    ]
    assert cli.main([*args, "--run", "simulate --quick"]) == 0
    assert "smoke: bot4 simulate --quick ok" in capsys.readouterr().out


def test_smoke_bad_bind(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["smoke", "--layout", str(built / "oci"), "--bind", "nocolon"]) == 1
    assert "--bind expects HOST:/CONTAINER/PATH" in capsys.readouterr().err


def test_reproduce_twice_and_confirm(
    locked: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "kept"
    assert cli.main([*base(locked), "reproduce", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    digest = captured.out.strip().splitlines()[-1]
    table = captured.err.split("reproducibility matrix:\n", 1)[1].splitlines()
    rows = {line.split("  ", 1)[0]: line for line in table}
    for row, control, experiment in [
        ("git remote", "none", "https://example.invalid/someone/fork-of-bot4.git"),
        ("umask", "022", "077"),
        ("TZ", "UTC", "Pacific/Kiritimati"),
        ("hostname", "the host's", "bot4-reprotest (unshare -u)"),
        ("user", "the caller", "uid 1000 (user namespace)"),
        ("SOURCE_DATE_EPOCH", "unset", "4102444800"),
    ]:
        assert control in rows[row] and experiment in rows[row], rows[row]
    assert rows["digest"].split()[1:] == [digest, digest]
    assert "a longer path" in rows["clone path"]
    assert (out / "digest").read_text(encoding="utf-8").strip() == digest
    assert json.loads((out / "complete.json").read_text(encoding="utf-8"))["digest"] == digest
    assert cli.main([*base(locked), "reproduce", "--commit", "HEAD", "--digest", digest]) == 0
    wrong = "sha256:" + "0" * 64
    assert cli.main([*base(locked), "reproduce", "--digest", wrong]) == 1
    assert "does not come from this commit" in capsys.readouterr().err
    assert cli.main([*base(locked), "reproduce", "--digest", "sha256:short"]) == 1


def test_build_reuse_trusts_only_a_whole_current_output(
    locked: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "image"
    assert cli.main([*base(locked), "build", "--out", str(out), "--reuse"]) == 0
    digest = capsys.readouterr().out.strip().splitlines()[-1]
    assert cli.main([*base(locked), "build", "--out", str(out), "--reuse"]) == 0
    assert "reusing it" in capsys.readouterr().err
    manifest = json.loads((out / "oci/blobs/sha256" / digest[7:]).read_bytes())
    layer = out / "oci/blobs/sha256" / manifest["layers"][-1]["digest"][7:]
    layer.write_bytes(layer.read_bytes()[:100])  # a torn layer: rebuilt, not trusted
    assert cli.main([*base(locked), "build", "--out", str(out), "--reuse"]) == 0
    captured = capsys.readouterr()
    assert "reusing" not in captured.err and captured.out.strip() == digest
    (out / "complete.json").unlink()  # no marker: rebuilt
    assert cli.main([*base(locked), "build", "--out", str(out), "--reuse"]) == 0
    assert "reusing" not in capsys.readouterr().err
    marker = json.loads((out / "complete.json").read_text(encoding="utf-8"))
    assert set(marker["inputs"]) == {
        "commit",
        "image.lock",
        "ci/image/image.toml",
        "locks/runtime.txt",
        "toolkit",
    }
    assert [p.name for p in tmp_path.iterdir()] == ["image"]  # no scratch left behind


def test_lock_changes() -> None:
    deb = lock_format.DebPin("a", "1", "amd64", "a", "1", "s", "pool/a", 1, "a" * 64)
    wheel = lock_format.WheelPin("w", "1", "w-1-py3-none-any.whl", "b" * 64)
    old = lock_format.Lock("c" * 64, "d" * 64, "bookworm", "amd64", (deb,), (wheel,))
    newer = lock_format.DebPin("a", "2", "amd64", "a", "2", "s", "pool/a", 1, "e" * 64)
    added = lock_format.DebPin("b", "1", "amd64", "b", "1", "s", "pool/b", 1, "f" * 64)
    new = lock_format.Lock("c" * 64, "d" * 64, "bookworm", "amd64", (newer, added), ())
    assert cli.lock_changes(old, new) == ["~ deb a 1 -> 2", "+ deb b 1", "- wheel w 1"]
    assert cli.lock_changes(None, new) == []


def test_module_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ci.image", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "reproduce" in result.stdout


@pytest.mark.parametrize("digest", ["", "sha256:", "sha256:" + "A" * 64, "sha512:" + "0" * 64])
def test_reproduce_refuses_a_malformed_digest_before_fetching(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], digest: str
) -> None:
    """release.yml's rebuild passes the build job's output: an empty one (a lost hand-off)
    must fail, not fall back to the unchecked two-clone build."""
    cache = tmp_path / "cache"
    argv = ["--root", str(tmp_path), "--cache", str(cache), "reproduce", "--digest", digest]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err == f"ci.image: error: --digest must look like sha256:<64 hex>, got {digest!r}\n"
    assert not cache.exists()
