"""Benchmarks of the order-book kernel (``solvent bench --only matching``).

Every figure is for the compiled book (``solvent._book.OrderBook``), with the
pure-Python twin (``solvent.matching.twin.OrderBook``) measured in the same run
on the same workload as the baseline ``python_twin``; ``matching.kernel`` also
has each peer package found (``benchmarks/peers/``) as a baseline.

``matching.kernel``
    operations per second through ``OrderBook.process_many`` (10,000 rows per
    call, ``array('q')`` columns, events appended to an ``array('q')``) on the
    standard mix with about 1,000 resting orders.
``matching.kernel_1k`` / ``matching.kernel_100k`` / ``matching.kernel_1m``
    the same mix on a book first filled with 1,000 / 100,000 / 1,000,000
    resting orders (filling is not timed); the mix keeps the book near that size.
    The sizes run in interleaved rounds (:func:`sweep_rounds`), so that the ratio
    to 1k (``params.over_kernel_1k``, and per round ``over_kernel_1k_by_round``)
    compares runs taken close in time on a noisy host. Full runs also measure the
    native peer ``limit-order-book`` (C++) on the same rows at each size, in the
    same rounds (``params.native_peer``): its rate over its own 1k rate shows how a
    native book's cost grows with the book on this machine. At 1M, full
    runs also break the extra cost down (``params.cost_parts``, diagnostics): the
    same mix with cancels and amends picking among the ~2,000 most recent resting
    orders, then also with the prefill on 20 levels per side as at 1k.
``matching.bytes_per_order``
    bytes of memory per resting order at 1,000,000 resting orders: the growth of
    ``tracemalloc``'s traced memory from before the book is made to after it holds
    them (the compiled book allocates with ``PyMem_RawMalloc``, which tracemalloc
    traces), cross-checked by the book's own ``allocated_bytes`` and the RSS growth.

The standard mix (per operation): 60% limit orders, of which ~10% cross the
spread (priced up to 2 ticks through the opposite best) and the rest rest 0-20
ticks from the touch; 25% cancels of a random resting order; 10% amends of a
random resting order (half reduce the quantity, a quarter raise it, a quarter
move the price 1-5 ticks away from the touch); 5% market/IOC orders (half
market: sells by quantity, buys by quote budget; half IOC limit orders at the
opposite best). 1,000 accounts, every order with STP ``expire_maker``.
Quantities are 1-100 lots; the crossing, market and IOC orders' sizes adapt
(between chunks of 500 operations) so the book stays near its target size.

The stream is generated once per size, untimed, against a shadow compiled book
(so cancels and amends name orders that rest), then replayed on fresh books:
both cores must end with the same book and the same events.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import platform
import random
import subprocess
import sys
import time
import tracemalloc
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final, NamedTuple

from solvent.matching import book_class
from solvent.matching import codes as c

BASELINE: Final = "python_twin"
CORES: Final = ("compiled", "python")
ACCOUNTS: Final = 1_000
MID_TICKS: Final = 1_000_000
NEAR_TOUCH_TICKS: Final = 20
GEN_CHUNK: Final = 500
STP: Final = c.EXPIRE_MAKER
KERNEL_TARGET: Final = {"value": 2_000_000, "over_fastest_peer": 3}
SIZE_TARGET: Final = {"value": 2_000_000}
BYTES_TARGET_MAX: Final = 200

# peer rows (benchmarks/peers/__init__.py)
P_LIMIT, P_IOC, P_MARKET, P_CANCEL, P_AMEND = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class MatchSizes:
    kernel_resting: int
    kernel_ops: int  # rows per timed run of matching.kernel
    sweep: tuple[tuple[str, int], ...]  # (benchmark name, resting orders)
    sweep_ops: int
    twin_sweep_max: int  # the twin is measured at sizes up to this
    bytes_orders: int
    twin_bytes_orders: int
    peer_ops: int
    rows_per_call: int
    repeats: int
    sweep_peer: str  # the native peer also measured at each sweep size ("" = none)
    sweep_parts: bool  # at 1M, also the mix with recent-only cancels (what the 1M cost is)


FULL: Final = MatchSizes(
    kernel_resting=1_000, kernel_ops=1_000_000,
    sweep=(("matching.kernel_1k", 1_000), ("matching.kernel_100k", 100_000),
           ("matching.kernel_1m", 1_000_000)),
    sweep_ops=500_000, twin_sweep_max=1_000_000, bytes_orders=1_000_000,
    twin_bytes_orders=1_000_000, peer_ops=200_000, rows_per_call=10_000, repeats=3,
    sweep_peer="limit-order-book", sweep_parts=True,
)
QUICK: Final = MatchSizes(
    kernel_resting=1_000, kernel_ops=100_000,
    sweep=(("matching.kernel_1k", 1_000), ("matching.kernel_100k", 100_000),
           ("matching.kernel_1m", 1_000_000)),
    sweep_ops=50_000, twin_sweep_max=1_000, bytes_orders=1_000_000,
    twin_bytes_orders=20_000, peer_ops=10_000, rows_per_call=10_000, repeats=1,
    sweep_peer="", sweep_parts=False,
)


class Columns(NamedTuple):
    """The seven ``array('q')`` columns of ``OrderBook.process_many``."""

    op: array[int]
    order_id: array[int]
    account: array[int]
    side: array[int]
    price: array[int]
    qty: array[int]
    flags: array[int]

    @property
    def rows(self) -> int:
        return len(self.op)

    def split(self, rows_per_call: int) -> list[Columns]:
        n = len(self.op)
        return [Columns(*(col[lo: lo + rows_per_call] for col in self))
                for lo in range(0, n, rows_per_call)]

    @classmethod
    def empty(cls) -> Columns:
        return cls(*(array("q") for _ in range(7)))


@dataclass
class Workload:
    """A book size and a stream of the standard mix, for every core and peer."""

    resting: int
    prefill: Columns
    ops: Columns
    peer_prefill: list[tuple[int, int, int, int, int]]
    peer_ops: list[tuple[int, int, int, int, int]]
    mix: dict[str, int]
    resting_seen: tuple[int, int, int]  # min, mean, max resting orders between chunks
    max_orders: int


def prefill_columns(n: int, levels: int, first_id: int = 1) -> Columns:
    """``n`` GTC limit orders (ids from ``first_id``): even rows bids at 1..levels ticks
    below the mid price, odd rows asks above it, level by level round robin;
    quantities 1..100 and accounts 0..999 spread by multiplicative hashing."""
    k = range(n)
    f = c.flags(c.GTC, False, STP)
    side = array("q", [i & 1 for i in k])
    price = array("q", [MID_TICKS - 1 - ((i >> 1) % levels) if not i & 1
                        else MID_TICKS + 1 + ((i >> 1) % levels) for i in k])
    return Columns(
        array("q", [c.OP_LIMIT]) * n,
        array("q", range(first_id, first_id + n)),
        array("q", [(i * 7919) % ACCOUNTS for i in k]),
        side,
        price,
        array("q", [1 + (i * 104729) % 100 for i in k]),
        array("q", [f]) * n,
    )


class MixGenerator:
    """Generates the standard mix against a shadow compiled book (see the module doc).
    Diagnostic variants (not the standard mix): ``recent`` > 0 makes cancels and amends
    pick among the last ``recent`` entries of the live list (about the most recently
    rested orders) instead of any resting order; ``levels`` fixes the prefill's levels
    per side."""

    def __init__(self, resting: int, seed: int, recent: int = 0,
                 levels: int | None = None) -> None:
        self.rnd = random.Random(seed)
        self.target = resting
        self.max_orders = min(c.MAX_ORDERS_LIMIT, max(1 << 16, 2 * resting))
        self.shadow = book_class("compiled")(self.max_orders)
        self.live: list[int] = []
        self.pos: dict[int, int] = {}
        self.next_id = 0
        self.levels = levels if levels is not None else max(20, resting // 50)
        self.recent = recent
        self.scale = 1.0
        self.mix: dict[str, int] = {}
        self.seen: list[int] = []

    def _add(self, oid: int) -> None:
        self.pos[oid] = len(self.live)
        self.live.append(oid)

    def _drop(self, oid: int) -> None:
        k = self.pos.pop(oid, -1)
        if k < 0:
            return
        last = self.live.pop()
        if last != oid:
            self.live[k] = last
            self.pos[last] = k

    def _pick(self) -> int:
        k = len(self.live)
        if self.recent:
            return self.live[k - 1 - self.rnd.randrange(min(k, self.recent))]
        return self.live[self.rnd.randrange(k)]

    def _count(self, what: str) -> None:
        self.mix[what] = self.mix.get(what, 0) + 1

    def _run(self, cols: Columns) -> None:
        """Apply a chunk to the shadow book and learn which orders rest."""
        out = bytearray(cols.rows)
        events = array("q")
        self.shadow.process_many(*cols, out, events)
        for k in range(0, len(events), c.BULK_EVENT_FIELDS):
            kind = events[k + 1]
            if kind == c.EV_RESTING:
                self._add(events[k + 2])
            elif (kind == c.EV_FILL and events[k + 7] == 0) or kind == c.EV_MAKER_EXPIRED:
                self._drop(events[k + 3])

    def prefill(self) -> tuple[Columns, list[tuple[int, int, int, int, int]]]:
        """``resting`` GTC orders, half bids below and half asks above the mid
        price, spread evenly over ``levels`` price levels per side."""
        cols = prefill_columns(self.target, self.levels, self.next_id + 1)
        self.next_id += self.target
        peer = list(zip([P_LIMIT] * self.target, cols.order_id, cols.side, cols.price, cols.qty,
                        strict=True))
        for chunk in cols.split(100_000):
            self._run(chunk)
        return cols, peer

    def _aggressive_qty(self) -> int:
        return self.rnd.randint(1, max(1, int(150 * self.scale)))

    def chunk(self, n: int, cols: Columns, peer: list[tuple[int, int, int, int, int]]) -> None:
        """``n`` rows of the mix, appended to ``cols`` and ``peer``, then run on the shadow."""
        rnd = self.rnd
        bid = self.shadow.best_bid() or MID_TICKS - 1
        ask = self.shadow.best_ask() or MID_TICKS + 1
        gtc = c.flags(c.GTC, False, STP)
        ioc = c.flags(c.IOC, False, STP)
        mine = Columns.empty()
        for _ in range(n):
            r = rnd.random()
            side = rnd.randrange(2)
            acct = rnd.randrange(ACCOUNTS)
            if r >= 0.60 and not self.live:
                r = 0.0
            if r < 0.60:
                self.next_id += 1
                oid = self.next_id
                if rnd.random() < 0.10:
                    self._count("limit_crossing")
                    price = ask + rnd.randint(0, 2) if side == c.BUY else max(
                        1, bid - rnd.randint(0, 2))
                    qty = self._aggressive_qty()
                else:
                    self._count("limit_passive")
                    off = rnd.randint(0, NEAR_TOUCH_TICKS)
                    price = max(1, bid - off) if side == c.BUY else ask + off
                    qty = rnd.randint(1, 100)
                row = (c.OP_LIMIT, oid, acct, side, price, qty, gtc)
                peer.append((P_LIMIT, oid, side, price, qty))
            elif r < 0.85:
                self._count("cancel")
                oid = self._pick()
                self._drop(oid)
                row = (c.OP_CANCEL, oid, 0, 0, 0, 0, 0)
                peer.append((P_CANCEL, oid, 0, 0, 0))
            elif r < 0.95:
                self._count("amend")
                oid = self._pick()
                info = self.shadow.order(oid)
                if info is None:  # filled earlier in this chunk: the amend is refused
                    info = (0, 0, 1, 1)
                _, oside, oprice, oqty = info
                a = rnd.random()
                if a < 0.5:
                    new_qty, new_price = max(1, oqty // 2), oprice
                    row = (c.OP_AMEND, oid, 0, 0, 0, new_qty, 0)
                elif a < 0.75:
                    new_qty, new_price = oqty + rnd.randint(1, 50), oprice
                    row = (c.OP_AMEND, oid, 0, 0, 0, new_qty, 0)
                else:
                    move = rnd.randint(1, 5)
                    new_qty = oqty
                    new_price = max(1, oprice - move) if oside == c.BUY else oprice + move
                    row = (c.OP_AMEND, oid, 0, 0, new_price, 0, 0)
                peer.append((P_AMEND, oid, oside, new_price, new_qty))
            else:
                self.next_id += 1
                oid = self.next_id
                qty = self._aggressive_qty()
                if rnd.random() < 0.5:
                    if side == c.BUY:
                        self._count("market_buy_budget")
                        row = (c.OP_MARKET, oid, acct, side, qty * ask, 0, ioc)
                    else:
                        self._count("market_sell")
                        row = (c.OP_MARKET, oid, acct, side, 0, qty, ioc)
                    peer.append((P_MARKET, oid, side, 0, qty))
                else:
                    self._count("ioc")
                    price = ask if side == c.BUY else bid
                    row = (c.OP_LIMIT, oid, acct, side, price, qty, ioc)
                    peer.append((P_IOC, oid, side, price, qty))
            for col, v in zip(mine, row, strict=True):
                col.append(v)
        for col, part in zip(cols, mine, strict=True):
            col.extend(part)
        self._run(mine)
        size = len(self.live)
        self.seen.append(size)
        # steer the aggressive sizes so the book stays near its target size
        ratio = size / self.target
        self.scale = min(50.0, max(0.05, self.scale * (1.0 + 0.5 * (ratio - 1.0))))


_workloads: dict[tuple[int, int, int, int, int | None, int], Workload] = {}


def build_workload(resting: int, ops: int, seed: int = 11, recent: int = 0,
                   levels: int | None = None, cache: bool = True,
                   warm_chunks: int | None = None) -> Workload:
    """The prefill and ``ops`` rows of the mix for a book of ``resting`` orders (kept for
    the next call unless ``cache`` is false); ``recent`` and ``levels``: the diagnostic
    variants of :class:`MixGenerator`; ``warm_chunks``: chunks of ``GEN_CHUNK`` rows of
    warm-up after the prefill (default 4..40 by size, see ``benchmarks/probes/warmup.py``)."""
    if warm_chunks is None:
        warm_chunks = max(4, min(40, resting // GEN_CHUNK))
    key = (resting, ops, seed, recent, levels, warm_chunks)
    if key in _workloads:
        return _workloads[key]
    gen = MixGenerator(resting, seed, recent, levels)
    prefill, peer_prefill = gen.prefill()
    # warm up: let the book settle into the mix before the measured stream
    warm_cols = Columns.empty()
    warm_peer: list[tuple[int, int, int, int, int]] = []
    for _ in range(warm_chunks):
        gen.chunk(GEN_CHUNK, warm_cols, warm_peer)
    for col, part in zip(prefill, warm_cols, strict=True):
        col.extend(part)
    peer_prefill.extend(warm_peer)
    gen.mix.clear()
    gen.seen.clear()
    cols = Columns.empty()
    peer: list[tuple[int, int, int, int, int]] = []
    while cols.rows < ops:
        gen.chunk(min(GEN_CHUNK, ops - cols.rows), cols, peer)
    seen = gen.seen
    w = Workload(resting, prefill, cols, peer_prefill, peer, dict(sorted(gen.mix.items())),
                 (min(seen), round(sum(seen) / len(seen)), max(seen)), gen.max_orders)
    if cache:
        _workloads[key] = w
    return w


# -- trials ------------------------------------------------------------------------------------


@dataclass
class Trial:
    """A prepared run: ``run()`` is timed and returns the rows it processed."""

    run: Callable[[], int]
    finish: Callable[[], None] = lambda: None
    info: dict[str, Any] = field(default_factory=dict)


def kernel_trial(core: str, w: Workload, rows_per_call: int) -> Trial:
    """A fresh book of ``core`` filled with the prefill (untimed); ``run`` applies the mix
    with ``process_many``, ``rows_per_call`` rows per call."""
    book = book_class(core)(w.max_orders)
    for part in w.prefill.split(100_000):
        book.process_many(*part, bytearray(part.rows), array("q"))
    calls = w.ops.split(rows_per_call)
    outs = [bytearray(cols.rows) for cols in calls]
    events_n = [0]
    trial = Trial(run=lambda: 0)

    def run() -> int:
        n_events = 0
        for cols, out in zip(calls, outs, strict=True):
            events = array("q")
            book.process_many(*cols, out, events)
            n_events += len(events)
        events_n[0] = n_events
        return w.ops.rows

    def finish() -> None:
        codes: dict[str, int] = {}
        for out in outs:
            for code, name in c.CODE_NAMES.items():
                k = out.count(code)
                if k:
                    codes[name] = codes.get(name, 0) + k
        state = book.export_state()["orders"]
        trial.info.update(
            check=(len(book), book.best_bid(), book.best_ask(), hash(tuple(state)),
                   events_n[0], tuple(sorted(codes.items()))),
            outcomes=codes, events=events_n[0] // c.BULK_EVENT_FIELDS, resting_after=len(book),
        )

    trial.run, trial.finish = run, finish
    return trial


def single_call_trial(w: Workload) -> Trial:
    """The compiled book driven one Python call per row (submit/cancel/amend)."""
    book = book_class("compiled")(w.max_orders)
    for part in w.prefill.split(100_000):
        book.process_many(*part, bytearray(part.rows), array("q"))
    rows = list(zip(*w.ops, strict=True))

    def run() -> int:
        submit, cancel, amend = book.submit, book.cancel, book.amend
        for op, oid, acct, side, price, qty, f in rows:
            if op == c.OP_LIMIT:
                submit(oid, acct, side, price, qty, tif=f & 3, stp=f >> 3)
            elif op == c.OP_CANCEL:
                cancel(oid)
            elif op == c.OP_AMEND:
                amend(oid, qty or None, price or None)
            elif side == c.BUY and price:
                submit(oid, acct, side, 0, 0, kind=c.MARKET, tif=f & 3, stp=f >> 3,
                       quote_budget=price)
            else:
                submit(oid, acct, side, 0, qty, kind=c.MARKET, tif=f & 3, stp=f >> 3)
        return len(rows)

    return Trial(run=run)


def peer_trial(factory: Callable[[], Any], w: Workload, ops: int) -> Trial:
    peer = factory()
    peer.apply(w.peer_prefill)
    rows = w.peer_ops[:ops]
    return Trial(run=lambda: int(peer.apply(rows)), info={"version": peer.version})


# -- peers ---------------------------------------------------------------------------------------


def peers_dir() -> Path | None:
    """``benchmarks/peers`` of the source checkout this package runs from, if any."""
    here = Path(__file__).resolve()
    for root in here.parents[:4]:
        cand = root / "benchmarks" / "peers"
        if (cand / "__init__.py").is_file():
            return cand
    return None


def load_peers() -> tuple[dict[str, Callable[[], Any]], dict[str, str]]:
    """Peer factories found, and why the others are missing."""
    where = peers_dir()
    if where is None:
        reason = "benchmarks/peers not found (run solvent bench from a source checkout)"
        return {}, dict.fromkeys(("limit-order-book", "cython-orderbook", "pyorderbook",
                                  "lightmatchingengine"), reason)
    parent = str(where.parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    mod = importlib.import_module("peers")
    found, missing = mod.load_peers()
    return dict(found), dict(missing)


# -- measuring -----------------------------------------------------------------------------------


def time_trial(make: Callable[[], Trial]) -> tuple[float, Trial]:
    trial = make()
    gc.collect()
    t0 = time.perf_counter_ns()
    units = trial.run()
    elapsed = time.perf_counter_ns() - t0
    trial.finish()
    return units * 1e9 / max(elapsed, 1), trial


def time_info(make: Callable[[], Trial]) -> tuple[float, dict[str, Any]]:
    """:func:`time_trial`, keeping only the trial's info (its book is freed on return)."""
    rate, trial = time_trial(make)
    info = trial.info
    del trial
    gc.collect()
    return rate, info


