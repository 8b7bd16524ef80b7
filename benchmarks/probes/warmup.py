"""warmup.py: does the 1M book's short warm-up make ``matching.kernel_1m`` slow? (a
diagnostic for the kernel's flatness figures, see docs/matching.md "Flatness"; not a
benchmark with a target).

    .venv/bin/python benchmarks/probes/warmup.py

``build_workload`` warms a book up with at most 40 chunks of the mix (20,000 rows) after
its prefill: about twice the 1k book's orders, but 2 % of the 1M book's. If the measured
1M stream still met the prefill's old orders at the touch (25 per level, each far from the
others in the pool), that transient and not the book's size would be what it measures.
This builds three streams of ``OPS`` rows (env ``OPS``, default 500,000) with the
benchmark's generator and seed: the 1k book as benchmarked, the 1M book as benchmarked
(20,000 warm-up rows) and the 1M book after ``WARM_1M`` warm-up rows (env, default
1,000,000), then times them in interleaved rounds (best of 2 fresh books each) and
prints one JSON line per round: ops/s per stream and each 1M stream over the 1k one.
"""

from __future__ import annotations

import gc
import json
import os
import time
from typing import Any

from solvent import bench_matching as bm

OPS = int(os.environ.get("OPS", "500000"))
WARM_1M = int(os.environ.get("WARM_1M", "1000000"))
ROUNDS = 3


def rate(w: bm.Workload) -> float:
    """ops/s of the stream on a fresh compiled book (prefill untimed)."""
    trial = bm.kernel_trial("compiled", w, 10_000)
    gc.collect()
    t0 = time.perf_counter()
    n = trial.run()
    return n / (time.perf_counter() - t0)


def main() -> None:
    streams = {
        # build_workload's own warm-up: 4 chunks at 1k, 40 (20,000 rows) at 1M
        "1k": bm.build_workload(1_000, OPS, cache=False),
        "1m_warm_20k": bm.build_workload(1_000_000, OPS, cache=False),
        f"1m_warm_{WARM_1M}": bm.build_workload(1_000_000, OPS, cache=False,
                                                warm_chunks=-(-WARM_1M // bm.GEN_CHUNK)),
    }
    print(json.dumps({"resting_seen": {k: w.resting_seen for k, w in streams.items()}}))
    for rnd in range(ROUNDS):
        rates = {k: max(rate(w) for _ in range(2)) for k, w in streams.items()}
        line: dict[str, Any] = {"round": rnd + 1,
                                "ops_per_s": {k: round(v) for k, v in rates.items()}}
        line["over_1k"] = {k: round(v / rates["1k"], 3) for k, v in rates.items() if k != "1k"}
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
