"""bench_risk's correlation comparison: the suite's alternated rounds, refused on a
disagreement with the peer."""

from __future__ import annotations

import re

import numpy as np
import pytest

from benchmarks.risk import bench_risk


def test_correlation_rounds_alternate_with_the_peer_round_by_round() -> None:
    returns = np.random.default_rng(5).normal(0.0, 0.01, size=(64, 8))
    measured = bench_risk.correlation_rounds(returns, quick=True)
    assert len(measured.times) == bench_risk.CORRELATION_ROUNDS
    assert all(ours > 0 and theirs > 0 for ours, theirs in measured.times)


def test_a_disagreement_with_np_corrcoef_stops_the_bench() -> None:
    """A constant column: ours reports 0 against the others, np.corrcoef NaN."""
    returns = np.random.default_rng(5).normal(0.0, 0.01, size=(64, 8))
    returns[:, 3] = 0.5
    with (
        np.errstate(invalid="ignore"),  # np.corrcoef's 0/0
        pytest.raises(SystemExit, match=r"disagrees with np\.corrcoef: this is a bug"),
    ):
        bench_risk.correlation_rounds(returns, quick=True)


@pytest.mark.e2e
def test_the_printed_comparison_is_every_round_and_how_many_met_the_goal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bench_risk.bench_correlation(quick=True)
    out = capsys.readouterr().out
    found = re.search(r"per round: ((?:\d+\.\d\d ?){5}); (\d) of 5 rounds >= 1\.0", out)
    assert found, out
    ratios = [float(r) for r in found.group(1).split()]
    met = int(found.group(2))  # of the unrounded ratios: a printed 1.00 may be 0.996
    assert sum(r >= 1.01 for r in ratios) <= met <= sum(r >= 1.0 for r in ratios)
