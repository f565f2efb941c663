"""The test layer: the tests dependency group resolved (with extras) from the hashed lock,
with the image's own distributions left to the image."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from ci.gate.requirements import applicable, parse_lock
from ci.image import testrun
from ci.image.errors import ImageError
from ci.image.fetch import Cache, find_pip
from ci.image.lock_format import SPEC_FILE, read_spec
from ci.image.lock_resolve import WheelFetcher
from ci.image.wheels import target_environment


def test_group_roots(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[dependency-groups]\ntests = ["srv[server]>=1"]\n', encoding="utf-8")
    assert [str(r) for r in testrun.group_roots(pyproject)] == ["srv[server]>=1"]
    pyproject.write_text("[project]\nname = 'x'\n", encoding="utf-8")
    with pytest.raises(ImageError, match=r"no \[dependency-groups\] tests"):
        testrun.group_roots(pyproject)


def test_closure_follows_extras_through_the_lock(
    locked: Any, tmp_path: Path, wheel_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    house = tmp_path / "house"
    house.mkdir()
    wheels = [
        wheel_factory(
            house, "srv", "1.0", {"srv.py": b""}, requires=("flaskish; extra == 'server'",)
        ),
        wheel_factory(house, "flaskish", "2.0", {"flaskish.py": b""}, requires=("plain",)),
        wheel_factory(house, "plain", "3.0", {"plain.py": b""}),
        wheel_factory(house, "unused", "4.0", {"unused.py": b""}),
    ]
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(house))
    lines = []
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lines.append(f"{name}=={version} --hash=sha256:{digest}")
    env = target_environment("3.11.2")
    pins = applicable(parse_lock("\n".join(lines) + "\n", "toolchain.txt"), env)
    fetcher = WheelFetcher(
        Cache(tmp_path / "cache"), find_pip(None), read_spec(locked.root / SPEC_FILE)
    )
    roots = testrun.group_roots_from(["srv[server]"])
    assert sorted(testrun.closure(roots, dict(pins), fetcher, env)) == ["flaskish", "plain", "srv"]
    assert sorted(testrun.closure(testrun.group_roots_from(["srv"]), dict(pins), fetcher, env)) == [
        "srv"
    ]
    with pytest.raises(ImageError, match="missing is needed by the tests but not pinned"):
        testrun.closure(testrun.group_roots_from(["missing"]), dict(pins), fetcher, env)
