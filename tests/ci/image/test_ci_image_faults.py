"""Fault injection: ``kill -9`` a warm build, a reproduce, a push to a real registry on
loopback and an engine run writing its audit log, at seeded random points; rerun, and check
that the rerun gives the same digest (or a clean log), that no partial output is ever
trusted (a layout, a tag whose blobs are missing, an audit log that verifies OK or looks
tampered), and that no temporary bytes stay behind. Prints the table
operation → kill points → reruns ok → partial outputs trusted → bytes leaked."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from ci.image import build, engine, output
from ci.release.local_registry import LocalRegistry, find_binary
from ci.release.registry import Registry

SEED = 24
KILLS = {"build": 3, "reproduce --out": 2, "push": 3, "bot4 run": 3}
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
# What a killed engine run may leave, as `bot4 audit verify` says it: a crash, never OK,
# never a verdict that names a record or a checkpoint (tampering).
CRASH_FINDINGS = ("FAILED: run did not close cleanly", "FAILED: torn tail", "FAILED: unsigned tail")


def _run(
    argv: list[str], env: dict[str, str], kill_after: float | None, module: str = "ci.image"
) -> str | None:
    """Run ``python -m MODULE …`` in its own process group; kill -9 the whole group
    after ``kill_after`` seconds. The last stdout line on success, None when killed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *argv],
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


def _push_whole(registry: Registry, repo: str, tag: str) -> bool | None:
    """None when the tag does not exist; else whether everything it leads to is there."""
    manifest = registry.find_manifest(repo, tag)
    if manifest is None:
        return None
    doc = manifest.json()
    return all(
        registry.has_blob(repo, str(desc["digest"])) for desc in [doc["config"], *doc["layers"]]
    )


def _push_rows(
    rng: random.Random, env: dict[str, str], layout: Path, reference: str, workdir: Path
) -> tuple[str, str, int, int, int]:
    """kill -9 ``python -m ci.release push`` into a real registry on loopback."""
    if find_binary() is None:
        pytest.fail("docker-registry is not installed (Debian package docker-registry)")
    with LocalRegistry(workdir / "registry", host="127.0.0.1") as running:
        registry = running.client()
        started = time.monotonic()
        ref = f"{running.host}/faults/reference:0.1.0"
        assert _run(["push", str(layout), ref], env, None, "ci.release") == reference
        span = time.monotonic() - started
        points, ok, trusted = [], 0, 0
        for i in range(KILLS["push"]):
            repo = f"faults/p{i}"
            point = round(rng.uniform(0.05, 0.95) * span, 2)
            points.append(point)
            target = f"{running.host}/{repo}:0.1.0"
            _run(["push", str(layout), target], env, point, "ci.release")
            trusted += _push_whole(registry, repo, "0.1.0") is False  # a tag over holes
            rerun = _run(["push", str(layout), target], env, None, "ci.release")
            ok += rerun == reference and _push_whole(registry, repo, "0.1.0") is True
            ok -= registry.resolve(repo, "0.1.0") != reference
    return "push", ",".join(f"{p}s" for p in points), ok, trusted, 0


def _verify(log: Path, pub: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "bot4", "audit", "verify", str(log), "--key", str(pub)]
    return subprocess.run(argv, capture_output=True, text=True, check=False, env=env)


