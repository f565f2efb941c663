"""Order book: price-time priority, partial fills, cancels, self-trade prevention, invariants."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bot4.simulator.book import OrderBook, SelfTradePrevention
from bot4.simulator.orders import TimeInForce

GTC, IOC, MKT = int(TimeInForce.GTC), int(TimeInForce.IOC), int(TimeInForce.MARKET)


def test_price_time_priority_and_partial_fill() -> None:
    book = OrderBook()
    assert book.submit(1, -1, 101, 5).rested
    assert book.submit(2, -1, 100, 3).rested
    assert book.submit(3, -1, 100, 4).rested
    res = book.submit(10, 1, 101, 9)
    # best price first, then time priority within the level, then the next level
    assert res.fills == [(2, 100, 3, 0), (3, 100, 4, 0), (1, 101, 2, 3)]
    assert res.remaining == 0
    assert not res.rested
    assert book.remaining(1) == 3
    assert book.best_ask() == 101
    assert book.best_bid() is None
    assert len(book) == 1


def test_limit_rests_remainder_and_ioc_does_not() -> None:
    book = OrderBook()
    book.submit(1, -1, 100, 2)
    res = book.submit(2, 1, 100, 5)
    assert res.fills == [(1, 100, 2, 0)]
    assert res.rested and res.remaining == 3
    assert book.best_bid() == 100
    res = book.submit(3, -1, 99, 10, IOC)
    assert res.fills == [(2, 100, 3, 0)]
    assert res.remaining == 7 and not res.rested
    assert len(book) == 0


def test_market_order_ignores_price_and_walks_levels() -> None:
    book = OrderBook()
    book.submit(1, 1, 90, 1)
    book.submit(2, 1, 80, 1)
    res = book.submit(3, -1, 10_000, 5, MKT)
    assert [f[1] for f in res.fills] == [90, 80]
    assert res.remaining == 3 and not res.rested


def test_non_crossing_limit_rests_without_fills() -> None:
    book = OrderBook()
    book.submit(1, -1, 105, 1)
    res = book.submit(2, 1, 104, 1)
    assert res.fills == [] and res.rested
    assert (book.best_bid(), book.best_ask()) == (104, 105)
    assert not book.is_crossed()


def test_cancel_reduce_and_queries() -> None:
    book = OrderBook()
    book.submit(1, 1, 100, 5)
    book.submit(2, 1, 100, 6)
    book.submit(3, 1, 99, 7)
    assert 2 in book and 9 not in book
    assert book.side_of(2) == 1 and book.side_of(9) == 0
    assert book.price_of(3) == 99 and book.price_of(9) is None
    assert book.level_quantity(1, 100) == 11
    assert book.level_quantity(1, None) == 0
    assert book.level_quantity(-1, 100) == 0
    assert book.depth(1) == [(100, 11), (99, 7)]
    assert book.depth(1, levels=1) == [(100, 11)]
    assert book.reduce(2, 4)
    assert not book.reduce(2, 4)  # not strictly lower
    assert not book.reduce(2, 0)
    assert not book.reduce(99, 1)
    assert book.cancel(2) == 4  # dead in the middle of the queue
    assert book.cancel(2) == 0
    assert book.depth(1) == [(100, 5), (99, 7)]
    assert book.cancel(1) == 5  # front: the level empties and goes
    assert book.best_bid() == 99
    assert book.resting_ids() == [3]
    assert book.total_quantity() == 7


def test_dead_entries_are_skipped_when_matching() -> None:
    book = OrderBook()
    for oid in (1, 2, 3):
        book.submit(oid, -1, 100, 1)
    book.cancel(2)
    res = book.submit(9, 1, 100, 3)
    assert [f[0] for f in res.fills] == [1, 3]
    assert res.remaining == 1
    assert book.best_bid() == 100
    assert book.depth(-1) == []
    # a level whose only entries are dead still reports no depth
    book.submit(20, -1, 110, 1)
    book.submit(21, -1, 110, 1)
    book.cancel(21)
    book.submit(22, 1, 110, 1)
    assert book.depth(-1) == []
    assert book.level_quantity(-1, 110) == 0


def test_heap_is_compacted_after_many_deep_cancels() -> None:
    book = OrderBook()
    for i in range(200):
        book.submit(i + 1, -1, 1000 + i, 1)
        book.submit(10_000 + i, 1, 10 + i, 1)
    for i in range(1, 200):
        book.cancel(i + 1)
        book.cancel(10_000 + i)
    assert book.best_ask() == 1000
    assert book.best_bid() == 10
    assert len(book._ask_heap) < 100 and len(book._bid_heap) < 100


def test_stp_cancel_resting_pulls_own_orders() -> None:
    book = OrderBook(self_trade_prevention=SelfTradePrevention.CANCEL_RESTING)
    book.submit(1, -1, 100, 2, account="a")
    book.submit(2, -1, 100, 2, account="b")
    res = book.submit(3, 1, 100, 3, account="a")
    assert res.pulled == (1,)
    assert res.fills == [(2, 100, 2, 0)]
    assert res.rested and res.remaining == 1


def test_stp_cancel_incoming_stops_the_aggressor() -> None:
    book = OrderBook(self_trade_prevention=SelfTradePrevention.CANCEL_INCOMING)
    book.submit(1, -1, 99, 1, account="b")
    book.submit(2, -1, 100, 2, account="a")
    res = book.submit(3, 1, 100, 5, account="a")
    assert res.fills == [(1, 99, 1, 0)]
    assert res.stp_cancelled and not res.rested and res.remaining == 4
    assert book.remaining(2) == 2


def test_stp_off_lets_an_account_trade_with_itself() -> None:
    book = OrderBook()
    book.submit(1, -1, 100, 1, account="a")
    assert book.submit(2, 1, 100, 1, account="a").fills == [(1, 100, 1, 0)]


def test_touch_probability_sends_flow_to_hidden_liquidity() -> None:
    book = OrderBook(touch_probability=0.0)
    book.submit(1, -1, 100, 5, account="p", participant=True)
    res = book.submit(2, 1, 100, 3)  # synthetic flow exactly at the participant's price
    assert res.hidden and res.fills == [] and not res.rested
    assert book.remaining(1) == 5
    res = book.submit(3, 1, 101, 3)  # a trade-through always fills
    assert res.fills == [(1, 100, 3, 2)]
    res = book.submit(4, 1, 100, 1, participant=True)  # participants are not subject to it
    assert res.fills == [(1, 100, 1, 1)]


def test_touch_probability_draw_is_seeded() -> None:
    def run(seed: int) -> list[bool]:
        book = OrderBook(touch_probability=0.5, rng=random.Random(seed))
        out = []
        for i in range(50):
            book.submit(1000 + i, -1, 100, 1, participant=True)
            out.append(bool(book.submit(i, 1, 100, 1).fills))
        return out

    assert run(3) == run(3)
    assert any(run(3)) and not all(run(3))


orders_st = st.lists(
    st.tuples(
        st.sampled_from([1, -1]),
        st.integers(95, 105),
        st.integers(1, 20),
        st.sampled_from([GTC, GTC, IOC, MKT]),
        st.sampled_from(["a", "b", None]),
        st.booleans(),  # cancel a random resting order afterwards
    ),
    max_size=120,
)


@settings(max_examples=60)
@given(orders_st, st.sampled_from(list(SelfTradePrevention)))
def test_book_invariants(
    orders: list[tuple[int, int, int, int, str | None, bool]], stp: SelfTradePrevention
) -> None:
    book = OrderBook(self_trade_prevention=stp)
    rng = random.Random(0)
    original: dict[int, int] = {}
    filled: dict[int, int] = {}
    side_of: dict[int, int] = {}
    for oid, (side, price, qty, tif, account, cancel) in enumerate(orders, start=1):
        original[oid] = qty
        side_of[oid] = side
        before = book.total_quantity()
        res = book.submit(oid, side, price, qty, tif, account)
        taken = sum(f[2] for f in res.fills)
        # conservation: the aggressor's fills are exactly what left the makers
        pulled_qty = 0  # pulled orders are gone too; account for them via their records
        for maker, fprice, fqty, left in res.fills:
            assert side_of[maker] == -side
            assert fqty > 0
            filled[maker] = filled.get(maker, 0) + fqty
            assert filled[maker] + left == original[maker]
            assert tif == MKT or (fprice <= price if side > 0 else fprice >= price)
        for maker in res.pulled:
            pulled_qty += original[maker] - filled.get(maker, 0)
        filled[oid] = taken
        assert taken + res.remaining == qty
        assert filled[oid] <= original[oid]
        rested = res.remaining if res.rested else 0
        assert book.total_quantity() == before - taken - pulled_qty + rested
        assert not book.is_crossed()
        if cancel and len(book):
            victim = rng.choice(book.resting_ids())
            assert book.cancel(victim) > 0
        assert_level_quantities(book)
    for oid, qty in original.items():
        assert filled.get(oid, 0) <= qty


def test_level_quantity_follows_reduce_cancel_and_fills() -> None:
    book = OrderBook()
    book.submit(1, 1, 100, 5)
    book.submit(2, 1, 100, 7)
    book.submit(3, -1, 102, 4)
    assert book.top() == (100, 12, 102, 4)
    assert book.reduce(2, 3)
    assert book.top() == (100, 8, 102, 4)
    book.submit(4, -1, 100, 6)  # fills 5 of #1 and 1 of #2
    assert book.top() == (100, 2, 102, 4)
    book.cancel(2)
    assert book.top() == (None, 0, 102, 4)
    assert_level_quantities(book)


def assert_level_quantities(book: OrderBook) -> None:
    """The incrementally kept live quantity per level equals a walk over the resting orders."""
    walked: dict[tuple[int, int], int] = {}
    for oid in book.resting_ids():
        key = (book.side_of(oid), book.price_of(oid) or 0)
        walked[key] = walked.get(key, 0) + book.remaining(oid)
    for side in (1, -1):
        for price in range(90, 111):
            assert book.level_quantity(side, price) == walked.get((side, price), 0)
    bid, bid_qty, ask, ask_qty = book.top()
    assert (bid, ask) == (book.best_bid(), book.best_ask())
    assert bid_qty == walked.get((1, bid or 0), 0) and ask_qty == walked.get((-1, ask or 0), 0)
