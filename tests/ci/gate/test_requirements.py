from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from ci.errors import GateError
from ci.gate.requirements import applicable, parse_lock, read_lock

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
