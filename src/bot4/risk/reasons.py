"""Reject reason codes, in the order the rules are evaluated.

The order matters: a rejected order reports the *first* rule it fails, so cheap,
unconditional rules (kill switch, unknown ids) come before limits that depend on
state. ``ACCEPTED`` is 0 so ``reasons == 0`` is the accept mask.
"""

from __future__ import annotations

from enum import IntEnum


class Reason(IntEnum):
    """Why an order was rejected (0 = accepted). Values are stable: they go into metrics."""

    ACCEPTED = 0
    KILL_SWITCH = 1
    UNKNOWN_ACCOUNT = 2
    UNKNOWN_INSTRUMENT = 3
    MAX_ORDER_QTY = 4
    MAX_NOTIONAL = 5
    PRICE_BAND = 6
    DUPLICATE = 7
    RATE_THROTTLE = 8
    MAX_OPEN_ORDERS = 9
    POSITION_LIMIT = 10
    GROSS_EXPOSURE = 11
    NET_EXPOSURE = 12


# Every rule, in evaluation order: row r of a result's mask matrix is RULES[r].
RULES: tuple[Reason, ...] = tuple(reason for reason in Reason if reason is not Reason.ACCEPTED)

# Rules whose outcome does not depend on other orders being accepted. An order that
# passes all of them is "included": it counts toward the projected state (open orders,
# position, exposure) seen by later orders in the same batch.
PREFILTER: tuple[Reason, ...] = RULES[: RULES.index(Reason.RATE_THROTTLE) + 1]
