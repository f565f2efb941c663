"""The simple API client: pip configuration, file:// (PEP 503/592) and http (PEP 691/792)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from ci.errors import GateError
from ci.supply_chain import index

DEMO = canonicalize_name("demo")
SHA_A = "a" * 64
SHA_B = "b" * 64


def write_file_index(root: Path) -> str:
    """A file:// simple index: demo 1.0 (sdist yanked with a reason, wheel) and 2.0."""
    page = root / "simple" / "demo"
    page.mkdir(parents=True)
    (page / "index.html").write_text(
        "<!DOCTYPE html><html><head>"
        '<meta name="pypi:project-status" content="deprecated">'
        '<meta name="pypi:project-status-reason" content="use demo2">'
        "</head><body>\n"
        f'<a href="../../files/demo-1.0.tar.gz#sha256={SHA_A}" data-yanked="broken build">'
        "demo-1.0.tar.gz</a>\n"
        f'<a href="../../files/demo-1.0-py3-none-any.whl#sha256={SHA_B}" data-yanked>'
        "demo-1.0-py3-none-any.whl</a>\n"
        '<a href="../../files/demo-2.0-py3-none-any.whl">demo-2.0-py3-none-any.whl</a>\n'
        '<a href="../../files/other-2.0-py3-none-any.whl">other</a>\n'
        '<a href="../../files/not-a-dist.txt">x</a><a>no href</a>\n'
        "</body></html>\n",
        encoding="utf-8",
    )
    return (root / "simple").as_uri() + "/"


def test_file_index_reads_pep592_yanked_and_pep792_status(tmp_path: Path) -> None:
    url = write_file_index(tmp_path)
    page = index.fetch_page(url, "Demo")
    assert page.found and page.status == "deprecated" and page.status_reason == "use demo2"
    v1 = page.files_for(Version("1.0"))
    assert [(f.filename, f.sha256, f.yanked) for f in v1] == [
        ("demo-1.0.tar.gz", SHA_A, "broken build"),
        ("demo-1.0-py3-none-any.whl", SHA_B, ""),
    ]
    (v2,) = page.files_for(Version("2.0"))
    assert (v2.sha256, v2.yanked) == (None, None)
    assert v2.url.startswith("file://") and v2.url.endswith("/files/demo-2.0-py3-none-any.whl")
    assert not index.fetch_page(url, "absent").found


def test_file_index_that_does_not_exist_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(GateError, match="not reachable: no such directory"):
        index.fetch_page((tmp_path / "nope").as_uri() + "/", "demo")
    with pytest.raises(GateError, match="unsupported URL scheme 'ftp'"):
        index.fetch_page("ftp://example.invalid/simple/", "demo")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/simple/demo/":
            body = json.dumps(
                {
                    "meta": {"api-version": "1.4"},
                    "name": "demo",
                    "project-status": {"status": "quarantined", "reason": "malware report"},
                    "files": [
                        {
                            "filename": "demo-1.0.tar.gz",
                            "url": "/f/demo-1.0.tar.gz",
                            "hashes": {"sha256": SHA_A},
                            "yanked": "CVE fix pulled",
                        },
                        {
                            "filename": "demo-1.0-py3-none-any.whl",
                            "url": "/f/w",
                            "hashes": {},
                            "yanked": True,
                        },
                        {
                            "filename": "demo-2.0-py3-none-any.whl",
                            "url": "/f/w2",
                            "hashes": {"sha256": SHA_B},
                            "yanked": False,
                        },
                    ],
                }
            ).encode()
            self._send(200, index.JSON_TYPE, body)
        elif self.path == "/simple/html/":
            self._send(200, "text/html", b'<a href="/f/html-1.0.tar.gz">html-1.0.tar.gz</a>')
        elif self.path == "/simple/badjson/":
            self._send(200, index.JSON_TYPE, b'{"files": 3}')
        elif self.path == "/simple/forbidden/":
            self._send(403, "text/plain", b"no")
        elif self.path == "/simple/boom/":
            self._send(503, "text/plain", b"down")
        else:
            self._send(404, "text/plain", b"not found")

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/simple/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_http_pep691_json(server: str) -> None:
    page = index.fetch_page(server, "demo")
    assert (page.status, page.status_reason) == ("quarantined", "malware report")
    files = page.files_for(Version("1.0"))
    assert [(f.sha256, f.yanked) for f in files] == [(SHA_A, "CVE fix pulled"), (None, "")]
    assert page.files_for(Version("2.0"))[0].yanked is None
    html = index.fetch_page(server, "html")
    assert [f.filename for f in html.files] == ["html-1.0.tar.gz"]
    assert not index.fetch_page(server, "absent").found