def _engine_rows(
    rng: random.Random, env: dict[str, str], workdir: Path
) -> tuple[str, str, int, int, int]:
    """kill -9 ``bot4 run --audit-log`` while it writes; ``bot4 audit verify`` must say the
    run did not close (never OK, never tampering); a rerun on the same log closes it."""
    env = {**env, "BOT4_SECRETS_DIR": str(workdir / "secrets")}
    for name in ("BOT4_SECRETS", "BOT4_AUDIT_KEY"):
        env.pop(name, None)
    pub = workdir / "audit.pub"
    keygen = [sys.executable, "-m", "bot4", "audit", "keygen", "--public-out", str(pub)]
    subprocess.run(keygen, check=True, env=env, capture_output=True)
    scenario = [str(EXAMPLES / "reverting.toml"), "--engine", str(EXAMPLES / "engine.toml")]
    points, ok, trusted = [], 0, 0
    for i in range(KILLS["bot4 run"]):
        log = workdir / f"audit-{i}.jsonl"
        argv = [sys.executable, "-m", "bot4", "run", *scenario, "--audit-log", str(log)]
        argv += ["--duration", "1000000", "--checkpoint-every", "4"]
        with subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, start_new_session=True
        ) as proc:
            deadline = time.monotonic() + 60
            while not log.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            point = round(rng.uniform(0.0, 1.5), 2)  # seconds after the first record
            points.append(point)
            time.sleep(point)
            os.killpg(proc.pid, signal.SIGKILL)
        verdict = _verify(log, pub, env)
        failed = [x for x in verdict.stdout.splitlines() if x.startswith("FAILED")]
        crash_only = (
            verdict.returncode == 1
            and any(x.startswith(CRASH_FINDINGS[0]) for x in failed)
            and all(x.startswith(CRASH_FINDINGS) for x in failed)
            and not any(x.startswith("OK") for x in verdict.stdout.splitlines())
        )
        trusted += not crash_only
        rerun = [*argv[:-4], "--duration", "20", "--checkpoint-every", "4"]
        done = subprocess.run(rerun, env=env, capture_output=True, text=True, check=False)
        after = _verify(log, pub, env)
        ok += done.returncode == 0 and after.returncode == 0
        ok -= not after.stdout.splitlines()[-1].startswith("OK: ")
    return "bot4 run", ",".join(f"+{p}s" for p in points), ok, trusted, 0


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
    for operation in ("build", "reproduce --out"):
        kills = KILLS[operation]
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
    push = _push_rows(rng, env, out_dir / "ref" / "oci", reference, tmp_path)
    rows.append((*push[:4], _leaked(tmp, out_dir)))
    engine_dir = tmp_path / "engine"
    engine_dir.mkdir()
    run = _engine_rows(rng, env, engine_dir)
    rows.append((*run[:4], _leaked(tmp, engine_dir)))
    lines = ["operation        kill points            reruns ok  partial trusted  bytes leaked"]
    lines += [f"{op:<16} {pts:<22} {ok:>9}  {tr:>15}  {lk:>12}" for op, pts, ok, tr, lk in rows]
    with capsys.disabled():
        print("\n" + "\n".join(lines), file=sys.stderr)
    for operation, _points, ok, trusted, leaked in rows:
        assert (ok, trusted, leaked) == (KILLS[operation], 0, 0), lines


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(proc.stdout)


def test_a_release_command_reclaims_what_a_killed_one_left(tmp_path: Path) -> None:
    """``python -m ci.release`` sweeps the scratch of a dead run and leaves none of its own,
    even when it fails (here: a malformed reference, exit 2)."""
    left = tmp_path / f"{output.TAG}-run-{_dead_pid()}-abcd1234"
    (left / "bot4-deploy-x").mkdir(parents=True)
    (left / "bot4-deploy-x" / "layer").write_bytes(b"x" * 4096)
    live = tmp_path / f"{output.TAG}-run-{os.getpid()}-keepme00"  # a running process's
    live.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "ci.release", "resolve", "Not A Reference"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name]


def test_short_scratch_sits_outside_the_run_directory(tmp_path: Path) -> None:
    """Daemon sockets need short paths: short_scratch is made beside the run's $TMPDIR,
    not in it, and removed afterwards."""
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmp_path)
    tempfile_dir = tempfile.tempdir
    tempfile.tempdir = None
    try:
        with output.run_scratch() as run:
            assert output.outer_tmp() == tmp_path
            with output.short_scratch("hc") as short:
                assert short.parent == tmp_path and short != run
                assert short.name.startswith(f"{output.TAG}-hc-{os.getpid()}-")
            assert not short.exists()
        assert list(tmp_path.iterdir()) == []
    finally:
        tempfile.tempdir = tempfile_dir
        if saved is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved
