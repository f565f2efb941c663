"""The signed audit log of a fixed, seeded run is byte-for-byte what it was before the
speed work (the digest below was computed with the code at commit 485c4f5): a faster
writer, gate or engine must not change one byte of what users verify and keep."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bot4.simulator.exchange import ExchangeSimulator
from bot4.simulator.scenario import load_scenario
from bot4.trading_engine.audit_log import verify
from bot4.trading_engine.checkpoint import NoteSigner
from bot4.trading_engine.config import load_engine_config
from bot4.trading_engine.engine import Engine
from bot4.trading_engine.strategy import Intent, Quote, StrategyContext, load_strategy

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
NS = 1_000_000_000
# sha256 of audit.jsonl and the run's audit head, computed at 485c4f5 (before this change).
LOG_SHA256 = (
    "55898a8e64494b8e23347b1dd989632b9707cadcfb74ed5a7f80e73055bd4d2d"  # pragma: allowlist secret
)
HEAD = (
    "2a8d0c5c7d189922bb2384de15f61a47b12fca422b04f27f6eb0924fa7e88712"  # pragma: allowlist secret
)


class Mixed:
    """The built-in strategy plus intents the writer's fast paths must encode exactly as the
    generic encoder does: a float and an int quantity, an oversized one, odd prices."""

    def __init__(self, context: StrategyContext) -> None:
        self.inner = load_strategy("mean_reversion", context)
        self.n = 0

    def on_quote(self, quote: Quote, position: float) -> list[Intent]:
        self.n += 1
        extra = [
            Intent(quote.instrument, 1, 0.01, quote.ask),
            Intent(quote.instrument, -1, 1, quote.bid),  # an int quantity stays an int
            Intent(quote.instrument, 1, 1e6, quote.ask),  # oversized against Kelly
            Intent(quote.instrument, -1, 0.1 * (self.n % 7), quote.bid + 1e-9),
        ]
        return self.inner.on_quote(quote, position) + extra


def test_a_seeded_signed_run_writes_the_same_log_bytes_as_before(tmp_path: Path) -> None:
    scenario = load_scenario(EXAMPLES / "reverting.toml")
    config = load_engine_config(EXAMPLES / "engine.toml", scenario)
    config = replace(config, strategy_params={**config.strategy_params, "every": 1.0})
    lots = {i.symbol: float(i.lot_size) for i in scenario.instruments}
    context = StrategyContext(tuple(lots), lots, scenario.seed, dict(config.strategy_params))
    signer = NoteSigner.from_private("test", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    path = tmp_path / "audit.jsonl"
    engine = Engine(
        scenario,
        config,
        venue=ExchangeSimulator(scenario),
        audit_path=path,
        audit_signer=signer,
        checkpoint_every=50,
        strategy=Mixed(context),
    )
    summary = engine.run(20 * NS)
    data = path.read_bytes()
    assert verify([path], signer.verifier()).passes()
    assert len(summary.gate) >= 4  # passed, oversized, insufficient history, … all encoded
    assert (hashlib.sha256(data).hexdigest(), summary.audit_head) == (LOG_SHA256, HEAD)
