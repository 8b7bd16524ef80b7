"""Properties of the market layer under random command streams (hypothesis).

A small exchange (``conftest.market_exchange`` with three customers holding 0.5 BTC and
50,000,000 KRW each, so that funds run short often) takes random streams of orders of
every type, tif, STP mode and post-only flag at prices a few ticks around a mid, with
random sizes and client order ids, mixed with cancels, amends, deposits, withdrawals
(requested, failed or completed), freezes, market halts and reference bands. Most
deposits are backed: the wallet is attested showing the coins, then they are credited;
the others are credited with no new attestation, and must be refused (``coverage``,
journaled) exactly when the wallet's last attestation does not show them.

After every command: every account's held balance equals what its open orders and
open withdrawals reserve, per asset; no balance is negative; custody == customer +
company per asset; a refused command changed nothing (position, balances, books, open
orders), but for an unbacked deposit's refusal, journaled and changing nothing else. At
the end ``verify()`` (a full replay, compared with the live state) passes, and a ledger
reopened from the SQLite file equals the live one.

The differential property runs the same stream on a compiled-core and a python-core
ledger with the same deterministic clock: identical outcomes, journals and books.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import solvent
from conftest import (
    MARKET,
    Clock,
    assert_books_balance,
    assert_holds_match_orders,
    attest_arrived,
    book_minor,
    market_exchange,
    market_view,
    observe,
)
from solvent import records as r
from solvent.amounts import from_minor

CUSTOMERS = ["c000", "c001", "c002"]
MID_TICKS = 98_000  # 98,000,000 KRW: one tick is 1,000 KRW, one lot 0.001 BTC
WALLET = {"BTC": "btc-cold", "KRW": "krw-bank"}

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- commands ---------------------------------------------------------------------------------

accounts = st.sampled_from(CUSTOMERS)
ticks = st.integers(MID_TICKS - 12, MID_TICKS + 12)
lots = st.one_of(st.integers(1, 60), st.integers(1, 700))
place = st.tuples(
    st.just("place"),
    accounts,
    st.sampled_from(["buy", "sell"]),
    st.sampled_from([("limit", "GTC")] * 5 + [("limit", "IOC"), ("limit", "FOK"),
                    ("market", "IOC"), ("market", "IOC"), ("market", "FOK"),
                    ("market", "GTC")]),  # the last one is refused
    st.sampled_from([False] * 7 + [True]),  # post-only now and then
    st.sampled_from(["none", "expire_taker", "expire_maker", "expire_both"]),
    lots,
    ticks,
    st.integers(1_000, 40_000_000),  # a market buy's budget in KRW
    st.sampled_from(["", "", "", "", "k-1", "k-2"]),  # client order ids, some reused
)
cancel = st.tuples(st.just("cancel"), st.integers(0, 50),
                   st.sampled_from([None, None, None, "c000"]))  # c000 cancels its own only
amend = st.tuples(st.just("amend"), st.integers(0, 50), st.none() | st.integers(1, 500),
                  st.none() | ticks)
deposit = st.tuples(st.just("deposit"), accounts, st.sampled_from(["BTC", "KRW"]),
                    st.integers(1, 10**8),
                    st.sampled_from([True] * 3 + [False]))  # backed: attested first
withdraw = st.tuples(st.just("withdraw"), accounts, st.sampled_from(["BTC", "KRW"]),
                     st.integers(1, 3 * 10**7))
settle_wd = st.tuples(st.just("settle_wd"), st.integers(0, 20), st.booleans())
freeze = st.tuples(st.just("freeze"), accounts)
halt = st.tuples(st.just("halt"))
resume = st.tuples(st.just("resume"))
band = st.tuples(st.just("band"), ticks, st.sampled_from(["0.0001", "0.0002", "0.05"]))



def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of ``choices``, each drawn in proportion to its weight."""
    total = sum(weight for weight, _ in choices)

    def pick(i: int) -> st.SearchStrategy[Any]:
        for weight, strategy in choices:
            if i < weight:
                return strategy
            i -= weight
        raise AssertionError(i)

    return st.integers(0, total - 1).flatmap(pick)


bulk = st.tuples(st.just("bulk"), st.lists(place, min_size=1, max_size=6))
command = weighted((60, place), (8, cancel), (10, amend), (5, deposit), (4, withdraw),
                   (4, settle_wd), (3, freeze), (1, halt), (3, resume), (4, band), (3, bulk))
commands = st.lists(command, min_size=20, max_size=80)


def open_order_ids(led: solvent.Ledger) -> list[int]:
    return sorted(o.order_id for a in CUSTOMERS for o in led.open_orders(a))


