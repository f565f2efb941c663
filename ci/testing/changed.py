"""Changed-only test selection for local runs (`scripts/gate -s tests -- --changed[=REF]`).

The last full runs (`tests`, `e2e`) record which test ran each measured line
(``--cov-context=test``). A file changed against REF (the working tree's diff, untracked
files included) selects: every test that ran any of its lines, if it is measured source;
the whole file, if it is a test module; the whole directory, if it is a conftest.py or
another helper module under tests/. What no recorded line ties to a test is chosen
conservatively, since a narrow guess would hide a failure:
- a file that configures every run (pyproject.toml, noxfile.py, a lock, pytest or coverage
  settings) selects the whole suite;
- a Python file in a measured tree that no test has run yet (a new module) selects the
  tests mirroring its place (src/bot4/risk/x.py → tests/bot4/risk/, the nearest that
  exists; the whole suite if none does);
- any other file (docs, data, policy) selects the test modules that name it, by its path
  or its file name, and nothing if none does.
It is a local shortcut, never a verdict: CI always runs everything.

Prints, per changed file, what it selected and why; writes one pytest argument per line
to --out (read by pytest as ``@FILE``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from coverage import CoverageData
from coverage.exceptions import CoverageException

from ci.errors import GateError

_PHASES = ("|run", "|setup", "|teardown")
_SHOWN = 5
_TESTS = "tests"
# files whose change can alter any test run: dependencies, pytest/coverage/nox settings
_RUN_CONFIG = frozenset(
    {"pyproject.toml", "setup.cfg", "setup.py", "tox.ini", "pytest.ini", ".coveragerc",
     "noxfile.py", "conftest.py"}
)  # fmt: skip


def changed_files(root: Path, base: str) -> list[str]:
    """Files that differ between REF and the working tree, and untracked files (sorted)."""

    def git(*args: str) -> list[str]:
        done = subprocess.run(  # noqa: S603  # nosec B603 B607 - fixed argv, git from PATH
            ["git", "-C", str(root), *args],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["failed"])[0]
            raise GateError(f"git {' '.join(args[:2])}: {first}")
        return [line for line in done.stdout.splitlines() if line]

    # --end-of-options: a REF such as `--output=FILE` is a revision git refuses, not an option
    diff = git("diff", "--name-only", "--no-renames", "--end-of-options", base, "--")
    untracked = git("ls-files", "--others", "--exclude-standard")
    return sorted(set(diff) | set(untracked))


def _test_of(context: str) -> str | None:
    """The test a coverage context names, without its phase and parameters (so a test
    whose parameters changed is still found); None for code run outside a test."""
    for phase in _PHASES:
        context = context.removesuffix(phase)
    return context.split("[", 1)[0] or None


def tests_by_file(data_files: Iterable[Path]) -> dict[str, set[str]]:
    """Measured file (relative path) → the tests that ran any of its lines."""
    found: dict[str, set[str]] = {}
    for path in data_files:
        data = CoverageData(basename=str(path))
        try:
            data.read()
        except CoverageException as exc:
            raise GateError(f"{path}: not coverage data from a full run ({exc})") from None
        for measured in data.measured_files():
            tests = found.setdefault(PurePosixPath(measured).as_posix(), set())
            for contexts in (data.contexts_by_lineno(measured) or {}).values():
                tests.update(t for c in contexts if (t := _test_of(c)) is not None)
    return found


def _is_test_module(root: Path, name: str) -> bool:
    path = PurePosixPath(name)
    return (
        not path.is_absolute()
        and path.parts[:1] == ("tests",)
        and ".." not in path.parts
        and (root / name).is_file()
    )


def _configures_runs(path: PurePosixPath) -> bool:
    """A dependency lock or a pytest/coverage/nox setting: it can change any test's run."""
    return (
        (len(path.parts) == 1 and path.name in _RUN_CONFIG)
        or path.suffix == ".lock"
        or path.parts[0] == "locks"
    )


def _mirrored_tests(root: Path, path: PurePosixPath) -> str:
    """The nearest existing tests directory mirroring ``path`` (tests mirror the module
    tree, with src/ dropped); ``tests`` itself when none closer exists."""
    parts = path.parts[1:-1] if path.parts[0] == "src" else path.parts[:-1]
    while parts:
        candidate = PurePosixPath(_TESTS, *parts)
        if (root / candidate).is_dir():
            return str(candidate)
        parts = parts[:-1]
    return _TESTS


def _test_texts(root: Path, cache: dict[str, str]) -> dict[str, str]:
    """Every test module's text, by relative path (read once per selection)."""
    if not cache:
        for module in sorted((root / _TESTS).rglob("test_*.py")):
            rel = module.relative_to(root).as_posix()
            cache[rel] = module.read_text(encoding="utf-8", errors="replace")
    return cache


