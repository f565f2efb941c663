"""``python -m ci licenses``: the licence policy over an environment installed from the lock.

For each installed distribution the licence is taken from, in order: a ``clarify`` entry
of the policy (exact version), PEP 639 ``License-Expression``, the ``License`` field when
it is an SPDX expression (or a well-known spelling of one), then the trove classifiers
(several are read as AND — the strict reading). Licences that a wheel *bundles* for
vendored binaries are read from ``License:`` lines of its licence files (numpy documents
OpenBLAS, LAPACK, the gfortran runtime and libquadmath this way) and must pass too.

SPDX expressions are evaluated with ``license-expression``: an OR passes when one branch
does, an AND when every part does. A licence passes when it is in ``allow`` and is not
copyleft under ``copyleft = "deny"``, or when an ``exceptions`` entry names the package
and that licence (with a reason). Unknown or missing licence metadata is denied, with the
fix: a ``clarify`` entry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from license_expression import ExpressionError, get_spdx_licensing

from ci import policy
from ci.errors import GateError

LICENSING = get_spdx_licensing()
# SPDX id prefixes of copyleft licences (strong and weak).
COPYLEFT = (
    "AGPL-", "GPL-", "LGPL-", "MPL-", "EPL-", "EUPL-", "CDDL-", "OSL-", "CPL-",
    "CC-BY-SA-", "CC-BY-NC-SA-", "SSPL-", "APSL-", "MS-RL", "RPL-", "Sleepycat",
)  # fmt: skip
# Trove classifiers ("License :: OSI Approved :: …" or "License :: …") by their last part.
CLASSIFIERS = {
    "MIT License": "MIT",
    "MIT No Attribution License (MIT-0)": "MIT-0",
    "Apache Software License": "Apache-2.0",
    "ISC License (ISCL)": "ISC",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "Python Software Foundation License": "PSF-2.0",
    "The Unlicense (Unlicense)": "Unlicense",
    "Zope Public License": "ZPL-2.1",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU Affero General Public License v3": "AGPL-3.0-only",
    "GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
    "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "Universal Permissive License (UPL)": "UPL-1.0",
    "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
}  # fmt: skip
# Free-text ``License:`` spellings that name exactly one SPDX licence. "BSD" does not
# (2- or 3-clause?) and is left unknown on purpose.
ALIASES = {
    "mit license": "MIT",
    "mit licence": "MIT",
    "the mit license": "MIT",
    "apache 2.0": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "psfl": "PSF-2.0",
    "lgplv3+": "LGPL-3.0-or-later",
    "gplv3+": "GPL-3.0-or-later",
    "gplv2+": "GPL-2.0-or-later",
}
MAX_CELL = 60
_BUNDLED = re.compile(r"^License:\s*(?P<expr>\S.*?)\s*$", re.MULTILINE)


class Metadata(Protocol):
    """What is read from core metadata (an importlib or email Message both fit)."""

    def get_all(self, name: str) -> list[Any] | None:
        """Every value of a field, or None."""


def _first(meta: Metadata, name: str) -> str | None:
    values = meta.get_all(name)
    return str(values[0]) if values else None


@dataclass(frozen=True)
class PolicyException:
    """A package allowed a licence the general policy denies, and why."""

    package: str
    license: str
    reason: str
    scope: str  # "any" or "toolchain": toolchain-only packages are never shipped


@dataclass(frozen=True)
class Clarify:
    """The licence of one exact release whose metadata is missing or wrong."""

    package: str
    version: str
    expression: str
    reason: str


@dataclass(frozen=True)
class LicensePolicy:
    """``[licenses]`` of the policy file."""

    allow: frozenset[str]
    copyleft: str
    exceptions: tuple[PolicyException, ...]
    clarify: tuple[Clarify, ...]


@dataclass(frozen=True)
class Declared:
    """A distribution's licence as found, and where it was found."""

    expression: str | None
    source: str
    bundled: tuple[str, ...]


@dataclass(frozen=True)
class Row:
    """One line of the licence table."""

    package: str
    version: str
    expression: str
    source: str
    verdict: str  # "allow" | "deny"
    reason: str
    scope: str

    def as_dict(self) -> dict[str, str]:
        """For --json."""
        return dict(self.__dict__)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def spdx(expression: str) -> str | None:
    """The canonical SPDX rendering, or None when it is not a valid SPDX expression."""
    try:
        info = LICENSING.validate(expression, strict=True)
    except (ExpressionError, AttributeError):  # "MIT AND" raises (and trips over itself)
        return None
    if info.errors or not info.normalized_expression:
        return None
    return str(info.normalized_expression)


