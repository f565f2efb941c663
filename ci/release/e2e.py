"""``deploy-check``: the whole release path, end to end, on this machine.

A throwaway ``docker-registry`` on loopback and throwaway keys (an ECDSA key in a
private file-backend directory, a GPG key in a private GNUPGHOME); the built image is
pushed (digest unchanged), signed, attested (its SBOM and SLSA provenance) and then:

- a tag-only deploy, an unsigned image, an untrusted key, a revoked key and a missing
  attestation are each refused with one line;
- the deploy by digest verifies, pulls, scans and runs ``bot4 doctor`` under runc
  (read-only root, no capabilities, no_new_privs, uid 65532, no network): exit 0;
- skopeo accepts the GPG simple signature with the right key and rejects a wrong one.

Any unexpected outcome raises, so the nox session fails.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from bot4.infrastructure.secrets.file import FileSecrets
from ci.release import attest, deploy, gpg, keys, layout, sign, verify
from ci.release.errors import RefusedError, ReleaseError
from ci.release.local_registry import LocalRegistry
from ci.release.policy import TrustedKey
from ci.release.reference import parse
from ci.release.registry import Registry


def _expect_refusal(what: str, run: Callable[[], object], needle: str) -> str:
    try:
        run()
    except RefusedError as exc:
        if needle not in str(exc):
            raise ReleaseError(f"deploy-check: {what}: refused for another reason: {exc}") from None
        return f"ok   {what}: {exc}"
    raise ReleaseError(f"deploy-check: {what} was accepted; it must be refused")


def _signers(tmp: Path) -> tuple[keys.Signer, keys.Signer]:
    secrets = tmp / "secrets"
    secrets.mkdir(mode=0o700)
    provider = FileSecrets(secrets)
    provider.create_signing_key("release")
    provider.create_signing_key("stranger")
    env = {"BOT4_SECRETS_DIR": str(secrets)}
    return keys.open_signer("file:release", env), keys.open_signer("file:stranger", env)


def check(src: Path, root: Path, policy_file: Path, say: Callable[[str], None]) -> Iterator[str]:
    """Run every check; yields one report line per check."""
    from ci.release import policy as policy_mod  # noqa: PLC0415

    base = policy_mod.load(policy_file)
    sbom = json.loads((src.parent / "sbom.cdx.json").read_text(encoding="utf-8"))
    today = dt.datetime.now(dt.UTC).date()
    with tempfile.TemporaryDirectory(prefix="bot4-deploy-check-") as name:
        tmp = Path(name)
        signer, stranger = _signers(tmp)
        with LocalRegistry(tmp / "registry") as local:
            registry = local.client()
            ref = parse(f"{local.host}/bot4/engine:check")
            digest = layout.push(registry, layout.Layout(src), ref)
            expected = layout.Layout(src).select().digest
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
            done = deploy.deploy(registry, pinned, policy, tmp / "deploy", root, today, say)
            yield (
                f"ok   deploy {pinned.repository}@{digest[:19]}…: signed by 'release', "
                f"{len(done.verified.statements)} attestations, scan clean, "
                f"{' '.join(done.outcome.argv)} exited 0 under runc"
            )
            yield from _gpg_checks(src, tmp, local.host, registry)
        signer.close()
        stranger.close()


def _gpg_checks(src: Path, tmp: Path, host: str, registry: Registry) -> Iterator[str]:
    tag = layout.Layout(src).index()[0].get("annotations", {}).get(layout.REF_NAME)
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
