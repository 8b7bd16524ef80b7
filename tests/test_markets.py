"""Markets: listings, reserve-backed orders, matching, settlement, replay.

Every test drives a real ledger (both cores unless noted) on the small exchange of
``conftest.market_exchange``: BTC (8 decimals) and KRW (0 decimals), three customers
with 2 BTC and 500,000,000 KRW each, both custody wallets attested, and BTC-KRW
listed with a tick of 1,000 KRW and a lot of 0.001 BTC, so a fill of q lots at p
ticks costs exactly p × q KRW; maker fee 0.05 %, taker fee 0.1 %, minimum notional
5,000 KRW. Amounts in assertions are minor units (satoshi, won), worked out by hand.
"""

from __future__ import annotations

import functools
from array import array
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pytest

import solvent
from conftest import (
    DAY_NS,
    FEE_ACCOUNT,
    MARKET,
    Clock,
    assert_books_balance,
    assert_holds_match_orders,
    attest_arrived,
    attest_book,
    market_exchange,
    market_view,
    observe,
)
from solvent import records as r
from solvent.engine import codes as ec
from solvent.journal import StoredBatch
from solvent.matching import codes as mc
from solvent.store import JournalStore

SAT = 10**8  # satoshi per BTC
KRW0 = 500_000_000  # every customer's KRW at the start
BTC0 = 2 * SAT  # every customer's BTC at the start


@pytest.fixture
def led(core: str, clock: Clock) -> Iterator[solvent.Ledger]:
    ledger = solvent.Ledger.open("memory:", core=core, clock=clock)
    yield ledger
    ledger.close()


@pytest.fixture
def ex(led: solvent.Ledger, clock: Clock) -> Any:
    return market_exchange(led, clock)


def krw(led: solvent.Ledger, account: str) -> tuple[int, int]:
    return led.balance_minor(account, "KRW")


def btc(led: solvent.Ledger, account: str) -> tuple[int, int]:
    return led.balance_minor(account, "BTC")


def fees(led: solvent.Ledger) -> int:
    available, held = led.balance_minor(FEE_ACCOUNT, "KRW")
    assert held == 0 and led.balance_minor(FEE_ACCOUNT, "BTC") == (0, 0)
    return available


def check(led: solvent.Ledger) -> None:
    """The books balance (custody == customer + company per asset, nothing negative)
    and every held balance is what open orders reserve."""
    assert_books_balance(led)
    assert_holds_match_orders(led)


def refused(led: solvent.Ledger, exc_type: type[solvent.Rejected], code: str,
            command: Callable[[], object], markets: tuple[str, ...] = (MARKET,)
            ) -> solvent.Rejected:
    """Run ``command``; it must raise ``exc_type`` with ``code`` and change nothing:
    position, version, balances, books, open orders."""
    before = market_view(led, markets)
    with pytest.raises(exc_type) as info:
        command()
    assert type(info.value) is exc_type and info.value.code == code, info.value
    assert market_view(led, markets) == before
    return info.value


def last_record(led: solvent.Ledger) -> Any:
    *_, rec = led.records(after_position=led.position - 1)
    return rec


def placed(led: solvent.Ledger, order_id: int) -> r.OrderPlaced:
    [rec] = [x for x in led.records()
             if isinstance(x, r.OrderPlaced) and x.order_id == order_id]
    return rec


def buy(led: solvent.Ledger, account: str, qty: str, price: str, **kw: Any) -> Any:
    return led.place_order(account, MARKET, "buy", qty=qty, price=price, **kw)


def sell(led: solvent.Ledger, account: str, qty: str, price: str, **kw: Any) -> Any:
    return led.place_order(account, MARKET, "sell", qty=qty, price=price, **kw)


def levels(led: solvent.Ledger, market: str = MARKET) -> dict[str, list[tuple[int, int]]]:
    """The L2 book in KRW and satoshi."""
    book = led.book(market, depth=50)
    return {side: [(int(p), int(q * SAT)) for p, q in book[side]] for side in book}


# -- listing ----------------------------------------------------------------------------------


def test_listing_journals_the_market_and_a_company_fee_account(
    led: solvent.Ledger, clock: Clock
) -> None:
    market_exchange(led, clock)
    spec = led.market_spec(MARKET)
    assert (spec.base, spec.quote, spec.tick_minor, spec.lot_minor, spec.npt) == (
        "BTC", "KRW", 1_000, 100_000, 1)
    assert (spec.maker_fee_ppm, spec.taker_fee_ppm, spec.min_notional_minor) == (500, 1_000, 5_000)
    assert spec.fee_account == FEE_ACCOUNT
    opened, listed = led.records(after_position=led.position - 2)
    assert isinstance(opened, r.AccountOpened) and isinstance(listed, r.MarketListed)
    assert (opened.account, opened.account_kind) == (FEE_ACCOUNT, "company")
    assert (listed.market, listed.notional_per_tick_lot_minor, listed.fee_account) == (
        MARKET, 1, FEE_ACCOUNT)
    # a company account: what it collects counts as company funds, not liabilities
    sell(led, "c001", "0.1", "98000000")
    buy(led, "c000", "0.1", "98000000")
    assert fees(led) == 4_900 + 9_800
    assert led.totals("KRW").company_minor == 1_000_000 + 14_700  # treasury + fees
    check(led)


@pytest.mark.parametrize(("tick", "lot", "ok"), [
    ("1", "0.00000001", False),  # 1e-8 KRW
    ("1000", "0.00001", False),  # 0.01 KRW
    ("1500", "0.0000001", False),  # 0.0015 KRW
    ("1", "0.01", False),  # 0.01 KRW
    ("100", "0.01", True),  # 1 KRW
    ("1000", "0.001", True),  # 1 KRW
    ("5", "0.2", True),  # 1 KRW
])
def test_listing_refuses_a_tick_times_lot_that_is_not_whole(
    led: solvent.Ledger, clock: Clock, tick: str, lot: str, ok: bool
) -> None:
    market_exchange(led, clock)

    def listing() -> object:
        return led.list_market("BTC-KRW2", base="BTC", quote="KRW", tick_size=tick,
                               lot_size=lot)

    if ok:
        listing()
        spec = led.market_spec("BTC-KRW2")
        assert spec.npt * 10**8 == spec.tick_minor * spec.lot_minor
    else:
        refused(led, solvent.TickOrLotViolation, "tick_or_lot", listing)
        with pytest.raises(solvent.UnknownMarket):
            led.market_spec("BTC-KRW2")


def test_listing_refuses_a_tick_lot_past_int64_and_a_fee_account_of_another_kind(
    led: solvent.Ledger, clock: Clock
) -> None:
    """Both raised a bare ``AssertionError`` ("MarketListed passed validation but not
    apply") before 2026-11-22: the engine refused the listing the command let through."""
    market_exchange(led, clock)
    exc = refused(led, solvent.InvalidAmount, "invalid_amount", lambda: led.list_market(
        "BIG", base="BTC", quote="KRW", tick_size="9000000000000000000", lot_size="100"))
    assert "past int64" in str(exc)
    led.open_account("fees:ETH-KRW")  # a customer account with the fee account's name
    exc = refused(led, solvent.AlreadyExists, "already_exists", lambda: led.list_market(
        "ETH-KRW", base="BTC", quote="KRW", tick_size="1000", lot_size="0.001"))
    assert "fees:ETH-KRW" in str(exc)
    led.verify()


@pytest.mark.parametrize(("fee", "exc", "code"), [
    (0.001, solvent.FloatAmount, "float_amount"),
    ("abc", solvent.InvalidArgument, "invalid_argument"),
    ("0.2", solvent.InvalidArgument, "invalid_argument"),  # above the 10 % limit
    ("-0.001", solvent.InvalidArgument, "invalid_argument"),
    ("0.0000001", solvent.InvalidArgument, "invalid_argument"),  # finer than 1 ppm
    ("NaN", solvent.InvalidArgument, "invalid_argument"),
    (1, solvent.InvalidArgument, "invalid_argument"),  # not a str/Decimal ratio
])
@pytest.mark.parametrize("which", ["maker_fee", "taker_fee"])
def test_listing_fees_are_string_ratios(
    led: solvent.Ledger, clock: Clock, which: str, fee: Any, exc: Any, code: str
) -> None:
    market_exchange(led, clock)
    refused(led, exc, code, lambda: led.list_market(
        "BTC-KRW2", base="BTC", quote="KRW", tick_size="1000", lot_size="0.001",
        **{which: fee}))
    led.list_market("BTC-KRW2", base="BTC", quote="KRW", tick_size="1000", lot_size="0.001",
                    **{which: Decimal("0.0025")})
    spec = led.market_spec("BTC-KRW2")
    assert getattr(spec, f"{which}_ppm") == 2_500


def test_listing_refuses_duplicates_same_asset_unknown_assets_and_customers(
    led: solvent.Ledger, clock: Clock
) -> None:
    market_exchange(led, clock)

    def lister(market: str = "X", base: str = "BTC", quote: str = "KRW", **kw: Any
               ) -> Callable[[], object]:
        return lambda: led.list_market(market, base=base, quote=quote, tick_size="1000",
                                       lot_size="0.001", **kw)

    refused(led, solvent.AlreadyExists, "already_exists", lister(MARKET))
    refused(led, solvent.InvalidArgument, "invalid_argument", lister(base="BTC", quote="BTC"))
    refused(led, solvent.UnknownAsset, "unknown_asset", lister(base="ETH"))
    refused(led, solvent.UnknownAsset, "unknown_asset", lister(quote="USD"))
    refused(led, solvent.PermissionDenied, "permission_denied", lister(actor="c000"))
    refused(led, solvent.InvalidId, "invalid_id", lister(market=""))
    lister("BTC-KRW2")()  # the same pair under another name is a market of its own
    assert led.market_spec("BTC-KRW2").fee_account == "fees:BTC-KRW2"


# -- order types ------------------------------------------------------------------------------


def test_limit_gtc_rests_and_holds(led: solvent.Ledger, ex: Any) -> None:
    o = buy(led, "c000", "0.5", "98000000")
    assert (o.status, o.filled_qty, o.fills, o.price) == ("resting", 0, [], 98_000_000)
    hold = 49_000_000 + 49_000  # price × qty + the fee at the larger rate (0.1 %)
    assert krw(led, "c000") == (KRW0 - hold, hold)
    [oo] = led.open_orders("c000")
    assert (oo.order_id, oo.side, oo.price_ticks, oo.remaining_lots, oo.held_minor,
            oo.hold_asset) == (o.order_id, "buy", 98_000, 500, hold, "KRW")
    s = sell(led, "c001", "0.3", "99000000")
    assert s.status == "resting"
    assert btc(led, "c001") == (BTC0 - 30_000_000, 30_000_000)  # a sell holds its qty
    assert levels(led) == {"bids": [(98_000_000, 50_000_000)],
                           "asks": [(99_000_000, 30_000_000)]}
    rec = placed(led, o.order_id)
    assert (rec.hold_asset, rec.hold_minor, rec.status, rec.remaining_lots) == (
        "KRW", hold, "resting", 500)
    check(led)


def test_a_buy_holds_the_fee_at_the_larger_of_maker_and_taker(
    led: solvent.Ledger, clock: Clock
) -> None:
    market_exchange(led, clock, maker_fee="0.002", taker_fee="0.001")
    buy(led, "c000", "0.5", "98000000")
    assert krw(led, "c000")[1] == 49_000_000 + 98_000  # 0.2 %, the maker rate
    check(led)


def test_open_orders_lists_each_market_where_the_account_has_orders(
    led: solvent.Ledger, ex: Any
) -> None:
    """``open_orders`` skips a market's book when its engine counts no open orders of the
    account: what it lists must still be every resting order, in every market."""
    led.list_market("BTC-KRW2", base="BTC", quote="KRW", tick_size="1000", lot_size="0.001")
    a = buy(led, "c000", "0.5", "98000000")
    b = led.place_order("c000", "BTC-KRW2", "sell", qty="0.2", price="99000000")
    c_ = led.place_order("c001", "BTC-KRW2", "buy", qty="0.1", price="97000000")
    assert [(o.market, o.order_id) for o in led.open_orders("c000")] == [
        (MARKET, a.order_id), ("BTC-KRW2", b.order_id)]
    assert [(o.market, o.order_id) for o in led.open_orders("c001")] == [
        ("BTC-KRW2", c_.order_id)]
    assert led.open_orders("c002") == []
    sell(led, "c001", "0.5", "98000000")  # fills c000's buy in full: none left there
    assert [o.order_id for o in led.open_orders("c000")] == [b.order_id]
    led.cancel_order(c_.order_id)
    assert led.open_orders("c001") == []
    check(led)


