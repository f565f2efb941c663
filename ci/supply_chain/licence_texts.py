"""Which licences a licence *text* is: a ``License`` field that holds the whole text, a
wheel's ``LICENSE`` file, the licence of a library a wheel bundles.

The text is matched against the SPDX licence templates by ``licenseclassifier`` (a
pure-Python port of Google's licenseclassifier, no dependencies; docs/supply-chain.md,
"Libraries checked", says why this one). Every licence region it matches counts, however
much prose surrounds it: the library's own coverage threshold (75 % of the input must be
licence text) is meant for guessing a README's licence, while the texts read here are
licence files and fields, where a matched region *is* a licence statement — certifi's
LICENSE is ten lines about the CA bundle around the MPL-2.0 standard header. A region is
only ever a match against an SPDX template: a mere mention ("released under the MIT
license") matches nothing.

When the library matches nothing, the heading can still name the licence: a first line
that, without a trailing "License", is an SPDX id (``BSD 3-Clause License`` →
``BSD-3-Clause``; jupyter_server_terminals inserts "All rights reserved." into its BSD
text, which no template matches). "BSD License" names no SPDX id and stays unknown.

What is not recognised stays unknown — the caller denies it with a remedy — rather than
being guessed.
"""

from __future__ import annotations

import functools
import re

from license_expression import ExpressionError
from licenseclassifier._engine.scan import Scanner

from ci.gcpause import without_gc
from ci.supply_chain import licence_scanner, spdx_index

# One SPDX licensing for the toolkit (ci.supply_chain.licenses uses this one): the
# library's, built from its SPDX list as made ahead of time (ci.supply_chain.spdx_index).
LICENSING = spdx_index.licensing()
_TRAILING_LICENSE = re.compile(r"[\s(]*\blicen[cs]e\b.*$", re.IGNORECASE)


@functools.lru_cache(maxsize=256)
def _canonical(spdx_id: str) -> str | None:
    """The current SPDX rendering of an id (the templates use e.g. ``GPL-2.0``)."""
    try:
        info = LICENSING.validate(spdx_id, strict=True)
    except (ExpressionError, AttributeError):
        return None
    if info.errors or not info.normalized_expression:
        return None
    return str(info.normalized_expression)


def _heading(text: str) -> str | None:
    """The SPDX id a first line such as ``BSD 3-Clause License`` spells, if any."""
    first = next((line.strip(" \t#*=-") for line in text.splitlines() if line.strip()), "")
    name = _TRAILING_LICENSE.sub("", first.removeprefix("The ").strip())
    candidate = "-".join(name.split())
    found = _canonical(candidate) if candidate else None
    # The id itself, not an alias license-expression expands ("GPL" → GPL-1.0-or-later).
    return found if found is not None and found.lower() == candidate.lower() else None


# Results by the text without its trailing whitespace: the same texts recur (vendored
# copies, the own-file and bundled passes; a ``License`` field is often its LICENSE file
# without the last newline) and the library is the slow part. Trailing whitespace changes
# neither the words nor their offsets (nothing the splitter looks ahead for is whitespace)
# nor the heading, so the result is the same (tests/ci/supply_chain/test_licence_texts.py).
# The texts are kept for the run (an environment's licence files, each at most
# licenses.MAX_FILE): a digest would cost hashlib's import (OpenSSL) and a pass over every
# text, for memory nobody is short of. Nothing is kept across runs.
_FOUND: dict[str, tuple[tuple[str, ...], str]] = {}


def identify_how(text: str) -> tuple[tuple[str, ...], str]:
    """Every licence the text contains, in the order it first appears, and how it was
    found: ``"licence text"`` (the SPDX templates), ``"heading"`` or ``""`` (nothing)."""
    key = text.rstrip()
    if not key:
        return (), ""
    found = _FOUND.get(key)
    if found is None:
        found = _FOUND[key] = _identify(key)
    return found


@functools.cache
def _scanner() -> Scanner:
    """The library's scanner, made faster with identical results
    (:mod:`ci.supply_chain.licence_scanner`); loaded on the first text."""
    return licence_scanner.fast_scanner(without_gc(licence_scanner.load))


def _identify(text: str) -> tuple[tuple[str, ...], str]:
    # identify_license(text, coverage_threshold=0.0): every matched region, in text order.
    found = [_canonical(m.id) or m.id for m in _scanner().scan(text).match]
    if found:
        return tuple(dict.fromkeys(found)), "licence text"
    heading = _heading(text)
    return ((heading,), "heading") if heading else ((), "")


def identify(text: str) -> tuple[str, ...]:
    """Every licence the text contains (see :func:`identify_how`)."""
    return identify_how(text)[0]
