"""The package index's simple API, as this machine's pip is configured to use it.

``yanked = deny`` and the "served by a configured index" check need, for each pin, the
files the index lists for it: PEP 691 JSON when the index speaks it, PEP 503 HTML
otherwise (PEP 592 ``data-yanked``), over https, http or ``file://`` indexes. The indexes
come from pip's own configuration (``pip config list``, which includes ``PIP_*``
variables): ``index-url`` (pip's built-in default when unset) and ``extra-index-url``.
No host is written here; the project status of PEP 792 is read when the index gives it.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import shlex
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from ci.errors import GateError

log = logging.getLogger(__name__)

ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
TIMEOUT = 30.0
RETRIES = 3
BACKOFF = 0.5  # seconds, times the attempt number
_SCOPE_ORDER = ("global", "install", ":env:")


@dataclass(frozen=True)
class IndexConfig:
    """Where pip looks for packages on this machine."""

    index_url: str
    extra_index_urls: tuple[str, ...]
    find_links: tuple[str, ...]
    cert: str | None
    no_index: bool

    @property
    def indexes(self) -> tuple[str, ...]:
        """Every simple-API index pip would consult, primary first."""
        return () if self.no_index else (self.index_url, *self.extra_index_urls)


@dataclass(frozen=True)
class IndexFile:
    """One file listed on a project page."""

    filename: str
    url: str
    sha256: str | None
    yanked: str | None  # None = not yanked; otherwise the reason ("" when none given)


@dataclass(frozen=True)
class ProjectPage:
    """A project's page on one index; ``found`` False means the index does not have it."""

    index: str
    name: NormalizedName
    found: bool
    files: tuple[IndexFile, ...]
    status: str | None
    status_reason: str | None

    def files_for(self, version: Version) -> tuple[IndexFile, ...]:
        """The files of one release (sdists and wheels whose filename parses to it)."""
        return tuple(f for f in self.files if file_version(f.filename, self.name) == version)


def file_version(filename: str, name: NormalizedName) -> Version | None:
    """The version a distribution filename carries, if it is this project's."""
    try:
        if filename.endswith(".whl"):
            wheel_name, version, _, _ = parse_wheel_filename(filename)
            return version if wheel_name == name else None
        sdist_name, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return version if sdist_name == name else None


def pip_default_index() -> str:
    """pip's own built-in default index, read from the pip that is installed here."""
    try:
        module = importlib.import_module("pip._internal.models.index")
        return str(module.PyPI.simple_url)
    except (ImportError, AttributeError):
        raise GateError(
            "no index-url configured and pip is not importable to tell its default; "
            "set PIP_INDEX_URL"
        ) from None


def parse_pip_config(listing: str) -> dict[str, str]:
    """``pip config list`` output (``section.key='value'``) → key → winning value.

    Later scopes win as in pip: ``global`` < ``install`` < environment (``:env:``); in
    one section a later file (user, site) overrides an earlier one, which is the order
    pip lists them in.
    """
    found: dict[str, tuple[int, str]] = {}
    for line in listing.splitlines():
        key, sep, raw = line.partition("=")
        section, dot, option = key.rpartition(".")
        if not sep or not dot or section not in _SCOPE_ORDER:
            continue
        try:
            value = " ".join(shlex.split(raw))
        except ValueError:
            value = raw.strip().strip("'\"")
        rank = _SCOPE_ORDER.index(section)
        if option not in found or rank >= found[option][0]:
            found[option] = (rank, value)
    return {key: value for key, (_, value) in found.items()}


