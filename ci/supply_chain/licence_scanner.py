"""licenseclassifier's scanner, the same results faster. The library's cost, per process,
is four things done in pure Python, each replaced here by an identical, quicker one:

* loading its compiled program: ``marshal.load`` on a ``GzipFile`` reads it in ~40,000
  small pieces; here the file is decompressed in one call and handed to the library's own
  ``Scanner.from_compiled``, after the library's own format-version check;
* splitting a text into words, one character at a time (a 194 kB bundled
  ``yarn.js.LICENSE.txt`` ≈ 0.3 s): here plain-ASCII stretches (no ``<{&]``, found with
  ``bytes.find``) are taken whole, in bytes (lowered and split at the gaps by one
  translation and ``bytes.split``, one table lookup per word); the rest goes
  — non-ASCII word characters, HTML tags and entities, Markdown anchors and links, ``©`` —
  through the library's own functions in its order, and the words the table leaves to
  them (``copyright``, ``c``, ``…(s)``) through the library's rules one by one;
* building its DFA lazily, each state's transitions by walking the whole state once per
  word it holds: here they are gathered in one pass from each instruction's closure
  (computed once, by the library's ``_add``; cut by its ``_trim``), and a state that is
  one word instruction followed by another — most states reached — gets its single
  transition to the next instruction directly;
* walking the DFA one word at a time: here a stretch of such one-word states (template
  text taken word for word) is compared with the text's word ids in one slice, and the
  library's loop and spell check run in its order for the rest.

A scan also pauses the cyclic garbage collector (nothing it allocates forms a cycle).
Words (ids, offsets), DFA states and scan results are compared with the library's on every
corpus licence text, on damaged copies of them, on seeded generated texts and on seeded
random states (tests/ci/supply_chain/test_licence_scanner.py). The pinned library's
internals are used (``licenseclassifier._engine``): an upgrade that changes them fails
those tests rather than changing a verdict silently. Nothing is cached across runs.
"""

from __future__ import annotations

import bisect
import copy
import gzip
import itertools
import marshal
import re
import weakref
from array import array
from typing import cast

from licenseclassifier._engine.dictionary import (
    _CANON,
    ANY_WORD,
    BAD_WORD,
    Dict,
    _html_entity_size,
    _html_tag_size,
    _is_word_continue,
    _markdown_anchor_size,
    _markdown_link_size,
    fold_rune,
    to_fold,
)
from licenseclassifier._engine.matcher import (
    INST_ANY,
    INST_CUT,
    INST_MATCH,
    INST_WORD,
    MultiRE,
    _add,
    _can_misspell,
    _can_misspell_join,
    _trim,
)
from licenseclassifier._engine.scan import (
    _ARTIFACT_PATH,
    FORMAT_VERSION,
    Coverage,
    Scanner,
    builtin_scanner,
)

from ci.gcpause import without_gc

# Where the plain ASCII path stops and the library's own step takes over: the four
# characters that open a skipped HTML/Markdown span, and any non-ASCII character. The text
# is encoded to ASCII with every other code point (surrogates too) a "?", and translated
# so that those four and "?" are NUL (a NUL of the text is made 0x01): bytes.find then
# finds the next stop at memchr speed (a character class costs sre ~70 instructions a
# character), and a NUL that is a "?" of the text is passed over (:func:`_next_stop`).
_MARKS = bytes(0 if chr(c) in "&<]{?" else 1 if c == 0 else c for c in range(256))


def _marks(text: str) -> bytes:
    """The text's stop marks (see :data:`_MARKS`), one byte a code point."""
    return text.encode("ascii", "replace").translate(_MARKS)


def _next_stop(text: str, marks: bytes, i: int) -> int:
    """The first stop at or after ``i`` (a ``<{&]`` or a non-ASCII character), or the
    text's length."""
    at = marks.find(0, i)
    while at >= 0 and text[at] == "?":
        at = marks.find(0, at + 1)
    return at if at >= 0 else len(text)


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
    w, lo, hi = _canonical(text, "".join(buf), lo, j)
    words_dict._emit(words, w, lo, hi, False)
    return j


