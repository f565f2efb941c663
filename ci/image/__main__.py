"""``python -m ci.image <command>``."""

from __future__ import annotations

from ci.image.cli import main

raise SystemExit(main())
