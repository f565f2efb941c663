"""Installing wheels into layer entries, the way ``installer`` would, but deterministic
and for another interpreter: files from the zip (``.data/`` scheme directories mapped),
console-script launchers with the image's ``#!/usr/bin/python3.11``, ``INSTALLER`` and
a rewritten ``RECORD`` that lists what is really installed (trimmed files left out,
bytecode added).
"""

from __future__ import annotations

import base64
import configparser
import csv
import email.parser
import hashlib
import io
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ci.files import sha256_file
from ci.image.deb_unpack import dropped
from ci.image.errors import ImageError
from ci.image.tarball import Entry

INSTALLER = "ci.image"
INTERPRETER = "/usr/bin/python3.11"
_LAUNCHER = """#!{interpreter}
# -*- coding: utf-8 -*-
import re
import sys
from {module} import {head}
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit({call}())
"""
_ENTRY = re.compile(r"^(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+))?\s*(\[.*\])?\s*$")


@dataclass(frozen=True)
class WheelMeta:
    """What a wheel's METADATA says about it."""

    name: str
    version: str
    requires: tuple[str, ...]
    license: str
    summary: str


@dataclass(frozen=True)
class Installed:
    """One installed distribution: its files, where its dist-info lives, its metadata."""

    meta: WheelMeta
    dist_info: str
    entries: tuple[Entry, ...]
    wheel_sha256: str


