"""Run a verified image hardened, from an unpacked OCI runtime bundle under runc: read-only
root filesystem, every capability dropped, ``no_new_privs``, a fixed non-root uid/gid
(65532 by default) and a new, empty network namespace unless the policy allows the host's.

The bundle is made from the pulled (and re-hashed) layers and config, so what runs is
exactly what was verified. runc needs root on these machines.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.image import smoke
from ci.release.errors import ReleaseError
from ci.release.policy import Runtime

RUNC_PATHS = ("/usr/sbin/runc", "/usr/bin/runc")


@dataclass(frozen=True)
class Outcome:
    """The container's exit status and output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def find_runc() -> str:
    """runc (Debian package ``runc``), as root; else one clear error."""
    found = shutil.which("runc") or next((p for p in RUNC_PATHS if Path(p).exists()), None)
    if found is None:
        raise ReleaseError("runc is not installed (apt-get install runc)")
    if os.geteuid() != 0:
        raise ReleaseError("running the image needs root for runc; run the deploy as root")
    return found


def hardened_spec(
    template: dict[str, Any], config: dict[str, Any], argv: list[str], runtime: Runtime
) -> dict[str, Any]:
    """runc's default spec turned into the image's process, locked down, with the
    policy's user and network."""
    spec = smoke.runtime_spec(template, config, argv)
    uid, gid = runtime.user
    spec["process"]["user"] = {"uid": uid, "gid": gid}
    spec["process"]["noNewPrivileges"] = True
    spec["process"]["capabilities"] = {
        k: [] for k in ("bounding", "effective", "permitted", "inheritable", "ambient")
    }
    spec["root"] = {"path": "rootfs", "readonly": True}
    spec["hostname"] = "bot4"
    namespaces = spec["linux"]["namespaces"]
    if runtime.network == "host":
        spec["linux"]["namespaces"] = [ns for ns in namespaces if ns["type"] != "network"]
    return spec


def command(config: dict[str, Any], runtime: Runtime) -> list[str]:
    """The policy's command, else the image's entrypoint + cmd."""
    if runtime.command:
        return list(runtime.command)
    cfg = config.get("config") or {}
    argv = [*(cfg.get("Entrypoint") or []), *(cfg.get("Cmd") or [])]
    if not argv:
        raise ReleaseError("the image has no entrypoint or command; set [deploy.run] command")
    return [str(a) for a in argv]


def run(layout: Path, workdir: Path, runtime: Runtime) -> Outcome:
    """Unpack ``layout`` into a bundle under ``workdir`` and run it once, hardened."""
    runc = find_runc()
    _, config = smoke.read_image(layout)
    bundle = workdir / "bundle"
    smoke.unpack_rootfs(layout, bundle / "rootfs")
    subprocess.run([runc, "spec", "--bundle", str(bundle)], check=True, capture_output=True)  # noqa: S603  # nosec B603
    template = json.loads((bundle / "config.json").read_text(encoding="utf-8"))
    argv = command(config, runtime)
    spec = hardened_spec(template, config, argv, runtime)
    (bundle / "config.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    name = f"bot4-{uuid.uuid4().hex[:12]}"
    try:
        result = subprocess.run(  # noqa: S603  # nosec B603
            [runc, "run", "--bundle", str(bundle), name],
            capture_output=True,
            text=True,
            timeout=runtime.timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        subprocess.run([runc, "delete", "--force", name], capture_output=True, check=False)  # noqa: S603  # nosec B603
        raise ReleaseError(
            f"{' '.join(argv)} did not finish within {runtime.timeout:g}s in the container"
        ) from None
    return Outcome(tuple(argv), result.returncode, result.stdout, result.stderr)
