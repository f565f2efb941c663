"""The risk package's one error type."""

from __future__ import annotations

from bot4.errors import Bot4Error


class RiskError(Bot4Error):
    """Bad input to a risk computation (orders, limits, returns): fix the input and retry."""
