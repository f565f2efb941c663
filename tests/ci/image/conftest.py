"""Fixtures for the image toolkit: real .debs built with dpkg-deb, real wheels, a tiny
git project with its own image spec and lock, and a local file:// archive mirror.

The "python3.11-minimal" fixture package ships the host's dynamic loader and links to
the host's Debian CPython 3.11, so the build's bytecode step runs a real interpreter
without any network or a 100 MB download.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

HOST_PYTHON = Path("/usr/bin/python3.11")
HOST_LOADER = Path("/lib64/ld-linux-x86-64.so.2")
DEP5 = (
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
    "Upstream-Name: demo\n\nFiles: *\nCopyright: 2026 demo\nLicense: LGPL-2.1+\n\n"
    "Files: debian/*\nLicense: GPL-2+\n"
)
CERT = b"-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_deb(
    out_dir: Path,
    name: str,
    version: str,
    files: Mapping[str, bytes] | None = None,
    links: Mapping[str, str] | None = None,
    hardlinks: Mapping[str, str] | None = None,
    modes: Mapping[str, int] | None = None,
    depends: str = "",
    arch: str = "amd64",
    source: str = "",
    provides: str = "",
) -> Path:
    """A real .deb built with dpkg-deb."""
    root = out_dir / f"root-{name}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    control = [f"Package: {name}", f"Version: {version}", f"Architecture: {arch}"]
    control += ["Maintainer: t <t@example.invalid>", f"Description: {name} fixture", " more."]
    if depends:
        control.append(f"Depends: {depends}")
    if source:
        control.append(f"Source: {source}")
    if provides:
        control.append(f"Provides: {provides}")
    (root / "DEBIAN" / "control").write_text("\n".join(control) + "\n", encoding="utf-8")
    for path, data in (files or {}).items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod((modes or {}).get(path, 0o644))
    for path, dest in (links or {}).items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(dest)
    for path, dest in (hardlinks or {}).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        os.link(root / dest, root / path)
    deb = out_dir / f"{name}_{version.replace(':', '%3a')}_{arch}.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "-b", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(root)
    return deb


def paragraph(deb: Path, suite_dir: str = "main") -> str:
    """The Packages paragraph of a .deb in the fixture mirror's pool."""
    info = subprocess.run(
        ["dpkg-deb", "-f", str(deb)], check=True, capture_output=True, text=True
    ).stdout.strip()
    name = info.split("\n", 1)[0].split(": ", 1)[1]
    pool = f"pool/{suite_dir}/{name[0]}/{name}/{deb.name}"
    return f"{info}\nFilename: {pool}\nSize: {deb.stat().st_size}\nSHA256: {sha256_file(deb)}\n"


