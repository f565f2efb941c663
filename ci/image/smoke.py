"""Smoke run: the built image, unpacked into an OCI runtime bundle, runs ``bot4`` under
runc as uid 65532, with no network (a fresh, empty network namespace), a read-only
rootfs, no capabilities and ``no_new_privs``.

runc needs root here (crun does not work on these machines). The bundle
(``ci.image.bundle``) is made from the image's own layers and config, so what runs is
exactly what was built.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ci.image.bundle import Run, prepare_bundle, read_image, run_container, runtime_spec
from ci.image.errors import ImageError
from ci.oci.runtime import find_runc

TIMEOUT = 120


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
