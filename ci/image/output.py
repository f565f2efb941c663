"""Outputs that are whole or absent, and temporary space the next run reclaims.

Every output directory is built in a sibling scratch directory, completed (its
``complete.json`` marker written last, naming the inputs it was built from) and then
swapped into place in one ``renameat2(RENAME_EXCHANGE)`` step, so a ``kill -9`` leaves
either the old output or the new one, never a mix. Scratch directories are named
``.bot4-tmp-<kind>-<pid>-…``: a later run removes those whose process is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from ci.oci.errors import OCIError
from ci.oci.layout import Layout
from ci.oci.manifest import children

TAG = ".bot4-tmp"
MARKER = "complete.json"
_LEFTOVER = re.compile(rf"^{re.escape(TAG)}-[a-z]+-(\d+)-")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_outer: list[Path] = []  # the temporary directory each active run_scratch() replaced


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def scratch(parent: Path, kind: str) -> Path:
    """A new scratch directory in ``parent`` that a later run can attribute to this one."""
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{TAG}-{kind}-{os.getpid()}-", dir=parent))


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*"))


def sweep(parent: Path) -> int:
    """Remove the scratch directories in ``parent`` left by dead processes; bytes freed."""
    freed = 0
    with contextlib.suppress(OSError):
        for path in parent.iterdir():
            match = _LEFTOVER.match(path.name)
            if match and int(match[1]) != os.getpid() and not _alive(int(match[1])):
                with contextlib.suppress(OSError):
                    freed += _size(path)
                shutil.rmtree(path, ignore_errors=True)
    return freed


@contextlib.contextmanager
def run_scratch() -> Iterator[Path]:
    """One scratch directory for this run, used as ``$TMPDIR`` by this process and every
    child (pip, hatchling, the image's interpreter), removed at the end; leftovers of
    killed runs are swept first."""
    base = Path(tempfile.gettempdir())
    sweep(base)
    run = scratch(base, "run")
    saved_env, saved_dir = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = str(run)
    tempfile.tempdir = str(run)
    _outer.append(base)
    try:
        yield run
    finally:
        _outer.pop()
        tempfile.tempdir = saved_dir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        shutil.rmtree(run, ignore_errors=True)


def outer_tmp() -> Path:
    """The temporary directory outside this run's scratch (for the few paths that must
    stay short, e.g. podman's runroot); a scratch made there is still swept."""
    return _outer[-1] if _outer else Path(tempfile.gettempdir())


@contextlib.contextmanager
def short_scratch(kind: str) -> Iterator[Path]:
    """A scratch directory directly in the temporary directory outside this run's own
    (daemons' unix sockets must stay under 108 bytes); removed at the end, swept if killed."""
    path = scratch(outer_tmp(), kind)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False when unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except AttributeError:
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes += [ctypes.c_uint]
    code = renameat2(_AT_FDCWD, bytes(a), _AT_FDCWD, bytes(b), _RENAME_EXCHANGE)
    if code == 0:
        return True
    err = ctypes.get_errno()
    if err in {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}:
        return False
    raise OSError(err, os.strerror(err), str(b))


def publish(staged: Path, final: Path) -> None:
    """Put the completed ``staged`` directory at ``final`` in one step; the previous
    output (if any) is removed only after that."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and _exchange(staged, final):
        shutil.rmtree(staged, ignore_errors=True)  # now holds the previous output
        return
    if final.exists():  # no atomic swap here: move the old one aside first
        old = scratch(final.parent, "old")
        final.rename(old / "previous")
        staged.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        return
    staged.rename(final)


def stamp(staged: Path, inputs: Mapping[str, str], digest: str) -> None:
    """Write the completion marker (last, after every other file of the output)."""
    body = json.dumps({"digest": digest, "inputs": dict(inputs)}, sort_keys=True, indent=1)
    path = staged / MARKER
    with path.open("w", encoding="utf-8") as handle:
        handle.write(body + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    path.chmod(0o644)


def current(out: Path, inputs: Mapping[str, str]) -> str | None:
    """The digest of the build in ``out`` when its marker names exactly ``inputs`` and
    its layout is whole (index → manifest → config and layers, every blob re-hashed);
    else None, and the caller rebuilds."""
    try:
        marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
        if marker.get("inputs") != dict(inputs):
            return None
        digest = str(marker["digest"])
        layout = Layout(out / "oci")
        top = layout.select()
        if top.digest != digest:
            return None
        blobs, _ = children(top)
        for desc in blobs:
            layout.blob(str(desc["digest"]))
        if (out / "digest").read_text(encoding="utf-8").strip() != digest:
            return None
    except (OCIError, OSError, KeyError, TypeError, ValueError):
        return None
    return digest
