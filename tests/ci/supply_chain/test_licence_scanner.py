"""The faster word splitter gives the library's words exactly: on every licence text the
corpus environments feed the classifier, and on seeded generated texts built from what the
library treats specially (HTML, entities, Markdown, (s), (c), ©, non-ASCII letters and
marks, numerals that are not digits)."""

from __future__ import annotations

import gc
import gzip
import marshal
import random
from pathlib import Path
from typing import cast

import pytest
from licenseclassifier._engine.dictionary import Dict, _is_word_continue, fold_rune, to_fold
from licenseclassifier._engine.matcher import INST_ANY, INST_MATCH, INST_WORD
from licenseclassifier._engine.scan import (
    FORMAT_VERSION,
    Scanner,
    _load_prebuilt,
    builtin_scanner,
)

from ci.supply_chain import DEFAULT_POLICY, licence_scanner, licence_texts, licenses

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
FRAGMENTS = [
    "<a href='https://x.org/a'>",
    "</b>",
    "<br>",
    "<",
    "< a",
    "<a\n\n\nb>",
    "{#anchor}",
    "{# x}",
    "{",
    "&copy;",
    "&amp;",
    "&#x41;",
    "&#169;",
    "&",
    "&x",
    "](http://x.org/a)",
    "](#top)",
    "](x)",
    "]",
    "(",
    ")",
    "(s)",
    "(S)",
    "(c)",
    "(C)",
    "©",
    "Copyright",
    "copyright",
    "https",
    "http",
    "HTTP",
    "http://www.apache.org/licenses/LICENSE-2.0",
    "https://opensource.org/licenses/MIT",
    "This",
    "these",
    "copies",
    "are",
    "Permission",
    "is",
    "hereby",
    "granted",
    "MIT",
    "License",
    "Licence",
    "abc123",
    "2026",
    "Wörd",
    "Ångström",
    "å",
    "É",
    "e\u0301",
    "\u0301",
    "\u0300",
    "½",
    "²",
    "İ",
    "ß",
    "ǅ",
    "“",
    "”",
    "٣",
    "_",
    "-",
    ".",
    ",",
    "\n",
    " ",
    "\t",
    "\r\n",
    "",
]


def corpus_texts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every distinct text the four corpus environments hand to the classifier."""
    seen: dict[str, None] = {}
    real = licence_texts._identify

    def record(text: str) -> tuple[tuple[str, ...], str]:
        seen[text] = None
        return real(text)

    monkeypatch.setattr(licence_texts, "_identify", record)
    monkeypatch.setattr(licence_texts, "_FOUND", {})
    policy = licenses.load_policy(DEFAULT_POLICY)
    for project in ("flask", "jupyterlab", "poetry", "sphinx"):
        licenses.check_environment(CORPUS / project / "site", policy, None)
    return list(seen)


def test_every_corpus_text_splits_and_scans_as_the_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = corpus_texts(monkeypatch)
    assert len(texts) > 150
    assert any(len(t) > 190_000 and not t.isascii() for t in texts)  # yarn.js.LICENSE.txt
    base = _load_prebuilt()  # a fresh library scanner: its DFA built by the library alone
    assert base is not None
    fast = licence_scanner.fast_scanner(licence_scanner.load())
    for text in texts:
        assert licence_scanner.split(base.dict, text) == base.dict.split(text)
        assert fast.scan(text) == base.scan(text)
    # Every DFA state ours reached, with the transitions it made, is the library's; ours
    # passes the one-step states of a stretch of template text without building them, and
    # makes a transition only when it is taken.
    assert len(base.re._info) > 10_000
    made = assert_states_are_the_library(fast, base)
    reached = cast("licence_scanner._Matcher", fast.re)._states
    library: int = sum(len(base.re._info[state][2]) for state in reached)
    assert made < library / 2


def assert_states_are_the_library(fast: Scanner, base: Scanner) -> int:
    """Every state ``fast`` reached is one the library reached, with its match, its words
    and each transition ``fast`` made (its wildcard one, its sorted words: when made) the
    library's; returns how many word transitions ``fast`` made."""
    states = cast("licence_scanner._Matcher", fast.re)._states
    assert states.keys() < base.re._info.keys()
    made = 0
    for state, st in states.items():
        match, words, nmap, any_next = base.re._info[state]
        assert (st.key, st.match, sorted(st.takes)) == (state, match, words), state
        assert {word: nxt.key for word, nxt in st.nmap.items()}.items() <= nmap.items(), state
        if st.any_known:
            assert (st.any_next and st.any_next.key) == any_next, state
        assert st.words in (None, words), state
        made += len(st.nmap)
    return made


