"""Full-pipeline market benchmarks for ``solvent bench``.

``matching.pipeline_memory`` and ``matching.durable_sqlite`` drive the public
API (``place_order``, ``cancel_order``, ``amend_order``) of a ledger with one
BTC-KRW market, 1,000 funded and attested customer accounts, on the standard
mix: about 60 % limit orders around the touch (a tenth of them crossing), 25 %
cancels, 10 % amends, 5 % market/IOC orders. Every operation holds, matches,
settles and journals (msgspec encoding, hash chain, commit to the store); refused
operations (e.g. a cancel of an order that has just been filled) count too. The
SQLite run commits ``ORDERS_PER_COMMIT`` operations per ``batch()``.
"""

from __future__ import annotations

import gc
import os
import platform
import random
import tempfile
import time
from datetime import UTC, datetime
from typing import Any, Final

from solvent.errors import Rejected
from solvent.ledger import Ledger

ACCOUNTS: Final = 1_000
ORDERS_PER_COMMIT: Final = 1_000
MID_KRW: Final = 98_000_000
TICK_KRW: Final = 1_000
TARGETS: Final = {"matching.pipeline_memory": 500_000, "matching.durable_sqlite": 250_000}


def open_market_ledger(url: str, core: str, accounts: int = ACCOUNTS) -> Ledger:
    clock_ns = [1_790_000_000 * 10**9]

    def clock() -> int:
        clock_ns[0] += 1_000
        return clock_ns[0]

    led = Ledger.open(url, core=core, clock=clock, snapshot_every=2**62)
    with led.batch():
        led.register_asset("BTC", 8)
        led.register_asset("KRW", 0)
        led.open_wallet("btc", asset="BTC")
        led.open_wallet("krw", asset="KRW")
        for i in range(accounts):
            name = f"t{i:05d}"
            led.open_account(name)
            led.deposit(name, "BTC", 100, wallet="btc", ref=f"b{i}")
            led.deposit(name, "KRW", 10**13, wallet="krw", ref=f"k{i}")
        as_of = datetime.fromtimestamp(clock_ns[0] / 1e9, UTC)
        led.attest("btc", 100 * accounts, as_of=as_of, source="bench")
        led.attest("krw", 10**13 * accounts, as_of=as_of, source="bench")
        led.list_market("BTC-KRW", base="BTC", quote="KRW", tick_size=TICK_KRW,
                        lot_size="0.001", maker_fee="0.0005", taker_fee="0.001")
    return led


def workload(n: int, seed: int = 7) -> list[tuple[Any, ...]]:
    """The op stream: ("limit", account, side, price, qty) | ("cancel", k) |
    ("amend", k, qty) | ("market", account, side) — k: the k-th order placed so far."""
    rnd = random.Random(seed)
    ops: list[tuple[Any, ...]] = []
    placed = 0
    for _ in range(n):
        x = rnd.random()
        acct = f"t{rnd.randrange(ACCOUNTS):05d}"
        side = rnd.choice(("buy", "sell"))
        if x < 0.60 or placed < 10:
            away = rnd.randint(1, 30)
            if rnd.random() < 0.10:
                away = -rnd.randint(0, 3)  # crosses the touch
            ticks = MID_KRW // TICK_KRW + (-away if side == "buy" else away)
            ops.append(("limit", acct, side, ticks * TICK_KRW, f"0.{rnd.randint(1, 50):03d}"))
            placed += 1
        elif x < 0.85:
            ops.append(("cancel", rnd.randrange(max(placed - 1_000, 0), placed)))
        elif x < 0.95:
            ops.append(("amend", rnd.randrange(max(placed - 1_000, 0), placed), "0.001"))
        else:
            ops.append(("market", acct, side))
    return ops