def make_wheel(
    out_dir: Path,
    name: str,
    version: str,
    files: Mapping[str, bytes],
    requires: tuple[str, ...] = (),
    license_line: str = "License-Expression: MIT",
    entry_points: str = "",
    executables: tuple[str, ...] = (),
) -> Path:
    """A real py3-none-any wheel (zip with dist-info, RECORD) per the wheel spec."""
    dist = f"{name.replace('-', '_')}-{version}"
    meta = ["Metadata-Version: 2.4", f"Name: {name}", f"Version: {version}", license_line]
    meta += [f"Requires-Dist: {r}" for r in requires]
    members = dict(files)
    members[f"{dist}.dist-info/METADATA"] = ("\n".join(meta) + "\n").encode()
    members[f"{dist}.dist-info/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: fixture\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    if entry_points:
        members[f"{dist}.dist-info/entry_points.txt"] = entry_points.encode()
    members[f"{dist}.dist-info/RECORD"] = b""
    path = out_dir / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in sorted(members.items()):
            info = zipfile.ZipInfo(member, (2020, 1, 1, 0, 0, 0))
            mode = 0o755 if member in executables else 0o644
            info.external_attr = (0o100000 | mode) << 16
            zf.writestr(info, data)
    return path


@dataclass(frozen=True)
class Distro:
    """A small Debian-like archive: .debs in a file:// pool and its Packages text."""

    mirror: Path
    debs: dict[str, Path]
    packages: str


def host_python_files() -> tuple[dict[str, bytes], dict[str, str], dict[str, int]]:
    """Files of the fixture python3.11-minimal: the host loader (a real file) and links
    to the host's interpreter, standard library and shared libraries."""
    loader = HOST_LOADER.resolve()
    files = {"lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": loader.read_bytes()}
    links = {
        "lib64/ld-linux-x86-64.so.2": "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "usr/bin/python3.11": str(HOST_PYTHON),
        "usr/lib/python3.11": "/usr/lib/python3.11",
        "usr/lib/x86_64-linux-gnu": "/usr/lib/x86_64-linux-gnu",
    }
    return files, links, {"lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": 0o755}


@pytest.fixture(scope="session")
def distro(tmp_path_factory: pytest.TempPathFactory) -> Distro:
    if not HOST_PYTHON.exists() or not HOST_LOADER.exists():
        pytest.skip("needs Debian's /usr/bin/python3.11 on the host")
    work = tmp_path_factory.mktemp("distro")
    files, links, modes = host_python_files()
    debs = {
        "python3.11-minimal": make_deb(
            work,
            "python3.11-minimal",
            "3.11.2-6+t1",
            files,
            links,
            None,
            modes,
            depends="libc6 (>= 2.36), debconf | debconf-2.0",
            source="python3.11",
        ),
        "libc6": make_deb(
            work,
            "libc6",
            "2.36-9+t1",
            {
                "usr/share/doc/libc6/copyright": DEP5.encode(),
                "usr/share/doc/libc6/README": b"x",
                "usr/share/man/man1/x.1": b"man",
                "etc/ld.so.conf": b"/usr/local/lib\n",
            },
            source="glibc (2.36-9+t1)",
        ),
        "ca-certificates": make_deb(
            work,
            "ca-certificates",
            "20250419",
            {
                "usr/share/ca-certificates/mozilla/A.crt": CERT,
                "usr/share/ca-certificates/mozilla/B.crt": CERT + b"\n",
            },
            arch="all",
            depends="debconf (>= 0.5) | debconf-2.0",
        ),
        "tzdata": make_deb(
            work,
            "tzdata",
            "2026a-0+t1",
            {"usr/share/zoneinfo/Etc/UTC": b"TZif2"},
            links={"usr/share/zoneinfo/UTC": "Etc/UTC"},
            arch="all",
        ),
        "debconf": make_deb(
            work, "debconf", "1.5.82", {"usr/bin/debconf": b"#!/bin/sh\n"}, arch="all"
        ),
    }
    mirror = work / "mirror"
    paragraphs = []
    for deb in debs.values():
        para = paragraph(deb)
        pool = next(line for line in para.splitlines() if line.startswith("Filename: "))[10:]
        (mirror / pool).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(deb, mirror / pool)
        paragraphs.append(para)
    return Distro(mirror, debs, "\n".join(paragraphs))


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    house = tmp_path_factory.mktemp("wheelhouse")
    make_wheel(
        house,
        "demo",
        "1.0",
        {
            "demo/__init__.py": b"VALUE = 1\n",
            "demo/bad.py": b"def broken(:\n",
            "demo/tests/test_demo.py": b"assert True\n",
            "demo/_native.so": b"\x7fELF",
            "demo-1.0.data/scripts/demo-tool": b"#!python\nprint('tool')\n",
            "demo-1.0.data/data/share/demo/notes.txt": b"notes\n",
        },
        requires=("demodep>=1", "extra-only; extra == 'x'", "winonly; sys_platform == 'win32'"),
        entry_points="[console_scripts]\ndemo = demo:main\ndemo-obj = demo.cli:App.run\n",
        executables=("demo/_native.so",),
    )
    make_wheel(house, "demodep", "2.0", {"demodep.py": b"X = 2\n"}, license_line="License: BSD")
    return house


SPEC = """\
[debian]
codename = "bookworm"
release = "12"
architecture = "amd64"
roots = ["ca-certificates", "python3.11-minimal", "tzdata"]
excludes = ["debconf", "debconf-2.0"]

[python]
lock = "locks/runtime.txt"
extras = []
python_version = "3.11"
platform = "manylinux_2_36_x86_64"
site_packages = "usr/local/lib/python3.11/dist-packages"
scripts = "usr/local/bin"

[paths]
drop = ["usr/share/doc/*", "usr/share/man/*", "usr/local/lib/python3.11/dist-packages/*/tests/*"]
keep = ["usr/share/doc/*/copyright"]
"""

PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "bot4"
version = "0.1.0"
license = "Apache-2.0"
requires-python = ">=3.11"
dependencies = ["demo==1.0"]

[project.optional-dependencies]
kms = ["boto3"]

[project.scripts]
bot4 = "bot4.cli:main"

[tool.hatch.build.targets.wheel]
packages = ["src/bot4"]
"""


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def make_project(root: Path, wheelhouse: Path) -> Path:
    """A git repository laid out like bot4's, with its own image spec and runtime lock."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q")
    git(root, "config", "user.email", "t@example.invalid")
    git(root, "config", "user.name", "t")
    (root / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (root / "README.md").write_text("# bot4 fixture\n", encoding="utf-8")
    (root / "LICENSE").write_text("Apache-2.0\n", encoding="utf-8")
    (root / "src" / "bot4").mkdir(parents=True)
    (root / "src" / "bot4" / "__init__.py").write_text('"""fixture"""\n', encoding="utf-8")
    (root / "src" / "bot4" / "cli.py").write_text(
        "import json, sys\n\n\ndef main() -> int:\n"
        "    if sys.argv[1:] == ['doctor', '--json']:\n"
        "        print(json.dumps({'python': '3.11', 'numpy': None, 'path': 'scalar'}))\n"
        "    else:\n"
        "        print('bot4 fixture', *sys.argv[1:])\n"
        "    return 0\n",
        encoding="utf-8",
    )
    (root / "ci" / "image").mkdir(parents=True)
    (root / "ci" / "image" / "image.toml").write_text(SPEC, encoding="utf-8")
    (root / "locks").mkdir()
    lines = []
    for wheel in sorted(wheelhouse.glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        lines.append(f"{name}=={version} \\\n    --hash=sha256:{sha256_file(wheel)}")
    (root / "locks" / "runtime.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    git(root, "add", "-A")
    env = {
        **os.environ,
        "GIT_COMMITTER_DATE": "2026-01-02T03:04:05Z",
        "GIT_AUTHOR_DATE": "2026-01-02T03:04:05Z",
    }
    subprocess.run(["git", "-C", str(root), "commit", "-q", "-m", "fixture"], check=True, env=env)
    return root


@pytest.fixture
def offline_pip(monkeypatch: pytest.MonkeyPatch, wheelhouse: Path) -> Path:
    """pip reads these: no index, only the fixture wheelhouse."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheelhouse))
    return wheelhouse


@dataclass(frozen=True)
class Locked:
    """A fixture project with image.lock made and every input in the cache."""

    root: Path
    cache: Path
    packages: Path


@pytest.fixture(scope="session")
def locked(tmp_path_factory: pytest.TempPathFactory, distro: Distro, wheelhouse: Path) -> Locked:
    from ci.image.cli import main

    work = tmp_path_factory.mktemp("locked")
    root = make_project(work / "repo", wheelhouse)
    packages = work / "Packages"
    packages.write_text(distro.packages, encoding="utf-8")
    cache = work / "cache"
    old = {k: os.environ.get(k) for k in ("PIP_NO_INDEX", "PIP_FIND_LINKS")}
    os.environ.update({"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse)})
    try:
        code = main(
            ["--root", str(root), "--cache", str(cache), "lock", "--index", f"bookworm={packages}"]
        )
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert code == 0
    # The build reads .debs from the cache: put the fixture debs there by digest.
    for deb in distro.debs.values():
        target = cache / "sha256" / sha256_file(deb)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(deb, target)
    git(root, "add", "-A")
    env = {
        **os.environ,
        "GIT_COMMITTER_DATE": "2026-01-02T03:04:06Z",
        "GIT_AUTHOR_DATE": "2026-01-02T03:04:06Z",
    }
    subprocess.run(["git", "-C", str(root), "commit", "-q", "-m", "lock"], check=True, env=env)
    return Locked(root, cache, packages)


@pytest.fixture
def deb_factory() -> object:
    """``make_deb`` as a fixture (test modules cannot import conftest in importlib mode)."""
    return make_deb


@pytest.fixture
def wheel_factory() -> object:
    """``make_wheel`` as a fixture."""
    return make_wheel


@pytest.fixture
def paragraph_of() -> object:
    """``paragraph`` as a fixture."""
    return paragraph


@pytest.fixture
def project_factory() -> object:
    """``make_project`` as a fixture."""
    return make_project


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, locked: Locked) -> Path:
    """The fixture project's image, built once: its output directory."""
    from ci.image import build
    from ci.image.fetch import Cache

    out = tmp_path_factory.mktemp("built")
    build.build(locked.root, out, Cache(locked.cache), ["pip"])
    return out


def can_run_containers() -> bool:
    return os.geteuid() == 0 and shutil.which("runc") is not None


# Host directories bound read-only into the fixture image so its interpreter links resolve.
HOST_BINDS = (("/usr/bin", "/usr/bin"), ("/usr/lib", "/usr/lib"))
