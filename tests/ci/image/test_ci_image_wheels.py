"""Installing wheels into layer entries."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from ci.image import wheels
from ci.image.errors import ImageError
from ci.image.tarball import Entry

SITE = "usr/local/lib/python3.11/dist-packages"
BIN = "usr/local/bin"


def test_install_maps_schemes_scripts_and_drops(wheelhouse: Path) -> None:
    got = wheels.install(wheelhouse / "demo-1.0-py3-none-any.whl", SITE, BIN, [f"{SITE}/*/tests/*"])
    by_path = {e.path: e for e in got.entries}
    assert got.meta.name == "demo" and got.meta.license == "MIT"
    assert got.dist_info == f"{SITE}/demo-1.0.dist-info"
    assert f"{SITE}/demo/__init__.py" in by_path
    assert f"{SITE}/demo/tests/test_demo.py" not in by_path
    assert by_path[f"{SITE}/demo/_native.so"].mode == 0o755
    assert by_path[f"{SITE}/demo/__init__.py"].mode == 0o644
    tool = by_path[f"{BIN}/demo-tool"]
    assert tool.data.startswith(b"#!/usr/bin/python3.11\n") and tool.mode == 0o755
    assert by_path["usr/local/share/demo/notes.txt"].data == b"notes\n"
    launcher = by_path[f"{BIN}/demo"].data.decode()
    assert launcher.startswith("#!/usr/bin/python3.11\n") and "from demo import main" in launcher
    obj = by_path[f"{BIN}/demo-obj"].data.decode()
    assert "from demo.cli import App" in obj and "sys.exit(App.run())" in obj
    assert by_path[f"{SITE}/demo-1.0.dist-info/INSTALLER"].data == b"ci.image\n"
    assert f"{SITE}/demo-1.0.dist-info/RECORD" not in by_path


def test_install_drops_console_scripts_matching_a_glob(wheelhouse: Path) -> None:
    # Build tools such as numpy's f2py come as console scripts, not zip members.
    got = wheels.install(wheelhouse / "demo-1.0-py3-none-any.whl", SITE, BIN, [f"{BIN}/demo"])
    paths = {e.path for e in got.entries}
    assert f"{BIN}/demo" not in paths
    assert f"{BIN}/demo-obj" in paths and f"{BIN}/demo-tool" in paths


def test_finish_writes_a_sorted_record_with_relative_paths(wheelhouse: Path) -> None:
    got = wheels.install(wheelhouse / "demo-1.0-py3-none-any.whl", SITE, BIN)
    pyc = Entry(f"{SITE}/demo/__pycache__/__init__.cpython-311.pyc", "file", 0o644, b"pyc")
    entries = wheels.finish(got, [pyc])
    record = entries[-1]
    assert record.path == f"{SITE}/demo-1.0.dist-info/RECORD"
    rows = list(csv.reader(io.StringIO(record.data.decode())))
    assert rows == sorted(rows)
    paths = {r[0]: r for r in rows}
    assert paths["demo-1.0.dist-info/RECORD"] == ["demo-1.0.dist-info/RECORD", "", ""]
    assert "../../../bin/demo" in paths and "../../../share/demo/notes.txt" in paths
    assert paths["demo/__pycache__/__init__.cpython-311.pyc"][1].startswith("sha256=")
    assert paths["demo/__pycache__/__init__.cpython-311.pyc"][2] == "3"


def test_metadata_and_requirements(wheelhouse: Path) -> None:
    meta = wheels.read_meta(wheelhouse / "demo-1.0-py3-none-any.whl")
    env = wheels.target_environment("3.11.2")
    assert env["python_version"] == "3.11" and env["sys_platform"] == "linux"
    assert wheels.requirements(meta, env) == ("demodep",)
    assert wheels.requirements(meta, env, ["x"]) == ("demodep", "extra-only")
    dep = wheels.read_meta(wheelhouse / "demodep-2.0-py3-none-any.whl")
    assert dep.license == "BSD"
    classic = wheels.parse_metadata(
        "Name: x\nVersion: 1\nClassifier: License :: OSI Approved :: MIT License\n"
    )
    assert classic.license == "MIT License"
    bad = wheels.WheelMeta("x", "1", ("not a requirement!!",), "", "")
    with pytest.raises(ImageError, match="bad Requires-Dist"):
        wheels.requirements(bad, env)


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_broken_wheels(tmp_path: Path, wheel_factory: Any) -> None:
    not_zip = tmp_path / "x-1-py3-none-any.whl"
    not_zip.write_bytes(b"nope")
    with pytest.raises(ImageError, match="not a valid wheel"):
        wheels.install(not_zip, SITE, BIN)
    with pytest.raises(ImageError, match="not a valid wheel"):
        wheels.read_meta(not_zip)
    two = _zip(tmp_path / "two.whl", {"a-1.dist-info/METADATA": b"", "b-1.dist-info/METADATA": b""})
    with pytest.raises(ImageError, match=r"expected one \.dist-info"):
        wheels.read_meta(two)
    bad_ep = wheel_factory(
        tmp_path, "bad", "1", {"bad/__init__.py": b""}, entry_points="[console_scripts]\nx = bad\n"
    )
    with pytest.raises(ImageError, match="is not module:function"):
        wheels.install(bad_ep, SITE, BIN)
    (tmp_path / "s").mkdir()
    broken_ep = wheel_factory(
        tmp_path / "s", "bad", "1", {"bad/__init__.py": b""}, entry_points="[console_scripts\n"
    )
    with pytest.raises(ImageError, match=r"bad entry_points\.txt"):
        wheels.install(broken_ep, SITE, BIN)
    (tmp_path / "u").mkdir()
    scheme = wheel_factory(
        tmp_path / "u", "odd", "1", {"odd-1.data/weird/x": b"", "odd-1.data/headers": b""}
    )
    with pytest.raises(ImageError, match="unknown wheel data scheme 'weird'"):
        wheels.install(scheme, SITE, BIN)
    (tmp_path / "h").mkdir()
    headers = wheel_factory(
        tmp_path / "h", "hdr", "1", {"hdr-1.data/headers/h.h": b"", "hdr-1.data/purelib/p.py": b""}
    )
    got = {e.path for e in wheels.install(headers, SITE, BIN).entries}
    assert "usr/local/include/python3.11/hdr/h.h" in got and f"{SITE}/p.py" in got
