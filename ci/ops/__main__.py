"""``python -m ci.ops``: the ops commands."""

from __future__ import annotations

from ci.ops.cli import main

raise SystemExit(main())
