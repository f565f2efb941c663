"""A price-time priority limit order book in integer ticks and lots.

Why this shape: the book is the simulator's hot path (the goal is hundreds of thousands of
orders a second on one core), so each price level is a ``deque`` of small mutable lists in a
``dict`` keyed by price, and the best price on each side comes from a heap with lazy
deletion. Each side also keeps the live quantity per price, updated as orders rest, fill and
leave, so the venue's top-of-book quote is two lookups rather than a walk of the level.
Cancels mark an entry dead instead of searching the queue; dead entries are dropped when
they reach the front of their level. Everything here is integers: the
exchange layer converts decimal prices and sizes and validates tick and lot sizes first.

An entry is ``[order_id, remaining, side, price, account, participant]``; ``side`` is +1
(buy) or -1 (sell); ``account`` is ``None`` for synthetic market flow, which never takes
part in self-trade prevention.
"""

from __future__ import annotations

import random
from collections import deque
from enum import StrEnum
from heapq import heapify, heappop, heappush
from typing import Any, NamedTuple

from bot4.simulator.orders import TimeInForce
from bot4.simulator.rng import stream

# A fill as the book reports it: (maker_order_id, price_ticks, quantity_lots, maker_remaining).
Fill = tuple[int, int, int, int]
Entry = list[Any]

_GTC = int(TimeInForce.GTC)
_MARKET = int(TimeInForce.MARKET)


class SelfTradePrevention(StrEnum):
    """What happens when an order would trade against a resting order of the same account."""

    OFF = "off"
    CANCEL_RESTING = "cancel_resting"
    CANCEL_INCOMING = "cancel_incoming"


class MatchResult(NamedTuple):
    """What one submission did: fills in match order, what is left and where it went.

    ``pulled`` lists resting orders the book removed on the way (self-trade prevention),
    ``stp_cancelled`` says the incoming order itself was cancelled by self-trade
    prevention, and ``hidden`` says a touch-fill draw sent the rest of the aggressor to
    hidden liquidity (see ``OrderBook.touch_probability``).
    """

    fills: list[Fill]
    remaining: int
    rested: bool
    pulled: tuple[int, ...] = ()
    stp_cancelled: bool = False
    hidden: bool = False


