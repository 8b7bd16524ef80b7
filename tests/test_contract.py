"""The store contract: every backend (memory, SQLite, PostgreSQL) runs these tests, with
both balance cores.

Persistence-only behaviour (reopen, a second writer) is skipped on ``memory:``, which
keeps nothing after the ledger closes and cannot be shared by two ledgers.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import psycopg
import pytest

import solvent
from conftest import (
    CLOCK_START_NS,
    MARKET,
    Clock,
    assert_books_balance,
    balances,
    build_exchange,
    drop_postgres_tables,
    is_persistent,
    market_exchange,
    observe,
    postgres_base_url,
    require_postgres,
    with_prefix,
)
from solvent import records as r
from solvent.journal import GENESIS_DIGEST, StoredBatch
from solvent.state import snapshot_decoder
from solvent.store import JournalStore, drop_postgres_store, postgres_conninfo

BTC = 10**8  # satoshi per BTC


def open_ledger(url: str, core: str, **kwargs: object) -> solvent.Ledger:
    kwargs.setdefault("clock", Clock())
    return solvent.Ledger.open(url, core=core, **kwargs)  # type: ignore[arg-type]


def skip_unless_persistent(url: str) -> None:
    if not is_persistent(url):
        pytest.skip("memory: keeps nothing once closed and cannot be shared by two ledgers")


def reopened_with_each_core(url: str) -> Iterator[solvent.Ledger]:
    """The store at ``url`` opened once with each core, in turn (closed after each)."""
    for reopen_core in ("compiled", "python"):
        again = solvent.Ledger.open(url, core=reopen_core)
        try:
            yield again
        finally:
            again.close()


@pytest.fixture
def led(store_url: str, core: str) -> Iterator[solvent.Ledger]:
    ledger = open_ledger(store_url, core)
    yield ledger
    ledger.close()


def test_open_reports_backend_and_core(led: solvent.Ledger, store_url: str, core: str) -> None:
    assert led.backend == store_url.split(":")[0]
    assert led.core == core
    assert (led.position, led.version) == (0, 0)
    assert list(led.records()) == []


def test_register_open_deposit_transfer_balances(led: solvent.Ledger) -> None:
    ex = build_exchange(led, customers=2)
    alice, bob = ex.customers
    assert led.assets() == ["BTC", "KRW"]
    assert led.accounts() == ["treasury", alice, bob, "btc-cold", "krw-bank"]
    assert led.decimals("BTC") == 8 and led.decimals("KRW") == 0

    dep = led.deposit(alice, "BTC", "1.25", wallet="btc-cold", ref="tx-1")
    assert dep == solvent.Receipt(position=led.position, ref="tx-1", replayed=False)
    led.deposit(bob, "KRW", 50_000, wallet="krw-bank", ref="wire-1")
    tr = led.transfer(alice, bob, "BTC", Decimal("0.25"), memo="gift", ref="t-1")
    assert tr.position == dep.position + 2 == led.position

    assert led.balance(alice, "BTC") == solvent.Balance(Decimal("1.00000000"), Decimal("0E-8"))
    assert led.balance(bob, "BTC").available == Decimal("0.25")
    assert led.balance(bob, "KRW") == solvent.Balance(Decimal(50_000), Decimal(0))
    assert led.balance_minor(alice, "BTC") == (100_000_000, 0)
    assert led.balance_minor("btc-cold", "BTC") == (125_000_000, 0)
    assert led.totals("BTC") == solvent.Totals("BTC", 125_000_000, 125_000_000, 0)
    assert led.totals("KRW") == solvent.Totals("KRW", 50_000, 50_000, 0)
    assert_books_balance(led)

    last = list(led.records())[-1]
    assert isinstance(last, r.Transferred)
    assert (last.from_account, last.to_account, last.asset, last.amount_minor, last.memo) == (
        alice, bob, "BTC", 25_000_000, "gift")
    assert (last.actor, last.ref, last.position) == ("system", "t-1", tr.position)


def test_every_record_carries_position_time_actor_ref_kind(led: solvent.Ledger) -> None:
    ex = build_exchange(led, customers=2, treasury_btc=3)
    led.register_actor("ops-1", "operator")
    led.transfer("treasury", ex.customers[0], "BTC", 1, ref="promo-1", actor="ops-1")
    led.freeze_account(ex.customers[1], reason="court order 17", actor="ops-1")
    recs = list(led.records())
    assert [rec.position for rec in recs] == list(range(1, led.position + 1))
    times = [rec.time_ns for rec in recs]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert all(rec.actor in ("system", "ops-1") for rec in recs)
    kinds = {type(rec).__name__ for rec in recs}
    assert {"AssetRegistered", "AccountOpened", "WalletOpened", "Deposited",
            "ActorRegistered", "Transferred", "AccountFrozen"} <= kinds
    transfer, freeze = recs[-2], recs[-1]
    assert isinstance(transfer, r.Transferred)
    assert (transfer.actor, transfer.ref) == ("ops-1", "promo-1")
    assert isinstance(freeze, r.AccountFrozen)
    assert (freeze.actor, freeze.account, freeze.reason) == (
        "ops-1", ex.customers[1], "court order 17")
    # stored positionally: the tag, then the header, then the record's own fields
    encoded = msgspec.msgpack.decode(r.encoder.encode(freeze))
    assert encoded == ["account_frozen", freeze.position, freeze.time_ns, "ops-1", "",
                       ex.customers[1], "court order 17"]
    assert r.record_to_dict(freeze) == {
        "kind": "account_frozen", "position": freeze.position, "time_ns": freeze.time_ns,
        "actor": "ops-1", "ref": "", "account": ex.customers[1], "reason": "court order 17"}


def test_deposit_is_idempotent_on_wallet_and_ref(led: solvent.Ledger) -> None:
    ex = build_exchange(led, customers=2)
    alice = ex.customers[0]
    first = led.deposit(alice, "BTC", "0.5", wallet="btc-cold", ref="txid-9")
    before = observe(led)
    again = led.deposit(alice, "BTC", Decimal("0.50000000"), wallet="btc-cold", ref="txid-9")
    assert again == solvent.Receipt(position=first.position, ref="txid-9", replayed=True)
    assert observe(led) == before
    assert led.balance_minor(alice, "BTC") == (50_000_000, 0)

    # the same ref on another wallet is another deposit
    led.open_wallet("btc-hot", asset="BTC")
    other = led.deposit(alice, "BTC", "0.5", wallet="btc-hot", ref="txid-9")
    assert not other.replayed and other.position == led.position
    assert led.balance_minor(alice, "BTC") == (100_000_000, 0)


def test_transfer_is_idempotent_on_ref(led: solvent.Ledger) -> None:
    ex = build_exchange(led, customers=2, customer_btc=1)
    alice, bob = ex.customers
    first = led.transfer(alice, bob, "BTC", "0.1", ref="pay-1", memo="rent")
    before = observe(led)
    again = led.transfer(alice, bob, "BTC", "0.10", ref="pay-1", memo="rent")
    assert again == solvent.Receipt(position=first.position, ref="pay-1", replayed=True)
    assert observe(led) == before
    assert led.balance_minor(bob, "BTC") == (110_000_000, 0)


@pytest.mark.parametrize(
    ("command", "args", "kwargs"),
    [
        ("deposit", ("c000", "BTC", "0.6"), {"wallet": "btc-cold", "ref": "d-1"}),
        ("deposit", ("c001", "BTC", "0.5"), {"wallet": "btc-cold", "ref": "d-1"}),
        ("transfer", ("c000", "c001", "BTC", "0.2"), {"ref": "t-1"}),
        ("transfer", ("c001", "c000", "BTC", "0.1"), {"ref": "t-1"}),
        ("transfer", ("c000", "c001", "BTC", "0.1"), {"ref": "t-1", "memo": "other"}),
        ("transfer", ("c000", "c001", "KRW", 1), {"ref": "t-1"}),
    ],
)
def test_same_ref_with_other_content_is_duplicate_ref(
    led: solvent.Ledger, command: str, args: tuple[object, ...], kwargs: dict[str, str]
) -> None:
    build_exchange(led, customers=2, customer_btc=1)
    led.deposit("c000", "KRW", 5, wallet="krw-bank", ref="k-1")
    led.deposit("c000", "BTC", "0.5", wallet="btc-cold", ref="d-1")
    led.transfer("c000", "c001", "BTC", "0.1", ref="t-1")
    before = observe(led)
    with pytest.raises(solvent.DuplicateRef) as info:
        getattr(led, command)(*args, **kwargs)
    assert info.value.code == "duplicate_ref"
    assert kwargs["ref"] in str(info.value)
    assert observe(led) == before


def test_records_after_any_position_are_the_journal_from_there(led: solvent.Ledger) -> None:
    """``records(after_position=p)`` starts at the batch that holds ``p + 1`` (found by
    bisecting the batches, not by reading the journal up to it) and is exactly the
    journal's records after ``p``, for every ``p``, over batches of 1 to 40 records."""
    ex = build_exchange(led, customers=4, customer_btc=1)
    a, b, *_ = ex.customers
    for n, size in enumerate([1, 3, 1, 1, 40, 2, 1, 7, 1, 1, 1, 25, 1]):
        with led.batch():
            for i in range(size):
                led.transfer(a, b, "BTC", "0.0001", ref=f"r-{n}-{i}")
        a, b = b, a
    every = list(led.records())
    assert [rec.position for rec in every] == list(range(1, led.position + 1))
    for p in range(-2, led.position + 3):
        assert list(led.records(after_position=p)) == [x for x in every if x.position > p], p
    with pytest.raises(solvent.InvalidArgument, match="after_position must be an int"):
        led.records(after_position="3")  # type: ignore[arg-type]


