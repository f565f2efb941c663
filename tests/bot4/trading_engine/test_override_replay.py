"""Override tokens stay single-use across gates, restarts and processes sharing one log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bot4 import cli
from bot4.trading_engine.audit_log import AuditLog, FsyncPolicy, verify
from bot4.trading_engine.checkpoint import NoteSigner
from bot4.trading_engine.emotion_gate import EmotionFreeGate, Reason, Signal
from bot4.trading_engine.override import OverrideKey, OverrideVerifier, issue

KEY = OverrideKey(hmac_secret=b"s" * 32)
SIGNER = NoteSigner.from_private("k", Ed25519PrivateKey.from_private_bytes(b"\x05" * 32))
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
TOKEN = issue(
    KEY, order_id="o1", not_before_ns=0, not_after_ns=10**10, operator="bob", reason="hedge"
)


def decide_once(log_path: Path) -> tuple[Reason, str]:
    log = AuditLog(log_path, fsync=FsyncPolicy.NEVER, signer=SIGNER, clock=lambda: 1_000)
    gate = EmotionFreeGate(audit_log=log, override=OverrideVerifier(KEY), clock=lambda: 1_000)
    d = gate.decide(Signal("o1", "BTC", 1, 1.0, 100.0, 0), override_token=TOKEN)
    log.append("summary", {})
    log.close()
    return d.reason, d.detail


def test_a_new_gate_on_the_same_log_refuses_the_replay(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    assert decide_once(path) == (Reason.OVERRIDE, "override by bob: hedge")
    reason, detail = decide_once(path)  # a restart: new process state, same log
    assert (reason, detail) == (
        Reason.OVERRIDE_REJECTED,
        "override token was already used (replay rejected)",
    )
    verdict = verify([path], SIGNER.verifier())
    assert verdict.passes()
    records = [json.loads(x) for x in path.read_text().splitlines()]
    uses = [r for r in records if r["kind"] == "override_use"]
    refused = [
        r for r in records if r["kind"] == "decision" and r["data"]["reason"] == "override_rejected"
    ]
    assert len(uses) == 1 and uses[0]["data"]["order_id"] == "o1"
    assert len(refused) == 1 and "replay rejected" in refused[0]["data"]["detail"]


SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from bot4.trading_engine.audit_log import AuditLog, FsyncPolicy
    from bot4.trading_engine.checkpoint import NoteSigner
    from bot4.trading_engine.emotion_gate import EmotionFreeGate, Signal
    from bot4.trading_engine.override import OverrideKey, OverrideVerifier
    signer = NoteSigner.from_private("k", Ed25519PrivateKey.from_private_bytes(b"\\5" * 32))
    log = AuditLog(Path(sys.argv[1]), fsync=FsyncPolicy.ALWAYS, signer=signer)
    gate = EmotionFreeGate(
        audit_log=log, override=OverrideVerifier(OverrideKey(hmac_secret=b"s" * 32)),
        clock=lambda: 1_000,
    )
    d = gate.decide(Signal("o1", "BTC", 1, 1.0, 100.0, 0), override_token=sys.argv[2])
    print(d.reason.value, flush=True)
    sys.stdin.readline()  # hold the log until told to finish
    log.append("summary", {})
    log.close()
    """
)


