"""The outcome of checking a batch: which rule rejected which order."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import NDArray

from bot4.risk.errors import RiskError
from bot4.risk.reasons import RULES, Reason


@cache
def _weights(rows: int) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Rule weights (rows - r) and the lookup from a column maximum back to a reason."""
    weights = np.arange(rows, 0, -1, dtype=np.uint8)[:, None]
    lookup = np.concatenate([[0], np.arange(rows, 0, -1)]).astype(np.uint8)
    weights.setflags(write=False)
    lookup.setflags(write=False)
    return weights, lookup


@dataclass(frozen=True)
class CheckResult:
    """``failed[r, k]`` is true when rule ``RULES[r]`` rejects order ``k``.

    Every rule is evaluated for every order, so the matrix is complete; ``reasons``
    is the first failing rule per order (``Reason.ACCEPTED`` = 0 when none fails).
    """

    reasons: NDArray[np.uint8]
    failed: NDArray[np.bool_]

    @classmethod
    def from_failed(cls, failed: NDArray[np.bool_]) -> CheckResult:
        """Derive the first failing reason per order from the mask matrix."""
        # Rule r weighs rows - r, so the column maximum is the weight of the first failing
        # rule (0 when none fails); the lookup turns it back into a reason code.
        weights, lookup = _weights(failed.shape[0])
        first = (np.ascontiguousarray(failed).view(np.uint8) * weights).max(axis=0, initial=0)
        reasons: NDArray[np.uint8] = lookup.take(first)
        failed.setflags(write=False)
        reasons.setflags(write=False)
        return cls(reasons=reasons, failed=failed)

    @property
    def accepted(self) -> NDArray[np.bool_]:
        """Orders no rule rejected."""
        accepted: NDArray[np.bool_] = self.reasons == Reason.ACCEPTED
        return accepted

    def rejected_by(self, reason: Reason) -> NDArray[np.bool_]:
        """The mask of one rule (whether or not an earlier rule also rejected the order)."""
        if reason is Reason.ACCEPTED:
            raise RiskError("Reason.ACCEPTED is not a rule: pass a reject reason")
        mask: NDArray[np.bool_] = self.failed[RULES.index(reason)]
        return mask

    def counts(self) -> dict[Reason, int]:
        """Orders per first reason, every reason present (zeros included)."""
        binned = np.bincount(self.reasons, minlength=len(Reason))
        return {reason: int(binned[reason]) for reason in Reason}

    def __len__(self) -> int:
        return int(self.reasons.shape[0])
