"""Registry credentials and ``WWW-Authenticate`` challenges (the pure part of registry auth).

Distribution registries answer an unauthenticated request with ``401`` and a challenge:
``Basic realm="…"`` (htpasswd) or ``Bearer realm="…",service="…",scope="…"`` (the
Docker/OCI token flow: fetch a token from the realm with basic credentials, then send
it as ``Authorization: Bearer``). The HTTP side lives in ``registry.py``.

Credentials come only from ``BOT4_REGISTRY_USERNAME`` / ``BOT4_REGISTRY_PASSWORD`` (CI
secrets); the password is never part of a repr, a log line or an error message.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ci.release.errors import RegistryError

USERNAME_ENV = "BOT4_REGISTRY_USERNAME"
# the variable's name, not a password:
PASSWORD_ENV = "BOT4_REGISTRY_PASSWORD"  # noqa: S105  # nosec B105  # pragma: allowlist secret

# RFC 9110 auth-param: token "=" ( token / quoted-string ); "," between params.
_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(rf'\s*({_TCHARS})\s*=\s*("(?:[^"\\]|\\.)*"|{_TCHARS})\s*(?:,|$)')
_SCHEME = re.compile(rf"\s*,?\s*({_TCHARS})(?=[\s,]|$)\s*")


@dataclass(frozen=True)
class Credentials:
    """A registry login; ``password`` is kept out of ``repr``."""

    username: str
    password: str = field(repr=False)

    def basic(self) -> str:
        """The ``Authorization`` header value for HTTP basic auth (RFC 7617)."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def credentials_from_env(environ: Mapping[str, str]) -> Credentials | None:
    """Both variables set → a login; neither → anonymous; one alone is a mistake."""
    user = environ.get(USERNAME_ENV, "")
    password = environ.get(PASSWORD_ENV, "")
    if not user and not password:
        return None
    if not user or not password:
        missing = USERNAME_ENV if not user else PASSWORD_ENV
        raise RegistryError(
            f"{missing} is empty or unset; set both {USERNAME_ENV} and {PASSWORD_ENV} or neither"
        )
    if ":" in user:
        raise RegistryError(
            f"{USERNAME_ENV} must not contain ':' (HTTP basic auth cannot carry it)"
        )
    return Credentials(user, password)


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: scheme (lower case) and its parameters."""

    scheme: str
    params: Mapping[str, str]

    @property
    def scopes(self) -> tuple[str, ...]:
        """The token scopes asked for (distribution joins several with spaces)."""
        return tuple(self.params.get("scope", "").split())


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in a (possibly comma-joined) ``WWW-Authenticate`` value.

    Parameter names are lower-cased; quoted values are unescaped. Text that is not a
    challenge is skipped, so a garbled header yields fewer challenges, never an error.
    """
    found: list[Challenge] = []
    pos = 0
    while pos < len(header):
        scheme = _SCHEME.match(header, pos)
        if scheme is None:
            break
        pos = scheme.end()
        params: dict[str, str] = {}
        while (param := _PARAM.match(header, pos)) is not None:
            params[param.group(1).lower()] = _unquote(param.group(2))
            pos = param.end()
        found.append(Challenge(scheme.group(1).lower(), params))
    return found