def mutated(text: str, rng: random.Random) -> str:
    """A licence text damaged the ways real ones are: words dropped, misspelt, joined or
    split, case changed, fragments the splitter treats specially put in."""
    words = text.split(" ")
    for _ in range(rng.randint(1, 12)):
        k = rng.randrange(len(words))
        word = words[k]
        how = rng.randrange(6)
        if how == 0:
            words[k] = ""
        elif how == 1 and len(word) > 3:
            cut = rng.randrange(len(word))
            words[k] = word[:cut] + word[cut + 1 :]
        elif how == 2 and k + 1 < len(words):
            words[k : k + 2] = [word + words[k + 1]]
        elif how == 3 and len(word) > 5:
            words[k] = word[:3] + " " + word[3:]
        elif how == 4:
            words[k] = word.upper()
        else:
            words[k] = word + rng.choice(FRAGMENTS)
    return " ".join(words)


def test_damaged_corpus_texts_scan_as_the_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """Misspellings, joins and splits drive the matcher's spell-checking and wildcard
    paths, and states the clean texts never reach."""
    rng = random.Random(7)
    texts = [t for t in corpus_texts(monkeypatch) if len(t) < 20_000]
    base = _load_prebuilt()
    assert base is not None
    fast = licence_scanner.fast_scanner(licence_scanner.load())
    found = 0
    for _ in range(300):
        text = mutated(rng.choice(texts), rng)
        expected = base.scan(text)
        assert fast.scan(text) == expected, text
        found += bool(expected.match)
    assert found > 100  # most damaged texts still match a template
    assert_states_are_the_library(fast, base)


def test_generated_texts_split_as_the_library() -> None:
    rng = random.Random(20261207)
    words = builtin_scanner().dict
    for _ in range(3000):
        text = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 40)))
        assert licence_scanner.split(words, text) == words.split(text), repr(text)


def test_http_s_is_http_as_in_the_library() -> None:
    """``http(s)`` folds to ``https``, which the library then reads as ``http``: on the plain
    ASCII path, word by word (a segment with ``(S)``) and beside a non-ASCII character."""
    words = builtin_scanner().dict
    http = words.lookup("http")
    for text in ("see http(s)://x.org", "HTTP(S) and http(s)", "http(s)é", "Http(s) ©"):
        got = licence_scanner.split(words, text)
        assert got == words.split(text), text
        assert http in [w for w, _, _ in got], text


def test_words_the_dictionary_lacks_are_bad_words_and_nothing_is_inserted() -> None:
    words = builtin_scanner().dict
    size = len(words.list)
    got = licence_scanner.split(words, "zzqxj Copyright © (c) &copy; 2026 This")
    assert got == words.split("zzqxj Copyright © (c) &copy; 2026 This")
    assert got[0][0] == -1
    assert len(words.list) == size
    ids = [w for w, _, _ in got]
    assert ids[1] == words.lookup("copyright")
    assert ids.count(ids[1]) == 1  # "Copyright © (c) &copy;" is one word, as in the library


def test_the_ascii_shortcuts_are_the_library_rules() -> None:
    """The plain path's assumptions, checked on all 128 ASCII characters."""
    for code in range(128):
        c = chr(code)
        word = c.isascii() and c.isalnum()
        assert (c.isalpha() or c.isdigit()) == word
        assert _is_word_continue(c) == word
        if word:
            assert fold_rune(c) == c.lower()
        plain_start = licence_scanner._PLAIN_WORD.match(c) is not None
        assert plain_start == word
        stop = licence_scanner._next_stop(f"a{c}b", licence_scanner._marks(f"a{c}b"), 0)
        assert (stop == 1) == (c in "<{&]")
        assert stop in (1, 3)
        lowered = c.encode("ascii").translate(licence_scanner._LOWERED)
        assert lowered == (c.lower().encode("ascii") if word else b" ")
        gap = c.encode("ascii").translate(licence_scanner._GAPS)
        assert gap == (b" " if word else b"x")
        assert (code in licence_scanner._ASCII_WORD_BYTES) == word
        assert licence_scanner._fold(f"A{c}b") == to_fold(f"A{c}b")