@pytest.mark.e2e
def test_two_processes_cannot_both_use_one_token(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    cmd = [sys.executable, "-c", SCRIPT, str(path), TOKEN]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as first:
        assert first.stdout is not None and first.stdin is not None
        assert first.stdout.readline().strip() == "operator_override"
        # While the first holds the log, a second process cannot even open it.
        second = subprocess.run(cmd, input="\n", capture_output=True, text=True, check=False)
        assert second.returncode == 1 and second.stdout == ""
        assert f"{path}: audit log is in use by another process" in second.stderr
        first.stdin.write("\n")
        first.stdin.close()
        assert first.wait(timeout=30) == 0
    # After it exits, a new process rebuilds the used nonces from the log and refuses.
    third = subprocess.run(cmd, input="\n", capture_output=True, text=True, check=True)
    assert third.stdout.strip() == "override_rejected"
    assert verify([path], SIGNER.verifier()).passes()


@pytest.mark.e2e
def test_two_bot4_run_processes_on_one_log(tmp_path: Path) -> None:
    env = {**os.environ, "BOT4_SECRETS_DIR": str(tmp_path / "secrets")}
    env.pop("BOT4_SECRETS", None)
    env.pop("BOT4_AUDIT_KEY", None)
    bot4 = [sys.executable, "-m", "bot4"]
    pub = tmp_path / "audit.pub"
    subprocess.run([*bot4, "audit", "keygen", "--public-out", str(pub)], env=env, check=True)
    log = tmp_path / "audit.jsonl"
    run = [*bot4, "run", str(EXAMPLES / "reverting.toml"), "--audit-log", str(log)]
    with subprocess.Popen(
        [*run, "--duration", "1000000"], env=env, stdout=subprocess.DEVNULL
    ) as first:
        deadline = time.monotonic() + 60
        while (not log.exists() or log.stat().st_size < 2_000) and time.monotonic() < deadline:
            time.sleep(0.05)
        second = subprocess.run(
            [*run, "--duration", "5"], env=env, capture_output=True, text=True, check=False
        )
        assert second.returncode == 2 and second.stdout == ""
        assert second.stderr == (
            f"bot4: error: {log}: audit log is in use by another process "
            f"(lock {log}.lock is held)\n"
        )
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
    check = subprocess.run(
        [*bot4, "audit", "verify", str(log), "--key", str(pub)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout
    assert check.stdout.startswith("OK: ")


@pytest.mark.e2e
def test_two_bot4_processes_cannot_both_use_one_override_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOT4_SECRETS_DIR", str(tmp_path / "secrets"))
    for name in ("BOT4_SECRETS", "BOT4_AUDIT_KEY", "BOT4_OVERRIDE_KEY"):
        monkeypatch.delenv(name, raising=False)
    pub = tmp_path / "audit.pub"
    token = tmp_path / "token"
    assert cli.main(["audit", "keygen", "--public-out", str(pub)]) == 0
    assert cli.main(["override", "keygen"]) == 0
    issue_argv = ["override", "issue", "--order-id", "1", "--operator", "bob", "--reason", "hedge"]
    assert cli.main([*issue_argv, "--out", str(token)]) == 0
    log = tmp_path / "audit.jsonl"
    run = [
        *[sys.executable, "-m", "bot4", "run", str(EXAMPLES / "reverting.toml")],
        *["--audit-log", str(log), "--override-token", str(token)],
    ]
    with subprocess.Popen(
        [*run, "--duration", "1000000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as first:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            not log.exists() or b'"override_use"' not in log.read_bytes()
        ):
            time.sleep(0.05)
        assert b'"override_use"' in log.read_bytes()  # the first process spent the token
        # A second bot4 on the same log, same token, while the first runs: refused whole.
        second = subprocess.run(
            [*run, "--duration", "5"], capture_output=True, text=True, check=False
        )
        assert (second.returncode, second.stdout) == (2, "")
        assert second.stderr == (
            f"bot4: error: {log}: audit log is in use by another process "
            f"(lock {log}.lock is held)\n"
        )
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
    # After the first exits, a new bot4 rebuilds the spent nonces from the log: one refusal.
    third = subprocess.run([*run, "--duration", "5"], capture_output=True, text=True, check=False)
    assert (third.returncode, third.stdout) == (3, "")
    assert third.stderr == (
        f"bot4: error: override token for order 1 was already used in {log} "
        "(replay rejected); nothing was run\n"
    )
    kinds = [json.loads(line)["kind"] for line in log.read_text().splitlines()]
    assert kinds.count("override_use") == 1 and kinds.count("run_refused") == 1
    check = subprocess.run(
        [sys.executable, "-m", "bot4", "audit", "verify", str(log), "--key", str(pub)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0 and check.stdout.startswith("OK: "), check.stdout