def test_http_failures_are_errors_not_passes(server: str) -> None:
    with pytest.raises(GateError, match=r"answered HTTP 503 for boom \(after 3 attempts\)"):
        index.fetch_page(server, "boom")
    with pytest.raises(GateError, match=r"answered HTTP 403 for forbidden$"):
        index.fetch_page(server, "forbidden")
    with pytest.raises(GateError, match="not a PEP 691 project page"):
        index.fetch_page(server, "badjson")
    closed = server.rsplit(":", 1)[0] + ":9/simple/"  # the discard port: nothing listens
    with pytest.raises(GateError, match="is not reachable"):
        index.fetch_page(closed, "demo", timeout=5)


def test_pages_collects_per_index_errors(server: str, tmp_path: Path) -> None:
    config = index.IndexConfig(
        server, (write_file_index(tmp_path), server + "boom/../"), (), None, False
    )
    found, errors = index.pages(config, ["demo", "Demo"], workers=2)
    assert [p.index for p in found[DEMO]] == [
        server,
        config.extra_index_urls[0],
        server + "boom/../",
    ]
    assert errors == []
    bad = index.IndexConfig((tmp_path / "gone").as_uri() + "/", (), (), None, False)
    found, errors = index.pages(bad, ["demo"])
    assert found[DEMO] == [] and len(errors) == 1 and "no such directory" in errors[0]


def test_parse_pip_config_precedence() -> None:
    listing = (
        "global.index-url='https://a.invalid/simple'\n"
        "global.extra-index-url='file:///x/simple file:///y/simple'\n"
        "install.index-url='https://b.invalid/simple'\n"
        ":env:.find-links='/opt/wheels'\n"
        "global.index-url='https://c.invalid/simple'\n"
        "user.weird=1\nnot a line\nglobal.cert='unbalanced\n"
    )
    cfg = index.parse_pip_config(listing)
    assert cfg["index-url"] == "https://b.invalid/simple"  # install beats global
    assert cfg["extra-index-url"] == "file:///x/simple file:///y/simple"
    assert cfg["find-links"] == "/opt/wheels"
    assert cfg["cert"] == "unbalanced"
    assert "weird" not in cfg
    config = index.index_config(cfg)
    assert config.indexes == ("https://b.invalid/simple/", "file:///x/simple/", "file:///y/simple/")
    assert config.find_links == ("/opt/wheels",)
    assert index.index_config({"no-index": "true"}, "https://d.invalid/simple").indexes == ()


def test_default_index_is_pips_own_and_config_is_read_from_pip(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    default = index.pip_default_index()
    assert default.startswith("https://") and default.endswith("/simple")
    assert index.index_config({}).index_url == default + "/"
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nextra-index-url = file:///z/simple\n", encoding="utf-8")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.setenv("PIP_INDEX_URL", "file:///w/simple")
    cfg = index.read_pip_config()
    assert cfg["index-url"] == "file:///w/simple"
    assert "file:///z/simple" in cfg["extra-index-url"]
    with pytest.raises(GateError, match="pip config list"):
        index.read_pip_config(str(tmp_path / "no-python"))


def test_pip_default_index_without_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> object:
        raise ImportError(name)

    monkeypatch.setattr("ci.supply_chain.index.importlib.import_module", missing)
    with pytest.raises(GateError, match="set PIP_INDEX_URL"):
        index.pip_default_index()


def test_file_version() -> None:
    assert index.file_version("demo-1.0.tar.gz", DEMO) == Version("1.0")
    assert index.file_version("demo-1.0-py3-none-any.whl", DEMO) == Version("1.0")
    assert index.file_version("other-1.0.tar.gz", DEMO) is None
    assert index.file_version("other-1.0-py3-none-any.whl", DEMO) is None
    assert index.file_version("garbage.whl", DEMO) is None