def _canonical(text: str, w: str, lo: int, hi: int) -> tuple[str, int, int]:
    """The library's rewrites of the folded word ``w`` at ``text[lo:hi]``, in its order: a
    trailing ``(s)`` (still spelt so by :func:`_plain`) is ``s``; then ``https`` is
    ``http`` (also when it was ``http(s)``), a ``c`` in parentheses is ``copyright`` and
    takes them in, ``©`` is ``copyright``; last the canonical rewrites (``this`` → ``the``)."""
    if w.endswith("(s)"):
        w = w[:-3] + "s"
    if w == "https":
        w = "http"
    elif w == "c" and lo > 0 and text[lo - 1] == "(" and hi < len(text) and text[hi] == ")":
        w = "copyright"
        lo -= 1
        hi += 1
    elif w == "©":
        w = "copyright"
    return _CANON.get(w, w), lo, hi


def _table(words_dict: Dict) -> dict[str, int]:
    """Folded word → id, for the words :func:`_plain` may emit without a second look: the
    canonical rewrites (and ``https`` → ``http``) applied, ``c`` (maybe ``(c)``) and any
    word holding a parenthesis (``(s)``) left out, a word the dictionary lacks absent."""
    known = _TABLES.get(words_dict)
    if known is not None and known[0] == len(words_dict.list):
        return known[1]
    ids = words_dict._map
    table = {w: i for w, i in ids.items() if "(" not in w and ")" not in w}
    for rewrite in (*_CANON, "https"):
        target = ids.get(_CANON.get(rewrite, "http"))
        table.pop(rewrite, None)
        if target is not None:
            table[rewrite] = target
    table.pop("c", None)
    _TABLES[words_dict] = (len(words_dict.list), table)
    return table


_TABLES: weakref.WeakKeyDictionary[Dict, tuple[int, dict[str, int]]] = weakref.WeakKeyDictionary()
_ASCII_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ASCII_WORD_BYTES = frozenset(map(ord, _ASCII_WORD_CHARS))


def _plain(
    words_dict: Dict, text: str, pos: int, end: int, words: list[tuple[int, int, int]]
) -> int:
    """The words of ``text[pos:end]``, which holds only ASCII and none of ``<{&]``: there a
    word is an ASCII letter/digit run (plus ``(s)``), folded by str.lower. Returns where
    :func:`_step` must take over: the start of a letter/digit run that reaches ``end`` (the
    character there, non-ASCII, may continue the word), else ``end``.

    The words are found and looked up in bulk, in bytes (:func:`_plain_bytes`); only the
    words the table leaves out (``copyright``, ``c``, ``…(s)``) are looked at one by one. A
    segment holding ``(S)`` (which lowering would turn into the ``(s)`` the library folds
    case-sensitively) is done word by word."""
    n = len(text)
    stop = end
    if end < n:
        while stop > pos and text[stop - 1] in _ASCII_WORD_CHARS:
            stop -= 1
    segment = text[pos:stop]
    if "(S)" in segment:
        _plain_each(words_dict, text, pos, stop, words)
        return stop
    _plain_bytes(words_dict, text, pos, segment, words)
    return stop


# A plain segment's bytes with each letter or digit lowered and anything else a space
# (bytes.split's gap), and with each letter or digit a space and anything else an "x".
_LOWERED = bytes(ord(chr(c).lower()) if chr(c) in _ASCII_WORD_CHARS else 0x20 for c in range(256))
_GAPS = bytes(0x20 if chr(c) in _ASCII_WORD_CHARS else 0x78 for c in range(256))
# The id :func:`_plain_bytes` gives a word to be looked at in full: ``c`` (which ``(c)``
# makes ``copyright``) and a word with its ``(s)``. Neither a word's id nor BAD_WORD nor
# ANY_WORD.
_ODD = -3


