"""ExchangeSimulator end to end: requests, reports, latency, outages, fill and cancel models."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4.simulator import (
    ExchangeSimulator,
    Order,
    OrderStatus,
    OrderType,
    Report,
    ReportKind,
    Side,
    SimulatorError,
    parse_scenario,
)

MS = 1_000_000
S = 1_000_000_000
D = Decimal
QUIET = {"arrival_rate": 1e-9}  # effectively no synthetic flow during a test


def scenario(**extra: Any) -> Any:
    inst = {
        "symbol": "X",
        "tick_size": "0.5",
        "lot_size": "0.1",
        "initial_mid": "100",
        "maker_fee_bps": "-1",
        "taker_fee_bps": "5",
        "flow": extra.pop("flow", QUIET),
    }
    inst.update(extra.pop("instrument", {}))
    data = {
        "instrument": [inst],
        "latency": {
            "submit": {"value": 100},
            "cancel": {"value": 100},
            "ack": {"value": 50},
            "market_data": {"value": 10},
        },
        "matching": {"self_trade_prevention": "cancel_resting"},
        **extra,
    }
    return parse_scenario(data, source="test.toml")


def order(
    oid: int,
    side: Side,
    qty: str,
    price: str | None,
    kind: OrderType = OrderType.LIMIT,
    account: str = "a",
) -> Order:
    return Order(oid, "X", side, D(qty), None if price is None else D(price), kind, account)


def kinds(reports: list[Report], account: str | None = None) -> list[tuple[str, int, str | None]]:
    return [
        (r.kind.value, r.order_id, r.reason)
        for r in reports
        if r.account is not None and (account is None or r.account == account)
    ]


def test_resting_order_fills_against_another_participant() -> None:
    sim = ExchangeSimulator(scenario())
    sim.submit(order(1, Side.SELL, "0.3", "100.5", account="maker"), 0)
    out = sim.advance(1 * MS)
    ack = next(r for r in out if r.kind is ReportKind.ACK)
    assert (ack.sent_ns, ack.time_ns) == (100_000, 150_000)  # submit + ack latency
    quote = next(r for r in out if r.kind is ReportKind.QUOTE)
    assert quote.ask == D("100.5") and quote.ask_quantity == D("0.3") and quote.price is None
    assert sim.best_bid_ask("X") == (None, D("100.5"))
    sim.submit(order(2, Side.BUY, "0.5", "101", account="taker"), 2 * MS)
    out = sim.advance(3 * MS)
    fills = {r.account: r for r in out if r.kind is ReportKind.FILL}
    assert fills["maker"].liquidity == "maker" and fills["taker"].liquidity == "taker"
    assert fills["maker"].price == fills["taker"].price == D("100.5")
    assert fills["maker"].quantity == fills["taker"].quantity == D("0.3")
    assert fills["maker"].fee == D("100.5") * D("0.3") * -1 / 10_000
    assert fills["taker"].fee == D("100.5") * D("0.3") * 5 / 10_000
    assert fills["maker"].leaves == 0 and fills["taker"].leaves == D("0.2")
    assert fills["maker"].trade_id == fills["taker"].trade_id
    trade = next(r for r in out if r.kind is ReportKind.TRADE)
    assert trade.side is Side.BUY and trade.quantity == D("0.3")
    assert sim.status(1) is OrderStatus.FILLED
    assert sim.status(2) is OrderStatus.PARTIALLY_FILLED
    assert sim.filled(2) == D("0.3") and sim.filled(99) == 0
    assert sim.best_bid_ask("X") == (D("101"), None)
    assert sorted(sim.order_ids()) == [1, 2]
    assert sim.status(99) is None


@pytest.mark.parametrize(
    ("o", "reason"),
    [
        (order(1, Side.BUY, "0.3", "100.2"), "invalid_tick"),
        (order(1, Side.BUY, "0.35", "100"), "invalid_lot"),
        (order(1, Side.BUY, "0", "100"), "invalid_quantity"),
        (order(1, Side.BUY, "-1", "100"), "invalid_quantity"),
        (order(1, Side.BUY, "NaN", "100"), "invalid_quantity"),
        (order(1, Side.BUY, "1", None), "invalid_price"),
        (order(1, Side.BUY, "1", "-0.5"), "invalid_price"),
        (order(1, Side.BUY, "1", "100", OrderType.MARKET), "invalid_price"),
        (order(1, Side.BUY, "1", None, OrderType.MARKET), "no_liquidity"),
        (order(0, Side.BUY, "1", "100"), "invalid_order_id"),
        (Order(1, "Y", Side.BUY, D(1), D(100)), "unknown_instrument"),
    ],
)
def test_bad_orders_are_rejected_with_a_reason(o: Order, reason: str) -> None:
    sim = ExchangeSimulator(scenario())
    sim.submit(o)
    out = sim.advance(S)
    assert kinds(out) == [("reject", o.order_id, reason)]
    assert sim.status(o.order_id) is OrderStatus.REJECTED


def test_duplicate_id_is_rejected_and_original_untouched() -> None:
    sim = ExchangeSimulator(scenario())
    sim.submit(order(1, Side.BUY, "1", "99"))
    sim.submit(order(1, Side.BUY, "1", "98"))
    out = sim.advance(S)
    assert kinds(out) == [("ack", 1, None), ("reject", 1, "duplicate_order_id")]
    assert sim.status(1) is OrderStatus.OPEN


def test_ioc_remainder_and_market_sweep() -> None:
    sim = ExchangeSimulator(scenario())
    sim.submit(order(1, Side.SELL, "0.2", "100", account="m"))
    sim.submit(order(2, Side.SELL, "0.2", "101", account="m"))
    sim.advance(MS)
    sim.submit(order(3, Side.BUY, "0.5", "100", OrderType.IOC))
    out = sim.advance(2 * MS)
    assert kinds(out, "a") == [
        ("ack", 3, None),
        ("fill", 3, None),
        ("cancelled", 3, "ioc_remainder"),
    ]
    cancelled = next(r for r in out if r.kind is ReportKind.CANCELLED)
    assert cancelled.quantity == D("0.3")
    sim.submit(order(4, Side.BUY, "0.5", None, OrderType.MARKET))
    out = sim.advance(3 * MS)
    assert kinds(out, "a") == [
        ("ack", 4, None),
        ("fill", 4, None),
        ("cancelled", 4, "ioc_remainder"),
    ]


def test_cancel_paths() -> None:
    sim = ExchangeSimulator(scenario())
    sim.submit(order(1, Side.BUY, "1", "99"))
    sim.advance(MS)
    sim.cancel(1, "someone-else")
    sim.cancel(77, "a")
    sim.cancel(1, "a")
    sim.cancel(1, "a")
    out = sim.advance(2 * MS)
    assert kinds(out) == [
        ("cancel_reject", 1, "unknown_order"),
        ("cancel_reject", 77, "unknown_order"),
        ("cancelled", 1, "user"),
        ("cancel_reject", 1, "too_late_to_cancel"),
    ]
    assert sim.status(1) is OrderStatus.CANCELLED
    assert sim.best_bid_ask("X") == (None, None)


def test_cancel_replace_keeps_or_loses_priority() -> None:
    sim = ExchangeSimulator(scenario(matching={"self_trade_prevention": "off"}))
    sim.submit(order(1, Side.BUY, "1", "99"))
    sim.submit(order(2, Side.BUY, "1", "99", account="b"))
    sim.advance(MS)
    sim.cancel_replace(1, D("99"), D("0.5"), "a")  # smaller at the same price: keeps its place
    sim.advance(2 * MS)
    assert sim.book("X").remaining(1) == 5
    sim.submit(order(3, Side.SELL, "0.5", "99", account="c"), 3 * MS)
    out = sim.advance(4 * MS)
    assert [r.order_id for r in out if r.kind is ReportKind.FILL and r.liquidity == "maker"] == [1]
    # larger at the same price: back of the queue
    sim.submit(order(4, Side.BUY, "1", "98"), 5 * MS)
    sim.cancel_replace(2, D("99"), D("0.4"), "b", 5 * MS)  # same qty path: reduce
    sim.cancel_replace(2, D("99"), D("0.4"), "b", 5 * MS)  # unchanged: accepted as a no-op
    sim.cancel_replace(4, D("98"), D("2"), "a", 5 * MS)  # bigger: re-queued
    sim.cancel_replace(4, D("98.2"), D("2"), "a", 5 * MS)  # bad tick
    out = sim.advance(6 * MS)
    assert kinds(out) == [
        ("ack", 4, None),
        ("replaced", 2, None),
        ("replaced", 2, None),
        ("replaced", 4, None),
        ("replace_reject", 4, "invalid_tick"),
    ]
    assert sim.book("X").remaining(4) == 20
    # a replace to a marketable price trades at once
    sim.submit(order(5, Side.SELL, "1", "100", account="c"), 7 * MS)
    sim.cancel_replace(4, D("100"), D("2"), "a", 7 * MS)
    out = sim.advance(8 * MS)
    assert ("fill", 4, None) in kinds(out, "a")
    sim.cancel_replace(1, D("99"), D("1"), "a", 9 * MS)  # filled already
    assert kinds(sim.advance(10 * MS)) == [("replace_reject", 1, "too_late_to_cancel")]


def test_self_trade_prevention_cancels_the_resting_order() -> None:
    sim = ExchangeSimulator(scenario())
    sim.submit(order(1, Side.SELL, "1", "100"))
    sim.submit(order(2, Side.BUY, "1", "100"))
    out = sim.advance(MS)
    assert kinds(out) == [("ack", 1, None), ("ack", 2, None), ("cancelled", 1, "self_trade")]
    sim2 = ExchangeSimulator(scenario(matching={"self_trade_prevention": "cancel_incoming"}))
    sim2.submit(order(1, Side.SELL, "1", "100"))
    sim2.submit(order(2, Side.BUY, "1", "100"))
    assert kinds(sim2.advance(MS))[-1] == ("cancelled", 2, "self_trade")


def test_rate_limit_rejects_like_a_429() -> None:
    sim = ExchangeSimulator(
        scenario(
            rate_limits={"order": {"capacity": 2, "rate": 1}, "cancel": {"capacity": 1, "rate": 0}}
        )
    )
    for i in range(1, 5):
        sim.submit(order(i, Side.BUY, "1", "90"))
    sim.cancel(1, "a")
    sim.cancel(2, "a")
    out = sim.advance(MS)
    assert [r for _, _, r in kinds(out)] == [
        None,
        None,
        "rate_limited",
        "rate_limited",
        "user",
        "rate_limited",
    ]
    sim.submit(order(5, Side.BUY, "1", "90"), S)  # refilled one token after a second
    assert kinds(sim.advance(2 * S)) == [("ack", 5, None)]


def test_outages() -> None:
    sim = ExchangeSimulator(
        scenario(
            outages={
                "slow_factor": 10,
                "scheduled": [
                    {"start_s": 1, "duration_s": 1, "kind": "reject_all"},
                    {"start_s": 3, "duration_s": 1, "kind": "connection_drop"},
                    {"start_s": 5, "duration_s": 1, "kind": "slow_responses"},
                    {"start_s": 7, "duration_s": 1, "kind": "stale_market_data"},
                ],
            }
        )
    )
    assert sim.outage_ns() == 4 * S
    sim.submit(order(1, Side.BUY, "1", "90"), int(1.5 * S))
    out = sim.advance(2 * S)
    assert kinds(out) == [("reject", 1, "exchange_unavailable")]
    status = [(r.reason, r.status, r.time_ns) for r in out if r.kind is ReportKind.VENUE_STATUS]
    assert status == [("reject_all", "down", S), ("reject_all", "up", 2 * S)]
    sim.submit(order(2, Side.BUY, "1", "90"), int(3.5 * S))
    out = sim.advance(5 * S)
    lost = [r for r in out if r.kind is ReportKind.REJECT]
    assert [r.reason for r in lost] == ["connection_lost"]
    assert lost[0].time_ns == 4 * S + 50_000  # held until the connection is back
    sim.submit(order(3, Side.BUY, "1", "90"), int(5.5 * S))
    out = sim.advance(6 * S)
    ack = next(r for r in out if r.kind is ReportKind.ACK)
    assert ack.time_ns - int(5.5 * S) == 10 * (100_000 + 50_000)
    sim.submit(order(4, Side.SELL, "1", "95", account="b"), int(7.5 * S))
    out = sim.advance(8 * S)
    assert not [r for r in out if r.kind in (ReportKind.QUOTE, ReportKind.TRADE)]
    assert [r.kind for r in out if r.account == "b"] == [ReportKind.ACK]


def test_connection_drop_holds_fills_until_reconnect(tmp_path: Path) -> None:
    csv = tmp_path / "md.csv"
    csv.write_text(
        "timestamp_ns,type,side,price,quantity\n1500000000,trade,sell,99,1\n", encoding="utf-8"
    )
    drop = {"scheduled": [{"start_s": 1, "duration_s": 1, "kind": "connection_drop"}]}
    sim = ExchangeSimulator(scenario(outages=drop, instrument={"replay": str(csv)}))
    sim.submit(order(1, Side.BUY, "1", "99"))
    sim.advance(MS)
    out = sim.advance(3 * S)
    fill = next(r for r in out if r.kind is ReportKind.FILL)
    assert fill.sent_ns == int(1.5 * S)  # the trade happened during the drop...
    assert fill.time_ns == 2 * S + 50_000  # ...and is reported after reconnecting


def test_late_cancel_and_venue_pull() -> None:
    sim = ExchangeSimulator(scenario(cancel={"late_probability": 1.0}))
    sim.submit(order(1, Side.BUY, "1", "99"))
    sim.advance(MS)
    sim.cancel(1, "a")
    out = sim.advance(2 * MS)
    assert kinds(out) == [("fill", 1, None), ("cancel_reject", 1, "too_late_to_cancel")]
    assert sim.status(1) is OrderStatus.FILLED
    pulled = ExchangeSimulator(scenario(cancel={"pull_probability": 1.0, "pull_mean_s": 0.01}))
    pulled.submit(order(1, Side.BUY, "1", "99"))
    pulled.submit(order(2, Side.BUY, "1", "98"))
    pulled.advance(MS)
    pulled.cancel(2, "a")
    out = pulled.advance(S)
    assert ("cancelled", 1, "venue_pulled") in kinds(out)
    assert kinds(out).count(("cancelled", 2, "user")) == 1
    assert pulled.status(2) is OrderStatus.CANCELLED


def test_all_at_once_fills_with_slippage() -> None:
    sim = ExchangeSimulator(
        scenario(fill_model={"partial_fills": False, "prob_slippage": 1.0, "slippage_ticks": 2})
    )
    sim.submit(order(1, Side.SELL, "0.1", "100", account="m"))
    sim.advance(MS)
    sim.submit(order(2, Side.BUY, "5", None, OrderType.MARKET))
    sim.submit(order(3, Side.BUY, "5", "100.5", OrderType.IOC))
    out = sim.advance(2 * MS)
    fills = [r for r in out if r.kind is ReportKind.FILL]
    assert [(f.order_id, f.quantity, f.price, f.leaves) for f in fills] == [
        (2, D("5.0"), D("101.0"), D("0.0")),  # whole order, two ticks worse
        (3, D("5.0"), D("100.5"), D("0.0")),  # slippage clamped at the limit
    ]
    assert sim.book("X").remaining(1) == 1  # the book was not touched


def test_all_at_once_completes_a_resting_order_hit_by_flow(tmp_path: Path) -> None:
    csv = tmp_path / "md.csv"
    csv.write_text(
        "timestamp_ns,type,side,price,quantity\n5000000,trade,sell,99,0.1\n", encoding="utf-8"
    )
    sim = ExchangeSimulator(
        scenario(fill_model={"partial_fills": False}, instrument={"replay": str(csv)})
    )
    sim.submit(order(4, Side.BUY, "1", "99"))
    out = sim.advance(10 * MS)
    f4 = [r for r in out if r.kind is ReportKind.FILL]
    assert [r.quantity for r in f4] == [D("0.1"), D("0.9")]  # the print, then the rest
    assert len({r.time_ns for r in f4}) == 1  # at the same instant
    assert f4[-1].leaves == 0 and sim.status(4) is OrderStatus.FILLED
    assert 4 not in sim.book("X")


def test_synthetic_flow_trades_with_participants() -> None:
    flow = {
        "arrival_rate": 2000,
        "volatility": 0.001,
        "market_probability": 0.5,
        "cancel_probability": 0.1,
    }
    sim = ExchangeSimulator(scenario(flow=flow, fill_model={"prob_fill_at_touch": 0.5}))
    sim.advance(S // 2)
    bid, ask = sim.best_bid_ask("X")
    assert bid is not None and ask is not None and bid < ask
    sim.submit(order(1, Side.BUY, "2", str(bid)))
    sim.submit(order(2, Side.SELL, "2", str(ask)))
    out = sim.advance(5 * S)
    assert any(r.kind is ReportKind.FILL for r in out)
    assert sum(r.kind is ReportKind.QUOTE for r in out) > 100
    assert not sim.book("X").is_crossed()


def test_replay_drives_the_book(tmp_path: Path) -> None:
    csv = tmp_path / "md.csv"
    csv.write_text(
        "timestamp_ns,type,side,price,quantity\n0,bid,,99,1\n0,ask,,101,1\n"
        "2000000,trade,sell,99,1.5\n3000000,bid,,98.5,1\n",
        encoding="utf-8",
    )
    sim = ExchangeSimulator(scenario(instrument={"replay": str(csv)}))
    sim.submit(order(1, Side.BUY, "0.2", "99"), 0)
    out = sim.advance(10 * MS)
    fill = next(r for r in out if r.kind is ReportKind.FILL)
    assert fill.order_id == 1 and fill.liquidity == "maker" and fill.quantity == D("0.2")
    assert sim.best_bid_ask("X") == (D("98.5"), D("101"))
    empty = tmp_path / "empty.csv"
    empty.write_text("timestamp_ns,type,side,price,quantity\n", encoding="utf-8")
    assert ExchangeSimulator(scenario(instrument={"replay": str(empty)})).advance(S) == []


def test_api_misuse_raises_a_clear_error() -> None:
    sim = ExchangeSimulator(scenario())
    sim.advance(S)
    with pytest.raises(SimulatorError, match="already at"):
        sim.advance(0)
    with pytest.raises(SimulatorError, match="cannot send at"):
        sim.submit(order(1, Side.BUY, "1", "99"), 0)
    with pytest.raises(SimulatorError, match="unknown instrument 'Y'"):
        sim.book("Y")


def test_sink_sees_every_report_and_drain_flushes() -> None:
    seen: list[Report] = []
    sim = ExchangeSimulator(scenario(), sink=seen.append, seed=3)
    assert sim.seed == 3
    sim.submit(order(1, Side.BUY, "1", "99"))
    out = sim.drain()
    assert out == seen and [r.kind for r in out] == [
        ReportKind.QUOTE,
        ReportKind.ACK,
    ]  # market data is faster
    assert sim.drain() == []


ops = st.lists(
    st.tuples(
        st.sampled_from(["limit", "ioc", "market", "cancel", "replace"]),
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(196, 204),  # price in ticks of 0.5
        st.integers(1, 30),  # lots of 0.1
        st.integers(0, 3 * MS),  # gap
        st.sampled_from(["a", "b"]),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=25)
@given(ops, st.integers(0, 3), st.booleans())
def test_every_order_ends_in_exactly_one_terminal_state(
    script: list[tuple[str, Side, int, int, int, str]], seed: int, partial: bool
) -> None:
    flow = {"arrival_rate": 3000, "volatility": 0.001}
    sim = ExchangeSimulator(
        scenario(
            flow=flow,
            seed=seed,
            fill_model={"partial_fills": partial, "prob_fill_at_touch": 0.7},
            cancel={"late_probability": 0.2, "pull_probability": 0.2, "pull_mean_s": 0.002},
        )
    )
    reports: list[Report] = []
    sent: dict[int, Order] = {}
    t = 0
    for i, (op, side, ticks, lots, gap, account) in enumerate(script, start=1):
        t += gap
        reports += sim.advance(t)
        price = D(ticks) / 2
        qty = D(lots) / 10
        if op in ("cancel", "replace") and sent:
            target = sent[1 + (ticks * 7 + lots) % len(sent)]
            if op == "cancel":
                sim.cancel(target.order_id, target.account, t)
            else:
                sim.cancel_replace(target.order_id, price, qty, target.account, t)
            continue
        kind = {"limit": OrderType.LIMIT, "ioc": OrderType.IOC}.get(op, OrderType.MARKET)
        o = Order(
            len(sent) + 1,
            "X",
            side,
            qty,
            None if kind is OrderType.MARKET else price,
            kind,
            account,
        )
        sent[o.order_id] = o
        sim.submit(o, t)
        del i
    reports += sim.advance(t + 10 * MS)
    for o in sent.values():  # cancel whatever still rests, then let everything land
        if sim.status(o.order_id) in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED):
            sim.cancel(o.order_id, o.account)
    reports += sim.drain()
    assert not sim.book("X").is_crossed()
    check_terminal_states_and_conservation(sim, sent, reports)


def check_terminal_states_and_conservation(
    sim: ExchangeSimulator, sent: dict[int, Order], reports: list[Report]
) -> None:
    terminal: Counter[int] = Counter()
    filled: Counter[int] = Counter()
    for r in reports:
        if r.account is None:
            continue
        if r.kind is ReportKind.FILL:
            assert r.quantity is not None and r.quantity > 0
            filled[r.order_id] += int(r.quantity * 10)
            if r.leaves == 0:
                terminal[r.order_id] += 1
        elif (
            r.kind in (ReportKind.CANCELLED, ReportKind.REJECT) and r.reason != "duplicate_order_id"
        ):
            terminal[r.order_id] += 1
    for oid in sent:
        assert sim.status(oid) in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED)
        assert terminal[oid] == 1, (oid, sim.status(oid))
        assert filled[oid] == int(sim.filled(oid) * 10)
    # conservation: each trade id appears on two sides with equal size, unless hidden liquidity
    by_trade: dict[int, list[Report]] = {}
    for r in reports:
        if r.kind is ReportKind.FILL:
            by_trade.setdefault(r.trade_id, []).append(r)
    for legs in by_trade.values():
        assert len(legs) == 1 or (
            len(legs) == 2 and legs[0].quantity == legs[1].quantity and legs[0].side != legs[1].side
        )
