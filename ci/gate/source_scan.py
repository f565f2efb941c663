"""Project security checks bandit does not do: hard-coded IP addresses and committed secrets.

bot4 takes hosts and credentials from configuration, never from code. An IP literal in
the engine or toolkit is either a host baked in (it will be wrong in some deployment) or
a leak of internal topology; a secret in the tree is a leak. Loopback literals are
tolerated only where tests and docs need them (``[security]`` in ci/policy.toml).
Secrets are found with detect-secrets' default plugins; a reviewed false positive is
silenced in place with its standard ``pragma: allowlist secret`` comment.
"""

from __future__ import annotations

import fnmatch
import io
import ipaddress
import re
import subprocess
import tokenize
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.compat import tomllib
from ci.errors import GateError

ALLOW_IP_PRAGMA = "bot4: allow-ip"
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\w)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


@dataclass(frozen=True)
class Finding:
    """One problem at a file and line."""

    path: str
    line: int
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}: {self.detail}"


@dataclass(frozen=True)
class ScanPolicy:
    """Which files are scanned and where loopback literals are tolerated."""

    include: tuple[str, ...]
    exclude: tuple[str, ...]
    loopback_ok_in: tuple[str, ...]


def load_policy(path: Path) -> ScanPolicy:
    """Read ``[security]`` from ci/policy.toml."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GateError(f"{path}: not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise GateError(f"{path}: invalid TOML ({exc})") from None
    section = data.get("security")
    if not isinstance(section, dict):
        raise GateError(f"{path}: missing [security] table")
    values = {}
    for key in ("include", "exclude", "loopback_ok_in"):
        value = section.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise GateError(f"{path}: security.{key} must be a list of glob strings")
        values[key] = tuple(value)
    return ScanPolicy(values["include"], values["exclude"], values["loopback_ok_in"])


def _matches(path: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatch(path, pattern) for pattern in patterns)


def select(paths: Iterable[str], policy: ScanPolicy) -> list[str]:
    """The paths the policy asks to scan, sorted."""
    return sorted(
        p for p in paths if _matches(p, policy.include) and not _matches(p, policy.exclude)
    )


def tracked_files(root: Path) -> list[str]:
    """Files git knows about (tracked or new and not ignored), relative to root."""
    result = subprocess.run(  # nosec B603 B607
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise GateError(f"{root}: not a git work tree ({result.stderr.strip()})")
    return [line for line in result.stdout.splitlines() if (root / line).is_file()]


def _ip(candidate: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None


def _python_text_regions(source: str) -> Iterator[tuple[int, str]]:
    """(line, text) of string literals and comments: where an address could hide in code."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type in (tokenize.STRING, tokenize.COMMENT):
                for offset, text in enumerate(tok.string.splitlines()):
                    yield tok.start[0] + offset, text
    except (tokenize.TokenError, SyntaxError):
        yield from enumerate(source.splitlines(), start=1)


def _not_an_address(text: str, start: int, candidate: str) -> bool:
    """IPv6-shaped text that is code: a bare "::" separator or a slice like ``xs[1::2]``."""
    if not any(c in _HEXDIGITS for c in candidate):
        return True
    subscript = (
        start >= 2
        and text[start - 1] == "["
        and (text[start - 2].isalnum() or text[start - 2] in "_)]")
    )
    return subscript and candidate.replace(":", "").isdigit()


def find_ips(path: str, source: str, loopback_ok: bool) -> list[Finding]:
    """IP literals in one file's text (Python: in strings and comments only)."""
    regions = (
        _python_text_regions(source)
        if path.endswith(".py")
        else enumerate(source.splitlines(), start=1)
    )
    lines = source.splitlines()
    findings = []
    for number, text in regions:
        full_line = lines[number - 1] if 0 < number <= len(lines) else text
        if ALLOW_IP_PRAGMA in full_line:
            continue
        for pattern in (_IPV4, _IPV6):
            for match in pattern.finditer(text):
                candidate = match.group(0)
                if ":" in candidate and _not_an_address(text, match.start(), candidate):
                    continue
                address = _ip(candidate)
                if address is None:
                    continue
                if loopback_ok and address.is_loopback:
                    continue
                findings.append(
                    Finding(
                        path,
                        number,
                        "hard-coded IP address",
                        f"{address} — take it from configuration or an environment variable",
                    )
                )
    return findings


def find_secrets(root: Path, paths: Sequence[str]) -> list[Finding]:
    """Secrets found by detect-secrets' default plugins."""
    from detect_secrets.core.secrets_collection import SecretsCollection  # noqa: PLC0415 - heavy import, only here
    from detect_secrets.settings import default_settings  # noqa: PLC0415

    findings = []
    with default_settings():
        collection = SecretsCollection(root=str(root))
        for path in paths:
            collection.scan_file(path)
        for filename, secret in collection:
            findings.append(
                Finding(
                    str(Path(filename).relative_to(root))
                    if Path(filename).is_absolute()
                    else filename,
                    secret.line_number,
                    "possible secret",
                    f"{secret.type} — move it to the secrets provider; if it is a reviewed "
                    "false positive, add `pragma: allowlist secret` on that line",
                )
            )
    return findings


def scan(root: Path, policy: ScanPolicy, paths: Sequence[str] | None = None) -> list[Finding]:
    """Run both checks over the policy's files (or the given ones) and return findings."""
    chosen = select(tracked_files(root) if paths is None else paths, policy)
    findings: list[Finding] = []
    for rel in chosen:
        try:
            text = (root / rel).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        except FileNotFoundError:
            raise GateError(f"{rel}: no such file") from None
        findings += find_ips(rel, text, _matches(rel, policy.loopback_ok_in))
    findings += find_secrets(root, chosen)
    return sorted(findings, key=lambda f: (f.path, f.line, f.kind))