def _plain_bytes(
    words_dict: Dict, text: str, pos: int, segment: str, words: list[tuple[int, int, int]]
) -> None:
    """:func:`_plain`'s words of a segment without ``(S)``: a word is a letter/digit run
    (and the ``(s)`` right after it), so one table translates the bytes (lowered, gaps made
    spaces) and ``bytes.split`` yields the runs; the ids come from the table keyed by bytes
    (a word it lacks, other than ``c``, is one the library cannot find either), the bounds
    from the runs' and the gaps' lengths (the gaps split out of a second translation).
    Each ``(s)`` right after a run (which the translation split into that run and ``s``)
    then joins its run."""
    raw = segment.encode("ascii")
    lowered = raw.translate(_LOWERED)
    hits = lowered.split()
    count = len(hits)
    if not count:
        return
    ids = list(map(_bytes_table(words_dict).get, hits, itertools.repeat(BAD_WORD)))
    gaps = list(map(len, raw.translate(_GAPS).split()))
    if lowered[0] != 0x20:  # the segment starts with a word: no gap before it
        gaps.insert(0, 0)
    lengths = [0] * (2 * count)
    lengths[0::2] = gaps[:count]
    lengths[1::2] = map(len, hits)
    bounds = list(itertools.accumulate(lengths, initial=pos))
    los = bounds[1::2]
    his = bounds[2::2]
    at = raw.find(b"(s)")
    while at >= 0:
        if at and raw[at - 1] in _ASCII_WORD_BYTES:  # "(s)" after a run: one word
            k = bisect.bisect_left(his, pos + at)  # the run ending there; "s" is k + 1
            hits[k : k + 2] = [hits[k] + b"(s)"]
            ids[k : k + 2] = [_ODD]
            his[k : k + 2] = [his[k + 1] + 1]
            del los[k + 1]
        at = raw.find(b"(s)", at + 3)
    _resolve(words_dict, text, hits, ids, los, his, words)


def _bytes_table(words_dict: Dict) -> dict[bytes, int]:
    """:func:`_table` keyed by the words' ASCII bytes, with ``c`` → :data:`_ODD`."""
    table = _table(words_dict)
    known = _BYTES_TABLES.get(words_dict)
    if known is not None and known[0] is table:
        return known[1]
    keyed = {w.encode("ascii"): i for w, i in table.items() if w.isascii()}
    keyed[b"c"] = _ODD
    _BYTES_TABLES[words_dict] = (table, keyed)
    return keyed


_BYTES_TABLES: weakref.WeakKeyDictionary[Dict, tuple[dict[str, int], dict[bytes, int]]] = (
    weakref.WeakKeyDictionary()
)


def _resolve(
    words_dict: Dict,
    text: str,
    hits: list[bytes],
    ids: list[int],
    los: list[int],
    his: list[int],
    words: list[tuple[int, int, int]],
) -> None:
    """Append a plain segment's words, given their folded spellings (``hits``), the ids the
    table gave (:data:`_ODD` for a word to be looked at in full) and their bounds. The odd
    words and the copyrights (two in a row collapse) are looked at one by one, in the
    library's way."""
    spans = list(zip(ids, los, his, strict=True))
    copyright_id = words_dict._map["copyright"]
    if copyright_id not in ids and _ODD not in ids:
        words.extend(spans)
        return
    found = cast("list[tuple[int, int, int] | None]", spans)  # None: a dropped copyright
    get = words_dict._map.get
    for k in sorted(_indices(ids, _ODD) + _indices(ids, copyright_id)):
        # "copyright" (collapsed), "c", "…(s)": in full.
        w, lo, hi = _canonical(text, hits[k].decode("ascii"), los[k], his[k])
        word_id = get(w)
        if word_id is None:
            found[k] = (BAD_WORD, lo, hi)
            continue
        previous = found[k - 1] if k else (words[-1] if words else (BAD_WORD, 0, 0))
        # The library drops a copyright right after a copyright; a dropped one (None) was
        # itself right after a copyright.
        if word_id == copyright_id and (previous is None or previous[0] == copyright_id):
            found[k] = None
        else:
            found[k] = (word_id, lo, hi)
    words.extend(filter(None, found))  # a dropped copyright is None, a word a tuple