def test_the_irregular_class_is_every_non_ascii_character() -> None:
    """Where the plain path stops: ``<{&]`` and every code point past ASCII (surrogates too)."""
    beyond = "".join(map(chr, range(0x80, 0x110000)))
    marks = licence_scanner._marks(beyond)
    assert marks == bytes(len(beyond))  # every one a stop mark, none a "?" of the text
    assert "?" not in beyond
    assert [licence_scanner._next_stop(beyond, marks, i) for i in (0, 5_000, 1_000_000)] == [
        0,
        5_000,
        1_000_000,
    ]
    # A "?" or a NUL of the text is no stop; the end of the text is where none is left.
    text = "a?b\x00c? d"
    assert licence_scanner._next_stop(text, licence_scanner._marks(text), 0) == len(text)
    text = "x?é?<"
    marks = licence_scanner._marks(text)
    assert [licence_scanner._next_stop(text, marks, i) for i in range(5)] == [2, 2, 2, 4, 4]


def test_s_in_parentheses_joins_the_word_before_it_as_in_the_library() -> None:
    """``(s)`` right after a run is part of that word (its end past the ``)``); anywhere
    else it is the word ``s``; the run after it is a word of its own."""
    words = builtin_scanner().dict
    for text in (
        "Contribution(s) x",
        "(s) the(s)(s) a(s)b (s)",
        "Work(s), Licensor(s).",
        "copyright(s) copyright (c) (s)",
        "c(s) http(s)://x.org",
        "x (s)(s)(s)word(s)",
    ):
        assert licence_scanner.split(words, text) == words.split(text), text


def test_a_scan_leaves_the_garbage_collector_as_it_found_it() -> None:
    fast = licence_scanner.fast_scanner(licence_scanner.load())
    text = "Permission is hereby granted, free of charge, to any person"
    was = gc.isenabled()
    try:
        for state in (True, False):
            (gc.enable if state else gc.disable)()
            assert fast.scan(text) == builtin_scanner().scan(text)
            assert gc.isenabled() is state
        gc.enable()
        with pytest.raises(TypeError):
            fast.scan(None)  # type: ignore[arg-type]  # an error inside: restored all the same
        assert gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()


def test_the_library_scanner_is_left_as_it_is() -> None:
    base = builtin_scanner()
    fast = licence_scanner.fast_scanner(base)
    assert type(base.dict) is Dict
    assert fast.dict is not base.dict and fast.re is not base.re
    assert fast.dict.list is base.dict.list
    assert licence_texts._scanner().re.dict.split.__func__ is licence_scanner._Words.split


def test_load_reads_the_library_artifact_as_the_library_does() -> None:
    ours = licence_scanner.load()
    theirs = _load_prebuilt()
    assert theirs is not None
    assert ours is not theirs
    assert ours.ids == theirs.ids and ours.urls == theirs.urls
    assert ours.dict.list == theirs.dict.list
    assert ours.re.ops == theirs.re.ops and ours.re.args == theirs.re.args
    assert ours.re.start == theirs.re.start and ours.re._start_state == theirs.re._start_state