def test_batch_commits_many_commands_at_once(led: solvent.Ledger, store_url: str) -> None:
    ex = build_exchange(led, customers=5, treasury_krw=1_000)
    assert led.version == 1  # build_exchange is one group commit
    start = led.position
    with led.batch():
        for i, cust in enumerate(ex.customers):
            led.transfer("treasury", cust, "KRW", 100, ref=f"promo-{i}")
        # commands inside the block see the earlier ones
        assert led.balance_minor("treasury", "KRW") == (500, 0)
        assert list(led.records(after_position=start)) == []  # not committed yet
    assert led.version == 2
    assert led.position == start + 5
    committed = list(led.records(after_position=start))
    assert [rec.ref for rec in committed] == [f"promo-{i}" for i in range(5)]
    if is_persistent(store_url):
        again = solvent.Ledger.open(store_url, core=led.core)
        try:
            assert balances(again) == balances(led)
        finally:
            again.close()


def test_batch_is_all_or_nothing(led: solvent.Ledger, store_url: str) -> None:
    ex = build_exchange(led, customers=3, treasury_krw=1_000, customer_btc="0.5")
    before = observe(led)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), led.batch():
        led.deposit(ex.customers[0], "BTC", "2", wallet="btc-cold", ref="in-batch-1")
        led.transfer(ex.customers[0], ex.customers[1], "BTC", "2.1", ref="in-batch-2")
        led.transfer("treasury", ex.customers[2], "KRW", 999, ref="in-batch-3")
        led.freeze_account(ex.customers[1], reason="in batch")
        led.open_account("late-customer")
        led.transfer_many([0], [1], [1], [1], ref="in-batch-4")
        assert led.balance_minor(ex.customers[1], "BTC") == (260_000_000, 0)
        raise Boom("the caller fails before the block ends")
    assert observe(led) == before
    assert "late-customer" not in led.accounts()
    assert not led.is_frozen(ex.customers[1])
    # the refs were not consumed: the same commands can run again
    again = led.deposit(ex.customers[0], "BTC", "2", wallet="btc-cold", ref="in-batch-1")
    assert not again.replayed and again.position == before["position"] + 1
    led.verify()
    if is_persistent(store_url):
        other = solvent.Ledger.open(store_url, core=led.core)
        try:
            assert observe(other) == observe(led)
        finally:
            other.close()


