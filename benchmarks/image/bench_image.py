"""Image build benchmark: ci.image vs a distroless-style and a slim-style reference,
all rebuilt in the same run on this machine.

- ours: ``python -m ci.image build`` cold (empty download cache) and warm (cache full).
- distroless-style: ``mmdebstrap --variant=extract`` of the same Debian roots (python3.11
  closure, CA certificates, tzdata, netbase, libstdc++6) plus the same wheels unpacked.
- slim-style: ``mmdebstrap --variant=minbase`` + python3.11 + a venv with the same
  wheels installed by pip inside the chroot (like ``python:3.11-slim`` + ``pip install``).

Sizes: uncompressed = the layer tars' bytes; gzip = level 6. The references need root
and mmdebstrap (``apt-get install mmdebstrap``); they fetch from the apt mirror.

    python benchmarks/image/bench_image.py            # everything (≈ 2 min)
    python benchmarks/image/bench_image.py --quick    # ours warm + distroless-style
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ci.image import lock_format  # noqa: E402
from ci.image.fetch import Cache, default_cache  # noqa: E402

SOURCE_DATE_EPOCH = "1767225600"


def gzip_size(path: Path) -> int:
    """Bytes after gzip level 6, streamed."""
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    total = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            total += len(comp.compress(chunk))
    return total + len(comp.flush())


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {result.stderr.strip()[-800:]}")
    return time.perf_counter() - start


def ours(cache: Path, out: Path, pip: str | None) -> tuple[float, int, int]:
    argv = [sys.executable, "-m", "ci.image", "--root", str(ROOT), "--cache", str(cache)]
    argv += ["--pip", pip] if pip else []
    seconds = timed([*argv, "build", "--out", str(out)])
    layout = out / "oci" / "blobs" / "sha256"
    index = json.loads((out / "oci" / "index.json").read_text(encoding="utf-8"))
    manifest = json.loads((layout / index["manifests"][0]["digest"][7:]).read_bytes())
    config = json.loads((layout / manifest["config"]["digest"][7:]).read_bytes())
    gz = sum(layer["size"] for layer in manifest["layers"])
    raw = 0
    for layer in manifest["layers"]:
        raw += len(gzip.decompress((layout / layer["digest"][7:]).read_bytes()))
    if len(config["rootfs"]["diff_ids"]) != len(manifest["layers"]):
        raise SystemExit("config and manifest disagree on the layers")
    return seconds, raw, gz


def wheels_dir(lock: lock_format.Lock, cache: Cache, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for wheel in lock.wheels:
        path = cache.get(wheel.sha256)
        if path is None:
            raise SystemExit(f"{wheel.filename} not cached: run the ci.image build first")
        shutil.copy(path, dest / wheel.filename)
    return dest


def distroless(spec: lock_format.Spec, wheels: Path, work: Path) -> tuple[float, int, int]:
    out = work / "distroless.tar"
    env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
    site = "usr/local/lib/python3.11/dist-packages"
    hook = (
        f'mkdir -p "$1/{site}" && '
        f'for w in {wheels}/*.whl; do python3 -m zipfile -e "$w" "$1/{site}"; done'
    )
    argv = ["mmdebstrap", "--variant=extract", "--mode=root", "--format=tar"]
    argv += [f"--include={','.join(spec.roots)}", f"--extract-hook={hook}"]
    argv += [spec.codename, str(out)]
    seconds = timed(argv, env)
    return seconds, out.stat().st_size, gzip_size(out)


def slim(spec: lock_format.Spec, wheels: Path, work: Path) -> tuple[float, int, int]:
    out = work / "slim.tar"
    env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
    hooks = [
        f'mkdir -p "$1/wheels" && cp {wheels}/*.whl "$1/wheels/"',
        'chroot "$1" python3.11 -m venv /opt/venv',
        "chroot \"$1\" sh -c '/opt/venv/bin/pip install -q --no-index --no-deps /wheels/*.whl'",
        'rm -rf "$1/wheels"',
    ]
    argv = ["mmdebstrap", "--variant=minbase", "--mode=root", "--format=tar"]
    argv += ["--include=python3.11,python3.11-venv,ca-certificates,tzdata,netbase,libstdc++6"]
    argv += [f"--customize-hook={h}" for h in hooks]
    argv += [spec.codename, str(out)]
    seconds = timed(argv, env)
    return seconds, out.stat().st_size, gzip_size(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="ours warm + distroless-style only")
    parser.add_argument("--pip", help="pip for wheel downloads (default: this interpreter's)")
    args = parser.parse_args()
    spec = lock_format.read_spec(ROOT / lock_format.SPEC_FILE)
    lock = lock_format.read_lock(ROOT / lock_format.LOCK_FILE)
    pip = args.pip
    rows: list[tuple[str, float, int, int]] = []
    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
        work = Path(tmp)
        cache = default_cache()
        if not args.quick:
            cold = ours(work / "cold-cache", work / "cold", pip)
            rows.append(("ci.image cold (empty cache)", *cold))
        ours(cache, work / "prime", pip)  # make sure the shared cache is full
        rows.append(("ci.image warm", *ours(cache, work / "warm", pip)))
        wheels = wheels_dir(lock, Cache(cache), work / "wheels")
        if shutil.which("mmdebstrap") and os.geteuid() == 0:
            rows.append(("distroless-style (mmdebstrap extract)", *distroless(spec, wheels, work)))
            if not args.quick:
                rows.append(("slim-style (minbase + venv + pip)", *slim(spec, wheels, work)))
        else:
            print("mmdebstrap missing or not root: references skipped", file=sys.stderr)
    print(f"{'build':<40} {'time s':>8} {'MB raw':>8} {'MB gzip':>8}")
    for name, seconds, raw, gz in rows:
        print(f"{name:<40} {seconds:>8.1f} {raw / 1e6:>8.1f} {gz / 1e6:>8.1f}")
    base = next(r for r in rows if r[0] == "ci.image warm")
    for name, seconds, raw, gz in rows:
        if name.startswith("ci.image"):
            continue
        print(
            f"ci.image warm vs {name}: {seconds / base[1]:.1f}x faster, "
            f"{raw / base[2]:.2f}x smaller raw, {gz / base[3]:.2f}x smaller gzip"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
