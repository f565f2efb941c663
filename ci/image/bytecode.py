"""Bytecode compiled by the image's own interpreter, hash-based, so it is identical on
every build host and valid in a read-only rootfs.

The base layer is written to a scratch directory and its ``python3.11`` is started
through its own dynamic loader (no chroot, no root): the bytecode therefore comes from
the exact locked CPython build, not from whatever Python runs the build.
``UNCHECKED_HASH`` pycs embed a hash of their source instead of an mtime, and the
interpreter never rewrites them (the rootfs is immutable).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from ci.image.errors import ImageError
from ci.image.tarball import Entry, complete

LOADERS = (
    "lib64/ld-linux-x86-64.so.2",
    "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
)
LIBRARY_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu")
# Runs inside the image's interpreter: compile each listed source; print each pyc path.
_SCRIPT = """
import importlib.util, py_compile, sys
src_root, out_root = sys.argv[1], sys.argv[2]
for line in sys.stdin.read().splitlines():
    dfile = "/" + line
    cfile = importlib.util.cache_from_source(dfile)
    try:
        py_compile.compile(src_root + dfile, cfile=out_root + cfile, dfile=dfile, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except py_compile.PyCompileError:
        continue
    print(cfile[1:])
"""


def materialize(entries: Iterable[Entry], dest: Path) -> None:
    """Write entries as real files under ``dest`` (owners ignored: no root needed)."""
    for entry in complete(entries):
        target = dest / entry.path
        if entry.kind == "dir":
            target.mkdir(exist_ok=True)
            target.chmod(0o755)
        elif entry.kind == "file":
            target.write_bytes(entry.data)
            target.chmod(entry.mode & 0o777)
        elif entry.kind == "symlink":
            target.symlink_to(entry.linkname)
        else:
            os.link(dest / entry.linkname, target)


def interpreter_argv(rootfs: Path, python: str = "usr/bin/python3.11") -> list[str]:
    """The command that runs the rootfs's python with the rootfs's loader and libraries."""
    loader = next(
        (rootfs / p for p in LOADERS if (rootfs / p).is_file() and not (rootfs / p).is_symlink()),
        None,
    )
    if loader is None:
        raise ImageError("the base layer has no dynamic loader (is libc6 locked?)")
    libs = ":".join(str(rootfs / d) for d in LIBRARY_DIRS)
    return [str(loader), "--library-path", libs, str(rootfs / python)]


def compile_sources(rootfs: Path, sources: Sequence[Entry]) -> list[Entry]:
    """Compile ``.py`` entries with the rootfs's interpreter; return the pyc entries.

    Sources are written into ``rootfs`` at their image paths; files that do not compile
    under this Python (vendored py2 examples and the like) get no pyc, as with pip.
    """
    todo = sorted(
        {e.path: e for e in sources if e.kind == "file" and e.path.endswith(".py")}.values(),
        key=lambda e: e.path,
    )
    if not todo:
        return []
    for entry in todo:
        target = rootfs / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(entry.data)
    out_root = rootfs.parent / (rootfs.name + ".pyc")
    env = {
        "PYTHONHOME": str(rootfs / "usr"),
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }
    argv = [*interpreter_argv(rootfs), "-S", "-s", "-c", _SCRIPT, str(rootfs), str(out_root)]
    result = subprocess.run(  # noqa: S603  # nosec B603
        argv,
        input="\n".join(e.path for e in todo),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ImageError(f"the image's python could not compile bytecode: {detail}")
    return [
        Entry(rel, "file", 0o644, (out_root / rel).read_bytes()) for rel in result.stdout.split()
    ]
