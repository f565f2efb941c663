"""Loading OSV databases (dir, zip) and building the committed snapshot."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from ci import cli
from ci.errors import GateError
from ci.supply_chain.advisories import database as advisories
from ci.supply_chain.advisories.osv import MalformedRecordError

DATA = Path(__file__).parents[2] / "data" / "osv"
LICENSE = "Attribution 4.0 International\n\nCreative Commons …\n"


def upstream(root: Path) -> Path:
    """A directory laid out like the PyPA repository: vulns/<pkg>/<id>.yaml + LICENSE."""
    (root / "vulns").mkdir(parents=True)
    for pkg in ("urllib3", "py", "ansible", "aiohttp", "steam"):
        shutil.copytree(DATA / pkg, root / "vulns" / pkg)
    (root / "LICENSE").write_text(LICENSE, encoding="utf-8")
    (root / "README.md").write_text("not a record\n", encoding="utf-8")
    return root


def test_directory_db_counts_and_warnings() -> None:
    db = advisories.load_db(DATA)
    assert (db.records, db.withdrawn) == (5, 1)
    assert sorted(db.by_name) == ["aiohttp", "ansible", "py", "urllib3"]
    assert [a.id for a in db.for_package("py")] == ["PYSEC-2022-42969"]  # type: ignore[arg-type]
    assert db.date is None  # no SNAPSHOT.toml: undated, never dated by a record's "modified"
    assert db.snapshot is None
    assert len(db.warnings) == 2
    assert any("broken/BROKEN-1.yaml: cannot decode" in w for w in db.warnings)
    assert any("steam/PYSEC-2019-125.yaml" in w for w in db.warnings)


def test_missing_and_bogus_db(tmp_path: Path) -> None:
    with pytest.raises(GateError, match="advisory database not found"):
        advisories.load_db(tmp_path / "nope.zip")
    bogus = tmp_path / "x.zip"
    bogus.write_text("plain text", encoding="utf-8")
    with pytest.raises(GateError, match="not a directory or a zip"):
        advisories.load_db(bogus)


def test_decode_rejects_non_utf8_and_bad_json() -> None:
    with pytest.raises(MalformedRecordError, match=r"a\.json: cannot decode"):
        advisories.decode("a.json", b"{")
    with pytest.raises(MalformedRecordError, match=r"b\.yaml: cannot decode"):
        advisories.decode("b.yaml", b"\xff\xfe")


def git(*args: str) -> None:
    env = {"GIT_COMMITTER_DATE": "2026-11-01T00:00:00Z", "PATH": os.environ["PATH"]}
    subprocess.run(["git", *args], check=True, capture_output=True, env=env)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    repo = upstream(tmp_path / "advisory-database")
    git("-C", str(repo), "init", "-q")
    git("-C", str(repo), "add", "-A")
    git(
        "-C",
        str(repo),
        "-c",
        "user.email=t@example.invalid",
        "-c",
        "user.name=t",
        "commit",
        "-q",
        "-m",
        "snapshot",
        "--date",
        "2026-11-01T00:00:00Z",
    )
    return repo


def test_snapshot_from_clone_and_bare_git_dir_is_byte_stable(clone: Path, tmp_path: Path) -> None:
    out1, out2 = tmp_path / "s1", tmp_path / "s2"
    snap, warnings = advisories.update_snapshot(clone, out1)
    assert snap.records == 6 and len(snap.commit) == 40
    assert snap.date == dt.date(2026, 11, 1)
    assert any("steam/PYSEC-2019-125.yaml" in w for w in warnings)
    bare = tmp_path / "bare.git"
    git("clone", "-q", "--bare", str(clone), str(bare))
    snap2, _ = advisories.update_snapshot(bare, out2)
    assert snap2 == snap
    assert (out1 / "pypa-advisory-db.zip").read_bytes() == (
        out2 / "pypa-advisory-db.zip"
    ).read_bytes()
    assert (out1 / "LICENSE").read_text(encoding="utf-8") == LICENSE
    notice = (out1 / "NOTICE.md").read_text(encoding="utf-8")
    assert "CC-BY-4.0" in notice and snap.commit in notice
    with zipfile.ZipFile(out1 / "pypa-advisory-db.zip") as archive:
        names = archive.namelist()
    assert names == sorted(names) and "vulns/py/PYSEC-2022-42969.yaml" in names
    db = advisories.load_db(out1 / "pypa-advisory-db.zip")
    assert db.snapshot == snap
    assert db.date == snap.date
    assert (db.records, db.withdrawn) == (5, 1)


def test_snapshot_from_plain_dir_and_zip_is_dated_by_the_given_commit(tmp_path: Path) -> None:
    src = upstream(tmp_path / "plain")
    with pytest.raises(GateError, match="cannot date the snapshot"):
        advisories.update_snapshot(src, tmp_path / "a")
    when = dt.date(2024, 3, 1)
    snap, _ = advisories.update_snapshot(src, tmp_path / "a", when, "abc123")
    assert (snap.commit, snap.date) == ("abc123", when)  # not the newest record (2024-02-16)
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted(src.rglob("*")):
            if file.is_file():
                zf.write(file, f"advisory-database-main/{file.relative_to(src)}")
    snap_zip, _ = advisories.update_snapshot(archive, tmp_path / "b", when, "abc123")
    assert snap_zip == snap


def _plant_future_record(root: Path) -> None:
    record = root / "vulns" / "py" / "PYSEC-2099-1.yaml"
    text = (DATA / "py" / "PYSEC-2022-42969.yaml").read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if not ln.startswith(("id:", "modified:"))]
    record.write_text(
        "\n".join(["id: PYSEC-2099-1", "modified: 2099-01-01T00:00:00Z", *lines]) + "\n",
        encoding="utf-8",
    )


def test_a_record_dated_in_the_future_is_refused(tmp_path: Path) -> None:
    src = upstream(tmp_path / "plain")
    _plant_future_record(src)
    with pytest.raises(GateError, match=r"PYSEC-2099-1.yaml: record modified 2099-01-01"):
        advisories.update_snapshot(src, tmp_path / "a", dt.date(2024, 3, 1))
    with pytest.raises(GateError, match="dated in the future"):
        advisories.load_db(src / "vulns", today=dt.date(2026, 1, 1))


def test_a_future_record_cannot_freshen_a_snapshot(clone: Path, tmp_path: Path) -> None:
    snap, _ = advisories.update_snapshot(clone, tmp_path / "s")
    blob = tmp_path / "s" / "pypa-advisory-db.zip"
    assert advisories.load_db(blob).date == snap.date  # the source commit's date
    with zipfile.ZipFile(blob, "a") as zf:  # one record dated 2099, sha256 re-recorded too
        zf.writestr(
            "vulns/py/PYSEC-2099-1.yaml", "id: PYSEC-2099-1\nmodified: 2099-01-01T00:00:00Z\n"
        )
    meta = tmp_path / "s" / "SNAPSHOT.toml"
    text = meta.read_text(encoding="utf-8").replace(
        snap.sha256, hashlib.sha256(blob.read_bytes()).hexdigest()
    )
    meta.write_text(text, encoding="utf-8")
    with pytest.raises(GateError, match=r"PYSEC-2099-1.yaml: record modified 2099-01-01, after"):
        advisories.load_db(blob)


def test_tampered_snapshot_is_refused(clone: Path, tmp_path: Path) -> None:
    advisories.update_snapshot(clone, tmp_path / "s")
    blob = tmp_path / "s" / "pypa-advisory-db.zip"
    blob.write_bytes(blob.read_bytes() + b"\0")
    with pytest.raises(GateError, match="sha256 differs"):
        advisories.load_db(blob)
    meta = tmp_path / "s" / "SNAPSHOT.toml"
    meta.write_text('archive = "pypa-advisory-db.zip"\n', encoding="utf-8")
    with pytest.raises(GateError, match="malformed snapshot metadata"):
        advisories.load_db(blob)
    meta.write_text('archive = "other.zip"\n', encoding="utf-8")
    assert advisories.read_snapshot_meta(blob) is None


def test_update_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GateError, match="no vulns"):
        advisories.update_snapshot(empty, tmp_path / "o")
    (empty / "vulns" / "x").mkdir(parents=True)
    shutil.copy(DATA / "py" / "PYSEC-2022-42969.yaml", empty / "vulns" / "x")
    with pytest.raises(GateError, match="no LICENSE"):
        advisories.update_snapshot(empty, tmp_path / "o")
    (empty / "LICENSE").write_text(LICENSE, encoding="utf-8")
    (empty / "vulns" / "x" / "PYSEC-2022-42969.yaml").write_text("id: X\n", encoding="utf-8")
    with pytest.raises(GateError, match="cannot date"):
        advisories.update_snapshot(empty, tmp_path / "o")
    with pytest.raises(GateError, match="not a clone"):
        advisories.update_snapshot(tmp_path / "missing.zip", tmp_path / "o")
    broken_git = tmp_path / "broken.git"
    (broken_git / "objects").mkdir(parents=True)
    (broken_git / "HEAD").write_text("ref: refs/heads/main\n", encoding="utf-8")
    with pytest.raises(GateError, match="git --git-dir"):
        advisories.update_snapshot(broken_git, tmp_path / "o")


def test_age_warning() -> None:
    db = dataclasses.replace(advisories.load_db(DATA), date=dt.date(2024, 2, 16))
    assert advisories.age_warning(db, dt.date(2024, 3, 1), 30) is None
    warning = advisories.age_warning(db, dt.date(2024, 4, 1), 30)
    assert warning is not None and "45 days old" in warning
    undated = advisories.Database("x", {}, 0, 0, (), None, None)
    assert "no date" in str(advisories.age_warning(undated, dt.date(2024, 4, 1), 30))


def test_cli_advisories_update(
    clone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        ["--root", str(tmp_path), "advisories-update", "--from", str(clone), "--out", "snap"]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert "6 records" in out and "steam/PYSEC-2019-125.yaml" in err
    assert (tmp_path / "snap" / "SNAPSHOT.toml").is_file()


@pytest.mark.e2e
def test_committed_snapshot_matches_its_metadata() -> None:
    repo = Path(__file__).resolve().parents[4]
    db = advisories.load_db(repo / "ci" / "advisories" / "pypa-advisory-db.zip")
    assert db.snapshot is not None and db.snapshot.records > 2000
    assert (
        (repo / "ci" / "advisories" / "LICENSE")
        .read_text(encoding="utf-8")
        .startswith("Attribution 4.0 International")
    )
