"""The deploy policy file: trusted keys with validity windows, requirements, runtime."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from ci.release import attest, trust_policy
from ci.release.errors import ReleaseError
from ci.release.keys import Signer

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_the_committed_policy_loads_and_trusts_no_key_yet() -> None:
    loaded = trust_policy.load(REPO_ROOT / trust_policy.POLICY_FILE)
    assert loaded.keys == ()
    assert loaded.require == (attest.SBOM, attest.PROVENANCE)
    assert loaded.runtime == trust_policy.Runtime((65532, 65532), "none", (), 120.0)
    assert loaded.scan_policy == Path("ci/image/scan.toml")
    assert loaded.match_repository


def test_a_full_policy(tmp_path: Path, make_signer: Callable[[str], Signer]) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "a.pub").write_bytes(make_signer("a").public_pem)
    (tmp_path / "p.toml").write_text(
        """
[deploy]
require = ["https://slsa.dev/provenance/v1"]
trusted-builders = ["urn:b"]
match-repository = false
[[deploy.keys]]
name = "a"
public-key = "keys/a.pub"
not-before = 2026-01-01
expires = "2027-01-01"
revoked = 2026-06-01
reason = "lost"
[deploy.run]
user = "1000"
network = "host"
command = ["/bin/true"]
timeout = 5
[deploy.scan]
advisory-db = ["db"]
"""
    )
    loaded = trust_policy.load(tmp_path / "p.toml")
    key = loaded.keys[0]
    assert (key.name, key.not_before, key.expires, key.revoked, key.reason) == (
        "a",
        dt.date(2026, 1, 1),
        dt.date(2027, 1, 1),
        dt.date(2026, 6, 1),
        "lost",
    )
    assert loaded.require == (attest.PROVENANCE,)
    assert loaded.builders == ("urn:b",)
    assert loaded.runtime == trust_policy.Runtime((1000, 1000), "host", ("/bin/true",), 5.0)
    assert loaded.advisory_db == (Path("db"),)
    assert loaded.scan_policy is None
    assert not loaded.match_repository


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[deploy]\nkeys = 3", "keys must be an array of tables"),
        ('[deploy]\n[[deploy.keys]]\nname = "a"', "public-key must be a non-empty string"),
        (
            '[deploy]\n[[deploy.keys]]\nname = "a"\npublic-key = "none.pub"',
            "cannot read public key",
        ),
        ("[deploy]\nrun = 1", "run must be a table"),
        ('[deploy.run]\nnetwork = "bridge"', "network must be one of none, host"),
        ('[deploy.run]\nuser = "root"', "user must be UID"),
        ('[deploy.run]\nuser = "0:0"', "must not be root"),
        ('[deploy.run]\ntimeout = "soon"', "could not convert"),
        ("[deploy]\nscan = []", "scan must be a table"),
        ("[deploy]\nrequire = [1]", "require must be a list of strings"),
        ("[deploy", "malformed policy TOML"),
    ],
)
def test_bad_policies_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "p.toml").write_text(text)
    with pytest.raises(ReleaseError, match=message):
        trust_policy.load(tmp_path / "p.toml")


def test_a_missing_policy(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="policy file not found"):
        trust_policy.load(tmp_path / "absent.toml")