def measure_cores(
    w: Workload, rows_per_call: int, repeats: int, cores: Sequence[str] = CORES,
) -> tuple[dict[str, list[float]], dict[str, dict[str, Any]]]:
    """Rates of every run per core (cores alternate), checking they agree."""
    rates: dict[str, list[float]] = {core: [] for core in cores}
    info: dict[str, dict[str, Any]] = {}
    checks: set[Any] = set()
    for k in range(repeats):
        for core in cores:
            if core == "python" and k > 0 and w.resting > 1_000:
                continue  # the twin runs once on big books (refilling it takes long)
            rate, info[core] = time_info(partial(kernel_trial, core, w, rows_per_call))
            rates[core].append(rate)
            checks.add(repr(info[core]["check"]))
    if len(checks) > 1:
        raise MatchingBenchError(f"the books ended in different states: {sorted(checks)}")
    return rates, info


class MatchingBenchError(Exception):
    """The two books disagreed on a benchmark's result."""


def _r(x: float) -> int:
    return round(x)


def _common(repeats: int) -> dict[str, Any]:
    return {"repeats": repeats, "cpu_count": os.cpu_count(), "python": platform.python_version()}


def _runs(rates: dict[str, list[float]]) -> dict[str, list[int]]:
    return {("compiled" if k == "compiled" else BASELINE): [_r(x) for x in v]
            for k, v in rates.items()}


