"""The base layer: merged packages plus what maintainer scripts would have made."""

from __future__ import annotations

import pytest

from ci.image import rootfs
from ci.image.deb_unpack import DebContents
from ci.image.errors import ImageError
from ci.image.tarball import Entry


def pkg(name: str, *entries: Entry) -> DebContents:
    return DebContents(name, "1", "amd64", f"Package: {name}\nVersion: 1\n", entries, 0, ())


CERT = Entry("usr/share/ca-certificates/mozilla/A.crt", "file", 0o644, b"-----A-----")


def test_base_layer_adds_users_certs_and_links() -> None:
    tz = Entry("usr/share/zoneinfo/Etc/UTC", "file", 0o644, b"TZif")
    layer = {e.path: e for e in rootfs.base_layer([pkg("ca", CERT), pkg("tz", tz)])}
    assert b"nonroot:x:65532:65532" in layer["etc/passwd"].data
    assert layer["etc/group"].data.endswith(b"nonroot:x:65532:\n")
    assert layer["etc/hosts"].data.startswith(b"127.0.0.1\tlocalhost\n")
    assert layer["etc/ssl/certs/ca-certificates.crt"].data == b"-----A-----\n"
    assert layer["etc/localtime"].linkname == "/usr/share/zoneinfo/Etc/UTC"
    assert layer["usr/bin/python3"].linkname == "python3.11"
    assert layer["home/nonroot"].uid == 65532 and layer["tmp"].mode == 0o1777
    assert layer["var/lib/dpkg/status.d/ca"].data.startswith(
        b"Package: ca\nStatus: install ok installed\n"
    )


def test_the_shell_script_update_ca_certificates_is_not_shipped() -> None:
    script = Entry("usr/sbin/update-ca-certificates", "file", 0o755, b"#!/bin/sh\n")
    layer = {e.path for e in rootfs.base_layer([pkg("ca-certificates", CERT, script)])}
    assert "usr/sbin/update-ca-certificates" not in layer
    assert "etc/ssl/certs/ca-certificates.crt" in layer


def test_no_timezone_data_means_no_localtime() -> None:
    layer = {e.path for e in rootfs.base_layer([pkg("ca", CERT)])}
    assert "etc/localtime" not in layer


def test_conflicts_and_missing_certificates() -> None:
    a = pkg("a", Entry("etc/x", "file", 0o644, b"1"), Entry("etc", "dir", 0o755))
    b = pkg("b", Entry("etc/x", "file", 0o644, b"2"), Entry("etc", "dir", 0o700))
    with pytest.raises(ImageError, match="shipped differently by a and b"):
        rootfs.merge([a, b])
    same = pkg("c", Entry("etc/x", "file", 0o644, b"1"))
    assert rootfs.merge([a, same])["etc/x"].data == b"1"
    with pytest.raises(ImageError, match="no CA certificates"):
        rootfs.base_layer([a])
