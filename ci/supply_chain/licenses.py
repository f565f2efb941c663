"""``python -m ci licenses``: the licence policy over an environment installed from the lock.

For each installed distribution the licence is taken from, in order: a ``clarify`` entry
of the policy (exact version), PEP 639 ``License-Expression``, the ``License`` field —
an SPDX expression, a well-known spelling of one, or, when the field holds a whole licence
text, the licence that text is (:mod:`ci.supply_chain.licence_texts`) — then the trove
classifiers (several are read as AND — the strict reading), and last the texts of the
distribution's own licence files. Every verdict says which of these it came from.

Every licence file the wheel installs is read, not only those ``License-File`` names:
the whole ``.dist-info/licenses/`` tree and any ``LICENSE*``/``LICENCE*``/``COPYING*``/
``NOTICE*`` file in its RECORD (vendored packages, ``*.libs`` native code). A licence one
of them carries that the declared licence does not cover is a *bundled* licence and must
pass too — pyzmq's wheel bundles libzmq (MPL-2.0, ``LICENSE.zeromq.txt``) and libsodium
(ISC) with no ``License-File`` line at all. ``License:`` lines in a licence file (numpy
documents OpenBLAS, LAPACK, the gfortran runtime and libquadmath this way) are bundled
licences as written.

SPDX expressions are evaluated with ``license-expression``: an OR passes when one branch
does, an AND when every part does. A licence passes when it is in ``allow`` and is not
copyleft under ``copyleft = "deny"``, or when an ``exceptions`` entry names the package
and that licence (with a reason). Unknown or missing licence metadata is denied, with the
fix: a ``clarify`` entry.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from license_expression import ExpressionError

from ci import policy
from ci.errors import GateError
from ci.supply_chain.licence_texts import LICENSING, identify, identify_how

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
MAX_FIELD = 200  # a longer License field is a licence text, not a name
MAX_FILE = 2_000_000  # bytes of one licence file read
_BUNDLED = re.compile(r"^License:\s*(?P<expr>\S.*?)\s*$", re.MULTILINE)
# Names of licence files anywhere in a wheel (vendored code, *.libs): LICENSE.zeromq.txt,
# COPYING, NOTICE, LICENCE.rst — not licenses_app.py nor third-party-licenses.json.
_LICENCE_FILE = re.compile(r"^(licen[cs]e|copying|notice)([._-][^/]*)?$", re.IGNORECASE)
_NOT_TEXT = (".py", ".pyc", ".pyi", ".so", ".pyd", ".dll", ".dylib", ".json", ".js", ".html")
_VERSION_SUFFIX = re.compile(r"(-only|-or-later|\+)$")


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
class LicenceFile:
    """A licence file a distribution installs: its RECORD path and its text."""

    path: str
    text: str
    own: bool = True  # the distribution's own licence, not one of a bundled component


@dataclass(frozen=True)
class Bundled:
    """A licence a distribution carries besides its own, and the file that says so."""

    expression: str
    where: str


@dataclass(frozen=True)
class Declared:
    """A distribution's licence as found, and where it was found."""

    expression: str | None
    source: str
    bundled: tuple[Bundled, ...] = ()
    unrecognised: tuple[str, ...] = ()


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


@functools.lru_cache(maxsize=4096)  # the same few expressions recur across an environment
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


def _from_text(text: str) -> tuple[str | None, str]:
    """A ``License`` field: a name or expression when short, else the licence text's."""
    flat = " ".join(text.split())
    if not flat or flat.upper() == "UNKNOWN":
        return None, ""
    if len(flat) <= MAX_FIELD:
        named = ALIASES.get(flat.lower()) or spdx(flat)
        if named is not None:
            return named, "License field"
    found, how = identify_how(text)
    if found:
        return " AND ".join(found), f"License field ({how}: {', '.join(found)})"
    return None, ""