def _mix_params(w: Workload, info: dict[str, Any]) -> dict[str, Any]:
    total = sum(w.mix.values())
    share = {k: round(v / total, 4) for k, v in w.mix.items()}
    limits = w.mix.get("limit_crossing", 0) + w.mix.get("limit_passive", 0)
    return {
        "ops": w.ops.rows,
        "resting_target": w.resting,
        "resting_min_mean_max": list(w.resting_seen),
        "accounts": ACCOUNTS,
        "mix_share": share,
        "limit_crossing_share_of_limits": round(w.mix.get("limit_crossing", 0) / limits, 4),
        "outcomes": info["outcomes"],
        "events": info["events"],
        "stp": "expire_maker on every order",
    }


def bench_kernel(s: MatchSizes) -> dict[str, Any]:
    w = build_workload(s.kernel_resting, s.kernel_ops)
    rates, info = measure_cores(w, s.rows_per_call, s.repeats)
    value, twin = max(rates["compiled"]), max(rates["python"])
    single = max(time_trial(lambda: single_call_trial(w))[0] for _ in range(s.repeats))
    found, missing = load_peers()
    baselines: dict[str, int] = {BASELINE: _r(twin)}
    peer_runs: dict[str, list[int]] = {}
    versions: dict[str, str] = {}
    for name, factory in found.items():
        runs = []
        for _ in range(s.repeats):
            rate, peer_info = time_info(partial(peer_trial, factory, w, s.peer_ops))
            runs.append(rate)
            versions[name] = peer_info["version"]
        peer_runs[name] = [_r(x) for x in runs]
        baselines[name] = _r(max(runs))
    fastest = max((v for k, v in baselines.items() if k != BASELINE), default=0)
    fastest_name = next((k for k, v in baselines.items() if k != BASELINE and v == fastest), "")
    over_peer = round(value / fastest, 1) if fastest else None
    p: dict[str, Any] = {
        "compiled_over_twin": round(value / twin, 1),
        "over_fastest_peer": over_peer,
        "fastest_peer": fastest_name,
        "call": "OrderBook.process_many, array('q') columns, "
                f"{s.rows_per_call:,} rows per call; events appended to an array('q')",
        "single_call_ops_per_s": _r(single),
        "single_call": "one submit/cancel/amend Python call per row (compiled book)",
        **_mix_params(w, info["compiled"]),
        "peers": {name: {"version": versions[name], "rows": min(s.peer_ops, len(w.peer_ops)),
                         "runs": peer_runs[name]} for name in found},
        "peers_missing": missing,
        "peer_method": "the same rows through each package's public API, one call per row "
                       "(IOC = limit + cancel of any remainder, amend = cancel + new limit, "
                       "market buy by budget = market buy of the same quantity); "
                       "no STP or accounts in the peers",
        **_common(s.repeats),
        "runs": _runs(rates),
        "target": KERNEL_TARGET,
        "meets_target": value >= KERNEL_TARGET["value"] and (
            over_peer is None or over_peer >= KERNEL_TARGET["over_fastest_peer"]),
    }
    return {"unit": "ops/s", "value": _r(value), "baselines": baselines, "params": p}


