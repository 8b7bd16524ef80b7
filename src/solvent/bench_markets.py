"""Full-pipeline market benchmarks for ``solvent bench``.

A ledger with one BTC-KRW market and 1,000 funded, attested customer accounts
runs the standard mix: about 60 % limit orders around the touch (a tenth of them
crossing), 25 % cancels, 10 % amends, 5 % market/IOC orders. Every operation
holds, matches, settles and is journaled (msgspec record, hash chain, commit to
the store); refused operations (a cancel of an order that has just filled)
count too.

* ``matching.pipeline_memory``: the bulk path, ``Ledger.submit_orders`` with
  ``ROWS_PER_CALL`` int rows per call (one compiled engine call and one
  ``OrdersSubmitted`` record per call), on the ``memory:`` store;
* ``matching.durable_sqlite``: the same on a SQLite file (WAL,
  ``synchronous=FULL``), one commit per call (group commit);
* ``matching.durable_postgres``: the same on PostgreSQL (eventsourcing's recorder, one
  transaction per call), at ``SOLVENT_BENCH_POSTGRES_URL`` (default
  ``postgresql://postgres@127.0.0.1:5432/postgres``), each run in tables of its own
  prefix, dropped afterwards; reported as skipped, with the reason, when no server
  answers there;
* ``matching.pipeline_single``: the single-order commands (``place_order``,
  ``cancel_order``, ``amend_order``: decimal strings in, an ``Order`` view out,
  one record per command), ``ROWS_PER_CALL`` commands per ``batch()``, memory.

Cancels and amends name orders placed earlier in the stream. The rows are
resolved once, untimed, on a ledger of their own (order ids are handed out in
order, so the same rows on a fresh ledger place the same orders); each timed run
then sends identical rows, and both cores must journal the same history.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

from solvent.engine import codes as ec
from solvent.errors import Rejected
from solvent.ledger import Ledger
from solvent.matching import codes as mc
from solvent.store import (
    drop_postgres_helpers,
    drop_postgres_store,
    postgres_conninfo,
    postgres_helpers_present,
    postgres_unreachable,
    redact,
)

ACCOUNTS: Final = 1_000
ROWS_PER_CALL: Final = 10_000
MID_KRW: Final = 98_000_000
TICK_KRW: Final = 1_000
LOT_BTC: Final = "0.001"
TARGETS: Final = {"matching.pipeline_memory": 500_000, "matching.durable_sqlite": 250_000}
POSTGRES_URL_ENV: Final = "SOLVENT_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES_URL: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_CONNECT_TIMEOUT_S: Final = 3
MIX: Final = ("60% limit around the touch (10% of them crossing), 25% cancel, 10% amend, "
              "5% market/IOC")


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
                        lot_size=LOT_BTC, maker_fee="0.0005", taker_fee="0.001")
    return led


def workload(n: int, seed: int = 7) -> list[tuple[Any, ...]]:
    """The op stream: ("limit", account, side, ticks, lots) | ("cancel", k) |
    ("amend", k, lots) | ("market", account, side) — k: the k-th order placed so far."""
    rnd = random.Random(seed)
    ops: list[tuple[Any, ...]] = []
    placed = 0
    for _ in range(n):
        x = rnd.random()
        acct = rnd.randrange(ACCOUNTS)
        side = rnd.choice((mc.BUY, mc.SELL))
        if x < 0.60 or placed < 10:
            away = rnd.randint(1, 30)
            if rnd.random() < 0.10:
                away = -rnd.randint(0, 3)  # crosses the touch
            ticks = MID_KRW // TICK_KRW + (-away if side == mc.BUY else away)
            ops.append(("limit", acct, side, ticks, rnd.randint(1, 50)))
            placed += 1
        elif x < 0.85:
            ops.append(("cancel", rnd.randrange(max(placed - 1_000, 0), placed)))
        elif x < 0.95:
            ops.append(("amend", rnd.randrange(max(placed - 1_000, 0), placed), 1))
        else:
            ops.append(("market", acct, side))
    return ops


def resolve_rows(ops: list[tuple[Any, ...]], per_call: int) -> list[list[tuple[int, ...]]]:
    """The ops as ``submit_orders`` rows, in calls of ``per_call``: placement k becomes
    the order id it got, learnt by running the calls once on a ledger of their own (a
    placement in the same call is not known yet: that cancel or amend names the
    newest order known, as a client that has not heard back would)."""
    led = open_market_ledger("memory:", "compiled")
    try:
        m = led.market_id("BTC-KRW")
        first_account = led.account_id("t00000")
        ids: list[int] = []  # order id of placement k, 0 when refused
        calls: list[list[tuple[int, ...]]] = []
        for lo in range(0, len(ops), per_call):
            rows: list[tuple[int, ...]] = []
            for op in ops[lo:lo + per_call]:
                if op[0] == "limit":
                    _, acct, side, ticks, lots = op
                    rows.append((ec.OP_LIMIT, m, 0, first_account + acct, side, ticks, lots, 0,
                                 mc.flags(mc.GTC, False, mc.EXPIRE_MAKER)))
                elif op[0] in ("cancel", "amend"):
                    k = op[1] if op[1] < len(ids) else len(ids) - 1
                    target = ids[k] if k >= 0 else 0
                    if op[0] == "cancel":
                        rows.append((ec.OP_CANCEL, m, target, 0, 0, 0, 0, 0, 0))
                    else:
                        rows.append((ec.OP_AMEND, m, target, 0, 0, 0, op[2], 0, 0))
                elif op[2] == mc.SELL:
                    rows.append((ec.OP_MARKET, m, 0, first_account + op[1], mc.SELL, 0, 10, 0,
                                 mc.flags(mc.IOC, False, mc.EXPIRE_MAKER)))
                else:
                    rows.append((ec.OP_MARKET, m, 0, first_account + op[1], mc.BUY, 0, 0,
                                 1_000_000, mc.flags(mc.IOC, False, mc.EXPIRE_MAKER)))
            results = led.submit_orders(rows)
            for row, order_id in zip(rows, results.order_ids(), strict=True):
                if row[0] == ec.OP_LIMIT:
                    ids.append(order_id)
            calls.append(rows)
        return calls
    finally:
        led.close()


def run_bulk(led: Ledger, calls: list[list[tuple[int, ...]]]) -> dict[str, int]:
    counts = {"ok": 0, "refused": 0}
    for rows in calls:
        results = led.submit_orders(rows)
        ok = results.accepted
        counts["ok"] += ok
        counts["refused"] += len(results) - ok
    return counts


def run_single(led: Ledger, ops: list[tuple[Any, ...]], per_batch: int) -> dict[str, int]:
    """The ops through place_order / cancel_order / amend_order (strings in, views out)."""
    ids: list[int] = []
    counts = {"ok": 0, "refused": 0}
    names = [f"t{i:05d}" for i in range(ACCOUNTS)]
    sides = {mc.BUY: "buy", mc.SELL: "sell"}
    for lo in range(0, len(ops), per_batch):
        with led.batch():
            for op in ops[lo:lo + per_batch]:
                try:
                    if op[0] == "limit":
                        _, acct, side, ticks, lots = op
                        o = led.place_order(names[acct], "BTC-KRW", sides[side],
                                            qty=f"{lots // 1000}.{lots % 1000:03d}",
                                            price=ticks * TICK_KRW)
                        ids.append(o.order_id)
                    elif op[0] == "cancel":
                        led.cancel_order(ids[op[1]] if op[1] < len(ids) else 0)
                    elif op[0] == "amend":
                        led.amend_order(ids[op[1]] if op[1] < len(ids) else 0, qty=LOT_BTC)
                    elif op[2] == mc.SELL:
                        led.place_order(names[op[1]], "BTC-KRW", "sell", type="market",
                                        qty="0.01", tif="IOC")
                    else:
                        led.place_order(names[op[1]], "BTC-KRW", "buy", type="market",
                                        quote_qty=1_000_000, tif="IOC")
                    counts["ok"] += 1
                except Rejected:
                    counts["refused"] += 1
                    if op[0] == "limit":
                        ids.append(0)
    return counts


def postgres_server() -> tuple[str, str | None]:
    """``(base URL, None)`` when a PostgreSQL server answers at ``SOLVENT_BENCH_POSTGRES_URL``
    (or the default), else ``(base URL, why not)``."""
    base = os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL
    return base, postgres_unreachable(base, POSTGRES_CONNECT_TIMEOUT_S)


@contextmanager
def _store_url(store: str, pg_base: str) -> Iterator[str]:
    """A fresh, empty store of kind ``store`` for one run; removed afterwards."""
    if store == "memory":
        yield "memory:"
    elif store == "sqlite":
        with tempfile.TemporaryDirectory(prefix="solvent-bench-") as tmp:
            yield f"sqlite:///{tmp}/m.db"
    else:
        parts = urlsplit(pg_base)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "prefix"]
        query.append(("prefix", f"bench_{uuid.uuid4().hex[:12]}_"))
        url = parts._replace(query=urlencode(query)).geturl()
        helpers_before = postgres_helpers_present(url)
        try:
            yield url
        finally:
            drop_postgres_store(url)
            if not helpers_before:  # leave the database as it was found
                drop_postgres_helpers(url)


def _trial(core: str, url: str, work: Any, single: bool) -> tuple[float, dict[str, int], str]:
    led = open_market_ledger(url, core)
    try:
        gc.collect()
        t0 = time.perf_counter()
        counts = run_single(led, work, ROWS_PER_CALL) if single else run_bulk(led, work)
        elapsed = time.perf_counter() - t0
        n = len(work) if single else sum(len(rows) for rows in work)
        return n / elapsed, counts, led.head_digest
    finally:
        led.close()


def run_pipeline(quick: bool, repeats: int) -> dict[str, Any]:
    n = 20_000 if quick else 200_000
    ops = workload(n)
    calls = resolve_rows(ops, ROWS_PER_CALL)
    single_ops = ops[: n // 10]
    results: dict[str, Any] = {}
    pg_base, pg_missing = postgres_server()
    for name, store, single in (("matching.pipeline_memory", "memory", False),
                                ("matching.durable_sqlite", "sqlite", False),
                                ("matching.durable_postgres", "postgres", False),
                                ("matching.pipeline_single", "memory", True)):
        if store == "postgres" and pg_missing is not None:
            results[name] = {"unit": "ops/s", "value": math.nan,
                             "baselines": {"python_twin": math.nan},
                             "params": {"skipped": f"no PostgreSQL server at "
                                                   f"{redact(pg_base)} ({pg_missing}); set "
                                                   f"{POSTGRES_URL_ENV}",
                                        "store": "postgresql"}}
            continue
        runs: dict[str, list[float]] = {"compiled": [], "python": []}
        heads: set[str] = set()
        counts: dict[str, int] = {}
        for _ in range(repeats):
            for core in ("compiled", "python"):
                with _store_url(store, pg_base) as url:
                    rate, counts, head = _trial(core, url, single_ops if single else calls,
                                                single)
                runs[core].append(rate)
                heads.add(head)
        if len(heads) != 1:
            raise RuntimeError(f"{name}: the cores journaled different histories")
        best, twin = max(runs["compiled"]), max(runs["python"])
        params: dict[str, Any] = {
            "compiled_over_twin": round(best / twin, 2),
            "ops": len(single_ops) if single else n, "outcomes": counts, "accounts": ACCOUNTS,
            "mix": MIX,
            "runs": {"compiled": [round(x) for x in runs["compiled"]],
                     "python_twin": [round(x) for x in runs["python"]]},
            "repeats": repeats, "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        }
        if single:
            params["path"] = ("place_order / cancel_order / amend_order: decimal strings "
                              "parsed, custody checks, one compiled engine call (hold, "
                              "match, settle), OrderPlaced/OrderCancelled/OrderAmended record "
                              "with fills, hash chain, commit")
            params["ops_per_commit"] = ROWS_PER_CALL
        else:
            params["path"] = ("submit_orders: int rows, custody checks once per call, one "
                              "compiled engine call per call (hold, match, settle per row), "
                              "one OrdersSubmitted record (msgspec), hash chain, commit")
            params["rows_per_call"] = ROWS_PER_CALL
            params["ops_per_commit"] = ROWS_PER_CALL
            if name in TARGETS:
                params["target"] = {"value": TARGETS[name]}
                params["meets_target"] = best >= TARGETS[name]
        if store == "sqlite":
            params["store"] = "sqlite file, WAL, synchronous=FULL"
        elif store == "postgres":
            params["store"] = (f"postgresql at {redact(postgres_conninfo(pg_base)[0])}, tables of "
                               "their own per run (dropped after it), one transaction per "
                               "call")
        results[name] = {"unit": "ops/s", "value": round(best),
                         "baselines": {"python_twin": round(twin)}, "params": params}
    return results


def market_benchmarks() -> dict[str, Any]:
    """``matching.pipeline_memory``, ``matching.durable_sqlite``,
    ``matching.durable_postgres`` and ``matching.pipeline_single`` for ``solvent bench``."""
    cache: dict[int, dict[str, Any]] = {}

    def bind(name: str) -> Any:
        def call(ctx: Any) -> dict[str, Any]:
            if id(ctx) not in cache:
                cache.clear()
                cache[id(ctx)] = run_pipeline(ctx.sizes.repeats == 1, ctx.sizes.repeats)
            return dict(cache[id(ctx)][name])

        return call

    return {name: bind(name) for name in (*TARGETS, "matching.durable_postgres",
                                          "matching.pipeline_single")}
