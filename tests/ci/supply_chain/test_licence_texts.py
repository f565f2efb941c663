"""Licence texts → SPDX ids through licenseclassifier: full texts, standard headers inside
prose (certifi), headings, several licences in one file, mentions that are no licence."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci.supply_chain import licence_texts
from ci.supply_chain.licence_texts import identify, identify_how

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
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
BSD_DISCLAIMER = """
THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""
MIT = """Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
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
 *
 * THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES
 * WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF
 * MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR
 * ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
 * WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN
 * ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF
 * OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.
 */"""


CERTIFI_NOTICE = """This package contains a modified version of ca-bundle.crt:

ca-bundle.crt -- Bundle of CA Root Certificates

This is a bundle of X.509 certificates of public Certificate Authorities
(CA). These were automatically extracted from Mozilla's root certificates
file (certdata.txt).  This file can be found in the mozilla source tree.
It contains the certificates in PEM format and therefore
can be directly used with curl / libcurl / php_curl, or with
an Apache+mod_ssl webserver for SSL client authentication.
Just configure this file as the SSLCACertificateFile.#

***** BEGIN LICENSE BLOCK *****
This Source Code Form is subject to the terms of the Mozilla Public License,
v. 2.0. If a copy of the MPL was not distributed with this file, You can obtain
one at http://mozilla.org/MPL/2.0/.

***** END LICENSE BLOCK *****
"""
BSD3_MODIFIED = (  # jupyter_server_terminals: a line inside the text no template allows
    "BSD 3-Clause License\n\n- Copyright (c) 2021-, Jupyter Development Team\n\n"
    + BSD_BODY.replace("met:\n", "met:\n\nAll rights reserved.\n")
    + BSD3_CLAUSE
    + BSD_DISCLAIMER
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Copyright (c) 2020 Someone\n\n" + BSD_BODY + BSD_DISCLAIMER, ("BSD-2-Clause",)),
        (
            "Copyright (c) 2020 Someone\n\n" + BSD_BODY + BSD3_CLAUSE + BSD_DISCLAIMER,
            ("BSD-3-Clause",),
        ),
        ("Copyright (c) 2020 Someone\n\n" + MIT, ("MIT",)),
        (MIT.replace("\n", "\n# "), ("MIT",)),  # comment markers do not matter
        (ISC_IN_C_COMMENT, ("ISC",)),
        (
            APACHE_HEADER + "\n-----\n" + BSD_BODY + BSD3_CLAUSE + BSD_DISCLAIMER,
            ("Apache-2.0", "BSD-3-Clause"),
        ),
        (CERTIFI_NOTICE, ("MPL-2.0",)),  # a standard header amid prose about the CA bundle
        (BSD3_MODIFIED, ("BSD-3-Clause",)),  # no template matches: the heading names it
        ("  The MIT License (MIT)\n\nCopyright", ("MIT",)),
        ("BSD License\n\nCopyright (c) 2015", ()),  # 2- or 3-clause? not guessed
        ("GPL\n\nsee the website", ()),  # an alias, not an SPDX id: not guessed
        ("This project is released under the MIT license. See LICENSE.", ()),  # a mention
        ("Public domain, Python, 2-Clause BSD, GPL 3 (see COPYING.txt)", ()),
        ("", ()),
        ("   \n", ()),
    ],
)
def test_identify(text: str, expected: tuple[str, ...]) -> None:
    assert identify(text) == expected


def test_deprecated_template_ids_come_out_current() -> None:
    """The templates name dulwich's GPL text ``GPL-2.0`` (deprecated); verdicts use the
    current id, which the policy's copyleft rule and exceptions are written in."""
    copying = next(CORPUS.glob("poetry/site/dulwich-*.dist-info/licenses/COPYING"))
    assert identify(copying.read_text(encoding="utf-8")) == ("Apache-2.0", "GPL-2.0-only")


def test_how_each_licence_was_found() -> None:
    """The verdict's source says whether the SPDX templates or only the heading named it."""
    assert identify_how(CERTIFI_NOTICE) == (("MPL-2.0",), "licence text")
    assert identify_how(BSD3_MODIFIED) == (("BSD-3-Clause",), "heading")
    assert identify_how("BSD License\n") == ((), "")


def test_a_text_and_its_copy_with_a_trailing_newline_are_found_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scanned: list[str] = []
    real = licence_texts._identify

    def record(text: str) -> tuple[tuple[str, ...], str]:
        scanned.append(text)
        return real(text)

    monkeypatch.setattr(licence_texts, "_identify", record)
    monkeypatch.setattr(licence_texts, "_FOUND", {})
    first = identify_how(CERTIFI_NOTICE.rstrip())
    assert identify_how(CERTIFI_NOTICE.rstrip() + "\n\n") == first == (("MPL-2.0",), "licence text")
    assert identify_how(BSD3_MODIFIED + " \n") == (("BSD-3-Clause",), "heading")
    assert scanned == [CERTIFI_NOTICE.rstrip(), BSD3_MODIFIED.rstrip()]
