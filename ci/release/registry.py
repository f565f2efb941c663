"""A small client of the OCI distribution API (``/v2/``): enough to push and pull images,
signatures and attestations by digest, with nothing between us and the registry.

- Every manifest travels as exact bytes: it is PUT with its own media type and the
  digest the registry answers (``Docker-Content-Digest``) must equal the sha256 of
  those bytes, so a push can never change an image's identity.
- Every blob and manifest fetched by digest is re-hashed; a registry that serves other
  bytes (tampering, corruption) is an error, never a silent substitution.
- Connection failures, 5xx and 429 answers are retried with exponential back-off; then
  one clear line. Blobs go first and the manifest last, so an interrupted push leaves
  only unreferenced, content-addressed blobs and never a tag pointing at half an image.

Loopback registries (``localhost`` and loopback addresses) are spoken to over plain HTTP,
as Docker does; anything else uses HTTPS with certificate verification unless
``plain_http`` is set explicitly.

Authentication follows the registry's ``401`` challenge: ``Basic`` → the credentials as
HTTP basic auth; ``Bearer`` → a token from the challenge's realm (``service`` and
``scope`` passed on, the credentials as basic auth, anonymous without them), sent as
``Authorization: Bearer``. Each request re-authenticates at most once, so a refused
login is one clear error, never a loop. Credentials go only to the registry host and the
token realm, and over plain HTTP only to loopback or when ``plain_http`` is explicit.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import ssl
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ci.oci.digest import check_digest, sha256
from ci.oci.manifest import Manifest
from ci.oci.mediatypes import MANIFEST_TYPES
from ci.release.auth import PASSWORD_ENV, USERNAME_ENV, Challenge, Credentials, parse_challenges
from ci.release.errors import RegistryError, TamperedError

log = logging.getLogger(__name__)

MAX_MANIFEST = 4 << 20
MAX_REDIRECTS = 3


@dataclass(frozen=True)
class Retry:
    """How hard to try: ``attempts`` in all, waiting ``backoff`` seconds, doubling."""

    attempts: int = 4
    backoff: float = 0.5
    timeout: float = 60.0


@dataclass(frozen=True)
class _Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


class _Transient(Exception):  # noqa: N818 - internal signal, never escapes this module
    """A failure worth retrying."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` or a loopback address, with or without a port."""
    bare = host[1:].partition("]")[0] if host.startswith("[") else host.partition(":")[0]
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def _error_text(body: bytes) -> str:
    try:
        errors = json.loads(body).get("errors") or []
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors)
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace").strip()