def test_ioc_remainder_expires(led: solvent.Ledger, ex: Any) -> None:
    sell(led, "c001", "0.2", "98000000")
    o = buy(led, "c000", "0.5", "99000000", tif="IOC")
    assert (o.status, o.filled_qty, len(o.fills)) == ("expired", Decimal("0.2"), 1)
    assert (o.fills[0].price, o.fills[0].qty) == (98_000_000, Decimal("0.2"))
    assert led.open_orders("c000") == [] and levels(led) == {"bids": [], "asks": []}
    assert krw(led, "c000") == (KRW0 - 19_600_000 - 19_600, 0)  # the rest came back
    assert btc(led, "c000") == (BTC0 + 20_000_000, 0)
    assert krw(led, "c001") == (KRW0 + 19_600_000 - 9_800, 0)
    assert btc(led, "c001") == (BTC0 - 20_000_000, 0)
    assert fees(led) == 9_800 + 19_600
    rec = placed(led, o.order_id)
    assert (rec.status, rec.filled_lots, rec.remaining_lots) == ("expired", 200, 300)
    check(led)


def test_fok_fills_completely_or_changes_nothing(led: solvent.Ledger, ex: Any) -> None:
    sell(led, "c001", "0.2", "98000000")
    sell(led, "c002", "0.2", "98500000")
    refused(led, solvent.FokUnfillable, "fok_unfillable",
            lambda: buy(led, "c000", "0.5", "99000000", tif="FOK"))  # only 0.4 offered
    refused(led, solvent.FokUnfillable, "fok_unfillable",
            lambda: buy(led, "c000", "0.3", "98000000", tif="FOK"))  # 0.2 at that price
    o = buy(led, "c000", "0.4", "98500000", tif="FOK")
    assert (o.status, o.filled_qty) == ("filled", Decimal("0.4"))
    assert [(f.price, f.qty) for f in o.fills] == [(98_000_000, Decimal("0.2")),
                                                  (98_500_000, Decimal("0.2"))]
    cost = 19_600_000 + 19_700_000
    assert krw(led, "c000") == (KRW0 - cost - 19_600 - 19_700, 0)
    assert levels(led)["asks"] == []
    check(led)


def test_post_only_rests_or_is_refused_when_it_would_take(
    led: solvent.Ledger, ex: Any
) -> None:
    sell(led, "c001", "0.2", "98000000")
    buy(led, "c002", "0.2", "97000000")
    refused(led, solvent.PostOnlyWouldTake, "post_only_would_take",
            lambda: buy(led, "c000", "0.1", "98000000", post_only=True))
    refused(led, solvent.PostOnlyWouldTake, "post_only_would_take",
            lambda: sell(led, "c000", "0.1", "97000000", post_only=True))
    refused(led, solvent.InvalidArgument, "invalid_argument",
            lambda: buy(led, "c000", "0.1", "97000000", post_only=True, tif="IOC"))
    b = buy(led, "c000", "0.1", "97500000", post_only=True)
    s = sell(led, "c000", "0.1", "98500000", post_only=True)
    assert (b.status, s.status) == ("resting", "resting")
    assert levels(led) == {
        "bids": [(97_500_000, 10_000_000), (97_000_000, 20_000_000)],
        "asks": [(98_000_000, 20_000_000), (98_500_000, 10_000_000)]}
    check(led)


def test_market_sell_by_qty_sweeps_bids_and_expires_the_rest(
    led: solvent.Ledger, ex: Any
) -> None:
    buy(led, "c001", "0.2", "97000000")
    buy(led, "c002", "0.3", "96000000")
    o = led.place_order("c000", MARKET, "sell", qty="0.4", type="market", tif="IOC")
    assert (o.status, o.price, o.filled_qty) == ("filled", None, Decimal("0.4"))
    assert [(f.price, f.qty, f.taker_fee) for f in o.fills] == [
        (97_000_000, Decimal("0.2"), 19_400), (96_000_000, Decimal("0.2"), 19_200)]
    assert krw(led, "c000") == (KRW0 + 19_400_000 - 19_400 + 19_200_000 - 19_200, 0)
    assert btc(led, "c000") == (BTC0 - 40_000_000, 0)
    assert levels(led)["bids"] == [(96_000_000, 10_000_000)]
    o = led.place_order("c000", MARKET, "sell", qty="1", type="market", tif="IOC")
    assert (o.status, o.filled_qty) == ("expired", Decimal("0.1"))
    assert btc(led, "c000") == (BTC0 - 50_000_000, 0)  # the unfilled 0.9 came back
    assert levels(led) == {"bids": [], "asks": []}
    rec = placed(led, o.order_id)
    assert (rec.order_type, rec.hold_minor, rec.price_ticks) == ("market", 100_000_000, 0)
    check(led)


def test_a_market_order_is_ioc_unless_told_otherwise(led: solvent.Ledger, ex: Any) -> None:
    """The issue's own example, ``place_order("bob", "BTC-KRW", "buy",
    quote_qty="1000000", type="market")``, names no ``tif``: it was refused as
    "never post-only" before 2026-11-22 (the default tif was GTC for every type)."""
    sell(led, "c001", "0.1", "98000000")
    buy(led, "c002", "0.1", "97000000")
    o = led.place_order("c000", MARKET, "buy", quote_qty="1000000", type="market")
    assert (o.status, o.filled_qty) == ("expired", Decimal("0.01"))
    assert placed(led, o.order_id).tif == "IOC"
    o = led.place_order("c000", MARKET, "sell", qty="0.01", type="market")
    assert (o.status, placed(led, o.order_id).tif) == ("filled", "IOC")
    row = led.order_row("c000", MARKET, "sell", qty="0.01", type="market")
    assert row == led.order_row("c000", MARKET, "sell", qty="0.01", type="market", tif="IOC")
    assert placed(led, buy(led, "c000", "0.01", "96000000").order_id).tif == "GTC"
    exc = refused(led, solvent.InvalidArgument, "invalid_argument",
                  lambda: led.place_order("c000", MARKET, "sell", qty="0.01", type="market",
                                          tif="GTC"))
    assert "never GTC" in str(exc)
    exc = refused(led, solvent.InvalidArgument, "invalid_argument",
                  lambda: led.place_order("c000", MARKET, "sell", qty="0.01", type="market",
                                          post_only=True))
    assert "never post-only" in str(exc)
    check(led)


def test_market_buy_by_budget_never_spends_more_than_the_budget(
    led: solvent.Ledger, ex: Any
) -> None:
    sell(led, "c001", "0.1", "98000000")
    sell(led, "c002", "1", "99000000")
    budget = 50_000_000
    o = led.place_order("c000", MARKET, "buy", quote_qty=str(budget), type="market",
                        tif="IOC")
    # 0.1 at 98,000,000 then, of the 40,150,049 KRW left before fees, 0.405 at 99,000,000
    assert [(f.price, f.qty) for f in o.fills] == [(98_000_000, Decimal("0.1")),
                                                  (99_000_000, Decimal("0.405"))]
    assert (o.status, o.filled_qty) == ("expired", Decimal("0.505"))
    spent = 9_800_000 + 9_800 + 40_095_000 + 40_095
    assert spent <= budget < spent + 99_000 + 99  # one more lot would not fit
    assert krw(led, "c000") == (KRW0 - spent, 0)  # the unspent budget came back
    assert btc(led, "c000") == (BTC0 + 50_500_000, 0)
    rec = placed(led, o.order_id)
    assert (rec.order_type, rec.hold_asset, rec.hold_minor) == ("market", "KRW", budget)
    assert rec.quote_minor == budget
    # a budget that buys no lot at the best ask spends nothing
    o = led.place_order("c000", MARKET, "buy", quote_qty="90000", type="market", tif="IOC")
    assert (o.status, o.fills) == ("expired", [])
    assert krw(led, "c000") == (KRW0 - spent, 0)
    check(led)


def test_market_buy_that_spends_its_budget_exactly(led: solvent.Ledger, clock: Clock) -> None:
    market_exchange(led, clock, taker_fee="0", maker_fee="0")
    sell(led, "c001", "0.1", "98000000")
    o = led.place_order("c000", MARKET, "buy", quote_qty="4900000", type="market", tif="IOC")
    assert (o.status, o.filled_qty) == ("filled", Decimal("0.05"))
    assert krw(led, "c000") == (KRW0 - 4_900_000, 0)
    check(led)


@pytest.mark.parametrize("stp", ["none", "expire_taker", "expire_maker", "expire_both"])
def test_self_trade_prevention_modes(led: solvent.Ledger, ex: Any, stp: str) -> None:
    """c000 sells A (0.1), c001 sells B (0.1), both at 98,000,000; then c000 buys 0.2 at
    98,000,000 and meets its own order A first."""
    a = sell(led, "c000", "0.1", "98000000").order_id
    b = sell(led, "c001", "0.1", "98000000").order_id
    o = buy(led, "c000", "0.2", "98000000", stp=stp)
    rec = placed(led, o.order_id)
    resting_asks = [oid for acct in ("c000", "c001") for oid in
                    (x.order_id for x in led.open_orders(acct) if x.side == "sell")]
    full_hold = 19_600_000 + 19_600
    if stp == "none":  # trades with itself first (FIFO), then with B
        assert [f.maker_order_id for f in rec.fills] == [a, b]
        assert (rec.status, rec.expired_makers, resting_asks) == ("filled", [], [])
        assert btc(led, "c000") == (BTC0 + 10_000_000, 0)
        # pays 19,600,000 + taker fees 2 × 9,800; receives 9,800,000 less a maker fee of 4,900
        assert krw(led, "c000") == (KRW0 - 19_600_000 - 19_600 + 9_800_000 - 4_900, 0)
        assert fees(led) == 2 * 9_800 + 2 * 4_900
    elif stp == "expire_taker":  # the incoming order stops; both asks stay
        assert (rec.status, rec.fills, rec.expired_makers) == ("stp_expired", [], [])
        assert resting_asks == [a, b]
        assert krw(led, "c000") == (KRW0, 0)
        assert btc(led, "c000") == (BTC0 - 10_000_000, 10_000_000)
    elif stp == "expire_maker":  # A is removed, B trades, the rest of the buy rests
        assert rec.expired_makers == [(a, 100)]
        assert [f.maker_order_id for f in rec.fills] == [b]
        assert (rec.status, rec.remaining_lots, resting_asks) == ("resting", 100, [])
        assert btc(led, "c000") == (BTC0 + 10_000_000, 0)
        assert krw(led, "c000") == (KRW0 - full_hold, full_hold - 9_809_800)
        assert levels(led)["bids"] == [(98_000_000, 10_000_000)]
    else:  # expire_both: A is removed and the incoming order stops; B stays
        assert (rec.status, rec.fills, rec.expired_makers) == ("stp_expired", [], [(a, 100)])
        assert resting_asks == [b]
        assert (krw(led, "c000"), btc(led, "c000")) == ((KRW0, 0), (BTC0, 0))
    check(led)
    led.verify()


# -- holds ------------------------------------------------------------------------------------


def test_price_improvement_is_refunded_at_once(led: solvent.Ledger, ex: Any) -> None:
    sell(led, "c001", "0.1", "98000000")
    o = buy(led, "c000", "0.3", "99000000")
    first = 9_800_000 + 9_800  # 0.1 at 98,000,000 as taker
    rest = 19_800_000 + 19_800  # what 0.2 at 99,000,000 holds (fee at the larger rate)
    assert (o.status, o.filled_qty) == ("resting", Decimal("0.1"))
    # a resting order holds exactly what its remaining qty needs: the improvement is back
    assert krw(led, "c000") == (KRW0 - first - rest, rest)
    assert led.open_orders("c000")[0].held_minor == rest
    check(led)
    sell(led, "c002", "0.2", "99000000")  # c000 is now the maker at 99,000,000
    second = 19_800_000 + 9_900  # maker fee 0.05 %: the rest of the fee hold comes back
    assert krw(led, "c000") == (KRW0 - first - second, 0)
    assert led.open_orders("c000") == []
    assert btc(led, "c000") == (BTC0 + 30_000_000, 0)
    check(led)


