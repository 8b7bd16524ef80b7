"""The market engine: the compiled engine (``solvent._engine``) against its Python twin.

Both engines run over their own real balance core and order book (no mocks):
``python`` is :class:`solvent.engine.twin.MarketEngine` over the twin core and
book, ``compiled`` is ``solvent._engine.MarketEngine`` over the compiled ones.

* ``test_seeded_streams``: seeded random batches (``SEEDED_ROWS`` rows in all,
  100,000 by default; ``SOLVENT_ENGINE_DIFF_ROWS`` changes it) of every kind of
  row, valid and not, with frozen and poor accounts, a small open-order limit, a
  small book, a reference band, halts, ``live_code`` and ``owner``; both engines
  must return identical bytes and end every batch in identical states, every
  hold equal to what the resting orders need. Each seed must hit every result
  code, fills and maker expiries, so a degenerate generator fails the test.
* ``test_replay_reproduces``: ``replay`` of the journaled input rows on a fresh
  engine gives the same result and event bytes and the same final state.
* ``test_holds_match_orders``: hypothesis batches; after each one, held funds are
  exactly ``hold_needed`` of the resting orders, balances are conserved, the fee
  account only grows and nothing is negative.
* ``test_refused``: one refusal per result code path (``CASES``), with its exact
  code and nothing changed; ``test_submit_*``: the stop rule and the row limit;
  ``test_settlement_exact``: one settlement, minor unit by minor unit.
* the last tests pin what these tests found and what was fixed: the fee account
  trading, order ids near int64, a negative ``start``, rows given as an iterator.
"""

from __future__ import annotations

import os
import random
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solvent.core import codes as cc
from solvent.core import core_class
from solvent.engine import codes as c
from solvent.engine import engine_class
from solvent.matching import book_class
from solvent.matching import codes as mc

ENGINES = ("python", "compiled")
MKT = 3  # the engines' market number (not 0, so a zero field is not "this market")
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
SEEDS = 6  # one per SEED_CONFIGS entry
SEEDED_ROWS = int(os.environ.get("SOLVENT_ENGINE_DIFF_ROWS", "100000"))
BATCH_ROWS = 250  # a batch with a halt, a live code or an owner is a fifth of that

Row = tuple[int, ...]


# -- a market: a core, its accounts, an engine ---------------------------------------------


@dataclass
class Market:
    name: str
    core: Any
    eng: Any
    base: int
    quote: int
    wallets: tuple[int, int]
    fee: int
    traders: list[int]  # well-funded customers and one company account
    poor: list[int]  # customers with a few lots' worth of each asset
    holders: list[int]  # every non-wallet account (fee account included)
    funded: dict[int, int]  # asset -> what the non-wallet accounts hold in all
    params: dict[str, Any]
    build_kw: dict[str, Any]
    fee_seen: int = 0  # the fee account's quote at the last check

    def snapshot(self) -> tuple[Any, ...]:
        return (self.core.export_state(), self.eng.export_state(),
                [self.eng.open_count(a) for a in self.holders],
                [self.eng.orders_of(a) for a in self.holders])


