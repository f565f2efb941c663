"""The smoke run under runc (root and runc needed: CI runs as root)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ci.image import smoke
from ci.image.errors import ImageError
from ci.oci.errors import OCIError

needs_runc = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runc") is None, reason="needs root and runc"
)
BINDS = (("/usr/bin", "/usr/bin"), ("/usr/lib", "/usr/lib"))


def test_entrypoint_is_the_images(built: Path) -> None:
    assert smoke.entrypoint(built / "oci") == ["/usr/local/bin/bot4"]


@needs_runc
def test_smoke_runs_confined(built: Path, tmp_path: Path) -> None:
    lines = smoke.check(built / "oci", tmp_path, [["simulate", "--help"]], BINDS)
    assert lines[0] == "smoke: uid 65532:65532, read-only rootfs, interfaces ['lo']"
    assert lines[1] == "smoke: bot4 doctor ok — python 3.11, numpy None, scalar path"
    assert lines[2] == "smoke: bot4 simulate --help ok"


@needs_runc
def test_smoke_runs_under_umask_077(built: Path, tmp_path: Path) -> None:
    """The layers' './' entry gives the bundle root 0755: the host's umask never reaches
    the container (it used to fail with 'stat /usr/bin/python3.11: permission denied')."""
    old = os.umask(0o077)
    try:
        lines = smoke.check(built / "oci", tmp_path, (), BINDS)
    finally:
        os.umask(old)
    assert lines[0] == "smoke: uid 65532:65532, read-only rootfs, interfaces ['lo']"
    assert oct((tmp_path / "bundle" / "rootfs").stat().st_mode & 0o777) == "0o755"


@needs_runc
def test_smoke_reports_a_failing_command(built: Path, tmp_path: Path) -> None:
    runs = smoke.run_in(
        built / "oci", tmp_path, [["/usr/bin/python3.11", "-c", "raise SystemExit(3)"]], BINDS
    )
    assert runs[0].returncode == 3
    with pytest.raises(ImageError, match=r"exited \d+ in the container"):
        smoke.check(built / "oci", tmp_path / "again", [["-c"]], ())


def test_needs_root_and_runc(monkeypatch: pytest.MonkeyPatch, built: Path, tmp_path: Path) -> None:
    monkeypatch.setattr("shutil.which", lambda _name: None)
    monkeypatch.setattr("ci.oci.runtime.RUNC_PATHS", ())
    with pytest.raises(OCIError, match="runc is not installed"):
        smoke.run_in(built / "oci", tmp_path, [])
    monkeypatch.undo()
    monkeypatch.setattr("shutil.which", lambda _name: "/usr/sbin/runc")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(OCIError, match="the smoke run needs root"):
        smoke.run_in(built / "oci", tmp_path, [])


def test_probe_is_valid_python() -> None:
    compile(smoke.PROBE, "probe", "exec")
    assert json.dumps({"uid": 1})  # the probe prints JSON the check parses
