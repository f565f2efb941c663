"""Smoke run: the built image, unpacked into an OCI runtime bundle, runs ``bot4`` under
runc as uid 65532, with no network (a fresh, empty network namespace), a read-only
rootfs, no capabilities and ``no_new_privs``.

runc needs root here (crun does not work on these machines). The bundle is made from
the image's own layers and config, so what runs is exactly what was built.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.image.errors import ImageError
from ci.image.tarball import extract
from ci.oci.errors import OCIError
from ci.oci.layout import Layout
from ci.oci.runtime import find_runc

TIMEOUT = 120


@dataclass(frozen=True)
class Run:
    """One command's outcome inside the container."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def read_image(layout: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest and config of the single image in an OCI layout (hash-checked)."""
    try:
        manifest = Layout(layout).select().json()
        config = json.loads(Layout(layout).blob(str(manifest["config"]["digest"])))
    except (OCIError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ImageError(f"{layout}: not an OCI layout written by ci.image ({exc})") from None
    return manifest, config


def unpack_rootfs(layout: Path, rootfs: Path) -> None:
    """Apply the layers in order (owners and modes kept: this runs as root)."""
    manifest, _ = read_image(layout)
    rootfs.mkdir(parents=True)
    for layer in manifest["layers"]:
        # Refuses absolute paths, '..', escaping links and devices (no extractall
        # filter on Debian's 3.11.2); owners kept, the './' entry sets the root's mode.
        extract(Layout(layout).blob(str(layer["digest"])), rootfs, owners=True, absolute_links=True)


def runtime_spec(
    template: dict[str, Any],
    config: dict[str, Any],
    argv: Sequence[str],
    binds: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """runc's default spec, turned into the image's process (``argv`` replaces the
    entrypoint and command), locked down."""
    cfg = config.get("config", {})
    uid, _, gid = str(cfg.get("User", "65532:65532")).partition(":")
    spec: dict[str, Any] = json.loads(json.dumps(template))
    process = spec["process"]
    process.update(
        {
            "terminal": False,
            "user": {"uid": int(uid), "gid": int(gid or uid)},
            "args": list(argv),
            "env": list(cfg.get("Env", [])),
            "cwd": cfg.get("WorkingDir") or "/",
            "noNewPrivileges": True,
            "capabilities": {k: [] for k in ("bounding", "effective", "permitted", "ambient")},
        }
    )
    spec["root"] = {"path": "rootfs", "readonly": True}
    spec["hostname"] = "bot4-smoke"
    spec["mounts"].append(
        {
            "destination": "/tmp",  # noqa: S108  # nosec B108 - the container's own tmpfs
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777", "size=65536k"],
        }
    )
    for source, destination in binds:
        spec["mounts"].append(
            {
                "destination": destination,
                "type": "bind",
                "source": source,
                "options": ["rbind", "ro", "nosuid", "nodev"],
            }
        )
    namespaces = spec["linux"]["namespaces"]
    if not any(ns["type"] == "network" for ns in namespaces):
        namespaces.append({"type": "network"})
    return spec


def prepare_bundle(
    runc: str, layout: Path, workdir: Path
) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """Unpack the image into ``workdir/bundle``: (bundle, image config, runc's default spec)."""
    _, config = read_image(layout)
    bundle = workdir / "bundle"
    unpack_rootfs(layout, bundle / "rootfs")
    subprocess.run([runc, "spec", "--bundle", str(bundle)], check=True, capture_output=True)  # noqa: S603  # nosec B603
    template = json.loads((bundle / "config.json").read_text(encoding="utf-8"))
    return bundle, config, template


def run_container(
    runc: str, bundle: Path, spec: dict[str, Any], argv: Sequence[str], timeout: float, prefix: str
) -> Run | None:
    """Run ``spec`` once in a fresh container; ``None`` (container removed) on timeout."""
    (bundle / "config.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    try:
        result = subprocess.run(  # noqa: S603  # nosec B603
            [runc, "run", "--bundle", str(bundle), name],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        subprocess.run([runc, "delete", "--force", name], capture_output=True, check=False)  # noqa: S603  # nosec B603
        return None
    return Run(tuple(argv), result.returncode, result.stdout, result.stderr)


def run_in(
    layout: Path,
    workdir: Path,
    commands: Sequence[Sequence[str]],
    binds: Sequence[tuple[str, str]] = (),
) -> list[Run]:
    """Run each full command line in a fresh runc container of the image."""
    runc = find_runc("the smoke run")
    bundle, config, template = prepare_bundle(runc, layout, workdir)
    runs: list[Run] = []
    for argv in commands:
        spec = runtime_spec(template, config, argv, binds)
        run = run_container(runc, bundle, spec, argv, TIMEOUT, "bot4-smoke")
        if run is None:
            raise ImageError(f"{' '.join(argv)} did not finish within {TIMEOUT}s in the container")
        runs.append(run)
    return runs


# Runs inside the container: who am I, can I write to /, which network interfaces exist.
PROBE = """
import json, os, socket
try:
    open("/probe", "w")
    writable = True
except OSError:
    writable = False
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "rootfs_writable": writable,
                  "interfaces": sorted(n for _, n in socket.if_nameindex())}))
"""


def entrypoint(layout: Path) -> list[str]:
    """The image's entrypoint."""
    _, config = read_image(layout)
    return list(config.get("config", {}).get("Entrypoint", []))


def check(
    layout: Path,
    workdir: Path,
    extra: Sequence[Sequence[str]] = (),
    binds: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """The smoke test proper: the confinement probe, ``bot4 doctor`` (text and JSON)
    and any extra bot4 commands; returns report lines, raises on the first failure.
    ``binds`` are read-only ``(host, container)`` mounts, e.g. example scenarios."""
    bot4 = entrypoint(layout)
    commands = [
        ["/usr/bin/python3.11", "-I", "-c", PROBE],
        [*bot4, "doctor"],
        [*bot4, "doctor", "--json"],
    ]
    commands += [[*bot4, *argv] for argv in extra]
    runs = run_in(layout, workdir, commands, binds)
    for run in runs:
        if run.returncode != 0:
            detail = (run.stderr.strip().splitlines() or ["no output"])[-1]
            raise ImageError(
                f"{' '.join(run.argv[-3:])} exited {run.returncode} in the container: {detail}"
            )
    probe = json.loads(runs[0].stdout)
    problems = []
    if probe["uid"] != 65532 or probe["gid"] != 65532:
        problems.append(f"runs as {probe['uid']}:{probe['gid']}, not 65532:65532")
    if probe["rootfs_writable"]:
        problems.append("the root filesystem is writable")
    if probe["interfaces"] not in ([], ["lo"]):
        problems.append(f"network interfaces present: {probe['interfaces']}")
    if problems:
        raise ImageError("smoke: " + "; ".join(problems))
    doctor = json.loads(runs[2].stdout)
    lines = [
        f"smoke: uid {probe['uid']}:{probe['gid']}, read-only rootfs, "
        f"interfaces {probe['interfaces'] or 'none'}",
        f"smoke: bot4 doctor ok — python {doctor.get('python')}, "
        f"numpy {doctor.get('numpy')}, {doctor.get('path')} path",
    ]
    lines += [f"smoke: bot4 {' '.join(r.argv[len(bot4) :])} ok" for r in runs[3:]]
    return lines