def open_withdrawals(led: solvent.Ledger) -> list[Any]:
    found = []
    for i in range(1, 10_000):
        try:
            wd = led.withdrawal(f"wd-{i}")
        except solvent.UnknownWithdrawal:
            return found
        if wd.status in ("pending_approval", "approved", "broadcast"):
            found.append(wd)
    return found


def btc_of_lots(lots: int) -> str:
    """``lots`` of 0.001 BTC as a decimal string (integer arithmetic, no float)."""
    return f"{lots // 1000}.{lots % 1000:03d}"


def order_args(cmd: tuple[Any, ...]) -> dict[str, Any]:
    """``place_order``'s arguments for a ``place`` command."""
    _, account, side, (type_, tif), post_only, stp, qty_lots, price_ticks, budget, cid = cmd
    kw: dict[str, Any] = {"account": account, "market": MARKET, "side": side, "type": type_,
                          "tif": tif, "post_only": post_only, "stp": stp,
                          "client_order_id": cid}
    if type_ == "limit":
        kw.update(qty=btc_of_lots(qty_lots), price=str(price_ticks * 1000))
    elif side == "sell":
        kw.update(qty=btc_of_lots(qty_lots))
    else:
        kw.update(quote_qty=str(budget))
    return kw


class Runner:
    """Applies commands to one ledger; refs and toggles are its own, so two runners
    given the same stream issue the same commands."""

    def __init__(self, led: solvent.Ledger, clock: Clock) -> None:
        self.led = led
        self.clock = clock
        self.n = 0

    def run(self, cmd: tuple[Any, ...]) -> Any:
        """The command's outcome: its result, or the code (a str) of its rejection."""
        try:
            return self._run(cmd)
        except solvent.Rejected as exc:
            event(f"refused {cmd[0]}: {exc.code}")
            return exc.code

    def _run(self, cmd: tuple[Any, ...]) -> Any:
        led = self.led
        self.n += 1
        kind = cmd[0]
        if kind == "place":
            order = led.place_order(**order_args(cmd))
            type_, tif = cmd[3]
            event(f"{type_} {tif}: {order.status}" + (" (replayed)" if order.replayed else ""))
            if order.fills:
                event("an order with fills")
            return order
        if kind == "bulk":  # one commit, outcomes per order, never raising
            rows = []
            for c in cmd[1]:
                args = order_args(c)
                del args["client_order_id"]  # the bulk path has none
                try:
                    rows.append(led.order_row(**args))
                except solvent.Rejected:  # refused before it is a row: send a bad row
                    rows.append((-1, led.market_id(MARKET), 0, 0, 0, 0, 0, 0, 0))
            with led.batch():
                results = led.submit_orders(rows)
            for code in results.codes():
                event(f"bulk: {code}")
            if results.accepted == 0:
                return "all refused"
            return list(results)
        if kind == "cancel":
            ids = open_order_ids(led)
            order_id = ids[cmd[1] % len(ids)] if ids else 10**6
            return led.cancel_order(order_id, actor=cmd[2])
        if kind == "amend":
            ids = open_order_ids(led)
            order_id = ids[cmd[1] % len(ids)] if ids else 10**6
            qty = None if cmd[2] is None else btc_of_lots(cmd[2])
            price = None if cmd[3] is None else str(cmd[3] * 1000)
            return led.amend_order(order_id, qty=qty, price=price)
        if kind == "deposit":
            _, account, asset, amount, backed = cmd
            if backed:  # the coins arrived: the wallet's attestation shows them
                attest_arrived(led, self.clock, WALLET[asset], arrived_minor=amount)
            receipt = led.deposit(account, asset, from_minor(amount, led.decimals(asset)),
                                  wallet=WALLET[asset], ref=f"d-{self.n}")
            event("deposit credited" + ("" if backed else " without a new attestation"))
            return receipt
        if kind == "withdraw":
            _, account, asset, amount = cmd
            withdrawal_id = led.request_withdrawal(
                account, asset, from_minor(amount, led.decimals(asset)), wallet=WALLET[asset],
                address="addr-1", ref=f"w-{self.n}", actor=account)
            return ("withdrawal", withdrawal_id)  # not a str: a str is a refusal's code
        if kind == "settle_wd":
            pending = open_withdrawals(led)
            if not pending:
                return None
            wd = pending[cmd[1] % len(pending)]
            if not cmd[2]:
                return led.fail_withdrawal(wd.withdrawal_id, reason="cancelled")
            with led.batch():
                if wd.status == "pending_approval":
                    led.approve_withdrawal(wd.withdrawal_id, actor="ops-2")
                if wd.status in ("pending_approval", "approved"):
                    led.broadcast_withdrawal(wd.withdrawal_id, txid=f"tx-{self.n}")
                return led.complete_withdrawal(wd.withdrawal_id)
        if kind == "freeze":
            if led.is_frozen(cmd[1]):
                return led.unfreeze_account(cmd[1], reason="cleared")
            return led.freeze_account(cmd[1], reason="review")
        if kind == "halt":
            return led.halt_market(MARKET, reason="pause")
        if kind == "resume":
            return led.resume_market(MARKET)
        if kind == "band":
            return led.set_reference_price(MARKET, str(cmd[1] * 1000), band=cmd[2])
        raise AssertionError(cmd)