@dataclass
class SweepRuns:
    """The compiled book's runs at every sweep size, taken in interleaved rounds: each
    round runs every size once (its starting size rotating), so a slow stretch of a
    shared host lands on one round of every size rather than on every run of one size.
    The native peer runs in the first two rounds the same way."""

    rates: dict[int, list[float]]  # resting -> compiled rate per round
    info: dict[int, dict[str, Any]]  # resting -> the last compiled trial's info
    peer: dict[int, list[float]]  # resting -> the native peer's rate per round run
    peer_version: str
    order: list[list[int]]  # the sizes in each round's order

    def best(self, resting: int) -> float:
        return max(self.rates[resting])

    def paired_over(self, resting: int, base: int) -> list[float]:
        """``resting``'s rate over ``base``'s, round by round (both measured close in time)."""
        return [round(a / b, 2) for a, b in zip(self.rates[resting], self.rates[base],
                                                strict=True)]


def sweep_rounds(s: MatchSizes) -> SweepRuns:
    """Time the compiled book (and the native peer, if installed) at every size of
    ``s.sweep`` in ``s.repeats`` interleaved rounds."""
    sizes = [resting for _name, resting in s.sweep]
    works = {r: build_workload(r, s.sweep_ops, seed=13) for r in sizes}
    factory = load_peers()[0].get(s.sweep_peer) if s.sweep_peer else None
    runs = SweepRuns({r: [] for r in sizes}, {}, {r: [] for r in sizes}, "", [])
    for k in range(s.repeats):
        order = sizes[k % len(sizes):] + sizes[:k % len(sizes)]
        runs.order.append(order)
        for r in order:
            # only the trial's info outlives it: a book kept alive into the next trial
            # would take memory (and huge pages) from the next one
            rate, info = time_info(partial(kernel_trial, "compiled", works[r],
                                           s.rows_per_call))
            runs.rates[r].append(rate)
            if r in runs.info and repr(runs.info[r]["check"]) != repr(info["check"]):
                raise MatchingBenchError(f"{r:,} resting: two runs of the same rows ended "
                                         "in different states")
            runs.info[r] = info
            if factory is not None and k < 2:
                rate, info = time_info(partial(peer_trial, factory, works[r], s.peer_ops))
                runs.peer[r].append(rate)
                runs.peer_version = info["version"]
    return runs


