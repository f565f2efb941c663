"""benchmarks.alternation: ours and the peer interleave call by call; rounds keep every
ratio and report the worst."""

from __future__ import annotations

from benchmarks.alternation import Rounds, best_pair, rounds


def test_ours_and_the_peer_alternate_and_a_slow_peer_runs_fewer_times() -> None:
    calls: list[str] = []
    t_ours, t_peer = best_pair(lambda: calls.append("ours"), lambda: calls.append("peer"), 3)
    assert calls == ["ours", "peer"] * 3
    assert 0.0 <= t_ours < 1.0 and 0.0 <= t_peer < 1.0
    calls.clear()
    best_pair(lambda: calls.append("ours"), lambda: calls.append("peer"), 3, peer_repeat=1)
    assert calls == ["ours", "peer", "ours", "ours"]


def test_rounds_repeat_the_alternation() -> None:
    calls: list[str] = []
    measured = rounds(lambda: calls.append("ours"), lambda: calls.append("peer"), 2, 4)
    assert calls == ["ours", "peer"] * 8
    assert len(measured.times) == len(measured.ratios) == 4


def test_the_worst_round_is_the_lowest_ratio_and_each_round_counts() -> None:
    measured = Rounds(((1.0, 1.5), (2.0, 1.0), (1.0, 0.9), (1.0, 1.0)))
    assert measured.ratios == (1.5, 0.5, 0.9, 1.0)
    assert measured.worst == (2.0, 1.0)
    assert measured.met(1.0) == 2  # 1.5 and exactly 1.0
    assert measured.met(2.0) == 0
