"""Risk benchmarks: batched checks, single-order check, correlation (vector vs peers).

Run: .venv/bin/python benchmarks/risk/bench_risk.py [--quick]
Peers measured in the same run: the scalar twin (batched checks, correlation) and
np.corrcoef (correlation: the README table's measurement, :func:`correlation_rounds`).
Prints the platform (CPU features, BLAS) first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks.alternation

from benchmarks.alternation import Rounds, rounds
from bot4.infrastructure.platform import OPENBLAS_ENV, report
from bot4.risk import (
    AccountLimits,
    InstrumentLimits,
    Order,
    OrderBatch,
    RiskLimits,
    RiskState,
    SingleOrderChecker,
    check_batch_scalar,
    check_batch_vector,
    correlation_scalar,
    correlation_vector,
)

N_ACCOUNTS = 64
N_INSTRUMENTS = 100
CORRELATION_SHAPE = (2520, 500)  # T × N: ten years of daily returns, 500 assets
CORRELATION_ROUNDS = 5


def best_of(fn: Callable[[], object], repeat: int, number: int = 1) -> float:
    """Best wall time per call (seconds) over ``repeat`` rounds of ``number`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def print_platform() -> None:
    rep = report()
    print("== platform")
    print(f"python {rep.python}  numpy {rep.numpy}  machine {rep.machine}")
    print(f"simd   {' '.join(rep.cpu.vector_extensions) or 'none'} (best: {rep.cpu.best})")
    print(f"numpy kernels by target: {rep.kernel_targets}")
    for lib in rep.blas:
        print(
            f"blas   {lib.internal_api} {lib.version} kernel={lib.architecture} "
            f"threads={lib.num_threads}"
        )
    for name in OPENBLAS_ENV:
        if name in os.environ:
            kernels = ", ".join(f"{lib.architecture}" for lib in rep.blas) or "no BLAS loaded"
            print(f"env    {name}={os.environ[name]} is set: BLAS kernel in use = {kernels}")
    print(f"path   {rep.path} (forced scalar: {rep.forced_scalar})")


def make_limits(*, binding: bool = False) -> RiskLimits:
    """Loose limits no batch can reach, or ``binding`` ones every rule must count exactly."""
    return RiskLimits(
        accounts=tuple(
            AccountLimits(
                id=k,
                name=f"acct{k}",
                max_gross_exposure=2e6 if binding else 5e9,
                max_net_exposure=1e6 if binding else 2e9,
                max_open_orders=400 if binding else 1_000_000,
                max_orders_per_window=2 if binding else 1_000_000,
            )
            for k in range(N_ACCOUNTS)
        ),
        instruments=tuple(
            InstrumentLimits(
                id=k,
                name=f"inst{k}",
                max_order_qty=90,
                max_notional=8_500.0,
                price_band=0.05,
                max_position=300 if binding else 200_000,
            )
            for k in range(N_INSTRUMENTS)
        ),
        duplicate_window_ns=1_000,
        rate_window_ns=1_000_000,
    )


def make_batch(n: int, rng: np.random.Generator) -> OrderBatch:
    return OrderBatch.from_columns(
        ts=np.sort(rng.integers(0, 10**9, n)),
        account=rng.integers(0, N_ACCOUNTS + 1, n),  # a few unknown accounts
        instrument=rng.integers(0, N_INSTRUMENTS, n),
        side=rng.choice(np.array([-1, 1], dtype=np.int8), n),
        qty=rng.integers(1, 100, n),
        price=rng.choice(np.array([94.0, 99.5, 100.0, 100.5, 101.0]), n),
    )


def bench_batches(quick: bool, *, binding: bool = False) -> None:
    kind = "binding limits: every rule counted exactly" if binding else "loose limits"
    print(f"\n== batched pre-trade checks, {kind} (orders/s; peer: scalar twin, same batch)")
    print(f"{'batch':>8} {'vector':>14} {'scalar':>14} {'vector/scalar':>14}")
    rng = np.random.default_rng(1)
    limits = make_limits(binding=binding)
    state = RiskState.initial(limits, dict.fromkeys(range(N_INSTRUMENTS), 100.0))
    for n in (1, 64, 4096, 65536):
        orders = make_batch(n, rng)
        vec = check_batch_vector(orders, limits, state)
        sca = check_batch_scalar(orders, limits, state)
        if not np.array_equal(vec.failed, sca.failed):
            raise SystemExit("vector and scalar paths disagree: this is a bug")
        number = max(1, 20_000 // n) if not quick else max(1, 2_000 // n)
        t_vec = best_of(
            partial(check_batch_vector, orders, limits, state), 3 if quick else 7, number
        )
        t_sca = best_of(
            partial(check_batch_scalar, orders, limits, state),
            1 if quick else 3,
            max(1, number // 10),
        )
        print(f"{n:>8} {n / t_vec:>14,.0f} {n / t_sca:>14,.0f} {t_sca / t_vec:>13.1f}x")
    print("goal: >= 20,000,000 orders/s at 4096+ (vector)")


def bench_single(quick: bool) -> None:
    print("\n== single-order check (ns per call, includes ~1 perf_counter_ns call)")
    limits = make_limits()
    state = RiskState.initial(limits, dict.fromkeys(range(N_INSTRUMENTS), 100.0))
    checker = SingleOrderChecker(limits, state)
    rng = np.random.default_rng(2)
    n = 50_000 if quick else 400_000
    accounts = rng.integers(0, N_ACCOUNTS, n).tolist()
    instruments = rng.integers(0, N_INSTRUMENTS, n).tolist()
    qty = rng.integers(1, 100, n).tolist()
    orders = [
        Order(ts=k * 10_000, account=a, instrument=i, side=1 if k % 2 else -1, qty=q, price=100.0)
        for k, (a, i, q) in enumerate(zip(accounts, instruments, qty, strict=True))
    ]
    clock = time.perf_counter_ns
    overhead = statistics.median(-(clock() - clock()) for _ in range(10_000))
    check = checker.check
    samples = []
    for order in orders:
        start = clock()
        check(order)
        samples.append(clock() - start)
    samples.sort()
    median, p99 = samples[len(samples) // 2], samples[int(len(samples) * 0.99)]
    print(
        f"median {median} ns   p99 {p99} ns   (timer overhead ~{overhead:.0f} ns)   "
        "goal: median <= 2000 ns"
    )


def correlation_returns() -> NDArray[np.float64]:
    """The seeded returns both correlation benchmarks time."""
    returns: NDArray[np.float64] = np.random.default_rng(3).normal(
        0.0, 0.01, size=CORRELATION_SHAPE
    )
    return returns


def correlation_rounds(returns: NDArray[np.float64], quick: bool) -> Rounds:
    """Ours vs np.corrcoef on ``returns``: ``CORRELATION_ROUNDS`` rounds, each best-of-N
    alternated (the goal is "no slower in 5 of 5"; benchmarks/suite.py's row is this)."""
    if not np.allclose(correlation_vector(returns), np.corrcoef(returns, rowvar=False), atol=1e-12):
        raise SystemExit("correlation_vector disagrees with np.corrcoef: this is a bug")
    repeat = 3 if quick else 15  # per round and side: a burst of load must miss one call of 15
    return rounds(
        lambda: correlation_vector(returns),
        lambda: np.corrcoef(returns, rowvar=False),
        repeat,
        CORRELATION_ROUNDS,
    )


def bench_correlation(quick: bool) -> None:
    t, n = CORRELATION_SHAPE
    print(f"\n== correlation T={t} x N={n} (peer: np.corrcoef; scalar twin on a subset)")
    returns = correlation_returns()
    measured = correlation_rounds(returns, quick)
    t_vec, t_np = measured.worst
    each = " ".join(f"{r:.2f}" for r in measured.ratios)
    print(
        f"vector {t_vec * 1e3:8.2f} ms   np.corrcoef {t_np * 1e3:8.2f} ms   (worst round)\n"
        f"np.corrcoef / vector per round: {each}; {measured.met(1.0)} of {CORRELATION_ROUNDS} "
        f"rounds >= 1.0 (goal: {CORRELATION_ROUNDS} of {CORRELATION_ROUNDS}, no slower)"
    )
    repeat = 3 if quick else 9
    small = 20 if quick else 50
    subset = returns[:, :small]
    t_sca = best_of(lambda: correlation_scalar(subset), 1)
    t_vec_small = best_of(lambda: correlation_vector(subset), repeat)
    pairs_full, pairs_small = n * (n - 1) / 2, small * (small - 1) / 2
    print(
        f"scalar N={small}: {t_sca * 1e3:.1f} ms vs vector {t_vec_small * 1e3:.3f} ms -> "
        f"vector is {t_sca / t_vec_small:,.0f}x faster (measured at N={small})"
    )
    print(
        f"scalar N={n} extrapolated by pair count: ~{t_sca * pairs_full / pairs_small:.0f} s "
        f"-> ~{t_sca * pairs_full / pairs_small / t_vec:,.0f}x slower than vector (not measured)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (fewer repeats)")
    args = parser.parse_args(argv)
    print_platform()
    bench_batches(args.quick)
    bench_batches(args.quick, binding=True)
    bench_single(args.quick)
    bench_correlation(args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