def build(
    name: str, *, rich: int = 9, poor: int = 3, lot: int = 1000, npt: int = 7,
    maker_ppm: int = 500, taker_ppm: int = 1000, min_notional: int = 10_000,
    max_open: int = 10, max_orders: int | None = None, rich_base: int | None = None,
    rich_quote: int = 10**11, poor_lots: int = 5,
) -> Market:
    """Two assets, their wallets, a fee account, ``rich`` funded customers plus a funded
    company account, and ``poor`` customers with about ``poor_lots`` lots of each side."""
    core = core_class(name)()
    base, quote = core.add_asset(), core.add_asset()
    wb = core.add_account(cc.KIND_WALLET, base)
    wq = core.add_account(cc.KIND_WALLET, quote)
    fee = core.add_account(cc.KIND_COMPANY)
    funded = {base: 0, quote: 0}

    def fund(acct: int, b: int, q: int) -> None:
        for wallet, asset, amount in ((wb, base, b), (wq, quote, q)):
            if amount:
                assert core.post(wallet, acct, asset, amount) == cc.OK
                funded[asset] += amount

    rb = 10_000 * lot if rich_base is None else rich_base
    traders = []
    for _ in range(rich):
        traders.append(core.add_account(cc.KIND_CUSTOMER))
        fund(traders[-1], rb, rich_quote)
    traders.append(core.add_account(cc.KIND_COMPANY))  # a company account trades too
    fund(traders[-1], rb, rich_quote)
    poors = []
    for _ in range(poor):
        poors.append(core.add_account(cc.KIND_CUSTOMER))
        fund(poors[-1], poor_lots * lot, poor_lots * 1000 * npt * 6 // 5)
    params = dict(market=MKT, base=base, quote=quote, fee_account=fee, lot_minor=lot, npt=npt,
                  maker_fee_ppm=maker_ppm, taker_fee_ppm=taker_ppm,
                  min_notional_minor=min_notional, max_open_per_account=max_open)
    kw: dict[str, Any] = dict(params)
    if max_orders is not None:
        kw["book"] = book_class(name)(max_orders)
    eng = engine_class(name)(core, **kw)
    build_kw = dict(rich=rich, poor=poor, lot=lot, npt=npt, maker_ppm=maker_ppm,
                    taker_ppm=taker_ppm, min_notional=min_notional, max_open=max_open,
                    max_orders=max_orders, rich_base=rich_base, rich_quote=rich_quote,
                    poor_lots=poor_lots)
    return Market(name, core, eng, base, quote, (wb, wq), fee, traders, poors,
                  [fee, *traders, *poors], funded, params, build_kw)


def rebuild(m: Market) -> Market:
    """A fresh market built exactly like ``m``."""
    return build(m.name, **m.build_kw)


def expected_hold(m: Market, side: int, price: int, qty: int) -> int:
    """The hold rule, written out independently of either engine."""
    p = m.params
    if side == mc.SELL:
        return qty * int(p["lot_minor"])
    notional = price * qty * int(p["npt"])
    return notional + notional * max(int(p["maker_fee_ppm"]), int(p["taker_fee_ppm"])) // 10**6


def check_market(m: Market) -> None:
    """Invariants of one market after a batch: core and book consistent, every held
    balance exactly what the resting orders need, open counts right, balances
    conserved, nothing negative, the fee account never shrinking."""
    core, eng = m.core, m.eng
    core.check_invariants()
    eng.book.check_invariants()
    need: dict[tuple[int, int], int] = {}
    count: Counter[int] = Counter()
    for _oid, acct, side, price, qty in eng.book.export_state()["orders"]:
        hold = eng.hold_needed(side, price, qty)
        assert hold == expected_hold(m, side, price, qty), (side, price, qty, hold)
        asset = m.base if side == mc.SELL else m.quote
        need[(acct, asset)] = need.get((acct, asset), 0) + hold
        count[acct] += 1
    for acct in m.holders:
        for asset in (m.base, m.quote):
            held = core.held(acct, asset)
            assert held == need.get((acct, asset), 0), (acct, asset, held, need)
            assert core.available(acct, asset) >= 0, (acct, asset)
        assert eng.open_count(acct) == count[acct], (acct, eng.open_count(acct), count[acct])
        # the engine's own ids per account against a scan of the whole book
        assert eng.orders_of(acct) == eng.book.orders_of(acct), acct
    assert set(count) <= set(m.holders), count
    for asset in (m.base, m.quote):
        total = sum(core.available(a, asset) + core.held(a, asset) for a in m.holders)
        assert total == m.funded[asset], (asset, total, m.funded[asset])
    fee_now = core.available(m.fee, m.quote) + core.held(m.fee, m.quote)
    assert fee_now >= m.fee_seen, (fee_now, m.fee_seen)
    m.fee_seen = fee_now


def q(data: bytes) -> array[int]:
    a: array[int] = array("q")
    a.frombytes(data)
    return a


def normalized(item: object) -> Row | None:
    """What the input row bytes must hold for ``item`` (a third, independent parse):
    its ints, a refused placeholder row, or None for another market's row (a stop)."""
    if type(item) in (tuple, list) and len(item) == c.IN_FIELDS:  # type: ignore[arg-type]
        vals = list(item)  # type: ignore[call-overload]
        if type(vals[1]) is int and vals[1] != MKT:
            return None
        if all(type(v) is int and INT64_MIN <= v <= INT64_MAX for v in vals):
            return tuple(vals)
    return (-1, MKT, 0, 0, 0, 0, 0, 0, 0)


# -- running batches -------------------------------------------------------------------------


class Call(NamedTuple):
    live_code: int
    owner: int
    first_id: int
    consumed: int
    next_id: int
    ins: bytes
    outs: bytes
    evs: bytes


def run_rows(m: Market, rows: list[object], live_code: int, owner: int, next_id: int
             ) -> tuple[list[Call], int]:
    """Submit ``rows`` in as many calls as the stop rule needs (another market's row is
    skipped, as the caller would route it elsewhere); check each call's input bytes."""
    calls = []
    start = 0
    while start < len(rows):
        first = next_id
        consumed, next_id, ins, outs, evs = m.eng.submit(rows, start, live_code, owner, first)
        calls.append(Call(live_code, owner, first, consumed, next_id, ins, outs, evs))
        want = array("q")
        for item in rows[start:start + consumed]:
            row = normalized(item)
            assert row is not None, (item, "consumed another market's row")
            want.extend(row)
        assert q(ins) == want
        assert len(outs) == consumed * c.OUT_FIELDS * 8
        assert len(evs) % (c.EVENT_FIELDS * 8) == 0
        start += consumed
        if start < len(rows):
            assert normalized(rows[start]) is None, rows[start]
            start += 1
    return calls, next_id


def apply_control(m: Market, ctl: tuple[Any, ...]) -> None:
    if ctl[0] == "frozen":
        m.core.set_frozen(ctl[1], ctl[2])
    elif ctl[0] == "halted":
        m.eng.set_halted(ctl[1])
    elif ctl[0] == "reference":
        m.eng.set_reference(ctl[1], ctl[2])
    else:  # pragma: no cover
        raise AssertionError(ctl)


def first_difference(rows: bytes, a: Call, b: Call) -> str:
    """A readable account of where two calls' outputs part."""
    ins, oa, ob = q(rows), q(a.outs), q(b.outs)
    for i in range(min(len(oa), len(ob)) // c.OUT_FIELDS):
        ra = oa[i * c.OUT_FIELDS:(i + 1) * c.OUT_FIELDS]
        rb = ob[i * c.OUT_FIELDS:(i + 1) * c.OUT_FIELDS]
        if ra != rb:
            row = ins[i * c.IN_FIELDS:(i + 1) * c.IN_FIELDS].tolist()
            return f"row {i} {row}: {ra.tolist()} != {rb.tolist()}"
    return (f"consumed {a.consumed} / {b.consumed}, next id {a.next_id} / {b.next_id}, "
            f"events equal: {a.evs == b.evs}")


class Stream:
    """Random rows over every op and every refusal: prices in a narrow band (orders
    cross often), a few accounts (self-trade prevention triggers), targets mostly
    resting orders, and all kinds of malformed rows."""

    def __init__(self, rnd: random.Random, m: Market) -> None:
        self.rnd = rnd
        self.traders = m.traders
        self.poor = m.poor
        n: int = m.core.n_accounts
        self.bad_accounts = [*m.wallets, n, n + 7, -1, INT64_MIN, INT64_MAX]
        self.center = 1000
        self.live: list[int] = []
        self.next_id = 1
        self.owner = -1

    # -- fields ------------------------------------------------------------------------

    def account(self) -> int:
        r = self.rnd.random()
        if self.owner >= 0 and r < 0.8:
            return self.owner
        if r < 0.74:
            return self.rnd.choice(self.traders)
        if r < 0.97:
            return self.rnd.choice(self.poor)
        return self.rnd.choice(self.bad_accounts)

    def stp(self) -> int:
        return self.rnd.randrange(4) << mc.FLAG_STP_SHIFT

    def price(self, side: int) -> int:
        off = self.rnd.randint(-4, 12) if self.rnd.random() < 0.85 else self.rnd.randint(-30, 30)
        return max(1, self.center + off if side == mc.SELL else self.center - off)

    def qty(self) -> int:
        r = self.rnd.random()
        if r < 0.85:
            return self.rnd.randint(1, 20)
        if r < 0.98:
            return self.rnd.randint(21, 100)
        return self.rnd.randint(101, 2000)

    def target(self, i: int, cancel: bool = False) -> int:
        r = self.rnd.random()
        if r < 0.8 and self.live:
            k = self.rnd.randrange(len(self.live))
            if cancel:  # most likely gone after this row
                self.live[k], self.live[-1] = self.live[-1], self.live[k]
                return self.live.pop()
            return self.live[k]
        if r < 0.95:
            return max(1, self.next_id + self.rnd.randint(-25, i // 3 + 1))
        return self.rnd.choice([0, -1, 10**15, INT64_MAX, INT64_MIN])

    # -- rows --------------------------------------------------------------------------

    def limit(self) -> Row:
        side = self.rnd.randrange(2)
        r = self.rnd.random()
        tif = mc.GTC if r < 0.7 else mc.IOC if r < 0.85 else mc.FOK
        post = mc.FLAG_POST_ONLY if tif == mc.GTC and self.rnd.random() < 0.12 else 0
        return (c.OP_LIMIT, MKT, 0, self.account(), side, self.price(side), self.qty(), 0,
                tif | post | self.stp())

    def market(self) -> Row:
        if self.rnd.random() < 0.5:
            tif = self.rnd.choice([mc.IOC, mc.FOK])
            return (c.OP_MARKET, MKT, 0, self.account(), mc.SELL, 0, self.rnd.randint(1, 30),
                    0, tif | self.stp())
        r = self.rnd.random()
        budget = (self.rnd.randint(1, 9_000) if r < 0.2 else self.rnd.randint(9_000, 150_000)
                  if r < 0.95 else self.rnd.randint(150_000, 10**9))
        return (c.OP_MARKET, MKT, 0, self.account(), mc.BUY, 0, 0, budget, mc.IOC | self.stp())

    def cancel(self, i: int) -> Row:
        return (c.OP_CANCEL, MKT, self.target(i, cancel=True), 0, 0, 0, 0, 0, 0)

    def amend(self, i: int) -> Row:
        r = self.rnd.random()
        price = 0 if r < 0.4 else self.price(self.rnd.randrange(2))
        qty = 0 if 0.4 <= r < 0.7 else self.rnd.randint(1, 40)
        if self.rnd.random() < 0.03:
            price = qty = 0  # amends nothing: INVALID_ARGUMENT
        return (c.OP_AMEND, MKT, self.target(i), 0, 0, price, qty, 0, 0)

    def bad_amount(self, i: int) -> Row:
        a = self.account()
        return self.rnd.choice([
            (c.OP_LIMIT, MKT, 0, a, 0, 0, 5, 0, 0),
            (c.OP_LIMIT, MKT, 0, a, 1, -7, 5, 0, 0),
            (c.OP_LIMIT, MKT, 0, a, 0, mc.MAX_PRICE_TICKS + 1, 5, 0, 1),
            (c.OP_LIMIT, MKT, 0, a, 1, INT64_MAX, 5, 0, 0),
            (c.OP_LIMIT, MKT, 0, a, 0, 1000, 0, 0, 0),
            (c.OP_LIMIT, MKT, 0, a, 1, 1000, -1, 0, 0),
            (c.OP_LIMIT, MKT, 0, a, 0, 1000, mc.MAX_QTY_LOTS + 1, 0, 0),
            (c.OP_LIMIT, MKT, 0, a, 0, mc.MAX_PRICE_TICKS, 10**7, 0, 0),  # notional > int64
            (c.OP_LIMIT, MKT, 0, a, 1, mc.MAX_PRICE_TICKS, mc.MAX_QTY_LOTS, 0, 2),
            (c.OP_MARKET, MKT, 0, a, 1, 0, 0, 0, 1),
            (c.OP_MARKET, MKT, 0, a, 1, 0, mc.MAX_QTY_LOTS + 1, 0, 2),
            (c.OP_MARKET, MKT, 0, a, 1, 0, mc.MAX_QTY_LOTS, 0, 1),  # banded: notional > int64
            (c.OP_MARKET, MKT, 0, a, 0, 0, 0, 0, 1),
            (c.OP_MARKET, MKT, 0, a, 0, 0, 0, -5, 1),
            (c.OP_MARKET, MKT, 0, a, 0, 0, 0, INT64_MAX, 1),
            (c.OP_AMEND, MKT, self.target(i), 0, 0, -1, 5, 0, 0),
            (c.OP_AMEND, MKT, self.target(i), 0, 0, 0, mc.MAX_QTY_LOTS + 1, 0, 0),
            (c.OP_AMEND, MKT, self.target(i), 0, 0, mc.MAX_PRICE_TICKS, 10**7, 0, 0),
        ])

    def bad_field(self, i: int) -> Row:
        a = self.account()
        p = self.center
        return self.rnd.choice([
            (4, MKT, 0, a, 0, p, 1, 0, 0),
            (-1, MKT, 0, a, 0, p, 1, 0, 0),
            (INT64_MIN, MKT, 0, a, 0, p, 1, 0, 0),
            (c.OP_LIMIT, MKT, 0, a, 0, p, 1, 0, 32),
            (c.OP_LIMIT, MKT, 0, a, 0, p, 1, 0, -1),
            (c.OP_LIMIT, MKT, 0, a, 0, p, 1, 0, 1 << 40),
            (c.OP_LIMIT, MKT, 0, a, 0, p, 1, 0, 3),  # tif 3
            (c.OP_LIMIT, MKT, 0, a, 2, p, 1, 0, 0),
            (c.OP_LIMIT, MKT, 0, a, -1, p, 1, 0, 0),
            (c.OP_LIMIT, MKT, 5, a, 0, p, 1, 0, 0),  # a new order names an id
            (c.OP_LIMIT, MKT, 0, a, 0, p, 1, 100, 0),  # a limit with a budget
            (c.OP_LIMIT, MKT, 0, a, 0, p, 1, 0, mc.IOC | mc.FLAG_POST_ONLY),
            (c.OP_MARKET, MKT, 0, a, 1, 0, 5, 0, mc.GTC),
            (c.OP_MARKET, MKT, 0, a, 1, 0, 5, 0, mc.IOC | mc.FLAG_POST_ONLY),
            (c.OP_MARKET, MKT, 0, a, 1, p, 5, 0, mc.IOC),
            (c.OP_MARKET, MKT, 0, a, 1, 0, 5, 100, mc.IOC),
            (c.OP_MARKET, MKT, 0, a, 0, 0, 5, 100_000, mc.IOC),
            (c.OP_MARKET, MKT, 0, a, 0, 0, 0, 100_000, mc.FOK),
            (c.OP_CANCEL, MKT, self.target(i), a, 0, 0, 0, 0, 0),
            (c.OP_CANCEL, MKT, self.target(i), 0, 0, 0, 0, 0, 1),
            (c.OP_AMEND, MKT, self.target(i), 0, 1, 0, 5, 0, 0),
            (c.OP_AMEND, MKT, self.target(i), 0, 0, 0, 5, 0, 1),
            (c.OP_AMEND, MKT, self.target(i), 0, 0, 0, 5, 7, 0),
        ])

    def malformed(self) -> object:
        ints = self.limit()
        good: list[object] = list(ints)
        k = self.rnd.randrange(c.IN_FIELDS)
        r = self.rnd.randrange(13)
        if r == 0:
            return tuple(good[:self.rnd.randrange(c.IN_FIELDS)])  # too short
        if r == 1:
            return (*good, 0)  # too long
        if r == 2:
            good[k] = float(ints[k])
        elif r == 3:
            good[k] = bool(ints[k] % 2)
        elif r == 4:
            good[k] = self.rnd.choice([2**63, 2**64 + 3, INT64_MIN - 1, -(2**80)])
            if k == 1:
                good[k] = MKT  # an out-of-range market would be another market's row
        elif r == 5:
            good[k] = None
        elif r == 6:
            good[k] = str(ints[k])
        elif r == 7:
            good[k] = _Int(ints[k])  # an int subclass is not an int here
        elif r == 8:
            return _Row(good)  # nor a tuple subclass a row
        elif r == 9:
            return self.rnd.choice([None, 42, "row", b"x" * 72, {"op": 0}, 3.5])
        elif r == 10:
            good[1] = self.rnd.choice([True, float(MKT), str(MKT), _Int(MKT + 1)])
        elif r == 11:
            return [*good, 1][: self.rnd.choice([0, 1, 8, 10])]  # lists of wrong length
        else:
            return good  # a well-formed row as a list
        return good if self.rnd.random() < 0.5 else tuple(good)

    def foreign(self) -> object:
        row: list[object] = list(self.limit())
        row[1] = self.rnd.choice([MKT + 1, 0, -1, INT64_MAX, 2**64])
        if self.rnd.random() < 0.3:
            row[5] = 1.5  # the rest of the row need not be well formed to stop
        return row if self.rnd.random() < 0.3 else tuple(row)

    def rows(self, n: int, live: list[int], next_id: int) -> list[object]:
        self.live = live
        self.next_id = next_id
        out: list[object] = []
        for i in range(n):
            r = self.rnd.random()
            if r < 0.52:
                row: object = self.limit()
            elif r < 0.59:
                row = self.market()
            elif r < 0.67:
                row = self.cancel(i)
            elif r < 0.78:
                row = self.amend(i)
            elif r < 0.84:
                row = self.bad_amount(i)
            elif r < 0.91:
                row = self.bad_field(i)
            elif r < 0.998:
                row = self.malformed()
            else:
                row = self.foreign()
            if type(row) is tuple and self.rnd.random() < 0.05:
                row = list(row)
            out.append(row)
        return out

    def controls(self, batch: int, frozen: set[int]) -> tuple[list[tuple[Any, ...]], int, int]:
        """This batch's controls (applied to every engine), live_code and owner."""
        rnd = self.rnd
        ctls: list[tuple[Any, ...]] = []
        self.center = max(40, self.center + rnd.randint(-2, 2))
        fixed = batch in (4, 5, 9, 11)  # a live code or an owner, and nothing else
        halted = batch == 2 or (batch > 3 and not fixed and rnd.random() < 0.04)
        ctls.append(("halted", halted))
        if batch == 7 or (batch > 7 and rnd.random() < 0.5):  # the reference follows
            band = rnd.choice([10_000, 20_000, 20_000, 30_000, 5_000, 0, c.PPM])
            ctls.append(("reference", self.center + rnd.randint(-3, 3), band))
        for _ in range(rnd.choice([0, 0, 0, 1, 2])):
            acct = rnd.choice(self.traders + self.poor)
            on = acct not in frozen and len(frozen) < 2
            if on:
                frozen.add(acct)
            else:
                frozen.discard(acct)
            ctls.append(("frozen", acct, on))
        live_code = (c.ASSET_HALTED if batch == 4 else c.NOT_RECONCILED if batch == 9
                     else rnd.choice([c.ASSET_HALTED, c.NOT_RECONCILED, 77])
                     if not fixed and rnd.random() < 0.04 else 0)
        owner = (rnd.choice(self.traders) if batch in (5, 11)
                 or (not fixed and rnd.random() < 0.05) else rnd.choice([-1, -1, -1, -9]))
        self.owner = owner
        return ctls, live_code, owner


class _Int(int):
    pass


class _Row(tuple):  # type: ignore[type-arg]
    pass


@dataclass
class Stats:
    rows: int = 0
    codes: Counter[int] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    events: Counter[int] = field(default_factory=Counter)
    stops: int = 0

    def add(self, calls: list[Call], n_rows: int) -> None:
        self.rows += n_rows
        for call in calls:
            outs = q(call.outs)
            self.codes.update(outs[0::c.OUT_FIELDS])
            self.statuses.update(outs[2::c.OUT_FIELDS])
            self.events.update(q(call.evs)[1::c.EVENT_FIELDS])
        self.stops += len(calls) - 1


SEED_CONFIGS: list[dict[str, Any]] = [
    {},
    {"lot": 1, "npt": 1, "maker_ppm": 0, "taker_ppm": 0, "min_notional": 0, "max_open": 6},
    {"npt": 13, "lot": 100, "maker_ppm": 2000, "taker_ppm": 500, "min_notional": 50_000},
    {"max_orders": 40, "max_open": 12},
    {"maker_ppm": c.MAX_FEE_PPM, "taker_ppm": c.MAX_FEE_PPM, "min_notional": 7_001,
     "max_open": 4},
    # amounts near INT64_MAX: a lot at 10**9 ticks is 10**15 quote minor units
    {"npt": 10**6, "lot": 10**9, "rich_base": 10**17, "rich_quote": INT64_MAX // 20,
     "min_notional": 0, "maker_ppm": c.MAX_FEE_PPM, "taker_ppm": c.MAX_FEE_PPM - 1,
     "center": 10**9},
]
assert len(SEED_CONFIGS) == SEEDS


@dataclass
class Scenario:
    markets: list[Market]
    stats: Stats
    log: list[tuple[str, Any]]  # ("control", ctl) and ("calls", [Call, ...]) of markets[0]


def run_scenario(names: tuple[str, ...], seed: int, n_rows: int) -> Scenario:
    """Run the same seeded batches on every named engine; require identical bytes and
    identical states after each batch, and check every market's invariants."""
    config = dict(SEED_CONFIGS[seed % len(SEED_CONFIGS)])
    center = config.pop("center", 1000)
    markets = [build(name, **config) for name in names]
    rnd = random.Random(seed)
    stream = Stream(rnd, markets[0])
    stream.center = center
    stats = Stats()
    log: list[tuple[str, Any]] = []
    frozen: set[int] = set()
    next_id = 1
    batch = 0
    while stats.rows < n_rows:
        ctls, live_code, owner = stream.controls(batch, frozen)
        special = live_code or owner >= 0 or ("halted", True) in ctls
        size = min(BATCH_ROWS // 5 if special else BATCH_ROWS, n_rows - stats.rows)
        for ctl in ctls:
            log.append(("control", ctl))
            for m in markets:
                apply_control(m, ctl)
        live = [o[0] for o in markets[-1].eng.export_state()["orders"]]
        rows = stream.rows(size, live, next_id)
        results = [run_rows(m, rows, live_code, owner, next_id) for m in markets]
        calls, next_id = results[0]
        for m, (other, other_next) in zip(markets[1:], results[1:], strict=True):
            assert other_next == next_id, (m.name, other_next, next_id)
            assert len(other) == len(calls), (m.name, len(other), len(calls))
            for a, b in zip(calls, other, strict=True):
                assert a == b, f"seed {seed} batch {batch} ({m.name}): " + first_difference(
                    a.ins, a, b)
        log.append(("calls", calls))
        stats.add(calls, len(rows))
        for m in markets:
            check_market(m)
        first = markets[0].snapshot()
        for m in markets[1:]:
            assert m.snapshot() == first, f"seed {seed} batch {batch}: states differ"
        batch += 1
    return Scenario(markets, stats, log)


def assert_exercised(stats: Stats) -> None:
    """The stream hit every result code, fills, maker expiries and every final status,
    and stopped at another market's row: it has not degenerated."""
    missing = sorted(c.CODE_NAMES[k] for k in c.CODE_NAMES if stats.codes[k] == 0)
    assert not missing, f"codes never returned: {missing} ({stats.codes})"
    for ev in (mc.EV_FILL, mc.EV_MAKER_EXPIRED):
        assert stats.events[ev] >= 20, (mc.EVENT_NAMES[ev], stats.events)
    for status in (mc.EV_RESTING, mc.EV_FILLED, mc.EV_EXPIRED, mc.EV_STP_EXPIRED,
                   mc.EV_CANCELED, mc.EV_AMENDED):
        assert stats.statuses[status] >= 20, (mc.EVENT_NAMES[status], stats.statuses)
    assert stats.codes[c.OK] >= stats.rows // 5, stats.codes
    assert stats.stops >= 1


# -- 1. the differential -------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(SEEDS))
def test_seeded_streams(seed: int) -> None:
    scenario = run_scenario(("python", "compiled"), seed, SEEDED_ROWS // SEEDS + 1)
    assert_exercised(scenario.stats)
    assert scenario.stats.rows > SEEDED_ROWS // SEEDS


# -- 2. replay ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ENGINES)
def test_replay_reproduces(name: str) -> None:
    """Journaled input rows, replayed on a fresh engine with the same controls, give the
    same next order id, result and event bytes, and the same final state."""
    for seed in (11, 13):
        scenario = run_scenario((name,), seed, 6_000)
        m = scenario.markets[0]
        fresh = rebuild(m)
        replayed = 0
        for kind, entry in scenario.log:
            if kind == "control":
                apply_control(fresh, entry)
                continue
            for call in entry:
                next_id, outs, evs = fresh.eng.replay(call.ins, call.live_code, call.owner,
                                                      call.first_id)
                assert (next_id, outs, evs) == (call.next_id, call.outs, call.evs)
                replayed += call.consumed
            check_market(fresh)
        assert replayed > 5_000
        assert fresh.snapshot() == m.snapshot()


@pytest.mark.parametrize("name", ENGINES)
def test_replay_checks_its_input(name: str) -> None:
    m = build(name)
    with pytest.raises(ValueError):
        m.eng.replay(b"\0" * (8 * c.IN_FIELDS - 8), 0, -1, 1)
    with pytest.raises(ValueError):
        m.eng.replay(b"\0" * 8 * c.IN_FIELDS * (c.MAX_SUBMIT_ROWS + 1), 0, -1, 1)
    with pytest.raises(ValueError):
        m.eng.replay(b"", 0, -1, 0)
    assert m.eng.replay(b"", 0, -1, 5) == (5, b"", b"")


# -- 3. properties (hypothesis) ---------------------------------------------------------------

N_PROP_ACCOUNTS = 5  # 3 rich customers, the company trader, one poor customer

prop_account = st.integers(0, N_PROP_ACCOUNTS - 1)
prop_price = st.integers(990, 1010)
prop_stp = st.integers(0, 3).map(lambda s: s << mc.FLAG_STP_SHIFT)
prop_target = st.integers(-1, 40)
prop_rows = st.one_of(
    st.builds(lambda a, side, p, qty, tif, post, stp: (
        c.OP_LIMIT, MKT, 0, a, side, p, qty, 0, tif | (mc.FLAG_POST_ONLY if post else 0) | stp),
        prop_account, st.sampled_from([mc.BUY, mc.SELL]), prop_price, st.integers(1, 25),
        st.sampled_from([mc.GTC, mc.GTC, mc.IOC, mc.FOK]), st.booleans(), prop_stp),
    st.builds(lambda a, qty, tif, stp: (c.OP_MARKET, MKT, 0, a, mc.SELL, 0, qty, 0, tif | stp),
              prop_account, st.integers(1, 30), st.sampled_from([mc.IOC, mc.FOK]), prop_stp),
    st.builds(lambda a, budget, stp: (c.OP_MARKET, MKT, 0, a, mc.BUY, 0, 0, budget,
                                      mc.IOC | stp),
              prop_account, st.integers(1, 400_000), prop_stp),
    st.builds(lambda t: (c.OP_CANCEL, MKT, t, 0, 0, 0, 0, 0, 0), prop_target),
    st.builds(lambda t, p, qty: (c.OP_AMEND, MKT, t, 0, 0, p, qty, 0, 0),
              prop_target, st.just(0) | prop_price, st.integers(0, 30)),
)
prop_controls = st.fixed_dictionaries({
    "halted": st.sampled_from([False] * 7 + [True]),
    "live_code": st.sampled_from([0] * 7 + [c.ASSET_HALTED]),
    "owner": st.sampled_from([-1] * 5 + [0, 4]),
    "freeze": st.none() | st.tuples(prop_account, st.booleans()),
    "reference": st.none() | st.tuples(st.integers(995, 1005),
                                       st.sampled_from([0, 3_000, 10_000, 50_000])),
})
prop_batches = st.lists(st.tuples(prop_controls, st.lists(prop_rows, max_size=25)),
                        min_size=1, max_size=5)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=prop_batches)
@pytest.mark.parametrize("name", ENGINES)
def test_holds_match_orders(name: str, batches: list[tuple[dict[str, Any], list[Row]]]
                            ) -> None:
    m = build(name, rich=3, poor=1, min_notional=5_000, max_open=4, poor_lots=3)
    accounts = m.traders + m.poor
    next_id = 1
    for ctl, rows in batches:
        m.eng.set_halted(ctl["halted"])
        if ctl["freeze"] is not None:
            m.core.set_frozen(accounts[ctl["freeze"][0]], ctl["freeze"][1])
        if ctl["reference"] is not None:
            m.eng.set_reference(*ctl["reference"])
        owner = accounts[ctl["owner"]] if ctl["owner"] >= 0 else -1
        real = [(r[0], r[1], r[2], accounts[r[3]], *r[4:]) if r[0] in (c.OP_LIMIT, c.OP_MARKET)
                else r for r in rows]
        consumed, next_id, _ins, outs, _evs = m.eng.submit(real, 0, ctl["live_code"], owner,
                                                           next_id)
        assert consumed == len(real)
        assert len(q(outs)) == consumed * c.OUT_FIELDS
        check_market(m)


# -- 4. one refusal per code path ----------------------------------------------------------


class Case(NamedTuple):
    code: int
    make: Callable[[Market], Any]  # the row (or object) to submit
    setup: Callable[[Market], None] | None = None
    live_code: int = 0
    owner: Callable[[Market], int] | None = None
    config: dict[str, Any] | None = None


def seller(m: Market) -> int:
    return m.traders[0]


def buyer(m: Market) -> int:
    return m.traders[1]


def limit(acct: int, side: int, price: int, qty: int, flags: int = 0) -> Row:
    return (c.OP_LIMIT, MKT, 0, acct, side, price, qty, 0, flags)


def seed_book(m: Market) -> None:
    """Order 1: a sell of 5 at 1005 (trader 0); order 2: a buy of 5 at 995 (trader 1);
    order 3: a buy of 1 at 990 by a poor customer; the next order id is 4."""
    rows = [limit(seller(m), mc.SELL, 1005, 5), limit(buyer(m), mc.BUY, 995, 5),
            limit(m.poor[0], mc.BUY, 990, 2)]
    consumed, next_id, _i, outs, _e = m.eng.submit(rows, 0, 0, -1, 1)
    assert (consumed, next_id) == (3, 4)
    assert q(outs)[0::c.OUT_FIELDS].tolist() == [c.OK] * 3


def halt(m: Market) -> None:
    m.eng.set_halted(True)


def band(m: Market) -> None:
    m.eng.set_reference(1000, 5_000)  # 995 .. 1005


def freeze_seller(m: Market) -> None:
    m.core.set_frozen(seller(m), True)


def fill_seller_slots(m: Market) -> None:
    rows = [limit(seller(m), mc.SELL, 1010 + i, 2) for i in range(2)]
    assert m.eng.submit(rows, 0, 0, -1, 4)[1] == 6
    assert m.eng.open_count(seller(m)) == 3


def mine(m: Market) -> int:
    return buyer(m)


def order(oid: int, price: int = 0, qty: int = 0, op: int = c.OP_AMEND) -> Row:
    return (op, MKT, oid, 0, 0, price, qty, 0, 0)


def cancel(oid: int) -> Row:
    return (c.OP_CANCEL, MKT, oid, 0, 0, 0, 0, 0, 0)


IA, AM = c.INVALID_ARGUMENT, c.INVALID_AMOUNT
CASES: dict[str, Case] = {
    # INVALID_ARGUMENT: the row's shape, op, side, tif, stp bits, combinations
    "bad_op": Case(IA, lambda m: (7, MKT, 0, seller(m), 1, 1000, 1, 0, 0)),
    "negative_op": Case(IA, lambda m: (-1, MKT, 0, seller(m), 1, 1000, 1, 0, 0)),
    "flags_bit5": Case(IA, lambda m: limit(seller(m), 1, 1000, 2, 32)),
    "flags_negative": Case(IA, lambda m: limit(seller(m), 1, 1000, 2, -1)),
    "tif_3": Case(IA, lambda m: limit(seller(m), 1, 1000, 2, 3)),
    "side_2": Case(IA, lambda m: limit(seller(m), 2, 1000, 2)),
    "new_order_with_id": Case(IA, lambda m: (0, MKT, 9, seller(m), 1, 1000, 2, 0, 0)),
    "limit_with_budget": Case(IA, lambda m: (0, MKT, 0, seller(m), 1, 1000, 2, 50, 0)),
    "post_only_ioc": Case(IA, lambda m: limit(seller(m), 1, 1010, 2, 1 | 4)),
    "market_gtc": Case(IA, lambda m: (1, MKT, 0, seller(m), 1, 0, 2, 0, 0)),
    "market_post_only": Case(IA, lambda m: (1, MKT, 0, seller(m), 1, 0, 2, 0, 1 | 4)),
    "market_with_price": Case(IA, lambda m: (1, MKT, 0, seller(m), 1, 1000, 2, 0, 1)),
    "market_sell_with_budget": Case(IA, lambda m: (1, MKT, 0, seller(m), 1, 0, 2, 9, 1)),
    "market_buy_with_qty": Case(IA, lambda m: (1, MKT, 0, buyer(m), 0, 0, 2, 99_999, 1)),
    "market_buy_fok": Case(IA, lambda m: (1, MKT, 0, buyer(m), 0, 0, 0, 99_999, 2)),
    "wallet_account": Case(IA, lambda m: limit(m.wallets[0], 1, 1000, 2)),
    "cancel_with_account": Case(IA, lambda m: (2, MKT, 1, seller(m), 0, 0, 0, 0, 0)),
    "cancel_with_flags": Case(IA, lambda m: (2, MKT, 1, 0, 0, 0, 0, 0, 1)),
    "amend_nothing": Case(IA, lambda m: order(1)),
    "amend_with_side": Case(IA, lambda m: (3, MKT, 1, 0, 1, 0, 3, 0, 0)),
    "amend_with_budget": Case(IA, lambda m: (3, MKT, 1, 0, 0, 0, 3, 5, 0)),
    "row_too_short": Case(IA, lambda m: limit(seller(m), 1, 1000, 2)[:8]),
    "row_too_long": Case(IA, lambda m: (*limit(seller(m), 1, 1000, 2), 0)),
    "row_float": Case(IA, lambda m: (0, MKT, 0, seller(m), 1, 1000.0, 2, 0, 0)),
    "row_bool": Case(IA, lambda m: (0, MKT, 0, seller(m), True, 1000, 2, 0, 0)),
    "row_beyond_int64": Case(IA, lambda m: (0, MKT, 0, seller(m), 1, 2**63, 2, 0, 0)),
    "row_below_int64": Case(IA, lambda m: (0, MKT, 0, seller(m), 1, 1000, INT64_MIN - 1, 0, 0)),
    "row_none": Case(IA, lambda m: None),
    "row_str": Case(IA, lambda m: "0,3,0,4,1,1000,2,0,0"),
    "row_tuple_subclass": Case(IA, lambda m: _Row(limit(seller(m), 1, 1000, 2))),
    "row_int_subclass": Case(IA, lambda m: (0, MKT, 0, _Int(seller(m)), 1, 1000, 2, 0, 0)),
    "book_refuses_duplicate_id": Case(  # first_order_id names a resting order
        IA, lambda m: limit(seller(m), 1, 1020, 2), config={"first_id": 1}),
    # INVALID_AMOUNT
    "price_zero": Case(AM, lambda m: limit(seller(m), 1, 0, 2)),
    "price_too_high": Case(AM, lambda m: limit(seller(m), 1, mc.MAX_PRICE_TICKS + 1, 2)),
    "qty_zero": Case(AM, lambda m: limit(seller(m), 1, 1000, 0)),
    "qty_negative": Case(AM, lambda m: limit(seller(m), 1, 1000, -3)),
    "qty_too_high": Case(AM, lambda m: limit(buyer(m), 0, 900, mc.MAX_QTY_LOTS + 1)),
    "notional_beyond_int64": Case(  # 10**7 * 10**6 * 10**6 = 10**19
        AM, lambda m: limit(buyer(m), 0, 10**7, 10**6), config={"npt": 10**6}),
    "sell_notional_beyond_int64": Case(
        AM, lambda m: limit(seller(m), 1, 10**7, 10**6), config={"npt": 10**6}),
    "hold_beyond_int64": Case(  # notional 9.22e18 fits, notional + fee does not
        AM, lambda m: limit(buyer(m), 0, mc.MAX_PRICE_TICKS, 9_220_000),
        config={"npt": 1, "lot": 1, "min_notional": 0}),
    "market_sell_qty_zero": Case(AM, lambda m: (1, MKT, 0, seller(m), 1, 0, 0, 0, 1)),
    "market_sell_notional_beyond_int64": Case(
        AM, lambda m: (1, MKT, 0, seller(m), 1, 0, 10**12, 0, 1),
        setup=lambda m: m.eng.set_reference(10**7, 1_000)),
    "market_buy_budget_zero": Case(AM, lambda m: (1, MKT, 0, buyer(m), 0, 0, 0, 0, 1)),
    "market_buy_budget_negative": Case(AM, lambda m: (1, MKT, 0, buyer(m), 0, 0, 0, -1, 1)),
    "banded_market_buy_too_many_lots": Case(
        AM, lambda m: (1, MKT, 0, buyer(m), 0, 0, 0, 10**13, 1),
        setup=lambda m: m.eng.set_reference(1, 0), config={"npt": 1, "min_notional": 0}),
    "amend_price_negative": Case(AM, lambda m: order(2, price=-5)),
    "amend_qty_too_high": Case(AM, lambda m: order(2, qty=mc.MAX_QTY_LOTS + 1)),
    "amend_notional_beyond_int64": Case(AM, lambda m: order(1, mc.MAX_PRICE_TICKS, 10**7)),
    # UNKNOWN_ACCOUNT
    "account_past_end": Case(c.UNKNOWN_ACCOUNT, lambda m: limit(m.core.n_accounts, 1, 1000, 2)),
    "account_negative": Case(c.UNKNOWN_ACCOUNT, lambda m: limit(-1, 1, 1000, 2)),
    "account_int64_max": Case(c.UNKNOWN_ACCOUNT, lambda m: (1, MKT, 0, INT64_MAX, 1, 0, 2, 0, 1)),
    # PERMISSION_DENIED
    "place_for_another": Case(c.PERMISSION_DENIED, lambda m: limit(seller(m), 1, 1000, 2),
                              owner=mine),
    "cancel_anothers": Case(c.PERMISSION_DENIED, lambda m: cancel(1), owner=mine),
    "amend_anothers": Case(c.PERMISSION_DENIED, lambda m: order(1, qty=2), owner=mine),
    # MARKET_HALTED
    "halted_limit": Case(c.MARKET_HALTED, lambda m: limit(buyer(m), 0, 990, 2), setup=halt),
    "halted_market": Case(c.MARKET_HALTED, lambda m: (1, MKT, 0, seller(m), 1, 0, 2, 0, 1),
                          setup=halt),
    "halted_amend": Case(c.MARKET_HALTED, lambda m: order(2, qty=3), setup=halt),
    # the caller's live code
    "asset_halted_limit": Case(c.ASSET_HALTED, lambda m: limit(buyer(m), 0, 990, 2),
                               live_code=c.ASSET_HALTED),
    "not_reconciled_market_buy": Case(
        c.NOT_RECONCILED, lambda m: (1, MKT, 0, buyer(m), 0, 0, 0, 99_999, 1),
        live_code=c.NOT_RECONCILED),
    "asset_halted_amend_grows": Case(c.ASSET_HALTED, lambda m: order(2, qty=6),
                                     live_code=c.ASSET_HALTED),
    "not_reconciled_amend_moves": Case(c.NOT_RECONCILED, lambda m: order(2, price=994),
                                       live_code=c.NOT_RECONCILED),
    "other_live_code": Case(12345, lambda m: limit(buyer(m), 0, 990, 2), live_code=12345),
    # PRICE_OUTSIDE_BAND
    "above_band": Case(c.PRICE_OUTSIDE_BAND, lambda m: limit(seller(m), 1, 1006, 2),
                       setup=band),
    "below_band": Case(c.PRICE_OUTSIDE_BAND, lambda m: limit(buyer(m), 0, 994, 2), setup=band),
    "amend_out_of_band": Case(c.PRICE_OUTSIDE_BAND, lambda m: order(1, price=1006), setup=band),
    # BELOW_MIN_NOTIONAL (10,000 minor; a lot at 1,000 ticks is 7,000)
    "limit_below_min": Case(c.BELOW_MIN_NOTIONAL, lambda m: limit(buyer(m), 0, 990, 1)),
    "market_buy_buys_nothing": Case(c.BELOW_MIN_NOTIONAL,
                                    lambda m: (1, MKT, 0, buyer(m), 0, 0, 0, 7, 1)),
    "market_buy_below_min": Case(c.BELOW_MIN_NOTIONAL,
                                 lambda m: (1, MKT, 0, buyer(m), 0, 0, 0, 9_999, 1)),
    "banded_market_buy_no_lot": Case(c.BELOW_MIN_NOTIONAL,
                                     lambda m: (1, MKT, 0, buyer(m), 0, 0, 0, 7_000, 1),
                                     setup=band),
    "banded_market_sell_below_min": Case(c.BELOW_MIN_NOTIONAL,
                                         lambda m: (1, MKT, 0, seller(m), 1, 0, 1, 0, 1),
                                         setup=band),
    # an amend is checked as a new order would be: 1 lot at 995 is 6,965; 5 at 200 is 7,000
    "amend_qty_below_min": Case(c.BELOW_MIN_NOTIONAL, lambda m: order(2, qty=1)),
    "amend_price_below_min": Case(c.BELOW_MIN_NOTIONAL, lambda m: order(2, price=200)),
    # LIMIT_EXCEEDED
    "open_orders_per_account": Case(c.LIMIT_EXCEEDED, lambda m: limit(seller(m), 1, 1030, 2),
                                    setup=fill_seller_slots),
    "book_full": Case(c.LIMIT_EXCEEDED, lambda m: limit(m.traders[2], 0, 980, 2),
                      config={"max_orders": 3}),
    # ACCOUNT_FROZEN
    "frozen_limit": Case(c.ACCOUNT_FROZEN, lambda m: limit(seller(m), 1, 1000, 2),
                         setup=freeze_seller),
    "frozen_amend_grows": Case(c.ACCOUNT_FROZEN, lambda m: order(1, qty=9),
                               setup=freeze_seller),
    # INSUFFICIENT_FUNDS
    "poor_buy": Case(c.INSUFFICIENT_FUNDS, lambda m: limit(m.poor[0], 0, 990, 50)),
    "poor_sell": Case(c.INSUFFICIENT_FUNDS, lambda m: limit(m.poor[0], 1, 1010, 6)),
    "poor_market_buy": Case(c.INSUFFICIENT_FUNDS,
                            lambda m: (1, MKT, 0, m.poor[0], 0, 0, 0, 10**6, 1)),
    "poor_amend_grows": Case(c.INSUFFICIENT_FUNDS, lambda m: order(3, qty=40)),
    # POST_ONLY_WOULD_TAKE, FOK_UNFILLABLE
    "post_only_crosses": Case(c.POST_ONLY_WOULD_TAKE,
                              lambda m: limit(buyer(m), 0, 1005, 2, mc.FLAG_POST_ONLY)),
    "fok_too_big": Case(c.FOK_UNFILLABLE, lambda m: limit(buyer(m), 0, 1005, 6, mc.FOK)),
    "fok_market_sell_too_big": Case(c.FOK_UNFILLABLE,
                                    lambda m: (1, MKT, 0, seller(m), 1, 0, 9, 0, mc.FOK)),
    "fok_own_order_expire_taker": Case(  # the only ask is the seller's own
        c.FOK_UNFILLABLE, lambda m: limit(seller(m), 0, 1005, 2, mc.FOK | (1 << 3))),
    # UNKNOWN_ORDER
    "cancel_unknown": Case(c.UNKNOWN_ORDER, lambda m: cancel(999)),
    "cancel_zero": Case(c.UNKNOWN_ORDER, lambda m: cancel(0)),
    "cancel_negative": Case(c.UNKNOWN_ORDER, lambda m: cancel(INT64_MIN)),
    "cancel_twice": Case(c.UNKNOWN_ORDER, lambda m: cancel(2),
                         setup=lambda m: m.eng.submit([cancel(2)], 0, 0, -1, 4) and None),
    "amend_unknown": Case(c.UNKNOWN_ORDER, lambda m: order(999, qty=3)),
    # AMEND_WOULD_CROSS
    "amend_buy_crosses": Case(c.AMEND_WOULD_CROSS, lambda m: order(2, price=1005)),
    "amend_sell_crosses": Case(c.AMEND_WOULD_CROSS, lambda m: order(1, price=990, qty=2)),
}


def test_cases_cover_every_code() -> None:
    assert {case.code for case in CASES.values()} >= set(c.CODE_NAMES) - {c.OK}


@pytest.mark.parametrize("case_name", sorted(CASES))
@pytest.mark.parametrize("name", ENGINES)
def test_refused(name: str, case_name: str) -> None:
    """One refused row: its exact code, an all-zero result, no events, and the core, the
    book and the open counts exactly as they were."""
    case = CASES[case_name]
    config = dict(case.config or {})
    first_id = config.pop("first_id", 4)
    m = build(name, rich=3, poor=1, max_open=3, poor_lots=4, **config)
    seed_book(m)
    if case.setup is not None:
        case.setup(m)
    item = case.make(m)
    owner = case.owner(m) if case.owner is not None else -1
    before = m.snapshot()
    consumed, next_id, ins, outs, evs = m.eng.submit([item], 0, case.live_code, owner, first_id)
    assert consumed == 1
    assert q(outs).tolist() == [case.code, 0, 0, 0, 0, 0]
    assert evs == b""
    assert next_id == first_id
    want = normalized(item)
    assert want is not None and q(ins).tolist() == list(want)
    assert m.snapshot() == before
    m.eng.set_halted(False)
    m.core.set_frozen(seller(m), False)
    check_market(m)


@pytest.mark.parametrize("name", ENGINES)
def test_allowed_while_refusing(name: str) -> None:
    """What a halt, a live code or a freeze still allows: cancels, and amends that
    neither grow nor move (frozen: that do not grow)."""
    m = build(name, rich=3, poor=1, max_open=3)
    seed_book(m)
    m.eng.set_halted(True)
    out = q(m.eng.submit([cancel(3)], 0, 0, -1, 4)[3]).tolist()
    assert out == [c.OK, 3, mc.EV_CANCELED, 0, 2, expected_hold(m, mc.BUY, 990, 2)]
    m.eng.set_halted(False)
    out = q(m.eng.submit([order(2, qty=4)], 0, c.ASSET_HALTED, -1, 4)[3]).tolist()
    assert out == [c.OK, 2, mc.EV_AMENDED, 0, 4,
                   expected_hold(m, mc.BUY, 995, 4) - expected_hold(m, mc.BUY, 995, 5)]
    m.core.set_frozen(seller(m), True)
    out = q(m.eng.submit([order(1, qty=3)], 0, 0, -1, 4)[3]).tolist()
    assert out == [c.OK, 1, mc.EV_AMENDED, 0, 3, -2 * 1000]
    # IOC orders do not count against the open-order limit
    m.core.set_frozen(seller(m), False)
    fill_seller_slots(m)
    out = q(m.eng.submit([limit(seller(m), mc.SELL, 995, 2, mc.IOC)], 0, 0, -1, 6)[3]).tolist()
    assert out[:5] == [c.OK, 6, mc.EV_FILLED, 2, 0]
    check_market(m)


# -- 5. the stop rule ----------------------------------------------------------------------


FOREIGN: dict[str, Callable[[int], object]] = {
    "tuple": lambda a: (0, MKT + 1, 0, a, 1, 1000, 2, 0, 0),
    "list": lambda a: [2, 0, 5, 0, 0, 0, 0, 0, 0],
    "negative_market": lambda a: (0, -1, 0, a, 1, 1000, 2, 0, 0),
    "market_beyond_int64": lambda a: (0, 2**64 + MKT, 0, a, 1, 1000, 2, 0, 0),
    "rest_malformed": lambda a: (0, MKT + 1, 0.5, None, 1, 1000, 2, 0, 0),
}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
@pytest.mark.parametrize("name", ENGINES)
def test_submit_stops_at_another_market(name: str, kind: str) -> None:
    m = build(name)
    a, b = m.traders[0], m.traders[1]
    rows: list[object] = [limit(a, 1, 1000, 2), ["bad"], limit(b, 0, 990, 2),
                          FOREIGN[kind](a), limit(b, 0, 1000, 2)]
    consumed, next_id, ins, outs, evs = m.eng.submit(rows, 0, 0, -1, 1)
    assert (consumed, next_id) == (3, 3)
    assert q(outs)[0::c.OUT_FIELDS].tolist() == [c.OK, c.INVALID_ARGUMENT, c.OK]
    assert len(ins) == 3 * c.IN_FIELDS * 8 and evs == b""
    before = m.snapshot()
    assert m.eng.submit(rows, 3, 0, -1, next_id) == (0, next_id, b"", b"", b"")
    assert m.snapshot() == before
    consumed, next_id, ins, outs, evs = m.eng.submit(rows, 4, 0, -1, next_id)
    assert (consumed, next_id) == (1, 4)
    assert q(outs).tolist() == [c.OK, 3, mc.EV_FILLED, 2, 0,
                                expected_hold(m, mc.BUY, 1000, 2)]
    assert q(evs)[:7].tolist() == [0, mc.EV_FILL, 1, a, 1000, 2, 0]
    check_market(m)


NOT_FOREIGN: dict[str, Callable[[int], object]] = {
    "wrong_length": lambda a: (0, MKT + 1, 0, a, 1, 1000, 2, 0),
    "bool_market": lambda a: (0, True, 0, a, 1, 1000, 2, 0, 0),
    "float_market": lambda a: (0, float(MKT + 1), 0, a, 1, 1000, 2, 0, 0),
    "str_market": lambda a: (0, "4", 0, a, 1, 1000, 2, 0, 0),
    "int_subclass_market": lambda a: (0, _Int(MKT + 1), 0, a, 1, 1000, 2, 0, 0),
    "tuple_subclass": lambda a: _Row((0, MKT + 1, 0, a, 1, 1000, 2, 0, 0)),
}


@pytest.mark.parametrize("kind", sorted(NOT_FOREIGN))
@pytest.mark.parametrize("name", ENGINES)
def test_submit_does_not_stop_at_a_malformed_row(name: str, kind: str) -> None:
    """A row whose market field is not an exact int (or that is no 9-field tuple/list)
    is not another market's row: it is consumed and refused as INVALID_ARGUMENT."""
    m = build(name)
    a = m.traders[0]
    rows = [limit(a, 1, 1000, 2), NOT_FOREIGN[kind](a), limit(a, 1, 1001, 2)]
    consumed, next_id, ins, outs, _evs = m.eng.submit(rows, 0, 0, -1, 1)
    assert (consumed, next_id) == (3, 3)
    assert q(outs)[0::c.OUT_FIELDS].tolist() == [c.OK, c.INVALID_ARGUMENT, c.OK]
    assert q(ins)[c.IN_FIELDS:2 * c.IN_FIELDS].tolist() == [-1, MKT, 0, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("name", ENGINES)
def test_submit_takes_at_most_max_rows(name: str) -> None:
    m = build(name)
    rows = [cancel(7)] * (c.MAX_SUBMIT_ROWS + 1)
    consumed, next_id, _ins, outs, _evs = m.eng.submit(rows, 0, 0, -1, 1)
    assert (consumed, next_id) == (c.MAX_SUBMIT_ROWS, 1)
    assert len(outs) == c.MAX_SUBMIT_ROWS * c.OUT_FIELDS * 8
    assert set(q(outs)[0::c.OUT_FIELDS]) == {c.UNKNOWN_ORDER}
    assert m.eng.submit(rows, c.MAX_SUBMIT_ROWS, 0, -1, 1)[0] == 1
    assert m.eng.submit(rows, len(rows), 0, -1, 1) == (0, 1, b"", b"", b"")
    assert m.eng.submit(rows, len(rows) + 5, 0, -1, 1) == (0, 1, b"", b"", b"")
    assert m.eng.submit((), 0, 0, -1, 1) == (0, 1, b"", b"", b"")


# -- 6. one exact settlement ---------------------------------------------------------------


def test_settlement_exact() -> None:
    """Every balance to the minor unit (npt 7, lot 1,000, maker 500 ppm, taker 1,000 ppm;
    the numbers are worked by hand), the same on both engines."""
    seen = []
    for name in ENGINES:
        core = core_class(name)()
        base, quote = core.add_asset(), core.add_asset()
        wb, wq = core.add_account(cc.KIND_WALLET, base), core.add_account(cc.KIND_WALLET, quote)
        fee = core.add_account(cc.KIND_COMPANY)
        s, b = core.add_account(cc.KIND_CUSTOMER), core.add_account(cc.KIND_CUSTOMER)
        assert core.post(wb, s, base, 100_000) == cc.OK
        for acct in (s, b):
            assert core.post(wq, acct, quote, 1_000_000) == cc.OK
        eng = engine_class(name)(core, market=MKT, base=base, quote=quote, fee_account=fee,
                                 lot_minor=1000, npt=7, maker_fee_ppm=500, taker_fee_ppm=1000,
                                 min_notional_minor=0)

        def run(row: Row, first_id: int, eng: Any = eng) -> tuple[list[int], list[int]]:
            consumed, next_id, _i, outs, evs = eng.submit([row], 0, 0, -1, first_id)
            assert consumed == 1
            assert next_id == first_id + (row[0] in (c.OP_LIMIT, c.OP_MARKET))
            return q(outs).tolist(), q(evs).tolist()

        def bal(acct: int, asset: int, core: Any = core) -> tuple[int, int]:
            return core.available(acct, asset), core.held(acct, asset)

        # 1. s rests a sell of 10 lots at 1,000: holds 10 * 1,000 base
        assert run(limit(s, mc.SELL, 1000, 10), 1) == (
            [c.OK, 1, mc.EV_RESTING, 0, 10, 10_000], [])
        assert bal(s, base) == (90_000, 10_000)
        # 2. b buys 4 at 1,010 and crosses at 1,000. Hold 1,010*4*7 = 28,280 + fee 28 =
        # 28,308; notional 28,000, maker fee 14, taker fee 28; spent 28,028, and the
        # price improvement, 280, comes back.
        assert run(limit(b, mc.BUY, 1010, 4), 2) == (
            [c.OK, 2, mc.EV_FILLED, 4, 0, 28_308],
            [0, mc.EV_FILL, 1, s, 1000, 4, 6, 14, 28])
        assert bal(b, quote) == (1_000_000 - 28_028, 0)
        assert bal(b, base) == (4_000, 0)
        assert bal(s, base) == (90_000, 6_000)
        assert bal(s, quote) == (1_000_000 + 28_000 - 14, 0)
        assert bal(fee, quote) == (42, 0)
        # 3. b rests a buy of 10 at 990: hold 69,300 + 69 = 69,369
        assert run(limit(b, mc.BUY, 990, 10), 3) == (
            [c.OK, 3, mc.EV_RESTING, 0, 10, 69_369], [])
        assert bal(b, quote) == (971_972 - 69_369, 69_369)
        # 4. s sells 3 at 990 (IOC) into it: notional 20,790, maker (b) fee 10, taker
        # (s) fee 20. b's hold drops to what 7 lots at 990 need, 48,510 + 48 = 48,558:
        # 20,800 paid, 11 released.
        assert run(limit(s, mc.SELL, 990, 3, mc.IOC), 4) == (
            [c.OK, 4, mc.EV_FILLED, 3, 0, 3_000],
            [0, mc.EV_FILL, 3, b, 990, 3, 7, 10, 20])
        assert bal(b, quote) == (902_603 + 11, 48_558)
        assert bal(b, base) == (7_000, 0)
        assert bal(s, base) == (87_000, 6_000)
        assert bal(s, quote) == (1_027_986 + 20_790 - 20, 0)
        assert bal(fee, quote) == (72, 0)
        # 5. b's market buy with a 20,000 budget: 20,000 * 10**6 // (1,001,000 * 7) = 2,854
        # tick-lots buy 2 lots at 1,000: notional 14,000, fees 7 + 14; the rest returns
        assert run((c.OP_MARKET, MKT, 0, b, mc.BUY, 0, 0, 20_000, mc.IOC), 5) == (
            [c.OK, 5, mc.EV_EXPIRED, 2, 0, 20_000],
            [0, mc.EV_FILL, 1, s, 1000, 2, 4, 7, 14])
        assert bal(b, quote) == (902_614 - 14_014, 48_558)
        assert bal(b, base) == (9_000, 0)
        assert bal(s, base) == (87_000, 4_000)
        assert bal(s, quote) == (1_048_756 + 14_000 - 7, 0)
        assert bal(fee, quote) == (93, 0)
        # 6. cancels release exactly what is held
        assert run(cancel(3), 6) == ([c.OK, 3, mc.EV_CANCELED, 0, 7, 48_558], [])
        assert run(cancel(1), 6) == ([c.OK, 1, mc.EV_CANCELED, 0, 4, 4_000], [])
        assert bal(b, quote) == (888_600 + 48_558, 0)
        assert bal(s, base) == (91_000, 0)
        total_quote = sum(sum(bal(a, quote)) for a in (s, b, fee))
        assert total_quote == 2_000_000
        assert sum(sum(bal(a, base)) for a in (s, b, fee)) == 100_000
        core.check_invariants()
        seen.append(core.export_state())
    assert seen[0] == seen[1]


# -- found by these tests and fixed: the fee account trading, id and argument edges ------


@pytest.mark.parametrize("name", ENGINES)
def test_fee_account_can_buy(name: str) -> None:
    """Its own fee stays its own (a fee posted to itself would be refused)."""
    m = build(name)
    assert m.core.post(m.wallets[1], m.fee, m.quote, 10**9) == cc.OK
    m.funded[m.quote] += 10**9
    seller_acct = m.traders[0]
    assert q(m.eng.submit([limit(seller_acct, mc.SELL, 1000, 10)], 0, 0, -1, 1)[3])[0] == c.OK
    quote_before = m.core.available(m.fee, m.quote)
    out = q(m.eng.submit([limit(m.fee, mc.BUY, 1000, 10)], 0, 0, -1, 2)[3])
    assert (out[0], out[2]) == (c.OK, mc.EV_FILLED)
    assert m.core.available(m.fee, m.base) == 10 * m.eng.lot_minor
    notional = 1000 * 10 * m.eng.npt
    seller_fee = notional * m.eng.maker_fee_ppm // 10**6
    # the fee account paid the notional; the seller's fee came to it; its own fee stayed
    assert m.core.available(m.fee, m.quote) == quote_before - notional + seller_fee
    check_market(m)


@pytest.mark.parametrize("name", ENGINES)
def test_order_ids_cannot_pass_int64(name: str) -> None:
    m = build(name)
    a = m.traders[0]
    before = m.snapshot()
    with pytest.raises(ValueError):
        m.eng.submit([limit(a, 1, 1000, 2)], 0, 0, -1, c.MAX_FIRST_ORDER_ID + 1)
    assert m.snapshot() == before
    got = m.eng.submit([limit(a, 1, 1000, 2), limit(a, 1, 1001, 2)], 0, 0, -1,
                       c.MAX_FIRST_ORDER_ID)
    assert got[1] == c.MAX_FIRST_ORDER_ID + 2


@pytest.mark.parametrize("name", ENGINES)
def test_negative_start_is_refused(name: str) -> None:
    m = build(name)
    a = m.traders[0]
    before = m.snapshot()
    with pytest.raises(ValueError):
        m.eng.submit([limit(a, 1, 1000, 2), limit(a, 1, 1001, 2)], -1, 0, -1, 1)
    assert m.snapshot() == before


def test_submit_takes_the_same_inputs() -> None:
    got = []
    for name in ENGINES:
        m = build(name)
        a = m.traders[0]
        rows = [limit(a, 1, 1000, 2), limit(a, 1, 1001, 2)]
        try:
            got.append(m.eng.submit(iter(rows), 0, 0, -1, 1))
        except TypeError as exc:
            got.append(type(exc))
    assert got[0] == got[1]


def test_orders_of_under_churn() -> None:
    """One account rests, cancels and is filled thousands of times in one market: each
    engine's own ids per account (``orders_of``) stay exactly its resting orders, in id
    order, and the compiled engine's lazy list of ids stays within its bound (4 x open +
    16, ``AccountOrders``), where a list that never dropped ended ids would hold them all."""
    rnd = random.Random(5)
    markets = [build(name, max_open=40) for name in ENGINES]
    stale_max = 0
    next_ids = [1, 1]
    resting: list[int] = []  # a and b's shared view of the account's live ids
    for step in range(3_000):
        a, b = seller(markets[0]), buyer(markets[0])
        r = rnd.random()
        if r < 0.5 or not resting:
            rows: list[object] = [limit(a, mc.SELL, 1000 + rnd.randrange(5), 1 + rnd.randrange(3))]
        elif r < 0.8:
            rows = [cancel(resting[rnd.randrange(len(resting))])]
        else:  # the buyer takes some of the account's sells
            rows = [(c.OP_LIMIT, MKT, 0, b, mc.BUY, 1004, 1 + rnd.randrange(6), 0,
                     mc.flags(mc.IOC, False, mc.STP_NONE))]
        for i, m in enumerate(markets):
            _n, next_ids[i], _ins, _outs, _evs = m.eng.submit(rows, 0, 0, -1, next_ids[i])
        assert next_ids[0] == next_ids[1]
        twin = markets[0].eng.orders_of(a)
        assert twin == markets[0].eng.book.orders_of(a), step
        resting = [o[0] for o in twin]
        assert resting == sorted(resting) and len(resting) <= 40
        if step in (1_500, 2_999):  # a read compacts the list: leave that to placing
            assert markets[1].eng.orders_of(a) == twin, step
        kept = markets[1].eng.kept_ids(a)
        assert kept <= 4 * 40 + 16, (step, kept)
        stale_max = max(stale_max, kept - len(resting))
    for m in markets:
        check_market(m)
    assert next_ids[0] > 1_000 and stale_max > 0  # churned; the list held ended ids
    assert markets[1].eng.orders_of(-1) == [] and markets[1].eng.orders_of(10**30) == []
    for bad in (True, 1.0, "1"):
        for m in markets:
            with pytest.raises(TypeError):
                m.eng.orders_of(bad)