def test_cancel_releases_exactly_what_the_order_still_held(
    led: solvent.Ledger, ex: Any
) -> None:
    sell(led, "c001", "0.1", "98000000")
    o = buy(led, "c000", "0.3", "99000000")
    s = sell(led, "c002", "0.5", "100000000")
    buy(led, "c001", "0.2", "100000000")  # takes 0.2 of c002's sell
    held = led.open_orders("c000")[0].held_minor
    position = led.position
    led.cancel_order(o.order_id)
    rec = last_record(led)
    assert isinstance(rec, r.OrderCancelled) and rec.position == position + 1
    assert (rec.order_id, rec.account, rec.removed_lots, rec.released_minor) == (
        o.order_id, "c000", 200, held)
    assert krw(led, "c000") == (KRW0 - 9_809_800, 0)
    led.cancel_order(s.order_id)
    rec = last_record(led)
    assert (rec.removed_lots, rec.released_minor) == (300, 30_000_000)
    assert btc(led, "c002") == (BTC0 - 20_000_000, 0)
    assert levels(led)["asks"] == [] and levels(led)["bids"] == []
    check(led)
    refused(led, solvent.UnknownOrder, "unknown_order", lambda: led.cancel_order(o.order_id))
    refused(led, solvent.UnknownOrder, "unknown_order", lambda: led.cancel_order(999))
    mine = buy(led, "c000", "0.1", "90000000").order_id
    refused(led, solvent.PermissionDenied, "permission_denied",
            lambda: led.cancel_order(mine, actor="c001"))
    led.cancel_order(mine, actor="c000")
    refused(led, solvent.InvalidArgument, "invalid_argument", lambda: led.cancel_order("1"))


def test_amend_reducing_qty_keeps_priority_and_releases_hold(
    led: solvent.Ledger, ex: Any
) -> None:
    a = buy(led, "c000", "0.3", "97000000").order_id
    b = buy(led, "c001", "0.2", "97000000").order_id
    led.amend_order(a, qty="0.1")
    rec = last_record(led)
    assert isinstance(rec, r.OrderAmended)
    assert (rec.qty_lots, rec.price_ticks) == (100, 97_000)
    assert rec.hold_delta_minor == (9_700_000 + 9_700) - (29_100_000 + 29_100)
    assert krw(led, "c000") == (KRW0 - 9_709_700, 9_709_700)
    assert levels(led)["bids"] == [(97_000_000, 30_000_000)]
    check(led)
    first = led.place_order("c002", MARKET, "sell", qty="0.1", type="market", tif="IOC")
    assert [f.maker_order_id for f in first.fills] == [a]  # A kept its place ahead of B
    second = led.place_order("c002", MARKET, "sell", qty="0.1", type="market", tif="IOC")
    assert [f.maker_order_id for f in second.fills] == [b]
    assert krw(led, "c000") == (KRW0 - 9_700_000 - 4_850, 0)
    check(led)


def test_amend_raising_qty_requeues_and_holds_more(led: solvent.Ledger, ex: Any) -> None:
    a = buy(led, "c000", "0.1", "97000000").order_id
    b = buy(led, "c001", "0.2", "97000000").order_id
    led.amend_order(a, qty="0.3")
    assert last_record(led).hold_delta_minor == 19_400_000 + 19_400
    assert krw(led, "c000") == (KRW0 - 29_129_100, 29_129_100)
    o = led.place_order("c002", MARKET, "sell", qty="0.2", type="market", tif="IOC")
    assert [f.maker_order_id for f in o.fills] == [b]  # A went to the back
    # a sell's hold follows its qty in BTC
    s = sell(led, "c002", "0.1", "99000000").order_id
    led.amend_order(s, qty="0.4")
    assert btc(led, "c002") == (BTC0 - 20_000_000 - 40_000_000, 40_000_000)
    led.amend_order(s, qty="0.05")
    assert btc(led, "c002") == (BTC0 - 20_000_000 - 5_000_000, 5_000_000)
    check(led)


def test_amend_price_change_requeues_and_reholds(led: solvent.Ledger, ex: Any) -> None:
    a = buy(led, "c000", "0.1", "97000000").order_id
    b = buy(led, "c001", "0.1", "97000000").order_id
    led.amend_order(a, price="96000000")
    assert last_record(led).hold_delta_minor == -(100_000 + 100)
    assert krw(led, "c000")[1] == 9_600_000 + 9_600
    assert levels(led)["bids"] == [(97_000_000, 10_000_000), (96_000_000, 10_000_000)]
    led.amend_order(a, price="97000000")  # back at 97,000,000, but behind B now
    assert krw(led, "c000")[1] == 9_700_000 + 9_700
    o = led.place_order("c002", MARKET, "sell", qty="0.1", type="market", tif="IOC")
    assert [f.maker_order_id for f in o.fills] == [b]
    led.amend_order(a, qty="0.2", price="96500000")  # both at once
    assert krw(led, "c000")[1] == 19_300_000 + 19_300
    check(led)


def test_amend_refusals_change_nothing(led: solvent.Ledger, ex: Any) -> None:
    a = buy(led, "c000", "0.1", "97000000").order_id
    sell(led, "c001", "0.1", "98000000")
    refused(led, solvent.AmendWouldCross, "amend_would_cross",
            lambda: led.amend_order(a, price="98000000"))  # would cross: amends never trade
    led.transfer("c000", "c002", "KRW", KRW0 - 9_709_700 - 1_000, ref="drain")
    err = refused(led, solvent.InsufficientFunds, "insufficient_funds",
                  lambda: led.amend_order(a, qty="0.2"))
    assert err.details["amount_minor"] == 9_709_700
    err = refused(led, solvent.InsufficientFunds, "insufficient_funds",
                  lambda: led.amend_order(a, price="97100000"))  # needs 10,010 more
    assert err.details["amount_minor"] == 10_010
    refused(led, solvent.InsufficientFunds, "insufficient_funds",
            lambda: led.amend_order(a, price="97010000"))  # needs 1,001 more, 1,000 there
    led.amend_order(a, price="97009000")  # 9,700,900 + 9,700 needs 900 more
    assert krw(led, "c000") == (100, 9_710_600)
    refused(led, solvent.InvalidArgument, "invalid_argument", lambda: led.amend_order(a))
    refused(led, solvent.TickOrLotViolation, "tick_or_lot",
            lambda: led.amend_order(a, price="96999500"))
    refused(led, solvent.TickOrLotViolation, "tick_or_lot",
            lambda: led.amend_order(a, qty="0.0505"))
    refused(led, solvent.FloatAmount, "float_amount", lambda: led.amend_order(a, qty=0.05))
    refused(led, solvent.InvalidAmount, "invalid_amount", lambda: led.amend_order(a, qty="0"))
    refused(led, solvent.UnknownOrder, "unknown_order", lambda: led.amend_order(99, qty="0.1"))
    refused(led, solvent.PermissionDenied, "permission_denied",
            lambda: led.amend_order(a, qty="0.05", actor="c001"))
    led.set_reference_price(MARKET, "97000000", band="0.01")
    refused(led, solvent.PriceOutsideBand, "price_outside_band",
            lambda: led.amend_order(a, price="95000000"))
    led.halt_market(MARKET, reason="maintenance")
    refused(led, solvent.MarketHalted, "market_halted", lambda: led.amend_order(a, qty="0.05"))
    led.resume_market(MARKET)
    led.amend_order(a, qty="0.05", actor="c000")  # the owner may, and it releases
    assert krw(led, "c000") == (100 + 9_710_600 - 4_855_300, 4_850_450 + 4_850)
    check(led)


def test_amend_below_min_notional_is_refused_as_a_new_order_would_be(
    led: solvent.Ledger, ex: Any
) -> None:
    """The minimum notional (5,000 KRW) binds an amend's new qty × price too: an amend
    must not leave a dust order resting that could not have been placed."""
    a = buy(led, "c000", "0.01", "1000000").order_id  # 10 lots at 1,000,000: 10,000 KRW
    refused(led, solvent.BelowMinNotional, "below_min_notional",
            lambda: led.amend_order(a, qty="0.004"))  # 4,000 KRW
    refused(led, solvent.BelowMinNotional, "below_min_notional",
            lambda: led.amend_order(a, price="400000"))  # 4,000 KRW
    refused(led, solvent.BelowMinNotional, "below_min_notional",
            lambda: led.amend_order(a, qty="0.008", price="600000"))  # 4,800 KRW
    before = market_view(led, (MARKET,))
    [res] = led.submit_orders([led.amend_row(a, MARKET, qty="0.004")])  # the bulk path too
    assert res.code == "below_min_notional"
    after = market_view(led, (MARKET,))
    for moved in ("position", "version", "head"):  # the run is journaled, with its outcome
        del before[moved], after[moved]
    assert after == before
    led.amend_order(a, qty="0.005")  # 5,000 KRW: exactly the minimum
    assert levels(led)["bids"] == [(1_000_000, 500_000)]
    check(led)


# -- settlement ------------------------------------------------------------------------------


def test_settlement_is_exact_to_the_minor_unit(led: solvent.Ledger, ex: Any) -> None:
    """Two asks at odd prices, one buy that takes both: every balance and fee by hand.
    Fees are floor(notional × rate): 490,005 × 0.05 % = 245.0025 → 245."""
    sell(led, "c000", "0.005", "98001000")
    check(led)
    sell(led, "c000", "0.002", "98002000")
    check(led)
    o = buy(led, "c001", "0.006", "98002000")
    check(led)
    assert [(f.price, f.qty, f.maker_fee, f.taker_fee) for f in o.fills] == [
        (98_001_000, Decimal("0.005"), 245, 490),  # 490,005 KRW
        (98_002_000, Decimal("0.001"), 49, 98),  # 98,002 KRW
    ]
    rec = placed(led, o.order_id)
    assert [(f.notional_minor, f.maker_remaining_lots) for f in rec.fills] == [
        (490_005, 0), (98_002, 1)]
    # buyer: held 588,012 + 588 (0.1 %), spent 490,005 + 490 + 98,002 + 98 = 588,595
    assert krw(led, "c001") == (KRW0 - 588_595, 0)
    assert btc(led, "c001") == (BTC0 + 600_000, 0)
    # seller: received 490,005 - 245 + 98,002 - 49; 0.001 BTC still held for the rest
    assert krw(led, "c000") == (KRW0 + 587_713, 0)
    assert btc(led, "c000") == (BTC0 - 700_000, 100_000)
    assert fees(led) == 245 + 490 + 49 + 98
    assert krw(led, "c002") == (KRW0, 0) and btc(led, "c002") == (BTC0, 0)
    for asset, customers in (("KRW", 3 * KRW0 - 882), ("BTC", 3 * BTC0)):
        t = led.totals(asset)
        assert t.customer_minor == customers
        assert t.custody_minor == t.customer_minor + t.company_minor


def test_fees_are_rounded_down_and_every_minor_unit_is_accounted_for(
    led: solvent.Ledger, clock: Clock
) -> None:
    market_exchange(led, clock, maker_fee="0.000333", taker_fee="0.000777",
                    min_notional=None)
    prices = [98_001_000, 98_003_000, 97_999_000, 98_007_000, 98_011_000]
    qtys = ["0.001", "0.003", "0.007", "0.011", "0.013"]
    for i, (p, q) in enumerate(zip(prices, qtys, strict=True)):
        maker, taker = (f"c00{i % 3}", f"c00{(i + 1) % 3}")
        sell(led, maker, q, str(p))
        buy(led, taker, q, str(p))
        check(led)
    fills = [f for x in led.records() if isinstance(x, r.OrderPlaced) for f in x.fills]
    assert len(fills) == 5
    for f in fills:
        assert f.notional_minor == f.price_ticks * f.qty_lots
        assert f.maker_fee_minor == f.notional_minor * 333 // 10**6
        assert f.taker_fee_minor == f.notional_minor * 777 // 10**6
    assert fees(led) == sum(f.maker_fee_minor + f.taker_fee_minor for f in fills)
    krw_total = sum(krw(led, c)[0] for c in ("c000", "c001", "c002"))
    assert krw_total + fees(led) == 3 * KRW0
    assert sum(btc(led, c)[0] for c in ("c000", "c001", "c002")) == 3 * BTC0


def test_notional_beyond_int64_is_refused_not_wrapped(led: solvent.Ledger, ex: Any) -> None:
    # 100,000 BTC (10**8 lots) at 10**15 KRW (10**12 ticks): 10**20 KRW, beyond int64
    for side in ("buy", "sell"):
        refused(led, solvent.InvalidAmount, "invalid_amount", lambda s=side: led.place_order(
            "c000", MARKET, s, qty="100000", price="1000000000000000"))
    refused(led, solvent.InvalidAmount, "invalid_amount",  # beyond the kernel's price range
            lambda: buy(led, "c000", "0.001", "1000000000001000"))
    # the largest price at a small qty is fine: 10**12 ticks × 1 lot
    sell(led, "c001", "0.001", "1000000000000000")
    assert levels(led)["asks"] == [(10**15, 100_000)]
    check(led)


# -- rejections ---------------------------------------------------------------------------------


def _freeze(led: solvent.Ledger) -> None:
    led.freeze_account("c000", reason="review")


def _halt(led: solvent.Ledger) -> None:
    led.halt_market(MARKET, reason="maintenance")