def test_nested_batch_that_raises_takes_no_effect(led: solvent.Ledger) -> None:
    build_exchange(led, customers=1, treasury_krw=100)
    with led.batch():
        with pytest.raises(RuntimeError), led.batch():
            led.transfer("treasury", "c000", "KRW", 10, ref="inner")
            raise RuntimeError("the nested block fails")
        led.transfer("treasury", "c000", "KRW", 1, ref="outer")
    assert led.balance_minor("c000", "KRW") == (1, 0)


def test_rejection_caught_inside_batch_keeps_the_other_commands(led: solvent.Ledger) -> None:
    ex = build_exchange(led, customers=2, customer_btc=1)
    alice, bob = ex.customers
    with led.batch():
        led.transfer(alice, bob, "BTC", "0.5", ref="ok-1")
        with pytest.raises(solvent.InsufficientFunds):
            led.transfer(alice, bob, "BTC", "0.6", ref="too-much")
        led.transfer(bob, alice, "BTC", "0.25", ref="ok-2")
    assert led.balance_minor(alice, "BTC") == (75_000_000, 0)
    assert led.balance_minor(bob, "BTC") == (125_000_000, 0)
    assert [rec.ref for rec in led.records(after_position=led.position - 2)] == ["ok-1", "ok-2"]


def test_freeze_and_unfreeze_are_journaled(led: solvent.Ledger) -> None:
    ex = build_exchange(led, customers=2, customer_btc=1)
    alice, bob = ex.customers
    led.freeze_account(alice, reason="phantom balance under review")
    assert led.is_frozen(alice)
    with pytest.raises(solvent.AccountFrozen):
        led.transfer(alice, bob, "BTC", "0.1", ref="t-frozen")
    led.transfer(bob, alice, "BTC", "0.1", ref="t-credit")  # credits still arrive
    led.unfreeze_account(alice, reason="review closed")
    led.transfer(alice, bob, "BTC", "0.1", ref="t-after")
    kinds = [(type(rec).__name__, getattr(rec, "reason", None))
             for rec in led.records(after_position=led.position - 4)]
    assert kinds == [
        ("AccountFrozen", "phantom balance under review"),
        ("Transferred", None),
        ("AccountUnfrozen", "review closed"),
        ("Transferred", None),
    ]


def test_verify_passes_on_a_clean_store(led: solvent.Ledger) -> None:
    ex = build_exchange(led, customers=3, treasury_btc=10)
    for i, cust in enumerate(ex.customers):
        led.transfer("treasury", cust, "BTC", 1, ref=f"p-{i}")
    led.transfer_many([1, 2], [2, 3], [0, 0], [10, 20], ref="bulk-1")
    report = led.verify()
    assert report.batches == led.version == 5
    assert report.records == led.position == len(list(led.records()))
    assert report.head_digest == led.head_digest
    assert len(bytes.fromhex(report.head_digest)) == 32
    assert led.verify(expect_head=led.head_digest) == report
    with pytest.raises(solvent.TamperDetected) as info:
        led.verify(expect_head="00" * 32)
    assert info.value.version == led.version


def test_verify_inside_batch_is_refused(led: solvent.Ledger) -> None:
    build_exchange(led, customers=1)
    with led.batch():
        led.open_account("x")
        with pytest.raises(solvent.InvalidState):
            led.verify()


def test_closed_ledger_refuses_commands_and_reads_of_the_journal(
    store_url: str, core: str
) -> None:
    led = open_ledger(store_url, core)
    build_exchange(led, customers=1)
    led.close()
    led.close()  # closing twice is harmless
    with pytest.raises(solvent.LedgerClosed):
        led.open_account("late")
    with pytest.raises(solvent.LedgerClosed):
        led.verify()
    with pytest.raises(solvent.LedgerClosed):
        list(led.records())


