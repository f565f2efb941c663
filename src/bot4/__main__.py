"""``python -m bot4`` is the same as the ``bot4`` console script."""

from __future__ import annotations

from bot4.cli import main

raise SystemExit(main())