def _band(led: solvent.Ledger) -> None:
    led.set_reference_price(MARKET, "98000000", band="0.05")


def _asks(led: solvent.Ledger) -> None:
    sell(led, "c001", "0.2", "98000000")


def _nothing(led: solvent.Ledger) -> None:
    pass


LIMIT = {"qty": "0.1", "price": "97000000"}
REJECTIONS: list[tuple[str, Any, dict[str, Any], type[solvent.Rejected], str]] = [
    ("insufficient_krw", _nothing, {"qty": "6", "price": "97000000"},
     solvent.InsufficientFunds, "insufficient_funds"),
    ("insufficient_btc", _nothing, {"side": "sell", "qty": "2.001", "price": "99000000"},
     solvent.InsufficientFunds, "insufficient_funds"),
    ("frozen", _freeze, LIMIT, solvent.AccountFrozen, "account_frozen"),
    ("frozen_sell", _freeze, {**LIMIT, "side": "sell"}, solvent.AccountFrozen,
     "account_frozen"),
    ("halted_market", _halt, LIMIT, solvent.MarketHalted, "market_halted"),
    ("above_band", _band, {"qty": "0.1", "price": "102901000"}, solvent.PriceOutsideBand,
     "price_outside_band"),
    ("below_band", _band, {"side": "sell", "qty": "0.1", "price": "93099000"},
     solvent.PriceOutsideBand, "price_outside_band"),
    ("tick", _nothing, {"qty": "0.1", "price": "97000500"}, solvent.TickOrLotViolation,
     "tick_or_lot"),
    ("lot", _nothing, {"qty": "0.1005", "price": "97000000"}, solvent.TickOrLotViolation,
     "tick_or_lot"),
    ("min_notional", _nothing, {"qty": "0.001", "price": "4000000"}, solvent.BelowMinNotional,
     "below_min_notional"),
    ("min_notional_market_buy", _asks, {"type": "market", "tif": "IOC", "quote_qty": "4999"},
     solvent.BelowMinNotional, "below_min_notional"),
    ("post_only", _asks, {"qty": "0.1", "price": "98000000", "post_only": True},
     solvent.PostOnlyWouldTake, "post_only_would_take"),
    ("fok", _asks, {"qty": "0.3", "price": "98000000", "tif": "FOK"}, solvent.FokUnfillable,
     "fok_unfillable"),
    ("fok_market_sell", _nothing, {"side": "sell", "qty": "0.3", "type": "market",
                                   "tif": "FOK"}, solvent.FokUnfillable, "fok_unfillable"),
    ("unknown_market", _nothing, {**LIMIT, "market": "ETH-KRW"}, solvent.UnknownMarket,
     "unknown_market"),
    ("unknown_account", _nothing, {**LIMIT, "account": "nobody"}, solvent.UnknownAccount,
     "unknown_account"),
    ("wallet_account", _nothing, {**LIMIT, "account": "krw-bank"}, solvent.InvalidArgument,
     "invalid_argument"),
    ("float_qty", _nothing, {"qty": 0.1, "price": "97000000"}, solvent.FloatAmount,
     "float_amount"),
    ("float_price", _nothing, {"qty": "0.1", "price": 97000000.0}, solvent.FloatAmount,
     "float_amount"),
    ("float_budget", _asks, {"type": "market", "tif": "IOC", "quote_qty": 1e6},
     solvent.FloatAmount, "float_amount"),
    ("zero_qty", _nothing, {"qty": "0", "price": "97000000"}, solvent.InvalidAmount,
     "invalid_amount"),
    ("negative_price", _nothing, {"qty": "0.1", "price": "-97000000"}, solvent.InvalidAmount,
     "invalid_amount"),
    ("price_decimals", _nothing, {"qty": "0.1", "price": "97000000.5"}, solvent.InvalidAmount,
     "invalid_amount"),
    ("side", _nothing, {**LIMIT, "side": "BUY"}, solvent.InvalidArgument, "invalid_argument"),
    ("type", _nothing, {**LIMIT, "type": "stop"}, solvent.InvalidArgument, "invalid_argument"),
    ("tif", _nothing, {**LIMIT, "tif": "GTD"}, solvent.InvalidArgument, "invalid_argument"),
    ("stp", _nothing, {**LIMIT, "stp": "cancel_newest"}, solvent.InvalidArgument,
     "invalid_argument"),
    ("post_only_not_bool", _nothing, {**LIMIT, "post_only": 1}, solvent.InvalidArgument,
     "invalid_argument"),
    ("other_account", _nothing, {**LIMIT, "actor": "c001"}, solvent.PermissionDenied,
     "permission_denied"),
    ("auditor", _nothing, {**LIMIT, "actor": "audit"}, solvent.PermissionDenied,
     "permission_denied"),
    ("market_with_price", _asks, {"type": "market", "tif": "IOC", "side": "sell",
                                  "qty": "0.1", "price": "97000000"},
     solvent.InvalidArgument, "invalid_argument"),
    ("market_gtc", _asks, {"type": "market", "tif": "GTC", "side": "sell", "qty": "0.1"},
     solvent.InvalidArgument, "invalid_argument"),
    ("market_buy_by_qty", _asks, {"type": "market", "tif": "IOC", "qty": "0.1"},
     solvent.InvalidArgument, "invalid_argument"),
    ("market_buy_fok", _asks, {"type": "market", "tif": "FOK", "quote_qty": "1000000"},
     solvent.InvalidArgument, "invalid_argument"),
    ("market_sell_by_budget", _asks, {"type": "market", "tif": "IOC", "side": "sell",
                                      "quote_qty": "1000000"},
     solvent.InvalidArgument, "invalid_argument"),
    ("limit_without_price", _nothing, {"qty": "0.1"}, solvent.InvalidArgument,
     "invalid_argument"),
    ("limit_without_qty", _nothing, {"price": "97000000"}, solvent.InvalidArgument,
     "invalid_argument"),
    ("limit_with_budget", _nothing, {**LIMIT, "quote_qty": "1000000"},
     solvent.InvalidArgument, "invalid_argument"),
    ("client_order_id", _nothing, {**LIMIT, "client_order_id": "bad id\n"}, solvent.InvalidId,
     "invalid_id"),
]


@pytest.mark.parametrize(("setup", "order", "exc", "code"),
                         [x[1:] for x in REJECTIONS], ids=[x[0] for x in REJECTIONS])
def test_refused_orders_raise_their_typed_error_and_change_nothing(
    led: solvent.Ledger, ex: Any, setup: Any, order: dict[str, Any], exc: Any, code: str
) -> None:
    buy(led, "c002", "0.1", "96000000")  # something on the book to keep
    setup(led)
    kw = {"account": "c000", "market": MARKET, "side": "buy", **order}
    err = refused(led, exc, code, lambda: led.place_order(
        kw.pop("account"), kw.pop("market"), kw.pop("side"), **kw))
    assert isinstance(err, solvent.Rejected) and err.message
    check(led)


def test_a_market_sell_without_reference_is_valued_at_the_best_bid(
    led: solvent.Ledger, ex: Any
) -> None:
    buy(led, "c001", "0.01", "4000000")  # the only bid: 0.001 BTC there is 4,000 KRW
    refused(led, solvent.BelowMinNotional, "below_min_notional", lambda: led.place_order(
        "c000", MARKET, "sell", type="market", tif="IOC", qty="0.001"))
    o = led.place_order("c000", MARKET, "sell", type="market", tif="IOC", qty="0.002")
    assert (o.status, o.filled_qty) == ("filled", Decimal("0.002"))  # 8,000 KRW: enough
    check(led)


def test_refused_batch_of_orders_leaves_nothing_behind(led: solvent.Ledger, ex: Any) -> None:
    """Inside ``batch()`` a refused order rolls back the block's accepted orders too."""
    before = market_view(led)
    with pytest.raises(solvent.InsufficientFunds), led.batch():
        buy(led, "c000", "1", "97000000")
        buy(led, "c000", "5", "97000000")
    assert market_view(led) == before
    check(led)


def test_open_orders_limit(led: solvent.Ledger, clock: Clock, monkeypatch: Any) -> None:
    monkeypatch.setattr(solvent.markets, "MAX_OPEN_ORDERS_PER_ACCOUNT", 2)
    market_exchange(led, clock)  # the engine takes the limit when the market is listed
    first = buy(led, "c000", "0.1", "97000000")
    buy(led, "c000", "0.1", "96000000")
    err = refused(led, solvent.LimitExceeded, "limit_exceeded",
                  lambda: buy(led, "c000", "0.1", "95000000"))
    assert err.details["limit"] == 2
    buy(led, "c001", "0.1", "95000000")  # per account: c001 is not limited by c000's
    led.cancel_order(first.order_id)
    buy(led, "c000", "0.1", "95000000")  # room again
    assert len(led.open_orders("c000")) == 2
    check(led)


def test_the_book_limit_is_a_typed_rejection(
    led: solvent.Ledger, clock: Clock, monkeypatch: Any
) -> None:
    """A book holds at most ``max_orders`` resting orders; the next GTC order is refused."""
    real = solvent.markets.book_class
    monkeypatch.setattr(solvent.markets, "book_class",
                        lambda core: functools.partial(real(core), max_orders=2))
    market_exchange(led, clock)
    buy(led, "c000", "0.1", "97000000")
    buy(led, "c001", "0.1", "96000000")
    refused(led, solvent.LimitExceeded, "limit_exceeded",
            lambda: buy(led, "c002", "0.1", "95000000"))
    o = buy(led, "c002", "0.1", "95000000", tif="IOC")  # an IOC order never rests
    assert o.status == "expired"
    check(led)


# -- custody meets the market: halts, reconciliation, unconfirmed funds ----------------------


def test_an_unattested_wallet_stops_orders(led: solvent.Ledger, clock: Clock) -> None:
    market_exchange(led, clock, attest=False)
    err = refused(led, solvent.NotReconciled, "not_reconciled",
                  lambda: buy(led, "c000", "0.1", "97000000"))
    assert err.details["asset"] == "BTC"
    attest_book(led, clock, "btc-cold")
    err = refused(led, solvent.NotReconciled, "not_reconciled",  # KRW still unattested
                  lambda: sell(led, "c000", "0.1", "97000000"))
    assert err.details["asset"] == "KRW"
    attest_book(led, clock, "krw-bank")
    assert buy(led, "c000", "0.1", "97000000").status == "resting"
    check(led)


@pytest.mark.parametrize("asset", ["BTC", "KRW"])
def test_a_custody_shortfall_halts_orders_in_both_assets_of_the_market(
    led: solvent.Ledger, clock: Clock, asset: str
) -> None:
    market_exchange(led, clock)
    resting = sell(led, "c001", "0.1", "99000000")
    wallet = {"BTC": "btc-cold", "KRW": "krw-bank"}[asset]
    report = attest_book(led, clock, wallet, delta_minor=-1)  # Mt.Gox: one unit missing
    assert not report.clean and led.asset_status(asset).halted
    for side in ("buy", "sell"):
        err = refused(led, solvent.AssetHalted, "asset_halted", lambda s=side: led.place_order(
            "c000", MARKET, s, qty="0.1", price="98000000"))
        assert err.details["asset"] == asset
    refused(led, solvent.AssetHalted, "asset_halted",
            lambda: led.amend_order(resting.order_id, qty="0.2"))
    led.amend_order(resting.order_id, qty="0.05")  # shrinking holds nothing new
    led.cancel_order(resting.order_id)  # cancels release funds: always allowed
    check(led)


def test_a_halted_asset_stops_only_its_markets(led: solvent.Ledger, clock: Clock) -> None:
    market_exchange(led, clock)
    with led.batch():
        led.register_asset("ETH", decimals=18)
        led.open_wallet("eth-hot", asset="ETH")
        led.deposit("c001", "ETH", "5", wallet="eth-hot", ref="eth-1")
    attest_book(led, clock, "eth-hot")
    led.list_market("ETH-KRW", base="ETH", quote="KRW", tick_size="1000", lot_size="0.001")
    attest_book(led, clock, "btc-cold", delta_minor=-SAT)  # a BTC drain
    markets = (MARKET, "ETH-KRW")
    refused(led, solvent.AssetHalted, "asset_halted",
            lambda: buy(led, "c000", "0.1", "97000000"), markets)
    o = led.place_order("c001", "ETH-KRW", "sell", qty="1", price="4000000")
    assert o.status == "resting"
    o = led.place_order("c000", "ETH-KRW", "buy", qty="0.5", price="4000000")
    assert o.status == "filled"
    assert led.balance_minor("c000", "ETH") == (5 * 10**17, 0)
    check(led)