def test_close_and_reopen_gives_identical_state(store_url: str, core: str) -> None:
    skip_unless_persistent(store_url)
    led = open_ledger(store_url, core)
    ex = build_exchange(led, customers=4, treasury_btc=5, treasury_krw=10_000,
                        customer_btc="0.001")
    for i, cust in enumerate(ex.customers):
        led.transfer("treasury", cust, "KRW", 2_000, ref=f"krw-{i}")
    led.freeze_account(ex.customers[0], reason="kyc")
    led.transfer_many([2, 3], [3, 4], [0, 0], [1, 999_999_999], ref="bulk-1")
    before = observe(led)
    led.close()
    for again in reopened_with_each_core(store_url):
        assert observe(again) == before
        assert again.verify().head_digest == before["head"]
    # the reopened ledger continues the same journal
    again = solvent.Ledger.open(store_url, core=core)
    try:
        again.transfer(ex.customers[1], ex.customers[2], "BTC", "0.0001", ref="after")
        assert again.version == before["version"] + 1
        assert again.verify().records == before["position"] + 1
    finally:
        again.close()


def test_reopen_sees_every_committed_command(store_url: str, core: str) -> None:
    skip_unless_persistent(store_url)
    led = open_ledger(store_url, core)
    ex = build_exchange(led, customers=2, customer_btc=1)
    led.transfer(ex.customers[0], ex.customers[1], "BTC", "0.3", ref="t-1")
    expected = observe(led)
    led.close()
    for again in reopened_with_each_core(store_url):
        assert observe(again) == expected
        assert again.verify().records == expected["position"]


def test_snapshots_are_written_and_checked(store_url: str, core: str) -> None:
    led = open_ledger(store_url, core, snapshot_every=4)
    ex = build_exchange(led, customers=3, customer_btc=2)
    for i in range(10):
        a, b = ex.customers[i % 3], ex.customers[(i + 1) % 3]
        led.transfer(a, b, "BTC", "0.01", ref=f"t-{i}")
    report = led.verify()
    # the group commit of build_exchange (11 records), then every 4th transfer, snapshot
    assert report.snapshots_checked >= 3
    assert_books_balance(led)
    if is_persistent(store_url):
        led.transfer(ex.customers[0], ex.customers[1], "BTC", "0.01", ref="tail-1")
        # a second ledger opens from the last snapshot plus the tail after it
        other = solvent.Ledger.open(store_url, core=core)
        try:
            assert observe(other) == observe(led)
            assert other.verify().snapshots_checked == report.snapshots_checked
        finally:
            other.close()
    led.close()


def test_snapshot_every_counts_from_the_last_snapshot_not_from_open(
    store_url: str, core: str
) -> None:
    """A process that always stops before ``close()`` and commits fewer than
    ``snapshot_every`` records per run took no snapshot ever: the period counted from
    the position at open. It counts from the snapshot the state was loaded from."""
    skip_unless_persistent(store_url)
    led = open_ledger(store_url, core, snapshot_every=10)
    ex = build_exchange(led, customers=2, customer_btc=1)  # 9 records, one commit
    led.snapshot()
    at = led.position
    led.close()
    for run in range(3):  # each run commits 4 records and dies (no close: no snapshot)
        led = open_ledger(store_url, core, snapshot_every=10)
        for i in range(4):
            led.transfer(ex.customers[i % 2], ex.customers[(i + 1) % 2], "BTC", "0.01",
                         ref=f"r{run}-{i}")
        led._store.close()  # the process ends here
    store = JournalStore(store_url, readonly=True)
    try:
        positions = [snapshot_decoder.decode(p).position for _v, p in store.snapshots_desc()]
    finally:
        store.close()
    # the 10th record after the snapshot at ``at`` was committed in the third run
    assert positions == [at + 10, at], positions
    # a ledger that only reads writes no snapshot on close, however long the tail
    open_ledger(store_url, core, snapshot_every=10).close()
    store = JournalStore(store_url, readonly=True)
    try:
        assert len(list(store.snapshots_desc())) == 2
    finally:
        store.close()


def test_snapshot_then_reopen_with_each_core(store_url: str, core: str) -> None:
    skip_unless_persistent(store_url)
    led = open_ledger(store_url, core, snapshot_every=3)
    ex = build_exchange(led, customers=2, treasury_btc=1)
    for i in range(7):
        led.transfer("treasury", ex.customers[i % 2], "BTC", "0.01", ref=f"t-{i}")
    led.snapshot()
    expected = observe(led)
    led.close()
    for again in reopened_with_each_core(store_url):
        assert observe(again) == expected
        assert again.verify().snapshots_checked > 0


