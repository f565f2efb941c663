"""ci.gcpause: the collector is paused inside the call and left as it was found."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ci.gcpause import without_gc


@pytest.fixture(autouse=True)
def _restore_collector() -> Iterator[None]:
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


@pytest.mark.parametrize("state", [True, False])
def test_the_call_runs_paused_and_its_result_is_returned(state: bool) -> None:
    (gc.enable if state else gc.disable)()
    seen: list[bool] = []

    def make() -> str:
        seen.append(gc.isenabled())
        return "made"

    assert without_gc(make) == "made"
    assert seen == [False]
    assert gc.isenabled() is state


@pytest.mark.parametrize("state", [True, False])
def test_an_error_inside_propagates_and_the_state_is_restored(state: bool) -> None:
    (gc.enable if state else gc.disable)()

    def fail() -> None:
        raise KeyError("inside")

    with pytest.raises(KeyError, match="inside"):
        without_gc(fail)
    assert gc.isenabled() is state


def test_a_nested_pause_leaves_the_outer_one_paused() -> None:
    gc.enable()
    inner = without_gc(lambda: (without_gc(gc.isenabled), gc.isenabled()))
    assert inner == (False, False)
    assert gc.isenabled()
