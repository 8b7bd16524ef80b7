"""``solvent demo``: the Bithumb payout of February 2026, replayed against Solvent.

A small exchange on an embedded SQLite file: BTC and KRW, a few thousand
customers with deposits, and company funds (175 BTC of its own, a KRW
promotion budget). The promotion meant to pay 2,000 KRW to each of 249
customers is run as it happened, with the unit set to BTC: the very first
credit is refused because the company's BTC cannot cover it, and the refusal
is journaled. The intended KRW payout then succeeds. Finally the ledger is
closed, reopened from disk, its hash chain verified, and every balance compared.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from solvent import records as r
from solvent.amounts import format_minor
from solvent.errors import Rejected
from solvent.ledger import Ledger

BTC_DECIMALS = 8
KRW_DECIMALS = 0
COMPANY_BTC = 175
EXCHANGE_BTC = 42_600  # what the exchange held in all
WINNERS = 249
PROMO_KRW_EACH = 2_000
PROMO_BUDGET_KRW = 10_000_000


def _say(text: str = "") -> None:
    print(text, flush=True)


@contextmanager
def _step(title: str) -> Iterator[None]:
    start = time.perf_counter()
    _say(f"\n== {title}")
    yield
    _say(f"   ({time.perf_counter() - start:.2f} s)")


def _progress(done: int, total: int, label: str) -> None:
    if sys.stdout.isatty():
        print(f"\r   {label}: {done:,}/{total:,}", end="" if done < total else "\n", flush=True)
    elif done == total:
        _say(f"   {label}: {done:,}/{total:,}")


def _btc(minor: int) -> str:
    return format_minor(minor, BTC_DECIMALS) + " BTC"


def _krw(minor: int) -> str:
    return format_minor(minor, KRW_DECIMALS) + " KRW"


def _all_balances(led: Ledger) -> dict[tuple[str, str], tuple[int, int]]:
    out = {}
    for name in led.accounts():
        for asset in led.assets():
            av, hd = led.balance_minor(name, asset)
            if av or hd:
                out[(name, asset)] = (av, hd)
    return out


def run_demo(path: str = "solvent-demo.db", customers: int = 3000, core: str = "compiled") -> int:
    """Run the demo on a fresh SQLite file at ``path``; return an exit code."""
    if customers < WINNERS:
        _say(f"solvent demo: needs at least {WINNERS} customers")
        return 2
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    url = f"sqlite:///{path}"
    rng = random.Random(20260206)
    _say("Solvent demo: the Bithumb promotion of 6 February 2026, replayed.")
    _say(f"Store: {url} (core: {core})")

    led = Ledger.open(url, core=core)
    names = [f"cust-{i:05d}" for i in range(customers)]

    with _step(f"Opening a small exchange: BTC and KRW, {customers:,} customers"), led.batch():
        led.register_actor("ops-kim", "operator")
        led.register_asset("BTC", BTC_DECIMALS)
        led.register_asset("KRW", KRW_DECIMALS)
        led.open_wallet("btc-cold", asset="BTC")
        led.open_wallet("btc-hot", asset="BTC")
        led.open_wallet("krw-bank", asset="KRW")
        led.open_account("treasury", kind="company")
        for i, name in enumerate(names, 1):
            led.open_account(name)
            if i % 500 == 0 or i == customers:
                _progress(i, customers, "accounts opened")

    customer_btc_minor = (EXCHANGE_BTC - COMPANY_BTC) * 10**BTC_DECIMALS
    with _step("Confirmed deposits (one commit per 1,000 customers)"):
        weights = [rng.paretovariate(1.2) for _ in names]
        scale = customer_btc_minor / sum(weights)
        shares = [int(w * scale) for w in weights]
        shares[0] += customer_btc_minor - sum(shares)  # exact total, no rounding lost
        for start in range(0, customers, 1000):
            with led.batch():
                for i in range(start, min(start + 1000, customers)):
                    wallet = "btc-cold" if i % 4 else "btc-hot"
                    led.deposit(names[i], "BTC", _decimal(shares[i]), wallet=wallet,
                                ref=f"btc-tx-{i}")
                    led.deposit(names[i], "KRW", rng.randrange(10_000, 5_000_000),
                                wallet="krw-bank", ref=f"krw-wire-{i}")
            _progress(min(start + 1000, customers), customers, "customers funded")
        with led.batch():
            led.deposit("treasury", "BTC", COMPANY_BTC, wallet="btc-cold", ref="company-btc")
            led.deposit("treasury", "KRW", PROMO_BUDGET_KRW, wallet="krw-bank",
                        ref="promo-budget-krw")
        t = led.totals("BTC")
        _say(f"   BTC custody  {_btc(t.custody_minor):>28}")
        _say(f"   customers    {_btc(t.customer_minor):>28}")
        _say(f"   company      {_btc(t.company_minor):>28}")

    winners = rng.sample(names, WINNERS)
    before = _all_balances(led)
    position_before = led.position
    with _step(f"The promotion as it ran: {PROMO_KRW_EACH:,} each to {WINNERS} winners, "
               "unit set to BTC"):
        _say(f"   intended: {PROMO_KRW_EACH * WINNERS:,} KRW in all; "
             f"as configured: {PROMO_KRW_EACH * WINNERS:,} BTC "
             f"(the exchange holds {EXCHANGE_BTC:,} BTC)")
        paid = 0
        try:
            for i, name in enumerate(winners):
                led.transfer("treasury", name, "BTC", PROMO_KRW_EACH, memo="promo 2026-02",
                             ref=f"promo-btc-{i}", actor="ops-kim")
                paid += 1
        except Rejected as exc:
            _say(f"   REJECTED at credit {paid + 1} of {WINNERS} ({exc.code}):")
            _say(f"   {exc}")
        else:
            _say("   !! the payout went through: this must never happen")
            return 1
        trace = [rec for rec in led.records(after_position=position_before)]
        _say(f"   journal trace: {len(trace)} record(s)")
        for rec in trace:
            if isinstance(rec, r.CommandRejected):
                _say(f"     #{rec.position} command_rejected by {rec.actor} ref={rec.ref}: "
                     f"{rec.code}")
        if _all_balances(led) != before:
            _say("   !! balances changed")
            return 1
        _say("   no balance changed; no phantom BTC exists, so none can trade or leave")

    with _step(f"The intended payout: {PROMO_KRW_EACH:,} KRW to each winner"):
        with led.batch():
            for i, name in enumerate(winners):
                led.transfer("treasury", name, "KRW", PROMO_KRW_EACH, memo="promo 2026-02",
                             ref=f"promo-krw-{i}", actor="ops-kim")
        av, _ = led.balance_minor("treasury", "KRW")
        _say(f"   paid {_krw(PROMO_KRW_EACH * WINNERS)}; promotion budget left {_krw(av)}")
        for asset in ("BTC", "KRW"):
            t = led.totals(asset)
            ok = t.custody_minor == t.customer_minor + t.company_minor
            _say(f"   {asset}: custody = customers + company: {'holds' if ok else 'BROKEN'}")
        led.check_invariants()

    live = _all_balances(led)
    head = led.head_digest
    position = led.position
    with _step("Close, reopen from disk, verify the hash chain, compare balances"):
        led.close()
        reopened = Ledger.open(url, core=core)
        report = reopened.verify(expect_head=head)
        _say(f"   verified {report.batches} batches, {report.records:,} records, "
             f"{report.snapshots_checked} snapshot(s); head {report.head_digest[:16]}…")
        again = _all_balances(reopened)
        same = again == live and reopened.position == position
        _say(f"   {len(again):,} balances after reopening: "
             f"{'identical' if same else 'DIFFERENT'} (position {reopened.position:,})")
        sample = winners[0]
        b = reopened.balance(sample, "KRW")
        _say(f"   e.g. {sample}: {b.available} KRW available")
        reopened.close()
    _say(f"\nDone. Inspect the journal with: solvent verify {url}")
    return 0 if same else 1


def _decimal(minor: int) -> str:
    whole, frac = divmod(minor, 10**BTC_DECIMALS)
    return f"{whole}.{frac:0{BTC_DECIMALS}d}"