@pytest.mark.parametrize("snapshot", [False, True], ids=["replayed", "from-snapshot"])
def test_transfer_refs_survive_reopen(store_url: str, core: str, snapshot: bool) -> None:
    """The idempotency index is rebuilt on open (by replay, or from a snapshot): a retry
    gets the original receipt, other content under the ref is DuplicateRef naming what
    the ref was used for; non-ASCII refs and memos included."""
    skip_unless_persistent(store_url)
    led = open_ledger(store_url, core)
    ex = build_exchange(led, customers=3, customer_btc=1)
    a, b, c = ex.customers
    first = led.transfer(a, b, "BTC", "0.1", ref="loyer-é", memo="mars é ✓")
    plain = led.transfer(b, c, "BTC", "0.2", ref="t-2")
    if snapshot:
        led.snapshot()
    expected = observe(led)
    led.close()
    for again in reopened_with_each_core(store_url):
        retry = again.transfer(a, b, "BTC", "0.10", ref="loyer-é", memo="mars é ✓")
        assert retry == solvent.Receipt(position=first.position, ref="loyer-é",
                                        replayed=True)
        assert again.transfer(b, c, "BTC", "0.2", ref="t-2").position == plain.position
        with pytest.raises(solvent.DuplicateRef) as info:
            again.transfer(a, b, "BTC", "0.1", ref="loyer-é", memo="avril")
        assert all(s in str(info.value) for s in ("loyer-é", "10000000", "BTC", a, b))
        with pytest.raises(solvent.DuplicateRef):
            again.transfer(a, c, "BTC", "0.2", ref="t-2")
        assert observe(again) == expected


def _two_writers(url: str, core: str) -> tuple[solvent.Ledger, solvent.Ledger]:
    first = open_ledger(url, core)
    build_exchange(first, customers=2, customer_btc=1)
    second = open_ledger(url, core)
    assert observe(second) == observe(first)
    return first, second


def test_second_writer_is_fenced(store_url: str, core: str) -> None:
    skip_unless_persistent(store_url)
    first, second = _two_writers(store_url, core)
    try:
        first.deposit("c000", "BTC", "1", wallet="btc-cold", ref="first-1")
        expected = observe(first)
        with pytest.raises(solvent.WriterFenced) as info:
            second.deposit("c001", "BTC", "7", wallet="btc-cold", ref="second-1")
        assert isinstance(info.value, solvent.StoreError)
        # the fenced command is discarded; the second ledger reloaded the store
        assert observe(second) == expected
        assert second.balance_minor("c001", "BTC") == (100_000_000, 0)
        assert all(rec.ref != "second-1" for rec in second.records())
        second.verify()
        first.verify()
        # one chain: versions 1..n, positions 1..m, no record from the fenced command
        third = solvent.Ledger.open(store_url, core=core)
        try:
            assert observe(third) == expected
            report = third.verify()
            assert (report.batches, report.records) == (first.version, first.position)
        finally:
            third.close()
    finally:
        first.close()
        second.close()


def test_a_ledger_behind_the_store_verifies_against_it_at_its_own_version(
    store_url: str, core: str
) -> None:
    """Another writer moving the store on is not tampering. ``verify()`` on a ledger it
    had left behind (``solvent proof publish`` beside a running exchange does just that)
    said TAMPERED ("the store holds 3057 batches but this ledger committed 3048"); it
    now verifies the whole store and compares this ledger with it at its own version,
    without taking the newer batches in."""
    skip_unless_persistent(store_url)
    first, second = _two_writers(store_url, core)
    try:
        behind = observe(second, journal=False)  # (records() reads the store itself)
        version = second.version
        first.deposit("c000", "BTC", "1", wallet="btc-cold", ref="first-1")
        first.transfer("c000", "c001", "BTC", "0.5", ref="first-2")
        report = second.verify()
        assert report.batches == first.version == version + 2
        assert observe(second, journal=False) == behind  # still as it was
        first.verify()
        with pytest.raises(solvent.WriterFenced):  # and a writer behind is still fenced
            second.deposit("c001", "BTC", "7", wallet="btc-cold", ref="second-1")
        assert observe(second) == observe(first)
    finally:
        first.close()
        second.close()


def fresh_view(url: str, core: str) -> dict[str, object]:
    """What a ledger opened now on ``url`` shows."""
    with solvent.Ledger.open(url, core=core) as led:
        return observe(led, journal=False)


def test_a_savepoint_rolled_back_after_another_writer_committed_fences_the_batch(
    store_url: str, core: str
) -> None:
    """An inner ``batch()`` that raised after another writer had committed re-applied the
    outer block's pending records on the store's newer state: ``TamperDetected``
    ("position 9 follows position 9"), a tamper verdict on an honest store, in place of
    the caller's own exception (the concurrency probe: 19 times in one hammer run). Now
    the caller's exception reaches its ``except``, the batch is fenced at its end with
    none of it committed, and a rejection journaled inside the rolled-back block is
    still journaled."""
    skip_unless_persistent(store_url)
    first, second = _two_writers(store_url, core)
    try:
        caught = []
        with pytest.raises(solvent.WriterFenced, match="did not take effect"), first.batch():
            first.deposit("c000", "BTC", "1", wallet="btc-cold", ref="first-1")
            second.deposit("c001", "BTC", "2", wallet="btc-cold", ref="second-1")
            try:
                with first.batch():
                    first.deposit("c000", "BTC", "3", wallet="btc-cold", ref="first-2")
                    with pytest.raises(solvent.InsufficientFunds):
                        first.transfer("treasury", "c000", "BTC", "5", ref="promo-1")
                    raise ValueError("the caller's own error")
            except ValueError as exc:
                caught.append(exc)
        assert [str(x) for x in caught] == ["the caller's own error"]
        assert observe(first, journal=False) == fresh_view(store_url, core)
        refs = [rec.ref for rec in second.records()]
        assert "second-1" in refs and "first-1" not in refs and "first-2" not in refs
        assert [rec.ref for rec in second.records() if isinstance(rec, r.CommandRejected)] == [
            "promo-1"]
        first.deposit("c000", "BTC", "1", wallet="btc-cold", ref="first-1")  # never used
        second.verify()
        first.verify()
    finally:
        first.close()
        second.close()