def test_a_stale_attestation_halts_the_asset_at_the_order(
    led: solvent.Ledger, clock: Clock
) -> None:
    market_exchange(led, clock)
    buy(led, "c002", "0.1", "96000000")
    clock.now_ns += DAY_NS + 1
    before = market_view(led)
    with pytest.raises(solvent.AssetHalted) as info:
        buy(led, "c000", "0.1", "97000000")
    assert info.value.code == "asset_halted" and info.value.details["causes"] == ["stale"]
    # the halt is journaled (and committed) in the refused command; nothing else changed
    [halt] = led.records(after_position=before["position"])
    assert isinstance(halt, r.AssetHalted) and halt.cause == "stale"
    after = market_view(led)
    for key in ("balances", "books", "open_orders", "totals"):
        assert after[key] == before[key]
    refused(led, solvent.AssetHalted, "asset_halted", lambda: sell(led, "c000", "0.1",
                                                                   "99000000"))
    check(led)


def test_unconfirmed_funds_cannot_trade(led: solvent.Ledger, clock: Clock) -> None:
    market_exchange(led, clock, customer_krw=None)
    led.detect_deposit("c000", "KRW", "10000000", wallet="krw-bank", ref="tx-1")
    attest_arrived(led, clock, "krw-bank")  # the bank shows the money: still not tradable
    assert led.balance("c000", "KRW").pending == 10_000_000
    refused(led, solvent.InsufficientFunds, "insufficient_funds",
            lambda: buy(led, "c000", "0.1", "97000000"))
    sell(led, "c001", "0.1", "98000000")
    refused(led, solvent.InsufficientFunds, "insufficient_funds",
            lambda: led.place_order("c000", MARKET, "buy", quote_qty="5000000",
                                    type="market", tif="IOC"))
    led.confirm_deposit("krw-bank", "tx-1")
    assert buy(led, "c000", "0.1", "97000000").status == "resting"
    o = led.place_order("c000", MARKET, "buy", quote_qty="200000", type="market", tif="IOC")
    assert o.filled_qty == Decimal("0.002")
    check(led)


def test_a_voided_deposit_never_becomes_tradable(led: solvent.Ledger, clock: Clock) -> None:
    market_exchange(led, clock, customer_btc=None)
    led.detect_deposit("c000", "BTC", "1", wallet="btc-cold", ref="tx-reorg")
    led.void_deposit("btc-cold", "tx-reorg")
    refused(led, solvent.InsufficientFunds, "insufficient_funds",
            lambda: sell(led, "c000", "0.1", "98000000"))


# -- Bithumb, end to end ------------------------------------------------------------------------


def test_bithumb_phantom_btc_cannot_be_credited_nor_sold(led: solvent.Ledger, clock: Clock) -> None:
    """The promotion paid 2,000 BTC instead of 2,000 KRW. Here the phantom coins cannot
    be credited: booked into the treasury or to the customer as a deposit, the credit is
    refused against the wallet's last attestation, which does not show them; so the
    treasury holds no 2,000 BTC to pay out, and there is nothing to sell: the panic sell
    is refused too. (The transfer refused against attested reserves when the treasury's
    books show coins no attestation backs: test_custody_scenarios, Bithumb.)"""
    market_exchange(led, clock)
    buy(led, "c001", "1", "98000000")
    before = market_view(led)
    with pytest.raises(solvent.CoverageBreach):
        led.deposit("treasury", "BTC", "4000", wallet="btc-cold", ref="booked-not-held")
    with pytest.raises(solvent.CoverageBreach):
        led.deposit("c000", "BTC", "2000", wallet="btc-cold", ref="promo-as-deposit")
    assert [(rec.command, rec.code) for rec in led.records(after_position=before["position"])
            ] == [("deposit", "coverage")] * 2
    with pytest.raises(solvent.InsufficientFunds):
        led.transfer("treasury", "c000", "BTC", "2000", ref="promo-c000", actor="ops-1")
    refused(led, solvent.InsufficientFunds, "insufficient_funds",
            lambda: sell(led, "c000", "2000", "98000000"))
    refused(led, solvent.InsufficientFunds, "insufficient_funds",
            lambda: led.place_order("c000", MARKET, "sell", qty="2000", type="market",
                                    tif="IOC"))
    after = market_view(led)
    for key in ("balances", "books", "open_orders", "totals"):
        assert after[key] == before[key]
    check(led)


def test_bithumb_a_17_percent_crash_cannot_print(led: solvent.Ledger, ex: Any) -> None:
    """Reference 98,000,000 KRW with a 5 % band: nothing trades below 93,100,000."""
    led.set_reference_price(MARKET, "98000000", band="0.05")
    rec = last_record(led)
    assert isinstance(rec, r.ReferencePriceSet) and (rec.price_ticks, rec.band_ppm) == (
        98_000, 50_000)
    buy(led, "c001", "0.1", "97000000")
    buy(led, "c001", "0.1", "93100000")  # the band's lower edge, exactly
    refused(led, solvent.PriceOutsideBand, "price_outside_band",
            lambda: buy(led, "c002", "0.5", "92000000"))
    crash = 81_340_000  # 17 % below the reference
    refused(led, solvent.PriceOutsideBand, "price_outside_band",
            lambda: sell(led, "c000", "1", str(crash)))
    # a panic market sell of 1.5 BTC fills only at prices within the band, the rest expires
    o = led.place_order("c000", MARKET, "sell", qty="1.5", type="market", tif="IOC")
    assert (o.status, o.filled_qty) == ("expired", Decimal("0.2"))
    assert [f.price for f in o.fills] == [97_000_000, 93_100_000]
    assert all(f.price >= 93_100_000 for f in o.fills)
    assert btc(led, "c000") == (BTC0 - 20_000_000, 0)
    rec = placed(led, o.order_id)
    # journaled as asked; the engine ran it as an IOC limit at the band's edge
    assert (rec.order_type, rec.price_ticks, rec.qty_lots) == ("market", 0, 1_500)
    # a market buy cannot lift asks above the upper edge either (102,900,000)
    sell(led, "c002", "0.1", "100000000")
    sell(led, "c002", "0.1", "102900000")
    o = led.place_order("c000", MARKET, "buy", quote_qty="60000000", type="market", tif="IOC")
    assert [f.price for f in o.fills] == [100_000_000, 102_900_000]
    assert krw(led, "c000")[1] == 0
    check(led)


def test_bithumb_market_sell_cannot_reach_bids_below_the_band(
    led: solvent.Ledger, ex: Any
) -> None:
    buy(led, "c001", "0.5", "85000000")  # rests before the band exists
    led.set_reference_price(MARKET, "98000000", band="0.05")
    o = led.place_order("c000", MARKET, "sell", qty="0.5", type="market", tif="IOC")
    assert (o.status, o.fills) == ("expired", [])
    assert btc(led, "c000") == (BTC0, 0)
    assert levels(led)["bids"] == [(85_000_000, 50_000_000)]
    refused(led, solvent.FokUnfillable, "fok_unfillable", lambda: led.place_order(
        "c000", MARKET, "sell", qty="0.5", type="market", tif="FOK"))
    check(led)


def test_a_reference_move_cancels_the_orders_it_strands_where_takers_meet_them(
    led: solvent.Ledger, ex: Any
) -> None:
    """An ask left below the new floor (or a bid above the new ceiling) would fill at its
    own price, outside the band, when a taker inside the band met it: the move cancels
    it and releases its hold. Orders beyond the far edge cannot trade and keep resting."""
    low_ask = sell(led, "c000", "0.1", "93000000").order_id  # below the coming floor
    low_ask2 = sell(led, "c001", "0.2", "93000000").order_id
    kept_ask = sell(led, "c000", "0.1", "120000000").order_id  # above the coming ceiling
    high_bid = buy(led, "c002", "0.1", "92000000").order_id  # above the ceiling of move 2
    kept_bid = buy(led, "c001", "0.1", "80000000").order_id  # below every floor
    led.set_reference_price(MARKET, "107800000", band="0.05")  # 102,410,000 .. 113,190,000
    rec = last_record(led)
    assert isinstance(rec, r.ReferencePriceSet)
    assert rec.cancelled_order_ids == (low_ask, low_ask2)
    assert btc(led, "c000") == (BTC0 - 10_000_000, 10_000_000)  # only kept_ask holds
    assert btc(led, "c001") == (BTC0, 0)
    assert levels(led)["asks"] == [(120_000_000, 10_000_000)]
    taker = buy(led, "c002", "0.1", "105000000", tif="IOC")  # inside the band
    assert (taker.status, taker.fills) == ("expired", [])  # nothing printed at 93,000,000
    # the band moves down: the bid at 92,000,000 is above the new ceiling
    led.set_reference_price(MARKET, "85000000", band="0.05")  # 80,750,000 .. 89,250,000
    assert last_record(led).cancelled_order_ids == (high_bid,)
    assert [o.order_id for o in led.open_orders("c002")] == []
    assert krw(led, "c002") == (KRW0, 0)
    assert levels(led)["bids"] == [(80_000_000, 10_000_000)]
    assert {o.order_id for o in led.open_orders("c000") + led.open_orders("c001")} == {
        kept_ask, kept_bid}
    led.set_reference_price(MARKET, "85000000", band="0.05")  # nothing left to strand
    assert last_record(led).cancelled_order_ids == ()
    check(led)
    led.verify()  # replay cancels the same orders and finds nothing stranded


