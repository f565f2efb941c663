"""No silent skips: a pytest plugin (``-p ci.testing.skips`` or ``pytest_plugins``).

A test that cannot run because a tool or capability is missing (``pytest.skip("needs
runc")``) is reported as a **failure** unless the run declares that absence:
``BOT4_ABSENT=runc,ipv6`` accepts the skips whose reason names one of the listed words,
and the summary lists every declared absence with its count. A CI that passes therefore
ran every test it holds, or says which it did not and why.

Tests owned by another session carry a marker from ``SESSION_MARKERS`` and are
deselected (not skipped) unless that session's variable is set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Mapping

import pytest

ABSENT_ENV = "BOT4_ABSENT"
# marker → the environment variable its owning session sets to run it
SESSION_MARKERS = {
    "dockerfile": "BOT4_DOCKERFILE_CHECK",
    "remedies": "BOT4_REMEDIES_CHECK",
    # the slow tests (fresh venvs, image builds, runc, registry, daemons, subprocess CLIs,
    # whole-repo scans, CPU-heavy properties): `nox -s e2e` runs them under coverage,
    # `nox -s coverage` combines both runs
    "e2e": "BOT4_E2E",
}
_declared_skips: dict[str, list[str]] = {}


def declared_absent(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The tools and capabilities this run declares missing (``BOT4_ABSENT``)."""
    value = (os.environ if environ is None else environ).get(ABSENT_ENV, "")
    return frozenset(word.strip().lower() for word in value.split(",") if word.strip())


def declaration_for(reason: str, declared: frozenset[str]) -> str | None:
    """The declared absence a skip reason names, if any (whole words, case-insensitive)."""
    words = {w.rstrip(".-+") for w in re.findall(r"[a-z0-9][a-z0-9._+-]*", reason.lower())}
    return next((name for name in sorted(declared) if name in words), None)


def pytest_configure(config: pytest.Config) -> None:
    """Register the session markers (so ``--strict-markers`` accepts them)."""
    for marker, variable in SESSION_MARKERS.items():
        config.addinivalue_line(
            "markers", f"{marker}: owned by another session; runs only with {variable}=1"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the tests another session owns (e.g. the Dockerfile build, nox -s dockerfile)."""
    keep: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        owner = next((m for m in SESSION_MARKERS if item.get_closest_marker(m)), None)
        if owner is not None and os.environ.get(SESSION_MARKERS[owner]) != "1":
            deselected.append(item)
        else:
            keep.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """Turn a skip that names no declared absence into a failure that says how to fix it."""
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    if declaration_for(reason, declared_absent()) is not None:
        return
    report.outcome = "failed"
    report.longrepr = (
        f"undeclared skip: {reason} — install what it needs, or declare the absence "
        f"explicitly with {ABSENT_ENV}=<tool> (the summary then lists it)"
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count each declared skip where the summary is printed.

    Here, not in makereport: under pytest-xdist the reports reach the controller, which
    prints the summary, while makereport runs in the workers.
    """
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    name = declaration_for(reason.removeprefix("Skipped: "), declared_absent())
    if name is not None:
        _declared_skips.setdefault(name, []).append(report.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List every declared absence and how many tests it skipped."""
    for name, nodeids in sorted(_declared_skips.items()):
        terminalreporter.write_line(
            f"declared absent ({ABSENT_ENV}): {name} — {len(nodeids)} test(s) skipped"
        )
