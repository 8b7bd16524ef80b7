"""inert_orders.py: does a book's size cost anything by itself? (A diagnostic for the
kernel's flatness figures, see docs/matching.md "Flatness"; not a benchmark with a target.)

    .venv/bin/python benchmarks/probes/inert_orders.py

Three streams of the standard mix (``bench_matching.build_workload``, 500,000 rows), run
in interleaved rounds (``ROUNDS``, default 3; best of 3 per stream per round; one JSON
line per round, M ops/s):

* ``std_1k``: the benchmark's 1k book (``matching.kernel_1k``);
* ``std_1m``: the benchmark's 1M book (``matching.kernel_1m``): cancels and amends pick
  any resting order, takers meet makers prefilled over 20,000 levels per side;
* ``inert_1m``: a 1M book whose first 999,000 orders rest ``GAP_TICKS`` and more away
  from the mid price, where the mix never reaches, under a 1k book's 1,000 orders on 20
  levels per side; cancels and amends pick among the ~2,000 most recently rested orders
  (``MixGenerator``'s ``recent``), so the mix works on what a 1k book works on while a
  million orders rest in the same pool, id table and price table.

``inert_1m`` over ``std_1k`` is what the size alone costs; ``std_1m`` over ``inert_1m`` is
what touching orders at random across the million costs. Cancels in real order flow
are mostly of recent orders: ``cancel_ages`` (printed first) counts, in the LOBSTER
AAPL sample, how many adds came between an order's add and its cancel or deletion.
"""

from __future__ import annotations

import csv
import json
import os
from functools import partial
from pathlib import Path

from solvent import bench_matching as bm
from solvent.matching import codes as c

OPS = 500_000
ACTIVE = 1_000  # orders near the mid, as in the 1k book
ACTIVE_LEVELS = 20
GAP_TICKS = 200_000  # the inert orders start this far from the mid
RECENT = bm.RECENT_PICK
LOBSTER = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "lobster"


def cancel_ages() -> dict[str, object]:
    """Quantiles of the adds between an order's add and its (partial) cancellation in
    the LOBSTER message file, for orders added inside the file."""
    files = sorted(LOBSTER.glob("*_message_*.csv"))
    if not files:
        return {"lobster": "not found"}
    added: dict[int, int] = {}
    ages: list[int] = []
    with files[0].open(newline="") as f:
        for row in csv.reader(f):
            kind, oid = int(row[1]), int(row[2])
            if kind == 1:
                added[oid] = len(added)
            elif kind in (2, 3) and oid in added:
                ages.append(len(added) - added[oid])
    ages.sort()
    q = {f"p{int(p * 100)}": ages[min(len(ages) - 1, int(p * len(ages)))]
         for p in (0.5, 0.75, 0.9, 0.99)}
    return {"adds": len(added), "cancels": len(ages), **q, "max": ages[-1]}


ORIGINAL = bm.prefill_columns  # the benchmark's own, restored after the inert_1m stream
MIX = bm.MixGenerator


def inert_prefill(n: int, levels: int, first_id: int = 1) -> bm.Columns:
    """``n - ACTIVE`` orders on ``levels`` levels per side from ``GAP_TICKS`` away from
    the mid, then ``ACTIVE`` orders on ``ACTIVE_LEVELS`` levels at the mid (the later
    ids, as the 1k book's prefill is just before the mix's first order)."""
    deep = ORIGINAL(n - ACTIVE, levels, first_id)
    for i, side in enumerate(deep.side):
        deep.price[i] += -GAP_TICKS if side == c.BUY else GAP_TICKS
    near = ORIGINAL(ACTIVE, ACTIVE_LEVELS, first_id + n - ACTIVE)
    for col, part in zip(deep, near, strict=True):
        col.extend(part)
    return deep


class InertMix(bm.MixGenerator):
    """The mix on a book whose inert orders it neither counts nor picks: after the
    prefill, only the ``ACTIVE`` orders near the mid are in its live list, and it steers
    the takers' sizes to keep about ``ACTIVE`` orders resting there, as at 1k."""

    def prefill(self) -> tuple[bm.Columns, list[tuple[int, int, int, int, int]]]:
        out = super().prefill()  # ids 1..target: the inert orders first
        for oid in range(1, self.target - ACTIVE + 1):
            self._drop(oid)
        self.target = ACTIVE
        return out


def inert_workload() -> bm.Workload:
    """The ``inert_1m`` stream (the benchmark's own prefill and mix restored after)."""
    bm.prefill_columns, bm.MixGenerator = inert_prefill, InertMix
    try:
        return bm.build_workload(1_000_000, OPS, recent=RECENT, cache=False)
    finally:
        bm.prefill_columns, bm.MixGenerator = ORIGINAL, MIX


def main() -> None:
    print(json.dumps({"cancel_ages": cancel_ages()}), flush=True)
    workloads = {"std_1k": bm.build_workload(1_000, OPS, cache=False),
                 "std_1m": bm.build_workload(1_000_000, OPS, cache=False),
                 "inert_1m": inert_workload()}
    for name, w in workloads.items():
        print(json.dumps({name: {"mix": w.mix, "resting_seen": w.resting_seen}}), flush=True)
    for rnd in range(int(os.environ.get("ROUNDS", "3"))):
        line: dict[str, object] = {"round": rnd + 1}
        for name, w in workloads.items():
            best = max(bm.time_info(partial(bm.kernel_trial, "compiled", w, 10_000))[0]
                       for _ in range(3))
            line[name] = round(best / 1e6, 2)
        line["inert_1m/std_1k"] = round(float(line["inert_1m"]) / float(line["std_1k"]), 2)
        line["std_1m/std_1k"] = round(float(line["std_1m"]) / float(line["std_1k"]), 2)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
