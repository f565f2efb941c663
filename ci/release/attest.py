"""Attestations: in-toto Statement v1 about one image digest, signed into a DSSE
envelope with the release key and attached as ``sha256-HEX.att`` (cosign's layout).

Two predicates are required to deploy:

- the image SBOM, predicate type ``https://cyclonedx.org/bom`` (the CycloneDX document
  ``python -m ci.image build`` writes next to the layout);
- SLSA provenance v1 (``https://slsa.dev/provenance/v1``): who built it (builder id),
  from what (source repository and commit, sha256 of every lock), how (build type and
  parameters).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.image.engine import project_source
from ci.image.errors import ImageError
from ci.oci.digest import check_digest
from ci.release import cosign, dsse
from ci.release.errors import ReleaseError
from ci.release.keys import Signer
from ci.release.reference import Reference
from ci.release.registry import Registry

STATEMENT = "https://in-toto.io/Statement/v1"
SBOM = "https://cyclonedx.org/bom"
PROVENANCE = "https://slsa.dev/provenance/v1"
NAMES = {SBOM: "the image SBOM", PROVENANCE: "SLSA provenance"}
BUILD_TYPE = "urn:bot4:build-type:ci.image:v1"  # python -m ci.image build (docs/image.md)
LOCKS = ("image.lock", "toolchain.lock", "locks/runtime.txt", "locks/toolchain.txt")


def statement(name: str, digest: str, predicate_type: str, predicate: Mapping[str, Any]) -> bytes:
    """An in-toto Statement v1 about image ``name@digest``."""
    hex_ = check_digest(digest).removeprefix("sha256:")
    doc = {
        "_type": STATEMENT,
        "subject": [{"name": name, "digest": {"sha256": hex_}}],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }
    return cosign.go_json(doc)


@dataclass(frozen=True)
class Statement:
    """A decoded statement: its subjects' sha256 digests, predicate type and predicate."""

    subjects: tuple[tuple[str, str], ...]
    predicate_type: str
    predicate: Mapping[str, Any]

    def covers(self, digest: str) -> bool:
        """Whether ``digest`` is one of the subjects."""
        return any(f"sha256:{hex_}" == digest for _, hex_ in self.subjects)


def parse_statement(data: bytes, where: str) -> Statement:
    """Decode an in-toto statement (v1, or v0.1 as older cosign writes)."""
    try:
        doc = json.loads(data)
        if doc["_type"] not in {STATEMENT, "https://in-toto.io/Statement/v0.1"}:
            raise ReleaseError(f"{where}: unknown statement type {doc['_type']!r}")
        subjects = tuple(
            (str(s.get("name", "")), str(s["digest"]["sha256"])) for s in doc["subject"]
        )
        predicate = doc.get("predicate") or {}
        predicate_type = str(doc["predicateType"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ReleaseError(f"{where}: not an in-toto statement") from None
    if not isinstance(predicate, dict):
        raise ReleaseError(f"{where}: the predicate is not a JSON object")
    return Statement(subjects, predicate_type, predicate)


def attest(
    registry: Registry,
    ref: Reference,
    signer: Signer,
    predicate_type: str,
    predicate: Mapping[str, Any],
) -> str:
    """Sign a statement about ``ref`` (by digest) and attach it; returns the .att digest."""
    if ref.digest is None:
        raise ReleaseError(f"attest needs a digest, not a tag: {ref}")
    body = statement(ref.name, ref.digest, predicate_type, predicate)
    envelope = dsse.seal(dsse.INTOTO, body, signer.sign)
    layer = cosign.Layer(
        envelope.encode(),
        cosign.DSSE,
        {cosign.SIGNATURE_ANNOTATION: "", cosign.PREDICATE_ANNOTATION: predicate_type},
    )
    return cosign.attach(registry, ref.repository, ref.digest, "att", layer)


# --- SLSA provenance ------------------------------------------------------------------------


def _git_binary() -> str:
    found = shutil.which("git")
    if found is None:
        raise ReleaseError("git is not installed; provenance names the built commit")
    return found


def _git(root: Path, *args: str) -> str:
    try:
        out = subprocess.run(  # noqa: S603  # nosec B603
            [_git_binary(), "-C", str(root), *args],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = (getattr(exc, "stderr", b"") or b"").decode(errors="replace").strip()
        raise ReleaseError(f"git {' '.join(args)} failed in {root}: {detail or exc}") from None
    return out.stdout.decode()


def _git_bytes_sha256(root: Path, commit: str, path: str) -> str | None:
    try:
        data = subprocess.run(  # noqa: S603  # nosec B603
            [_git_binary(), "-C", str(root), "show", f"{commit}:{path}"],
            check=True,
            capture_output=True,
        ).stdout
    except subprocess.CalledProcessError:
        return None
    return hashlib.sha256(data).hexdigest()


def provenance(
    root: Path,
    commit: str,
    builder_id: str,
    parameters: Mapping[str, Any],
    *,
    source: str | None = None,
    locks: Sequence[str] = LOCKS,
    started: str | None = None,
    finished: str | None = None,
    inputs: str | None = None,
) -> dict[str, Any]:
    """A SLSA provenance v1 predicate for an image built from ``commit`` of the repository
    at ``root``: source and every lock (as committed at that commit) by digest."""
    full = _git(root, "rev-parse", "--verify", f"{commit}^{{commit}}").strip()
    if source is None:
        # The commit's own [project.urls] (as the image's source annotation), never the
        # clone's remote or path: the provenance must not depend on where it was built.
        try:
            source = project_source(root, full)
        except ImageError as exc:
            raise ReleaseError(str(exc)) from None
    commit_dep: dict[str, Any] = {"uri": f"git+{source}@{full}"} if source else {"name": "source"}
    deps: list[dict[str, Any]] = [{**commit_dep, "digest": {"gitCommit": full}}]
    for path in locks:
        digest = _git_bytes_sha256(root, full, path)
        if digest is not None:
            deps.append({"name": path, "digest": {"sha256": digest}})
    if inputs is not None:  # the release's .debs and wheels, pushed beside the image
        repository, _, pinned = inputs.partition("@sha256:")
        deps.append(
            {"uri": f"oci://{repository}", "name": "image-inputs", "digest": {"sha256": pinned}}
        )
    metadata = {k: v for k, v in (("startedOn", started), ("finishedOn", finished)) if v}
    run: dict[str, Any] = {"builder": {"id": builder_id}}
    if metadata:
        run["metadata"] = metadata
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {"source": source, "revision": full, **dict(parameters)},
            "resolvedDependencies": deps,
        },
        "runDetails": run,
    }
