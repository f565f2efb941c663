"""``deploy-check``: the whole release path, end to end, on this machine.

A throwaway ``docker-registry`` on loopback and throwaway keys (an ECDSA key in a
private file-backend directory, a GPG key in a private GNUPGHOME); the built image is
pushed (digest unchanged), signed, attested (its SBOM and SLSA provenance) and then:

- a tag-only deploy, an unsigned image, an untrusted key, a revoked key and a missing
  attestation are each refused with one line;
- the attacks, each through ``python -m ci.release deploy`` (and ``verify``) as a user
  runs it, must exit 3 (refused) with one line and run nothing: a tampered layer and a
  tampered manifest in the registry's storage, a signature copied onto another digest,
  another repository's signature, an attestation about another digest, and the tag moved
  to a crafted image;
- the deploy by digest verifies, pulls, scans and runs ``bot4 doctor`` under runc
  (read-only root, no capabilities, no_new_privs, uid 65532, no network): exit 0;
- skopeo accepts the GPG simple signature with the right key and rejects a wrong one.

Any unexpected outcome raises, so the nox session fails.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ci.oci import mediatypes
from ci.oci.digest import canonical, sha256
from ci.oci.layout import Layout
from ci.oci.manifest import Manifest
from ci.release import attest, bot4_signer, cosign, deploy, gpg, keys, sign, transfer, verify
from ci.release.errors import REFUSED, RefusedError, ReleaseError
from ci.release.local_registry import LocalRegistry
from ci.release.reference import Reference, parse
from ci.release.registry import Registry
from ci.release.trust_policy import TrustedKey
from ci.release.trust_policy import load as load_policy

TAG = "check"


def _expect_refusal(what: str, run: Callable[[], object], needle: str) -> str:
    try:
        run()
    except RefusedError as exc:
        if needle not in str(exc):
            raise ReleaseError(f"deploy-check: {what}: refused for another reason: {exc}") from None
        return f"ok   {what}: {exc}"
    raise ReleaseError(f"deploy-check: {what} was accepted; it must be refused")


def signers(tmp: Path) -> tuple[keys.Signer, keys.Signer]:
    secrets = tmp / "secrets"
    secrets.mkdir(mode=0o700)
    bot4_signer.create_file_key(secrets, "release")
    bot4_signer.create_file_key(secrets, "stranger")
    env = {"BOT4_SECRETS_DIR": str(secrets)}
    return bot4_signer.open_signer("file:release", env), bot4_signer.open_signer(
        "file:stranger", env
    )


def policy_file_for(tmp: Path, base_file: Path, signer: keys.Signer) -> Path:
    """The deploy policy ``python -m ci.release`` reads: the base one's sections, with
    our throwaway key as the only trusted key."""
    (tmp / "release.pub").write_bytes(signer.public_pem)
    text = base_file.read_text(encoding="utf-8").replace(
        "keys = []", '[[deploy.keys]]\nname = "release"\npublic-key = "release.pub"', 1
    )
    if "release.pub" not in text:
        raise ReleaseError(f"deploy-check: {base_file} has no 'keys = []' line to replace")
    (tmp / "deploy-policy.toml").write_text(text, encoding="utf-8")
    return tmp / "deploy-policy.toml"


def _cli_refusal(what: str, argv: Sequence[str], needle: str, root: Path) -> str:
    """``python -m ci.release ARGV`` as a user runs it: exit 3, one line naming ``needle``,
    and nothing ran (no ``run:`` step, nothing on stdout)."""
    done = subprocess.run(  # noqa: S603  # nosec B603 - our own interpreter and module
        [sys.executable, "-m", "ci.release", "--root", str(root), *argv],
        capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("ci.release: error: ")]
    if done.returncode != REFUSED or len(lines) != 1 or "Traceback" in done.stderr:
        raise ReleaseError(
            f"deploy-check: {what}: exit {done.returncode}, expected {REFUSED} with one "
            f"error line; stderr: {done.stderr.strip()[-300:]!r}"
        )
    if needle not in lines[0]:
        raise ReleaseError(f"deploy-check: {what}: refused for another reason: {lines[0]}")
    if done.stdout.strip() or "release: run:" in done.stderr:
        raise ReleaseError(f"deploy-check: {what}: refused, but the container ran")
    return f"ok   {what}: exit {REFUSED}: {lines[0].removeprefix('ci.release: error: ')}"


def crafted(registry: Registry, repo: str, top: Manifest) -> Manifest:
    """The attacker's image: ``top`` plus a layer of their own, config updated to match,
    pushed to ``repo`` (untagged; the caller tags it)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("etc/crafted")
        info.size, info.mode = 9, 0o644
        tar.addfile(info, io.BytesIO(b"attacker\n"))
    layer = gzip.compress(raw.getvalue(), mtime=0)
    doc = top.json()
    config = json.loads(registry.blob(repo, str(doc["config"]["digest"])))
    config["rootfs"]["diff_ids"].append(sha256(raw.getvalue()))
    config_bytes = canonical(config)
    registry.push_blob(repo, layer)
    registry.push_blob(repo, config_bytes)
    doc["config"] = dict(doc["config"], digest=sha256(config_bytes), size=len(config_bytes))
    doc["layers"] = [
        *doc["layers"],
        {
            "mediaType": mediatypes.LAYER,
            "digest": sha256(layer),
            "size": len(layer),
        },
    ]
    data = canonical(doc)
    manifest = Manifest(data, str(doc.get("mediaType", mediatypes.MANIFEST)), sha256(data))
    registry.put_manifest(repo, manifest.digest, manifest)
    return manifest