class OrderBook:
    """One instrument's book: bids and asks, price-time priority, partial fills.

    ``touch_probability`` < 1 models the queue ahead of a participant that the book cannot
    see: when a synthetic (non-participant) aggressor reaches a participant's resting order
    exactly at its own limit price (a touch, not a trade-through), the participant is filled
    only with that probability; otherwise the aggressor's remainder trades with hidden
    liquidity and matching stops.
    """

    __slots__ = (
        "_ask_heap",
        "_ask_qty",
        "_asks",
        "_bid_heap",
        "_bid_qty",
        "_bids",
        "_orders",
        "_rng",
        "_stp",
        "touch_probability",
    )

    def __init__(
        self,
        *,
        self_trade_prevention: SelfTradePrevention = SelfTradePrevention.OFF,
        touch_probability: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        self._bids: dict[int, deque[Entry]] = {}
        self._asks: dict[int, deque[Entry]] = {}
        self._bid_heap: list[int] = []  # negated prices: heapq is a min-heap
        self._ask_heap: list[int] = []
        self._bid_qty: dict[int, int] = {}  # live quantity per price level
        self._ask_qty: dict[int, int] = {}
        self._orders: dict[int, Entry] = {}
        self._stp = self_trade_prevention
        self.touch_probability = touch_probability
        self._rng = rng if rng is not None else stream(0, "book")

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        """Number of live resting orders."""
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def remaining(self, order_id: int) -> int:
        """Live quantity of a resting order, 0 if it is not in the book."""
        entry = self._orders.get(order_id)
        return 0 if entry is None else int(entry[1])

    def best_bid(self) -> int | None:
        """Highest live bid price in ticks, or ``None``."""
        heap, levels = self._bid_heap, self._bids
        while heap:
            price = -heap[0]
            if self._clean_level(levels, self._bid_qty, price):
                return price
            heappop(heap)
        return None

    def best_ask(self) -> int | None:
        """Lowest live ask price in ticks, or ``None``."""
        heap, levels = self._ask_heap, self._asks
        while heap:
            price = heap[0]
            if self._clean_level(levels, self._ask_qty, price):
                return price
            heappop(heap)
        return None

    def top(self) -> tuple[int | None, int, int | None, int]:
        """``(best bid, its live quantity, best ask, its live quantity)`` in one call.

        The venue asks after every event, and usually both fronts are clean: that case is
        answered from the heaps and levels directly, the rest by the cleaning lookups.
        """
        bid_heap, ask_heap = self._bid_heap, self._ask_heap
        if bid_heap and ask_heap:
            top_bid, top_ask = -bid_heap[0], ask_heap[0]
            bid_level, ask_level = self._bids.get(top_bid), self._asks.get(top_ask)
            if bid_level and ask_level and bid_level[0][1] and ask_level[0][1]:
                return top_bid, self._bid_qty[top_bid], top_ask, self._ask_qty[top_ask]
        bid, ask = self.best_bid(), self.best_ask()
        return (
            bid,
            0 if bid is None else self._bid_qty.get(bid, 0),
            ask,
            0 if ask is None else self._ask_qty.get(ask, 0),
        )

    def depth(self, side: int, levels: int = 5) -> list[tuple[int, int]]:
        """Best ``levels`` price levels of one side as ``(price, live quantity)``, best first."""
        book = self._bids if side > 0 else self._asks
        prices = sorted(book, reverse=side > 0)
        out: list[tuple[int, int]] = []
        for price in prices:
            qty = sum(int(e[1]) for e in book[price])
            if qty:
                out.append((price, qty))
                if len(out) == levels:
                    break
        return out

    def level_quantity(self, side: int, price: int | None) -> int:
        """Live quantity resting at ``price`` on one side (0 for ``None`` or an empty level)."""
        if price is None:
            return 0
        return (self._bid_qty if side > 0 else self._ask_qty).get(price, 0)

    def is_crossed(self) -> bool:
        """True if the best bid is at or above the best ask (never after matching)."""
        bid, ask = self.best_bid(), self.best_ask()
        return bid is not None and ask is not None and bid >= ask

    @staticmethod
    def _clean_level(levels: dict[int, deque[Entry]], qty: dict[int, int], price: int) -> bool:
        """Drop dead entries at the front of a level; delete the level if nothing is live."""
        level = levels.get(price)
        if level is None:
            return False
        while level and level[0][1] == 0:
            level.popleft()
        if level:
            return True
        del levels[price]
        qty.pop(price, None)
        return False

    # ---------------------------------------------------------------- mutations
    def submit(  # noqa: PLR0912, PLR0915 - one flat loop is the hot path; helpers cost calls
        self,
        order_id: int,
        side: int,
        price: int,
        quantity: int,
        tif: int = _GTC,
        account: str | None = None,
        participant: bool = False,
    ) -> MatchResult:
        """Match an incoming order, then rest what is left if it is a GTC limit.

        ``price`` is ignored for MARKET orders. The caller guarantees a fresh ``order_id``
        and a positive quantity (the exchange validates requests before they get here).
        """
        buy = side > 0
        if buy:
            levels, heap, sign, level_qty = self._asks, self._ask_heap, 1, self._ask_qty
        else:
            levels, heap, sign, level_qty = self._bids, self._bid_heap, -1, self._bid_qty
        market = tif == _MARKET
        limit = price * sign  # compare in heap space: crossable while heap price <= limit
        stp = self._stp is not SelfTradePrevention.OFF and account is not None
        touch = self.touch_probability < 1.0 and not participant and not market
        orders = self._orders
        fills: list[Fill] = []
        pulled: list[int] = []
        rem = quantity
        stp_cancelled = hidden = False
        while rem and heap:
            key = heap[0]
            if not market and key > limit:
                break
            level = levels.get(key * sign)
            if level is None:
                heappop(heap)
                continue
            lvl_price = key * sign
            while level:
                entry = level[0]
                erem: int = entry[1]
                if erem == 0:
                    level.popleft()
                    continue
                if stp and entry[4] == account:
                    if self._stp is SelfTradePrevention.CANCEL_INCOMING:
                        stp_cancelled = True
                        break
                    entry[1] = 0
                    level_qty[lvl_price] -= erem
                    level.popleft()
                    del orders[entry[0]]
                    pulled.append(entry[0])
                    continue
                if (
                    touch
                    and entry[5]
                    and key == limit
                    and self._rng.random() >= self.touch_probability
                ):
                    hidden = True
                    break
                if erem <= rem:
                    rem -= erem
                    entry[1] = 0
                    level_qty[lvl_price] -= erem
                    level.popleft()
                    del orders[entry[0]]
                    fills.append((entry[0], lvl_price, erem, 0))
                    if not rem:
                        break
                else:
                    erem -= rem
                    entry[1] = erem
                    level_qty[lvl_price] -= rem
                    fills.append((entry[0], lvl_price, rem, erem))
                    rem = 0
                    break
            if not level:
                del levels[lvl_price]
                level_qty.pop(lvl_price, None)
                heappop(heap)
            if stp_cancelled or hidden:
                break
        if stp_cancelled or hidden:
            return MatchResult(fills, rem, False, tuple(pulled), stp_cancelled, hidden)
        rested = False
        if rem and tif == _GTC:
            self._rest([order_id, rem, side, price, account, participant], buy, price)
            rested = True
        if pulled:
            return MatchResult(fills, rem, rested, tuple(pulled))
        return MatchResult(fills, rem, rested)

    def _rest(self, entry: Entry, buy: bool, price: int) -> None:
        if buy:
            levels, heap, key, qty = self._bids, self._bid_heap, -price, self._bid_qty
        else:
            levels, heap, key, qty = self._asks, self._ask_heap, price, self._ask_qty
        level = levels.get(price)
        if level is None:
            levels[price] = deque((entry,))
            heappush(heap, key)
            qty[price] = entry[1]
        else:
            level.append(entry)
            qty[price] = qty.get(price, 0) + entry[1]
        self._orders[entry[0]] = entry

    def cancel(self, order_id: int) -> int:
        """Remove a resting order; returns the quantity it still had (0 if not in the book)."""
        entry = self._orders.pop(order_id, None)
        if entry is None:
            return 0
        remaining: int = entry[1]
        entry[1] = 0
        price: int = entry[3]
        if entry[2] > 0:
            levels, heap, qty = self._bids, self._bid_heap, self._bid_qty
        else:
            levels, heap, qty = self._asks, self._ask_heap, self._ask_qty
        qty[price] -= remaining
        level = levels[price]
        if level[0] is entry:
            self._clean_level(levels, qty, price)
            if len(heap) > 2 * len(levels) + 64:
                keys = [-p for p in levels] if heap is self._bid_heap else list(levels)
                heapify(keys)
                heap[:] = keys
        return remaining

    def reduce(self, order_id: int, quantity: int) -> bool:
        """Lower a resting order's quantity in place, keeping its queue position.

        Returns False (and changes nothing) if the order is not resting or ``quantity`` is
        not strictly between 0 and its remaining quantity.
        """
        entry = self._orders.get(order_id)
        if entry is None or not 0 < quantity < entry[1]:
            return False
        (self._bid_qty if entry[2] > 0 else self._ask_qty)[entry[3]] -= entry[1] - quantity
        entry[1] = quantity
        return True

    def side_of(self, order_id: int) -> int:
        """+1 or -1 for a resting order, 0 if it is not in the book."""
        entry = self._orders.get(order_id)
        return 0 if entry is None else int(entry[2])

    def price_of(self, order_id: int) -> int | None:
        """Limit price in ticks of a resting order, ``None`` if it is not in the book."""
        entry = self._orders.get(order_id)
        return None if entry is None else int(entry[3])

    def resting_ids(self) -> list[int]:
        """Ids of all live resting orders (for invariant checks and end-of-run reports)."""
        return list(self._orders)

    def total_quantity(self) -> int:
        """Sum of live resting quantity on both sides."""
        return sum(int(e[1]) for e in self._orders.values())
