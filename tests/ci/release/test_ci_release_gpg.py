"""Containers simple signing: skopeo signs with a throwaway GPG key and skopeo's own
policy.json (signedBy) is the verifier — the right key is accepted, a wrong key and a
missing signature are rejected."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ci.release import gpg
from ci.release.errors import RefusedError, ReleaseError
from ci.release.reference import parse
from ci.release.registry import Registry


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, str]]]:
    if shutil.which("skopeo") is None or shutil.which("gpg") is None:
        pytest.fail("skopeo and gnupg (Debian packages) are needed for GPG simple signing")
    base = tmp_path_factory.mktemp("gnupg")
    made = {
        name: (base / name, gpg.new_key(base / name, f"{name} <{name}@example.invalid>"))
        for name in ("release", "other")
    }
    yield made
    for home, _ in made.values():
        gpg.stop_agent(home)


def test_right_key_accepted_wrong_key_and_unsigned_rejected(
    keys: dict[str, tuple[Path, str]],
    registry: Registry,
    repo: str,
    make_layout: Callable[..., tuple[Path, str]],
    tmp_path: Path,
) -> None:
    src, digest = make_layout({"etc/gpg": (b"gpg\n", 0o644)}, tag="v1")
    home, fingerprint = keys["release"]
    ref = parse(f"{registry.host}/{repo}:v1")
    regd = gpg.write_registries_d(tmp_path / "registries.d", ref, tmp_path / "lookaside")
    env = {**os.environ, "GNUPGHOME": str(home)}
    assert gpg.sign(src, "v1", ref, fingerprint, regd, env, plain_http=True) == digest  # unchanged
    assert list((tmp_path / "lookaside").rglob("signature-1"))
    pinned = ref.with_digest(digest)

    good = gpg.write_policy(
        tmp_path / "good.json", pinned, gpg.export_public(home, fingerprint, tmp_path / "g.asc")
    )
    gpg.verify(pinned, good, regd, env, plain_http=True)

    other_home, other = keys["other"]
    bad = gpg.write_policy(
        tmp_path / "bad.json", pinned, gpg.export_public(other_home, other, tmp_path / "b.asc")
    )
    with pytest.raises(
        RefusedError, match=r"^refused: skopeo's policy rejects .*Invalid GPG signature$"
    ):
        gpg.verify(pinned, bad, regd, env, plain_http=True)

    empty = gpg.write_registries_d(tmp_path / "empty.d", ref, tmp_path / "no-signatures")
    with pytest.raises(RefusedError, match=r"rejects .*: .*signature"):
        gpg.verify(pinned, good, empty, env, plain_http=True)


def test_usage_errors(
    keys: dict[str, tuple[Path, str]], tmp_path: Path, registry: Registry, repo: str
) -> None:
    home, fingerprint = keys["release"]
    ref = parse(f"{registry.host}/{repo}@sha256:" + "a" * 64)
    with pytest.raises(ReleaseError, match="signs while pushing to a tag"):
        gpg.sign(tmp_path, "t", ref, fingerprint, tmp_path, {})
    with pytest.raises(ReleaseError, match="verify by digest"):
        gpg.verify(ref.with_tag("t"), tmp_path / "p.json", tmp_path, {})
    tagged = ref.with_tag("t")
    with pytest.raises(
        ReleaseError,
        match=r"skopeo could not sign .*no such file or directory|skopeo could not sign",
    ):
        gpg.sign(
            tmp_path / "no-layout",
            "t",
            tagged,
            fingerprint,
            tmp_path,
            {"GNUPGHOME": str(home)},
            plain_http=True,
        )
    with pytest.raises(ReleaseError, match="gpg could not export"):
        gpg.export_public(home, "0" * 40, tmp_path / "x.asc")
    with pytest.raises(ReleaseError, match="gpg could not create a key"):
        gpg.new_key(home, "")


def test_last_line_extraction() -> None:
    assert gpg._last_line("") == "no output"
    assert gpg._last_line("a\nb\n") == "b"
    line = (
        'time="x" level=fatal '
        'msg="Source image rejected: \\"quoted\\": gpgme.Signature{Summary:128}"'
    )
    assert gpg._last_line(line) == 'Source image rejected: "quoted"'


def test_missing_tools_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ReleaseError, match=r"skopeo is not installed \(apt-get install skopeo\)"):
        gpg._skopeo()
    with pytest.raises(ReleaseError, match=r"gpg is not installed \(apt-get install gnupg\)"):
        gpg.new_key(tmp_path / "home", "x")
    gpg.stop_agent(tmp_path / "home")  # no gpgconf: nothing to stop