def _indices(values: list[int], value: int) -> list[int]:
    """Where ``value`` is in ``values`` (list.index: the scan runs in C)."""
    found: list[int] = []
    k = -1
    try:
        while True:
            k = values.index(value, k + 1)
            found.append(k)
    except ValueError:
        return found


def _plain_each(
    words_dict: Dict, text: str, pos: int, stop: int, words: list[tuple[int, int, int]]
) -> None:
    """:func:`_plain`'s words one at a time, from the text itself (no lowering)."""
    known = _table(words_dict).get
    get = words_dict._map.get
    append = words.append
    copyright_id = words_dict._map["copyright"]
    for hit in _PLAIN_WORD.finditer(text, pos, stop):
        w = hit.group().lower()
        word_id = known(w)
        if word_id is not None and word_id != copyright_id:
            append((word_id, *hit.span()))
            continue
        w, lo, hi = _canonical(text, w, *hit.span())
        word_id = get(w)
        if word_id is None:
            append((BAD_WORD, lo, hi))
        elif not (word_id == copyright_id and words and words[-1][0] == word_id):
            append((word_id, lo, hi))


def split(words_dict: Dict, text: str) -> list[tuple[int, int, int]]:
    """``words_dict.split(text)``: (word id, start, end) for each word, as the library."""
    words: list[tuple[int, int, int]] = []
    n = len(text)
    marks = _marks(text)
    i = 0
    while i < n:
        end = _next_stop(text, marks, i)
        i = _plain(words_dict, text, i, end, words)
        if i < n:
            i = _step(words_dict, text, i, words)
    return words


class _Words(Dict):
    """The scanner's dictionary (shared, not copied) with :func:`split` as its splitter."""

    def split(self, text: str) -> list[tuple[int, int, int]]:
        return split(self, text)


# A DFA state's facts, as the library's MultiRE._state_info returns them: the match it
# reports, the words it takes (sorted), the next state on each, the next state on any word.
_Info = tuple[int, list[int], dict[int, tuple[int, ...]], tuple[int, ...] | None]
# What may follow a word instruction for the one-step state: an instruction _trim keeps
# and _add does not expand (no ALT, JUMP or CUT), so the next state is that one alone.
_KEPT = (INST_WORD, INST_ANY, INST_MATCH)


class _State:
    """A DFA state whose transitions are made when first taken: the library makes every
    transition of a state it reaches (the start state: 284), the walk takes a few. A
    transition leads to the next state's object, so the walk never hashes a state's
    instructions (the start state's: 1,420) to find it."""

    __slots__ = (
        "any_known",
        "any_next",
        "anys",
        "key",
        "match",
        "nmap",
        "single",
        "takes",
        "words",
    )

    def __init__(
        self, key: tuple[int, ...], match: int, takes: dict[int, list[int]], anys: list[int]
    ) -> None:
        self.key = key  # the state's instructions (the library's name for the state)
        self.single = key[0] if len(key) == 1 else -1  # its one instruction, if one
        self.match = match  # the match the state reports, or -1
        self.takes = takes  # word → the word instructions that take it, in state order
        self.anys = anys  # the wildcard instructions (they take every word)
        self.nmap: dict[int, _State] = {}  # word → next state, as made
        self.any_next: _State | None = None  # the next state on any word …
        self.any_known = not anys  # … once made (none without a wildcard)
        self.words: list[int] | None = None  # sorted(takes), once the spell check needs it


