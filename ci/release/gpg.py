"""Containers simple signing for podman/CRI-O hosts: GPG signatures made and checked by
skopeo itself (an independent verifier that runs here).

Signing is ``skopeo copy --sign-by FINGERPRINT`` with the signature written to
*lookaside* storage named in a ``registries.d`` YAML; verifying is a ``skopeo copy`` of
the image by digest under a ``policy.json`` that requires ``signedBy`` the trusted GPG
key (and rejects everything else). The same two files are what a podman/CRI-O host
puts in ``/etc/containers/``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ci.oci.digest import check_digest
from ci.release.errors import RefusedError, ReleaseError
from ci.release.reference import Reference

TIMEOUT = 300
GPGME_DETAIL = re.compile(r":? gpgme\.Signature\{.*$")
_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


def _skopeo() -> str:
    found = shutil.which("skopeo")
    if found is None:
        raise ReleaseError("skopeo is not installed (apt-get install skopeo)")
    return found


def _run(argv: list[str], env: Mapping[str, str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(  # noqa: S603  # nosec B603
            argv, capture_output=True, text=True, env=dict(env), timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise ReleaseError(f"{what}: skopeo did not finish within {TIMEOUT}s") from None


def _last_line(text: str) -> str:
    """The last line of a tool's stderr; for skopeo's logfmt lines, just the message."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "no output"
    found = _MSG.search(lines[-1])
    if not found:
        return lines[-1]
    message = found.group(1).replace('\\"', '"')
    return GPGME_DETAIL.sub("", message)


def write_registries_d(directory: Path, ref: Reference, lookaside: Path) -> Path:
    """A ``registries.d`` directory telling skopeo where ``ref``'s repository keeps its
    simple signatures (read and write)."""
    directory.mkdir(parents=True, exist_ok=True)
    uri = lookaside.resolve().as_uri()
    text = f"docker:\n  {ref.name}:\n    lookaside: {uri}\n    lookaside-staging: {uri}\n"
    path = directory / "bot4.yaml"
    path.write_text(text, encoding="utf-8")
    return directory


def write_policy(path: Path, ref: Reference, public_keyring: Path) -> Path:
    """A ``policy.json`` that accepts ``ref``'s repository only when signed by a key in
    ``public_keyring`` (an exported GPG public key) and rejects everything else."""
    doc = {
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {
                ref.name: [
                    {
                        "type": "signedBy",
                        "keyType": "GPGKeys",
                        "keyPath": str(public_keyring.resolve()),
                    }
                ]
            }
        },
    }
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def _tls(ref: Reference, flag: str, plain_http: bool) -> list[str]:
    return [f"--{flag}-tls-verify=false"] if plain_http else []


def sign(
    layout: Path,
    layout_tag: str,
    ref: Reference,
    fingerprint: str,
    registries_d: Path,
    environ: Mapping[str, str],
    *,
    plain_http: bool = False,
) -> str:
    """Push ``oci:LAYOUT:TAG`` to ``ref`` (a tag) with a GPG simple signature by
    ``fingerprint`` (from ``GNUPGHOME`` in ``environ``); returns the pushed digest."""
    if ref.tag is None:
        raise ReleaseError(f"skopeo signs while pushing to a tag; {ref} has none")
    with tempfile.TemporaryDirectory(prefix="bot4-gpg-") as tmp:
        digest_file = Path(tmp) / "digest"
        result = _run(
            [
                _skopeo(),
                "--registries.d",
                str(registries_d),
                "copy",
                "--quiet",
                "--sign-by",
                fingerprint,
                "--digestfile",
                str(digest_file),
                *_tls(ref, "dest", plain_http),
                f"oci:{layout}:{layout_tag}",
                f"docker://{ref}",
            ],
            environ,
            f"signing {ref}",
        )
        if result.returncode != 0:
            raise ReleaseError(f"skopeo could not sign {ref}: {_last_line(result.stderr)}")
        return check_digest(digest_file.read_text(encoding="utf-8").strip())


def verify(
    ref: Reference,
    policy: Path,
    registries_d: Path,
    environ: Mapping[str, str],
    *,
    plain_http: bool = False,
) -> None:
    """Let skopeo enforce ``policy`` on ``ref`` (by digest): a missing or wrong
    signature is a ``RefusedError`` with skopeo's reason."""
    if ref.digest is None:
        raise ReleaseError(f"verify by digest, not by tag: {ref}")
    with tempfile.TemporaryDirectory(prefix="bot4-gpg-verify-") as tmp:
        result = _run(
            [
                _skopeo(),
                "--policy",
                str(policy),
                "--registries.d",
                str(registries_d),
                "copy",
                "--quiet",
                *_tls(ref, "src", plain_http),
                f"docker://{ref}",
                f"dir:{tmp}/image",
            ],
            environ,
            f"verifying {ref}",
        )
    if result.returncode != 0:
        raise RefusedError(f"refused: skopeo's policy rejects {ref}: {_last_line(result.stderr)}")


def _gpg() -> str:
    found = shutil.which("gpg")
    if found is None:
        raise ReleaseError("gpg is not installed (apt-get install gnupg)")
    return found


def new_key(gnupghome: Path, uid: str) -> str:
    """Generate a throwaway, passphrase-less signing key in ``gnupghome`` (created 0700);
    returns its fingerprint. For tests and ``deploy-check`` only."""
    gnupghome.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {"GNUPGHOME": str(gnupghome), "PATH": "/usr/bin:/bin"}
    result = _run(
        [_gpg(), "--batch", "--passphrase", "", "--quick-gen-key", uid, "default", "sign", "1d"],
        env,
        "gpg key generation",
    )
    if result.returncode != 0:
        raise ReleaseError(f"gpg could not create a key: {_last_line(result.stderr)}")
    listing = _run(
        [_gpg(), "--batch", "--with-colons", "--list-secret-keys", uid], env, "gpg key listing"
    )
    fingerprints = [
        line.split(":")[9] for line in listing.stdout.splitlines() if line.startswith("fpr:")
    ]
    if not fingerprints:
        raise ReleaseError(f"gpg created no key for {uid!r}")
    return fingerprints[0]


def export_public(gnupghome: Path, fingerprint: str, dest: Path) -> Path:
    """Export a public key (ASCII-armoured; ``signedBy`` imports it with GPGME)."""
    env = {"GNUPGHOME": str(gnupghome), "PATH": "/usr/bin:/bin"}
    result = _run([_gpg(), "--batch", "--armor", "--export", fingerprint], env, "gpg export")
    if result.returncode != 0 or not result.stdout:
        raise ReleaseError(f"gpg could not export {fingerprint}: {_last_line(result.stderr)}")
    dest.write_text(result.stdout, encoding="ascii")
    return dest


def stop_agent(gnupghome: Path) -> None:
    """Stop the gpg-agent a throwaway ``gnupghome`` started (it outlives gpg otherwise)."""
    gpgconf = shutil.which("gpgconf")
    if gpgconf is not None and gnupghome.exists():
        _run([gpgconf, "--homedir", str(gnupghome), "--kill", "gpg-agent"], {}, "gpgconf")