@pytest.mark.parametrize("content", [b"", b"not gzip", "other format"])
def test_load_falls_back_to_the_library_loader(
    content: bytes | str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing, unreadable or other-format artifact: the library's own loader decides."""
    artifact = tmp_path / "scanner.bin.gz"
    if isinstance(content, str):
        content = gzip.compress(marshal.dumps({"version": FORMAT_VERSION + 1}))
    if content:
        artifact.write_bytes(content)
    monkeypatch.setattr(licence_scanner, "_ARTIFACT_PATH", artifact)
    assert licence_scanner.load() is builtin_scanner()


def test_any_state_gets_the_library_transitions() -> None:
    """``_state_info`` is a function of the state: on seeded random states (sets of the word,
    wildcard and match instructions a trimmed state holds, several matches among them) and
    on every state within three words of the start, ours equals the library's."""
    base = _load_prebuilt()
    assert base is not None
    fast = licence_scanner.fast_scanner(licence_scanner.load())
    ops = base.re.ops
    by_op: dict[int, list[int]] = {INST_WORD: [], INST_ANY: [], INST_MATCH: []}
    for pc, op in enumerate(ops):
        if op in by_op:
            by_op[op].append(pc)
    rng = random.Random(11)
    states: set[tuple[int, ...]] = {base.re._start_state}
    for _ in range(2000):
        chosen = {pc for op in by_op for pc in rng.sample(by_op[op], rng.randint(0, 4))}
        if rng.random() < 0.5:  # a word instruction's successor: the one-step path
            word = rng.choice(by_op[INST_WORD])
            chosen = {word} if rng.random() < 0.5 else chosen | {word}
        states.add(tuple(sorted(chosen)) or (by_op[INST_WORD][0],))
    frontier = [base.re._start_state]
    for _ in range(3):
        following = []
        for state in frontier:
            _, _, nmap, any_next = base.re._state_info(state)
            following += [*nmap.values(), *([any_next] if any_next else [])]
        states.update(following)
        frontier = following
    assert len(states) > 2000
    assert any(sum(ops[pc] == INST_MATCH for pc in state) > 1 for state in states)
    for state in states:
        assert fast.re._state_info(state) == base.re._state_info(state), state


def test_licence_urls_between_matches_are_found_as_the_library() -> None:
    """The scan's URL search, which reads the words ours splits: licence URLs before,
    between and after matched texts, a URL that names no licence, a bare ``http``, one
    running into a match."""
    base = _load_prebuilt()
    assert base is not None
    fast = licence_scanner.fast_scanner(licence_scanner.load())
    mit = next(
        text
        for path in sorted(CORPUS.glob("flask/site/*.dist-info/**/LICENSE*"))
        if "Permission is hereby granted" in (text := path.read_text(encoding="utf-8"))
    )
    urls = [
        "https://opensource.org/licenses/MIT",
        "http://www.apache.org/licenses/LICENSE-2.0",
        "http://www.apache.org/licenses/LICENSE-2.0/",
        "https://example.com/not/a/licence",
        "http",
        "http://",
        "https://www.gnu.org/licenses/gpl-3.0.html",
    ]
    rng = random.Random(5)
    seen_url = 0
    for _ in range(60):
        parts = [rng.choice([*urls, mit, "some words between", "\n"]) for _ in range(6)]
        text = " ".join(parts)
        expected = base.scan(text)
        assert fast.scan(text) == expected, text
        seen_url += any(m.is_url for m in expected.match)
    assert seen_url > 20


# Whitespace str.rstrip removes, ASCII and not (NEL, no-break space, line separator).
TRAILING = [
    " ",
    "\n",
    "\r\n",
    "\t",
    "\x0b\x0c",
    "\x1c\x1d\x1e\x1f",
    "\x85",
    "\xa0",
    "\u2028",
    "\u3000",
]


def test_trailing_whitespace_changes_no_word_and_no_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Results are kept by the text without its trailing whitespace (a ``License`` field is
    often its LICENSE file without the last newline): the library's own splitter gives the
    same words at the same offsets with it as without, on every corpus text and on seeded
    generated ones ending in what the splitter looks ahead for, and a scan finds the same
    licences (only a match that runs to the last word ends at the text's end, further)."""
    base = _load_prebuilt()  # the library's own scanner, DFA and splitter
    assert base is not None
    rng = random.Random(20261208)
    texts = corpus_texts(monkeypatch)
    assert all(text == text.rstrip() for text in texts)  # what the classifier is handed
    generated = [
        "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 30))) for _ in range(2000)
    ]
    for text in [*texts, *generated]:
        padded = text + "".join(rng.choice(TRAILING) for _ in range(rng.randint(1, 4)))
        assert base.dict.split(padded) == base.dict.split(text), repr(text[-40:])
    for text in texts[:40]:
        padded = text + rng.choice(TRAILING)
        assert base.re.match(padded) == base.re.match(text)
        found = [(m.id, m.is_url) for m in base.scan(padded).match]
        assert found == [(m.id, m.is_url) for m in base.scan(text).match]
