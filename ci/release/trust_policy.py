"""The deploy policy (``ops/deploy-policy.toml``): which keys a host trusts, and until
when; which attestations it requires; how the container may run.

Keys carry a validity window and may be revoked. With no trusted timestamp on a
signature, a host cannot tell when it was made, so an expired or revoked key vouches
for nothing: every image signed only by it is refused, and the refusal says why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci import policy as toml
from ci.errors import GateError
from ci.release.attest import PROVENANCE, SBOM
from ci.release.errors import ReleaseError
from ci.release.keys import PublicKey, read_public_key

POLICY_FILE = "ops/deploy-policy.toml"
NETWORKS = ("none", "host")


@dataclass(frozen=True)
class TrustedKey:
    """A public key the policy names, with its validity window and revocation."""

    name: str
    key: PublicKey
    not_before: dt.date | None = None
    expires: dt.date | None = None
    revoked: dt.date | None = None
    reason: str = ""

    def problem(self, today: dt.date) -> str | None:
        """Why the key cannot vouch today (None when it can)."""
        if self.revoked is not None and self.revoked <= today:
            why = f": {self.reason}" if self.reason else ""
            return f"key {self.name!r} was revoked on {self.revoked}{why}"
        if self.expires is not None and self.expires <= today:
            return f"key {self.name!r} expired on {self.expires}"
        if self.not_before is not None and today < self.not_before:
            return f"key {self.name!r} is not valid before {self.not_before}"
        return None


@dataclass(frozen=True)
class Runtime:
    """How the deployed container runs: always read-only, no capabilities, no new
    privileges; ``user`` and ``network`` from the policy."""

    user: tuple[int, int] = (65532, 65532)
    network: str = "none"
    command: tuple[str, ...] = ()
    timeout: float = 120.0


@dataclass(frozen=True)
class DeployPolicy:
    """The whole ``[deploy]`` table."""

    keys: tuple[TrustedKey, ...]
    require: tuple[str, ...] = (SBOM, PROVENANCE)
    builders: tuple[str, ...] = ()
    runtime: Runtime = field(default_factory=Runtime)
    scan_policy: Path | None = None
    advisory_db: tuple[Path, ...] = ()
    match_repository: bool = True


def _date(entry: Mapping[str, Any], key: str, where: str) -> dt.date | None:
    return toml.date(entry, key, where) if key in entry else None


def _user(value: object, where: str) -> tuple[int, int]:
    text = str(value)
    uid, _, gid = text.partition(":")
    try:
        ids = (int(uid), int(gid or uid))
    except ValueError:
        raise ReleaseError(f"{where}: user must be UID[:GID] in numbers, got {text!r}") from None
    if 0 in ids:
        raise ReleaseError(f"{where}: user must not be root (0); use 65532:65532")
    return ids


def load(path: Path, base: Path | None = None) -> DeployPolicy:
    """Read and check a policy file; relative paths are relative to ``base`` (default:
    the policy file's directory) for keys, and to the working directory otherwise."""
    try:
        table = toml.load_section(path, "deploy")
    except GateError as exc:
        raise ReleaseError(str(exc)) from None
    where = f"{path} [deploy]"
    here = base if base is not None else path.parent
    try:
        keys = []
        for n, entry in enumerate(toml.entries(table, "keys", where)):
            at = f"{where} keys[{n}]"
            name = toml.text(entry, "name", at)
            key = read_public_key(here / toml.text(entry, "public-key", at))
            keys.append(
                TrustedKey(
                    name,
                    key,
                    _date(entry, "not-before", at),
                    _date(entry, "expires", at),
                    _date(entry, "revoked", at),
                    str(entry.get("reason", "")),
                )
            )
        run = table.get("run", {})
        if not isinstance(run, dict):
            raise ReleaseError(f"{where}: run must be a table")
        network = str(run.get("network", "none"))
        if network not in NETWORKS:
            raise ReleaseError(f"{where}.run: network must be one of {', '.join(NETWORKS)}")
        runtime = Runtime(
            _user(run.get("user", "65532:65532"), f"{where}.run"),
            network,
            toml.strings(run, "command", f"{where}.run"),
            float(run.get("timeout", 120)),
        )
        scan = table.get("scan", {})
        if not isinstance(scan, dict):
            raise ReleaseError(f"{where}: scan must be a table")
        require = (
            toml.strings(table, "require", where) if "require" in table else (SBOM, PROVENANCE)
        )
        return DeployPolicy(
            tuple(keys),
            require,
            toml.strings(table, "trusted-builders", where),
            runtime,
            Path(scan["policy"]) if "policy" in scan else None,
            tuple(Path(p) for p in toml.strings(scan, "advisory-db", f"{where}.scan")),
            bool(table.get("match-repository", True)),
        )
    except GateError as exc:
        raise ReleaseError(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise ReleaseError(f"{where}: {exc}") from None
