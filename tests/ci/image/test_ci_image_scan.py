"""The image scan: planted vulnerable versions, pending updates, hygiene, outputs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from ci.image import apt_index, assembly, scan
from ci.image.errors import ImageError
from ci.image.tarball import Entry, gzip_bytes, write_tar
from ci.oci.digest import sha256

TODAY = dt.date(2026, 11, 30)
HIGH = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"  # 7.5


def bom() -> dict[str, Any]:
    return {
        "components": [
            {
                "name": "libc6",
                "version": "2.36-9+deb12u7",
                "purl": "pkg:deb/debian/libc6@2.36-9%2Bdeb12u7?arch=amd64&distro=debian-12",
                "properties": [
                    {"name": "debian:source", "value": "glibc"},
                    {"name": "debian:source-version", "value": "2.36-9+deb12u7"},
                    {"name": "debian:suite", "value": "bookworm"},
                ],
            },
            {
                "name": "zlib1g",
                "version": "1:1.2.13.dfsg-1",
                "purl": "pkg:deb/debian/zlib1g@1",
                "properties": [{"name": "debian:source", "value": "zlib"}],
            },
            {"name": "Demo_Lib", "version": "1.0", "purl": "pkg:pypi/demo-lib@1.0"},
            {"name": "odd", "version": "not.a.version!", "purl": "pkg:pypi/odd@x"},
            {"name": "bot4-image", "version": "1", "purl": "pkg:oci/bot4"},
        ]
    }


def write_db(path: Path) -> Path:
    path.mkdir()
    records = {
        "DSA-0001.json": {
            "id": "DSA-0001-1",
            "aliases": ["CVE-2026-0001"],
            "summary": "glibc: heap overflow",
            "severity": [{"type": "CVSS_V3", "score": HIGH}],
            "affected": [
                {
                    "package": {"ecosystem": "Debian:12", "name": "glibc"},
                    "ranges": [
                        {
                            "type": "ECOSYSTEM",
                            "events": [{"introduced": "0"}, {"fixed": "2.36-9+deb12u8"}],
                        }
                    ],
                }
            ],
        },
        "DLA-old.json": {
            "id": "DSA-0002-1",
            "affected": [
                {
                    "package": {"ecosystem": "Debian:11", "name": "glibc"},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
                }
            ],
        },
        "DEB-urgency.json": {
            "id": "DEBIAN-CVE-2026-0003",
            "affected": [
                {
                    "package": {"ecosystem": "Debian", "name": "zlib"},
                    "versions": ["1:1.2.13.dfsg-1"],
                    "ranges": [
                        {"type": "GIT", "events": [{"introduced": "0"}]},
                        {
                            "type": "ECOSYSTEM",
                            "events": [{"introduced": "1:1.2.14"}, {"last_affected": "1:1.3"}],
                        },
                    ],
                    "ecosystem_specific": {"urgency": "low"},
                }
            ],
        },
        "DSA-fixed.json": {
            "id": "DSA-0004-1",
            "affected": [
                {
                    "package": {"ecosystem": "Debian:12", "name": "glibc"},
                    "ranges": [
                        {
                            "type": "ECOSYSTEM",
                            "events": [{"introduced": "2.36-1"}, {"limit": "2.36-9+deb12u1"}],
                        }
                    ],
                }
            ],
        },
        "DSA-withdrawn.json": {
            "id": "DSA-0005-1",
            "withdrawn": "2026-01-01T00:00:00Z",
            "affected": [],
        },
        "PYSEC-1.json": {
            "id": "PYSEC-2026-1",
            "aliases": ["GHSA-xxxx-yyyy-zzzz"],
            "summary": "demo-lib: RCE",
            "severity": [
                {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}
            ],
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": "demo-lib"},
                    "ranges": [
                        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1"}]}
                    ],
                }
            ],
        },
        "PYSEC-broken.json": {
            "id": "",
            "affected": [{"package": {"ecosystem": "PyPI", "name": "x"}}],
        },
        "list.json": [],
    }
    for name, record in records.items():
        (path / name).write_text(json.dumps(record), encoding="utf-8")
    return path


def test_planted_vulnerable_versions_are_found(tmp_path: Path) -> None:
    findings = scan.match_advisories(scan.components(bom()), [write_db(tmp_path / "db")], "12")
    by_id = {f.message.split(" ", 1)[0].rstrip(":"): f for f in findings}
    assert set(by_id) == {"DSA-0001-1", "DEBIAN-CVE-2026-0003", "PYSEC-2026-1"}
    glibc = by_id["DSA-0001-1"]
    assert glibc.subject == "libc6 2.36-9+deb12u7" and glibc.severity == "HIGH"
    assert (
        glibc.score == 7.5 and glibc.fixed == "2.36-9+deb12u8" and "CVE-2026-0001" in glibc.message
    )
    assert by_id["DEBIAN-CVE-2026-0003"].severity == "LOW"
    assert by_id["PYSEC-2026-1"].severity == "CRITICAL" and by_id["PYSEC-2026-1"].fixed == "1.1"


def test_debian_ranges() -> None:
    adv = scan.DebAdvisory(
        "X", (), "", "p", "12", ((("introduced", "0"), ("fixed", "1.0-2")),), frozenset(), None
    )
    assert adv.affects("p", "1.0-1", "12") and adv.affects("p", "1.0~rc1-1", "12")
    assert not adv.affects("p", "1.0-2", "12") and not adv.affects("p", "1.0-1", "11")
    assert not adv.affects("q", "1.0-1", "12")
    with pytest.raises(ImageError, match="must be a mapping"):
        scan.debian_advisories({"id": "X", "affected": ["nope"]}, "x.json")


def test_pending_security_updates() -> None:
    text = (
        "Package: libc6\nVersion: 2.36-9+deb12u10\nArchitecture: amd64\nFilename: pool/x.deb\n"
        f"Size: 1\nSHA256: {'1' * 64}\n"
    )
    archive = apt_index.build_archive(apt_index.parse_packages(text, "bookworm-security"))
    (finding,) = scan.pending_updates(scan.components(bom()), archive, "HIGH")
    assert finding.rule == "pending-security-update" and finding.fixed == "2.36-9+deb12u10"
    main_only = apt_index.build_archive(apt_index.parse_packages(text, "bookworm"))
    assert scan.pending_updates(scan.components(bom()), main_only, "HIGH") == []


HEADER = b"-----BEGIN PRIVATE KEY-----"  # pragma: allowlist secret
KEY = HEADER + b"\n" + b"A" * 64 + b"\n-----END PRIVATE KEY-----\n"


def test_hygiene_finds_planted_problems() -> None:
    layer = [
        Entry("usr/bin/su", "file", 0o4755, b"x"),
        Entry("usr/bin/wall", "file", 0o2755, b"x"),
        Entry("var/drop", "dir", 0o777),
        Entry("tmp", "dir", 0o1777),
        Entry("etc/app.key", "file", 0o644, KEY),
        Entry("etc/aws", "file", 0o644, b"key=AKIAABCDEFGHIJKLMNOP\n"),  # pragma: allowlist secret
        Entry(
            "usr/lib/python3/dist-packages/mod.py",
            "file",
            0o644,
            b'_START = b"-----BEGIN OPENSSH PRIVATE KEY-----"\n',  # pragma: allowlist secret
        ),
        Entry("usr/bin/dpkg", "file", 0o755, b"x"),
        Entry("usr/local/lib/python3.11/dist-packages/pip/__init__.py", "file", 0o644, b""),
    ]
    findings = scan.hygiene([("sha256:" + "0" * 64, layer)], "0")
    got = sorted((f.rule, f.subject) for f in findings)
    assert got == [
        ("package-manager", "/usr/bin/dpkg"),
        ("package-manager", "/usr/local/lib/python3.11/dist-packages/pip/__init__.py"),
        ("root-user", "config.User"),
        ("secret", "/etc/app.key"),
        ("secret", "/etc/aws"),
        ("setgid", "/usr/bin/wall"),
        ("setuid", "/usr/bin/su"),
        ("world-writable", "/var/drop"),
    ]
    assert scan.hygiene([], "65532:65532") == []


def layout(tmp_path: Path, entries: list[Entry], user: str) -> Path:
    tar = write_tar(entries, 0)
    layer = assembly.Layer("base", gzip_bytes(tar), sha256(tar), "test")
    run = assembly.RunConfig(user, ("/bin/app",), (), (), "/", {})
    cfg = assembly.config([layer], run, 0)
    man = assembly.manifest(cfg, [layer], {})
    image = assembly.Image((layer,), cfg, man, assembly.index(man, "t", {}), "t", "r")
    assembly.write_layout(image, tmp_path / "oci")
    return tmp_path / "oci"


def test_scan_verdict_ignores_and_outputs(tmp_path: Path) -> None:
    path = layout(tmp_path, [Entry("usr/bin/su", "file", 0o4755, b"x")], "65532:65532")
    layers, user = scan.layout_layers(path)
    assert user == "65532:65532" and layers[0][1][-1].path == "usr/bin/su"
    policy_file = tmp_path / "scan.toml"
    policy_file.write_text(
        '[image-scan]\nfail-on = "high"\n'
        '[[image-scan.ignore]]\nid = "CVE-2026-0001"\nreason = "not reachable"\n'
        "expires = 2027-01-01\n"
        '[[image-scan.ignore]]\nid = "setuid:/usr/bin/su"\nreason = "needed"\n'
        "expires = 2026-01-01\n",
        encoding="utf-8",
    )
    policy = scan.load_policy(policy_file)
    findings, problems = scan.scan(
        bom(), layers, user, [write_db(tmp_path / "db")], "12", policy, None, TODAY
    )
    assert problems == [
        "ignore of setuid:/usr/bin/su expired on 2026-01-01 (needed); fix it or renew the ignore"
    ]
    glibc = next(f for f in findings if f.subject.startswith("libc6"))
    assert glibc.ignored == "until 2027-01-01: not reachable" and not glibc.fails("HIGH")
    failing = sorted(f.rule for f in findings if f.fails(policy.fail_on))
    assert failing == ["advisory", "setuid"]
    table = scan.table(findings, policy.fail_on)
    assert table.splitlines()[2].startswith("CRITICAL")
    assert "(ignored until 2027-01-01: not reachable)" in table
    report = json.loads(scan.to_json(findings, policy.fail_on))
    assert report["threshold"] == "HIGH" and sum(r["fails"] for r in report["findings"]) == 2
    sarif = json.loads(scan.to_sarif(findings, "sbom.cdx.json"))
    results = sarif["runs"][0]["results"]
    assert sarif["version"] == "2.1.0" and len(results) == len(findings)
    assert {r["ruleId"] for r in results} >= {"DSA-0001-1", "setuid", "PYSEC-2026-1"}
    assert any("suppressions" in r for r in results)
    assert scan.table([], "HIGH") == "image scan: no findings"


def test_policy_defaults_and_errors(tmp_path: Path) -> None:
    assert scan.load_policy(tmp_path / "none.toml") == scan.ScanPolicy()
    bad = tmp_path / "bad.toml"
    bad.write_text('[image-scan]\nfail-on = "SEVERE"\n', encoding="utf-8")
    with pytest.raises(ImageError, match="fail-on must be one of"):
        scan.load_policy(bad)
    assert scan.rank("unknown") == 0 and scan.rank("CRITICAL") == 4


def test_the_repository_policy_parses() -> None:
    policy = scan.load_policy(Path(__file__).parents[3] / scan.POLICY_FILE)
    assert policy.fail_on == "HIGH" and policy.ignores == ()