class _Matcher(MultiRE):
    """The library's matcher with its DFA states built and walked more cheaply.

    The library builds a state's transition on word *w* by walking the whole state for each
    word it holds (the start state: 1,420 instructions × 284 words), for every word of
    every state it reaches. Here a transition is made when the walk first takes it (a
    :class:`_State` holds what is made), and made in one pass: the next state on *w* is
    ``_trim`` of the union of the ``_add`` closures of ``pc + 1`` for every instruction that
    takes *w* (``WORD w`` or ``ANY``) — a set, gathered from each instruction's closure
    computed once by the library's own ``_add``; the library's own ``_trim`` cuts it
    (without a ``CUT`` in the union, ``_trim`` only keeps the kept instructions, sorted). A
    state that is one word instruction followed by a kept one has the single transition
    ``(pc + 1,)``; the walk passes a stretch of such states in one comparison
    (:meth:`_walk`). :meth:`_state_info` gives a state's every transition, in the library's
    form."""

    # Per instruction, made once in a process (nothing outside the process): its closure
    # (the kept instructions, whether a CUT is among them, all of them), and how many
    # one-step states start there (:meth:`_run`); the states reached, by their instructions.
    _closures: dict[int, tuple[tuple[int, ...], bool, tuple[int, ...]]]
    _runs: dict[int, int]
    _states: dict[tuple[int, ...], _State]

    def _state(self, state: tuple[int, ...]) -> _State:
        """The state's match and the words it takes (its transitions are made later)."""
        found = self._states.get(state)
        if found is not None:
            return found
        ops = self.ops
        args = self.args
        match = -1
        anys: list[int] = []
        takes: dict[int, list[int]] = {}
        taking = takes.get
        for pc in state:
            op = ops[pc]
            if op == INST_WORD:  # most of a state
                word = args[pc]
                pcs = taking(word)
                if pcs is None:
                    takes[word] = [pc]
                else:
                    pcs.append(pc)
            elif op == INST_MATCH:
                if match == -1 or args[pc] < match:
                    match = args[pc]
            elif op == INST_ANY:
                anys.append(pc)
        found = self._states[state] = _State(state, match, takes, anys)
        return found

    def _target(self, st: _State, word: int) -> _State | None:
        """The next state on ``word`` (the library's ``nmap[word]``), or None when the state
        takes no such word."""
        nxt = st.nmap.get(word)
        if nxt is None:
            pcs = st.takes.get(word)
            if pcs is None:
                return None
            nxt = st.nmap[word] = self._state(self._next(pcs + st.anys))
        return nxt

    def _any(self, st: _State) -> _State | None:
        """The next state on any other word (the library's ``any_next``), or None."""
        if not st.any_known:
            st.any_next = self._state(self._next(st.takes.get(ANY_WORD, []) + st.anys))
            st.any_known = True
        return st.any_next

    def _words(self, st: _State) -> list[int]:
        """The words the state takes, sorted (the library's ``wl``: the spell check's order)."""
        if st.words is None:
            st.words = sorted(st.takes)
        return st.words

    def _state_info(self, state: tuple[int, ...]) -> _Info:
        """The library's ``_state_info``: the match, the words, every transition."""
        st = self._state(state)
        nmap = {word: self._next_of(st, word).key for word in st.takes}
        any_next = self._any(st)
        return st.match, list(self._words(st)), nmap, None if any_next is None else any_next.key

    def _next_of(self, st: _State, word: int) -> _State:
        """The next state on a word the state takes."""
        nxt = self._target(st, word)
        if nxt is None:  # pragma: no cover - only called with a word of st.takes
            raise KeyError(word)
        return nxt

    def _closure(self, pc: int) -> tuple[tuple[int, ...], bool, tuple[int, ...]]:
        """``_add``'s closure of ``pc``: its kept instructions, whether it holds a CUT, all."""
        found = self._closures.get(pc)
        if found is None:
            ops = self.ops
            out: list[int] = []
            _add(ops, self.args, out, set(), pc)
            kept = tuple(p for p in out if ops[p] in _KEPT)
            found = (kept, any(ops[p] == INST_CUT for p in out), tuple(out))
            self._closures[pc] = found
        return found

    def _next(self, pcs: list[int]) -> tuple[int, ...]:
        """The state after the instructions ``pcs`` advance (the library's ``_nfa_next``):
        ``_trim`` of the union of the closures of each ``pc + 1``. Without a CUT in them
        ``_trim`` keeps the kept instructions, sorted; the union of all (non-kept ones too)
        is made only for the CUT case."""
        ops = self.ops
        kept: set[int] = set()
        alone: list[int] = []  # kept instructions _add adds alone
        closures: list[tuple[int, ...]] = []
        cut = False
        for pc in pcs:
            if ops[pc + 1] in _KEPT:
                alone.append(pc + 1)
                continue
            kept_here, cut_here, every_here = self._closure(pc + 1)
            kept.update(kept_here)
            closures.append(every_here)
            cut = cut or cut_here
        kept.update(alone)
        if cut:
            trimmed: tuple[int, ...] = _trim(ops, self.args, kept.union(*closures))
            return trimmed
        return tuple(sorted(kept))

    def match(self, text: str) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """The library's ``match``, with the cyclic garbage collector paused
        (:func:`without_gc`)."""
        return without_gc(lambda: self._match(text))

    def _match(self, text: str) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """The library's ``match`` (its loop, unchanged), with :meth:`_walk` for its
        ``_match_dfa`` and the word ids listed once per text."""
        words = self.dict.split(text)
        ids = array("i", [w[0] for w in words])
        n = len(words)
        result: list[tuple[int, int, int]] = []
        start = self.start
        p0 = p1 = BAD_WORD
        i = 0
        while i < n:
            p0, p1 = p1, ids[i]
            if (p0, p1) in start:
                match, end = self._walk(text, words, ids, i - 1)
                if match >= 0 and end > 0:
                    end += i - 1
                    result.append((match, i - 1, end))
                    i = end - 1
                    p0 = BAD_WORD
            i += 1
        return words, result

    def _run(self, pc: int) -> int:
        """How many one-step states (a word instruction followed by a kept one) follow one
        another from ``pc`` on: a stretch of template text the walk takes word for word."""
        runs = self._runs
        known = runs.get(pc)
        if known is not None:
            return known
        ops = self.ops
        last = len(ops) - 1
        end = pc
        while end < last and ops[end] == INST_WORD and ops[end + 1] in _KEPT:
            end += 1
        for k in range(pc, end):
            runs[k] = end - k
        runs[end] = 0
        return end - pc

    def _skip(self, pc: int, ids: array[int], i: int) -> int:
        """How many of the text's words from ``i`` on the one-step states from ``pc`` on
        take, one each: all of the stretch in one slice comparison, else word by word."""
        run = self._run(pc)
        if not run:
            return 0
        args = self.args
        if ids[i : i + run] == args[pc : pc + run]:
            return run
        k = 0
        n = len(ids)
        while k < run and i + k < n and ids[i + k] == args[pc + k]:
            k += 1
        return k

    def _walk(
        self, text: str, words: list[tuple[int, int, int]], ids: array[int], start: int
    ) -> tuple[int, int]:
        """The library's ``_match_dfa``, in its order, except that from a one-step state the
        stretch of template words that follows is compared with the text's in one slice
        comparison: the states it passes report no match and have one transition each, so
        the library would only step through them."""
        match = -1
        end = 0
        state = self._state(self._start_state)
        n = len(words)
        i = start
        while i < n:
            single = state.single
            if single >= 0 and i >= 0:  # i == -1 (the library's quirk) reads words[-1]
                k = self._skip(single, ids, i)
                if k:
                    state = self._state((single + k,))
                    i += k
                    continue
            if state.match >= 0:
                match = state.match
                end = i - start
            word = ids[i]
            nxt = state.nmap.get(word)
            if nxt is None and word in state.takes:
                nxt = self._target(state, word)
            if nxt is not None:
                state = nxt
                i += 1
                continue
            step = self._misspelt(text, words, i, state)
            if step is not None:
                state, i, m2 = step
                if m2 >= 0:  # the split-word case reports the state it passes
                    match = m2
                    end = i - 1 - start
                continue
            any_next = state.any_next if state.any_known else self._any(state)
            if any_next is None:
                return match, end
            state = any_next
            i += 1
        if state.match >= 0:
            match = state.match
            end = n - start
        return match, end

    def _misspelt(
        self, text: str, words: list[tuple[int, int, int]], i: int, st: _State
    ) -> tuple[_State, int, int] | None:
        """The library's spell check at word ``i``, in its order: (next state, next word,
        the match the split-word case passes or -1), or None when no word fits. Its three
        tests are tried only on words of a length each can accept (a join: the two words'
        lengths together; a split: longer than the word; a misspelling: one letter more or
        less, or ``c``/``copyright``)."""
        dwords = self.dict.list
        n = len(words)
        have = _fold(text[words[i][1] : words[i][2]])
        have2 = _fold(text[words[i + 1][1] : words[i + 1][2]]) if i + 1 < n else ""
        size = len(have)
        joined = size + len(have2)
        for dw in st.words if st.words is not None else self._words(st):
            want = dwords[dw]
            length = len(want)
            if length == joined and _can_misspell_join(want, have, have2):
                return self._next_of(st, dw), i + 2, -1
            if size > length and have[:length] == want:
                rest = have[length:]
                st2 = self._next_of(st, dw)
                next2: _State | None = None
                matched = False
                for dw2 in self._words(st2):
                    if dwords[dw2] == rest:
                        next2 = self._next_of(st2, dw2)
                        matched = True
                if not matched:
                    next2 = self._any(st2)
                if next2 is not None:
                    return next2, i + 1, st2.match
            if (length - 1 <= size <= length + 1 or want in _COPYRIGHT) and _can_misspell(
                want, have
            ):
                return self._next_of(st, dw), i + 1, -1
        return None