def bench_size(s: MatchSizes, name: str, resting: int, sweep: SweepRuns) -> dict[str, Any]:
    """``name``'s figure from the interleaved ``sweep``, with the twin measured here on
    the same rows (up to ``s.twin_sweep_max`` resting orders) and required to end in the
    same state as the compiled book."""
    w = build_workload(resting, s.sweep_ops, seed=13)
    value = sweep.best(resting)
    base = s.sweep[0][1]  # the smallest book: 1,000 resting orders
    info = sweep.info[resting]
    twin: float | None = None
    if resting <= s.twin_sweep_max:
        # (measure_cores runs a twin above 1,000 resting orders once: refilling it is slow)
        rates, twin_info = measure_cores(w, s.rows_per_call, s.repeats, ("python",))
        twin = max(rates["python"])
        if repr(twin_info["python"]["check"]) != repr(info["check"]):
            raise MatchingBenchError(f"{name}: the books ended in different states")
    paired = sweep.paired_over(resting, base)
    p: dict[str, Any] = {
        # NaN (JSON null) when the twin is not measured at this size (--quick)
        "compiled_over_twin": round(value / twin, 1) if twin else float("nan"),
        "over_kernel_1k": round(value / sweep.best(base), 2),
        "over_kernel_1k_by_round": paired,
        "over_kernel_1k_median_of_rounds": sorted(paired)[len(paired) // 2],
        # the growth in absolute terms: what an operation costs more than at 1k
        "ns_per_op": round(1e9 / value, 1),
        "extra_ns_per_op_over_1k": round(1e9 / value - 1e9 / sweep.best(base), 1),
        "sweep_rounds": sweep.order,
        "sweep_method": "the sizes run in interleaved rounds (each round runs every size "
                        "once, starting one size later each round); over_kernel_1k is best "
                        "over best, over_kernel_1k_by_round pairs the runs of one round",
        "prefill": f"{resting:,} GTC orders over {max(20, resting // 50):,} levels per side "
                   "(untimed), then a warm-up of the mix",
        **_mix_params(w, info),
        **_common(s.repeats),
        "runs": {"compiled": [_r(x) for x in sweep.rates[resting]],
                 **({BASELINE: [_r(x) for x in rates["python"]]} if twin else {})},
        "target": SIZE_TARGET,
        "meets_target": value >= SIZE_TARGET["value"],
    }
    if twin is None:
        p["twin"] = f"not measured at this size in this mode (up to {s.twin_sweep_max:,})"
    baselines: dict[str, float] = {BASELINE: _r(twin) if twin else float("nan")}
    peer_runs = sweep.peer[resting]
    if peer_runs:
        peer_value, peer_base = max(peer_runs), max(sweep.peer[base])
        baselines[s.sweep_peer] = _r(peer_value)
        p["native_peer"] = {"name": s.sweep_peer, "version": sweep.peer_version,
                            "value": _r(peer_value), "runs": [_r(x) for x in peer_runs],
                            "rows": min(s.peer_ops, len(w.peer_ops)),
                            "over_its_1k": round(peer_value / peer_base, 2),
                            "ns_per_op": round(1e9 / peer_value, 1),
                            "extra_ns_per_op_over_its_1k":
                                round(1e9 / peer_value - 1e9 / peer_base, 1)}
    if s.sweep_parts and resting == 1_000_000:
        p["cost_parts"] = cost_parts(s, resting, sweep.best(base))
    return {"unit": "ops/s", "value": _r(value), "baselines": baselines, "params": p}


RECENT_PICK: Final = 2_000


def cost_parts(s: MatchSizes, resting: int, rate_1k: float | None) -> dict[str, Any]:
    """What the big book's extra cost per operation is made of: the same mix with the
    cancels and amends picking among the ~2,000 most recent resting orders (so they stop
    touching random memory across the whole book), then also with the prefill on 20
    levels per side (as at 1k) instead of n/50. Diagnostics, not targets."""
    out: dict[str, Any] = {"recent_pick": RECENT_PICK}
    for name, levels in (("recent_cancels", None), ("recent_cancels_20_levels", 20)):
        w = build_workload(resting, s.sweep_ops, seed=13, recent=RECENT_PICK, levels=levels,
                           cache=False)
        rates, _info = measure_cores(w, s.rows_per_call, min(2, s.repeats), ("compiled",))
        value = max(rates["compiled"])
        out[name] = {"value": _r(value),
                     "over_kernel_1k": round(value / rate_1k, 2) if rate_1k else None,
                     "runs": [_r(x) for x in rates["compiled"]]}
    return out


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def bytes_per_order(core: str, n: int) -> dict[str, Any]:
    """Fill a book of ``core`` with ``n`` resting orders (:func:`prefill_columns`: n/50
    levels per side, 1,000 accounts); the growth of tracemalloc's traced memory per order."""
    parts = prefill_columns(n, max(20, n // 50)).split(100_000)
    gc.collect()
    rss0 = _rss_bytes()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        book = book_class(core)(min(c.MAX_ORDERS_LIMIT, max(n, 1 << 16)))
        for part in parts:
            out = bytearray(part.rows)
            events: array[int] = array("q")
            book.process_many(*part, out, events)
            del out, events
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    rss1 = _rss_bytes()
    if len(book) != n:
        raise MatchingBenchError(f"{core}: {len(book)} orders rest, not {n}")
    res = {"orders": n, "traced_bytes": after - before,
           "bytes_per_order": round((after - before) / n, 1),
           "rss_growth_bytes_per_order": round((rss1 - rss0) / n, 1)}
    if core == "compiled":
        res["allocated_bytes_per_order"] = round(book.allocated_bytes / n, 1)
    del book
    gc.collect()
    return res


def bytes_per_order_fresh(core: str, n: int) -> dict[str, Any]:
    """:func:`bytes_per_order` in a fresh interpreter, so the RSS growth is not hidden by
    memory an earlier benchmark of this process freed."""
    code = ("import json; from solvent.bench_matching import bytes_per_order; "
            f"print(json.dumps(bytes_per_order({core!r}, {int(n)})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise MatchingBenchError(f"bytes_per_order({core!r}) failed: {done.stderr[-2000:]}")
    res: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return res


def bench_bytes(s: MatchSizes) -> dict[str, Any]:
    compiled = bytes_per_order_fresh("compiled", s.bytes_orders)
    twin = bytes_per_order_fresh("python", s.twin_bytes_orders)
    value = compiled["bytes_per_order"]
    p = {
        "compiled_over_twin": round(value / twin["bytes_per_order"], 2),
        "method": "tracemalloc: traced memory after the book holds the orders minus before "
                  "the book was made (the compiled book allocates with PyMem_RawMalloc, "
                  "which tracemalloc traces); input columns made before, events freed; "
                  "each core in a fresh interpreter. Cross-checks: the compiled book's own "
                  "allocated_bytes, and the RSS growth (which also counts tracemalloc's "
                  "bookkeeping: large for the twin's millions of objects)",
        "compiled": compiled,
        "python_twin": twin,
        "levels_per_side": max(20, s.bytes_orders // 50),
        "target_max_bytes": BYTES_TARGET_MAX,
        "meets_target": value <= BYTES_TARGET_MAX,
        **_common(1),
    }
    if s.twin_bytes_orders != s.bytes_orders:
        p["twin_note"] = f"the twin is measured at {s.twin_bytes_orders:,} orders in this mode"
    return {"unit": "bytes/order", "value": value,
            "baselines": {BASELINE: twin["bytes_per_order"]}, "params": p}


# -- entry point for solvent bench ----------------------------------------------------------------


def _sizes(ctx: Any) -> MatchSizes:
    from solvent import bench

    return QUICK if getattr(ctx, "sizes", None) == bench.QUICK else FULL


def _jobs(sizes: Callable[[], MatchSizes]) -> dict[str, Callable[[], dict[str, Any]]]:
    jobs: dict[str, Callable[[], dict[str, Any]]] = {
        "matching.kernel": lambda: bench_kernel(sizes()),
    }
    swept: dict[MatchSizes, SweepRuns] = {}  # the first sweep job runs every size

    def sweep(name: str, resting: int) -> Callable[[], dict[str, Any]]:
        def job() -> dict[str, Any]:
            s = sizes()
            if s not in swept:
                swept[s] = sweep_rounds(s)
            return bench_size(s, name, resting, swept[s])

        return job

    for name, resting in FULL.sweep:
        jobs[name] = sweep(name, resting)
    jobs["matching.bytes_per_order"] = lambda: bench_bytes(sizes())
    return jobs


def matching_benchmarks() -> dict[str, Callable[[Any], dict[str, Any]]]:
    """The ``matching.*`` benchmarks for ``solvent bench``: name -> function of the bench
    context (``--quick`` selects :data:`QUICK`, else :data:`FULL`). The first of the
    ``matching.kernel_*`` jobs to run times every size (:func:`sweep_rounds`); the others
    report from those runs."""
    current: list[Any] = [None]
    jobs = _jobs(lambda: _sizes(current[0]))

    def bind(job: Callable[[], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
        def call(ctx: Any) -> dict[str, Any]:
            current[0] = ctx
            return job()

        return call

    return {name: bind(job) for name, job in jobs.items()}


def run(quick: bool = False, only: str = "matching") -> dict[str, Any]:
    """Run the matching benchmarks alone: ``python -m solvent.bench_matching [--quick]``."""
    s = QUICK if quick else FULL
    results: dict[str, Any] = {}
    for name, job in _jobs(lambda: s).items():
        if name.startswith(only):
            t0 = time.perf_counter()
            results[name] = job()
            results[name]["params"]["wall_s"] = round(time.perf_counter() - t0, 1)
    return results


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))


__all__ = [
    "FULL",
    "QUICK",
    "Columns",
    "MatchSizes",
    "MatchingBenchError",
    "MixGenerator",
    "SweepRuns",
    "Trial",
    "Workload",
    "build_workload",
    "bytes_per_order",
    "cost_parts",
    "kernel_trial",
    "load_peers",
    "matching_benchmarks",
    "peer_trial",
    "prefill_columns",
    "single_call_trial",
    "sweep_rounds",
]
