"""Licence texts → SPDX ids: full texts, standard headers, headings, variants, no guesses."""

from __future__ import annotations

import pytest

from ci.supply_chain.licence_texts import identify, normalise

BSD_BODY = """Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.
"""
BSD3_CLAUSE = """
3. Neither the name of the copyright holder nor the names of its
   contributors may be used to endorse or promote products derived from
   this software without specific prior written permission.
"""
MIT = """Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
"""
APACHE_HEADER = """   Licensed under the Apache License, Version 2.0 (the "License");
   you may not use this file except in compliance with the License.
"""
ISC_IN_C_COMMENT = """/*
 * ISC License
 *
 * Permission to use, copy, modify, and/or distribute this software for any
 * purpose with or without fee is hereby granted, provided that the above
 * copyright notice and this permission notice appear in all copies.
 */"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BSD_BODY, ("BSD-2-Clause",)),
        (BSD_BODY + BSD3_CLAUSE, ("BSD-3-Clause",)),  # the 2-clause part is not reported
        ("Copyright (c) 2020 Someone\n\n" + MIT, ("MIT",)),
        (MIT.replace("\n", "\n# "), ("MIT",)),  # comment markers do not matter
        (ISC_IN_C_COMMENT, ("ISC",)),
        (APACHE_HEADER + "\n-----\n" + BSD_BODY + BSD3_CLAUSE, ("BSD-3-Clause", "Apache-2.0")),
        (
            "Mozilla Public License Version 2.0\n====\n1. Definitions\n1.4. Covered Software",
            ("MPL-2.0",),
        ),
        ("BSD 3-Clause License\n\nCopyright (c) 2015, Project Jupyter", ("BSD-3-Clause",)),
        ("  The MIT License (MIT)\n\nCopyright", ("MIT",)),
        ("BSD License\n\nCopyright (c) 2015", ()),  # 2- or 3-clause? not guessed
        ("Public domain, Python, 2-Clause BSD, GPL 3 (see COPYING.txt)", ()),
        ("", ()),
    ],
)
def test_identify(text: str, expected: tuple[str, ...]) -> None:
    assert identify(text) == expected


def test_normalise() -> None:
    assert normalise("  Version 2.0,\n\tJanuary  2004 ") == "version 2 0 january 2004"