def test_a_rollbacks_kept_rejection_survives_another_writers_commit(
    store_url: str, core: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A block that raises keeps its journaled rejections: the rollback reloads the
    store, journals them again and commits them. Another writer committing between
    that reload and that commit fenced it: the rejection was lost and the caller saw
    ``WriterFenced`` in place of its own error. The commit is now tried again on the
    newer state. (The window is made by letting the other writer commit as the
    rollback reads the store.)"""
    skip_unless_persistent(store_url)
    first, second = _two_writers(store_url, core)
    real_load = solvent.ledger.load_state
    fired: list[int] = []

    def load_then_other_writer(store: JournalStore, core_name: str) -> object:
        state = real_load(store, core_name)
        if not fired:
            fired.append(1)
            second.deposit("c001", "BTC", "2", wallet="btc-cold", ref="second-1")
        return state

    try:
        with pytest.raises(RuntimeError, match="own error"), first.batch():
            with pytest.raises(solvent.InsufficientFunds):
                first.transfer("treasury", "c000", "BTC", "5", ref="promo-1")
            monkeypatch.setattr(solvent.ledger, "load_state", load_then_other_writer)
            raise RuntimeError("the caller's own error")
        monkeypatch.setattr(solvent.ledger, "load_state", real_load)
        assert fired
        rejected = [rec.ref for rec in second.records() if isinstance(rec, r.CommandRejected)]
        assert rejected == ["promo-1"]
        assert observe(first, journal=False) == fresh_view(store_url, core)
        first.verify()
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("new_asset", [False, True], ids=["new wallet", "new asset"])
def test_a_rollback_drops_an_attestation_of_a_wallet_it_rolls_back(
    store_url: str, core: str, new_asset: bool
) -> None:
    """A block that opened a wallet (or registered an asset and opened one), attested it
    and raised: the rollback journaled the attestation again on a state where the wallet
    does not exist, and ``AssertionError`` replaced the caller's exception. An
    observation of a wallet that was never opened goes with the block now."""
    led = open_ledger(store_url, core)
    try:
        build_exchange(led, customers=2, customer_btc=1)
        seen = observe(led)
        with pytest.raises(ValueError, match="own error"), led.batch():
            if new_asset:
                led.register_asset("ETH", decimals=8)
            led.open_wallet("w2", asset="ETH" if new_asset else "BTC")
            led.attest("w2", 0, as_of=datetime.fromtimestamp(CLOCK_START_NS / 1e9, UTC),
                       source="node")
            raise ValueError("the caller's own error")
        assert observe(led) == seen
        led.verify()
    finally:
        led.close()


def test_fencing_works_both_ways_and_history_never_forks(store_url: str, core: str) -> None:
    skip_unless_persistent(store_url)
    first, second = _two_writers(store_url, core)
    try:
        first.transfer("c000", "c001", "BTC", "0.1", ref="a-1")
        with pytest.raises(solvent.WriterFenced):
            second.transfer("c001", "c000", "BTC", "0.2", ref="b-1")
        # reloaded, the second writer is current again and may write ...
        second.transfer("c001", "c000", "BTC", "0.2", ref="b-2")
        # ... and now the first is the stale one
        with pytest.raises(solvent.WriterFenced):
            first.transfer("c000", "c001", "BTC", "0.3", ref="a-2")
        assert observe(first) == observe(second)
        refs = [rec.ref for rec in first.records() if isinstance(rec, r.Transferred)]
        assert refs == ["a-1", "b-2"]
        assert first.balance_minor("c000", "BTC") == (110_000_000, 0)
        first.verify()
    finally:
        first.close()
        second.close()


def test_fenced_group_commit_discards_the_whole_batch(store_url: str, core: str) -> None:
    skip_unless_persistent(store_url)
    first, second = _two_writers(store_url, core)
    try:
        with pytest.raises(solvent.WriterFenced), second.batch():
            second.transfer("c000", "c001", "BTC", "0.5", ref="b-1")
            second.open_account("from-second")
            first.transfer("c001", "c000", "BTC", "0.5", ref="a-1")  # commits first
            second.transfer("c001", "c000", "BTC", "0.1", ref="b-2")
        expected = observe(first)
        assert observe(second) == expected
        assert "from-second" not in second.accounts()
        assert [rec.ref for rec in second.records() if isinstance(rec, r.Transferred)] == ["a-1"]
        second.verify()
        third = solvent.Ledger.open(store_url, core=core)
        try:
            assert observe(third) == expected
        finally:
            third.close()
    finally:
        first.close()
        second.close()


def run_threads(threads: list[threading.Thread], *, timeout_s: float) -> None:
    """Start ``threads`` together, then wait for each (at most ``timeout_s``)."""
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout_s)


def test_reads_on_other_threads_see_whole_commands(store_url: str, core: str) -> None:
    """A service reads balances, deposits, orders and custody on its request threads
    while another thread runs commands. Every read takes the ledger's lock, so none
    meets a dict changing under it (before: ``RuntimeError: dictionary changed size
    during iteration`` from ``balance`` and ``pending_deposits``) and each sees whole
    commands: an order moves funds from available to held in one step."""
    clock = Clock()
    led = open_ledger(store_url, core, clock=clock)
    market_exchange(led, clock)
    total = sum(led.balance_minor("c000", "KRW"))
    done = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(300):
                led.detect_deposit("c000", "BTC", "0.001", wallet="btc-cold", ref=f"d-{i}")
                if i % 2:
                    led.void_deposit("btc-cold", f"d-{i}")
                order = led.place_order("c000", MARKET, "buy", qty="0.001", price="5000000")
                led.cancel_order(order.order_id)
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            done.set()

    def reader(read: Callable[[], object]) -> None:
        try:
            while not done.is_set():
                read()
        except BaseException as exc:  # reported below
            failures.append(exc)

    def krw_is_whole() -> None:
        krw = led.balance("c000", "KRW")
        assert krw.available + krw.held == total, krw

    reads = [krw_is_whole, lambda: led.balance("c001", "BTC"), led.pending_deposits,
             lambda: led.pending_deposits("c000"), lambda: led.open_orders("c000"),
             led.accounts, lambda: led.reconcile("BTC"), lambda: led.custody_policy("BTC"),
             lambda: led.book(MARKET), lambda: led.is_frozen("c000")]
    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader, args=(read,)) for read in reads]
    try:
        run_threads(threads, timeout_s=120)
        assert failures == []
        assert [d.ref for d in led.pending_deposits("c000")] == [
            f"d-{i}" for i in range(0, 300, 2)]
        assert led.open_orders("c000") == []
    finally:
        done.set()
        led.close()


def test_head_is_the_last_commit_read_in_one_moment(store_url: str, core: str) -> None:
    """``head()`` gives the version, last position and digest of one commit: what an
    auditor keeps to anchor the chain. Pending commands are not in it, and a thread
    asking while another is inside ``batch()`` waits for that batch to commit (read
    one property at a time, the three could straddle the commit)."""
    led = open_ledger(store_url, core)
    try:
        assert led.head() == solvent.JournalHead(0, 0, "0" * 64)
        led.register_asset("BTC", decimals=8)
        led.open_account("alice")
        led.open_wallet("btc-cold", asset="BTC")
        led.deposit("alice", "BTC", "1", wallet="btc-cold", ref="tx-1")
        before = led.head()
        assert before == solvent.JournalHead(led.version, led.position, led.head_digest)
        assert before.version == 4
        assert [rec.position for rec in led.records(before.position - 1)] == [before.position]
        assert led.verify(expect_head=before.digest).head_digest == before.digest
        seen: list[solvent.JournalHead] = []
        other = threading.Thread(target=lambda: seen.append(led.head()))
        with led.batch():
            led.open_account("bob")
            led.transfer("alice", "bob", "BTC", "0.5", ref="t-1")
            assert led.position == before.position + 2
            assert led.head() == before  # pending: not yet a commit
            other.start()
            other.join(timeout=0.3)
            assert other.is_alive() and seen == []  # waits for the batch
        other.join(timeout=10)
        after = led.head()
        assert seen == [after]
        assert (after.version, after.position) == (before.version + 1, before.position + 2)
        assert after.digest != before.digest
        assert led.verify(expect_head=after.digest).head_digest == after.digest
    finally:
        led.close()


@pytest.mark.postgres
def test_postgresql_says_why_it_cannot_open() -> None:
    """A missing database or role: the server answers at once, and the message says
    what it said (the pool's own was "couldn't get a connection after 5.00 sec", after
    waiting that long). Missing tables, with create=False: one line, no SQL."""
    require_postgres()
    base = urlsplit(postgres_base_url())
    missing_db = base._replace(path=f"/nodb_{uuid.uuid4().hex[:8]}").geturl()
    with pytest.raises(solvent.StoreError, match="does not exist"):
        solvent.Ledger.open(missing_db)
    host = base.netloc.rpartition("@")[2]
    missing_role = base._replace(netloc=f"nobody_{uuid.uuid4().hex[:6]}:Sekr1t@{host}").geturl()
    with pytest.raises(solvent.StoreError, match=r"does not exist|authentication") as info:
        solvent.Ledger.open(missing_role)
    assert "Sekr1t" not in str(info.value)
    no_tables = with_prefix(postgres_base_url(), f"none_{uuid.uuid4().hex[:8]}_")
    with pytest.raises(solvent.StoreError, match="does not exist") as info:
        solvent.Ledger.open(no_tables, create=False)
    assert "\n" not in str(info.value) and "SELECT" not in str(info.value)


@pytest.mark.postgres
def test_postgresql_ledgers_open_concurrently() -> None:
    """Processes and threads opening ledgers on one database at the same moment (a
    primary and a standby starting together, many prefixes) all succeed."""
    require_postgres()
    shared = with_prefix(postgres_base_url(), f"t_{uuid.uuid4().hex[:8]}_")
    own = [with_prefix(postgres_base_url(), f"t_{uuid.uuid4().hex[:8]}_") for _ in range(4)]
    failures: list[BaseException] = []

    def opener(url: str) -> None:
        try:
            for target in (url, shared, url, shared):
                solvent.Ledger.open(target).close()
        except BaseException as exc:  # collected and reported below
            failures.append(exc)

    threads = [threading.Thread(target=opener, args=(url,)) for url in own]
    try:
        run_threads(threads, timeout_s=60)
        assert failures == []
    finally:
        for url in [shared, *own]:
            drop_postgres_tables(url)


_OPEN_AT = """
import sys, time
import solvent
url, start = sys.argv[1], float(sys.argv[2])
while time.time() < start:
    pass
solvent.Ledger.open(url).close()
"""


def test_sqlite_ledgers_open_a_new_file_concurrently(tmp_path: Path) -> None:
    """Processes opening one new SQLite file at the same moment: about one open in
    twenty failed at once with "database is locked" (the first connection's switch to
    WAL mode does not wait for the lock), where the store otherwise waits 10 s for a
    lock (the concurrency probe). Each process now tries again on a new pool."""
    for round_ in range(6):
        url = f"sqlite:///{tmp_path}/new-{round_}.db"
        start = time.time() + 1.0
        procs = [subprocess.Popen([sys.executable, "-c", _OPEN_AT, url, str(start)],
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, errors
    with solvent.Ledger.open(url) as led:
        assert led.verify().batches == 0


@pytest.mark.postgres
def test_postgresql_journal_is_stored_with_lz4_and_big_batches_read_back() -> None:
    """The journal sends each batch as a binary parameter and asks the server to store
    new rows with lz4 (``solvent.store_postgres``): both tables are set to lz4 exactly
    when the server has it (a session of its own may make it the default), also under
    a prefix with capitals (quoted names), a second open finds them so, and a batch and
    a snapshot of 1.6 MB read back byte for byte."""
    require_postgres()
    pg_url = with_prefix(postgres_base_url(), f"Lz_{uuid.uuid4().hex[:8]}_")
    conninfo, prefix = postgres_conninfo(pg_url)
    tables = [prefix + "journal", prefix + "snapshots"]
    payload = array("q", range(200_000)).tobytes()  # int64 rows, like OrdersSubmitted
    store = JournalStore(pg_url)
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            try:
                conn.execute("SET default_toast_compression = lz4")
                server_has_lz4 = True
            except psycopg.Error:
                server_has_lz4 = False
            methods = dict(conn.execute(
                "SELECT c.relname, a.attcompression FROM pg_attribute a "
                "JOIN pg_class c ON c.oid = a.attrelid "
                "WHERE c.relname = ANY(%s) AND a.attname = 'state'", (tables,)).fetchall())
        assert store.lz4 is server_has_lz4
        assert sorted(methods) == sorted(tables)
        assert all((m == "l") is server_has_lz4 for m in methods.values()), methods
        first = StoredBatch.seal(1, GENESIS_DIGEST, payload)
        store.append(first)
        store.append(StoredBatch.seal(2, first.digest, b"\x00\\x'\"" * 3))  # escapes too
        store.put_snapshot(1, payload)  # snapshots are sent in binary as well
        store.put_snapshot(2, b"\x00\\x'\"" * 3)
        store.put_snapshot(1, b"another writer's")  # a version's first snapshot stays
    finally:
        store.close()
    again = JournalStore(pg_url)
    try:
        assert again.lz4 is server_has_lz4
        one, two = again.read()
        assert (one.payload, one.digest) == (payload, first.digest)
        assert two.payload == b"\x00\\x'\"" * 3
        assert list(again.snapshots_desc()) == [(2, b"\x00\\x'\"" * 3), (1, payload)]
    finally:
        again.close()
        drop_postgres_tables(pg_url)


@pytest.mark.postgres
def test_drop_postgres_store_drops_the_tables_of_a_prefix_with_capitals() -> None:
    require_postgres()
    url = with_prefix(postgres_base_url(), f"Dr_{uuid.uuid4().hex[:8]}_")
    conninfo, prefix = postgres_conninfo(url)
    query = "SELECT to_regclass(format('%%I', %s::text)) IS NOT NULL"
    JournalStore(url).close()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        assert [conn.execute(query, (prefix + t,)).fetchone() for t in ("journal", "snapshots")
                ] == [(True,), (True,)]
        drop_postgres_store(url)
        assert [conn.execute(query, (prefix + t,)).fetchone() for t in ("journal", "snapshots")
                ] == [(False,), (False,)]


def test_nested_batch_keeps_outer_commands_and_journaled_rejections(
    led: solvent.Ledger,
) -> None:
    """A nested block is a savepoint: what came before it in the outer block stays,
    and a company-funded rejection inside the rolled-back block stays journaled."""
    build_exchange(led, customers=2, treasury_krw=100)
    start = led.position
    with led.batch():
        led.transfer("treasury", "c000", "KRW", 5, ref="before")
        with pytest.raises(solvent.InsufficientFunds), led.batch():
            led.transfer("treasury", "c001", "KRW", 7, ref="inner-ok")
            led.transfer("treasury", "c001", "KRW", 1_000, ref="inner-too-much")
        led.transfer("treasury", "c000", "KRW", 1, ref="after")
    assert led.balance_minor("c000", "KRW") == (6, 0)
    assert led.balance_minor("c001", "KRW") == (0, 0)
    kinds = [(type(rec).__name__, rec.ref) for rec in led.records(after_position=start)]
    assert kinds == [
        ("Transferred", "before"),
        ("CommandRejected", "inner-too-much"),
        ("Transferred", "after"),
    ]
    led.verify()
