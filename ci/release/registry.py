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
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import json
import logging
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ci.release.errors import RegistryError
from ci.release.reference import check_digest

log = logging.getLogger(__name__)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
MAX_MANIFEST = 4 << 20
MAX_REDIRECTS = 3


def sha256(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """A manifest exactly as stored: its bytes, media type and digest."""

    data: bytes = field(repr=False)
    media_type: str
    digest: str

    def json(self) -> dict[str, Any]:
        """The parsed document (the digest stays that of ``data``)."""
        doc = json.loads(self.data)
        if not isinstance(doc, dict):
            raise RegistryError(f"manifest {self.digest} is not a JSON object")
        return doc


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
    ) -> None:
        self.host = host
        self.scheme = (
            "http" if (plain_http if plain_http is not None else is_loopback(host)) else "https"
        )
        self.retry = retry or Retry()
        self._sleep = sleep

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
                status, got = resp.status, {k.lower(): v for k, v in resp.getheaders()}
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
                continue
            if status >= 500 or status == 429:
                raise _Transient(f"HTTP {status} {_error_text(data)}".rstrip())
            return _Response(status, got, data)
        raise RegistryError(f"{method} {url}: more than {MAX_REDIRECTS} redirects")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> _Response:
        """One API call (``path`` under ``/v2/`` or an absolute upload URL), retried."""
        url = path if "://" in path else f"{self.scheme}://{self.host}/v2/{path}"
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

    def _fail(self, what: str, resp: _Response) -> RegistryError:
        detail = _error_text(resp.body)
        return RegistryError(
            f"registry {self.host} refused {what}: HTTP {resp.status} {detail}".rstrip()
        )

    # -- API ---------------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/``: the registry speaks the distribution API (401 counts: it answers)."""
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
            raise RegistryError(
                f"registry {self.host} served blob {digest} of {repo} with other content "
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
            raise RegistryError(
                f"registry {self.host} served manifest {ref} of {repo} with other content "
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


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago (for test registries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("localhost", 0))
        return int(sock.getsockname()[1])