def bundled_licenses(files: Iterable[str]) -> tuple[str, ...]:
    """SPDX expressions on ``License:`` lines of licence files (vendored components)."""
    found: list[str] = []
    for text in files:
        for match in _BUNDLED.finditer(text):
            expr = spdx(match["expr"])
            if expr is not None and expr not in found:
                found.append(expr)
    return tuple(found)


@functools.lru_cache(maxsize=4096)
def _families(expression: str) -> frozenset[str]:
    """Licence ids without -only/-or-later; LGPL texts come with the GPL they amend."""
    keys = {_VERSION_SUFFIX.sub("", str(k)) for k in LICENSING.license_keys(expression)}
    keys |= {"GPL-3.0" for k in keys if k.startswith("LGPL-3.0")}
    keys |= {"GPL-2.0" for k in keys if k.startswith(("LGPL-2.1", "LGPL-2.0"))}
    return frozenset(keys)


def _main(meta: Metadata, files: Sequence[LicenceFile]) -> tuple[str | None, str]:
    raw_expr = _first(meta, "License-Expression")
    if raw_expr:
        return spdx(raw_expr), "License-Expression"
    raw = _first(meta, "License")
    if raw:
        expr, source = _from_text(raw)
        if expr is not None:
            return expr, source
    classifiers = [
        str(c) for c in meta.get_all("Classifier") or [] if str(c).startswith("License ::")
    ]
    mapped = [CLASSIFIERS.get(c.rsplit(" :: ", 1)[-1]) for c in classifiers]
    if mapped and all(mapped):
        unique = list(dict.fromkeys(m for m in mapped if m))
        return " AND ".join(unique), "classifiers"
    own = [(f.path, *identify_how(f.text)) for f in files if f.own]
    ids = list(dict.fromkeys(i for _, found, _ in own for i in found))
    if ids:
        paths = ", ".join(
            path + (" (heading)" if how == "heading" else "") for path, found, how in own if found
        )
        return " AND ".join(ids), f"licence file {paths}"
    return None, "none usable"


def declared(meta: Metadata, files: Sequence[LicenceFile] = ()) -> Declared:
    """License-Expression → License → classifiers → own licence files; then what is bundled."""
    expression, source = _main(meta, files)
    covered = set(_families(expression)) if expression else set()
    bundled: list[Bundled] = []
    unrecognised: list[str] = []
    for file in files:
        lines = bundled_licenses([file.text])
        bundled += [Bundled(expr, f"{file.path} (License: line)") for expr in lines]
        for expr in lines:
            covered |= _families(expr)
    for file in files:
        found = identify(file.text)
        for spdx_id in found:
            if _VERSION_SUFFIX.sub("", spdx_id) not in covered:
                bundled.append(Bundled(spdx_id, file.path))
                covered |= _families(spdx_id)
        name = file.path.rsplit("/", 1)[-1].lower()
        if not found and name.startswith(("licen", "copying")) and file.text.strip():
            unrecognised.append(file.path)
    return Declared(expression, source, tuple(bundled), tuple(unrecognised))


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


@functools.lru_cache(maxsize=4096)
def _parsed(expression: str) -> Any:  # noqa: ANN401 - license-expression ships no types
    return LICENSING.parse(expression)


def evaluate(
    expression: str, package: str, pol: LicensePolicy, scope: str, used: set[PolicyException]
) -> tuple[bool, list[str]]:
    """Evaluate an SPDX expression tree: OR needs one branch, AND needs every part."""
    node: Any = _parsed(expression)
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


