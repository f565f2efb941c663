"""``bot4 run``'s resources: each one released even when releasing another fails."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from bot4 import cli
from bot4.infrastructure.metrics import MetricsServer
from bot4.trading_engine.checkpoint import NoteSigner
from bot4.trading_engine.engine import Engine
from bot4.trading_engine.errors import AuditError

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_a_failing_engine_close_still_closes_the_signer_the_server_and_the_signals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``Engine.close`` raises (the audit log's last write failed): the checkpoint key's
    backend and the metrics server are released all the same, the signal handlers are
    restored, and the failure is one line with its exit code."""
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    monkeypatch.setenv("BOT4_SECRETS", "file")
    monkeypatch.setenv("BOT4_SECRETS_DIR", str(secrets))
    assert cli.main(["audit", "keygen", "--key-id", "audit"]) == 0
    capsys.readouterr()
    closed: list[str] = []
    engine_close, signer_close, server_close = Engine.close, NoteSigner.close, MetricsServer.close

    def failing_engine_close(self: Engine) -> None:
        engine_close(self)
        closed.append("engine")
        raise AuditError("audit log: closing failed (injected)")

    def recording_signer_close(self: NoteSigner) -> None:
        signer_close(self)
        closed.append("signer")

    def recording_server_close(self: MetricsServer) -> None:
        server_close(self)
        closed.append("server")

    monkeypatch.setattr(Engine, "close", failing_engine_close)
    monkeypatch.setattr(NoteSigner, "close", recording_signer_close)
    monkeypatch.setattr(MetricsServer, "close", recording_server_close)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    log = tmp_path / "audit.jsonl"
    argv = ["run", str(EXAMPLES / "reverting.toml"), "--audit-log", str(log),
            "--audit-key", "audit", "--duration", "2",
            "--metrics-port", "0", "--metrics-address", "127.0.0.1"]  # fmt: skip
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == AuditError.exit_code != 0
    lines = err.strip().splitlines()
    assert lines[-1] == "bot4: error: audit log: closing failed (injected)"
    assert len(lines) == 2 and lines[0].startswith("metrics on http://127.0.0.1:")
    assert sorted(closed) == ["engine", "server", "signer"]
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    port = int(lines[0].rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass  # the server is gone
