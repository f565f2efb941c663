"""bot4's gate and supply-chain toolkit: coverage gate, toolchain lock, security scan, …

A typed package of its own (``ci/pyproject.toml``), installed into the nox sessions
that need it and never shipped inside the engine image.
"""

from __future__ import annotations

__all__: list[str] = []
