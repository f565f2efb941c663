from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.markers import Marker
from packaging.version import Version

from ci.errors import GateError
from ci.gate.requirements import _marker_key, applicable, clean_lock, parse_lock, read_lock

H1 = "--hash=sha256:" + "a" * 64
H2 = "--hash=sha256:" + "b" * 64


def test_parses_continuations_hashes_and_markers() -> None:
    text = (
        "# header\n"
        f"Foo_Bar==1.2.0 \\\n    {H1} \\\n    {H2}\n    # via baz\n"
        f"colorama==0.4.6 ; sys_platform == 'win32' \\\n    {H1}\n"
    )
    pins = parse_lock(text, "x.txt")
    assert [p.name for p in pins] == ["foo-bar", "colorama"]
    assert pins[0].version == Version("1.2.0")
    assert pins[0].hashes == ("sha256:" + "a" * 64, "sha256:" + "b" * 64)
    assert pins[0].line == 2
    env = {"sys_platform": "linux"}
    assert set(applicable(pins, env)) == {"foo-bar"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--extra-index-url https://example.invalid/simple", "option '--extra-index-url'"),
        ("-e .", "option '-e'"),
        (f"foo>=1.0 {H1}", "must be pinned with =="),
        (f"foo==1.* {H1}", "must be pinned with =="),
        ("foo==1.0", "has no --hash"),
        ("foo==1.0 --hash=md5:" + "a" * 32, "non-sha256"),
        (f"foo @ git+https://example.invalid/foo.git {H1}", "URL/VCS/path"),
        (f"foo==1.0 {H1}\nfoo==1.0 {H2}", "pinned twice"),
        (f"foo=== {H1}", "not a valid requirement"),
        (f"foo===abc {H1}", "must be pinned with =="),
    ],
)
def test_rejects_anything_but_exact_hashed_pins(line: str, message: str) -> None:
    with pytest.raises(GateError, match=message):
        parse_lock(line + "\n", "bad.txt")


def test_missing_lock_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(GateError, match="run scripts/gate -s lock"):
        read_lock(tmp_path / "none.txt")


def test_real_locks_parse() -> None:
    root = Path(__file__).resolve().parents[3]
    for name in ("bootstrap", "toolchain", "runtime"):
        pins = read_lock(root / "locks" / f"{name}.txt")
        assert pins, name
        assert all(p.hashes for p in pins)


# clean_lock: parse_lock's verdict, told without packaging, for the plainest locks. Lines
# are drawn mostly valid (a few names and markers, so that names repeat under markers that
# may render alike), with the near misses clean_lock must leave to parse_lock.
GOOD = 6  # how much likelier a valid choice is than each near miss
NAMES = st.sampled_from(["foo", "Foo_Bar", "foo-bar", "x1"] * GOOD + ["-x", "x-", "fo o"])
VERSIONS = st.sampled_from(
    ["1", "2026.10.19.post1", "1.0a1", "1.0rc2.dev3", "01.2"] * GOOD + ["1.*", "1.0-1", "", "v1"]
)
ATOMS = st.sampled_from(
    [
        "sys_platform == 'win32'",
        'sys_platform=="win32"',
        "python_full_version < '3.12'",
        "os_name != 'nt'",
        "platform_machine == ''",
    ]
    * GOOD
    + [
        "python_version ~= '3.11'",
        "extra == 'x'",
        "os.name == 'nt'",
        "'nt' == os_name",
        "os_name == nt",
        "os_name == '--hash=sha256:ab'",
        "os_name == 'a\"b'",
    ]
)
SPACES = st.sampled_from(["", " ", " ", " ", "  ", "\t"])
MARKERS = st.recursive(
    ATOMS,
    lambda inner: st.one_of(
        st.tuples(
            inner, SPACES, st.sampled_from(["and", "or"] * GOOD + ["AND", "andx"]), SPACES, inner
        ).map(lambda t: f"{t[0]} {t[2]} {t[4]}" if t[1] and t[3] else "".join(t)),
        st.tuples(
            st.sampled_from(["("] * GOOD + ["", "(("]),
            inner,
            st.sampled_from([")"] * GOOD + ["", "))"]),
        ).map("".join),
    ),
    max_leaves=5,
)