def _dist_info(names: Iterable[str], where: str) -> str:
    found = sorted({n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")})
    if len(found) != 1:
        raise ImageError(f"{where}: expected one .dist-info directory, found {len(found)}")
    return found[0]


def parse_metadata(text: str) -> WheelMeta:
    """Name, version, Requires-Dist, licence (expression first) and summary."""
    msg = email.parser.Parser().parsestr(text)
    license_text = msg.get("License-Expression") or msg.get("License") or ""
    if not license_text:
        classifiers = [
            c.rsplit("::", 1)[-1].strip()
            for c in msg.get_all("Classifier", [])
            if c.startswith("License ::")
        ]
        license_text = " AND ".join(classifiers)
    return WheelMeta(
        name=str(msg.get("Name", "")),
        version=str(msg.get("Version", "")),
        requires=tuple(str(r) for r in msg.get_all("Requires-Dist", [])),
        license=" ".join(str(license_text).split())[:200],
        summary=str(msg.get("Summary", "")),
    )


def read_meta(path: Path) -> WheelMeta:
    """The METADATA of a wheel file."""
    try:
        with zipfile.ZipFile(path) as zf:
            info = _dist_info(zf.namelist(), path.name)
            return parse_metadata(zf.read(f"{info}/METADATA").decode("utf-8"))
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ImageError(f"{path.name}: not a valid wheel ({exc})") from None


def requirements(
    meta: WheelMeta, environment: Mapping[str, str], extras: Sequence[str] = ()
) -> tuple[str, ...]:
    """Canonical names of the runtime requirements that apply to ``environment``."""
    out: set[str] = set()
    for raw in meta.requires:
        try:
            req = Requirement(raw)
        except InvalidRequirement:
            raise ImageError(f"{meta.name}: bad Requires-Dist {raw!r}") from None
        if req.marker is not None:
            try:
                applies = any(
                    req.marker.evaluate({**environment, "extra": e}) for e in ("", *extras)
                )
            except UndefinedEnvironmentName as exc:  # pragma: no cover - full env given
                raise ImageError(f"{meta.name}: marker needs {exc}") from None
            if not applies:
                continue
        out.add(canonicalize_name(req.name))
    return tuple(sorted(out))


def target_environment(python_full_version: str, machine: str = "x86_64") -> dict[str, str]:
    """PEP 508 marker values of the image's interpreter (Debian's CPython on Linux)."""
    major_minor = ".".join(python_full_version.split(".")[:2])
    return {
        "implementation_name": "cpython",
        "implementation_version": python_full_version,
        "os_name": "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": python_full_version,
        "python_version": major_minor,
        "sys_platform": "linux",
    }


def _launcher(spec: str, interpreter: str, where: str) -> bytes:
    match = _ENTRY.match(spec)
    if match is None or not match.group("attr"):
        raise ImageError(f"{where}: console script {spec!r} is not module:function")
    attr = match.group("attr")
    head = attr.split(".", 1)[0]
    return _LAUNCHER.format(
        interpreter=interpreter, module=match.group("module"), head=head, call=attr
    ).encode()


def _scripts(zf: zipfile.ZipFile, info: str, where: str) -> dict[str, str]:
    try:
        text = zf.read(f"{info}/entry_points.txt").decode("utf-8")
    except KeyError:
        return {}
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise ImageError(f"{where}: bad entry_points.txt ({exc})") from None
    return dict(parser["console_scripts"]) if parser.has_section("console_scripts") else {}


def install(
    path: Path,
    site: str,
    scripts: str,
    drop: Sequence[str] = (),
    keep: Sequence[str] = (),
    interpreter: str = INTERPRETER,
) -> Installed:
    """The entries a wheel installs under ``site`` (and ``scripts``), minus dropped paths.

    ``RECORD`` is not among them yet: ``finish`` writes it once bytecode is known.
    """
    where = path.name
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ImageError(f"{where}: not a valid wheel ({exc})") from None
    with zf:
        info = _dist_info(zf.namelist(), where)
        meta = parse_metadata(zf.read(f"{info}/METADATA").decode("utf-8"))
        data_dir = info.removesuffix(".dist-info") + ".data"
        entries: list[Entry] = []
        for member in sorted(zf.infolist(), key=lambda m: m.filename):
            name = member.filename
            if member.is_dir() or name == f"{info}/RECORD" or name.endswith(".pyc"):
                continue
            target = _target(name, data_dir, site, scripts, meta.name)
            if target is None or dropped(target, drop, keep):
                continue
            body = zf.read(member)
            executable = bool((member.external_attr >> 16) & 0o111)
            if name.startswith(f"{data_dir}/scripts/") and body.startswith(b"#!python"):
                body = f"#!{interpreter}".encode() + body[len(b"#!python") :]
                executable = True
            entries.append(Entry(target, "file", 0o755 if executable else 0o644, body))
        for script, spec in sorted(_scripts(zf, info, where).items()):
            if dropped(f"{scripts}/{script}", drop, keep):
                continue
            entries.append(
                Entry(f"{scripts}/{script}", "file", 0o755, _launcher(spec, interpreter, where))
            )
    entries.append(Entry(f"{site}/{info}/INSTALLER", "file", 0o644, f"{INSTALLER}\n".encode()))
    return Installed(meta, f"{site}/{info}", tuple(entries), sha256_file(path))


def _target(name: str, data_dir: str, site: str, scripts: str, dist: str) -> str | None:
    if not name.startswith(f"{data_dir}/"):
        return f"{site}/{name}"
    scheme, _, rest = name.removeprefix(f"{data_dir}/").partition("/")
    if not rest:
        return None
    prefix = str(PurePosixPath(site).parents[2])  # usr/local/lib/python3.11/x → usr/local
    places = {
        "purelib": site,
        "platlib": site,
        "scripts": scripts,
        "data": prefix,
        "headers": f"{prefix}/include/python3.11/{dist}",
    }
    if scheme not in places:
        raise ImageError(f"{name}: unknown wheel data scheme {scheme!r}")
    return f"{places[scheme]}/{rest}"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def finish(installed: Installed, bytecode: Iterable[Entry] = ()) -> tuple[Entry, ...]:
    """The distribution's entries plus its bytecode and a ``RECORD`` listing all of
    them with paths relative to site-packages, sorted."""
    site = PurePosixPath(installed.dist_info).parent
    files = [*installed.entries, *bytecode]
    record_path = f"{installed.dist_info}/RECORD"
    rows: list[tuple[str, str, str]] = []
    for entry in files:
        rel = _relative(PurePosixPath(entry.path), site)
        rows.append((rel, _record_hash(entry.data), str(len(entry.data))))
    rows.append((_relative(PurePosixPath(record_path), site), "", ""))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows(sorted(rows))
    record = Entry(record_path, "file", 0o644, buf.getvalue().encode())
    return (*files, record)


def _relative(path: PurePosixPath, site: PurePosixPath) -> str:
    try:
        return str(path.relative_to(site))
    except ValueError:
        shared = 0
        while (
            shared < min(len(path.parts), len(site.parts))
            and path.parts[shared] == site.parts[shared]
        ):
            shared += 1
        return "/".join([".."] * (len(site.parts) - shared) + list(path.parts[shared:]))
