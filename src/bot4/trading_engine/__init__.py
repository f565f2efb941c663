"""bot4.trading_engine (see its issue)."""
