"""An image as an OCI runtime bundle for runc: its layers unpacked in order, runc's
default spec turned into the image's process, locked down, and one run of it.

One module for every runc run of a built or pulled image: the image's smoke run
(``ci.image.smoke``), the tests in the image (``ci.image.testrun``) and the release's
hardened run after verification (``ci.release.run``).
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
