"""``python -m ci.workflows``: the workflows commands."""

from __future__ import annotations

from ci.workflows.cli import main

raise SystemExit(main())
