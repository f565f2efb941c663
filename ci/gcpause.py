"""The cyclic garbage collector paused over one call, for the supply-chain code's
allocation-heavy, cycle-free work (:func:`without_gc`). ``python -m ci`` does a different
thing, once: it freezes what its imports made (``ci/__main__.py``).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")


def without_gc(make: Callable[[], _T]) -> _T:
    """``make()`` with the cyclic garbage collector paused, its previous state restored
    (also on error). What a scan allocates — a tuple per word, the DFA's states, the
    results — and what building a library's tables allocates hold no reference cycle, yet
    every ~700 allocations would start a collection traversing them all (about a tenth of
    the CPU of ``python -m ci licenses``). A scan's words are freed before the collector is
    back, so it never sees them; long-lived tables are seen once, not at every collection."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return make()
    finally:
        if enabled:
            gc.enable()
