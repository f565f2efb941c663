"""The standard-library names the toolkit needs that Python 3.10 lacks.

The toolkit installs on 3.10–3.13 (ci/pyproject.toml, ``nox -s toolkit-pythons``):
``tomllib`` is 3.11+, so 3.10 reads TOML with ``tomli`` — the library tomllib was made
from, same API — declared for ``python_version < "3.11"`` only. The standalone
``ci.gate.preinstall`` (loaded by path, standard library only) does the same inline.
"""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised by nox -s toolkit-pythons on 3.10
    import tomli as tomllib

__all__ = ["tomllib"]
