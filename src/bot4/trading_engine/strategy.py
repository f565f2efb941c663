"""Strategies: the plugin interface the engine calls, and the built-in mean reversion.

A strategy sees the market only through what the engine tells it (quotes, its own fills)
and answers with *intents* — instrument, side, size, limit price. It never talks to the
venue: every intent goes through the gate, risk and the breaker-guarded client. Users
bring their own with ``--strategy package.module:ClassName`` (a class taking the
engine's :class:`StrategyContext`).
"""

from __future__ import annotations

import importlib
import math
from collections import deque
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot4.trading_engine.errors import TradingEngineError


@dataclass(frozen=True)
class Quote:
    """Top of book for one instrument, as delivered (prices as floats for the strategy)."""

    instrument: str
    bid: float
    ask: float
    ts_ns: int

    @property
    def mid(self) -> float:
        """Mid price."""
        return (self.bid + self.ask) / 2.0


@dataclass(frozen=True, init=False)
class Intent:
    """What a strategy wants: buy (+1) or sell (-1) ``quantity`` at a limit ``price``."""

    instrument: str
    side: int
    quantity: float
    price: float

    def __init__(self, instrument: str, side: int, quantity: float, price: float) -> None:
        # One per signal: fill the dict directly rather than object.__setattr__ per field
        # as the generated frozen __init__ does (a test holds it to the declared fields).
        d = self.__dict__
        d["instrument"] = instrument
        d["side"] = side
        d["quantity"] = quantity
        d["price"] = price


@dataclass(frozen=True)
class StrategyContext:
    """What a strategy may know about its environment at construction."""

    instruments: tuple[str, ...]
    lot_sizes: dict[str, float]
    seed: int
    params: dict[str, float]


@runtime_checkable
class Strategy(Protocol):
    """The plugin interface."""

    def on_quote(self, quote: Quote, position: float) -> list[Intent]:
        """React to a new top of book, knowing the current position; return intents."""
        ...  # pragma: no cover - protocol


class MeanReversion:
    """Fade moves away from a rolling mean of the mid price.

    Enter against the move when the mid is ``entry_z`` standard deviations from its mean
    over ``lookback`` quotes; flatten when it is back within ``exit_z``. Orders are
    marketable limits at the touch. Good enough to exercise every path of the engine;
    not advice.
    """

    def __init__(self, context: StrategyContext) -> None:
        p = context.params
        self.lookback = int(p.get("lookback", 50))
        self.entry_z = float(p.get("entry_z", 2.0))
        self.exit_z = float(p.get("exit_z", 0.5))
        self.quantity = float(p.get("quantity", 1.0))
        self.max_position = float(p.get("max_position", 3.0))
        self.every = max(1, int(p.get("every", 5)))
        if self.lookback < 3 or self.entry_z <= self.exit_z or self.quantity <= 0:
            raise TradingEngineError(
                "mean_reversion: need lookback ≥ 3, entry_z > exit_z and quantity > 0"
            )
        self._mids: dict[str, deque[float]] = {
            name: deque(maxlen=self.lookback) for name in context.instruments
        }
        self._count = 0

    def on_quote(self, quote: Quote, position: float) -> list[Intent]:
        """Enter, add, or flatten based on the z-score of the mid."""
        window = self._mids.setdefault(quote.instrument, deque(maxlen=self.lookback))
        window.append(quote.mid)
        self._count += 1
        if len(window) < self.lookback or self._count % self.every:
            return []
        mean = sum(window) / len(window)
        var = sum((x - mean) ** 2 for x in window) / (len(window) - 1)
        sd = math.sqrt(var)
        if sd == 0.0:
            return []
        z = (quote.mid - mean) / sd
        if position and abs(z) < self.exit_z:
            side = -1 if position > 0 else 1
            return [self._intent(quote, side, abs(position))]
        if z <= -self.entry_z and position + self.quantity <= self.max_position:
            return [self._intent(quote, 1, self.quantity)]
        if z >= self.entry_z and position - self.quantity >= -self.max_position:
            return [self._intent(quote, -1, self.quantity)]
        return []

    @staticmethod
    def _intent(quote: Quote, side: int, quantity: float) -> Intent:
        return Intent(quote.instrument, side, quantity, quote.ask if side > 0 else quote.bid)


BUILTIN: dict[str, type] = {"mean_reversion": MeanReversion}


def load_strategy(spec: str, context: StrategyContext) -> Strategy:
    """A built-in name, or ``module:Class`` of a user plugin, instantiated with ``context``."""
    if spec in BUILTIN:
        instance: object = BUILTIN[spec](context)
    else:
        module_name, sep, class_name = spec.partition(":")
        if not sep or not module_name or not class_name:
            raise TradingEngineError(
                f"strategy {spec!r}: use a built-in ({', '.join(BUILTIN)}) or module:Class"
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise TradingEngineError(
                f"strategy {spec!r}: cannot import {module_name} ({exc})"
            ) from None
        cls = getattr(module, class_name, None)
        if not isinstance(cls, type):
            raise TradingEngineError(f"strategy {spec!r}: {module_name} has no class {class_name}")
        instance = cls(context)
    if not isinstance(instance, Strategy):
        raise TradingEngineError(f"strategy {spec!r} does not implement on_quote(quote, position)")
    return instance
