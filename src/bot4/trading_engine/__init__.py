"""bot4.trading_engine: the engine loop (``engine``) that takes a strategy's signals through
the emotion-free gate (``emotion_gate``), risk, rate limits and breakers to the simulated
venue, with a tamper-evident audit log (``audit_log``, ``merkle``, ``checkpoint``) and
signed overrides (``override``). See docs/trading_engine.md."""
