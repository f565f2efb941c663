"""``bot4 run SCENARIO.toml``: the whole engine against the in-process exchange simulator.

Ctrl-C or SIGTERM stops it gracefully: the loop finishes its step, the audit log gets its
closing ``summary`` record and a signed checkpoint, and the summary is printed as for a
normal end. With ``--audit-log`` the Ed25519 checkpoint key must exist (``bot4 audit
keygen``) unless ``--unsigned-audit`` is given: it is loaded before anything starts.
``--override-token FILE`` (``bot4 override issue``) is checked before anything starts too;
one the log records as used stops the run unstarted (audited ``run_refused``, exit 3).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from bot4.infrastructure.metrics import Metrics, MetricsEndpoint, serve_metrics
from bot4.simulator.exchange import ExchangeSimulator
from bot4.simulator.scenario import load_scenario
from bot4.trading_engine.audit_keys import DEFAULT_KEY_ID, KEY_ENV, key_id_from_env, load_signer
from bot4.trading_engine.audit_log import (
    DEFAULT_CHECKPOINT_EVERY,
    DEFAULT_CHECKPOINT_INTERVAL_NS,
    FsyncPolicy,
)
from bot4.trading_engine.config import load_engine_config
from bot4.trading_engine.engine import Engine
from bot4.trading_engine.errors import AuditError
from bot4.trading_engine.override import OverrideRejectedError, OverrideVerifier
from bot4.trading_engine.override_cli import DEFAULT_KEY_ID as DEFAULT_OVERRIDE_KEY_ID
from bot4.trading_engine.override_cli import KEY_ENV as OVERRIDE_KEY_ENV
from bot4.trading_engine.override_cli import key_id_from_env as override_key_id
from bot4.trading_engine.override_cli import load_key as load_override_key
from bot4.trading_engine.override_cli import read_token

_NS_PER_S = 1_000_000_000


def register(subparsers: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    """Add ``run``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run the engine (strategy → gate → risk → breaker → venue) on simulated time",
        description="Run the trading engine against the exchange simulator of SCENARIO.",
    )
    parser.add_argument("scenario", type=Path, help="simulator scenario TOML")
    parser.add_argument("--engine", type=Path, help="engine config TOML (default: built-in)")
    parser.add_argument("--seed", type=int, help="override the scenario's seed")
    parser.add_argument("--duration", type=float, help="simulated seconds (default: scenario's)")
    parser.add_argument("--strategy", help="built-in name or module:Class (default: config's)")
    parser.add_argument("--audit-log", type=Path, help="append decisions to this audit log")
    parser.add_argument(
        "--audit-key",
        help="Ed25519 checkpoint key id in the secrets backend "
        f"(default: ${KEY_ENV} or {DEFAULT_KEY_ID}; create it with: bot4 audit keygen)",
    )
    parser.add_argument(
        "--unsigned-audit",
        action="store_true",
        help="write the audit log without signed checkpoints (verify will flag it)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=DEFAULT_CHECKPOINT_EVERY,
        help=f"records between signed checkpoints (default: {DEFAULT_CHECKPOINT_EVERY})",
    )
    parser.add_argument(
        "--checkpoint-interval",
        type=float,
        default=DEFAULT_CHECKPOINT_INTERVAL_NS / _NS_PER_S,
        help="seconds (of the log's clock) between signed checkpoints "
        f"(default: {DEFAULT_CHECKPOINT_INTERVAL_NS // _NS_PER_S})",
    )
    parser.add_argument(
        "--fsync",
        choices=[p.value for p in FsyncPolicy],
        default=FsyncPolicy.INTERVAL.value,
        help="audit log fsync policy (default: interval)",
    )
    parser.add_argument(
        "--override-token",
        type=Path,
        metavar="FILE",
        help="an operator override token (bot4 override issue) for the order it names; "
        "needs --audit-log, where its single use is recorded",
    )
    parser.add_argument(
        "--override-key",
        help=f"override key id in the secrets backend (default: ${OVERRIDE_KEY_ENV} or "
        f"{DEFAULT_OVERRIDE_KEY_ID})",
    )
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    parser.add_argument(
        "--metrics-address",
        default=None,
        help="address to bind metrics to (default: $BOT4_METRICS_ADDRESS or localhost)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Build the engine, run it until done or stopped, print the summary."""
    scenario = load_scenario(args.scenario)
    config = load_engine_config(args.engine, scenario)
    if args.strategy:
        from dataclasses import replace  # noqa: PLC0415 - only for this override

        config = replace(config, strategy=args.strategy)
    if args.checkpoint_every < 1 or args.checkpoint_interval <= 0:
        raise AuditError("--checkpoint-every must be ≥ 1 and --checkpoint-interval > 0")
    override, token = _override(args)  # checked before anything is opened
    # Each resource is released on the way out, in reverse order, whatever another's release
    # raises: a failing engine.close must not leave the key's backend session or the
    # metrics port open (ExitStack runs every callback and re-raises what failed).
    with contextlib.ExitStack() as resources:
        signer = None
        if args.audit_log is not None and not args.unsigned_audit:
            signer = load_signer(args.audit_key or key_id_from_env())  # before anything starts
            resources.callback(signer.close)
        metrics = Metrics()
        if args.metrics_port is not None:
            base = MetricsEndpoint.from_env()
            endpoint = MetricsEndpoint(args.metrics_address or base.address, args.metrics_port)
            server = serve_metrics(metrics, endpoint)
            resources.callback(server.close)
            print(f"metrics on {server.url}", file=sys.stderr)
        stop = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            print(f"bot4: {signal.Signals(signum).name}: stopping after this step", file=sys.stderr)
            stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        for s, handler in previous.items():
            resources.callback(signal.signal, s, handler)
        engine = Engine(
            scenario,
            config,
            venue=ExchangeSimulator(scenario, seed=args.seed),
            seed=args.seed,
            audit_path=args.audit_log,
            audit_fsync=FsyncPolicy(args.fsync),
            audit_signer=signer,
            checkpoint_every=args.checkpoint_every,
            checkpoint_interval_ns=max(1, round(args.checkpoint_interval * _NS_PER_S)),
            metrics=metrics,
            override=override,
            override_token=token,
        )
        resources.callback(engine.close)  # first out: its last checkpoint needs the signer
        _refuse_a_replay(engine, override, args.audit_log)
        duration = args.duration if args.duration is not None else scenario.duration_s
        summary = engine.run(round(duration * _NS_PER_S), stop)
    if args.json:
        print(json.dumps(summary.to_json(), indent=2, sort_keys=True))
    else:
        print(summary.render())
    _check_override_used(engine)
    return 0


def _override(args: argparse.Namespace) -> tuple[OverrideVerifier | None, str | None]:
    """The verifier and token of ``--override-token``: genuine and well-formed, or refused."""
    if args.override_token is None:
        return None, None
    if args.audit_log is None:
        raise OverrideRejectedError(
            "--override-token needs --audit-log: the token's single use is recorded there"
        )
    token = read_token(args.override_token)
    verifier = OverrideVerifier(load_override_key(args.override_key or override_key_id()))
    verifier.inspect(token)
    return verifier, token


def _refuse_a_replay(engine: Engine, override: OverrideVerifier | None, log: Path) -> None:
    """With the log open (and locked), a token it records as used stops the run unstarted."""
    claims = engine.override_claims
    if override is None or claims is None or not override.is_used(claims.nonce):
        return
    engine.refuse(
        "override token already used (replay rejected)",
        {"order_id": claims.order_id, "nonce": claims.nonce},
    )
    raise OverrideRejectedError(
        f"override token for order {claims.order_id} was already used in {log} "
        "(replay rejected); nothing was run"
    )


def _check_override_used(engine: Engine) -> None:
    """After the run: the token let its order through, or say why not (exit 3)."""
    if engine.override_claims is None:
        return
    order = engine.override_claims.order_id
    decision = engine.override_decision
    if decision is None:
        raise OverrideRejectedError(
            f"override token for order {order} was not used: that order never reached the gate"
        )
    if not decision.allowed:
        raise OverrideRejectedError(f"override token for order {order} refused: {decision.detail}")
