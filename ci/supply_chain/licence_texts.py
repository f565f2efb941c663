"""Which licences a licence *text* is: a ``License`` field that holds the whole text, a
wheel's ``LICENSE`` file, the licence of a library a wheel bundles.

Why not a library: the locked ``license-expression`` parses and normalises SPDX
expressions but ships no licence texts; the text matchers on the index were checked one by
one (docs/supply-chain.md, "Libraries checked"): all but one are too large, need a JVM or
pull in many dependencies, and the one that fits (``licenseclassifier``) is a first
release whose adoption means re-reviewing the corpus verdicts it changes. So this follows
the SPDX matching guidelines in miniature: the text is normalised (case, punctuation,
comment markers, line breaks, bullets all dropped) and each licence is recognised by
sentences that only its SPDX reference text has (all sentences of one alternative must be
present: the full text, or the standard header that points to it). A ``BSD-2-Clause``
match inside a ``BSD-3-Clause`` text is dropped, and so on. A heading alone (``BSD
3-Clause License`` as the first line) names it too.

What is not recognised stays unknown — the caller denies it with a remedy — rather than
being guessed.
"""

from __future__ import annotations

import re

_BSD = (
    "with or without modification are permitted provided that the following conditions are met",
    "redistributions of source code must retain the above copyright notice",
    "redistributions in binary form must reproduce the above copyright notice",
)
_BSD3 = (
    *_BSD,
    "to endorse or promote products derived from this software without specific prior written "
    "permission",
)
_ISC = (
    "to use copy modify and or distribute this software for any purpose with or without fee is "
    "hereby granted provided that the above copyright notice and this permission notice appear "
    "in all copies",
)
# SPDX id → alternatives, each a tuple of sentences (normalised) that must all be present.
FINGERPRINTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "MIT": (
        (
            "permission is hereby granted free of charge to any person obtaining a copy",
            "shall be included in all copies or substantial portions of the software",
        ),
    ),
    "MIT-0": (
        (
            "permission is hereby granted free of charge to any person obtaining a copy",
            "to permit persons to whom the software is furnished to do so the software is "
            "provided as is",
        ),
    ),
    "BSD-2-Clause": (_BSD,),
    "BSD-3-Clause": (_BSD3,),
    "BSD-4-Clause": (
        (
            *_BSD3,
            "all advertising materials mentioning features or use of this software must "
            "display the following acknowledgement",
        ),
    ),
    "Apache-2.0": (
        (
            "apache license",
            "version 2 0 january 2004",
            "terms and conditions for use reproduction and distribution",
        ),
        (
            "licensed under the apache license version 2 0",
            "you may not use this file except in compliance with the license",
        ),
    ),
    "ISC": (_ISC, (_ISC[0].replace("and or distribute", "and distribute"),)),
    "MPL-2.0": (
        ("mozilla public license version 2 0", "covered software"),
        ("this source code form is subject to the terms of the mozilla public license v 2 0",),
    ),
    "PSF-2.0": (
        (
            "python software foundation",
            "psf hereby grants licensee a nonexclusive royalty free world wide license",
        ),
    ),
    "Unlicense": (("this is free and unencumbered software released into the public domain",),),
    "Zlib": (
        (
            "this software is provided as is without any express or implied warranty in no "
            "event will the authors be held liable for any damages arising from the use of "
            "this software",
            "altered source versions must be plainly marked as such and must not be "
            "misrepresented as being the original software",
        ),
    ),
    "CC0-1.0": (("cc0 1 0 universal", "statement of purpose"),),
    "Unicode-3.0": (("unicode license v3", "copyright and permission notice"),),
    "BSL-1.0": (("boost software license version 1 0 august 17th 2003",),),
    "EPL-2.0": (("eclipse public license v 2 0",),),
    "GPL-2.0-only": (("gnu general public license version 2 june 1991",),),
    "GPL-3.0-only": (("gnu general public license version 3 29 june 2007",),),
    "LGPL-2.1-only": (("gnu lesser general public license version 2 1 february 1999",),),
    "LGPL-3.0-only": (("gnu lesser general public license version 3 29 june 2007",),),
    "AGPL-3.0-only": (("gnu affero general public license version 3 19 november 2007",),),
}
# A match of the key inside a text that also matches a value is part of that licence.
SUBSUMED_BY = {
    "BSD-2-Clause": ("BSD-3-Clause", "BSD-4-Clause"),
    "BSD-3-Clause": ("BSD-4-Clause",),
}
# First lines that name exactly one licence (normalised). "BSD License" does not.
HEADINGS = {
    "mit license": "MIT",
    "the mit license": "MIT",
    "the mit license mit": "MIT",
    "bsd 2 clause license": "BSD-2-Clause",
    "simplified bsd license": "BSD-2-Clause",
    "bsd 3 clause license": "BSD-3-Clause",
    "new bsd license": "BSD-3-Clause",
    "modified bsd license": "BSD-3-Clause",
    "revised bsd license": "BSD-3-Clause",
    "3 clause bsd license": "BSD-3-Clause",
    "isc license": "ISC",
    "apache license version 2 0": "Apache-2.0",
    "mozilla public license version 2 0": "MPL-2.0",
    "the unlicense": "Unlicense",
}
_NON_WORD = re.compile(r"[^a-z0-9]+")


def normalise(text: str) -> str:
    """Lower-case words separated by single spaces (SPDX matching guidelines, in short)."""
    return " ".join(_NON_WORD.split(text.lower())).strip()


def identify(text: str) -> tuple[str, ...]:
    """Every licence whose reference sentences the text contains, in a stable order."""
    flat = normalise(text)
    if not flat:
        return ()
    found = [
        spdx_id
        for spdx_id, alternatives in FINGERPRINTS.items()
        if any(all(sentence in flat for sentence in alt) for alt in alternatives)
    ]
    found = [f for f in found if not any(big in found for big in SUBSUMED_BY.get(f, ()))]
    if not found:
        first = next((line for line in text.splitlines() if line.strip()), "")
        heading = HEADINGS.get(normalise(first))
        found = [heading] if heading else []
    return tuple(found)