def credit_room(led: solvent.Ledger, wallet: str) -> int:
    """What a deposit into ``wallet`` may credit without a new attestation, worked out
    from the reconciliation report and the journal: what is on chain by the last
    attestation (its balance, less the withdrawals broadcast since and not failed), less
    what the book expects there (the book, less withdrawals broadcast and not completed),
    plus the tolerance."""
    asset = next(a for a, w in WALLET.items() if w == wallet)
    [row] = [w for w in led.reconcile(asset).wallets if w.wallet == wallet]
    assert row.observed_minor is not None  # small_exchange attests every wallet
    records = list(led.records())
    attested = max(rec.position for rec in records
                   if isinstance(rec, r.Attested) and rec.wallet == wallet)
    sent = [led.withdrawal(rec.withdrawal_id) for rec in records
            if isinstance(rec, r.WithdrawalBroadcast) and rec.position > attested]
    sent_minor = sum(wd.amount_minor for wd in sent
                     if wd.wallet == wallet and wd.status != "failed")
    return (row.observed_minor - sent_minor
            - (book_minor(led, wallet) - row.withdrawals_in_flight_minor)
            + led.custody_policy(asset).tolerance_minor)


def small_exchange(led: solvent.Ledger, clock: Clock) -> None:
    market_exchange(led, clock, customer_btc="0.5", customer_krw=50_000_000)


@pytest.fixture(scope="module")
def tmp_dir(tmp_path_factory: Any) -> Iterator[Any]:
    yield tmp_path_factory.mktemp("markets")


_files = itertools.count()


@pytest.mark.parametrize("core", ["compiled", "python"])
@PROPERTY_SETTINGS
@given(stream=commands)
def test_holds_match_open_orders_and_books_balance_after_every_command(
    tmp_dir: Any, core: str, stream: list[tuple[Any, ...]]
) -> None:
    url = f"sqlite:///{tmp_dir / f'p-{core}-{next(_files)}.db'}"
    clock = Clock()
    led = solvent.Ledger.open(url, core=core, clock=clock)
    try:
        small_exchange(led, clock)
        runner = Runner(led, clock)
        for cmd in stream:
            before = market_view(led)
            room = credit_room(led, WALLET[cmd[2]]) if cmd[0] == "deposit" else 0
            outcome = runner.run(cmd)
            if cmd[0] == "deposit":  # refused exactly when the attestation lacks the coins
                backed, amount = cmd[4], cmd[3]
                assert (outcome == "coverage") == (not backed and amount > room), (
                    cmd, outcome, room)
            if outcome in ("all refused", "coverage"):  # journaled (the trace), no effect
                if outcome == "coverage":
                    [rejected] = led.records(after_position=before["position"])
                    assert isinstance(rejected, r.CommandRejected), rejected
                    assert (rejected.command, rejected.code, rejected.amount_minor) == (
                        "deposit", "coverage", cmd[3])
                after = market_view(led)
                for key in ("position", "version", "head"):
                    before.pop(key), after.pop(key)
                assert after == before, (cmd, outcome)
            elif isinstance(outcome, str):  # refused: nothing changed
                assert market_view(led) == before, (cmd, outcome)
            assert_books_balance(led)
            assert_holds_match_orders(led)
        led.verify()
        live = observe(led)
        books = led.book(MARKET, depth=50)
        orders = {a: led.open_orders(a) for a in CUSTOMERS}
        led.close()
        with solvent.Ledger.open(url, core=core, clock=clock) as reopened:
            assert observe(reopened) == live
            assert reopened.book(MARKET, depth=50) == books
            assert {a: reopened.open_orders(a) for a in CUSTOMERS} == orders
            reopened.verify()
    finally:
        led.close()


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(stream=commands)
def test_compiled_and_python_cores_write_identical_journals(
    stream: list[tuple[Any, ...]]
) -> None:
    results = []
    for core in ("compiled", "python"):
        clock = Clock()
        led = solvent.Ledger.open("memory:", core=core, clock=clock)
        small_exchange(led, clock)
        runner = Runner(led, clock)
        outcomes = [runner.run(cmd) for cmd in stream]
        results.append((outcomes, list(led.records()), led.book(MARKET, depth=50),
                        market_view(led), clock.readings))
        led.close()
    compiled, python = results
    assert compiled[0] == python[0]  # outcomes, command by command
    assert compiled[1] == python[1]  # the journal, record by record
    assert compiled[2:] == python[2:]

