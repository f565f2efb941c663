"""The runc bundle of an image: its locked-down spec, its unpacked layers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ci.image import bundle
from ci.image.errors import ImageError


def test_runtime_spec_is_locked_down() -> None:
    template: dict[str, Any] = {
        "process": {"args": ["sh"]},
        "mounts": [],
        "linux": {"namespaces": [{"type": "pid"}]},
    }
    config = {"config": {"User": "65532:65532", "Env": ["A=1"], "WorkingDir": "/home/nonroot"}}
    spec = bundle.runtime_spec(template, config, ["/bin/app", "x"], [("/data", "/examples")])
    process = spec["process"]
    assert process["user"] == {"uid": 65532, "gid": 65532} and process["args"] == ["/bin/app", "x"]
    assert process["noNewPrivileges"] is True and process["capabilities"]["bounding"] == []
    assert spec["root"] == {"path": "rootfs", "readonly": True}
    assert {"type": "network"} in spec["linux"]["namespaces"]
    bind = spec["mounts"][-1]
    assert bind["source"] == "/data" and "ro" in bind["options"]
    assert template["process"]["args"] == ["sh"]  # the template is not modified
    default = bundle.runtime_spec(template, {}, ["x"])
    assert (
        default["process"]["user"] == {"uid": 65532, "gid": 65532}
        and default["process"]["cwd"] == "/"
    )


def test_read_image_and_unpack(built: Path, tmp_path: Path) -> None:
    manifest, config = bundle.read_image(built / "oci")
    assert len(manifest["layers"]) == 3 and config["config"]["User"] == "65532:65532"
    if os.geteuid() == 0:
        bundle.unpack_rootfs(built / "oci", tmp_path / "rootfs")
        assert (tmp_path / "rootfs" / "home" / "nonroot").stat().st_uid == 65532
    with pytest.raises(ImageError, match="not an OCI layout"):
        bundle.read_image(tmp_path)