def test_a_reference_move_refuses_to_strand_more_orders_than_it_can_cancel(
    led: solvent.Ledger, ex: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most ``MAX_SUBMIT_BATCH`` stranded orders go with one move (the limit is
    lowered here to 2 so that the test need not rest 100,001 orders)."""
    import solvent.markets

    monkeypatch.setattr(solvent.markets, "MAX_SUBMIT_BATCH", 2)
    for account in ("c000", "c001", "c002"):
        sell(led, account, "0.1", "93000000")
    err = refused(led, solvent.LimitExceeded, "limit_exceeded",
                  lambda: led.set_reference_price(MARKET, "107800000", band="0.05"))
    assert "would strand 3 resting orders" in str(err)
    led.cancel_order(led.open_orders("c002")[0].order_id)
    led.set_reference_price(MARKET, "107800000", band="0.05")
    assert len(last_record(led).cancelled_order_ids) == 2
    check(led)


def test_price_band_reads_the_band_in_the_quote_asset(led: solvent.Ledger, ex: Any) -> None:
    assert led.price_band(MARKET) is None
    led.set_reference_price(MARKET, "98000000", band="0.05")
    assert led.price_band(MARKET) == (Decimal(93_100_000), Decimal(102_900_000))
    # 1 ppm of 98,001 ticks is 0.098 of a tick: rounded inwards, the band is the reference
    led.set_reference_price(MARKET, "98001000", band="0.000001")
    assert led.price_band(MARKET) == (Decimal(98_001_000), Decimal(98_001_000))
    with pytest.raises(solvent.UnknownMarket):
        led.price_band("ETH-KRW")


def test_a_reference_price_of_zero_is_refused(led: solvent.Ledger, ex: Any) -> None:
    refused(led, solvent.InvalidAmount, "invalid_amount",
            lambda: led.set_reference_price(MARKET, "0", band="0.05"))


# -- client order ids ---------------------------------------------------------------------------


def test_client_order_id_is_idempotent_per_account(led: solvent.Ledger, ex: Any) -> None:
    sell(led, "c001", "0.1", "98000000")
    first = buy(led, "c000", "0.3", "98000000", client_order_id="c-1")
    assert not first.replayed and first.client_order_id == "c-1"
    view = market_view(led)
    again = buy(led, "c000", "0.3", "98000000", client_order_id="c-1")
    assert again.replayed and again.order_id == first.order_id
    assert msgspec.structs.replace(again, replayed=False) == first  # the first result
    assert market_view(led) == view  # nothing placed twice
    refused(led, solvent.DuplicateRef, "duplicate_ref",
            lambda: buy(led, "c000", "0.2", "98000000", client_order_id="c-1"))
    refused(led, solvent.DuplicateRef, "duplicate_ref",
            lambda: sell(led, "c000", "0.3", "98000000", client_order_id="c-1"))
    other = buy(led, "c002", "0.3", "98000000", client_order_id="c-1")  # another account
    assert not other.replayed and other.order_id != first.order_id
    # still idempotent after the order left the book
    led.cancel_order(first.order_id)
    assert buy(led, "c000", "0.3", "98000000", client_order_id="c-1").replayed
    check(led)


def test_client_order_id_is_idempotent_inside_a_batch(led: solvent.Ledger, ex: Any) -> None:
    with led.batch():
        first = buy(led, "c000", "0.1", "97000000", client_order_id="b-1")
        again = buy(led, "c000", "0.1", "97000000", client_order_id="b-1")
        with pytest.raises(solvent.DuplicateRef):
            buy(led, "c000", "0.2", "97000000", client_order_id="b-1")
    assert again.replayed and again.order_id == first.order_id
    assert len(led.open_orders("c000")) == 1
    assert buy(led, "c000", "0.1", "97000000", client_order_id="b-1").replayed  # committed
    check(led)


def test_a_client_order_id_retry_after_reopening(tmp_path: Any) -> None:
    """After reopening (from the snapshot close() writes), a retry reads its one batch
    back from the store."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    clock = Clock()
    led = solvent.Ledger.open(url, clock=clock)
    market_exchange(led, clock)
    first = buy(led, "c000", "0.1", "97000000", client_order_id="keep-1")
    for i in range(20):  # later batches
        buy(led, "c001", "0.1", str(96_000_000 - i * 1000))
    led.close()
    with solvent.Ledger.open(url, clock=clock) as again:
        retry = buy(again, "c000", "0.1", "97000000", client_order_id="keep-1")
        assert retry.replayed and retry.order_id == first.order_id
        with pytest.raises(solvent.DuplicateRef):
            buy(again, "c000", "0.2", "97000000", client_order_id="keep-1")


def test_a_client_order_id_is_in_the_snapshot_its_own_commit_takes(
    tmp_path: Any, core: str
) -> None:
    """The order's commit may take an automatic snapshot; the id used to be remembered
    only after that commit, so the snapshot lacked it: ``verify()`` called the snapshot
    tampered, and a ledger reopened from it placed the retry as a second order."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    clock = Clock()
    with solvent.Ledger.open(url, core=core, clock=clock) as led:
        market_exchange(led, clock)
    with solvent.Ledger.open(url, core=core, clock=clock, snapshot_every=1) as led:
        first = buy(led, "c000", "0.1", "97000000", client_order_id="snap-1")
        assert led.last_snapshot_error is None
        led.verify()
    with solvent.Ledger.open(url, core=core, clock=clock) as again:
        retry = buy(again, "c000", "0.1", "97000000", client_order_id="snap-1")
        assert retry.replayed and retry.order_id == first.order_id
        assert [o.order_id for o in again.open_orders("c000")] == [first.order_id]


def test_client_order_ids_are_kept_for_the_last_n_per_account(
    led: solvent.Ledger, ex: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(solvent.markets, "MAX_CLIENT_IDS_PER_ACCOUNT", 3)
    first = [buy(led, "c000", "0.1", "97000000", client_order_id=f"k-{i}") for i in range(4)]
    buy(led, "c001", "0.1", "97000000", client_order_id="k-0")  # per account
    # k-0 of c000 was forgotten (the oldest of 4); k-1..k-3 still answer retries
    assert [buy(led, "c000", "0.1", "97000000", client_order_id=f"k-{i}").replayed
            for i in (3, 2, 1)] == [True, True, True]
    late = buy(led, "c000", "0.1", "97000000", client_order_id="k-0")
    assert not late.replayed and late.order_id > first[3].order_id  # a new order
    assert buy(led, "c001", "0.1", "97000000", client_order_id="k-0").replayed
    # replay rebuilds the same window: k-1 was pushed out by the late k-0
    led.verify()
    again = buy(led, "c000", "0.1", "97000000", client_order_id="k-1")
    assert not again.replayed
    check(led)


# -- market halts -------------------------------------------------------------------------------


def test_halt_and_resume_are_journaled_and_cancels_still_work(
    led: solvent.Ledger, ex: Any
) -> None:
    o = buy(led, "c000", "0.1", "97000000")
    led.halt_market(MARKET, reason="incident 42", actor="ops-1")
    rec = last_record(led)
    assert isinstance(rec, r.MarketHalted)
    assert (rec.market, rec.reason, rec.actor) == (MARKET, "incident 42", "ops-1")
    refused(led, solvent.MarketHalted, "market_halted",
            lambda: sell(led, "c001", "0.1", "97000000"))
    refused(led, solvent.InvalidState, "invalid_state",
            lambda: led.halt_market(MARKET, reason="again"))
    refused(led, solvent.PermissionDenied, "permission_denied",
            lambda: led.resume_market(MARKET, actor="c000"))
    led.cancel_order(o.order_id)  # cancels release funds while halted
    assert krw(led, "c000") == (KRW0, 0)
    led.resume_market(MARKET, reason="fixed", actor="ops-2")
    rec = last_record(led)
    assert isinstance(rec, r.MarketResumed) and (rec.reason, rec.actor) == ("fixed", "ops-2")
    refused(led, solvent.InvalidState, "invalid_state", lambda: led.resume_market(MARKET))
    refused(led, solvent.PermissionDenied, "permission_denied",
            lambda: led.halt_market(MARKET, reason="x", actor="c000"))
    refused(led, solvent.InvalidArgument, "invalid_argument",
            lambda: led.halt_market(MARKET, reason=""))
    refused(led, solvent.UnknownMarket, "unknown_market",
            lambda: led.halt_market("ETH-KRW", reason="x"))
    assert sell(led, "c001", "0.1", "97000000").status == "resting"
    check(led)


# -- the bulk path --------------------------------------------------------------------------------


def test_submit_orders_returns_per_order_outcomes(led: solvent.Ledger, ex: Any) -> None:
    m = led.market_id(MARKET)
    c000 = led.account_id("c000")
    batch = [
        led.order_row("c001", MARKET, "sell", qty="0.1", price="98000000"),
        led.order_row("c000", MARKET, "buy", qty="60", price="98000000"),
        (ec.OP_LIMIT, m, 0, c000, mc.BUY, 98_000, 100, 0, 1.0),  # a float: a bad row
        (ec.OP_LIMIT, m + 7, 0, c000, mc.BUY, 98_000, 100, 0, 0),  # no such market
        led.order_row("c002", MARKET, "buy", qty="0.05", price="98000000"),
        led.order_row("c000", MARKET, "buy", qty="0.1", price="98000000", post_only=True),
        (ec.OP_LIMIT, m, 0, c000, mc.BUY),  # too short
        led.order_row("c002", MARKET, "sell", qty="0.1", price="99000000", tif="FOK"),
        led.cancel_row(10**6, MARKET),
    ]
    version = led.version
    with led.batch():
        results = led.submit_orders(batch)
    assert led.version == version + 1  # one commit for the lot
    assert results.codes() == [
        "ok", "insufficient_funds", "invalid_argument", "unknown_market", "ok",
        "post_only_would_take", "invalid_argument", "fok_unfillable", "unknown_order"]
    ids = results.order_ids()
    assert ids[0] > 0 and ids[4] == ids[0] + 1 and [ids[i] for i in (1, 2, 3, 5, 6, 7, 8)] == [
        0] * 7
    assert results[4] == ("ok", ids[4], "filled", 50, 0, 4_900_000 + 4_900)
    assert placed_fill_makers(led) == [ids[0]]
    assert levels(led)["asks"] == [(98_000_000, 5_000_000)]
    with pytest.raises(solvent.LimitExceeded):
        led.submit_orders("not a list")  # type: ignore[arg-type]
    check(led)
    led.verify()


def test_submit_orders_takes_at_most_max_submit_batch_rows(led: solvent.Ledger, ex: Any) -> None:
    row = led.order_row("c000", MARKET, "buy", qty="0.001", price="97000000")
    too_many = [row] * (solvent.markets.MAX_SUBMIT_BATCH + 1)
    err = refused(led, solvent.LimitExceeded, "limit_exceeded",
                  lambda: led.submit_orders(too_many))
    assert err.details["limit"] == solvent.markets.MAX_SUBMIT_BATCH == 100_000
    assert led.submit_orders([]).codes() == []
    check(led)


def placed_fill_makers(led: solvent.Ledger) -> list[int]:
    """The maker order ids of every fill journaled by submit_orders."""
    found = []
    for rec in led.records():
        if isinstance(rec, r.OrdersSubmitted):
            ev = array("q")
            ev.frombytes(rec.events)
            found += list(ev[2::ec.EVENT_FIELDS])
    return found


def test_submit_orders_a_customer_acts_for_itself_only(led: solvent.Ledger, ex: Any) -> None:
    mine = led.order_row("c000", MARKET, "buy", qty="0.1", price="97000000")
    theirs = led.order_row("c001", MARKET, "buy", qty="0.1", price="97000000")
    results = led.submit_orders([mine, theirs], actor="c000")
    assert results.codes() == ["ok", "permission_denied"]
    led.register_actor("reader", "auditor")
    refused(led, solvent.PermissionDenied, "permission_denied",
            lambda: led.submit_orders([theirs], actor="reader"))
    check(led)
    led.verify()


def test_submit_orders_spans_markets_in_order(
    led: solvent.Ledger, ex: Any, clock: Clock
) -> None:
    led.register_asset("ETH", 18)
    led.open_wallet("eth-cold", asset="ETH")
    led.attest("eth-cold", "0", as_of=datetime.fromtimestamp(clock.now_ns / 1e9, UTC),
               source="test")
    led.list_market("ETH-KRW", base="ETH", quote="KRW", tick_size="1000", lot_size="0.01")
    rows = [led.order_row("c000", MARKET, "buy", qty="0.1", price="97000000"),
            led.order_row("c000", "ETH-KRW", "buy", qty="1", price="4000000"),
            led.order_row("c001", MARKET, "sell", qty="0.1", price="97000000")]
    position = led.position
    results = led.submit_orders(rows)
    assert results.codes() == ["ok", "ok", "ok"]
    assert [o.status for o in results] == ["resting", "resting", "filled"]
    recs = list(led.records(after_position=position))
    assert [(type(x).__name__, x.market) for x in recs] == [
        ("OrdersSubmitted", MARKET), ("OrdersSubmitted", "ETH-KRW"),
        ("OrdersSubmitted", MARKET)]
    check(led)
    led.verify()


def _eth_market(led: solvent.Ledger, clock: Clock) -> None:
    led.register_asset("ETH", 18)
    led.open_wallet("eth-cold", asset="ETH")
    led.attest("eth-cold", "0", as_of=datetime.fromtimestamp(clock.now_ns / 1e9, UTC),
               source="test")
    led.list_market("ETH-KRW", base="ETH", quote="KRW", tick_size="1000", lot_size="0.01")


def _ref_batch(led: solvent.Ledger) -> list[Any]:
    """Rows over two markets and back (three records), with rows refused before and
    between them."""
    m = led.market_id(MARKET)
    return [
        (ec.OP_LIMIT, m + 7, 0, 0, mc.BUY, 1, 1, 0, 0),  # no such market: before any run
        led.order_row("c000", MARKET, "buy", qty="0.1", price="97000000"),
        led.order_row("c000", "ETH-KRW", "buy", qty="1", price="4000000"),
        "not a row",
        led.order_row("c001", MARKET, "sell", qty="0.05", price="97000000"),
        (ec.OP_LIMIT, m, 0, 0, mc.BUY, 1, 1, 0, 1.5),  # a float: refused by the engine
    ]


def test_submit_orders_ref_returns_the_first_outcomes(
    led: solvent.Ledger, ex: Any, clock: Clock
) -> None:
    _eth_market(led, clock)
    led.register_actor("desk-2", "operator")
    batch = _ref_batch(led)
    first = led.submit_orders(batch, ref="bulk-1")
    assert first.codes() == ["unknown_market", "ok", "ok", "invalid_argument", "ok",
                             "invalid_argument"] and not first.replayed
    position, view = led.position, market_view(led)
    again = led.submit_orders(list(batch), ref="bulk-1")
    assert again.replayed and list(again) == list(first)
    assert (led.position, market_view(led)) == (position, view)  # nothing ran twice
    changed = list(batch)
    changed[4] = led.order_row("c001", MARKET, "sell", qty="0.06", price="97000000")
    for other in (changed, batch[:-1], [*batch, batch[1]], [batch[1], *batch[1:]]):
        refused(led, solvent.DuplicateRef, "duplicate_ref",
                lambda o=other: led.submit_orders(o, ref="bulk-1"))
    refused(led, solvent.DuplicateRef, "duplicate_ref",
            lambda: led.submit_orders(batch, ref="bulk-1", actor="desk-2"))
    refused(led, solvent.InvalidId, "invalid_id",
            lambda: led.submit_orders(batch, ref="bad ref"))
    assert (led.position, market_view(led)) == (position, view)
    fresh = led.submit_orders(batch, ref="bulk-2")  # another ref runs the rows again
    assert not fresh.replayed and fresh.codes()[1] == "ok"
    assert fresh.order_ids()[1] != first.order_ids()[1]
    check(led)
    led.verify()


def test_submit_orders_ref_with_no_row_run_keeps_nothing(led: solvent.Ledger, ex: Any) -> None:
    m = led.market_id(MARKET)
    batch: list[Any] = [(ec.OP_LIMIT, m + 7, 0, 0, mc.BUY, 1, 1, 0, 0), "not a row"]
    position = led.position
    for _ in range(2):  # nothing journaled, so the repeat runs again: the same refusals
        out = led.submit_orders(batch, ref="empty-1")
        assert out.codes() == ["unknown_market", "invalid_argument"] and not out.replayed
    assert led.position == position


def test_submit_orders_ref_inside_a_batch_and_after_reopening(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    clock = Clock()
    led = solvent.Ledger.open(url, clock=clock)
    market_exchange(led, clock)
    _eth_market(led, clock)
    batch = _ref_batch(led)
    with led.batch():
        first = led.submit_orders(batch, ref="keep-1")
        assert led.submit_orders(batch, ref="keep-1").replayed  # read from pending records
    buy(led, "c002", "0.1", "96000000")  # a later batch
    led.close()
    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    rewrite_journal(url, copy, lambda rec: rec)  # the journal alone, no snapshot
    for where in (url, copy):  # from close()'s snapshot, then by replaying the journal
        with solvent.Ledger.open(where, clock=clock) as again:
            retry = again.submit_orders(batch, ref="keep-1")
            assert retry.replayed and list(retry) == list(first)
            with pytest.raises(solvent.DuplicateRef):
                again.submit_orders(batch[:-1], ref="keep-1")


@pytest.mark.parametrize("order_id", [2**63, -(2**63) - 1, 10**30])
def test_an_order_id_beyond_int64_is_an_invalid_argument_on_both_paths(
    led: solvent.Ledger, ex: Any, order_id: int
) -> None:
    """A row's code is the one the single command raises: the engine refuses a row whose
    id does not fit int64 as ``invalid_argument``, where ``cancel_order`` and
    ``amend_order`` said ``unknown_order`` (and the row builders took the id)."""
    for command in (lambda: led.cancel_order(order_id),
                    lambda: led.amend_order(order_id, qty="0.1"),
                    lambda: led.cancel_row(order_id, MARKET),
                    lambda: led.amend_row(order_id, MARKET, qty="0.1")):
        refused(led, solvent.InvalidArgument, "invalid_argument", command)
    m = led.market_id(MARKET)
    rows = [(ec.OP_CANCEL, m, order_id, 0, 0, 0, 0, 0, 0),
            (ec.OP_AMEND, m, order_id, 0, 0, 0, 100, 0, 0)]
    position = led.position
    assert led.submit_orders(rows).codes() == ["invalid_argument"] * 2
    assert led.position == position + 1  # the engine refused both rows in one record


def test_a_submit_orders_retry_reads_its_batch_once(
    led: solvent.Ledger, ex: Any, clock: Clock, monkeypatch: Any
) -> None:
    """Rows alternating between two markets make one record each, all in one store
    batch. The retry read and decoded that batch once per record (quadratic: 8,000 rows
    took 60 s, holding the ledger's lock); it reads it once."""
    _eth_market(led, clock)
    markets = (led.market_id(MARKET), led.market_id("ETH-KRW"))
    rows = [led.cancel_row(10**9 + i, MARKET if i % 2 == 0 else "ETH-KRW")
            for i in range(200)]  # cancels of orders that do not exist: 200 records
    first = led.submit_orders(rows, ref="zigzag")
    assert set(first.codes()) == {"unknown_order"} and len(markets) == 2
    reads: list[int] = []
    batch_at = led._store.batch_at
    monkeypatch.setattr(led._store, "batch_at", lambda v: reads.append(v) or batch_at(v))
    again = led.submit_orders(rows, ref="zigzag")
    assert again.replayed and list(again) == list(first)
    assert reads == [led.version]


def test_submit_orders_lands_whole_or_not_at_all(tmp_path: Any) -> None:
    """A call over several markets commits as one store batch; when that commit fails
    (here: another writer moved the store on, so this one is fenced), none of the call
    took effect, no ref was kept, and the retry runs every row."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    clock = Clock()
    first = solvent.Ledger.open(url, clock=clock)
    market_exchange(first, clock)
    _eth_market(first, clock)
    stale = solvent.Ledger.open(url, clock=clock)
    batch = _ref_batch(stale)
    attest_arrived(first, clock, "krw-bank", arrived_minor=1_000)  # moves the store on
    first.deposit("c002", "KRW", 1_000, wallet="krw-bank", ref="moves-the-store")
    markets = (MARKET, "ETH-KRW")
    with pytest.raises(solvent.WriterFenced):
        stale.submit_orders(batch, ref="whole-1")
    assert market_view(stale, markets) == market_view(first, markets)  # reloaded, no row ran
    assert all(rec.ref != "whole-1" for rec in stale.records())
    retry = stale.submit_orders(batch, ref="whole-1")
    assert not retry.replayed
    assert retry.codes() == ["unknown_market", "ok", "ok", "invalid_argument", "ok",
                             "invalid_argument"]
    store = JournalStore(url)
    try:
        versions = [stored.originator_version for stored in store.read()
                    for rec in r.batch_decoder.decode(stored.payload).records
                    if rec.ref == "whole-1"]
    finally:
        store.close()
    assert len(versions) == 3 and len(set(versions)) == 1, versions  # three runs, one batch
    check(stale)
    stale.verify()
    first.close()
    stale.close()


def _engine(led: solvent.Ledger, market: str = MARKET) -> Any:
    """The live engine of ``market`` (to inject a fault; a reload replaces it)."""
    return led._markets.engines[market]


def _failing_and_clean(core: str, clock: Clock) -> tuple[solvent.Ledger, solvent.Ledger]:
    """Two ledgers built alike, both markets listed and one order resting on each side
    of BTC-KRW: the first is the one whose engine fails, the second runs the same
    commands without a fault, as the reference."""
    pair = []
    for _ in range(2):
        led = solvent.Ledger.open("memory:", core=core, clock=clock)
        market_exchange(led, clock)
        _eth_market(led, clock)
        sell(led, "c002", "0.2", "99000000")
        buy(led, "c002", "0.2", "95000000")
        pair.append(led)
    return pair[0], pair[1]


@pytest.mark.parametrize("after_rows", [0, 1])
def test_an_engine_failure_mid_call_undoes_the_whole_call(
    core: str, clock: Clock, after_rows: int
) -> None:
    """The engine raises part way through a ``submit_orders`` call, after the book has
    matched a row and before its fills are settled (a real ``MemoryError`` growing the
    event buffer would strike there): rows of earlier runs in the call, the other
    market's included, took effect in the engines but none is journaled. The ledger
    reloads, so nothing of the call remains, no ref is kept, and the retry gives what
    the call gives on a ledger that never failed."""
    led, clean = _failing_and_clean(core, clock)
    batch = _ref_batch(led)  # runs: BTC-KRW row 1, ETH-KRW row 2, BTC-KRW row 4
    batch[4] = led.order_row("c001", MARKET, "buy", qty="0.1", price="99000000")  # takes c002
    markets = (MARKET, "ETH-KRW")
    before = market_view(led, markets)
    _engine(led).inject_fault(after_rows)  # 0: row 1 (it would rest) fails; 1: row 4 (a trade)
    with pytest.raises(MemoryError, match="injected"):
        led.submit_orders(batch, ref="fault-1")
    assert market_view(led, markets) == before
    assert all(rec.ref != "fault-1" for rec in led.records())
    check(led)
    expected = clean.submit_orders(batch, ref="fault-1")
    retry = led.submit_orders(batch, ref="fault-1")
    assert not retry.replayed and list(retry) == list(expected)
    assert retry.codes() == ["unknown_market", "ok", "ok", "invalid_argument", "ok",
                             "invalid_argument"]
    assert market_view(led, markets) | {"head": None} == \
        market_view(clean, markets) | {"head": None}  # the clocks differ, not the state
    check(led)
    led.verify()
    for x in (led, clean):
        x.close()


def test_an_engine_failure_in_a_single_order_changes_nothing(core: str, clock: Clock) -> None:
    """``place_order`` whose taker the book has matched when the engine fails: the
    maker stays, no balance moved, no hold is left; the same order then fills."""
    led, clean = _failing_and_clean(core, clock)
    before = market_view(led)
    _engine(led).inject_fault(0)
    with pytest.raises(MemoryError, match="injected"):
        buy(led, "c001", "0.1", "99000000", client_order_id="t-1")
    assert market_view(led) == before
    check(led)
    got = buy(led, "c001", "0.1", "99000000", client_order_id="t-1")
    want = buy(clean, "c001", "0.1", "99000000", client_order_id="t-1")
    assert (got.status, got.filled_qty, got.fills) == (want.status, want.filled_qty, want.fills)
    assert got.status == "filled" and not got.replayed
    assert market_view(led) | {"head": None} == market_view(clean) | {"head": None}
    led.verify()
    for x in (led, clean):
        x.close()


def test_an_engine_failure_inside_batch_keeps_the_commands_before_it(
    core: str, clock: Clock, tmp_path: Any
) -> None:
    """Inside ``batch()``, a failing call is a savepoint: the commands before it stay
    pending and commit when the block ends; the failed call left nothing."""
    led = solvent.Ledger.open(f"sqlite:///{tmp_path / 'f.db'}", core=core, clock=clock)
    market_exchange(led, clock)
    with led.batch():
        kept = sell(led, "c002", "0.2", "99000000")
        _engine(led).inject_fault(0)
        with pytest.raises(MemoryError, match="injected"):
            led.submit_orders([led.order_row("c001", MARKET, "buy", qty="0.1",
                                             price="99000000")])
        assert led.book(MARKET, depth=5)["asks"] == [(Decimal("99000000"), Decimal("0.2"))]
    assert [o.order_id for o in led.open_orders("c002")] == [kept.order_id]
    assert led.open_orders("c001") == []
    check(led)
    led.close()
    with solvent.Ledger.open(f"sqlite:///{tmp_path / 'f.db'}", core=core) as again:
        assert [o.order_id for o in again.open_orders("c002")] == [kept.order_id]
        again.verify()


@pytest.mark.parametrize("bad", [-2, 100_001, 1.0, True, "1"])
def test_inject_fault_refuses_a_bad_count(led: solvent.Ledger, ex: Any, bad: Any) -> None:
    with pytest.raises(ValueError, match="after_rows"):
        _engine(led).inject_fault(bad)


# -- replay ---------------------------------------------------------------------------------------


def mixed_session(led: solvent.Ledger) -> None:
    """Every kind of market record: limit orders of each tif, post-only, market orders
    both ways, each STP mode, amends (keeping and losing priority), cancels, a
    reference band, a halt and a resume, client order ids; some commands grouped."""
    ids = []
    with led.batch():
        for i, price in enumerate(("97000000", "96000000", "95000000")):
            ids.append(buy(led, f"c00{i}", "0.2", price, client_order_id=f"b-{i}").order_id)
            ids.append(sell(led, f"c00{i}", "0.2", str(99_000_000 + i * 1_000_000)).order_id)
    buy(led, "c001", "0.1", "97000000", post_only=True)
    sell(led, "c002", "0.1", "99000000", stp="none")
    buy(led, "c000", "0.3", "99000000", tif="IOC", stp="expire_maker")  # expires c000's ask
    sell(led, "c002", "0.05", "97000000", tif="FOK", stp="expire_taker")
    led.amend_order(ids[3], qty="0.1")  # c001's ask at 100,000,000 keeps its place
    led.amend_order(ids[0], price="96000000")  # c000's bid re-queues behind c001's
    buy(led, "c000", "0.1", "96000000")
    led.amend_order(ids[2], qty="0.3")  # c001's bid at 96,000,000 goes to the back
    led.place_order("c001", MARKET, "buy", quote_qty="30000000", type="market", tif="IOC")
    led.place_order("c000", MARKET, "sell", qty="0.25", type="market", tif="IOC",
                    stp="expire_both")
    led.set_reference_price(MARKET, "97000000", band="0.1")
    led.halt_market(MARKET, reason="pause")
    led.cancel_order(ids[4])
    led.resume_market(MARKET)
    with led.batch():
        led.submit_orders(ref="mixed-1", batch=[
            led.order_row("c002", MARKET, "buy", qty="0.4", price="96000000",
                          stp="expire_both"),
            led.order_row("c000", MARKET, "sell", qty="0.4", price="96000000", stp="none"),
            led.order_row("c001", MARKET, "sell", qty="0.3", price="100000000"),
            led.order_row("c001", MARKET, "sell", qty="0.3", price="70000000"),  # band
            led.amend_row(ids[1], MARKET, qty="0.1"),
            led.cancel_row(ids[5], MARKET),
            led.order_row("c001", MARKET, "buy", quote_qty="3000000", type="market",
                          tif="IOC"),
        ])
    buy(led, "c001", "0.01", "98000000")
    led.place_order("c001", MARKET, "sell", qty="0.05", type="market", tif="FOK")
    led.freeze_account("c002", reason="review")  # cancels c002's resting orders too
    led.place_order("c000", MARKET, "buy", quote_qty="5000000", type="market", tif="IOC")


def full_view(led: solvent.Ledger) -> dict[str, Any]:
    seen = market_view(led)
    seen["records"] = list(led.records())
    seen["spec"] = led.market_spec(MARKET)
    return seen


def continue_session(led: solvent.Ledger) -> list[Any]:
    """Commands whose outcomes depend on everything replay must restore: queue order,
    next order id, client order ids, the band, holds."""
    out: list[Any] = [
        led.place_order("c000", MARKET, "sell", qty="0.5", type="market", tif="IOC"),
        buy(led, "c000", "0.2", "97000000", client_order_id="b-0"),  # replayed or refused
    ]
    try:
        out.append(buy(led, "c001", "0.2", "95000000", client_order_id="b-1"))
    except solvent.DuplicateRef as exc:
        out.append(exc.code)
    out.append(sell(led, "c001", "0.3", "100000000", client_order_id="s-9"))
    out.append(buy(led, "c001", "0.5", "106000000", tif="IOC"))
    out.append(market_view(led))
    return out


@pytest.mark.parametrize("snapshot_every", [10**6, 3])
def test_replay_rebuilds_books_orders_and_balances(
    tmp_path: Any, core: str, snapshot_every: int
) -> None:
    url = f"sqlite:///{tmp_path / 'markets.db'}"
    clocks = [Clock(), Clock()]
    live = solvent.Ledger.open("memory:", core=core, clock=clocks[0])
    stored = solvent.Ledger.open(url, core=core, clock=clocks[1], snapshot_every=snapshot_every)
    for led, clock in zip((live, stored), clocks, strict=True):
        market_exchange(led, clock)
        mixed_session(led)
        check(led)
        led.verify()
    want = full_view(live)
    assert full_view(stored) == want
    stored.close()
    reopened = solvent.Ledger.open(url, core=core, clock=clocks[1],
                                   snapshot_every=snapshot_every)
    report = reopened.verify()
    if snapshot_every == 3:
        assert report.snapshots_checked > 0
    assert full_view(reopened) == want
    later = max(c.now_ns for c in clocks) + 10**9
    for clock in clocks:  # the same command times from here on
        clock.now_ns = later
    assert continue_session(reopened) == continue_session(live)
    reopened.verify()
    reopened.close()
    live.close()


def test_replay_on_postgresql(pg_url: str) -> None:
    clocks = [Clock(), Clock()]
    live = solvent.Ledger.open("memory:", clock=clocks[0])
    stored = solvent.Ledger.open(pg_url, clock=clocks[1], snapshot_every=5)
    for led, clock in zip((live, stored), clocks, strict=True):
        market_exchange(led, clock)
        mixed_session(led)
    stored.close()
    reopened = solvent.Ledger.open(pg_url, clock=clocks[1])
    assert reopened.verify().snapshots_checked > 0
    assert full_view(reopened) == full_view(live)
    later = max(c.now_ns for c in clocks) + 10**9
    for clock in clocks:  # the same command times from here on
        clock.now_ns = later
    assert continue_session(reopened) == continue_session(live)
    reopened.close()
    live.close()


def test_the_compiled_and_python_cores_journal_the_same_session() -> None:
    views = []
    for core in ("compiled", "python"):
        clock = Clock()
        led = solvent.Ledger.open("memory:", core=core, clock=clock)
        market_exchange(led, clock)
        mixed_session(led)
        views.append(full_view(led))
        led.close()
    assert views[0] == views[1]


def rewrite_journal(src_url: str, dst_url: str, edit: Callable[[Any], Any]) -> None:
    """Copy the journal through ``edit`` (record → record), re-sealing the hash chain as a
    forger with the code would: only replay can tell."""
    src, dst = JournalStore(src_url), JournalStore(dst_url)
    try:
        head = bytes(32)
        for stored in src.read():
            batch = r.batch_decoder.decode(stored.payload)
            payload = r.encoder.encode(r.Batch(
                version=batch.version, first_position=batch.first_position,
                records=[edit(rec) for rec in batch.records]))
            sealed = StoredBatch.seal(stored.originator_version, head, payload)
            dst.append(sealed)
            head = sealed.digest
    finally:
        src.close()
        dst.close()


def _more_qty(rec: Any) -> Any:
    if isinstance(rec, r.OrderPlaced) and rec.fills:
        f = rec.fills[0]
        return msgspec.structs.replace(rec, fills=[
            msgspec.structs.replace(f, qty_lots=f.qty_lots + 1), *rec.fills[1:]])
    return rec


def _less_fee(rec: Any) -> Any:
    if isinstance(rec, r.OrderPlaced) and rec.fills:
        f = rec.fills[0]
        return msgspec.structs.replace(rec, fills=[
            msgspec.structs.replace(f, taker_fee_minor=f.taker_fee_minor - 1), *rec.fills[1:]])
    return rec


def _small_hold(rec: Any) -> Any:  # an order that could never have been paid for
    if isinstance(rec, r.OrderPlaced) and rec.side == "buy" and rec.fills:
        return msgspec.structs.replace(rec, hold_minor=1_000)
    return rec


def _unbacked_resting_bid(rec: Any) -> Any:  # a resting bid backed by almost nothing
    if isinstance(rec, r.OrderPlaced) and rec.side == "buy" and rec.status == "resting":
        return msgspec.structs.replace(rec, hold_minor=1_000)
    return rec


def _status(rec: Any) -> Any:
    if isinstance(rec, r.OrderPlaced) and rec.status == "filled":
        return msgspec.structs.replace(rec, status="resting")
    return rec


def _bulk_fee(rec: Any) -> Any:  # one minor unit less fee in the first fill event
    if isinstance(rec, r.OrdersSubmitted) and rec.events:
        ev = array("q")
        ev.frombytes(rec.events)
        ev[8] -= 1
        return msgspec.structs.replace(rec, events=ev.tobytes())
    return rec


def _bulk_result(rec: Any) -> Any:  # a refused row claimed as accepted
    if isinstance(rec, r.OrdersSubmitted):
        out = array("q")
        out.frombytes(rec.results)
        for i in range(0, len(out), ec.OUT_FIELDS):
            if out[i] != ec.OK:
                out[i] = ec.OK
                return msgspec.structs.replace(rec, results=out.tobytes())
    return rec


def _bulk_row(rec: Any) -> Any:  # a bigger order than the one that ran
    if isinstance(rec, r.OrdersSubmitted):
        rows = array("q")
        rows.frombytes(rec.rows)
        rows[6] += 1
        return msgspec.structs.replace(rec, rows=rows.tobytes())
    return rec


def _bulk_index(rec: Any) -> Any:  # a record placed outside the call it names
    if isinstance(rec, r.OrdersSubmitted):
        return msgspec.structs.replace(rec, batch_index=rec.batch_rows)
    return rec


def _bulk_live(rec: Any) -> Any:  # claims an asset was halted when it was not
    if isinstance(rec, r.OrdersSubmitted):
        return msgspec.structs.replace(rec, live_code=ec.ASSET_HALTED)
    return rec


@pytest.mark.parametrize("edit", [_more_qty, _less_fee, _small_hold, _unbacked_resting_bid,
                                  _status, _bulk_fee, _bulk_result, _bulk_row, _bulk_index,
                                  _bulk_live])
def test_a_forged_order_record_does_not_replay(tmp_path: Any, edit: Any) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    clock = Clock()
    led = solvent.Ledger.open(url, clock=clock)
    market_exchange(led, clock)
    mixed_session(led)
    first_edit = next(rec.position for rec in led.records() if edit(rec) != rec)
    seen = observe(led)
    led.close()
    forged = f"sqlite:///{tmp_path / 'forged.db'}"
    rewrite_journal(url, forged, edit)
    with pytest.raises(solvent.TamperDetected) as info:
        solvent.Ledger.open(forged)
    assert info.value.position == first_edit
    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    rewrite_journal(url, copy, lambda rec: rec)  # the control: an unedited copy replays
    with solvent.Ledger.open(copy) as ledger:
        ledger.verify()
        assert observe(ledger) == seen


def test_a_forged_reuse_of_a_submit_orders_ref_does_not_replay(tmp_path: Any) -> None:
    """A ref names one call: a later record claiming an earlier call's ref is forged."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    clock = Clock()
    led = solvent.Ledger.open(url, clock=clock)
    market_exchange(led, clock)
    led.submit_orders([led.order_row("c000", MARKET, "buy", qty="0.1", price="97000000")],
                      ref="r-1")
    buy(led, "c001", "0.1", "96000000")
    led.submit_orders([led.order_row("c002", MARKET, "buy", qty="0.1", price="95000000")],
                      ref="r-2")
    target = last_record(led)
    led.close()
    forged = f"sqlite:///{tmp_path / 'forged.db'}"
    rewrite_journal(url, forged, lambda rec: msgspec.structs.replace(
        rec, ref="r-1") if rec == target else rec)
    with pytest.raises(solvent.TamperDetected) as info:
        solvent.Ledger.open(forged)
    assert info.value.position == target.position


def test_a_bulk_record_written_before_call_fields_still_replays(tmp_path: Any) -> None:
    """``batch_rows`` / ``batch_index`` came later: a record without them decodes to 0/0
    and replays (without a ref there is nothing to check them against)."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    clock = Clock()
    led = solvent.Ledger.open(url, clock=clock)
    market_exchange(led, clock)
    led.submit_orders([led.order_row("c000", MARKET, "buy", qty="0.1", price="97000000")])
    rec = last_record(led)
    view = market_view(led)
    led.close()
    old_bytes = msgspec.msgpack.encode(msgspec.msgpack.decode(r.encoder.encode(rec))[:-2])
    old = msgspec.msgpack.decode(old_bytes, type=r.OrdersSubmitted)
    assert (old.batch_rows, old.batch_index) == (0, 0)
    assert msgspec.structs.replace(old, batch_rows=1) == rec
    legacy = f"sqlite:///{tmp_path / 'legacy.db'}"
    rewrite_journal(url, legacy, lambda x: old if x == rec else x)
    with solvent.Ledger.open(legacy) as again:
        again.verify()
        assert last_record(again) == old
        now = market_view(again)
        assert now.pop("head") != view.pop("head")  # the record's bytes changed
        assert now == view  # balances, books and open orders as before


def test_a_forged_order_id_out_of_sequence_does_not_replay(tmp_path: Any) -> None:
    """Order ids come from a counter: a journaled order with any other id is forged,
    even when everything else about it would replay."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    clock = Clock()
    led = solvent.Ledger.open(url, clock=clock)
    market_exchange(led, clock)
    buy(led, "c000", "0.1", "97000000")
    target = placed(led, sell(led, "c001", "0.1", "99000000").order_id)
    led.close()
    forged = f"sqlite:///{tmp_path / 'forged.db'}"
    rewrite_journal(url, forged, lambda rec: msgspec.structs.replace(
        rec, order_id=rec.order_id + 5) if rec == target else rec)
    with pytest.raises(solvent.TamperDetected) as info:
        solvent.Ledger.open(forged)
    assert info.value.position == target.position


@pytest.mark.parametrize("core", ["compiled", "python"])
def test_freezing_an_account_cancels_its_resting_orders_in_the_same_commit(
    clock: Clock, core: str
) -> None:
    led = solvent.Ledger.open("memory:", core=core, clock=clock)
    market_exchange(led, clock)
    ask = led.place_order("c000", MARKET, "sell", qty="0.2", price="99000000")
    bid = led.place_order("c000", MARKET, "buy", qty="0.1", price="97000000")
    version = led.version
    led.freeze_account("c000", reason="phantom balance under review")
    assert led.version == version + 1  # one commit
    recs = list(led.records(after_position=led.position - 3))
    assert [type(x).__name__ for x in recs] == ["OrderCancelled", "OrderCancelled",
                                                "AccountFrozen"]
    assert {x.order_id for x in recs[:2]} == {ask.order_id, bid.order_id}
    assert led.open_orders("c000") == []
    assert led.balance_minor("c000", "BTC")[1] == 0 and led.balance_minor("c000", "KRW")[1] == 0
    # nobody can trade against the frozen account any more
    o = led.place_order("c001", MARKET, "buy", qty="0.2", price="99000000", tif="IOC")
    assert o.fills == [] and o.status == "expired"
    led.verify()