# The words the library's spell check lets stand for each other whatever their lengths.
_COPYRIGHT = ("c", "copyright")


def _fold(word: str) -> str:
    """The library's ``to_fold``: for ASCII, its per-character fold is str.lower with the
    parentheses dropped, done here in one call each."""
    if word.isascii():
        return word.lower().replace("(", "").replace(")", "")
    return to_fold(word)


class _Scanner(Scanner):
    """The library's scanner with the collector paused over a whole scan (:func:`without_gc`):
    its words, made in the match, are freed when ``scan`` returns."""

    def scan(self, text: str) -> Coverage:
        return without_gc(lambda: Scanner.scan(self, text))


def load() -> Scanner:
    """The library's prebuilt scanner, read in one piece; the library's own loader (and its
    fallback of compiling from source) if the artifact is absent or of another format."""
    try:
        # The library's own package data, which its loader reads with marshal too.
        data = marshal.loads(gzip.decompress(_ARTIFACT_PATH.read_bytes()))  # noqa: S302  # nosec B302
    except (OSError, ValueError, EOFError, gzip.BadGzipFile):
        return builtin_scanner()
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        return builtin_scanner()
    return Scanner.from_compiled(data)


def fast_scanner(base: Scanner) -> Scanner:
    """A scanner sharing ``base``'s compiled program and dictionary, with :func:`split` as
    its splitter and :class:`_Matcher` as its matcher; ``base`` is left as it is."""
    words = _Words()
    words._map = base.dict._map
    words.list = base.dict.list
    matcher = cast("_Matcher", copy.copy(base.re))  # its class is set next
    matcher.__class__ = _Matcher
    matcher.dict = words
    matcher._info = {}  # the library's, unused: the states are in _states
    matcher._closures = {}
    matcher._runs = {}
    matcher._states = {}
    scanner = copy.copy(base)
    scanner.__class__ = _Scanner
    scanner.dict = words
    scanner.re = matcher
    return scanner
