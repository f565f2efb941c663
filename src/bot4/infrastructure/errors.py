"""The infrastructure package's error type and the few refinements callers branch on.

Every error here is an ``InfrastructureError`` (a ``Bot4Error``), so the CLI prints
one line; the subclasses exist only where a caller must react differently (a call
refused by an open breaker, an item handed back by a full queue).
"""

from __future__ import annotations

from typing import Any

from bot4.errors import Bot4Error


class InfrastructureError(Bot4Error):
    """A breaker, queue, pool, metrics or secrets problem the operator can act on."""


class ConfigError(InfrastructureError):
    """A setting (constructor argument or environment variable) is invalid."""


class CircuitOpenError(InfrastructureError):
    """The breaker refused the call: the component is failing or the fuse is tripped."""

    def __init__(self, component: str, reason: str) -> None:
        super().__init__(f"circuit breaker {component!r} refused the call: {reason}")
        self.component = component
        self.reason = reason


class QueueRejectedError(InfrastructureError):
    """A queue did not accept an item; the item is handed back in ``item``.

    ``reason`` is a short code (``full``, ``timeout``, ``priority``) used as a metric
    label. The message never contains the item (it may hold order details or secrets).
    """

    def __init__(self, queue: str, reason: str, detail: str, item: Any) -> None:  # noqa: ANN401
        super().__init__(f"queue {queue!r} rejected an item ({reason}): {detail}")
        self.queue = queue
        self.reason = reason
        self.item = item

    def __repr__(self) -> str:
        return f"QueueRejectedError(queue={self.queue!r}, reason={self.reason!r})"


class QueueEmptyError(InfrastructureError):
    """``get`` timed out on an empty queue."""
