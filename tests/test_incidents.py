"""The incidents Solvent exists to make impossible, replayed as tests.

Bithumb, February 2026: a promotion meant to pay 2,000 KRW to each of 249 customers
was entered with the unit set to BTC. 2,000 BTC each was credited while the exchange
held far less. Here the company-owned BTC is 175: the payout must be refused at the
first credit, with a reason naming the treasury, the asset and both amounts, and leave
no trace but one journaled rejection. The intended KRW payout then succeeds.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

import solvent
from conftest import Clock, Exchange, assert_books_balance, balances, build_exchange, observe
from solvent import records as r

BTC = 10**8
CUSTOMERS = 249
PAYOUT = 2_000
TREASURY_BTC = 175
TREASURY_KRW = 1_000_000


@pytest.fixture
def url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'bithumb.db'}"


@pytest.fixture
def led(url: str, core: str) -> Iterator[solvent.Ledger]:
    ledger = solvent.Ledger.open(url, core=core, clock=Clock())
    yield ledger
    ledger.close()


@pytest.fixture
def ex(led: solvent.Ledger) -> Exchange:
    ex = build_exchange(led, customers=CUSTOMERS, treasury_btc=TREASURY_BTC,
                        treasury_krw=TREASURY_KRW, customer_btc="0.01")
    led.register_actor("promo-ops", "operator")
    assert len(ex.customers) == CUSTOMERS
    assert led.balance_minor("treasury", "BTC") == (TREASURY_BTC * BTC, 0)
    return ex


def pay_promotion(
    led: solvent.Ledger, ex: Exchange, asset: str, tag: str, attempted: list[int] | None = None
) -> list[int]:
    """The payout as it was run: one transfer per customer from the treasury.
    Appends the index of every credit attempted to ``attempted`` and returns it."""
    attempted = [] if attempted is None else attempted
    for i, customer in enumerate(ex.customers):
        attempted.append(i)
        led.transfer("treasury", customer, asset, PAYOUT, memo="promotion",
                     ref=f"{tag}-{i}", actor="promo-ops")
    return attempted


def assert_the_rejection(exc: solvent.InsufficientFunds) -> None:
    message = str(exc)
    assert exc.code == "insufficient_funds"
    for text in ("treasury", "BTC", "2000", "175"):
        assert text in message, (text, message)
    assert exc.details["account"] == "treasury"
    assert exc.details["asset"] == "BTC"
    assert exc.details["amount_minor"] == PAYOUT * BTC
    assert exc.details["available_minor"] == TREASURY_BTC * BTC
    assert exc.details["to_account"] == "c000"


def assert_one_rejection_record(
    new: list[r.JournalRecord], exc: solvent.InsufficientFunds, ref: str
) -> None:
    assert len(new) == 1, new
    rec = new[0]
    assert isinstance(rec, r.CommandRejected)
    assert (rec.command, rec.code, rec.account, rec.asset, rec.amount_minor) == (
        "transfer", "insufficient_funds", "treasury", "BTC", PAYOUT * BTC)
    assert (rec.actor, rec.ref) == ("promo-ops", ref)
    assert rec.message == str(exc)


def test_btc_payout_is_refused_at_the_first_credit(
    led: solvent.Ledger, ex: Exchange, url: str
) -> None:
    before = observe(led)
    attempted: list[int] = []
    with pytest.raises(solvent.InsufficientFunds) as info:
        pay_promotion(led, ex, "BTC", "promo", attempted)
    assert attempted == [0]  # refused at the first credit
    assert_the_rejection(info.value)

    after = observe(led)
    assert after["balances"] == before["balances"]
    assert after["totals"] == before["totals"]
    assert after["position"] == before["position"] + 1
    assert after["version"] == before["version"] + 1  # the rejection is durable
    new = list(led.records(after_position=before["position"]))
    assert_one_rejection_record(new, info.value, "promo-0")
    assert after["records"][: len(before["records"])] == before["records"]
    assert all(led.balance_minor(c, "BTC") == (BTC // 100, 0) for c in ex.customers)

    # it is in the store, not just in memory
    again = solvent.Ledger.open(url, core=led.core)
    try:
        assert list(again.records(after_position=before["position"])) == new
        assert balances(again) == before["balances"]
    finally:
        again.close()


def test_btc_payout_inside_a_group_commit_still_journals_the_rejection(
    led: solvent.Ledger, ex: Exchange, url: str
) -> None:
    before = observe(led)
    attempted: list[int] = []
    with pytest.raises(solvent.InsufficientFunds) as info, led.batch():
        # a legitimate KRW credit earlier in the same block is rolled back with it
        led.transfer("treasury", "c248", "KRW", PAYOUT, ref="krw-first", actor="promo-ops")
        pay_promotion(led, ex, "BTC", "promo", attempted)
    assert attempted == [0]
    assert_the_rejection(info.value)

    after = observe(led)
    assert after["balances"] == before["balances"]
    assert after["version"] == before["version"] + 1
    new = list(led.records(after_position=before["position"]))
    assert_one_rejection_record(new, info.value, "promo-0")
    assert new[0].position == before["position"] + 1
    # the rolled-back KRW transfer left no ref behind: it can run for real now
    receipt = led.transfer("treasury", "c248", "KRW", PAYOUT, ref="krw-first",
                           actor="promo-ops")
    assert not receipt.replayed
    led.verify()
    again = solvent.Ledger.open(url, core=led.core)
    try:
        assert observe(again) == observe(led)
    finally:
        again.close()


def test_bulk_btc_payout_refuses_every_item(led: solvent.Ledger, ex: Exchange) -> None:
    before = observe(led, journal=False)
    treasury = led.account_index("treasury")
    targets = [led.account_index(c) for c in ex.customers]
    result = led.transfer_many([treasury] * CUSTOMERS, targets, [led.asset_index("BTC")] *
                               CUSTOMERS, [PAYOUT * BTC] * CUSTOMERS, ref="bulk-promo",
                               actor="promo-ops")
    assert result.applied == 0
    assert result.rejected() == [(i, "insufficient_funds") for i in range(CUSTOMERS)]
    assert observe(led, journal=False)["balances"] == before["balances"]


def test_intended_krw_payout_succeeds(led: solvent.Ledger, ex: Exchange, url: str) -> None:
    with pytest.raises(solvent.InsufficientFunds):
        pay_promotion(led, ex, "BTC", "promo")
    with led.batch():
        attempted = pay_promotion(led, ex, "KRW", "promo-krw")
    assert len(attempted) == CUSTOMERS
    for customer in ex.customers:
        assert led.balance(customer, "KRW") == solvent.Balance(Decimal(PAYOUT), Decimal(0))
        assert led.balance(customer, "BTC").available == Decimal("0.01")
    assert led.balance_minor("treasury", "KRW") == (TREASURY_KRW - CUSTOMERS * PAYOUT, 0)
    assert led.balance_minor("treasury", "BTC") == (TREASURY_BTC * BTC, 0)
    krw = led.totals("KRW")
    assert (krw.custody_minor, krw.customer_minor, krw.company_minor) == (
        TREASURY_KRW, CUSTOMERS * PAYOUT, TREASURY_KRW - CUSTOMERS * PAYOUT)
    btc = led.totals("BTC")
    assert (btc.custody_minor, btc.customer_minor, btc.company_minor) == (
        TREASURY_BTC * BTC + CUSTOMERS * BTC // 100, CUSTOMERS * BTC // 100, TREASURY_BTC * BTC)
    # running the KRW payout again is a replay, not a second payment
    with led.batch():
        pay_promotion(led, ex, "KRW", "promo-krw")
    assert led.balance_minor("c000", "KRW") == (PAYOUT, 0)

    assert_books_balance(led)
    report = led.verify()
    assert report.records == led.position
    kinds = [type(rec).__name__ for rec in led.records()]
    assert kinds.count("CommandRejected") == 1
    assert kinds.count("Transferred") == CUSTOMERS
    expected = observe(led)
    led.close()
    again = solvent.Ledger.open(url, core=led.core)
    try:
        assert observe(again) == expected
        assert_books_balance(again)
        again.verify()
    finally:
        again.close()


def test_no_credit_can_exceed_what_the_company_owns(led: solvent.Ledger, ex: Exchange) -> None:
    """Paying out exactly what the treasury owns works; one satoshi more does not."""
    with led.batch():
        for i in range(175):
            led.transfer("treasury", ex.customers[i], "BTC", 1, ref=f"exact-{i}")
    assert led.balance_minor("treasury", "BTC") == (0, 0)
    with pytest.raises(solvent.InsufficientFunds) as info:
        led.transfer("treasury", ex.customers[0], "BTC", "0.00000001", ref="one-sat")
    assert "available 0.00000000 BTC" in str(info.value)
    t = led.totals("BTC")
    assert t.customer_minor == t.custody_minor
    assert_books_balance(led)
