"""Unit tests of the order-book kernel, run against both books (compiled and twin).

Each order type, time in force, post-only, every STP mode, cancel, amend
(priority kept and lost), FIFO within a level, every rejection path (with the
book left exactly as it was) and every limit.
"""

from __future__ import annotations

import random
from array import array
from typing import Any

import pytest

from solvent import _book
from solvent.matching import book_class, twin
from solvent.matching import codes as c

BUY, SELL = c.BUY, c.SELL


@pytest.fixture(params=["compiled", "python"])
def Book(request: pytest.FixtureRequest) -> Any:
    return book_class(request.param)


def fills(events: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """(maker id, price, qty, maker remaining) of each fill."""
    return [(e[2], e[4], e[5], e[6]) for e in events if e[0] == c.EV_FILL]


def final(events: list[tuple[int, ...]]) -> tuple[int, ...]:
    return events[-1]


def seeded(Book: Any, **kw: Any) -> Any:
    """Asks 101 x (ids 1, 2), 102 x (3); bids 99 x (4, 5), 98 x (6); accounts 1..6."""
    b = Book(**kw)
    for oid, side, price, qty in [(1, SELL, 101, 10), (2, SELL, 101, 20), (3, SELL, 102, 30),
                                  (4, BUY, 99, 10), (5, BUY, 99, 20), (6, BUY, 98, 30)]:
        assert b.submit(oid, oid, side, price, qty)[0] == c.OK
    return b


def assert_unchanged(b: Any, before: dict[str, Any]) -> None:
    assert b.export_state() == before
    b.check_invariants()


# -- limit orders, priority ---------------------------------------------------------------


def test_limit_rests_and_reads(Book: Any) -> None:
    b = seeded(Book)
    assert (b.best_bid(), b.best_ask(), len(b), b.n_orders) == (99, 101, 6, 6)
    assert b.depth(1) == ([(99, 30)], [(101, 30)])
    assert b.depth(5) == ([(99, 30), (98, 30)], [(101, 30), (102, 30)])
    assert b.depth(0) == ([], [])
    assert (b.n_levels(BUY), b.n_levels(SELL)) == (2, 2)
    assert b.order(2) == (2, SELL, 101, 20)
    assert b.order(77) is None
    assert b.level_orders(SELL, 101) == [(1, 1, 10), (2, 2, 20)]
    assert b.level_orders(BUY, 101) == []
    code, events = b.submit(7, 9, BUY, 100, 5)
    assert code == c.OK and events == [(c.EV_RESTING, 7, 0, 9, 100, 0, 5)]
    b.check_invariants()


def test_price_time_priority_and_maker_price(Book: Any) -> None:
    b = seeded(Book)
    code, events = b.submit(10, 50, BUY, 102, 45)
    assert code == c.OK
    # FIFO at 101 (1 then 2), then 102; always at the maker's price
    assert fills(events) == [(1, 101, 10, 0), (2, 101, 20, 0), (3, 102, 15, 15)]
    assert events[0] == (c.EV_FILL, 10, 1, 1, 101, 10, 0)
    assert final(events) == (c.EV_FILLED, 10, 0, 50, 102, 45, 0)
    assert b.best_ask() == 102 and b.order(3) == (3, SELL, 102, 15)
    b.check_invariants()


def test_limit_remainder_rests_after_crossing(Book: Any) -> None:
    b = seeded(Book)
    code, events = b.submit(10, 50, SELL, 99, 40)
    assert code == c.OK and fills(events) == [(4, 99, 10, 0), (5, 99, 20, 0)]
    assert final(events) == (c.EV_RESTING, 10, 0, 50, 99, 30, 10)
    assert (b.best_bid(), b.best_ask()) == (98, 99)
    b.check_invariants()


def test_fifo_within_level_many_orders(Book: Any) -> None:
    b = Book()
    for oid in range(1, 51):
        b.submit(oid, oid % 7, SELL, 500, 2)
    _, events = b.submit(100, 99, BUY, 500, 61)
    makers = [f[0] for f in fills(events)]
    assert makers == list(range(1, 32))
    assert fills(events)[-1] == (31, 500, 1, 1)
    assert b.level_orders(SELL, 500)[0] == (31, 31 % 7, 1)


# -- time in force ---------------------------------------------------------------------------


def test_ioc_remainder_expires(Book: Any) -> None:
    b = seeded(Book)
    code, events = b.submit(10, 50, BUY, 101, 40, tif=c.IOC)
    assert code == c.OK and fills(events) == [(1, 101, 10, 0), (2, 101, 20, 0)]
    assert final(events) == (c.EV_EXPIRED, 10, 0, 50, 101, 30, 10)
    assert b.order(10) is None and b.best_ask() == 102
    code, events = b.submit(11, 50, BUY, 100, 5, tif=c.IOC)
    assert events == [(c.EV_EXPIRED, 11, 0, 50, 100, 0, 5)]


def test_fok(Book: Any) -> None:
    b = seeded(Book)
    before = b.export_state()
    assert b.submit(10, 50, BUY, 101, 31, tif=c.FOK) == (c.FOK_UNFILLABLE, [])
    assert b.submit(10, 50, BUY, 102, 61, tif=c.FOK) == (c.FOK_UNFILLABLE, [])
    assert_unchanged(b, before)
    code, events = b.submit(10, 50, BUY, 102, 60, tif=c.FOK)
    assert code == c.OK and final(events) == (c.EV_FILLED, 10, 0, 50, 102, 60, 0)
    assert b.best_ask() is None
    # market FOK
    b = seeded(Book)
    assert b.submit(11, 50, SELL, 0, 61, kind=c.MARKET, tif=c.FOK)[0] == c.FOK_UNFILLABLE
    code, events = b.submit(11, 50, SELL, 0, 60, kind=c.MARKET, tif=c.FOK)
    assert code == c.OK and final(events) == (c.EV_FILLED, 11, 0, 50, 0, 60, 0)


def test_fok_with_self_trade_prevention(Book: Any) -> None:
    b = seeded(Book)
    b.submit(20, 50, SELL, 101, 5)  # account 50 at the back of 101
    before = b.export_state()
    # expire_maker skips its own 5 lots: 30 other lots at 101
    assert b.submit(10, 50, BUY, 101, 31, tif=c.FOK, stp=c.EXPIRE_MAKER)[0] == c.FOK_UNFILLABLE
    # expire_taker stops at its own order: only 30 before it
    assert b.submit(10, 50, BUY, 102, 31, tif=c.FOK, stp=c.EXPIRE_TAKER)[0] == c.FOK_UNFILLABLE
    assert b.submit(10, 50, BUY, 102, 31, tif=c.FOK, stp=c.EXPIRE_BOTH)[0] == c.FOK_UNFILLABLE
    assert_unchanged(b, before)
    code, events = b.submit(10, 50, BUY, 102, 31, tif=c.FOK, stp=c.EXPIRE_MAKER)
    assert code == c.OK
    assert [e[0] for e in events] == [c.EV_FILL, c.EV_FILL, c.EV_MAKER_EXPIRED, c.EV_FILL,
                                      c.EV_FILLED]
    assert events[2] == (c.EV_MAKER_EXPIRED, 10, 20, 50, 101, 5, 0)
    # with no STP the own order simply trades
    b = seeded(Book)
    b.submit(20, 50, SELL, 101, 5)
    code, events = b.submit(10, 50, BUY, 101, 35, tif=c.FOK)
    assert code == c.OK and fills(events)[-1] == (20, 101, 5, 0)


# -- post-only ------------------------------------------------------------------------------


def test_post_only(Book: Any) -> None:
    b = seeded(Book)
    before = b.export_state()
    assert b.submit(10, 50, BUY, 101, 5, post_only=True) == (c.POST_ONLY_WOULD_TAKE, [])
    assert b.submit(10, 50, SELL, 95, 5, post_only=True) == (c.POST_ONLY_WOULD_TAKE, [])
    b.submit(11, 7, SELL, 100, 1)
    before = b.export_state()
    # crossing only its own order is still taking
    assert b.submit(12, 7, BUY, 100, 1, post_only=True, stp=c.EXPIRE_MAKER)[0] == (
        c.POST_ONLY_WOULD_TAKE)
    assert_unchanged(b, before)
    code, events = b.submit(10, 50, BUY, 99, 5, post_only=True)
    assert code == c.OK and events == [(c.EV_RESTING, 10, 0, 50, 99, 0, 5)]
    assert b.level_orders(BUY, 99)[-1] == (10, 50, 5)
    # post-only is for GTC limit orders only
    assert b.submit(13, 50, BUY, 90, 5, post_only=True, tif=c.IOC)[0] == c.INVALID_PARAMS
    assert b.submit(13, 50, SELL, 0, 5, kind=c.MARKET, tif=c.IOC,
                    post_only=True)[0] == c.INVALID_PARAMS


# -- market orders ----------------------------------------------------------------------------


def test_market_sell_and_buy_by_qty(Book: Any) -> None:
    b = seeded(Book)
    code, events = b.submit(10, 50, SELL, 0, 35, kind=c.MARKET, tif=c.IOC)
    assert fills(events) == [(4, 99, 10, 0), (5, 99, 20, 0), (6, 98, 5, 25)]
    assert final(events) == (c.EV_FILLED, 10, 0, 50, 0, 35, 0)
    code, events = b.submit(11, 50, SELL, 0, 100, kind=c.MARKET, tif=c.IOC)
    assert final(events) == (c.EV_EXPIRED, 11, 0, 50, 0, 25, 75)
    assert b.best_bid() is None
    code, events = b.submit(12, 50, BUY, 0, 15, kind=c.MARKET, tif=c.IOC)
    assert fills(events) == [(1, 101, 10, 0), (2, 101, 5, 15)]
    # empty opposite side: accepted, expires with nothing filled
    code, events = b.submit(13, 50, SELL, 0, 1, kind=c.MARKET, tif=c.IOC)
    assert (code, events) == (c.OK, [(c.EV_EXPIRED, 13, 0, 50, 0, 0, 1)])


def test_market_buy_by_budget_never_exceeds(Book: Any) -> None:
    b = seeded(Book)
    # 30 lots at 101 cost 3,030; 2,000 buys 19 lots (1,919), 81 left < 101
    code, events = b.submit(10, 50, BUY, 0, 0, kind=c.MARKET, tif=c.IOC, quote_budget=2000)
    assert code == c.OK
    assert fills(events) == [(1, 101, 10, 0), (2, 101, 9, 11)]
    assert final(events) == (c.EV_EXPIRED, 10, 0, 50, 0, 19, 0)
    spent = sum(f[1] * f[2] for f in fills(events))
    assert spent == 1919 <= 2000
    # exactly spent across two levels: 11*101 + 2*102 = 1,315
    code, events = b.submit(11, 50, BUY, 0, 0, kind=c.MARKET, tif=c.IOC, quote_budget=1315)
    assert fills(events) == [(2, 101, 11, 0), (3, 102, 2, 28)]
    assert final(events) == (c.EV_FILLED, 11, 0, 50, 0, 13, 0)
    # a budget below the best price buys nothing
    code, events = b.submit(12, 50, BUY, 0, 0, kind=c.MARKET, tif=c.IOC, quote_budget=101)
    assert events == [(c.EV_EXPIRED, 12, 0, 50, 0, 0, 0)]
    # more budget than the book: takes everything, the rest unspent
    code, events = b.submit(13, 50, BUY, 0, 0, kind=c.MARKET, tif=c.IOC, quote_budget=10**9)
    assert fills(events) == [(3, 102, 28, 0)] and final(events)[0] == c.EV_EXPIRED
    assert b.best_ask() is None


def test_market_parameter_rules(Book: Any) -> None:
    b = seeded(Book)
    before = b.export_state()
    m = {"kind": c.MARKET}
    assert b.submit(10, 1, SELL, 0, 5, tif=c.GTC, **m)[0] == c.INVALID_PARAMS
    assert b.submit(10, 1, SELL, 100, 5, tif=c.IOC, **m)[0] == c.INVALID_PRICE
    assert b.submit(10, 1, SELL, 0, 0, tif=c.IOC, quote_budget=100, **m)[0] == c.INVALID_PARAMS
    assert b.submit(10, 1, BUY, 0, 0, tif=c.FOK, quote_budget=100, **m)[0] == c.INVALID_PARAMS
    assert b.submit(10, 1, BUY, 0, 5, tif=c.IOC, quote_budget=100, **m)[0] == c.INVALID_QTY
    assert b.submit(10, 1, BUY, 0, 0, tif=c.IOC, quote_budget=-1, **m)[0] == c.INVALID_QTY
    assert b.submit(10, 1, BUY, 0, 0, tif=c.IOC, **m)[0] == c.INVALID_QTY
    assert b.submit(10, 1, BUY, 100, 5, quote_budget=100)[0] == c.INVALID_PARAMS
    assert_unchanged(b, before)


# -- self-trade prevention --------------------------------------------------------------------


def test_stp_modes(Book: Any) -> None:
    def book_with_own() -> Any:
        b = Book()
        b.submit(1, 7, SELL, 100, 5)  # someone else first
        b.submit(2, 50, SELL, 100, 5)  # own order
        b.submit(3, 8, SELL, 100, 5)
        return b

    b = book_with_own()
    _, events = b.submit(10, 50, BUY, 100, 12, stp=c.STP_NONE)
    assert fills(events) == [(1, 100, 5, 0), (2, 100, 5, 0), (3, 100, 2, 3)]

    b = book_with_own()
    _, events = b.submit(10, 50, BUY, 100, 12, stp=c.EXPIRE_TAKER)
    assert fills(events) == [(1, 100, 5, 0)]
    assert final(events) == (c.EV_STP_EXPIRED, 10, 0, 50, 100, 5, 7)
    assert b.level_orders(SELL, 100) == [(2, 50, 5), (3, 8, 5)] and b.order(10) is None

    b = book_with_own()
    _, events = b.submit(10, 50, BUY, 100, 12, stp=c.EXPIRE_MAKER)
    assert [e[0] for e in events] == [c.EV_FILL, c.EV_MAKER_EXPIRED, c.EV_FILL, c.EV_RESTING]
    assert events[1] == (c.EV_MAKER_EXPIRED, 10, 2, 50, 100, 5, 0)
    assert final(events) == (c.EV_RESTING, 10, 0, 50, 100, 10, 2)
    assert b.order(2) is None and b.orders_of(50) == [(10, BUY, 100, 2)]

    b = book_with_own()
    _, events = b.submit(10, 50, BUY, 100, 12, stp=c.EXPIRE_BOTH)
    assert [e[0] for e in events] == [c.EV_FILL, c.EV_MAKER_EXPIRED, c.EV_STP_EXPIRED]
    assert final(events) == (c.EV_STP_EXPIRED, 10, 0, 50, 100, 5, 7)
    assert b.level_orders(SELL, 100) == [(3, 8, 5)]
    for bk in (b,):
        bk.check_invariants()


def test_stp_only_on_crossing_orders(Book: Any) -> None:
    b = Book()
    b.submit(1, 50, SELL, 105, 5)
    _, events = b.submit(2, 50, BUY, 100, 5, stp=c.EXPIRE_BOTH)
    assert events == [(c.EV_RESTING, 2, 0, 50, 100, 0, 5)]
    assert b.order(1) is not None


def test_stp_budget_order(Book: Any) -> None:
    b = Book()
    b.submit(1, 50, SELL, 100, 5)
    b.submit(2, 8, SELL, 100, 5)
    _, events = b.submit(3, 50, BUY, 0, 0, kind=c.MARKET, tif=c.IOC, quote_budget=700,
                         stp=c.EXPIRE_MAKER)
    assert [e[0] for e in events] == [c.EV_MAKER_EXPIRED, c.EV_FILL, c.EV_EXPIRED]
    assert fills(events) == [(2, 100, 5, 0)]


# -- cancel and amend ---------------------------------------------------------------------------


def test_cancel(Book: Any) -> None:
    b = seeded(Book)
    assert b.cancel(2) == (c.OK, 20)
    assert b.cancel(2) == (c.UNKNOWN_ORDER, 0)
    assert b.cancel(0) == (c.UNKNOWN_ORDER, 0)
    assert b.cancel(-5) == (c.UNKNOWN_ORDER, 0)
    assert b.cancel(c.MAX_ORDER_ID + 1) == (c.UNKNOWN_ORDER, 0)
    assert b.cancel(1) == (c.OK, 10)
    assert b.best_ask() == 102 and b.n_levels(SELL) == 1 and len(b) == 4
    assert b.orders_of(1) == [] and b.orders_of(3) == [(3, SELL, 102, 30)]
    # the id can be used again once the order has left the book
    assert b.submit(1, 1, SELL, 103, 1)[0] == c.OK
    b.check_invariants()


def test_amend_reduce_keeps_priority(Book: Any) -> None:
    b = seeded(Book)
    assert b.amend(1, qty_lots=4) == c.OK
    assert b.level_orders(SELL, 101) == [(1, 1, 4), (2, 2, 20)]
    assert b.depth(1)[1] == [(101, 24)]
    _, events = b.submit(10, 50, BUY, 101, 5)
    assert fills(events) == [(1, 101, 4, 0), (2, 101, 1, 19)]


def test_amend_increase_loses_priority(Book: Any) -> None:
    b = seeded(Book)
    assert b.amend(1, qty_lots=11) == c.OK
    assert b.level_orders(SELL, 101) == [(2, 2, 20), (1, 1, 11)]
    assert b.depth(1)[1] == [(101, 31)]
    assert b.amend(2, qty_lots=20) == c.OK  # same qty, same price: nothing changes
    assert b.level_orders(SELL, 101) == [(2, 2, 20), (1, 1, 11)]
    assert b.amend(1, qty_lots=12) == c.OK  # already at the back: stays there
    assert b.level_orders(SELL, 101) == [(2, 2, 20), (1, 1, 12)]
    assert b.level_orders(SELL, 102) == [(3, 3, 30)]
    assert b.amend(3, qty_lots=35) == c.OK  # alone at its price: the level stays
    assert b.level_orders(SELL, 102) == [(3, 3, 35)]
    assert b.depth(5)[1] == [(101, 32), (102, 35)] and b.n_levels(SELL) == 2
    b.check_invariants()


def test_amend_price(Book: Any) -> None:
    b = seeded(Book)
    assert b.amend(6, price_ticks=99) == c.OK  # to the back of 99
    assert b.level_orders(BUY, 99) == [(4, 4, 10), (5, 5, 20), (6, 6, 30)]
    assert b.n_levels(BUY) == 1
    assert b.amend(4, qty_lots=3, price_ticks=100) == c.OK  # a new best level
    assert b.best_bid() == 100 and b.order(4) == (4, BUY, 100, 3)
    before = b.export_state()
    assert b.amend(4, price_ticks=101) == c.AMEND_WOULD_CROSS
    assert b.amend(1, price_ticks=100) == c.AMEND_WOULD_CROSS
    assert b.amend(1, price_ticks=99) == c.AMEND_WOULD_CROSS
    assert_unchanged(b, before)
    assert b.amend(1, price_ticks=150) == c.OK
    assert b.level_orders(SELL, 101) == [(2, 2, 20)]
    assert b.depth(5)[1] == [(101, 20), (102, 30), (150, 10)]


def test_amend_rejections(Book: Any) -> None:
    b = seeded(Book)
    before = b.export_state()
    assert b.amend(1) == c.INVALID_PARAMS
    assert b.amend(1, qty_lots=0) == c.INVALID_QTY
    assert b.amend(1, qty_lots=c.MAX_QTY_LOTS + 1) == c.INVALID_QTY
    assert b.amend(1, price_ticks=0) == c.INVALID_PRICE
    assert b.amend(1, price_ticks=c.MAX_PRICE_TICKS + 1) == c.INVALID_PRICE
    assert b.amend(99, qty_lots=1) == c.UNKNOWN_ORDER
    assert b.amend(-1, qty_lots=1) == c.UNKNOWN_ORDER
    assert b.amend(99, qty_lots=0) == c.INVALID_QTY  # parameters are checked first
    assert_unchanged(b, before)


# -- rejections and limits ------------------------------------------------------------------------


def test_rejections_change_nothing(Book: Any) -> None:
    b = seeded(Book)
    before = b.export_state()
    cases = [
        ((0, 1, BUY, 100, 1), {}, c.INVALID_ORDER_ID),
        ((-1, 1, BUY, 100, 1), {}, c.INVALID_ORDER_ID),
        ((c.MAX_ORDER_ID + 1, 1, BUY, 100, 1), {}, c.INVALID_ORDER_ID),
        ((10, -1, BUY, 100, 1), {}, c.INVALID_ACCOUNT),
        ((10, c.MAX_ACCOUNT + 1, BUY, 100, 1), {}, c.INVALID_ACCOUNT),
        ((10, 1, 2, 100, 1), {}, c.INVALID_PARAMS),
        ((10, 1, BUY, 100, 1), {"kind": 2}, c.INVALID_PARAMS),
        ((10, 1, BUY, 100, 1), {"tif": 3}, c.INVALID_PARAMS),
        ((10, 1, BUY, 100, 1), {"stp": 4}, c.INVALID_PARAMS),
        ((10, 1, BUY, 100, 1), {"stp": -1}, c.INVALID_PARAMS),
        ((10, 1, BUY, 0, 1), {}, c.INVALID_PRICE),
        ((10, 1, BUY, c.MAX_PRICE_TICKS + 1, 1), {}, c.INVALID_PRICE),
        ((10, 1, BUY, 100, 0), {}, c.INVALID_QTY),
        ((10, 1, BUY, 100, c.MAX_QTY_LOTS + 1), {}, c.INVALID_QTY),
        ((10, 1, BUY, 100, 2**70), {}, c.INVALID_QTY),
        ((1, 1, BUY, 100, 1), {}, c.DUPLICATE_ORDER_ID),
        ((0, -1, 5, 0, 0), {}, c.INVALID_ORDER_ID),  # the first failing check wins
        ((10, -1, 5, 0, 0), {}, c.INVALID_ACCOUNT),
        ((10, 1, 5, 0, 0), {}, c.INVALID_PARAMS),
        ((10, 1, BUY, 0, 0), {}, c.INVALID_PRICE),
        ((1, 1, BUY, 100, 0), {}, c.INVALID_QTY),
    ]
    for args, kw, code in cases:
        assert b.submit(*args, **kw) == (code, []), (args, kw)
    assert_unchanged(b, before)


def test_limits_are_inclusive(Book: Any) -> None:
    b = Book()
    assert b.submit(c.MAX_ORDER_ID, c.MAX_ACCOUNT, SELL, c.MAX_PRICE_TICKS,
                    c.MAX_QTY_LOTS)[0] == c.OK
    assert b.submit(1, 0, BUY, 1, 1)[0] == c.OK
    assert b.order(c.MAX_ORDER_ID) == (c.MAX_ACCOUNT, SELL, c.MAX_PRICE_TICKS, c.MAX_QTY_LOTS)
    code, events = b.submit(2, 0, BUY, 0, 0, kind=c.MARKET, tif=c.IOC,
                            quote_budget=c.MAX_QUOTE_BUDGET)
    lots = c.MAX_QUOTE_BUDGET // c.MAX_PRICE_TICKS  # what the largest budget buys
    assert code == c.OK and fills(events) == [(c.MAX_ORDER_ID, c.MAX_PRICE_TICKS, lots,
                                               c.MAX_QTY_LOTS - lots)]
    assert b.submit(3, 0, BUY, 0, 0, kind=c.MARKET, tif=c.IOC,
                    quote_budget=c.MAX_QUOTE_BUDGET + 1)[0] == c.INVALID_QTY
    b.check_invariants()


def test_level_totals_at_the_limits(Book: Any) -> None:
    """Many maximal orders on one level: totals stay exact (no int64 wrap)."""
    b = Book()
    for oid in range(1, 1001):
        assert b.submit(oid, 1, BUY, c.MAX_PRICE_TICKS - 1, c.MAX_QTY_LOTS)[0] == c.OK
    assert b.depth(1)[0] == [(c.MAX_PRICE_TICKS - 1, 1000 * c.MAX_QTY_LOTS)]
    assert c.MAX_ORDERS_LIMIT * c.MAX_QTY_LOTS < 2**63


def test_book_full(Book: Any) -> None:
    b = Book(max_orders=3)
    assert b.max_orders == 3
    for oid in (1, 2, 3):
        assert b.submit(oid, 1, SELL, 100 + oid, 1)[0] == c.OK
    before = b.export_state()
    # a GTC limit order is refused when the book is full, even one that would fill
    assert b.submit(4, 2, BUY, 99, 1) == (c.BOOK_FULL, [])
    assert b.submit(4, 2, BUY, 101, 1) == (c.BOOK_FULL, [])
    assert_unchanged(b, before)
    # orders that never rest still trade
    code, _ = b.submit(4, 2, BUY, 101, 1, tif=c.IOC)
    assert code == c.OK and len(b) == 2
    assert b.submit(5, 2, BUY, 99, 1)[0] == c.OK
    assert b.submit(6, 2, BUY, 99, 1)[0] == c.BOOK_FULL
    # amending in a full book is fine
    assert b.amend(5, qty_lots=9, price_ticks=98) == c.OK


def test_max_orders_range(Book: Any) -> None:
    with pytest.raises(ValueError):
        Book(max_orders=0)
    with pytest.raises(ValueError):
        Book(max_orders=c.MAX_ORDERS_LIMIT + 1)
    with pytest.raises(TypeError):
        Book(max_orders=10.0)
    assert Book(max_orders=c.MAX_ORDERS_LIMIT).max_orders == c.MAX_ORDERS_LIMIT
    assert Book().max_orders == c.DEFAULT_MAX_ORDERS


def test_types_are_checked(Book: Any) -> None:
    b = seeded(Book)
    with pytest.raises(TypeError):
        b.submit(10, 1, BUY, 100.0, 1)
    with pytest.raises(TypeError):
        b.submit(10, 1, True, 100, 1)
    with pytest.raises(TypeError):
        b.submit(10, 1, BUY, 100, 1, quote_budget=None)
    with pytest.raises(TypeError):
        b.submit(10, 1, BUY, 100, 1, post_only="yes")
    with pytest.raises(TypeError):
        b.cancel("1")
    with pytest.raises(TypeError):
        b.amend(1, qty_lots=1.5)
    with pytest.raises(TypeError):
        b.order(1.0)
    with pytest.raises(ValueError):
        b.depth(-1)
    with pytest.raises(ValueError):
        b.n_levels(2)
    assert b.submit(10, 1, BUY, 90, 1, post_only=1)[0] == c.OK


# -- state --------------------------------------------------------------------------------------


def test_export_and_from_state_keep_queue_order(Book: Any) -> None:
    b = seeded(Book)
    b.amend(1, qty_lots=11)  # 1 goes behind 2
    state = b.export_state()
    assert state == {"format": "solvent.book/1", "max_orders": c.DEFAULT_MAX_ORDERS, "orders": [
        (4, 4, BUY, 99, 10), (5, 5, BUY, 99, 20), (6, 6, BUY, 98, 30),
        (2, 2, SELL, 101, 20), (1, 1, SELL, 101, 11), (3, 3, SELL, 102, 30)]}
    for other in (_book.OrderBook, twin.OrderBook):
        copy = other.from_state(state)
        assert copy.export_state() == state
        copy.check_invariants()
        _, events = copy.submit(10, 50, BUY, 101, 25)
        assert fills(events) == [(2, 101, 20, 0), (1, 101, 5, 6)]


def test_from_state_rejects_bad_states(Book: Any) -> None:
    good = seeded(Book).export_state()
    bad = [
        {**good, "format": "x"},
        {**good, "orders": [*good["orders"], (1, 1, SELL, 110, 1)]},  # duplicate id
        {**good, "orders": [*good["orders"], (20, 1, BUY, 101, 1)]},  # crossed
        {**good, "orders": [*good["orders"], (20, 1, BUY, 0, 1)]},
        {**good, "orders": [*good["orders"], (20, 1, 3, 90, 1)]},
        {**good, "orders": [*good["orders"], (20, 1, BUY, 90, 0)]},
        {**good, "max_orders": 5},
    ]
    for state in bad:
        with pytest.raises(ValueError):
            Book.from_state(state)


# -- the bulk path ------------------------------------------------------------------------------


def test_process_many_matches_single_calls(Book: Any) -> None:
    rows = [
        (c.OP_LIMIT, 1, 1, SELL, 101, 10, c.flags()),
        (c.OP_LIMIT, 2, 2, SELL, 101, 10, c.flags()),
        (c.OP_LIMIT, 3, 3, BUY, 101, 5, c.flags(c.IOC)),
        (c.OP_LIMIT, 4, 3, BUY, 102, 5, c.flags(post_only=True)),
        (c.OP_MARKET, 5, 2, BUY, 0, 7, c.flags(c.IOC, stp=c.EXPIRE_MAKER)),
        (c.OP_MARKET, 6, 3, BUY, 303, 0, c.flags(c.IOC)),  # by budget (price column)
        (c.OP_CANCEL, 2, 0, 0, 0, 0, 0),
        (c.OP_CANCEL, 2, 0, 0, 0, 0, 0),
        (c.OP_LIMIT, 7, 1, BUY, 99, 10, c.flags()),
        (c.OP_AMEND, 7, 0, 0, 0, 4, 0),  # qty only
        (c.OP_AMEND, 7, 0, 0, 98, 0, 0),  # price only
        (c.OP_AMEND, 7, 0, 0, 0, 0, 0),  # nothing: INVALID_PARAMS
        (9, 8, 1, BUY, 99, 1, 0),  # unknown op
        (c.OP_LIMIT, 8, 1, BUY, 99, 1, 1 << 9),  # unknown flag bit
    ]
    cols = [array("q", [r[k] for r in rows]) for k in range(7)]
    out = bytearray(len(rows))
    events = array("q")
    bulk = Book()
    applied = bulk.process_many(*cols, out, events)
    single = Book()
    expected_codes = []
    expected_events: list[int] = []
    for i, (op, oid, acct, side, price, qty, f) in enumerate(rows):
        if op in (c.OP_LIMIT, c.OP_MARKET) and not f & ~c.FLAGS_ALL:
            kw = {"tif": f & 3, "post_only": bool(f & 4), "stp": f >> 3}
            if op == c.OP_MARKET:
                code, evs = single.submit(oid, acct, side, 0, qty, kind=c.MARKET,
                                          quote_budget=price, **kw)
            else:
                code, evs = single.submit(oid, acct, side, price, qty, **kw)
        elif op == c.OP_CANCEL:
            o = single.order(oid)
            code, removed = single.cancel(oid)
            evs = [(c.EV_CANCELED, oid, 0, o[0], o[2], removed, 0)] if o else []
        elif op == c.OP_AMEND:
            o = single.order(oid)
            code = single.amend(oid, qty or None, price or None)
            n = single.order(oid)
            evs = [(c.EV_AMENDED, oid, o[2], o[0], n[2], n[3], o[3])] if code == 0 else []
        else:
            code, evs = c.INVALID_PARAMS, []
        expected_codes.append(code)
        for ev in evs:
            expected_events += [i, *ev]
    assert list(out) == expected_codes
    assert expected_codes[-3:] == [c.INVALID_PARAMS] * 3
    assert applied == expected_codes.count(c.OK)
    assert events.tolist() == expected_events
    assert bulk.export_state() == single.export_state()
    # events are appended to what the array already held
    more = array("q", [42])
    bulk.process_many(*(array("q", [v]) for v in (c.OP_CANCEL, 7, 0, 0, 0, 0, 0)),
                      bytearray(1), more)
    assert more.tolist() == [42, 0, c.EV_CANCELED, 7, 0, 1, 98, 4, 0]


def test_process_many_argument_errors(Book: Any) -> None:
    b = Book()
    cols = [array("q", [0, 0]) for _ in range(7)]
    with pytest.raises(ValueError):
        b.process_many(*cols[:6], array("q", [0]), bytearray(2), array("q"))
    with pytest.raises(ValueError):
        b.process_many(*cols, bytearray(1), array("q"))
    with pytest.raises(TypeError):
        b.process_many(*cols, bytearray(2), [])
    with pytest.raises(TypeError):
        b.process_many(*cols, bytearray(2), array("i"))
    # plain lists are accepted (converted to array('q'))
    out = bytearray(1)
    assert b.process_many([0], [1], [1], [BUY], [100], [5], [0], out, array("q")) == 1
    assert b.order(1) == (1, BUY, 100, 5)


def test_process_many_events_outgrow_the_first_room(Book: Any) -> None:
    """The compiled book writes events straight into ``events``, with room for about two
    per row, and grows it as a call needs. One sweep of 500 makers in a 3-row call, after
    items already in the array: every event is there, in order, after those items, and the
    array's length is exactly what was written."""
    b = Book()
    n_makers = 500
    resting = [(c.OP_LIMIT, oid, oid % 7, SELL, 100 + oid % 5, 2, c.flags())
               for oid in range(1, n_makers + 1)]
    rows = [(c.OP_LIMIT, 9001, 900, BUY, 99, 3, c.flags()),
            (c.OP_MARKET, 9002, 901, BUY, 0, 2 * n_makers, c.flags(c.IOC)),
            (c.OP_CANCEL, 9001, 0, 0, 0, 0, 0)]
    b.process_many(*(array("q", [r[k] for r in resting]) for k in range(7)),
                   bytearray(n_makers), array("q"))
    events = array("q", range(-5, 0))
    out = bytearray(3)
    assert b.process_many(*(array("q", [r[k] for r in rows]) for k in range(7)), out,
                          events) == 3
    assert events[:5].tolist() == list(range(-5, 0))
    recs = [events[k:k + c.BULK_EVENT_FIELDS].tolist()
            for k in range(5, len(events), c.BULK_EVENT_FIELDS)]
    assert len(events) == 5 + len(recs) * c.BULK_EVENT_FIELDS
    makers = sorted(range(1, n_makers + 1), key=lambda oid: (100 + oid % 5, oid))  # FIFO
    assert recs[0] == [0, c.EV_RESTING, 9001, 0, 900, 99, 0, 3]
    assert recs[1:-2] == [[1, c.EV_FILL, 9002, m, m % 7, 100 + m % 5, 2, 0] for m in makers]
    assert recs[-2] == [1, c.EV_FILLED, 9002, 0, 901, 0, 2 * n_makers, 0]
    assert recs[-1] == [2, c.EV_CANCELED, 9001, 0, 900, 99, 3, 0]
    assert len(b) == 0
    b.check_invariants()


def test_process_many_refuses_events_it_cannot_grow(Book: Any) -> None:
    """An events array with a live memoryview cannot grow (``array`` refuses to resize
    it, and the compiled book must not reallocate it behind the view's back), nor can one
    that is also an input column: refused before any row runs, the book and the array
    unchanged."""
    b = seeded(Book)
    before = b.export_state()
    cols = [array("q", [v]) for v in (c.OP_LIMIT, 7, 7, BUY, 101, 15, 0)]  # crosses: 2 fills
    events = array("q", [5, 6, 7])
    view = memoryview(events)
    out = bytearray(1)
    with pytest.raises(BufferError, match="memoryview"):
        b.process_many(*cols, out, events)
    assert view.tolist() == [5, 6, 7] and events.tolist() == [5, 6, 7] and out == bytearray(1)
    assert_unchanged(b, before)
    flags = array("q", [0])  # a valid flags column, but also passed as events
    with pytest.raises(ValueError, match="input columns"):
        b.process_many(*cols[:6], flags, out, flags)
    assert flags.tolist() == [0]
    assert_unchanged(b, before)
    view.release()
    assert b.process_many(*cols, out, events) == 1
    assert events[:3].tolist() == [5, 6, 7] and len(events) == 3 + 3 * c.BULK_EVENT_FIELDS


# -- many levels and orders (the compiled book's treap, pools and hash tables) ---------------------


def test_many_levels_random_churn() -> None:
    rnd = random.Random(7)
    books = (_book.OrderBook(), twin.OrderBook())
    live: list[int] = []
    for oid in range(1, 20_001):
        if live and rnd.random() < 0.45:
            victim = live.pop(rnd.randrange(len(live)))
            assert books[0].cancel(victim) == books[1].cancel(victim)
            continue
        side = rnd.randrange(2)
        price = rnd.randint(1, 5_000) if side == BUY else rnd.randint(5_001, 10_000)
        acct, qty = rnd.randrange(100), rnd.randint(1, 9)
        res = [b.submit(oid, acct, side, price, qty) for b in books]
        assert res[0] == res[1]
        live.append(oid)
    assert books[0].export_state() == books[1].export_state()
    assert books[0].n_levels(BUY) > 500 and books[0].n_levels(SELL) > 500
    for b in books:
        b.check_invariants()
    # sweep one whole side in one order
    res = [b.submit(10**6, 1000, SELL, 1, c.MAX_QTY_LOTS, tif=c.IOC) for b in books]
    assert res[0] == res[1] and books[0].best_bid() is None
    for b in books:
        b.check_invariants()


def test_level_placement_near_and_far_keeps_every_link() -> None:
    """A new level is placed by walking the sorted levels from the best (a few steps) or,
    further away, by a search from the treap's root; an emptied level is rotated out.
    Levels made and dropped at the best, within and just past the walk, deep in the
    book and at the worst end, with the structure checked after every command."""
    rnd = random.Random(11)
    books = (_book.OrderBook(), twin.OrderBook())
    live: list[int] = []
    oid = 0
    for step in range(3_000):
        side = rnd.randrange(2)
        levels = books[1].n_levels(side)
        if live and (rnd.random() < 0.4 or levels > 120):
            victim = live.pop(rnd.randrange(len(live)))
            assert books[0].cancel(victim) == books[1].cancel(victim)
        else:
            # ticks away from the touch: 0-3 (within the walk), 8-12 (just past it),
            # anywhere behind it, or (often) beyond the worst level
            away = rnd.choice((rnd.randint(0, 3), rnd.randint(8, 12), rnd.randint(0, 400),
                               rnd.randint(401, 460)))
            price = 5_000 - away if side == BUY else 5_001 + away
            oid += 1
            res = [b.submit(oid, 1, side, price, 1) for b in books]
            assert res[0] == res[1]
            live.append(oid)
        for b in books:
            b.check_invariants()
        if step % 50 == 0:
            assert books[0].depth(1000) == books[1].depth(1000)
    assert books[0].export_state() == books[1].export_state()
    assert max(books[0].n_levels(BUY), books[0].n_levels(SELL)) > 60


def test_compiled_memory_is_accounted() -> None:
    b = _book.OrderBook()
    empty = b.allocated_bytes
    for oid in range(1, 5001):
        b.submit(oid, oid % 10, BUY, 1000 - oid % 50, 1)
    assert b.allocated_bytes > empty
    assert b.allocated_bytes / 5000 < 200
