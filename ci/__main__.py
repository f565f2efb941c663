"""``python -m ci <command>``: the toolkit's entry point used by the nox sessions."""

from __future__ import annotations

import gc

from ci.cli import main

# What the imports made (the modules, the SPDX licence list) lives until the process
# exits: frozen, the cyclic collector stops traversing it at every collection of a run
# (~2% of the CPU of `python -m ci licenses`). Only here, in the process's own entry point:
# a caller of ci.cli.main in its own process keeps its collector as it was.
gc.freeze()
raise SystemExit(main())
