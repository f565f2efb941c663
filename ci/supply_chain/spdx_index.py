"""The SPDX licence list license-expression builds its licensing from, made ahead of time.

``license_expression.get_spdx_licensing()`` reads the library's vendored ScanCode index
(~1 MB of JSON, 2,579 entries) and keeps, for the 2,447 with an SPDX id, four fields.
Parsing the whole file is a third of what building the licensing costs (~50 M
instructions a run). ``spdx-licences.json`` beside this module holds exactly those four
fields in the library's order, and :func:`licensing` makes the library's licensing from them
as its ``load_licensing_from_license_index`` does (less the check of the data, made by the
tests instead: :func:`from_entries`), so the licensing is the library's, made from the same
data.

The file names the index it was made from (its size and CRC-32); when the installed
license-expression's index is another, the library's own loader is used. Regenerate
after upgrading license-expression (``tests/ci/supply_chain/test_spdx_index.py`` fails
while the file is stale)::

    .nox/tests/bin/python -m ci.supply_chain.spdx_index
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path
from typing import Any

from license_expression import (
    LicenseSymbol,
    Licensing,
    as_symbols,
    get_license_index,
    get_spdx_licensing,
    vendored_scancode_licensedb_index_location,
)

from ci.gcpause import without_gc

DATA = Path(__file__).resolve().with_name("spdx-licences.json")
INDEX = Path(vendored_scancode_licensedb_index_location)


def _fingerprint(raw: bytes) -> dict[str, int]:
    """The index file's size and CRC-32 (zlib: already loaded; no hashlib/OpenSSL import)."""
    return {"size": len(raw), "crc32": zlib.crc32(raw)}


def entries(index: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What ``license_expression.build_spdx_licensing`` takes from each index entry, in
    its order (its own comprehension, copied: the staleness test compares the result)."""
    return [
        {
            "key": entry.get("spdx_license_key", ""),
            "aliases": entry.get("other_spdx_license_keys", []),
            "is_deprecated": entry.get("is_deprecated", False),
            "is_exception": entry.get("is_exception", False),
        }
        for entry in index
        if entry.get("spdx_license_key")
    ]


def render(raw: bytes) -> str:
    """The data file for the index file's bytes ``raw``: byte-stable (sorted keys, one
    entry a line, ASCII)."""
    rows = entries(json.loads(raw))
    lines = ",\n".join(json.dumps(row, sort_keys=True) for row in rows)
    head = json.dumps({"index": _fingerprint(raw)}, sort_keys=True)
    return f'{head[:-1]}, "licences": [\n{lines}\n]}}\n'


class _Licensing(Licensing):  # type: ignore[misc]  # license-expression ships no types
    """The library's licensing, its tokenizer (a trie of every id and alias, made at the
    first parse) built with the cyclic collector paused: thousands of long-lived nodes,
    no cycle to find."""

    def get_advanced_tokenizer(self) -> Any:  # noqa: ANN401 - the library's Trie
        return without_gc(super().get_advanced_tokenizer)


def licensing() -> Any:  # noqa: ANN401 - license-expression ships no types
    """The library's SPDX licensing, from the data file when it was made from the installed
    index, else by the library's own ``get_spdx_licensing``; built with the collector
    paused (2,447 long-lived licence symbols)."""
    made = without_gc(_licensing)
    made.__class__ = _Licensing
    return made


def _licensing() -> Any:  # noqa: ANN401 - license-expression ships no types
    try:
        data = json.loads(DATA.read_bytes())
        raw = INDEX.read_bytes()
    except (OSError, ValueError):
        return get_spdx_licensing()
    if data.get("index") != _fingerprint(raw):
        return get_spdx_licensing()
    return from_entries(data["licences"])


def _symbol(row: dict[str, Any]) -> Any:  # noqa: ANN401 - the library's LicenseSymbol
    """``LicenseSymbol(**row)``: the attributes its ``__init__`` (and boolean.py's
    ``Symbol`` and ``Expression`` under it) sets, in their order, without its checks of the
    key (not empty, its characters, no keyword, spaces normalised), which the data file
    passes (the tests build every symbol both ways and compare them)."""
    symbol = object.__new__(LicenseSymbol)
    vars(symbol).update(
        key=row["key"],
        aliases=tuple(row["aliases"]),
        is_deprecated=row["is_deprecated"],
        is_exception=row["is_exception"],
        sort_order=5,
        args=(),
        isliteral=True,
        iscanonical=True,
        obj=row["key"],
    )
    return symbol


def from_entries(rows: list[dict[str, Any]]) -> Any:  # noqa: ANN401 - the library's Licensing
    """The library's ``load_licensing_from_license_index(rows)``, its ``Licensing.__init__``
    without the ``validate_symbols`` pass and each symbol made by :func:`_symbol`: those
    checks only raise on bad data (a key twice, an alias of two keys, a keyword as a key,
    a bad key) and keep nothing, and the rows are the library's own index's, checked by the
    tests rather than at every start (tests/ci/supply_chain/test_spdx_index.py: no error,
    the same symbols; ~60 M instructions a run). Another index than the one the data file
    was made from never gets here (:func:`licensing` uses the library's loader)."""
    symbols = tuple(as_symbols([_symbol(row) for row in rows]))
    made = Licensing()
    made.known_symbols = {symbol.key: symbol for symbol in symbols}
    made.known_symbols_lowercase = {symbol.key.lower(): symbol for symbol in symbols}
    return made


def main() -> int:
    """Write the data file from the installed license-expression's index."""
    DATA.write_text(render(INDEX.read_bytes()), encoding="ascii")
    print(f"wrote {DATA} ({len(get_license_index())} index entries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
