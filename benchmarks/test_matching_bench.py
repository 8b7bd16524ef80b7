"""pytest-benchmark drivers of the order-book benchmarks in ``solvent.bench_matching``.

The workloads are ``solvent.bench_matching``'s own (``build_workload``,
``kernel_trial``, ``peer_trial``, ``bytes_per_order``): every round prepares a
fresh trial (untimed: a new book filled with the prefill) and times its
``run()``, grouped by benchmark name so the compiled book, the twin and the
peers appear side by side::

    .venv/bin/pytest benchmarks/test_matching_bench.py --benchmark-enable
    SOLVENT_BENCH_SIZE=full .venv/bin/pytest benchmarks/test_matching_bench.py --benchmark-enable

Under plain ``pytest benchmarks/`` (benchmarking disabled by pyproject's addopts)
each test runs its workload once, as a smoke test. Each round processes
``extra_info['units']`` operations (rows of the standard mix).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from solvent import bench_matching as bm

SIZES = bm.FULL if os.environ.get("SOLVENT_BENCH_SIZE") == "full" else bm.QUICK
ROUNDS = max(3, SIZES.repeats)
PEERS, MISSING = bm.load_peers()

# workload name -> the final check of the first book that ran it
_checks: dict[str, Any] = {}


def _time(benchmark: Any, make: Callable[[], bm.Trial]) -> bm.Trial:
    made: list[bm.Trial] = []

    def setup() -> tuple[tuple[bm.Trial], dict[str, Any]]:
        made.append(make())
        return (made[-1],), {}

    units = benchmark.pedantic(lambda trial: trial.run(), setup=setup, rounds=ROUNDS,
                               iterations=1)
    made[-1].finish()
    benchmark.extra_info.update(unit="ops", units=units)
    return made[-1]


def _agree(name: str, trial: bm.Trial) -> None:
    check = trial.info["check"]
    assert _checks.setdefault(name, check) == check, "the books ended in different states"


@pytest.mark.parametrize("core", bm.CORES)
def test_kernel(benchmark: Any, core: str) -> None:
    """matching.kernel: the standard mix at ~1,000 resting orders via process_many."""
    benchmark.group = "matching.kernel"
    w = bm.build_workload(SIZES.kernel_resting, SIZES.kernel_ops)
    trial = _time(benchmark, lambda: bm.kernel_trial(core, w, SIZES.rows_per_call))
    _agree("kernel", trial)
    assert trial.info["outcomes"]["ok"] > 0.9 * w.ops.rows


@pytest.mark.parametrize("peer", sorted(PEERS) or ["none"])
def test_kernel_peer(benchmark: Any, peer: str) -> None:
    """The same stream through each peer package found (benchmarks/peers/)."""
    if peer not in PEERS:
        pytest.skip(f"no peer package installed: {MISSING}")
    benchmark.group = "matching.kernel"
    w = bm.build_workload(SIZES.kernel_resting, SIZES.kernel_ops)
    # all the kernel's rows, so the times in a group compare directly
    _time(benchmark, lambda: bm.peer_trial(PEERS[peer], w, w.ops.rows))


@pytest.mark.parametrize(("name", "resting"), SIZES.sweep)
def test_kernel_sizes(benchmark: Any, name: str, resting: int) -> None:
    """matching.kernel_1k / _100k / _1m: the mix on a book of that many resting orders."""
    benchmark.group = name
    w = bm.build_workload(resting, SIZES.sweep_ops, seed=13)
    trial = _time(benchmark, lambda: bm.kernel_trial("compiled", w, SIZES.rows_per_call))
    low, _, high = w.resting_seen  # the book stays near its size through the run
    assert 0.3 * resting <= low and high <= 2 * resting
    assert trial.info["outcomes"]["ok"] > 0.9 * w.ops.rows


@pytest.mark.parametrize(("name", "resting"), SIZES.sweep)
def test_kernel_sizes_native_peer(benchmark: Any, name: str, resting: int) -> None:
    """The C++ peer on the same rows at each size: how a native book's cost grows."""
    peer = "limit-order-book"
    if peer not in PEERS:
        pytest.skip(f"{peer} is not installed (pip install -e '.[peers]'): {MISSING.get(peer)}")
    benchmark.group = name
    w = bm.build_workload(resting, SIZES.sweep_ops, seed=13)
    _time(benchmark, lambda: bm.peer_trial(PEERS[peer], w, w.ops.rows))


def test_bytes_per_order() -> None:
    """matching.bytes_per_order (a measurement, not a timing): <= 200 bytes at 1,000,000."""
    res = bm.bytes_per_order("compiled", SIZES.bytes_orders)
    print(f"\nmatching.bytes_per_order: {res}")
    assert res["bytes_per_order"] <= bm.BYTES_TARGET_MAX


def test_recent_pick_variant_cancels_recent_orders() -> None:
    """The diagnostic variant of ``cost_parts``: cancels and amends name recent orders
    (placed during the mix), where the standard mix names any resting order."""
    def recent_share(w: bm.Workload) -> float:
        ids = [oid for op, oid in zip(w.ops.op, w.ops.order_id, strict=True)
               if op in (bm.c.OP_CANCEL, bm.c.OP_AMEND)]
        return sum(oid > w.resting for oid in ids) / len(ids)

    standard = bm.build_workload(20_000, 5_000, seed=5)
    recent = bm.build_workload(20_000, 5_000, seed=5, recent=200, levels=20)
    assert recent_share(standard) < 0.5 < 0.9 < recent_share(recent)
    # the prefill proper (before the warm-up rows): 20 levels per side, or n/50
    assert len(set(recent.prefill.price[:20_000])) == 2 * 20
    assert len(set(standard.prefill.price[:20_000])) == 2 * 400
