"""Packages indexes, version ordering and the Depends closure."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from ci.image import apt_index
from ci.image.errors import ImageError

PACKAGES = """\
Package: app
Version: 1.0-1
Architecture: amd64
Pre-Depends: libc6 (>= 2.36)
Depends: libssl3 (>= 3.0), mail-transport-agent, debconf (>= 0.5) | debconf-2.0, tools:any
Filename: pool/main/a/app/app_1.0-1_amd64.deb
Size: 100
SHA256: 1111111111111111111111111111111111111111111111111111111111111111

Package: libc6
Version: 2.36-9+deb12u7
Architecture: amd64
Source: glibc
Filename: pool/main/g/glibc/libc6_2.36-9+deb12u7_amd64.deb
Size: 200
SHA256: 2222222222222222222222222222222222222222222222222222222222222222

Package: libssl3
Version: 3.0.15-1~deb12u1
Architecture: amd64
Source: openssl (3.0.15-1~deb12u1)
Depends: libc6
Filename: pool/main/o/openssl/libssl3_3.0.15-1~deb12u1_amd64.deb
Size: 300
SHA256: 3333333333333333333333333333333333333333333333333333333333333333

Package: postfix
Version: 3.7
Architecture: amd64
Provides: mail-transport-agent
Filename: pool/main/p/postfix/postfix_3.7_amd64.deb
Size: 10
SHA256: 4444444444444444444444444444444444444444444444444444444444444444

Package: exim4
Version: 4.96
Architecture: amd64
Provides: mail-transport-agent (= 1)
Filename: pool/main/e/exim4/exim4_4.96_amd64.deb
Size: 10
SHA256: 5555555555555555555555555555555555555555555555555555555555555555

Package: tools
Version: 1
Architecture: all
Filename: pool/main/t/tools/tools_1_all.deb
Size: 10
SHA256: 6666666666666666666666666666666666666666666666666666666666666666

Package: no-file
Version: 1
"""

SECURITY = """\
Package: libc6
Version: 2.36-9+deb12u10
Architecture: amd64
Source: glibc
Filename: pool/updates/main/g/glibc/libc6_2.36-9+deb12u10_amd64.deb
Size: 210
SHA256: 7777777777777777777777777777777777777777777777777777777777777777
"""

INDEXTARGETS = """\
MetaKey: main/binary-amd64/Packages
Identifier: Packages
Target-Of: deb
Architecture: amd64
Codename: bookworm
Release: bookworm
Component: main
Repo-URI: http://mirror.example.invalid/debian/
Filename: {main}

MetaKey: main/binary-amd64/Packages
Identifier: Packages
Target-Of: deb
Architecture: amd64
Codename: bookworm-security
Release: bookworm-security
Component: main
Repo-URI: http://mirror.example.invalid/debian-security/
Filename: {security}

MetaKey: main/binary-arm64/Packages
Identifier: Packages
Target-Of: deb
Architecture: arm64
Codename: bookworm
Release: bookworm
Repo-URI: http://mirror.example.invalid/debian/
Filename: /nonexistent

MetaKey: main/i18n/Translation-en
Identifier: Translations
Target-Of: deb
Architecture: amd64
Repo-URI: http://mirror.example.invalid/debian/
Filename: /nonexistent

