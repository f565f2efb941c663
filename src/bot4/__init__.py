"""bot4: a deterministic exchange simulator, vectorized pre-trade risk and an emotion-free gate.

Importing ``bot4`` enforces the portability contract first: the engine's integer
and array arithmetic assumes a 64-bit interpreter, so a 32-bit one is refused
here rather than producing wrong results later.
"""

from __future__ import annotations

from bot4.infrastructure.platform import require_64bit

require_64bit()

__version__ = "0.1.0"
__all__ = ["__version__"]
