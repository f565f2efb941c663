"""The simulator's one exception type."""

from __future__ import annotations

from bot4.errors import Bot4Error


class SimulatorError(Bot4Error):
    """Bad scenario, bad input file or misuse of the simulator API; the message says how to fix it.

    Orders that a real venue would refuse never raise: they come back as rejects with a
    :class:`~bot4.simulator.orders.RejectReason`, exactly as the venue would answer.
    """
