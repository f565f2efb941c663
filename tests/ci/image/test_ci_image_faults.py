"""Fault injection: ``kill -9`` a warm build and a reproduce at seeded random points,
rerun, and check that the rerun gives the same digest, that no partial output is ever
trusted, and that no temporary bytes stay behind. Prints the table
operation → kill points → reruns ok → partial outputs trusted → bytes leaked."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from ci.image import build, engine, output

SEED = 24
KILLS = {"build": 3, "reproduce --out": 2}


def _run(argv: list[str], env: dict[str, str], kill_after: float | None) -> str | None:
    """Run ``python -m ci.image …`` in its own process group; kill -9 the whole group
    after ``kill_after`` seconds. The digest on success, None when killed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ci.image", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None
    assert proc.returncode == 0, err
    return out.strip().splitlines()[-1]


def _whole(out: Path, root: Path) -> bool:
    """Independently of --reuse: marker for these inputs, every blob re-hashed, the
    archive a complete tar, the digest file equal."""
    if output.current(out, build.fingerprint(root, engine.resolve(root, "HEAD").commit)):
        with tarfile.open(out / build.ARCHIVE_NAME) as tar:
            return len(tar.getmembers()) > 3
    return False


def _leaked(*dirs: Path) -> int:
    total = 0
    for base in dirs:
        if not base.exists():
            continue
        for path in base.iterdir():
            if path.name.startswith((output.TAG, "bot4-", "pip-")) or path.suffix == ".tmp":
                files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
                total += sum(p.lstat().st_size for p in files) or 1
    return total


def test_kill_9_anywhere(locked: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "PIP_NO_INDEX": "1"}
    base = ["--root", str(locked.root), "--cache", str(locked.cache)]
    out_dir = tmp_path / "out"
    started = time.monotonic()
    reference = _run([*base, "build", "--out", str(out_dir / "ref")], env, None)
    duration = time.monotonic() - started
    assert reference is not None
    rng = random.Random(SEED)
    rows = []
    for operation, kills in KILLS.items():
        span = duration * (2.5 if operation.startswith("reproduce") else 1.0)
        points, ok, trusted = [], 0, 0
        for i in range(kills):
            target = out_dir / f"{operation.split()[0]}-{i}"
            # a previous good output exists half of the time: it must survive a kill
            if i % 2:
                assert _run([*base, "build", "--out", str(target)], env, None) == reference
            point = round(rng.uniform(0.05, 0.95) * span, 2)
            points.append(point)
            argv = (
                [*base, "build", "--out", str(target), "--reuse"]
                if operation == "build"
                else [*base, "reproduce", "--out", str(target)]
            )
            _run(argv, env, point)
            if target.exists() and not _whole(target, locked.root):
                trusted += 1  # a partial output where a reader looks
            rerun = _run([*base, "build", "--out", str(target), "--reuse"], env, None)
            ok += rerun == reference and _whole(target, locked.root)
        leaked = _leaked(tmp, locked.cache, out_dir)
        rows.append((operation, ",".join(f"{p}s" for p in points), ok, trusted, leaked))
    lines = ["operation        kill points            reruns ok  partial trusted  bytes leaked"]
    lines += [f"{op:<16} {pts:<22} {ok:>9}  {tr:>15}  {lk:>12}" for op, pts, ok, tr, lk in rows]
    with capsys.disabled():
        print("\n" + "\n".join(lines), file=sys.stderr)
    for operation, _points, ok, trusted, leaked in rows:
        assert (ok, trusted, leaked) == (KILLS[operation], 0, 0), lines
