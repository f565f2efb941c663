"""The SPDX licence list made ahead of time is the installed license-expression's, the
licensing built from it is the library's own, and a stale or missing file falls back to
the library's loader."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import pytest
from license_expression import (
    LicenseSymbol,
    get_spdx_licensing,
    load_licensing_from_license_index,
    validate_symbols,
)

from ci.supply_chain import licence_texts, spdx_index

EXPRESSIONS = [
    "MIT",
    "mit",
    "Apache-2.0 OR MIT",
    "apache-2.0 and bsd-3-clause",
    "GPL-2.0+",
    "GPL-2.0",
    "LGPL-2.1-or-later WITH Classpath-exception-2.0",
    "MIT WITH Classpath-exception-2.0",
    "Classpath-exception-2.0",
    "(MIT OR Apache-2.0) AND BSD-2-Clause",
    "MIT AND",
    "LicenseRef-scancode-public-domain",
    "BSD",
    "GPL",
    "Not A Licence",
    "MIT OR (",
]


def symbols(licensing: Any) -> dict[str, tuple[object, ...]]:
    return {
        key: (type(s).__name__, s.key, s.aliases, s.is_deprecated, s.is_exception)
        for key, s in licensing.known_symbols.items()
    }


def validated(licensing: Any, expression: str) -> tuple[object, ...]:
    try:
        info = licensing.validate(expression, strict=True)
    except Exception as error:
        return ("raised", type(error).__name__, str(error))
    return (info.normalized_expression, info.errors, info.invalid_symbols)


def test_the_data_file_is_made_from_the_installed_index() -> None:
    """Fails while the file is stale: regenerate with ``python -m ci.supply_chain.spdx_index``."""
    raw = spdx_index.INDEX.read_bytes()
    assert spdx_index.DATA.read_text(encoding="ascii") == spdx_index.render(raw)
    assert spdx_index.render(raw) == spdx_index.render(raw)  # byte-stable
    data = json.loads(spdx_index.DATA.read_bytes())
    assert len(data["licences"]) == 2447


def test_the_licensing_is_the_library_s() -> None:
    ours = spdx_index.licensing()
    library = get_spdx_licensing()
    assert symbols(ours) == symbols(library)
    assert ours.known_symbols_lowercase.keys() == library.known_symbols_lowercase.keys()
    names = [*EXPRESSIONS]
    for symbol in library.known_symbols.values():
        names += [symbol.key, symbol.key.upper(), *symbol.aliases]
    for expression in names:
        assert validated(ours, expression) == validated(library, expression), expression
    assert str(ours.parse(EXPRESSIONS[9])) == str(library.parse(EXPRESSIONS[9]))
    assert licence_texts.LICENSING.known_symbols.keys() == library.known_symbols.keys()


def test_the_data_file_passes_the_check_licensing_skips() -> None:
    """from_entries leaves out the library's validate_symbols (it keeps nothing, only
    raises on bad data): the data file passes it, and what from_entries makes is what the
    library's loader makes from the same rows; bad rows are what the check is for."""
    rows = json.loads(spdx_index.DATA.read_bytes())["licences"]
    _warnings, errors = validate_symbols([LicenseSymbol(**row) for row in rows])
    assert errors == []
    ours = spdx_index.from_entries(rows)
    library = load_licensing_from_license_index(rows)
    assert symbols(ours) == symbols(library)
    assert ours.known_symbols_lowercase.keys() == library.known_symbols_lowercase.keys()
    for key, symbol in library.known_symbols_lowercase.items():
        made = ours.known_symbols_lowercase[key]
        assert type(made) is type(symbol), key
        assert list(vars(made).items()) == list(vars(symbol).items()), key  # order too
        assert made == symbol and hash(made) == hash(symbol), key
    assert ours.advanced_tokenizer is None
    twice = [*rows[:3], rows[0]]
    with pytest.raises(ValueError, match="Invalid duplicated license key"):
        load_licensing_from_license_index(twice)
    assert validate_symbols([LicenseSymbol(**row) for row in twice])[1]


@pytest.mark.parametrize("damage", ["stale", "missing", "garbled"])
def test_a_stale_or_missing_file_falls_back_to_the_library_loader(
    damage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "spdx-licences.json"
    if damage == "stale":  # another index's file: a single made-up licence
        data.write_text(
            json.dumps({"index": {"size": 1, "crc32": 2}, "licences": [{"key": "Made-Up"}]}),
            encoding="ascii",
        )
    elif damage == "garbled":
        data.write_text('{"index": ', encoding="ascii")
    monkeypatch.setattr(spdx_index, "DATA", data)
    calls: list[None] = []
    real = get_spdx_licensing

    def counted() -> Any:
        calls.append(None)
        return real()

    monkeypatch.setattr(spdx_index, "get_spdx_licensing", counted)
    made = spdx_index.licensing()
    assert calls == [None]
    assert symbols(made) == symbols(real())
    assert "Made-Up" not in made.known_symbols


def test_building_leaves_the_garbage_collector_as_it_found_it() -> None:
    was = gc.isenabled()
    try:
        for state in (True, False):
            (gc.enable if state else gc.disable)()
            made = spdx_index.licensing()
            assert gc.isenabled() is state
            made.validate("MIT OR Apache-2.0")  # builds the tokenizer
            assert gc.isenabled() is state
    finally:
        (gc.enable if was else gc.disable)()
