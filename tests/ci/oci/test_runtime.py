"""The one runc finder: missing runc and a non-root user are one clear line each."""

from __future__ import annotations

import pytest

from ci.oci import runtime
from ci.oci.errors import OCIError


def test_missing_runc_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda _name: None)
    monkeypatch.setattr(runtime, "RUNC_PATHS", ("/nonexistent/runc",))
    with pytest.raises(OCIError, match=r"^runc is not installed \(apt-get install runc\)$"):
        runtime.find_runc("the smoke run")


def test_runc_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda _name: "/usr/sbin/runc")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(OCIError, match=r"^the smoke run needs root for runc; run it as root$"):
        runtime.find_runc("the smoke run")


def test_found_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda _name: "/usr/sbin/runc")
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert runtime.find_runc("x") == "/usr/sbin/runc"