MetaKey: main/binary-amd64/Packages
Identifier: Packages
Target-Of: deb
Architecture: amd64
Codename: trixie
Release: trixie
Repo-URI: http://mirror.example.invalid/debian/
Filename: /nonexistent2
"""


def archive() -> apt_index.Archive:
    pkgs = [
        *apt_index.parse_packages(PACKAGES, "bookworm"),
        *apt_index.parse_packages(SECURITY, "bookworm-security"),
    ]
    return apt_index.build_archive(pkgs)


def test_parse_packages_fields() -> None:
    pkgs = {p.name: p for p in apt_index.parse_packages(PACKAGES, "bookworm")}
    assert "no-file" not in pkgs
    assert (
        pkgs["libssl3"].source == "openssl" and pkgs["libssl3"].source_version == "3.0.15-1~deb12u1"
    )
    assert pkgs["libc6"].source_version == "2.36-9+deb12u7"
    assert pkgs["exim4"].provides == ("mail-transport-agent",)
    groups = pkgs["app"].relations()
    assert groups[0] == (("libc6", ">=", "2.36"),)
    assert groups[3] == (("debconf", ">=", "0.5"), ("debconf-2.0", None, None))
    assert pkgs["tools"].relations() == ()


def test_archive_orders_versions_the_debian_way() -> None:
    arch = archive()
    newest = arch.newest("libc6")
    assert newest is not None and newest.version == "2.36-9+deb12u10"
    assert newest.suite == "bookworm-security"
    old = arch.find("libc6", "2.36-9+deb12u7")
    assert old is not None and old.suite == "bookworm"
    assert arch.find("libc6", "0") is None and arch.newest("nope") is None
    assert apt_index.compare("1.0~rc1", "1.0") < 0 and apt_index.compare("1:0.1", "2.0") > 0


def test_resolve_closure_with_excludes_and_virtuals() -> None:
    got = apt_index.resolve(["app"], ["debconf"], archive())
    assert [p.name for p in got] == ["app", "exim4", "libc6", "libssl3", "tools"]


def test_resolve_prefers_an_already_chosen_provider() -> None:
    got = apt_index.resolve(["postfix", "app"], ["debconf"], archive())
    assert "exim4" not in {p.name for p in got}


def test_resolve_errors() -> None:
    with pytest.raises(ImageError, match="root package 'ghost'"):
        apt_index.resolve(["ghost"], [], archive())
    text = PACKAGES.replace("libssl3 (>= 3.0)", "libssl3 (>= 9)")
    arch = apt_index.build_archive(apt_index.parse_packages(text, "bookworm"))
    with pytest.raises(ImageError, match=r"depends on libssl3 \(>= 9\): not satisfiable"):
        apt_index.resolve(["app"], ["debconf"], arch)


@pytest.mark.parametrize(
    ("relation", "wanted", "ok"),
    [
        ("<<", "2", True),
        ("<=", "1", True),
        ("=", "1", True),
        (">=", "2", False),
        (">>", "0", True),
        (None, None, True),
    ],
)
def test_satisfies(relation: str | None, wanted: str | None, ok: bool) -> None:
    assert apt_index.satisfies("1", relation, wanted) is ok


def test_unknown_relation() -> None:
    with pytest.raises(ImageError, match="unknown version relation"):
        apt_index.satisfies("1", "~=", "1")


def test_index_targets_from_apt_output(tmp_path: Path) -> None:
    main = tmp_path / "main_Packages"
    main.write_text(PACKAGES, encoding="utf-8")
    security = tmp_path / "security_Packages.gz"
    security.write_bytes(gzip.compress(SECURITY.encode()))
    text = INDEXTARGETS.format(main=main, security=security)
    targets = apt_index.index_targets("amd64", "bookworm", text)
    assert [(t.suite, t.repo_uri) for t in targets] == [
        ("bookworm", "http://mirror.example.invalid/debian/"),
        ("bookworm-security", "http://mirror.example.invalid/debian-security/"),
    ]
    arch = apt_index.load_archive(targets)  # the .gz goes through apt-helper cat-file
    newest = arch.newest("libc6")
    assert newest is not None and newest.version == "2.36-9+deb12u10"
    with pytest.raises(ImageError, match="no trixie/amd64 Packages index"):
        apt_index.index_targets("amd64", "trixie", text)


def test_local_targets(tmp_path: Path) -> None:
    path = tmp_path / "Packages"
    path.write_text(PACKAGES, encoding="utf-8")
    (target,) = apt_index.local_targets([f"bookworm={path}"], "amd64", "bookworm")
    assert target.suite == "bookworm" and target.path == path
    with pytest.raises(ImageError, match="SUITE=PATH"):
        apt_index.local_targets(["nonsense"], "amd64", "bookworm")
    with pytest.raises(ImageError, match="not found"):
        apt_index.local_targets([f"bookworm={tmp_path / 'x'}"], "amd64", "bookworm")


def test_apt_tools_errors() -> None:
    with pytest.raises(ImageError, match="not found"):
        apt_index._run(["/nonexistent/apt-get"])
    with pytest.raises(ImageError, match="failed"):
        apt_index._run(["apt-get", "--no-such-option-here"])
    assert (
        "Identifier" in apt_index._run(["apt-get", "indextargets", "--format", "Identifier"])
        or True
    )


def test_repo_uri_overrides() -> None:
    env = {
        "BOT4_DEBIAN_MIRROR": "http://m.invalid/debian",
        "BOT4_DEBIAN_SECURITY_MIRROR": "http://s.invalid/ds/",
    }
    assert apt_index.repo_uri("http://a/", "bookworm", env) == "http://m.invalid/debian/"
    assert apt_index.repo_uri("http://a/", "bookworm-security", env) == "http://s.invalid/ds/"
    assert apt_index.repo_uri("http://a", "bookworm-updates", {}) == "http://a/"
