"""``bot4 override keygen|issue`` and ``bot4 run --override-token``, attacks first."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from bot4 import cli
from bot4.trading_engine.audit_cli import load_verifier
from bot4.trading_engine.audit_log import verify

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
RUN = ["run", str(EXAMPLES / "reverting.toml"), "--duration", "5"]


def bot4(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    """Audit and override keys in a fresh file backend; returns the audit public key."""
    monkeypatch.setenv("BOT4_SECRETS_DIR", str(tmp_path / "secrets"))
    for name in ("BOT4_SECRETS", "BOT4_AUDIT_KEY", "BOT4_OVERRIDE_KEY"):
        monkeypatch.delenv(name, raising=False)
    pub = tmp_path / "audit.pub"
    assert bot4(capsys, "audit", "keygen", "--public-out", str(pub))[0] == 0
    assert bot4(capsys, "override", "keygen")[0] == 0
    return pub


def issue(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> Path:
    argv = ["override", "issue", "--operator", "alice", "--reason", "hedge", "--out", str(path)]
    code, _, err = bot4(capsys, *argv, *extra)
    assert code == 0, err
    return path


def records(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_forged_tampered_and_garbage_tokens_are_refused_before_anything_opens(
    keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "audit.jsonl"
    assert bot4(capsys, "override", "keygen", "--key-id", "mallory")[0] == 0
    forged = issue(capsys, tmp_path / "forged", "--order-id", "1", "--key-id", "mallory")
    good = issue(capsys, tmp_path / "good", "--order-id", "1").read_text()
    head, body, sig = good.strip().split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["order_id"] = "2"
    raw = json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()
    altered = tmp_path / "altered"
    altered.write_text(f"{head}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}.{sig}\n")
    garbage = tmp_path / "garbage"
    garbage.write_text("bot4o1.!!!.???\n")
    huge = tmp_path / "huge"
    huge.write_bytes(b"A" * 5000)
    cases = [
        (forged, "override token signature does not verify"),
        (altered, "override token signature does not verify"),
        (garbage, "override token is corrupt (bad base64 or JSON)"),
        (huge, f"{huge}: not an override token (one line, ≤ 4 KiB)"),
        (tmp_path / "missing", f"{tmp_path / 'missing'}: cannot read override token"),
    ]
    for token, why in cases:
        code, out, err = bot4(capsys, *RUN, "--audit-log", str(log), "--override-token", str(token))
        assert (code, out) == (3, ""), token
        assert err.startswith(f"bot4: error: {why}") and err.count("\n") == 1, err
        assert not log.exists()  # nothing ran, nothing was written
    code, out, err = bot4(capsys, *RUN, "--override-token", str(forged))
    assert (code, out, err) == (
        3,
        "",
        "bot4: error: --override-token needs --audit-log: the token's single use is recorded "
        "there\n",
    )


def test_missing_override_key_prints_a_remedy_that_works(
    keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["override", "issue", "--order-id", "1", "--operator", "a", "--reason", "r"]
    code, out, err = bot4(capsys, *argv, "--key-id", "ops-2")
    assert (code, out) == (2, "")
    assert err.endswith("; create one with: bot4 override keygen --key-id ops-2\n")
    remedy = err.rpartition("create one with: ")[2].split()
    assert bot4(capsys, *remedy[1:])[0] == 0  # as printed, minus the program name
    code, token, _ = bot4(capsys, *argv, "--key-id", "ops-2")
    assert code == 0 and token.startswith("bot4o1.")


def test_issue_refuses_bad_windows_and_overwrites(
    keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["override", "issue", "--order-id", "1", "--operator", "a", "--reason", "r"]
    for extra, why in [
        (["--valid-for", "nan"], "--valid-from and --valid-for must be finite numbers of seconds"),
        (["--valid-for", "3601"], "override window must be positive and at most one hour"),
        (["--valid-for", "0"], "override window must be positive and at most one hour"),
        (["--operator", " "], "an override needs an operator name and a reason"),
    ]:
        code, out, err = bot4(capsys, *argv, *extra)
        assert (code, out) == (2, "") and err == f"bot4: error: {why}\n", err
    token = issue(capsys, tmp_path / "t", "--order-id", "1")
    assert token.stat().st_mode & 0o777 == 0o600
    before = token.read_bytes()
    code, _, err = bot4(capsys, *argv, "--out", str(token))
    assert code == 2 and err == f"bot4: error: {token}: exists; a token file is never overwritten\n"
    assert token.read_bytes() == before
    code, _, err = bot4(capsys, *argv, "--out", str(tmp_path / "no" / "dir"))
    assert code == 2 and err.startswith(f"bot4: error: {tmp_path / 'no' / 'dir'}: cannot create (")
    code, out, err = bot4(capsys, "override", "keygen", "--public-out", str(tmp_path / "o.pub"))
    assert (code, out) == (2, "")
    assert err == (
        f"bot4: error: key 'gate-override' already exists in {tmp_path / 'secrets'}; "
        "refusing to replace it\n"
    )
    assert not (tmp_path / "o.pub").exists()
    code, pem, _ = bot4(
        capsys, "override", "keygen", "--key-id", "k2", "--public-out", str(tmp_path / "o.pub")
    )
    assert code == 0 and (tmp_path / "o.pub").read_text() == pem and pem.startswith("-----BEGIN")


def test_a_token_lets_its_order_through_once_and_the_replay_is_refused_unstarted(
    keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "audit.jsonl"
    token = issue(capsys, tmp_path / "t", "--order-id", "1")
    argv = [*RUN, "--audit-log", str(log), "--override-token", str(token)]
    code, out, err = bot4(capsys, *argv)
    assert code == 0 and "operator_override=1" in out, err
    first = len(records(log))
    code, out, err = bot4(capsys, *argv)
    assert (code, out) == (3, "")
    assert err == (
        f"bot4: error: override token for order 1 was already used in {log} "
        "(replay rejected); nothing was run\n"
    )
    new = records(log)[first:]
    assert [r["kind"] for r in new] == ["run_refused", "summary", "checkpoint"]
    assert new[0]["data"] == {
        "nonce": records(log)[0]["data"]["nonce"],  # type: ignore[index]
        "order_id": "1",
        "reason": "override token already used (replay rejected)",
    }
    assert new[1]["data"]["signals"] == 0  # type: ignore[index]
    assert [r["kind"] for r in records(log)].count("override_use") == 1
    assert verify([log], load_verifier(keys)).passes()


def test_a_token_outside_its_window_or_for_no_order_fails_the_run(
    keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    late = issue(capsys, tmp_path / "late", "--order-id", "1", "--valid-from", "100")
    log = tmp_path / "a.jsonl"
    code, out, err = bot4(capsys, *RUN, "--audit-log", str(log), "--override-token", str(late))
    assert code == 3 and "override_rejected=1" in out
    assert err.endswith(
        "bot4: error: override token for order 1 refused: override token is outside its "
        "validity window\n"
    )
    refused = [r for r in records(log) if r["kind"] == "decision" and r["data"]["order_id"] == "1"]  # type: ignore[index]
    assert refused[0]["data"]["reason"] == "override_rejected"  # type: ignore[index]
    nowhere = issue(capsys, tmp_path / "nowhere", "--order-id", "999999")
    log = tmp_path / "b.jsonl"
    code, out, err = bot4(capsys, *RUN, "--audit-log", str(log), "--override-token", str(nowhere))
    assert code == 3 and err == (
        "bot4: error: override token for order 999999 was not used: that order never reached "
        "the gate\n"
    )
    assert "override_use" not in log.read_text()
