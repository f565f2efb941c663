"""image.toml and image.lock: parsing, validation, byte-stable rendering, freshness."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci.image import lock_format
from ci.image.errors import ImageError

HEX = "a" * 64


def lock() -> lock_format.Lock:
    deb = lock_format.DebPin(
        "libc6",
        "2.36-9",
        "amd64",
        "glibc",
        "2.36-9",
        "bookworm",
        "pool/main/g/glibc/libc6.deb",
        10,
        HEX,
    )
    wheel = lock_format.WheelPin(
        "numpy", "2.4.6", "numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl", "b" * 64
    )
    return lock_format.Lock(HEX, "c" * 64, "bookworm", "amd64", (deb,), (wheel,))


def test_render_parse_round_trip_is_byte_stable(tmp_path: Path) -> None:
    text = lock_format.render_lock(lock())
    assert lock_format.parse_lock(text, "x") == lock()
    path = tmp_path / "image.lock"
    lock_format.write_lock(path, lock())
    assert path.read_text(encoding="utf-8") == text
    assert lock_format.read_lock(path) == lock()
    assert "://" not in text


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('sha256 = "' + HEX + '"', 'sha256 = "' + HEX[:-1] + 'g"', "64 lowercase hex"),
        ("pool/main/g/glibc/libc6.deb", "http://x/libc6.deb", "must be a pool path"),
        ("size = 10", "size = 0", "positive integer"),
        ("schema = 1", "schema = 2", "schema 2 is not 1"),
        ('name = "numpy"', 'name = ""', "non-empty string"),
        (".whl", ".zip", "wheel file name"),
        ("schema = 1", "schema = [", "not valid TOML"),
    ],
)
def test_invalid_locks(old: str, new: str, message: str) -> None:
    text = lock_format.render_lock(lock()).replace(old, new, 1)
    with pytest.raises(ImageError, match=message):
        lock_format.parse_lock(text, "image.lock")


def test_duplicates_and_empty() -> None:
    text = lock_format.render_lock(lock())
    deb_block = text[text.index("[[deb]]") : text.index("[[wheel]]")]
    with pytest.raises(ImageError, match="deb libc6 is locked twice"):
        lock_format.parse_lock(text + "\n" + deb_block, "x")
    no_debs = text.replace(deb_block, "")
    with pytest.raises(ImageError, match="no \\[\\[deb\\]\\] entries"):
        lock_format.parse_lock(no_debs, "x")


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="run scripts/gate -s image-lock"):
        lock_format.read_lock(tmp_path / "image.lock")
    with pytest.raises(ImageError, match="not found"):
        lock_format.read_spec(tmp_path / "image.toml")


def test_the_repository_spec_parses() -> None:
    spec = lock_format.read_spec(Path(__file__).parents[3] / lock_format.SPEC_FILE)
    assert "python3.11-minimal" in spec.roots and "dpkg" in spec.excludes
    assert spec.site_packages == "usr/local/lib/python3.11/dist-packages"
    assert len(spec.sha256) == 64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x = 1", "missing \\[debian\\] table"),
        ('[debian]\ncodename = "b"\nroots = ["x"]\n[python]\n[paths]', "release must be"),
        (
            '[debian]\ncodename="b"\nrelease="12"\narchitecture="amd64"\nroots=[]\n[python]\n[paths]',
            "roots is empty",
        ),
        ('[debian]\nroots="x"\n[python]\n[paths]', "roots must be a list"),
        ("[debian", "not valid TOML"),
    ],
)
def test_invalid_specs(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "image.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ImageError, match=message):
        lock_format.read_spec(path)


def test_check_fresh(tmp_path: Path) -> None:
    spec = lock_format.read_spec(Path(__file__).parents[3] / lock_format.SPEC_FILE)
    runtime = tmp_path / "runtime.txt"
    runtime.write_text("x\n", encoding="utf-8")
    problems = lock_format.check_fresh(lock(), spec, runtime)
    assert any("image.toml changed" in p for p in problems)
    assert any("runtime.txt changed" in p for p in problems)
    import hashlib

    fresh = lock_format.Lock(
        spec.sha256, hashlib.sha256(b"x\n").hexdigest(), "trixie", "amd64", lock().debs, ()
    )
    assert lock_format.check_fresh(fresh, spec, runtime) == [
        "image.lock is for another release or architecture; run scripts/gate -s image-lock"
    ]
    with pytest.raises(ImageError, match="run scripts/gate -s lock"):
        lock_format.check_fresh(fresh, spec, tmp_path / "missing.txt")
    assert lock_format.deb_names(lock().debs) == ("libc6",)
