"""The OSV matcher on real PyPA advisory records (facts in tests/ci/data/osv)."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from ci.supply_chain.advisories import database as advisories
from ci.supply_chain.advisories import osv

DATA = Path(__file__).parents[2] / "data" / "osv"


def record(rel: str) -> osv.Advisory:
    path = DATA / rel
    return osv.parse_record(advisories.decode(path.name, path.read_bytes()), rel)


def affects(adv: osv.Advisory, name: str, version: str) -> bool:
    return adv.affects(canonicalize_name(name), Version(version))


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.26.5", True),  # listed, and inside introduced 0 … fixed 1.26.17
        ("1.26.16", True),
        ("1.26.17rc1", True),  # a pre-release of the fix is still before it
        ("1.26.17", False),
        ("1.26.18", False),  # between the two ranges
        ("2.0.0a1", False),  # before introduced 2.0.0, after fixed 1.26.17
        ("2.0.0", True),
        ("2.0.5", True),
        ("2.0.6", False),
        ("2.8.0", False),  # the locked version
    ],
)
def test_urllib3_two_interleaved_ranges(version: str, expected: bool) -> None:
    adv = record("urllib3/PYSEC-2023-192.yaml")
    assert affects(adv, "urllib3", version) is expected
    assert affects(adv, "URLLib3", version) is expected  # canonical names


def test_urllib3_report_fields() -> None:
    adv = record("urllib3/PYSEC-2023-192.yaml")
    assert adv.aliases == ("CVE-2023-43804", "GHSA-v845-jxx5-vc9f")
    assert adv.fixed_versions(canonicalize_name("urllib3")) == ("1.26.17", "2.0.6")
    worst = adv.worst_severity()
    assert worst is not None
    assert (worst.score, worst.rating) == (8.1, "High")
    assert str(worst) == "8.1 High"


@pytest.mark.parametrize(
    ("version", "expected"),
    [("1.0", True), ("1.11.0", True), ("1.11.0.post1", False), ("1.11.1", False)],
)
def test_py_last_affected_is_inclusive(version: str, expected: bool) -> None:
    assert affects(record("py/PYSEC-2022-42969.yaml"), "py", version) is expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("2.6.20", False),
        ("2.7.0", True),
        ("2.7.18", True),
        ("2.8.0a1", False),  # the fix was released as a pre-release …
        ("2.8.0b1", False),
        ("2.8.0", True),  # … and the bug came back in 2.8.0
        ("2.8.13", False),
        ("2.9.10rc1", True),
        ("2.9.10", False),
    ],
)
def test_ansible_three_ranges_with_prerelease_fix(version: str, expected: bool) -> None:
    assert affects(record("ansible/PYSEC-2020-208.yaml"), "ansible", version) is expected


def test_withdrawn_record_never_matches() -> None:
    adv = record("aiohttp/PYSEC-2022-43059.yaml")
    assert adv.withdrawn == "2023-11-08T00:54:24Z"
    assert not affects(adv, "aiohttp", "3.8.1")


def test_json_record_ignores_git_ranges() -> None:
    adv = record("aiohttp/PYSEC-2021-76.json")
    assert affects(adv, "aiohttp", "3.7.3")
    assert not affects(adv, "aiohttp", "3.7.4")
    assert not affects(adv, "requests", "1.0")
    assert adv.fixed_versions(canonicalize_name("aiohttp")) == ("3.7.4",)
    assert adv.worst_severity() is None


def test_real_malformed_record_is_rejected_with_its_name() -> None:
    with pytest.raises(osv.MalformedRecordError, match=r"steam/PYSEC-2019-125.yaml: .*2019-09-12"):
        record("steam/PYSEC-2019-125.yaml")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected a mapping"),
        ({"affected": []}, "no id"),
        ({"id": "X", "affected": {"a": 1}}, "affected must be a list"),
        ({"id": "X", "affected": ["x"]}, "must be a mapping"),
        ({"id": "X", "affected": [{"package": {}}]}, "without package.name"),
        (
            {
                "id": "X",
                "affected": [{"package": {"name": "a", "ecosystem": "PyPI"}, "ranges": ["x"]}],
            },
            "range must be a mapping",
        ),
        (
            {
                "id": "X",
                "affected": [
                    {
                        "package": {"name": "a", "ecosystem": "PyPI"},
                        "ranges": [{"type": "ECOSYSTEM"}],
                    }
                ],
            },
            "non-empty events",
        ),
        (
            {
                "id": "X",
                "affected": [
                    {
                        "package": {"name": "a", "ecosystem": "PyPI"},
                        "ranges": [
                            {"type": "ECOSYSTEM", "events": [{"introduced": "0", "fixed": "1"}]}
                        ],
                    }
                ],
            },
            "exactly one key",
        ),
        (
            {
                "id": "X",
                "affected": [
                    {
                        "package": {"name": "a", "ecosystem": "PyPI"},
                        "ranges": [{"type": "ECOSYSTEM", "events": [{"removed": "1"}]}],
                    }
                ],
            },
            "unknown range event",
        ),
        (
            {
                "id": "X",
                "affected": [
                    {
                        "package": {"name": "a", "ecosystem": "PyPI"},
                        "ranges": [{"type": "ECOSYSTEM", "events": [{"fixed": "0"}]}],
                    }
                ],
            },
            'only "introduced"',
        ),
        (
            {
                "id": "X",
                "affected": [
                    {
                        "package": {"name": "a", "ecosystem": "PyPI"},
                        "ranges": [{"type": "ECOSYSTEM", "events": [{"fixed": 1.1}]}],
                    }
                ],
            },
            "not a string",
        ),
        (
            {
                "id": "X",
                "affected": [{"package": {"name": "a", "ecosystem": "PyPI"}, "versions": "1.0"}],
            },
            "versions must be a list",
        ),
        ({"id": "X", "aliases": "CVE-1"}, "aliases must be a list"),
        ({"id": "X", "severity": {}}, "severity must be a list"),
        ({"id": "X", "severity": [{"type": "CVSS_V3"}]}, "score string"),
    ],
)
def test_malformed_records(data: object, message: str) -> None:
    with pytest.raises(osv.MalformedRecordError, match=message):
        osv.parse_record(data, "rec")


def test_other_ecosystems_and_odd_versions_are_skipped() -> None:
    adv = osv.parse_record(
        {
            "id": "X-1",
            "summary": "  two   words ",
            "affected": [
                {"package": {"name": "a", "ecosystem": "npm"}, "versions": ["1.0"]},
                {
                    "package": {"name": "b", "ecosystem": "PyPI"},
                    "versions": ["0.1dev-r1", 2, "1.0"],
                },
            ],
            "database_specific": {"severity": "HIGH"},
        },
        "rec",
    )
    assert [a.name for a in adv.affected] == ["b"]
    assert affects(adv, "b", "1.0.0")  # PEP 440: 1.0 == 1.0.0
    assert adv.summary == "two words"
    worst = adv.worst_severity()
    assert worst is not None
    assert (worst.score, str(worst)) == (None, "HIGH")


def test_cvss_v4_v2_and_unscorable() -> None:
    v4 = osv.score("CVSS_V4", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N")
    assert (v4.score, v4.rating) == (9.3, "Critical")
    v2 = osv.score("CVSS_V2", "AV:N/AC:L/Au:N/C:P/I:P/A:P")
    assert (v2.score, v2.rating) == (7.5, "High")
    bad = osv.score("CVSS_V3", "CVSS:3.1/AV:Q")
    assert (bad.score, bad.rating) == (None, "unscorable vector")
    other = osv.score("Ubuntu", "medium")
    assert (other.score, str(other)) == (None, "medium")
    adv = osv.parse_record(
        {
            "id": "X",
            "severity": [
                {"type": "CVSS_V3", "score": "bad"},
                {"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:P/I:P/A:P"},
            ],
        },
        "rec",
    )
    worst = adv.worst_severity()
    assert worst is not None
    assert worst.score == 7.5
