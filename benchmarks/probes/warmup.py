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
SEED = 11  # build_workload's


def build(resting: int, warm_rows: int) -> bm.Workload:
    """``build_workload(resting, OPS)`` with ``warm_rows`` rows of warm-up."""
    gen = bm.MixGenerator(resting, SEED)
    prefill, peer_prefill = gen.prefill()
    warm_cols = bm.Columns.empty()
    warm_peer: list[tuple[int, int, int, int, int]] = []
    while warm_cols.rows < warm_rows:
        gen.chunk(bm.GEN_CHUNK, warm_cols, warm_peer)
    for col, part in zip(prefill, warm_cols, strict=True):
        col.extend(part)
    gen.mix.clear()
    gen.seen.clear()
    cols = bm.Columns.empty()
    peer: list[tuple[int, int, int, int, int]] = []
    while cols.rows < OPS:
        gen.chunk(min(bm.GEN_CHUNK, OPS - cols.rows), cols, peer)
    seen = gen.seen
    return bm.Workload(resting, prefill, cols, peer_prefill, peer, dict(sorted(gen.mix.items())),
                       (min(seen), round(sum(seen) / len(seen)), max(seen)), gen.max_orders)


def rate(w: bm.Workload) -> float:
    """ops/s of the stream on a fresh compiled book (prefill untimed)."""
    trial = bm.kernel_trial("compiled", w, 10_000)
    gc.collect()
    t0 = time.perf_counter()
    n = trial.run()
    return n / (time.perf_counter() - t0)


def main() -> None:
    streams = {
        "1k": build(1_000, 2_000),  # build_workload's warm-up at 1k: 4 chunks
        "1m_warm_20k": build(1_000_000, 20_000),  # and at 1M: 40 chunks
        f"1m_warm_{WARM_1M}": build(1_000_000, WARM_1M),
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
