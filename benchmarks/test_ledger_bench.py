"""pytest-benchmark drivers of the ledger benchmarks in ``solvent.bench``.

The workloads are ``solvent.bench``'s own (no copy here): every test prepares a
``bench.Trial`` per round (untimed setup) and times its ``run()``, for the
compiled core and for the Python twin, grouped by the benchmark's name so the
two appear side by side::

    .venv/bin/pytest benchmarks/ --benchmark-enable            # timed, quick sizes
    SOLVENT_BENCH_SIZE=full .venv/bin/pytest benchmarks/ --benchmark-enable

Under plain ``pytest benchmarks/`` (pyproject's addopts disable benchmarking)
each test runs its workload once, as a smoke test. Every test also checks that
both cores end in the same journal head (same records, same outcomes).

Units: each round processes ``extra_info['units']`` of ``extra_info['unit']``;
divide by the round time for a rate (``solvent bench`` prints rates directly).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from solvent import bench

SIZES = bench.FULL if os.environ.get("SOLVENT_BENCH_SIZE") == "full" else bench.QUICK
ROUNDS = max(3, SIZES.repeats)

# workload name -> the final check of the first core that ran it
_checks: dict[str, Any] = {}


def _time_trials(
    benchmark: Any, name: str, make: Callable[[], bench.Trial], unit: str
) -> dict[str, Any]:
    """Time ``make().run()`` for ``ROUNDS`` rounds (one when benchmarking is
    disabled), a fresh trial per round; return the last trial's info."""
    made: list[bench.Trial] = []

    def setup() -> tuple[tuple[bench.Trial], dict[str, Any]]:
        if made:
            made[-1].close()
        made.append(make())
        return (made[-1],), {}

    try:
        units = benchmark.pedantic(
            lambda trial: trial.run(), setup=setup, rounds=ROUNDS, iterations=1
        )
        made[-1].finish()
        info = made[-1].info
    finally:
        if made:
            made[-1].close()
    benchmark.extra_info.update(unit=unit, units=units)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None and stats.stats.min:
        benchmark.extra_info[f"best_{unit}_per_s"] = round(units / stats.stats.min)
    check = info.get("check")
    assert _checks.setdefault(name, check) == check, "the cores disagree"
    return info


@pytest.fixture(scope="module")
def calls() -> list[bench.Columns]:
    columns = bench.transfer_columns(SIZES.accounts, SIZES.bulk_transfers)
    return columns.split(SIZES.bulk_items_per_call)


@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("replay")


@pytest.fixture(scope="module")
def replay_store(replay_dir: Path) -> Iterator[bench.ReplayStore]:
    yield bench.build_replay_store(
        str(replay_dir), SIZES.replay_accounts, transfer_records=SIZES.replay_records,
        records_per_batch=SIZES.replay_records_per_batch, name="replay.db",
    )


@pytest.fixture(scope="module")
def replay_bulk_store(replay_dir: Path) -> Iterator[bench.ReplayStore]:
    yield bench.build_replay_store(
        str(replay_dir), SIZES.replay_accounts, bulk_items=SIZES.replay_bulk_items,
        bulk_items_per_record=SIZES.replay_bulk_items_per_record, name="replay-bulk.db",
    )


@pytest.mark.parametrize("core", bench.CORES)
@pytest.mark.benchmark(group="ledger.transfer_bulk_memory")
def test_transfer_bulk_memory(benchmark: Any, core: str, calls: list[bench.Columns]) -> None:
    info = _time_trials(
        benchmark, "bulk_memory",
        lambda: bench.bulk_memory_trial(core, SIZES.accounts, calls), "transfers",
    )
    assert info["applied"] + info["outcomes"].get("insufficient_funds", 0) == info["items"]


@pytest.mark.parametrize("core", bench.CORES)
@pytest.mark.benchmark(group="ledger.transfer_durable_sqlite")
def test_transfer_durable_sqlite(benchmark: Any, core: str, calls: list[bench.Columns]) -> None:
    info = _time_trials(
        benchmark, "durable_sqlite",
        lambda: bench.durable_trial(core, SIZES.accounts, calls), "transfers",
    )
    benchmark.extra_info.update(
        transfers_per_commit=SIZES.bulk_items_per_call,
        journal_mode=info["journal_mode"],
        synchronous=info["synchronous"],
    )
    assert info["journal_mode"] == "wal"


@pytest.mark.parametrize("core", bench.CORES)
@pytest.mark.benchmark(group="ledger.transfer_single_batched_sqlite")
def test_transfer_single_batched_sqlite(benchmark: Any, core: str) -> None:
    transfers = bench.single_transfers(SIZES.accounts, SIZES.single_transfers)
    info = _time_trials(
        benchmark, "single_batched",
        lambda: bench.single_batched_trial(
            core, SIZES.accounts, transfers, SIZES.single_per_commit
        ),
        "transfers",
    )
    benchmark.extra_info.update(transfers_per_commit=SIZES.single_per_commit)
    assert 0 < info["refused"] < len(transfers)


@pytest.mark.parametrize("core", bench.CORES)
@pytest.mark.benchmark(group="ledger.replay")
def test_replay(benchmark: Any, core: str, replay_store: bench.ReplayStore) -> None:
    _time_trials(
        benchmark, "replay", lambda: bench.replay_trial(core, replay_store, "records"),
        "records",
    )


@pytest.mark.parametrize("core", bench.CORES)
@pytest.mark.benchmark(group="ledger.replay_bulk")
def test_replay_bulk(benchmark: Any, core: str, replay_bulk_store: bench.ReplayStore) -> None:
    _time_trials(
        benchmark, "replay_bulk",
        lambda: bench.replay_trial(core, replay_bulk_store, "items"), "transfer_items",
    )


@pytest.mark.parametrize("core", bench.CORES)
@pytest.mark.benchmark(group="ledger.verify")
def test_verify(benchmark: Any, core: str, replay_store: bench.ReplayStore) -> None:
    _time_trials(
        benchmark, "verify", lambda: bench.verify_trial(core, replay_store), "records"
    )


def test_solvent_bench_quick_json(capsys: pytest.CaptureFixture[str]) -> None:
    """``solvent bench --quick --json --only ledger.transfer_bulk`` prints one JSON
    object of the documented shape (the CLI path of the same workloads)."""
    import json

    assert bench.main(quick=True, as_json=True, only=["ledger.transfer_bulk"]) == 0
    out = json.loads(capsys.readouterr().out)
    res = out["ledger.transfer_bulk_memory"]
    assert set(res) == {"unit", "value", "baselines", "params"}
    assert res["baselines"]["python_twin"] > 0
    assert res["params"]["compiled_over_twin"] > 0
