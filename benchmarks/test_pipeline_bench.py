"""pytest-benchmark drivers of the full market pipeline in ``solvent.bench_markets``.

The same workload as ``solvent bench``'s ``matching.pipeline_memory``,
``matching.durable_sqlite`` and ``matching.pipeline_single``: a ledger with one
BTC-KRW market and 1,000 funded customers runs the standard mix through
``submit_orders`` (int rows, one compiled engine call and one journal record per
call) or through the single-order commands. Every round opens a fresh ledger
(untimed) and times the whole stream; compiled core and twin side by side::

    .venv/bin/pytest benchmarks/test_pipeline_bench.py --benchmark-enable

Under plain ``pytest benchmarks/`` each test runs once, as a smoke test, and still
checks that both cores journal the same history.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import pytest

from solvent import bench_markets as bmk
from solvent.ledger import Ledger

OPS = 20_000
_ops = bmk.workload(OPS)
_calls = bmk.resolve_rows(_ops, bmk.ROWS_PER_CALL)
_heads: dict[str, set[str]] = {}


def _bench(benchmark: Any, name: str, core: str, url_of: Callable[[str], str],
           run: Callable[[Ledger], dict[str, int]], units: int) -> None:
    made: list[Ledger] = []
    tmp = tempfile.TemporaryDirectory(prefix="solvent-bench-")

    def setup() -> tuple[tuple[Ledger], dict[str, Any]]:
        made.append(bmk.open_market_ledger(url_of(f"{tmp.name}/{len(made)}.db"), core))
        return (made[-1],), {}

    try:
        benchmark.group = name
        benchmark.extra_info["units"] = units
        benchmark.pedantic(run, setup=setup, rounds=3, iterations=1)
        _heads.setdefault(name, set()).add(made[0].head_digest)
        assert len(_heads[name]) == 1, f"{name}: the cores journaled different histories"
    finally:
        for led in made:
            led.close()
        tmp.cleanup()


@pytest.mark.parametrize("core", ["compiled", "python"])
def test_pipeline_memory(benchmark: Any, core: str) -> None:
    _bench(benchmark, "matching.pipeline_memory", core, lambda _: "memory:",
           lambda led: bmk.run_bulk(led, _calls), OPS)


@pytest.mark.parametrize("core", ["compiled", "python"])
def test_durable_sqlite(benchmark: Any, core: str) -> None:
    _bench(benchmark, "matching.durable_sqlite", core, lambda path: f"sqlite:///{path}",
           lambda led: bmk.run_bulk(led, _calls), OPS)


@pytest.mark.parametrize("core", ["compiled", "python"])
def test_pipeline_single(benchmark: Any, core: str) -> None:
    single = _ops[: OPS // 10]
    _bench(benchmark, "matching.pipeline_single", core, lambda _: "memory:",
           lambda led: bmk.run_single(led, single, bmk.ROWS_PER_CALL), len(single))
