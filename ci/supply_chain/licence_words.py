"""licenseclassifier's word splitter, the same words faster: the library walks the text one
character at a time in Python (a 194 kB bundled ``yarn.js.LICENSE.txt`` ≈ 0.3 s), which was
most of ``licenses``' time. Here a regular expression jumps to the next character that can
matter and takes ASCII letter/digit runs whole; everything else — the first character of a
word, non-ASCII word characters, HTML tags and entities, Markdown anchors and links, ``(s)``,
``(c)`` and ``©`` — goes through the library's own functions in the library's order, so the
word list (ids and offsets) is identical; tests/ci/supply_chain/test_licence_words.py
compares the two on every corpus licence text and on generated texts.

The pinned library's internals are used (``licenseclassifier._engine``): an upgrade that
changes them fails those tests rather than changing a verdict silently.
"""

from __future__ import annotations

import copy
import re

from licenseclassifier._engine.dictionary import (
    _CANON,
    BAD_WORD,
    Dict,
    _html_entity_size,
    _html_tag_size,
    _is_word_continue,
    _markdown_anchor_size,
    _markdown_link_size,
    fold_rune,
)
from licenseclassifier._engine.scan import Scanner

# Where the plain ASCII path stops and the library's own step takes over: the four
# characters that open a skipped HTML/Markdown span, and any non-ASCII character.
_IRREGULAR = re.compile(r"[<{&\]]|[^\x00-\x7f]")
# A word in plain ASCII text: a letter/digit run (the library's word start and continue
# tests, for ASCII) and the ``(s)`` it folds into the word.
_PLAIN_WORD = re.compile(r"[A-Za-z0-9]+(?:\(s\))?")
# ASCII letters and digits: for them the library's word-continue test is true and its fold
# is str.lower, so a run is taken in one step.
_ASCII_RUN = re.compile(r"[A-Za-z0-9]*")


def _word_end(text: str, j: int, buf: list[str]) -> int:
    """Where the word continuing at ``j`` ends; its folded characters appended to ``buf``."""
    n = len(text)
    match_run = _ASCII_RUN.match
    while True:
        run = match_run(text, j)
        end = run.end() if run is not None else j
        if end > j:
            buf.append(text[j:end].lower())
            j = end
        if j < n and not text[j].isascii() and _is_word_continue(text[j]):
            folded = fold_rune(text[j])
            if folded is not None:
                buf.append(folded)
            j += 1
            continue
        return j


def _step(words_dict: Dict, text: str, i: int, words: list[tuple[int, int, int]]) -> int:
    """One turn of the library's loop at ``i`` (its code, in its order): skip an HTML or
    Markdown span, emit one word, or pass one character; returns where the next turn starts."""
    n = len(text)
    c = text[i]
    size = 0
    if c == "<":
        size = _html_tag_size(text, i)
    elif c == "{":
        size = _markdown_anchor_size(text, i)
    elif c == "&":
        size = _html_entity_size(text, i)
        if size > 0 and text[i : i + size] == "&copy;":
            words_dict._emit(words, "copyright", i, i + size, False)
    if c == "]" and i + 1 < n and text[i + 1] == "(":
        size = _markdown_link_size(text, i)
    if size > 0:
        return i + size
    if not (c.isalpha() or c.isdigit() or c == "©"):
        return i + 1
    lo = i
    first = fold_rune(c)
    buf = [first] if first is not None else []
    j = i + 1
    if c != "©":
        j = _word_end(text, j, buf)
        if text[j : j + 3] == "(s)":
            buf.append("s")
            j += 3
    hi = j
    w = "".join(buf)
    if w == "https":
        w = "http"
    elif w == "c" and lo > 0 and text[lo - 1] == "(" and hi < n and text[hi] == ")":
        w = "copyright"
        lo -= 1
        hi += 1
    elif w == "©":
        w = "copyright"
    words_dict._emit(words, _CANON.get(w, w), lo, hi, False)
    return j


def _plain(
    words_dict: Dict, text: str, pos: int, end: int, words: list[tuple[int, int, int]]
) -> int:
    """The words of ``text[pos:end]``, which holds only ASCII and none of ``<{&]``: there a
    word is an ASCII letter/digit run (plus ``(s)``), folded by str.lower. Returns where
    :func:`_step` must take over: the start of a last word that runs into ``end`` (the
    character there, non-ASCII, may continue it), else ``end``."""
    get = words_dict._map.get
    canon = _CANON.get
    n = len(text)
    copyright_id = words_dict._map["copyright"]
    for hit in _PLAIN_WORD.finditer(text, pos, end):
        lo, hi = hit.span()
        if hi == end < n:
            return lo
        w = hit.group().lower()
        if w[-1] == ")":
            w = w[:-3] + "s"
        elif w == "https":
            w = "http"
        elif w == "c" and lo > 0 and text[lo - 1] == "(" and hi < n and text[hi] == ")":
            w = "copyright"
            lo -= 1
            hi += 1
        w = canon(w, w)
        word_id = get(w)
        if word_id is None:
            words.append((BAD_WORD, lo, hi))
        elif not (word_id == copyright_id and words and words[-1][0] == word_id):
            words.append((word_id, lo, hi))
    return end


def split(words_dict: Dict, text: str) -> list[tuple[int, int, int]]:
    """``words_dict.split(text)``: (word id, start, end) for each word, as the library."""
    words: list[tuple[int, int, int]] = []
    n = len(text)
    search = _IRREGULAR.search
    i = 0
    while i < n:
        hit = search(text, i)
        end = hit.start() if hit is not None else n
        i = _plain(words_dict, text, i, end, words)
        if i < n:
            i = _step(words_dict, text, i, words)
    return words


class _Words(Dict):
    """The scanner's dictionary (shared, not copied) with :func:`split` as its splitter."""

    def split(self, text: str) -> list[tuple[int, int, int]]:
        return split(self, text)


def fast_scanner(base: Scanner) -> Scanner:
    """A scanner sharing ``base``'s compiled program, dictionary and lazily built automaton,
    whose matcher splits with :func:`split`; ``base`` (the library's global) is untouched."""
    words = _Words()
    words._map = base.dict._map
    words.list = base.dict.list
    matcher = copy.copy(base.re)
    matcher.dict = words
    scanner = copy.copy(base)
    scanner.dict = words
    scanner.re = matcher
    return scanner