def read_pip_config(python: str = sys.executable) -> dict[str, str]:
    """The machine's pip configuration as pip itself resolves it (files and PIP_* vars)."""
    try:
        listing = subprocess.run(  # noqa: S603  # nosec B603
            [python, "-m", "pip", "config", "list"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise GateError(f"cannot read pip's configuration (pip config list): {exc}") from None
    return parse_pip_config(listing)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def index_config(pip_config: Mapping[str, str], default_index: str | None = None) -> IndexConfig:
    """The effective index settings from a parsed pip configuration."""
    index = pip_config.get("index-url") or default_index or pip_default_index()
    return IndexConfig(
        index_url=index.rstrip("/") + "/",
        extra_index_urls=tuple(
            u.rstrip("/") + "/" for u in pip_config.get("extra-index-url", "").split()
        ),
        find_links=tuple(pip_config.get("find-links", "").split()),
        cert=pip_config.get("cert") or None,
        no_index=_truthy(pip_config.get("no-index")),
    )


class _LinkParser(HTMLParser):
    """PEP 503 anchors with PEP 592 data-yanked and the PEP 792 status meta tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[dict[str, str | None]] = []
        self.status: str | None = None
        self.status_reason: str | None = None
        self._current: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        data = dict(attrs)
        if tag == "a":
            self._current = data
            self._text = []
        elif tag == "meta" and data.get("name") == "pypi:project-status":
            self.status = data.get("content")
        elif tag == "meta" and data.get("name") == "pypi:project-status-reason":
            self.status_reason = data.get("content")

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._current is not None:
            self._current["#text"] = "".join(self._text).strip()
            self.links.append(self._current)
            self._current = None


def _sha256_of(url: str) -> str | None:
    fragment = urllib.parse.urlsplit(url).fragment
    algo, _, digest = fragment.partition("=")
    return digest.lower() if algo == "sha256" and digest else None


def parse_html(index: str, name: NormalizedName, page_url: str, text: str) -> ProjectPage:
    """A PEP 503 HTML project page."""
    parser = _LinkParser()
    parser.feed(text)
    files: list[IndexFile] = []
    for link in parser.links:
        href = link.get("href")
        if not href:
            continue
        url = urllib.parse.urljoin(page_url, href)
        filename = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
        yanked = link.get("data-yanked", None) if "data-yanked" in link else None
        if "data-yanked" in link and yanked is None:
            yanked = ""
        files.append(IndexFile(filename, url, _sha256_of(url), yanked))
    return ProjectPage(index, name, True, tuple(files), parser.status, parser.status_reason)


def parse_json(index: str, name: NormalizedName, page_url: str, text: str) -> ProjectPage:
    """A PEP 691 JSON project page (``yanked`` is false, true or a reason string)."""
    try:
        data = json.loads(text)
        files: list[IndexFile] = []
        for entry in data["files"]:
            yanked = entry.get("yanked", False)
            reason = None if yanked is False else ("" if yanked is True else str(yanked))
            hashes = entry.get("hashes") or {}
            # URLs are kept as published (relative ones resolve against the page URL).
            files.append(
                IndexFile(str(entry["filename"]), str(entry["url"]), hashes.get("sha256"), reason)
            )
        status = data.get("project-status") or {}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise GateError(f"{page_url}: not a PEP 691 project page ({exc})") from None
    return ProjectPage(index, name, True, tuple(files), status.get("status"), status.get("reason"))


@functools.cache
def _ssl_context(cert: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cert) if cert else ssl.create_default_context()


def fetch_page(
    index: str, name: str, cert: str | None = None, timeout: float = TIMEOUT
) -> ProjectPage:
    """Fetch one project page; a 404 (or a missing file:// page) is ``found=False``.

    Anything else that fails — DNS, refused connection, TLS, 5xx — raises GateError
    naming the index, so an unreachable index is never mistaken for a clean result.
    """
    canonical = canonicalize_name(name)
    page_url = urllib.parse.urljoin(index, f"{canonical}/")
    scheme = urllib.parse.urlsplit(page_url).scheme
    if scheme == "file":
        directory = Path(urllib.request.url2pathname(urllib.parse.urlsplit(page_url).path))
        if not Path(urllib.request.url2pathname(urllib.parse.urlsplit(index).path)).is_dir():
            raise GateError(f"index {index} is not reachable: no such directory")
        page = directory / "index.html"
        if not page.is_file():
            return ProjectPage(index, canonical, False, (), None, None)
        return parse_html(index, canonical, page.as_uri(), page.read_text(encoding="utf-8"))
    if scheme not in {"http", "https"}:
        raise GateError(f"index {index}: unsupported URL scheme {scheme!r}")
    request = urllib.request.Request(page_url, headers={"Accept": ACCEPT})  # noqa: S310 - scheme checked above
    for attempt in range(1, RETRIES + 1):
        try:
            with urllib.request.urlopen(  # noqa: S310  # nosec B310
                request, timeout=timeout, context=_ssl_context(cert) if scheme == "https" else None
            ) as response:
                body = response.read().decode("utf-8")
                content_type = response.headers.get_content_type()
                final_url = response.geturl()
            break
        except urllib.error.HTTPError as exc:
            if exc.code in {404, 410}:
                return ProjectPage(index, canonical, False, (), None, None)
            failure = f"index {index} answered HTTP {exc.code} for {canonical}"
            if exc.code < 500:
                raise GateError(failure) from None
        except (urllib.error.URLError, OSError, ssl.SSLError, UnicodeDecodeError) as exc:
            failure = f"index {index} is not reachable: {getattr(exc, 'reason', exc)}"
        # Like pip, retry transient failures (DNS hiccups, resets, 5xx) before giving up.
        if attempt == RETRIES:
            raise GateError(f"{failure} (after {RETRIES} attempts)")
        time.sleep(BACKOFF * attempt)
    if content_type == JSON_TYPE:
        return parse_json(index, canonical, final_url, body)
    return parse_html(index, canonical, final_url, body)


def pages(
    config: IndexConfig, names: Sequence[str], workers: int = 8
) -> tuple[dict[NormalizedName, list[ProjectPage]], list[str]]:
    """Every configured index's page for every name, fetched concurrently.

    Returns the pages found and one line per index that could not be read.
    """
    unique = sorted({canonicalize_name(n) for n in names})
    jobs = [(index, name) for name in unique for index in config.indexes]
    out: dict[NormalizedName, list[ProjectPage]] = {canonicalize_name(n): [] for n in names}
    errors: dict[str, str] = {}

    def one(job: tuple[str, NormalizedName]) -> ProjectPage | str:
        try:
            return fetch_page(job[0], job[1], config.cert)
        except GateError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for (index, name), result in zip(jobs, pool.map(one, jobs), strict=True):
            if isinstance(result, str):
                errors.setdefault(index, result)
            else:
                out[name].append(result)
    return out, sorted(errors.values())
