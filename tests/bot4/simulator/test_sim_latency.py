"""Latency distributions: shapes, seeding, never negative, validation."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4.simulator.errors import SimulatorError
from bot4.simulator.latency import LatencyDistribution, LatencyKind, latency_problem


def test_constant() -> None:
    sample = LatencyDistribution(LatencyKind.CONSTANT, value=150).sampler(random.Random(1))
    assert {sample() for _ in range(10)} == {150_000}


def test_normal_is_clamped_and_seeded() -> None:
    dist = LatencyDistribution(LatencyKind.NORMAL, mean=1, sigma=100)
    a = dist.sampler(random.Random(5))
    b = dist.sampler(random.Random(5))
    xs = [a() for _ in range(500)]
    assert xs == [b() for _ in range(500)]
    assert min(xs) == 0 and max(xs) > 0


def test_lognormal_and_empirical() -> None:
    logn = LatencyDistribution(LatencyKind.LOGNORMAL, mu=5.0, sigma=0.0).sampler(random.Random(1))
    assert logn() == round(148.4131591025766 * 1000)
    emp = LatencyDistribution(LatencyKind.EMPIRICAL, samples=(1.0, 2.5)).sampler(random.Random(1))
    assert {emp() for _ in range(100)} == {1000, 2500}


def test_describe() -> None:
    assert LatencyDistribution().describe() == "constant 0µs"
    assert "normal" in LatencyDistribution(LatencyKind.NORMAL, mean=3, sigma=1).describe()
    assert "mu=1" in LatencyDistribution(LatencyKind.LOGNORMAL, mu=1).describe()
    assert LatencyDistribution(LatencyKind.EMPIRICAL, samples=(1.0,)).describe() == "empirical n=1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": LatencyKind.NORMAL, "sigma": -1.0}, "sigma must be ≥ 0, got -1"),
        ({"value": -2.0}, "value must be ≥ 0, got -2"),
        ({"kind": LatencyKind.NORMAL, "mean": -3.0}, "mean must be ≥ 0, got -3"),
        ({"kind": LatencyKind.EMPIRICAL}, "samples must list at least one"),
        ({"kind": LatencyKind.EMPIRICAL, "samples": (1.0, -4.0)}, "samples must be ≥ 0, got -4"),
        ({"mu": float("inf")}, "finite"),
    ],
)
def test_bad_parameters(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SimulatorError, match=message):
        LatencyDistribution(**kwargs)  # type: ignore[arg-type]


def test_problem_is_none_when_fine() -> None:
    assert latency_problem(LatencyKind.CONSTANT, 1.0, 0.0, 0.0, ()) is None


@settings(max_examples=60)
@given(
    kind=st.sampled_from(list(LatencyKind)),
    a=st.floats(0, 1e4),
    sigma=st.floats(0, 1e4),
    mu=st.floats(-5, 10),
    samples=st.lists(st.floats(0, 1e5), min_size=1, max_size=5),
    seed=st.integers(0, 2**32),
)
def test_latencies_are_never_negative(
    kind: LatencyKind, a: float, sigma: float, mu: float, samples: list[float], seed: int
) -> None:
    dist = LatencyDistribution(
        kind,
        value=a,
        mean=a,
        sigma=min(sigma, 3.0) if kind is LatencyKind.LOGNORMAL else sigma,
        mu=mu,
        samples=tuple(samples),
    )
    sample = dist.sampler(random.Random(seed))
    assert all(sample() >= 0 for _ in range(50))