def copy_attached(registry: Registry, src: Reference, dst: Reference, suffix: str) -> int:
    """Copy every item attached to ``src`` (``.sig``/``.att``) onto ``dst``: an attacker
    with push access re-using genuine signatures. Returns how many were copied."""
    items = cosign.attached(registry, src.repository, verify.pinned(src), suffix)
    for item in items:
        cosign.attach(registry, dst.repository, verify.pinned(dst), suffix, item)
    return len(items)


class Tampered:
    """Edit a blob in the registry's storage (same size), restore it on exit."""

    def __init__(self, local: LocalRegistry, digest: str, edit: Callable[[bytes], bytes]) -> None:
        self._path = local.blob_file(digest)
        self._edit = edit
        self._original = b""

    def __enter__(self) -> None:
        self._original = self._path.read_bytes()
        changed = self._edit(self._original)
        if changed == self._original or len(changed) != len(self._original):
            raise ReleaseError(f"deploy-check: the tamper edit of {self._path} changed nothing")
        self._path.write_bytes(changed)

    def __exit__(self, *exc: object) -> None:
        self._path.write_bytes(self._original)


def flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


def swap_hex(data: bytes) -> bytes:
    """Still valid JSON (the registry parses it before serving): one hex digit of the
    last layer digest changed."""
    at = data.rindex(b'"sha256:') + 8
    return data[:at] + (b"1" if data[at : at + 1] != b"1" else b"2") + data[at + 1 :]


def check(src: Path, root: Path, policy_file: Path, say: Callable[[str], None]) -> Iterator[str]:
    """Run every check; yields one report line per check."""
    base = load_policy(policy_file)
    sbom = json.loads((src.parent / "sbom.cdx.json").read_text(encoding="utf-8"))
    today = dt.datetime.now(dt.timezone.utc).date()
    with tempfile.TemporaryDirectory(prefix="bot4-deploy-check-") as name:
        tmp = Path(name)
        signer, stranger = signers(tmp)
        with LocalRegistry(tmp / "registry") as local:
            registry = local.client()
            ref = parse(f"{local.host}/bot4/engine:{TAG}")
            digest = transfer.push(registry, Layout(src), ref)
            expected = Layout(src).select().digest
            if digest != expected:
                raise ReleaseError(
                    f"deploy-check: the push changed the digest: {expected} → {digest}"
                )
            yield f"ok   push keeps the digest {digest}"
            pinned = ref.with_digest(digest)
            trusted = TrustedKey("release", keys.PublicKey(signer.public_pem))
            policy = dataclasses.replace(base, keys=(trusted,))

            yield _expect_refusal(
                "unsigned image",
                lambda: verify.verify(registry, pinned, policy, today),
                "unsigned",
            )
            sign.sign(registry, pinned, stranger)
            yield _expect_refusal(
                "signed by an untrusted key",
                lambda: verify.verify(registry, pinned, policy, today),
                "no key the deploy policy trusts",
            )
            sign.sign(registry, pinned, signer)
            revoked = dataclasses.replace(trusted, revoked=today, reason="deploy-check")
            yield _expect_refusal(
                "signed by a revoked key",
                lambda: verify.verify(
                    registry, pinned, dataclasses.replace(policy, keys=(revoked,)), today
                ),
                "revoked",
            )
            attest.attest(registry, pinned, signer, attest.SBOM, sbom)
            yield _expect_refusal(
                "provenance missing",
                lambda: verify.verify(registry, pinned, policy, today),
                "attestation missing",
            )
            commit = (
                registry.manifest(ref.repository, digest).json().get("annotations") or {}
            ).get("org.opencontainers.image.revision", "HEAD")
            prov = attest.provenance(root, str(commit), "urn:bot4:builder:deploy-check", {})
            attest.attest(registry, pinned, signer, attest.PROVENANCE, prov)
            yield _expect_refusal(
                "tag-only reference",
                lambda: deploy.pin(registry, ref, False, say),
                digest,
            )
            attack_policy = policy_file_for(tmp, policy_file, signer)
            yield from _attacks(local, registry, pinned, signer, attack_policy, root)
            done = deploy.deploy(registry, pinned, policy, tmp / "deploy", root, today, say)
            yield (
                f"ok   deploy {pinned.repository}@{digest[:19]}…: signed by 'release', "
                f"{len(done.verified.statements)} attestations, scan clean, "
                f"{' '.join(done.outcome.argv)} exited 0 under runc"
            )
            yield from _gpg_checks(src, tmp, local.host, registry)
        signer.close()
        stranger.close()


