"""maker_layout.py: does it matter where in the order pool a level's makers sit? (A
diagnostic for the kernel's flatness figures, see docs/matching.md "Flatness"; not a
benchmark with a target.)

    .venv/bin/python benchmarks/probes/maker_layout.py

The benchmark's prefill hands out ids level by level round robin, so the orders of one
level sit ``2 × levels`` home slots apart (1.25 MiB apart at 1M resting): a taker walking
a level meets each maker on a page of its own. This probe runs the standard mix
(``bench_matching.build_workload``, 500,000 rows) twice per size: on that prefill
(``round_robin``) and on one that hands out the ids level by level (``level_major``), so
that a level's prefill orders sit in consecutive home slots, as contiguous records per
level would keep them. Sizes alternate within each round (``ROUNDS``, default 3; best of
3 per size per round); it prints one JSON line per round, M ops/s.

What it bounds: the gain of keeping a level's orders together, for the makers that were
there from the start. Orders placed by the mix itself still land wherever their ids do.
"""

from __future__ import annotations

import json
import os
from array import array
from functools import partial

from solvent import bench_matching as bm
from solvent.matching import codes as c

SIZES = (1_000, 1_000_000)
OPS = 500_000


def level_major(n: int, levels: int, first_id: int = 1) -> bm.Columns:
    """:func:`bench_matching.prefill_columns` with the same orders per level, sides and
    quantities, but the ids handed out level by level (a level's orders consecutive)."""
    per = -(-(n // 2) // levels)
    k = range(n)
    f = c.flags(c.GTC, False, bm.STP)
    price = array("q", [bm.MID_TICKS - 1 - ((i >> 1) // per) if not i & 1
                        else bm.MID_TICKS + 1 + ((i >> 1) // per) for i in k])
    return bm.Columns(
        array("q", [c.OP_LIMIT]) * n,
        array("q", range(first_id, first_id + n)),
        array("q", [(i * 7919) % bm.ACCOUNTS for i in k]),
        array("q", [i & 1 for i in k]),
        price,
        array("q", [1 + (i * 104729) % 100 for i in k]),
        array("q", [f]) * n,
    )


def main() -> None:
    layouts = {"round_robin": bm.prefill_columns, "level_major": level_major}
    workloads = {}
    original = bm.prefill_columns
    try:
        for name, fill in layouts.items():
            bm.prefill_columns = fill
            for n in SIZES:
                workloads[name, n] = bm.build_workload(n, OPS, cache=False)
    finally:
        bm.prefill_columns = original
    for rnd in range(int(os.environ.get("ROUNDS", "3"))):
        line: dict[str, object] = {"round": rnd + 1}
        for (name, n), w in workloads.items():
            best = max(bm.time_info(partial(bm.kernel_trial, "compiled", w, 10_000))[0]
                       for _ in range(3))
            line[f"{name}_{n}"] = round(best / 1e6, 2)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