def load_policy(path: Path) -> LicensePolicy:
    """Read and validate ``[licenses]``; every expression must be valid SPDX."""
    table = policy.load_section(path, "licenses")
    where = f"{path} [licenses]"
    allow = policy.strings(table, "allow", where)
    for item in allow:
        if spdx(item) is None:
            raise GateError(f"{where}: allow entry {item!r} is not an SPDX licence id")
    copyleft = table.get("copyleft", "deny")
    if copyleft not in {"deny", "allow"}:
        raise GateError(f'{where}: copyleft must be "deny" or "allow", got {copyleft!r}')
    exceptions: list[PolicyException] = []
    for n, entry in enumerate(policy.entries(table, "exceptions", where), start=1):
        here = f"{where} exceptions #{n}"
        lic = policy.text(entry, "license", here)
        if spdx(lic) is None:
            raise GateError(f"{here}: license {lic!r} is not a valid SPDX expression")
        scope = entry.get("scope", "any")
        if scope not in {"any", "toolchain"}:
            raise GateError(f'{here}: scope must be "any" or "toolchain"')
        exceptions.append(
            PolicyException(
                _normalize(policy.text(entry, "package", here)),
                str(spdx(lic)),
                policy.text(entry, "reason", here),
                scope,
            )
        )
    clarify: list[Clarify] = []
    for n, entry in enumerate(policy.entries(table, "clarify", where), start=1):
        here = f"{where} clarify #{n}"
        expr = policy.text(entry, "expression", here)
        if spdx(expr) is None:
            raise GateError(f"{here}: expression {expr!r} is not a valid SPDX expression")
        clarify.append(
            Clarify(
                _normalize(policy.text(entry, "package", here)),
                policy.text(entry, "version", here),
                str(spdx(expr)),
                policy.text(entry, "reason", here),
            )
        )
    return LicensePolicy(
        frozenset(str(spdx(a)) for a in allow), copyleft, tuple(exceptions), tuple(clarify)
    )


def _from_text(text: str) -> str | None:
    text = " ".join(text.split())
    if not text or text.upper() == "UNKNOWN" or len(text) > 200:
        return None
    return ALIASES.get(text.lower()) or spdx(text)


def bundled_licenses(files: Iterable[str]) -> tuple[str, ...]:
    """SPDX expressions on ``License:`` lines of licence files (vendored components)."""
    found: list[str] = []
    for text in files:
        for match in _BUNDLED.finditer(text):
            expr = spdx(match["expr"])
            if expr is not None and expr not in found:
                found.append(expr)
    return tuple(found)


def declared(meta: Metadata, license_texts: Sequence[str] = ()) -> Declared:
    """Where the licence comes from: License-Expression → License → classifiers."""
    bundled = bundled_licenses(license_texts)
    raw_expr = _first(meta, "License-Expression")
    if raw_expr:
        return Declared(spdx(raw_expr), "License-Expression", bundled)
    raw = _first(meta, "License")
    if raw and (expr := _from_text(raw)) is not None:
        return Declared(expr, "License", bundled)
    classifiers = [
        str(c) for c in meta.get_all("Classifier") or [] if str(c).startswith("License ::")
    ]
    mapped = [CLASSIFIERS.get(c.rsplit(" :: ", 1)[-1]) for c in classifiers]
    if mapped and all(mapped):
        unique = list(dict.fromkeys(m for m in mapped if m))
        return Declared(" AND ".join(unique), "classifiers", bundled)
    return Declared(None, "none usable", bundled)


def _is_copyleft(key: str) -> bool:
    return key.startswith(COPYLEFT)


def _symbol_ok(
    key: str, package: str, pol: LicensePolicy, scope: str, used: set[PolicyException]
) -> tuple[bool, str]:
    for exc in pol.exceptions:
        if (
            exc.package == package
            and exc.license == key
            and (exc.scope == "any" or scope == "toolchain")
        ):
            used.add(exc)
            return True, f"exception: {exc.reason}"
    base = key.split(" WITH ", 1)[0]
    if pol.copyleft == "deny" and _is_copyleft(base):
        return False, f"{key} is copyleft (copyleft = deny); add an exception with a reason"
    if key in pol.allow or (base in pol.allow and " WITH " in key):
        return True, "allowed"
    return False, f"{key} is not in allow"


def evaluate(
    expression: str, package: str, pol: LicensePolicy, scope: str, used: set[PolicyException]
) -> tuple[bool, list[str]]:
    """Evaluate an SPDX expression tree: OR needs one branch, AND needs every part."""
    node: Any = LICENSING.parse(expression)
    return _eval(node, package, pol, scope, used)