def _names(text: str, path: PurePosixPath) -> bool:
    """Whether a test module's source names ``path``: its relative path or its file name."""
    return str(path) in text or path.name in text


def _shown(items: Sequence[str]) -> str:
    return ", ".join(items[:_SHOWN]) + (" …" if len(items) > _SHOWN else "")


def _unrecorded(
    root: Path, path: PurePosixPath, measured_roots: set[str], texts: dict[str, str]
) -> tuple[list[str], str]:
    """(what to run, why) for a changed file no recorded test context ties to a test."""
    if _configures_runs(path):
        return [_TESTS], "configures every test run → the whole suite"
    if path.suffix == ".py" and path.parts[0] in measured_roots:
        mirror = _mirrored_tests(root, path)
        return [mirror], f"no test ran it in the last full runs → every test under {mirror}/"
    naming = [t for t, text in _test_texts(root, texts).items() if _names(text, path)]
    if naming:
        return naming, f"named by {len(naming)} test module(s) → {_shown(naming)}"
    return [], "no test ran or names it → selects nothing"


def select(
    root: Path, changed: Sequence[str], by_file: dict[str, set[str]]
) -> tuple[list[str], list[str]]:
    """(pytest arguments, one explanation line per changed file)."""
    whole: set[str] = set()
    single: set[str] = set()
    why: list[str] = []
    measured_roots = {
        PurePosixPath(m).parts[0] for m in by_file if not PurePosixPath(m).is_absolute()
    }
    texts: dict[str, str] = {}
    for name in changed:
        path = PurePosixPath(name)
        on_disk = (root / name).exists()
        if path.name == "conftest.py" and path.parts[0] == "tests":
            target = str(path.parent) if on_disk else None
            if target is not None:
                whole.add(target)
            why.append(f"{name}: conftest changed → every test under {path.parent}/")
        elif path.parts[0] == "tests" and path.name.startswith("test_") and path.suffix == ".py":
            if on_disk:
                whole.add(name)
                why.append(f"{name}: test module changed → all its tests")
            else:
                why.append(f"{name}: test module deleted → nothing to run")
        elif path.parts[0] == "tests" and path.suffix == ".py":
            if on_disk:
                whole.add(str(path.parent))
            why.append(f"{name}: test helper changed → every test under {path.parent}/")
        elif by_file.get(name):
            tests = sorted(by_file[name])
            single.update(tests)
            why.append(
                f"{name}: ran by {len(tests)} test(s) in the last full runs → {_shown(tests)}"
            )
        else:
            targets, reason = _unrecorded(root, path, measured_roots, texts)
            whole.update(targets)
            why.append(f"{name}: {reason}")
    if _TESTS in whole:  # the whole suite holds every other selection
        return [_TESTS], why
    # a test inside a selected file or directory is already selected
    covered = [w + "/" if not w.endswith(".py") else w for w in whole]
    kept = {t for t in single if not any(t.split("::", 1)[0].startswith(w) for w in covered)}
    # a test of a file since deleted cannot be run; a context naming no test module of this
    # tree (an absolute path, `..`, a pytest option from an altered data file) is not a test
    # (a test id has no whitespace: a newline would start another pytest argument in @FILE)
    kept = {
        t
        for t in kept
        if not any(c.isspace() for c in t) and _is_test_module(root, t.split("::", 1)[0])
    }
    return sorted(whole) + sorted(kept), why


def main(argv: Sequence[str] | None = None) -> int:
    """Select, explain, write --out; a one-line error and exit 1 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m ci.testing.changed")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("--base", default="HEAD", help="the git ref to diff against")
    parser.add_argument("--data", type=Path, action="append", default=[], required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    present = [d for d in args.data if d.is_file()]
    if not present:
        print(
            "changed: no coverage contexts from a full run; run scripts/gate -s tests e2e first",
            file=sys.stderr,
        )
        return 1
    for missing in (d for d in args.data if not d.is_file()):
        print(f"changed: {missing} absent: tests it recorded are not selected", file=sys.stderr)
    try:
        changed = changed_files(args.root, args.base)
        selected, why = select(args.root, changed, tests_by_file(present))
    except GateError as error:
        print(f"changed: {error}", file=sys.stderr)
        return 1
    print(f"changed-only run: {len(changed)} file(s) changed against {args.base}")
    for line in why:
        print(f"  {line}")
    try:
        args.out.write_text("".join(f"{arg}\n" for arg in selected), encoding="utf-8")
    except OSError as error:
        print(f"changed: cannot write {args.out}: {error.strerror}", file=sys.stderr)
        return 1
    print(f"changed-only run: {len(selected)} selection(s), listed in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