@st.composite
def plain_lines(draw: st.DrawFn) -> str:
    """A lock line near uv's plainest form: mostly valid, or just off it."""
    op = draw(st.sampled_from(["=="] * GOOD + ["===", " == ", ">="]))
    line = f"{draw(NAMES)}{op}{draw(VERSIONS)}"
    if draw(st.booleans()):
        line += f"{draw(SPACES)};{draw(SPACES)}{draw(MARKERS)}{draw(SPACES)}"
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 0]))):
        line += " " + draw(st.sampled_from([H1, H2] * GOOD + ["--hash=md5:" + "a" * 32, H1 + "g"]))
    return line


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(plain_lines(), min_size=0, max_size=4))
def test_a_lock_clean_lock_accepts_parse_lock_accepts(lines: list[str]) -> None:
    """clean_lock only ever says "clean" when parse_lock accepts the lock, duplicates
    under markers that render alike included."""
    text = "\n".join(lines) + "\n"
    if clean_lock(text):
        parse_lock(text, "x.txt")


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MARKERS, MARKERS)
def test_markers_whose_keys_differ_render_differently(first: str, second: str) -> None:
    """What clean_lock's duplicate check rests on: packaging renders a marker as its
    comparisons and and/or, in order, so different keys are different renderings (and
    a marker with a key is one packaging parses)."""
    keys = _marker_key(first), _marker_key(second)
    if None in keys:
        return
    rendered = str(Marker(first)), str(Marker(second))
    if keys[0] != keys[1]:
        assert rendered[0] != rendered[1]


def test_clean_lock_knows_the_plain_locks_and_refers_the_rest() -> None:
    """Every lock of the repository and the corpus is known clean without packaging; a lock
    it cannot vouch for is left to parse_lock, which finds the problem."""
    root = Path(__file__).resolve().parents[3]
    locks = [*root.glob("locks/*.txt"), *root.glob("tests/ci/data/corpus/*/requirements.txt")]
    assert len(locks) >= 8
    for lock in locks:
        text = lock.read_text(encoding="utf-8")
        assert clean_lock(text), lock
        assert parse_lock(text, str(lock))
    # The same name under markers that differ only by parentheses or quotes: a duplicate.
    for first, second in (
        ("os_name == 'nt'", "(os_name == 'nt')"),
        ("os_name == 'nt'", 'os_name=="nt"'),
        ("os_name == '--hash=sha256:aa'", "os_name == '--hash=sha256:bb'"),
    ):
        text = f"x==1 ; {first} {H1}\nx==1 ; {second} {H1}\n"
        assert not clean_lock(text)
        with pytest.raises(GateError, match="pinned twice"):
            parse_lock(text, "x.txt")
    different = f"x==1 ; os_name == 'nt' {H1}\nx==1 ; os_name != 'nt' {H1}\n"
    assert clean_lock(different)
    assert len(parse_lock(different, "x.txt")) == 2
    for bad in (f"x==1 {H1}\nx==1 {H2}\n", f"x>=1 {H1}\n", "x==1\n", f"-e . {H1}\n"):
        assert not clean_lock(bad)
        with pytest.raises(GateError):
            parse_lock(bad, "x.txt")


def test_licenses_never_imports_packaging_for_a_clean_lock(tmp_path: Path) -> None:
    """The point of clean_lock: `python -m ci licenses` on the corpus's plain lock leaves
    packaging (~110 M instructions to import) out; the verdicts are the usual ones."""
    import subprocess
    import sys
    import venv

    root = Path(__file__).resolve().parents[3]
    corpus = root / "tests" / "ci" / "data" / "corpus" / "jupyterlab"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(tmp_path / "venv")
    site = next((tmp_path / "venv").glob("lib/python3*/site-packages"))
    site.rmdir()
    site.symlink_to(corpus / "site", target_is_directory=True)
    code = (
        "import sys\n"
        "from ci.cli import main\n"
        f"code = main(['licenses', '--venv', {str(tmp_path / 'venv')!r},"
        f" '--lock', {str(corpus / 'requirements.txt')!r}])\n"
        "print(code, sorted(m for m in sys.modules if m.startswith('packaging')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert done.stdout.strip().splitlines()[-1] == "1 []", done.stdout + done.stderr
    assert "source:" not in done.stderr  # the lock is clean; the denials are licences
    assert "licence: certifi" in done.stderr
