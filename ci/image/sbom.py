"""The image's CycloneDX 1.6 SBOM: every locked .deb and wheel and the engine, with
purls, sha256 hashes, Debian source packages and licences.

Two forms. ``sbom/bot4-image.cdx.json`` (committed, drift-checked) is a pure function
of ``image.lock`` and the engine's version, so it changes only when the inputs do. The
per-build SBOM written next to the image adds what exists only after a build: the
manifest digest as the metadata component's hash and purl, the engine wheel's hash and
the build time (SOURCE_DATE_EPOCH). Both are validated and byte-stable.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from packageurl import PackageURL

from ci.image.assembly import timestamp
from ci.image.deb_unpack import unpack
from ci.image.errors import ImageError
from ci.image.fetch import Cache
from ci.image.lock_format import DebPin, Lock, WheelPin
from ci.image.wheels import read_meta
from ci.supply_chain.sbom import serialize, validate

SBOM_FILE = "sbom/bot4-image.cdx.json"
IMAGE_REF = "bot4-image"
_NAMESPACE = uuid.UUID("6f1c2a44-1d1c-4f51-9a53-0c1d6d1f2b40")


@dataclass(frozen=True)
class Engine:
    """The engine component: its version, and its wheel's sha256 once built."""

    name: str
    version: str
    sha256: str | None = None


def deb_purl(pin: DebPin, release: str) -> str:
    """``pkg:deb/debian/NAME@VERSION?arch=…&distro=debian-12``, encoded by packageurl-python
    (``libstdc++6`` → ``libstdc%2B%2B6``)."""
    qualifiers = {"arch": pin.architecture, "distro": f"debian-{release}"}
    return PackageURL(
        type="deb", namespace="debian", name=pin.name, version=pin.version, qualifiers=qualifiers
    ).to_string()


def pypi_purl(name: str, version: str) -> str:
    """``pkg:pypi/name@version`` normalised by packageurl-python (dots kept: jaraco.classes)."""
    return PackageURL(type="pypi", name=name, version=version).to_string()


def _licenses(names: Sequence[str], expression: str | None = None) -> list[dict[str, Any]]:
    if expression:
        return [{"expression": expression}]
    return [{"license": {"name": n}} for n in names]


def deb_component(pin: DebPin, release: str, licenses: Sequence[str]) -> dict[str, Any]:
    """One .deb as a component."""
    purl = deb_purl(pin, release)
    comp: dict[str, Any] = {
        "type": "library",
        "bom-ref": purl,
        "name": pin.name,
        "version": pin.version,
        "purl": purl,
        "hashes": [{"alg": "SHA-256", "content": pin.sha256}],
        "properties": [
            {"name": "debian:source", "value": pin.source},
            {"name": "debian:source-version", "value": pin.source_version},
            {"name": "debian:suite", "value": pin.suite},
            {"name": "debian:filename", "value": pin.filename},
        ],
    }
    if licenses:
        comp["licenses"] = _licenses(licenses)
    return comp


def wheel_component(pin: WheelPin, license_text: str) -> dict[str, Any]:
    """One wheel as a component."""
    purl = pypi_purl(pin.name, pin.version)
    comp: dict[str, Any] = {
        "type": "library",
        "bom-ref": purl,
        "name": pin.name,
        "version": pin.version,
        "purl": purl,
        "hashes": [{"alg": "SHA-256", "content": pin.sha256}],
        "properties": [{"name": "python:wheel", "value": pin.filename}],
    }
    if license_text:
        comp["licenses"] = _license_field(license_text)
    return comp


def _license_field(text: str) -> list[dict[str, Any]]:
    from license_expression import ExpressionError, get_spdx_licensing  # noqa: PLC0415 - slow import

    try:
        parsed = get_spdx_licensing().parse(text, validate=True, strict=True)
    except ExpressionError:
        return _licenses([text])
    return _licenses([], str(parsed)) if parsed is not None else _licenses([text])


def build_bom(
    lock: Lock,
    release: str,
    deb_licenses: Mapping[str, Sequence[str]],
    wheel_licenses: Mapping[str, str],
    engine: Engine,
    digest: str | None = None,
    epoch: int | None = None,
) -> dict[str, Any]:
    """The SBOM document; without ``digest`` it is the committed, commit-independent form."""
    components = [
        deb_component(d, release, deb_licenses.get(d.name, ()))
        for d in sorted(lock.debs, key=lambda d: d.name)
    ]
    components += [
        wheel_component(w, wheel_licenses.get(w.name, ""))
        for w in sorted(lock.wheels, key=lambda w: w.name)
    ]
    engine_purl = pypi_purl(engine.name, engine.version)
    own: dict[str, Any] = {
        "type": "application",
        "bom-ref": engine_purl,
        "name": engine.name,
        "version": engine.version,
        "purl": engine_purl,
        "licenses": [{"expression": "Apache-2.0"}],
    }
    if engine.sha256:
        own["hashes"] = [{"alg": "SHA-256", "content": engine.sha256}]
    components.append(own)
    image: dict[str, Any] = {
        "type": "container",
        "bom-ref": IMAGE_REF,
        "name": "bot4",
        "version": engine.version,
    }
    seed = f"{lock.spec_sha256}:{lock.runtime_lock_sha256}:{engine.version}"
    if digest:
        image["hashes"] = [{"alg": "SHA-256", "content": digest.removeprefix("sha256:")}]
        image["purl"] = f"pkg:oci/bot4@{quote(digest, safe='')}"
        seed = digest
    metadata: dict[str, Any] = {"component": image}
    if epoch is not None:
        metadata["timestamp"] = timestamp(epoch)
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid5(_NAMESPACE, seed)}",
        "version": 1,
        "metadata": metadata,
        "components": components,
        "dependencies": [{"ref": IMAGE_REF, "dependsOn": sorted(c["bom-ref"] for c in components)}],
    }


def collect_licenses(lock: Lock, cache: Cache) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """Licences from the cached inputs: DEP-5 copyright files and wheel METADATA, each read
    from a private copy of exactly the bytes checked against the lock."""
    debs: dict[str, tuple[str, ...]] = {}
    wheels: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bot4-sbom-") as tmp:
        for pin in lock.debs:
            copy = cache.copy_to(
                pin.sha256, Path(tmp) / Path(pin.filename).name, f"{pin.name} {pin.version}"
            )
            debs[pin.name] = unpack(copy, drop=["*"], keep=["usr/share/doc/*/copyright"]).licenses
        for wheel in lock.wheels:
            copy = cache.copy_to(wheel.sha256, Path(tmp) / wheel.filename, wheel.filename)
            wheels[wheel.name] = read_meta(copy).license
    return debs, wheels


def render(bom: Mapping[str, Any]) -> str:
    """Serialise (sorted keys) and validate against the CycloneDX 1.6 schema."""
    text = serialize(bom)
    validate(text)
    return text


def engine_version(pyproject: Path) -> str:
    """The engine's version from pyproject.toml."""
    from ci.compat import tomllib  # noqa: PLC0415

    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    version = data.get("project", {}).get("version")
    if not isinstance(version, str):
        raise ImageError(f"{pyproject}: [project] version is missing")
    return version
