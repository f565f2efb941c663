"""``python -m ci.release <command>``."""

from __future__ import annotations

from ci.release.cli import main

raise SystemExit(main())
