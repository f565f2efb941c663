"""bot4.simulator (see its issue)."""
