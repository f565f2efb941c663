"""bot4.risk (see its issue)."""
