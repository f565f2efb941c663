"""Real cosign (Debian trixie's 2.5.0, pinned in ``ci/release/cosign.toml``) against our
signatures and attestations on the loopback registry: which flags verify them, and that
cosign refuses another key, an unsigned digest and the wrong attestation type."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ci.oci.layout import Layout
from ci.release import attest, quadlet, sign, transfer
from ci.release.keys import Signer
from ci.release.reference import parse
from ci.release.registry import Registry

REPO_ROOT = Path(__file__).resolve().parents[3]
PLAIN_HTTP = ("--allow-http-registry", "--allow-insecure-registry")


@pytest.fixture(scope="module")
def cosign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return quadlet.pinned_binary(
        REPO_ROOT, quadlet.COSIGN_PIN_FILE, tmp_path_factory.mktemp("cosign") / "cosign"
    )


def _cosign(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), *args, *PLAIN_HTTP], capture_output=True, text=True, check=False,
        timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_cosign_2_verifies_our_signatures_only_without_the_tlog(
    cosign: Path,
    registry: Registry,
    make_layout: Callable[..., tuple[Path, str]],
    make_signer: Callable[[str], Signer],
    tmp_path: Path,
) -> None:
    # Debian's build prints "GitVersion: devel": the version is the .deb's, checked on unpacking.
    assert quadlet.read_pin(REPO_ROOT, quadlet.COSIGN_PIN_FILE).version.startswith("2.5.0-")
    src, _ = make_layout({"etc/c": (b"c\n", 0o644)}, tag="c1")
    ref = parse(f"{registry.host}/bot4/cosign:c1")
    digest = transfer.push(registry, Layout(src), ref)
    pinned = ref.with_digest(digest)
    release, stranger = make_signer("release"), make_signer("stranger")
    sign.sign(registry, pinned, release)
    attest.attest(registry, pinned, release, attest.SBOM, {"bomFormat": "CycloneDX"})
    (tmp_path / "release.pub").write_bytes(release.public_pem)
    (tmp_path / "stranger.pub").write_bytes(stranger.public_pem)
    image = f"{pinned.name}@{digest}"
    key = ("--key", str(tmp_path / "release.pub"))

    done = _cosign(cosign, "verify", *key, "--insecure-ignore-tlog=true", image)
    assert done.returncode == 0, done.stderr
    (payload,) = json.loads(done.stdout)
    assert payload["critical"]["image"]["docker-manifest-digest"] == digest
    assert payload["critical"]["identity"]["docker-reference"] == pinned.name

    # Without --insecure-ignore-tlog cosign 2 insists on the transparency log (here it cannot
    # even fetch Sigstore's TUF root; on a networked host it finds no Rekor entry).
    assert _cosign(cosign, "verify", *key, image).returncode != 0

    other = _cosign(
        cosign, "verify", "--key", str(tmp_path / "stranger.pub"), "--insecure-ignore-tlog=true",
        image,
    )  # fmt: skip
    assert other.returncode != 0 and "no matching signatures" in other.stderr

    unsigned_src, _ = make_layout({"etc/u": (b"u\n", 0o644)}, tag="u1")
    unsigned = transfer.push(registry, Layout(unsigned_src), ref.with_tag("u1"))
    none = _cosign(
        cosign, "verify", *key, "--insecure-ignore-tlog=true", f"{pinned.name}@{unsigned}"
    )
    assert none.returncode != 0 and "no signatures found" in none.stderr

    att = _cosign(
        cosign, "verify-attestation", *key, "--insecure-ignore-tlog=true",
        "--type", attest.SBOM, image,
    )  # fmt: skip
    assert att.returncode == 0, att.stderr
    wrong = _cosign(
        cosign, "verify-attestation", *key, "--insecure-ignore-tlog=true",
        "--type", attest.PROVENANCE, image,
    )  # fmt: skip
    assert wrong.returncode != 0
