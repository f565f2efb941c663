"""The image SBOM: committed (lock-only) and per-build (with the digest) forms."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ci.image import lock_format, sbom
from ci.image.errors import ImageError
from ci.image.fetch import Cache
from ci.supply_chain.sbom import validate


def test_committed_form_is_valid_stable_and_complete(locked: Any) -> None:
    lock = lock_format.read_lock(locked.root / "image.lock")
    debs, wheels = sbom.collect_licenses(lock, Cache(locked.cache))
    assert debs["libc6"] == ("LGPL-2.1+", "GPL-2+") and debs["tzdata"] == ()
    assert wheels == {"demo": "MIT", "demodep": "BSD"}
    engine = sbom.Engine("bot4", sbom.engine_version(locked.root / "pyproject.toml"))
    text = sbom.render(sbom.build_bom(lock, "12", debs, wheels, engine))
    assert text == sbom.render(sbom.build_bom(lock, "12", debs, wheels, engine))
    bom = json.loads(text)
    assert bom["specVersion"] == "1.6" and "timestamp" not in bom["metadata"]
    assert "hashes" not in bom["metadata"]["component"]
    comps = {c["name"]: c for c in bom["components"]}
    assert set(comps) == {d.name for d in lock.debs} | {w.name for w in lock.wheels} | {"bot4"}
    assert comps["libc6"]["licenses"] == [
        {"license": {"name": "LGPL-2.1+"}},
        {"license": {"name": "GPL-2+"}},
    ]
    assert comps["demo"]["licenses"] == [{"expression": "MIT"}]
    assert comps["demodep"]["licenses"] == [{"license": {"name": "BSD"}}]
    assert {"name": "debian:source", "value": "glibc"} in comps["libc6"]["properties"]
    assert comps["libc6"]["hashes"][0]["content"] == next(
        d.sha256 for d in lock.debs if d.name == "libc6"
    )
    assert bom["dependencies"][0]["ref"] == "bot4-image"


def test_build_form_carries_the_digest(locked: Any) -> None:
    lock = lock_format.read_lock(locked.root / "image.lock")
    digest = "sha256:" + "ab" * 32
    bom = sbom.build_bom(lock, "12", {}, {}, sbom.Engine("bot4", "0.1.0", "cd" * 32), digest, 0)
    validate(sbom.render(bom))
    assert bom["metadata"]["timestamp"] == "1970-01-01T00:00:00Z"
    assert bom["metadata"]["component"]["purl"] == "pkg:oci/bot4@sha256%3A" + "ab" * 32
    own = next(c for c in bom["components"] if c["name"] == "bot4")
    assert own["hashes"] == [{"alg": "SHA-256", "content": "cd" * 32}]


def test_purls() -> None:
    pin = lock_format.DebPin(
        "libc6",
        "2.36-9+deb12u7",
        "amd64",
        "glibc",
        "2.36-9+deb12u7",
        "bookworm",
        "pool/x",
        1,
        "a" * 64,
    )
    assert (
        sbom.deb_purl(pin, "12")
        == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u7?arch=amd64&distro=debian-12"
    )
    assert sbom.pypi_purl("Prometheus_Client", "0.26.0") == "pkg:pypi/prometheus-client@0.26.0"
    assert sbom.pypi_purl("jaraco.classes", "3.4.0") == "pkg:pypi/jaraco.classes@3.4.0"
    cxx = dataclasses.replace(pin, name="libstdc++6", version="12.2.0-14+deb12u1")
    assert sbom.deb_purl(cxx, "12") == (
        "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14%2Bdeb12u1?arch=amd64&distro=debian-12"
    )


def test_missing_inputs(locked: Any, tmp_path: Path) -> None:
    lock = lock_format.read_lock(locked.root / "image.lock")
    with pytest.raises(ImageError, match="not in the download cache"):
        sbom.collect_licenses(lock, Cache(tmp_path))
    only_debs = tmp_path / "only-debs"
    for pin in lock.debs:
        (only_debs / "sha256").mkdir(parents=True, exist_ok=True)
        (only_debs / "sha256" / pin.sha256).write_bytes(
            Cache(locked.cache).path(pin.sha256).read_bytes()
        )
    with pytest.raises(ImageError, match=r"\.whl is not in the download cache"):
        sbom.collect_licenses(lock, Cache(only_debs))
    (tmp_path / "pyproject.toml").write_text("[project]\n", encoding="utf-8")
    with pytest.raises(ImageError, match="version is missing"):
        sbom.engine_version(tmp_path / "pyproject.toml")


def test_a_tampered_cache_entry_is_not_read_for_licences(locked: Any, tmp_path: Path) -> None:
    lock = lock_format.read_lock(locked.root / "image.lock")
    cache = Cache(tmp_path / "cache")
    shutil.copytree(locked.cache, cache.root)
    libc = next(d for d in lock.debs if d.name == "libc6")
    cache.path(libc.sha256).write_bytes(b"!<arch>\nnot libc\n")
    with pytest.raises(ImageError, match=r"libc6 .*changed after its sha256 was checked"):
        sbom.collect_licenses(lock, cache)
    assert not cache.path(libc.sha256).exists()
