"""Pools: BOT4_TLS_CACHE_SIZE parsing, per-thread LRU, object reuse, TLS context reuse."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot4.infrastructure.errors import ConfigError
from bot4.infrastructure.pools import (
    DEFAULT_TLS_CACHE_SIZE,
    ObjectPool,
    ThreadLocalCache,
    TLSClientSettings,
    TLSContextCache,
    build_client_context,
    tls_cache_size,
)


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, 128), ({"BOT4_TLS_CACHE_SIZE": ""}, 128), ({"BOT4_TLS_CACHE_SIZE": " 64 "}, 64)],
)
def test_tls_cache_size_from_env(env: dict[str, str], expected: int) -> None:
    assert tls_cache_size(env) == expected


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "1.5", "1e3", "65537", "99999999999"])
def test_invalid_tls_cache_size_is_a_startup_error(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"BOT4_TLS_CACHE_SIZE must be a whole number from 1 to"):
        tls_cache_size({"BOT4_TLS_CACHE_SIZE": raw})


def test_caches_read_the_environment_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOT4_TLS_CACHE_SIZE", raising=False)
    assert ThreadLocalCache[str, int]().size == DEFAULT_TLS_CACHE_SIZE
    monkeypatch.setenv("BOT4_TLS_CACHE_SIZE", "7")
    assert ThreadLocalCache[str, int]().size == 7
    assert ObjectPool(object).size == 7
    monkeypatch.setenv("BOT4_TLS_CACHE_SIZE", "lots")
    with pytest.raises(ConfigError, match="got 'lots'"):
        TLSContextCache()


@pytest.mark.parametrize("size", [0, -3, True, 2.0, 10**6])
def test_invalid_explicit_sizes(size: Any) -> None:
    with pytest.raises(ConfigError, match="cache size must be an integer from 1 to 65536"):
        ThreadLocalCache(size)


def test_thread_local_cache_is_lru_per_thread() -> None:
    cache: ThreadLocalCache[str, list[str]] = ThreadLocalCache(2)
    built: list[str] = []

    def get(key: str) -> list[str]:
        return cache.get_or_create(key, lambda: built.append(key) or [key])  # type: ignore[func-returns-value]

    a = get("a")
    assert get("a") is a
    get("b")
    get("a")  # a is now the most recent
    get("c")  # evicts b
    assert get("a") is a
    get("b")
    assert built == ["a", "b", "c", "b"]
    stats = cache.stats()
    assert (stats.size, stats.entries, stats.hits, stats.misses, stats.evictions) == (2, 2, 3, 4, 2)

    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(get("a")))
    thread.start()
    thread.join()
    assert other[0] is not a  # another thread builds its own
    cache.clear()
    assert cache.stats().entries == 0


def test_object_pool_reuses_and_closes() -> None:
    closed: list[object] = []
    pool: ObjectPool[object] = ObjectPool(object, size=1, close=closed.append)
    with pool.acquire() as first:
        pass
    with pool.acquire() as again:
        assert again is first
        with pool.acquire() as second:
            assert second is not first
    assert pool.idle() == 1  # only one kept, the surplus closed
    assert (pool.created, pool.closed, closed) == (2, 1, [first])  # released last: surplus
    with pytest.raises(OSError, match="broken pipe"), pool.acquire() as broken:
        raise OSError("broken pipe")
    assert closed[-1] is broken
    assert pool.idle() == 0


def test_object_pool_without_close_callback_just_drops_surplus() -> None:
    pool: ObjectPool[list[int]] = ObjectPool(list, size=1)
    with pool.acquire(), pool.acquire():
        pass
    assert (pool.created, pool.closed, pool.idle()) == (2, 1, 1)


# -- TLS ---------------------------------------------------------------------------------------


def _write_pki(tmp: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 'localhost' signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bot4 test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A TLS echo-once server on 127.0.0.1 presenting a 'localhost' certificate."""
    ca, cert, key = _write_pki(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(tls.recv(64))
            except (ssl.SSLError, OSError):
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], ca
    stop.set()
    listener.close()
    thread.join(timeout=5)


def _round_trip(context: ssl.SSLContext, port: int) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"ping")
        return tls.recv(64)


def test_cached_tls_context_is_reused_and_verifies_the_server(
    tls_server: tuple[int, Path],
) -> None:
    port, ca = tls_server
    cache = TLSContextCache(size=4)
    settings = TLSClientSettings(cafile=str(ca), alpn=("http/1.1",))
    context = cache.context(settings)
    assert cache.context(settings) is context
    assert _round_trip(context, port) == b"ping"
    assert _round_trip(cache.context(settings), port) == b"ping"
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (2, 1)
    # Without the test CA the default trust store rejects the server.
    with pytest.raises(ssl.SSLCertVerificationError):
        _round_trip(cache.context(), port)


def test_client_certificate_settings_are_loaded(tmp_path: Path) -> None:
    _, cert, key = _write_pki(tmp_path)
    context = build_client_context(TLSClientSettings(certfile=str(cert), keyfile=str(key)))
    assert isinstance(context, ssl.SSLContext)


def test_unreadable_tls_files_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot build the TLS client context .*check the paths"):
        build_client_context(TLSClientSettings(cafile=str(tmp_path / "missing.pem")))