def run_ops(led: Ledger, ops: list[tuple[Any, ...]], per_commit: int) -> dict[str, int]:
    ids: list[int] = []
    counts = {"ok": 0, "refused": 0}
    for lo in range(0, len(ops), per_commit):
        with led.batch():
            for op in ops[lo:lo + per_commit]:
                try:
                    if op[0] == "limit":
                        o = led.place_order(op[1], "BTC-KRW", op[2], qty=op[4], price=op[3])
                        ids.append(o.order_id)
                    elif op[0] == "cancel":
                        led.cancel_order(ids[op[1]] if op[1] < len(ids) else 0)
                    elif op[0] == "amend":
                        led.amend_order(ids[op[1]] if op[1] < len(ids) else 0, qty=op[2])
                    elif op[2] == "sell":
                        led.place_order(op[1], "BTC-KRW", "sell", type="market", qty="0.01",
                                        tif="IOC")
                    else:
                        led.place_order(op[1], "BTC-KRW", "buy", type="market",
                                        quote_qty=1_000_000, tif="IOC")
                    counts["ok"] += 1
                except Rejected:
                    counts["refused"] += 1
    return counts


def _trial(core: str, url: str, ops: list[tuple[Any, ...]], per_commit: int
           ) -> tuple[float, dict[str, int], str]:
    led = open_market_ledger(url, core)
    try:
        gc.collect()
        t0 = time.perf_counter()
        counts = run_ops(led, ops, per_commit)
        elapsed = time.perf_counter() - t0
        return len(ops) / elapsed, counts, led.head_digest
    finally:
        led.close()


def run_pipeline(quick: bool, repeats: int) -> dict[str, Any]:
    n = 5_000 if quick else 50_000
    ops = workload(n)
    results: dict[str, Any] = {}
    for name, durable in (("matching.pipeline_memory", False),
                          ("matching.durable_sqlite", True)):
        runs: dict[str, list[float]] = {"compiled": [], "python": []}
        heads: set[str] = set()
        counts: dict[str, int] = {}
        for _ in range(repeats):
            for core in ("compiled", "python"):
                with tempfile.TemporaryDirectory(prefix="solvent-bench-") as tmp:
                    url = f"sqlite:///{tmp}/m.db" if durable else "memory:"
                    rate, counts, head = _trial(core, url, ops, ORDERS_PER_COMMIT)
                runs[core].append(rate)
                heads.add(head)
        if len(heads) != 1:
            raise RuntimeError(f"{name}: the cores journaled different histories")
        best, twin = max(runs["compiled"]), max(runs["python"])
        params: dict[str, Any] = {
            "compiled_over_twin": round(best / twin, 2),
            "ops": n, "outcomes": counts, "accounts": ACCOUNTS,
            "mix": "60% limit around the touch (10% of them crossing), 25% cancel, "
                   "10% amend, 5% market/IOC",
            "path": "place_order / cancel_order / amend_order: validation, custody checks, "
                    "hold, match (kernel), settle (balance core), msgspec record, hash chain, "
                    "commit",
            "ops_per_commit": ORDERS_PER_COMMIT,
            "runs": {"compiled": [round(x) for x in runs["compiled"]],
                     "python_twin": [round(x) for x in runs["python"]]},
            "repeats": repeats, "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "target": {"value": TARGETS[name]},
            "meets_target": best >= TARGETS[name],
        }
        if durable:
            params["store"] = "sqlite file, WAL, synchronous=FULL"
        results[name] = {"unit": "ops/s", "value": round(best),
                         "baselines": {"python_twin": round(twin)}, "params": params}
    return results


def market_benchmarks() -> dict[str, Any]:
    """``matching.pipeline_memory`` and ``matching.durable_sqlite`` for ``solvent bench``."""
    cache: dict[int, dict[str, Any]] = {}

    def bind(name: str) -> Any:
        def call(ctx: Any) -> dict[str, Any]:
            if id(ctx) not in cache:
                cache.clear()
                cache[id(ctx)] = run_pipeline(ctx.sizes.repeats == 1, ctx.sizes.repeats)
            return dict(cache[id(ctx)][name])

        return call

    return {name: bind(name) for name in TARGETS}