def _eval(
    node: Any,  # noqa: ANN401 - license-expression ships no types
    package: str,
    pol: LicensePolicy,
    scope: str,
    used: set[PolicyException],
) -> tuple[bool, list[str]]:
    operator = getattr(node, "operator", None)
    if operator is None:
        ok, why = _symbol_ok(str(node), package, pol, scope, used)
        return ok, [why]
    results = [_eval(arg, package, pol, scope, used) for arg in node.args]
    if operator.strip() == "OR":
        passing = [r for r in results if r[0]]
        if passing:
            return True, passing[0][1]
        return False, [why for r in results for why in r[1]]
    failing = [why for ok, whys in results if not ok for why in whys]
    if failing:
        return False, failing
    return True, [why for _, whys in results for why in whys]


def _license_texts(dist: metadata.Distribution) -> list[str]:
    texts: list[str] = []
    for rel in dist.metadata.get_all("License-File") or []:
        for candidate in (f"licenses/{rel}", str(rel)):
            text = dist.read_text(candidate)
            if text is not None:
                texts.append(text)
                break
    return texts


def check_distribution(
    name: str,
    version: str,
    meta: Metadata,
    texts: Sequence[str],
    pol: LicensePolicy,
    scope: str,
    used: set[PolicyException],
    clarified: set[Clarify],
) -> Row:
    """The verdict for one installed distribution."""
    package = _normalize(name)
    found = declared(meta, texts)
    clar = next((c for c in pol.clarify if c.package == package and c.version == version), None)
    expression, source = found.expression, found.source
    if clar is not None:
        clarified.add(clar)
        expression, source = clar.expression, f"clarify: {clar.reason}"
    if expression is None:
        return Row(
            name,
            version,
            "?",
            found.source,
            "deny",
            f"no usable licence metadata; add a [[licenses.clarify]] entry for {package} "
            f"{version} (expression + reason)",
            scope,
        )
    notes = [("", *evaluate(expression, package, pol, scope, used))]
    notes += [
        (f"bundled {extra}: ", *evaluate(extra, package, pol, scope, used))
        for extra in found.bundled
    ]
    shown = " + bundled ".join([expression, *found.bundled])
    ok = all(passed for _, passed, _ in notes)
    if ok:
        messages = [p + r for p, _, rs in notes for r in rs if r != "allowed"] or ["allowed"]
    else:
        messages = [
            p + r
            for p, passed, rs in notes
            if not passed
            for r in rs
            if not r.startswith(("allowed", "exception"))
        ]
    reason = "; ".join(dict.fromkeys(messages))
    return Row(name, version, shown, source, "allow" if ok else "deny", reason, scope)


def check_environment(
    site_packages: Path,
    pol: LicensePolicy,
    runtime: set[str] | None,
    policy_file: Path | str = "the policy file",
) -> tuple[list[Row], list[str]]:
    """Every distribution installed in ``site_packages``; returns rows and stale-policy warnings.

    ``runtime`` names the shipped packages; ``None`` (no runtime lock given) counts every
    package as shipped, so ``scope = "toolchain"`` exceptions never apply — the strict reading.
    """
    used: set[PolicyException] = set()
    clarified: set[Clarify] = set()
    rows: list[Row] = []
    seen: set[str] = set()
    for dist in metadata.distributions(path=[str(site_packages)]):
        name = str(dist.metadata["Name"])
        if _normalize(name) in seen:
            continue
        seen.add(_normalize(name))
        scope = "runtime" if runtime is None or _normalize(name) in runtime else "toolchain"
        rows.append(
            check_distribution(
                name, dist.version, dist.metadata, _license_texts(dist), pol, scope, used, clarified
            )
        )
    rows.sort(key=lambda r: _normalize(r.package))
    warnings = [
        f"exception for {e.package} ({e.license}) is not used; remove it from {policy_file}"
        for e in pol.exceptions
        if e not in used
    ] + [
        f"clarify entry for {c.package} {c.version} matches no installed release; "
        f"update or remove it in {policy_file}"
        for c in pol.clarify
        if c not in clarified
    ]
    return rows, warnings


def render(rows: Sequence[Row]) -> str:
    """The licence table: package, version, licence expression, verdict, reason."""
    headers = ("package", "version", "licence", "verdict", "reason")
    table = [(r.package, r.version, r.expression, r.verdict, r.reason) for r in rows]
    # Long expressions (numpy's bundled licences) overflow their cell instead of widening all.
    widths = [
        min(MAX_CELL, max(len(h), *(len(t[i]) for t in table))) if table else len(h)
        for i, h in enumerate(headers[:4])
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers[:4], widths, strict=True)) + "  reason"]
    lines.append("-" * len(lines[0]))
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(t[:4], widths, strict=True)) + "  " + t[4]
        for t in table
    ]
    return "\n".join(lines)


def rows_json(rows: Sequence[Row], warnings: Sequence[str]) -> Mapping[str, object]:
    """The machine-readable report."""
    return {
        "packages": [r.as_dict() for r in rows],
        "warnings": list(warnings),
        "denied": sum(1 for r in rows if r.verdict == "deny"),
    }