def _read(dist: metadata.Distribution, rel: str) -> str | None:
    path = Path(str(dist.locate_file(rel)))
    try:
        if path.stat().st_size > MAX_FILE:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def licence_files(dist: metadata.Distribution, meta: Metadata | None = None) -> list[LicenceFile]:
    """Every licence file the distribution installs (see the module docstring)."""
    info = Path(str(getattr(dist, "_path", ""))).name  # "<name>-<version>.dist-info"
    meta = dist.metadata if meta is None else meta  # importlib parses METADATA on every access
    declared_files = {str(f) for f in meta.get_all("License-File") or []}
    chosen: dict[str, bool] = {}
    for rel in sorted(str(f) for f in dist.files or ()):
        parts = rel.split("/")
        if rel.startswith("../") or rel.lower().endswith(_NOT_TEXT):
            continue
        in_info = parts[0] == info or parts[0].endswith(".dist-info")
        under_licenses = in_info and len(parts) > 2 and parts[1] == "licenses"
        if not (under_licenses or _LICENCE_FILE.match(parts[-1])):
            continue
        relative = "/".join(parts[2:] if under_licenses else parts[1:])
        if declared_files:
            own = in_info and relative in declared_files
        else:  # no License-File lines: the files at the top of .dist-info(/licenses)
            own = in_info and len(parts) == (3 if under_licenses else 2)
        chosen[rel] = own
    if not chosen:  # no RECORD: what License-File names
        for rel in sorted(declared_files):
            for candidate in (f"{info}/licenses/{rel}", f"{info}/{rel}"):
                if dist.locate_file(candidate) and Path(str(dist.locate_file(candidate))).is_file():
                    chosen[candidate] = True
                    break
    files: list[LicenceFile] = []
    for rel, own in chosen.items():
        text = _read(dist, rel)
        if text is not None:
            files.append(LicenceFile(rel, text, own))
    return files


def check_distribution(
    name: str,
    version: str,
    meta: Metadata,
    files: Sequence[LicenceFile],
    pol: LicensePolicy,
    scope: str,
    used: set[PolicyException],
    clarified: set[Clarify],
) -> Row:
    """The verdict for one installed distribution."""
    package = _normalize(name)
    found = declared(meta, files)
    clar = next((c for c in pol.clarify if c.package == package and c.version == version), None)
    expression, source = found.expression, found.source
    if clar is not None:
        clarified.add(clar)
        expression, source = clar.expression, f"clarify: {clar.reason}"
    if found.bundled:
        source += "; bundled " + ", ".join(f"{b.expression} from {b.where}" for b in found.bundled)
    if found.unrecognised:
        source += "; licence text not recognised (read it): " + ", ".join(found.unrecognised)
    if expression is None:
        return Row(
            name,
            version,
            "?",
            source,
            "deny",
            f"no usable licence metadata; add a [[licenses.clarify]] entry for {package} "
            f"{version} (expression + reason)",
            scope,
        )
    notes = [("", *evaluate(expression, package, pol, scope, used))]
    notes += [
        (f"bundled {extra}: ", *evaluate(extra, package, pol, scope, used))
        for extra in dict.fromkeys(b.expression for b in found.bundled)
    ]
    shown = " + bundled ".join([expression, *dict.fromkeys(b.expression for b in found.bundled)])
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
        meta = dist.metadata  # parsed once: importlib re-reads METADATA on every access
        name = str(meta["Name"])
        if _normalize(name) in seen:
            continue
        seen.add(_normalize(name))
        scope = "runtime" if runtime is None or _normalize(name) in runtime else "toolchain"
        rows.append(
            check_distribution(
                name,
                str(meta["Version"]),
                meta,
                licence_files(dist, meta),
                pol,
                scope,
                used,
                clarified,
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
    """The licence table: package, version, licence expression, verdict, reason, source."""
    headers = ("package", "version", "licence", "verdict", "reason", "source")
    table = [(r.package, r.version, r.expression, r.verdict, r.reason, r.source) for r in rows]
    # Long cells (numpy's bundled licences) overflow instead of widening the whole column.
    widths = [
        min(MAX_CELL, max(len(h), *(len(t[i]) for t in table))) if table else len(h)
        for i, h in enumerate(headers[:5])
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers[:5], widths, strict=True)) + "  source"]
    lines.append("-" * len(lines[0]))
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(t[:5], widths, strict=True)) + "  " + t[5]
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
