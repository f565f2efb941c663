"""Registry authentication against real registries: Debian's docker-registry with an
htpasswd file (HTTP basic) and with ``auth: token`` trusting a token server run here
(the Docker/OCI bearer-token flow, ES256 JWTs signed with a certificate made here).
Passwords are generated per run; none may appear in logs or error messages."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.server
import json
import logging
import secrets
import shutil
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from ci.oci.layout import Layout
from ci.release import cli, transfer
from ci.release.auth import Challenge, Credentials, credentials_from_env, parse_challenges
from ci.release.errors import RegistryError
from ci.release.local_registry import LocalRegistry, find_binary
from ci.release.reference import parse
from ci.release.registry import Registry, Retry

SERVICE = "bot4-test-registry"
ISSUER = "bot4-test-token-issuer"
LayoutFactory = Callable[..., tuple[Path, str]]


def _password() -> str:
    return secrets.token_urlsafe(18)


# -- challenges and credentials (pure) -------------------------------------------------------


def test_challenges_are_parsed_as_distribution_writes_them() -> None:
    header = (
        'Bearer realm="https://auth.example.org/token",service="registry.example.org",'
        'scope="repository:bot4/engine:pull,push repository:bot4/base:pull",'
        'error="insufficient_scope"'
    )
    (bearer,) = parse_challenges(header)
    assert bearer.scheme == "bearer"
    assert bearer.params["realm"] == "https://auth.example.org/token"
    assert bearer.params["error"] == "insufficient_scope"
    assert bearer.scopes == ("repository:bot4/engine:pull,push", "repository:bot4/base:pull")
    both = parse_challenges('Negotiate, Basic realm="a \\"quoted\\" realm", Bearer realm=x')
    assert both == [
        Challenge("negotiate", {}),
        Challenge("basic", {"realm": 'a "quoted" realm'}),
        Challenge("bearer", {"realm": "x"}),
    ]
    assert both[1].scopes == ()
    assert parse_challenges("") == []
    assert parse_challenges("=garbage") == []


def test_credentials_come_from_both_variables_or_neither() -> None:
    secret = _password()
    creds = credentials_from_env({"BOT4_REGISTRY_USERNAME": "ci", "BOT4_REGISTRY_PASSWORD": secret})
    assert creds == Credentials("ci", secret)
    assert secret not in repr(creds)
    assert creds.basic() == "Basic " + base64.b64encode(f"ci:{secret}".encode()).decode()
    assert credentials_from_env({}) is None
    with pytest.raises(RegistryError, match="BOT4_REGISTRY_PASSWORD is empty or unset"):
        credentials_from_env({"BOT4_REGISTRY_USERNAME": "ci"})
    with pytest.raises(RegistryError, match="BOT4_REGISTRY_USERNAME is empty or unset"):
        credentials_from_env({"BOT4_REGISTRY_PASSWORD": secret})
    with pytest.raises(RegistryError, match="must not contain ':'"):
        credentials_from_env({"BOT4_REGISTRY_USERNAME": "a:b", "BOT4_REGISTRY_PASSWORD": secret})


# -- htpasswd (basic) ------------------------------------------------------------------------


@dataclass
class AuthRegistry:
    """A running registry requiring a login, and the login it accepts."""

    local: LocalRegistry
    good: Credentials

    def client(self, credentials: Credentials | None) -> Registry:
        return Registry(
            self.local.host,
            retry=Retry(attempts=2, backoff=0.01, timeout=30),
            credentials=credentials,
        )


def _registry_binary() -> None:
    if find_binary() is None:
        pytest.fail("docker-registry is not installed (Debian package docker-registry)")


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    """docker-registry with ``auth: htpasswd`` (bcrypt file made by Apache's htpasswd)."""
    _registry_binary()
    htpasswd = shutil.which("htpasswd")
    if htpasswd is None:
        pytest.fail("htpasswd is not installed (Debian package apache2-utils)")
    work = tmp_path_factory.mktemp("basic-registry")
    good = Credentials("alice", _password())
    made = subprocess.run(  # the password goes on stdin, never into argv
        [htpasswd, "-B", "-i", "-n", good.username],
        input=good.password,
        capture_output=True,
        text=True,
        check=True,
    )
    (work / "htpasswd").write_text(made.stdout, encoding="utf-8")
    auth = f"auth:\n  htpasswd:\n    realm: bot4-test\n    path: {work / 'htpasswd'}\n"
    with LocalRegistry(work / "r", host="127.0.0.1", auth=auth, credentials=good) as local:
        yield AuthRegistry(local, good)


def test_basic_auth_push_and_pull_keep_the_digest(
    basic_registry: AuthRegistry,
    make_layout: LayoutFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = basic_registry.client(basic_registry.good)
    src, digest = make_layout()
    ref = parse(f"{client.host}/test/basic:1")
    assert transfer.push(client, Layout(src), ref) == digest
    pulled = transfer.pull(client, ref.with_digest(digest), tmp_path / "pulled")
    assert pulled.digest == digest
    assert "basic auth as user 'alice'" in caplog.text
    assert basic_registry.good.password not in caplog.text


def test_basic_auth_without_or_with_wrong_credentials_is_one_clear_error(
    basic_registry: AuthRegistry,
) -> None:
    with pytest.raises(RegistryError, match=r"requires a login .*set BOT4_REGISTRY_USERNAME"):
        basic_registry.client(None).ping()
    wrong = Credentials("alice", _password())
    with pytest.raises(RegistryError) as caught:
        basic_registry.client(wrong).ping()
    message = str(caught.value)
    assert message == (
        f"registry {basic_registry.local.host} refused the login of user 'alice' (HTTP 401); "
        "check BOT4_REGISTRY_USERNAME and BOT4_REGISTRY_PASSWORD"
    )
    assert wrong.password not in message


def test_the_cli_takes_credentials_from_the_environment(
    basic_registry: AuthRegistry,
    make_layout: LayoutFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src, digest = make_layout()
    ref = f"{basic_registry.local.host}/test/cli:1"
    monkeypatch.setenv("BOT4_REGISTRY_USERNAME", "alice")
    monkeypatch.setenv("BOT4_REGISTRY_PASSWORD", basic_registry.good.password)
    assert cli.main(["push", str(src), ref]) == 0
    assert capsys.readouterr().out.strip() == digest

    wrong = _password()
    monkeypatch.setenv("BOT4_REGISTRY_PASSWORD", wrong)
    assert cli.main(["resolve", ref]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert "refused the login of user 'alice'" in lines[0]
    assert wrong not in captured.err + captured.out


# -- token flow ------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class TokenIssuer:
    """Signs registry tokens (ES256, x5c = a self-signed certificate made here)."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def __post_init__(self) -> None:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = dt.datetime.now(dt.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def token(self, subject: str, access: list[dict[str, object]]) -> str:
        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 5,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        der_sig = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der_sig)
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


@dataclass
class TokenServer:
    """The realm: checks basic credentials, grants ``alice`` everything under ``test/``
    and ``reader`` only pull; records every request's query and Authorization."""

    issuer: TokenIssuer
    logins: dict[str, str]
    requests: list[tuple[dict[str, list[str]], str]] = field(default_factory=list)

    def answer(self, path: str, authorization: str) -> tuple[int, bytes]:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        self.requests.append((query, authorization))
        user = self._user(authorization)
        if user is None:
            return 401, b'{"details":"bad credentials"}'
        access: list[dict[str, object]] = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":")
            allowed = {"pull", "push"} if user == "alice" else {"pull"}
            granted = sorted(set(actions.split(",")) & allowed)
            if name.startswith("test/") and granted:
                access.append({"type": kind, "name": name, "actions": granted})
        return 200, json.dumps(
            {"token": self.issuer.token(user, access), "expires_in": 300}
        ).encode()

    def _user(self, authorization: str) -> str | None:
        scheme, _, value = authorization.partition(" ")
        if scheme != "Basic":
            return None
        user, _, password = base64.b64decode(value).decode().partition(":")
        expected = self.logins.get(user)
        ok = expected is not None and secrets.compare_digest(expected, password)
        return user if ok else None


@dataclass
class TokenRegistry(AuthRegistry):
    server: TokenServer = field(default_factory=lambda: TokenServer(TokenIssuer(), {}))
    realm: str = ""


def _serve(answer: Callable[[str, str], tuple[int, bytes]]) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = answer(self.path, self.headers.get("Authorization", ""))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenRegistry]:
    """docker-registry with ``auth: token`` trusting our issuer's certificate."""
    _registry_binary()
    work = tmp_path_factory.mktemp("token-registry")
    good = Credentials("alice", _password())
    server = TokenServer(TokenIssuer(), {"alice": good.password, "reader": _password()})
    (work / "issuer.pem").write_bytes(server.issuer.pem())
    http_server = _serve(server.answer)
    realm = f"http://127.0.0.1:{http_server.server_address[1]}/token"
    auth = (
        f"auth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n"
        f"    issuer: {ISSUER}\n    rootcertbundle: {work / 'issuer.pem'}\n"
    )
    try:
        with LocalRegistry(work / "r", host="127.0.0.1", auth=auth, credentials=good) as local:
            yield TokenRegistry(local, good, server, realm)
    finally:
        http_server.shutdown()
        http_server.server_close()


def test_token_flow_push_and_pull_keep_the_digest(
    token_registry: TokenRegistry,
    make_layout: LayoutFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = token_registry.client(token_registry.good)
    src, digest = make_layout()
    ref = parse(f"{client.host}/test/token:1")
    token_registry.server.requests.clear()
    assert transfer.push(client, Layout(src), ref) == digest
    pulled = transfer.pull(client, ref.with_digest(digest), tmp_path / "pulled")
    assert pulled.digest == digest
    assert client.resolve("test/token", "1") == digest
    # the realm got service, the challenged scope and the account, with basic credentials
    queries = [q for q, _ in token_registry.server.requests]
    assert all(q["service"] == [SERVICE] and q["account"] == ["alice"] for q in queries)
    asked = {s for q in queries for s in q.get("scope", [])}
    # distribution lists a scope's actions in map order: "pull,push" or "push,pull"
    assert "repository:test/token:pull" in asked
    assert asked & {"repository:test/token:pull,push", "repository:test/token:push,pull"}
    assert {a for _, a in token_registry.server.requests} == {token_registry.good.basic()}
    # a token is reused until the registry asks for more: far fewer tokens than requests
    assert len(queries) <= 4
    assert token_registry.good.password not in caplog.text
    assert "token for ('repository:test/token:pull',) as user 'alice'" in caplog.text


def test_token_flow_refusals_are_one_clear_line(
    token_registry: TokenRegistry, make_layout: LayoutFactory
) -> None:
    host = token_registry.local.host
    wrong = Credentials("alice", _password())
    with pytest.raises(RegistryError) as caught:
        token_registry.client(wrong).ping()
    assert str(caught.value) == (
        f"registry {host}: the token service {token_registry.realm} refused user 'alice' "
        "(HTTP 401); check BOT4_REGISTRY_USERNAME and BOT4_REGISTRY_PASSWORD"
    )
    with pytest.raises(RegistryError, match=r"refused anonymous access .*; set BOT4_REGISTRY"):
        token_registry.client(None).ping()

    reader = Credentials("reader", token_registry.server.logins["reader"])
    src, _ = make_layout()
    with pytest.raises(
        RegistryError,
        match=(
            r"refused POST test/ro/blobs/uploads/ with the token issued to user 'reader' for "
            r"repository:test/ro:(pull,push|push,pull) \(insufficient_scope\); "
            r"check that this login may"
        ),
    ):
        transfer.push(token_registry.client(reader), Layout(src), parse(f"{host}/test/ro:1"))


# -- client side: what the real servers do not exercise --------------------------------------

Handler = Callable[[str, str, dict[str, str]], tuple[int, dict[str, str], bytes]]


def _bearer(realm: str) -> dict[str, str]:
    service = "" if realm.endswith("/access") else ',service="svc"'  # service is optional
    return {"WWW-Authenticate": f'Bearer realm="{realm}"{service}'}


def test_the_login_never_follows_a_redirect_to_another_host(
    serve: Callable[[Handler], str],
) -> None:
    seen: list[dict[str, str]] = []

    def storage_answer(
        method: str, path: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        seen.append(headers)
        return 200, {}, b"layer"

    storage = serve(storage_answer)
    creds = Credentials("ci", _password())

    def registry(
        method: str, path: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        if "Authorization" not in headers:
            return 401, {"WWW-Authenticate": 'Basic realm="r"'}, b""
        if path.startswith("/v2/a/blobs/"):
            return 307, {"Location": f"http://{storage}/signed?x=1"}, b""
        return 200, {}, b"{}"

    client = Registry(serve(registry), retry=Retry(attempts=1), credentials=creds)
    digest = "sha256:" + hashlib.sha256(b"layer").hexdigest()
    assert client.blob("a", digest) == b"layer"
    assert seen and all("Authorization" not in h for h in seen)


def test_token_service_failures(serve: Callable[[Handler], str]) -> None:
    creds = Credentials("ci", _password())
    answers: dict[str, tuple[int, dict[str, str], bytes]] = {
        "/empty": (200, {}, b'{"expires_in": 60}'),
        "/garbage": (200, {}, b"not json"),
        "/broken": (400, {}, b'{"errors":[{"code":"DENIED","message":"no"}]}'),
        "/access": (200, {}, b'{"access_token": "opaque"}'),
    }
    auth = serve(lambda m, p, h: answers[urllib.parse.urlsplit(p).path])

    def guarded(realm: str) -> Handler:
        def answer(
            method: str, path: str, headers: dict[str, str]
        ) -> tuple[int, dict[str, str], bytes]:
            if headers.get("Authorization") == "Bearer opaque":
                return 200, {}, b"{}"
            return 401, _bearer(realm), b""

        return answer

    def client(realm: str, credentials: Credentials | None = creds) -> Registry:
        return Registry(serve(guarded(realm)), retry=Retry(attempts=1), credentials=credentials)

    with pytest.raises(RegistryError, match="answered without a token"):
        client(f"http://{auth}/empty").ping()
    with pytest.raises(RegistryError, match="answered without a token"):
        client(f"http://{auth}/garbage").ping()
    with pytest.raises(RegistryError, match=r"refused a token from .*HTTP 400 DENIED: no"):
        client(f"http://{auth}/broken").ping()
    client(f"http://{auth}/access", None).ping()  # anonymous tokens, OAuth2's field name
    with pytest.raises(RegistryError, match="unusable realm 'ftp://x'"):
        client("ftp://x").ping()
    with pytest.raises(RegistryError, match="refusing to send registry credentials to http://"):
        client("http://auth.invalid/token").ping()


def test_challenges_we_cannot_answer_leave_the_401_to_the_caller(
    serve: Callable[[Handler], str],
) -> None:
    creds = Credentials("ci", _password())
    plain = serve(lambda m, p, h: (401, {}, b""))
    odd = serve(lambda m, p, h: (401, {"WWW-Authenticate": "Negotiate"}, b""))
    for host in (plain, odd):
        client = Registry(host, retry=Retry(attempts=1), credentials=creds)
        client.ping()  # a 401 still means "a registry answers"
        with pytest.raises(RegistryError, match="refused GET manifest a:1: HTTP 401"):
            client.manifest("a", "1")
