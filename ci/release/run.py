"""Run a verified image hardened, from an unpacked OCI runtime bundle under runc: read-only
root filesystem, every capability dropped, ``no_new_privs``, a fixed non-root uid/gid
(65532 by default) and a new, empty network namespace unless the policy allows the host's.

The bundle is made from the pulled (and re-hashed) layers and config, so what runs is
exactly what was verified. runc needs root on these machines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ci.image import bundle
from ci.oci.runtime import find_runc
from ci.release.errors import ReleaseError
from ci.release.trust_policy import Runtime


def hardened_spec(
    template: dict[str, Any], config: dict[str, Any], argv: list[str], runtime: Runtime
) -> dict[str, Any]:
    """runc's default spec turned into the image's process, locked down, with the
    policy's user and network."""
    spec = bundle.runtime_spec(template, config, argv)
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


def run(layout: Path, workdir: Path, runtime: Runtime) -> bundle.Run:
    """Unpack ``layout`` into a bundle under ``workdir`` and run it once, hardened."""
    runc = find_runc("running the image")
    bundle_dir, config, template = bundle.prepare_bundle(runc, layout, workdir)
    argv = command(config, runtime)
    spec = hardened_spec(template, config, argv, runtime)
    outcome = bundle.run_container(runc, bundle_dir, spec, argv, runtime.timeout, "bot4")
    if outcome is None:
        raise ReleaseError(
            f"{' '.join(argv)} did not finish within {runtime.timeout:g}s in the container"
        )
    return outcome