class Registry:
    """One registry host; holds only its address and retry policy (no connection pool)."""

    def __init__(
        self,
        host: str,
        *,
        plain_http: bool | None = None,
        retry: Retry | None = None,
        sleep: Callable[[float], None] = time.sleep,
        credentials: Credentials | None = None,
    ) -> None:
        self.host = host
        self.scheme = (
            "http" if (plain_http if plain_http is not None else is_loopback(host)) else "https"
        )
        self.retry = retry or Retry()
        self._sleep = sleep
        self._plain_http_explicit = bool(plain_http)
        self._credentials = credentials
        self._authorization: str | None = None  # what the last challenge asked for

    def __repr__(self) -> str:
        return f"Registry({self.scheme}://{self.host})"

    # -- transport ---------------------------------------------------------------------------

    def _once(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> _Response:
        for _ in range(MAX_REDIRECTS + 1):
            parts = urllib.parse.urlsplit(url)
            conn: http.client.HTTPConnection
            if parts.scheme == "https":
                conn = http.client.HTTPSConnection(
                    parts.netloc, timeout=self.retry.timeout, context=ssl.create_default_context()
                )
            else:
                conn = http.client.HTTPConnection(parts.netloc, timeout=self.retry.timeout)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            try:
                conn.request(method, target, body=body, headers=dict(headers))
                resp = conn.getresponse()
                data = resp.read()
                status, got = resp.status, _headers(resp.getheaders())
            except (OSError, http.client.HTTPException) as exc:
                raise _Transient(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
            finally:
                conn.close()
            if (
                status in {301, 302, 303, 307, 308}
                and "location" in got
                and method in {"GET", "HEAD"}
            ):
                url = urllib.parse.urljoin(url, got["location"])
                if urllib.parse.urlsplit(url).netloc != parts.netloc:
                    # storage backends (S3, CDN) get a signed URL, never our login
                    headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                continue
            if status >= 500 or status == 429:
                raise _Transient(f"HTTP {status} {_error_text(data)}".rstrip())
            return _Response(status, got, data)
        raise RegistryError(f"{method} {url}: more than {MAX_REDIRECTS} redirects")

    def _retried(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> _Response:
        wait = self.retry.backoff
        last = ""
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return self._once(method, url, body, headers or {})
            except _Transient as exc:
                last = str(exc)
                log.info("%s %s failed (attempt %d): %s", method, url, attempt, last)
                if attempt < self.retry.attempts:
                    self._sleep(wait)
                    wait *= 2
        raise RegistryError(
            f"registry {self.host} unreachable or failing after {self.retry.attempts} attempts "
            f"({last}); check that it runs and retry"
        )

    def _send(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> _Response:
        sent = dict(headers)
        if self._authorization and urllib.parse.urlsplit(url).netloc == self.host:
            sent["Authorization"] = self._authorization
        return self._retried(method, url, body, sent)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> _Response:
        """One API call (``path`` under ``/v2/`` or an absolute upload URL), retried, and
        authenticated once if the registry challenges it."""
        url = path if "://" in path else f"{self.scheme}://{self.host}/v2/{path}"
        resp = self._send(method, url, body, headers or {})
        if resp.status != 401:
            return resp
        challenge = self._challenge(resp)
        if challenge is None:
            return resp
        self._authorization = self._authorize(challenge)
        resp = self._send(method, url, body, headers or {})
        if resp.status == 401:
            raise self._denied(method, path, challenge, resp)
        return resp

    # -- authentication ----------------------------------------------------------------------

    def _who(self) -> str:
        return f"user {self._credentials.username!r}" if self._credentials else "anonymous access"

    def _challenge(self, resp: _Response) -> Challenge | None:
        """The challenge we can answer (Bearer before Basic), or None."""
        offered = {c.scheme: c for c in parse_challenges(resp.headers.get("www-authenticate", ""))}
        return offered.get("bearer") or offered.get("basic")

    def _authorize(self, challenge: Challenge) -> str:
        if challenge.scheme == "bearer":
            return "Bearer " + self._token(challenge)
        if self._credentials is None:
            raise RegistryError(
                f"registry {self.host} requires a login (HTTP basic auth); "
                f"set {USERNAME_ENV} and {PASSWORD_ENV}"
            )
        self._refuse_cleartext(f"{self.scheme}://{self.host}")
        log.info("registry %s: basic auth as %s", self.host, self._who())
        return self._credentials.basic()

    def _refuse_cleartext(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if (
            self._credentials is not None
            and parts.scheme != "https"
            and not is_loopback(parts.netloc)
            and not self._plain_http_explicit
        ):
            raise RegistryError(
                f"refusing to send registry credentials to {parts.scheme}://{parts.netloc} "
                "in clear text; use HTTPS (or --plain-http if that network is trusted)"
            )

    def _token(self, challenge: Challenge) -> str:
        """The token flow: GET realm?service=…&scope=… with basic credentials (if any)."""
        realm = challenge.params.get("realm", "")
        if urllib.parse.urlsplit(realm).scheme not in {"http", "https"}:
            raise RegistryError(
                f"registry {self.host} asks for a bearer token from an unusable realm {realm!r}"
            )
        self._refuse_cleartext(realm)
        query = [("scope", scope) for scope in challenge.scopes]
        if "service" in challenge.params:
            query.insert(0, ("service", challenge.params["service"]))
        headers = {"Accept": "application/json"}
        if self._credentials is not None:
            query.append(("account", self._credentials.username))
            headers["Authorization"] = self._credentials.basic()
        sep = "&" if "?" in realm else "?"
        url = f"{realm}{sep}{urllib.parse.urlencode(query)}" if query else realm
        log.info("registry %s: token for %s as %s", self.host, challenge.scopes, self._who())
        resp = self._retried("GET", url, None, headers)
        if resp.status in {401, 403}:
            fix = (
                f"check {USERNAME_ENV} and {PASSWORD_ENV}"
                if self._credentials
                else f"set {USERNAME_ENV} and {PASSWORD_ENV}"
            )
            raise RegistryError(
                f"registry {self.host}: the token service {realm} refused {self._who()} "
                f"(HTTP {resp.status}); {fix}"
            )
        if resp.status != 200:
            raise self._fail(f"a token from {realm}", resp)
        try:
            answer = json.loads(resp.body)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"the token service {realm} answered without a token")
        return token

    def _denied(
        self, method: str, path: str, challenge: Challenge, resp: _Response
    ) -> RegistryError:
        """The registry still says 401 after we answered its challenge."""
        if challenge.scheme == "basic":
            return RegistryError(
                f"registry {self.host} refused the login of {self._who()} (HTTP 401); "
                f"check {USERNAME_ENV} and {PASSWORD_ENV}"
            )
        again = self._challenge(resp)
        error = again.params.get("error", "") if again else ""
        scope = " ".join(challenge.scopes) or "the registry"
        return RegistryError(
            f"registry {self.host} refused {method} {path or '/v2/'} with the token issued "
            f"to {self._who()} for {scope} ({error or 'HTTP 401'}); check that this login "
            "may do that"
        )

    def _fail(self, what: str, resp: _Response) -> RegistryError:
        detail = _error_text(resp.body)
        return RegistryError(
            f"registry {self.host} refused {what}: HTTP {resp.status} {detail}".rstrip()
        )

    # -- API ---------------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/``: the registry speaks the distribution API (and takes our login;
        a 401 with no challenge we can answer still counts: it answers)."""
        resp = self.request("GET", "")
        if resp.status not in {200, 401}:
            raise self._fail("GET /v2/", resp)

    def has_blob(self, repo: str, digest: str) -> bool:
        """Whether ``repo`` already holds the blob."""
        resp = self.request("HEAD", f"{repo}/blobs/{check_digest(digest)}")
        if resp.status == 404:
            return False
        if resp.status != 200:
            raise self._fail(f"HEAD blob {digest}", resp)
        return True

    def push_blob(self, repo: str, data: bytes) -> str:
        """Upload ``data`` monolithically (POST, then PUT with ``?digest=``) unless present."""
        digest = sha256(data)
        if self.has_blob(repo, digest):
            return digest
        start = self.request("POST", f"{repo}/blobs/uploads/", b"", {"Content-Length": "0"})
        if start.status != 202 or "location" not in start.headers:
            raise self._fail(f"starting an upload to {repo}", start)
        location = urllib.parse.urljoin(
            f"{self.scheme}://{self.host}/v2/{repo}/blobs/uploads/", start.headers["location"]
        )
        sep = "&" if "?" in location else "?"
        done = self.request(
            "PUT",
            f"{location}{sep}digest={urllib.parse.quote(digest)}",
            data,
            {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
        )
        if done.status != 201:
            raise self._fail(f"blob {digest} for {repo}", done)
        return digest

    def blob(self, repo: str, digest: str) -> bytes:
        """Fetch a blob and check that its bytes hash to ``digest``."""
        resp = self.request("GET", f"{repo}/blobs/{check_digest(digest)}")
        if resp.status != 200:
            raise self._fail(f"GET blob {digest} from {repo}", resp)
        if sha256(resp.body) != digest:
            raise TamperedError(
                f"refused: registry {self.host} served blob {digest} of {repo} with other content "
                f"({sha256(resp.body)}): tampered or corrupted; refusing it"
            )
        return resp.body

    def put_manifest(self, repo: str, ref: str, manifest: Manifest) -> str:
        """PUT the exact bytes under a tag or digest; the stored digest must be ours."""
        if sha256(manifest.data) != manifest.digest:
            raise RegistryError(f"manifest bytes do not hash to {manifest.digest}")
        resp = self.request(
            "PUT",
            f"{repo}/manifests/{ref}",
            manifest.data,
            {"Content-Type": manifest.media_type, "Content-Length": str(len(manifest.data))},
        )
        if resp.status != 201:
            raise self._fail(f"manifest {manifest.digest} for {repo}:{ref}", resp)
        stored = resp.headers.get("docker-content-digest", manifest.digest)
        if stored != manifest.digest:
            raise RegistryError(
                f"registry {self.host} stored {repo}:{ref} as {stored}, not {manifest.digest}; "
                "it rewrote the manifest"
            )
        return manifest.digest

    def find_manifest(self, repo: str, ref: str) -> Manifest | None:
        """The manifest under a tag or digest, or None if the registry has none.

        Fetched by digest, the bytes must hash to that digest (a tampered registry is
        refused); fetched by tag, the digest is computed from the bytes received.
        """
        resp = self.request(
            "GET", f"{repo}/manifests/{ref}", headers={"Accept": ", ".join(MANIFEST_TYPES)}
        )
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise self._fail(f"GET manifest {repo}:{ref}", resp)
        if len(resp.body) > MAX_MANIFEST:
            raise RegistryError(f"manifest {repo}:{ref} is larger than {MAX_MANIFEST} bytes")
        digest = sha256(resp.body)
        if ref.startswith("sha256:") and digest != ref:
            raise TamperedError(
                f"refused: registry {self.host} served manifest {ref} of {repo} with other content "
                f"({digest}): tampered or corrupted; refusing it"
            )
        media = resp.headers.get("content-type", "").split(";")[0].strip()
        try:
            declared = json.loads(resp.body).get("mediaType")
        except (ValueError, AttributeError):
            raise RegistryError(f"manifest {repo}:{ref} is not JSON") from None
        return Manifest(resp.body, declared or media, digest)

    def manifest(self, repo: str, ref: str) -> Manifest:
        """Like ``find_manifest`` but a missing manifest is an error."""
        found = self.find_manifest(repo, ref)
        if found is None:
            raise RegistryError(f"{self.host}/{repo}: no manifest {ref}")
        return found

    def resolve(self, repo: str, tag: str) -> str:
        """The digest a tag points at now (what to pin)."""
        return self.manifest(repo, tag).digest


def _headers(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Lower-cased names; repeated headers joined with ", " as HTTP allows."""
    out: dict[str, str] = {}
    for key, value in pairs:
        name = key.lower()
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out
