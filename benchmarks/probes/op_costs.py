"""op_costs.py: what one kind of operation costs on a small book and on a 1M book (a
diagnostic for the kernel's flatness figures, see docs/matching.md "Flatness"; not a
benchmark with a target).

    .venv/bin/python benchmarks/probes/op_costs.py [KIND,...]   (default: every kind)

For each kind it builds one stream of ``OPS`` rows (env ``OPS``, default 200,000) of that
kind alone, on orders drawn uniformly from those resting, and runs it through
``OrderBook.process_many`` (10,000 rows per call) on a fresh compiled book, best of 3:

* ``small``: the prefill on 20 levels per side, as the 1k benchmark's book (1,000 orders;
  a cancel stream needs one order per cancel, so that book has ``OPS`` + 1,000, and a
  market stream 400,000 so that it does not run dry);
* ``1M``: 1,000,000 orders (plus ``OPS`` for cancels) on 20,000 levels per side, as
  ``matching.kernel_1m``.

Kinds: ``reduce`` (amend to half the quantity: keeps its place), ``raise`` (amend to one
lot more: to the back of its level), ``move`` (amend the price 1-5 ticks away from the
touch), ``cancel``, ``passive`` (a new limit order 0-20 ticks from the touch; the book is
first grown to its final size, see ``grow``), ``market``
(a market order of 1-150 lots, half sells by quantity, half buys by budget). It prints
one JSON line per kind: ns per operation at each size and the difference.
"""

from __future__ import annotations

import gc
import json
import os
import random
import sys
import time
from array import array

from solvent import bench_matching as bm
from solvent._book import OrderBook
from solvent.matching import codes as c

OPS = int(os.environ.get("OPS", "200000"))
KINDS = ("reduce", "raise", "move", "cancel", "passive", "market")
ROWS_PER_CALL = 10_000


def stream(kind: str, pre: bm.Columns, seed: int = 5) -> bm.Columns:
    """``OPS`` rows of ``kind`` against the prefill ``pre`` (ids 1..n)."""
    rnd = random.Random(seed)
    n = pre.rows
    qty = dict(zip(pre.order_id, pre.qty, strict=True))
    side = dict(zip(pre.order_id, pre.side, strict=True))
    price = dict(zip(pre.order_id, pre.price, strict=True))
    live = list(pre.order_id)
    next_id = n + 1
    gtc = c.flags(c.GTC, False, c.EXPIRE_MAKER)
    ioc = c.flags(c.IOC, False, c.EXPIRE_MAKER)
    out = bm.Columns.empty()
    for _ in range(OPS):
        k = rnd.randrange(len(live))
        oid = live[k]
        if kind == "reduce":
            qty[oid] = max(1, qty[oid] // 2)
            row = (c.OP_AMEND, oid, 0, 0, 0, qty[oid], 0)
        elif kind == "raise":
            qty[oid] += 1
            row = (c.OP_AMEND, oid, 0, 0, 0, qty[oid], 0)
        elif kind == "move":
            m = rnd.randint(1, 5)
            price[oid] += -m if side[oid] == c.BUY else m
            row = (c.OP_AMEND, oid, 0, 0, price[oid], 0, 0)
        elif kind == "cancel":
            live[k] = live[-1]
            live.pop()
            row = (c.OP_CANCEL, oid, 0, 0, 0, 0, 0)
        elif kind == "passive":
            s, off = rnd.randrange(2), rnd.randint(0, bm.NEAR_TOUCH_TICKS)
            p = bm.MID_TICKS - 1 - off if s == c.BUY else bm.MID_TICKS + 1 + off
            row = (c.OP_LIMIT, next_id, rnd.randrange(bm.ACCOUNTS), s, p, rnd.randint(1, 100), gtc)
            next_id += 1
        elif kind == "market":
            q = rnd.randint(1, 150)
            if rnd.randrange(2):
                row = (c.OP_MARKET, next_id, rnd.randrange(bm.ACCOUNTS), c.SELL, 0, q, ioc)
            else:
                budget = q * (bm.MID_TICKS + 30_000)
                row = (c.OP_MARKET, next_id, rnd.randrange(bm.ACCOUNTS), c.BUY, budget, 0, ioc)
            next_id += 1
        else:
            raise SystemExit(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
        for col, v in zip(out, row, strict=True):
            col.append(v)
    return out


def grow(book: OrderBook, n: int) -> None:
    """Rest, then cancel, the ids a passive stream will use (far from the touch), so that
    the book has grown to its final size and touched those slots before the timed run:
    growing the home region moves every order, which the standard mix, whose book keeps
    its size, never pays."""
    ids = range(n + 1, n + OPS + 1)
    gtc = c.flags(c.GTC, False, c.STP_NONE)
    rest = bm.Columns(array("q", [c.OP_LIMIT] * OPS), array("q", ids), array("q", [0] * OPS),
                      array("q", [c.BUY] * OPS), array("q", [bm.MID_TICKS // 2] * OPS),
                      array("q", [1] * OPS), array("q", [gtc] * OPS))
    cancel = bm.Columns(array("q", [c.OP_CANCEL] * OPS), array("q", ids),
                        *(array("q", [0] * OPS) for _ in range(5)))
    for cols in (rest, cancel):
        out = bytearray(OPS)
        book.process_many(*cols, out, array("q"))
        if out.count(c.OK) != OPS:
            raise AssertionError("grow: rows refused")


def ns_per_op(kind: str, n: int, levels: int, repeats: int = 3) -> float:
    """Best of ``repeats`` fresh books; raises if a row is refused (the stream is wrong)."""
    pre = bm.prefill_columns(n, levels, 1)
    rows = stream(kind, pre)
    best = float("inf")
    for _ in range(repeats):
        book = OrderBook(max(1 << 16, 2 * (n + OPS)))
        for part in pre.split(100_000):
            book.process_many(*part, bytearray(part.rows), array("q"))
        if kind == "passive":
            grow(book, n)
        calls = rows.split(ROWS_PER_CALL)
        outs = [bytearray(cols.rows) for cols in calls]
        gc.collect()
        gc.disable()
        t = time.perf_counter()
        for cols, out in zip(calls, outs, strict=True):
            book.process_many(*cols, out, array("q"))
        dt = time.perf_counter() - t
        gc.enable()
        refused = sum(len(out) - out.count(c.OK) for out in outs)
        if refused:
            raise AssertionError(f"{kind}: {refused} rows refused")
        best = min(best, dt / rows.rows * 1e9)
        del book
    return best


def main(argv: list[str]) -> None:
    kinds = argv[1].split(",") if len(argv) > 1 else list(KINDS)
    for kind in kinds:
        extra = OPS if kind == "cancel" else 0
        small_n = 400_000 if kind == "market" else 1_000 + extra
        small = ns_per_op(kind, small_n, 20)
        big = ns_per_op(kind, 1_000_000 + extra, 20_000)
        print(json.dumps({"kind": kind, "ops": OPS, "small_ns": round(small, 1),
                          "1m_ns": round(big, 1), "extra_ns": round(big - small, 1)}),
              flush=True)


if __name__ == "__main__":
    main(sys.argv)