def _attacks(
    local: LocalRegistry,
    registry: Registry,
    pinned: Reference,
    signer: keys.Signer,
    policy_file: Path,
    root: Path,
) -> Iterator[str]:
    """Each attack on the real registry, refused by ``python -m ci.release`` with exit 3."""
    digest = verify.pinned(pinned)
    workdir = policy_file.parent / "attack-work"
    workdir.mkdir()
    opts = ["--policy", str(policy_file)]

    def deploy_argv(target: Reference | str, *extra: str) -> list[str]:
        return ["deploy", str(target), *opts, "--workdir", str(workdir), *extra]

    top = registry.manifest(pinned.repository, digest)
    layer = str(top.json()["layers"][-1]["digest"])
    with Tampered(local, layer, flip_last_byte):
        yield _cli_refusal(
            "tampered layer (deploy)", deploy_argv(pinned), f"served blob {layer}", root
        )
        yield _cli_refusal(
            "tampered layer (verify)", ["verify", str(pinned), *opts], "served blob", root
        )
    with Tampered(local, digest, swap_hex):
        yield _cli_refusal(
            "tampered manifest (deploy)", deploy_argv(pinned), f"served manifest {digest}", root
        )
        yield _cli_refusal(
            "tampered manifest (verify)", ["verify", str(pinned), *opts], "served manifest", root
        )

    other = crafted(registry, pinned.repository, top)
    forged = pinned.with_digest(other.digest)
    registry.put_manifest(pinned.repository, TAG, other)  # the tag moves
    yield _cli_refusal(
        "tag moved to a crafted image (deploy TAG)",
        deploy_argv(_tag_only(pinned)),
        f"deploy the digest it points at now: {forged.name}@{other.digest}",
        root,
    )
    yield _cli_refusal(
        "tag moved to a crafted image (deploy --allow-tag TAG)",
        deploy_argv(_tag_only(pinned), "--allow-tag"),
        "is unsigned",
        root,
    )
    copy_attached(registry, pinned, forged, "sig")
    yield _cli_refusal(
        "signature copied onto another digest",
        deploy_argv(forged),
        f"the signature is over {digest}, not {other.digest}",
        root,
    )
    sign.sign(registry, forged, signer)  # even a genuine signature of the crafted image …
    copy_attached(registry, pinned, forged, "att")  # … with attestations about another one
    yield _cli_refusal(
        "attestation about another digest",
        deploy_argv(forged),
        f"is about {digest}, not {other.digest}",
        root,
    )
    elsewhere = parse(f"{local.host}/bot4/elsewhere@{digest}")
    mirror = parse(f"{local.host}/bot4/engine-mirror@{digest}")
    for target in (elsewhere, mirror):
        _copy_image(registry, pinned, target)
    sign.sign(registry, elsewhere, signer)  # a genuine signature, for another repository
    copy_attached(registry, elsewhere, mirror, "sig")
    copy_attached(registry, pinned, mirror, "att")
    yield _cli_refusal(
        "another repository's signature",
        deploy_argv(mirror),
        f"the signature names {elsewhere.name}, not {mirror.name}",
        root,
    )


def _tag_only(ref: Reference) -> str:
    return f"{ref.name}:{TAG}"


def _copy_image(registry: Registry, src: Reference, dst: Reference) -> None:
    """The image's blobs and manifest, by digest, into another repository."""
    image = transfer.fetch(registry, src)
    for blob_digest, data in sorted(image.blobs.items()):
        if blob_digest != image.top.digest:
            registry.push_blob(dst.repository, data)
    registry.put_manifest(dst.repository, verify.pinned(dst), image.top)


def _gpg_checks(src: Path, tmp: Path, host: str, registry: Registry) -> Iterator[str]:
    tag = Layout(src).tag()
    if not tag:
        raise ReleaseError(f"deploy-check: {src} names no tag for skopeo (oci:DIR:TAG)")
    homes = [tmp / "gnupg-release", tmp / "gnupg-other"]
    try:
        fingerprint = gpg.new_key(homes[0], "bot4 release <release@example.invalid>")
        other = gpg.new_key(homes[1], "someone else <other@example.invalid>")
        ref = parse(f"{host}/bot4/engine-gpg:{tag}")
        regd = gpg.write_registries_d(tmp / "registries.d", ref, tmp / "lookaside")
        env = {**os.environ, "GNUPGHOME": str(homes[0])}
        digest = gpg.sign(
            src, tag, ref, fingerprint, regd, env, plain_http=registry.scheme == "http"
        )
        pinned = ref.with_digest(digest)
        good = gpg.write_policy(
            tmp / "good.json", pinned, gpg.export_public(homes[0], fingerprint, tmp / "good.asc")
        )
        gpg.verify(pinned, good, regd, env, plain_http=True)
        yield f"ok   GPG simple signature by {fingerprint[-16:]} accepted by skopeo's policy"
        bad = gpg.write_policy(
            tmp / "bad.json", pinned, gpg.export_public(homes[1], other, tmp / "bad.asc")
        )
        yield _expect_refusal(
            "GPG signature checked against a wrong key",
            lambda: gpg.verify(pinned, bad, regd, env, plain_http=True),
            "rejects",
        )
    finally:
        for home in homes:
            gpg.stop_agent(home)
