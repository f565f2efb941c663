"""``python -m ci <command>``: the toolkit's entry point used by the nox sessions."""

from __future__ import annotations

from ci.cli import main

raise SystemExit(main())
