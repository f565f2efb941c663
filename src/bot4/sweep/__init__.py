"""Sweeps: many deterministic engine runs over scenarios, seeds and parameters (docs/sweep.md)."""
