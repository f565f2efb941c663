"""A tiny sweep workspace: the example scenario and engine copied, a fresh audit key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot4.trading_engine.audit_keys import keygen

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
SPEC = """name = "tiny"
scenarios = ["reverting.toml"]
engine = "engine.toml"
seeds = [1, 2]
duration_s = {duration}

[params]
"strategy_params.lookback" = [10, 20]
"""


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp/ws with spec.toml (4 cells of 3 simulated seconds) and a signing key."""
    ws = tmp_path / "ws"
    ws.mkdir()
    for name in ("reverting.toml", "reverting_quotes.csv", "engine.toml"):
        shutil.copy(EXAMPLES / name, ws / name)
    (ws / "spec.toml").write_text(SPEC.format(duration=3.0), encoding="utf-8")
    monkeypatch.setenv("BOT4_SECRETS_DIR", str(tmp_path / "secrets"))
    monkeypatch.delenv("BOT4_AUDIT_KEY", raising=False)
    monkeypatch.delenv("BOT4_SECRETS", raising=False)
    keygen("audit-checkpoint")
    return ws
