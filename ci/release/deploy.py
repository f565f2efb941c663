"""``deploy REF``: pin, verify, pull, scan, and only then run.

1. A reference by tag alone is refused (the digest to pin is printed) unless
   ``allow_tag``: a tag can move between verification and use; a digest cannot.
2. The cosign signature must come from a key the deploy policy trusts today and be over
   exactly this digest (and name this repository).
3. The required attestations (SBOM, SLSA provenance) must be signed the same way and be
   about this digest.
4. The image is fetched by digest (manifest and every blob re-hashed: other bytes are a
   refusal) and written to a fresh layout; the gate's scan (``ci.image.scan.scan_image``:
   advisories, pending Debian security updates, hygiene) runs on the attested SBOM and
   those layers.
5. It runs hardened under runc (``ci.release.run``); its exit status is the verdict.

Refusals raise ``RefusedError`` (exit 3) before anything runs.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.image.bundle import Run
from ci.release import run, transfer, verify
from ci.release.errors import RefusedError, ReleaseError
from ci.release.reference import Reference
from ci.release.registry import Registry
from ci.release.trust_policy import DeployPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deployment:
    """What was verified and how the container ended."""

    verified: verify.Verified
    outcome: Run
    findings: int


def pin(
    registry: Registry, ref: Reference, allow_tag: bool, say: Callable[[str], None]
) -> Reference:
    """``ref`` with its digest; a tag-only reference is refused unless ``allow_tag``."""
    if ref.digest is not None:
        return ref
    digest = registry.resolve(ref.repository, ref.tag or "latest")
    pinned = ref.with_digest(digest)
    if not allow_tag:
        raise RefusedError(
            f"refused: {ref} is a tag, not a digest; deploy the digest it points at now: {pinned}"
        )
    say(f"warning: deploying tag {ref} as {pinned} (--allow-tag)")
    return pinned


def deploy(
    registry: Registry,
    ref: Reference,
    policy: DeployPolicy,
    workdir: Path,
    root: Path,
    today: dt.date,
    say: Callable[[str], None],
    *,
    allow_tag: bool = False,
    index: Sequence[str] = (),
) -> Deployment:
    """Verify-then-run; any refusal raises ``RefusedError`` before anything runs.
    ``index``: ``SUITE=PATH`` Packages files for the pending-update check (default apt's)."""
    pinned = pin(registry, ref, allow_tag, say)
    verified = verify.verify(registry, pinned, policy, today)
    say(f"signature: ok, key {verified.signer.name!r} ({verified.signer.key.fingerprint[:19]}…)")
    say(f"attestations: ok ({', '.join(sorted(verified.statements))})")
    say(f"content: ok (manifest and {len(verified.image.blobs) - 1} blob(s) match their digests)")
    image = workdir / "image"
    transfer.write(image, verified.image.top, verified.image.blobs, "latest")
    report = verify.scan(verify.sbom_of(verified), image, policy, root, today, index=index)
    say(f"scan: ok ({report.summary().removeprefix('image scan: ')})")
    outcome = run.run(image, workdir, policy.runtime)
    say(f"run: {' '.join(outcome.argv)} exited {outcome.returncode}")
    if outcome.returncode != 0:
        detail = (outcome.stderr.strip().splitlines() or ["no output"])[-1]
        raise ReleaseError(
            f"{' '.join(outcome.argv)} exited {outcome.returncode} in the container: {detail}"
        )
    return Deployment(verified, outcome, len(report.findings))
