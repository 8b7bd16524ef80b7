"""paired_builds.py: A/B of builds of the compiled book on a noisy host. (A tool for
changes to the kernel, see docs/matching.md "Flatness"; not a benchmark with a target.)

    .venv/bin/python benchmarks/probes/paired_builds.py PAIRS DIR [DIR ...]

Each ``DIR`` is a checkout whose ``src/solvent`` holds a built ``_book`` extension (a
``git worktree`` built with ``python setup.py build_ext --inplace``, or the main
checkout). All builds are loaded into this one process, so they run on the same
workloads (``STREAMS``, default ``std_1k,std_1m,inert_1m``; also ``std_100k``: the
streams of ``inert_orders.py``, 500,000 rows each). For every stream, each of
``PAIRS`` rounds runs every build once, back to back (in reverse order every other
round), and divides each build's rate by the first build's rate in that round.

One JSON line per stream: median and best rate per build (M ops/s), and the median
of the per-round ratios to the first build, with some quantiles. A ratio of two runs
a few tenths of a second apart is far steadier than a rate on a host whose speed
swings by half within a minute; pass the first build twice (as two checkouts) to
see what the noise alone gives. Every run's final book must agree across builds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import sys
from functools import partial
from pathlib import Path
from typing import Any

from solvent import bench_matching as bm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import inert_orders as io  # a sibling probe (this folder is not a package)

SIZES = {"std_1k": 1_000, "std_100k": 100_000, "std_1m": 1_000_000}


def load_book(checkout: str) -> Any:
    """The ``OrderBook`` class of the ``_book`` extension built in ``checkout``."""
    folder = Path(checkout) / "src" / "solvent"
    found = sorted(folder.glob("_book*.so"))
    if not found:
        raise SystemExit(f"no built _book extension in {folder}")
    spec = importlib.util.spec_from_file_location("solvent._book", found[0])
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {found[0]}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.OrderBook


def workload(stream: str) -> bm.Workload:
    if stream == "inert_1m":
        return io.inert_workload()
    return bm.build_workload(SIZES[stream], io.OPS, cache=False)


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    pairs = int(sys.argv[1])
    books = {f"{i}:{Path(d).name}": load_book(d) for i, d in enumerate(sys.argv[2:])}
    names = list(books)
    real = bm.book_class
    try:
        for stream in os.environ.get("STREAMS", "std_1k,std_1m,inert_1m").split(","):
            w = workload(stream)
            rates: dict[str, list[float]] = {b: [] for b in names}
            ratios: dict[str, list[float]] = {b: [] for b in names}
            checks = set()
            for k in range(pairs):
                got: dict[str, float] = {}
                for b in names if k % 2 == 0 else names[::-1]:
                    bm.book_class = lambda core, cls=books[b]: cls
                    rate, info = bm.time_info(partial(bm.kernel_trial, "compiled", w, 10_000))
                    checks.add(info["check"])
                    got[b] = rate / 1e6
                for b in names:
                    rates[b].append(got[b])
                    ratios[b].append(got[b] / got[names[0]])
            if len(checks) != 1:
                raise SystemExit(f"{stream}: the builds' final books differ")
            print(json.dumps({
                "stream": stream, "pairs": pairs,
                "median_rate": {b: round(statistics.median(rates[b]), 2) for b in names},
                "best_rate": {b: round(max(rates[b]), 2) for b in names},
                "median_ratio": {b: round(statistics.median(ratios[b]), 3) for b in names[1:]},
                "ratio_quartiles": {b: [round(q, 3) for q in statistics.quantiles(ratios[b])]
                                    for b in names[1:]},
            }), flush=True)
    finally:
        bm.book_class = real


if __name__ == "__main__":
    main()
