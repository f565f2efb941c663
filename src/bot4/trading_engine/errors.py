"""Errors of the trading engine package; each message says what to do."""

from __future__ import annotations

from bot4.errors import Bot4Error


class TradingEngineError(Bot4Error):
    """Base of every trading-engine error."""


class AuditError(TradingEngineError):
    """The audit log cannot be written or read as asked."""


class GateConfigError(TradingEngineError):
    """The emotion-free gate's configuration or an override token is invalid."""
