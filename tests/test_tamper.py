"""Tampering with the stored bytes is detected, and the detection names the batch.

Each test builds a journal of several batches on a real store (a SQLite file, a
PostgreSQL prefix), closes the ledger, then edits the stored rows directly with
sqlite3 / psycopg, as an intruder with database access would. ``Ledger.open(url)``
followed by ``verify()``, and ``solvent.ledger.verify_store``, must raise
``solvent.TamperDetected`` whose ``version`` is the tampered batch. (``Ledger.open``
may itself raise when the damage lies in what it reads: that is detection too.)
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import msgspec
import pytest

import solvent
from conftest import (
    CLOCK_START_NS,
    Clock,
    RawStore,
    append_forged_batch,
    build_exchange,
    observe,
    postgres_base_url,
    require_postgres,
    with_prefix,
)
from solvent import records as r
from solvent.ledger import verify_store
from solvent.state import SNAPSHOT_FORMAT, snapshot_decoder
from solvent.store import JournalStore, drop_postgres_store, postgres_conninfo

BTC = 10**8
BATCHES = 6


def build_journal(url: str, core: str = "compiled", **kwargs: Any) -> dict[str, Any]:
    """Six batches (one group commit each), closed with a snapshot at batch 6."""
    led = solvent.Ledger.open(url, core=core, clock=Clock(), **kwargs)
    ex = build_exchange(led, customers=3, customer_btc=1, treasury_krw=10_000)  # batch 1
    a, b, c = ex.customers
    with led.batch():  # batch 2
        led.transfer(a, b, "BTC", "0.1", ref="t-1")
        led.transfer(b, c, "BTC", "0.2", ref="t-2")
    led.transfer(c, a, "BTC", "0.05", ref="t-3")  # batch 3
    with led.batch():  # batch 4
        for i, cust in enumerate(ex.customers):
            led.transfer("treasury", cust, "KRW", 2_000, ref=f"promo-{i}")
    led.transfer_many([1, 2], [2, 3], [0, 1], [1_000, 500], ref="bulk-1")  # batch 5
    led.freeze_account(c, reason="review")  # batch 6
    assert led.version == BATCHES
    seen = observe(led)
    led.close()
    return seen


def detect(url: str, core: str = "compiled") -> solvent.TamperDetected:
    """Both detectors must refuse the store; return what Ledger.open/verify raised."""
    store = JournalStore(url)
    try:
        with pytest.raises(solvent.TamperDetected) as by_store:
            verify_store(store, core)
    finally:
        store.close()
    with pytest.raises(solvent.TamperDetected) as by_ledger:
        led = solvent.Ledger.open(url, core=core)
        try:
            led.verify()
        finally:
            led.close()
    assert by_ledger.value.version == by_store.value.version, (by_ledger.value, by_store.value)
    return by_ledger.value


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


@pytest.fixture
def raw(persistent_url: str) -> Any:
    with RawStore(persistent_url) as store:
        yield store


def test_clean_journal_verifies(persistent_url: str, raw: RawStore, core: str) -> None:
    seen = build_journal(persistent_url, core)
    assert raw.versions() == list(range(1, BATCHES + 1))
    assert raw.versions("snapshots") == [BATCHES]
    led = solvent.Ledger.open(persistent_url, core=core)
    try:
        report = led.verify(expect_head=seen["head"])
        assert (report.batches, report.records) == (BATCHES, seen["position"])
        assert report.snapshots_checked == 1
        assert observe(led) == seen
    finally:
        led.close()


@pytest.mark.parametrize("version", [1, 3, BATCHES])
def test_flipped_byte_in_the_middle_of_a_batch(
    persistent_url: str, raw: RawStore, version: int
) -> None:
    build_journal(persistent_url)
    state = raw.state(version)
    raw.set_state(version, flip(state, len(state) // 2))
    assert detect(persistent_url).version == version


@pytest.mark.parametrize("field", ["prev_digest", "digest", "payload"])
def test_changed_byte_in_each_field_of_a_batch(
    persistent_url: str, raw: RawStore, field: str
) -> None:
    build_journal(persistent_url)
    fields = msgspec.msgpack.decode(raw.state(3))
    assert set(fields) == {"prev_digest", "digest", "payload"}
    fields[field] = flip(fields[field], len(fields[field]) // 2, 0x10)
    raw.set_state(3, msgspec.msgpack.encode(fields))
    assert detect(persistent_url).version == 3


def test_every_single_bit_flip_of_a_batch_is_detected(tmp_path: Any) -> None:
    """Flip each bit of one stored batch in turn (SQLite): always TamperDetected, batch 4."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    build_journal(url)
    with RawStore(url) as raw:
        state = raw.state(4)
        store = JournalStore(url)
        try:
            for i in range(len(state)):
                for mask in (0x01, 0x80):
                    raw.set_state(4, flip(state, i, mask))
                    with pytest.raises(solvent.TamperDetected) as info:
                        verify_store(store, "compiled")
                    assert info.value.version == 4, (i, mask, info.value)
        finally:
            store.close()
        raw.set_state(4, state)
    detect_nothing(url)


def detect_nothing(url: str) -> None:
    led = solvent.Ledger.open(url)
    try:
        led.verify()
    finally:
        led.close()


def test_deleted_middle_batch(persistent_url: str, raw: RawStore) -> None:
    build_journal(persistent_url)
    raw.delete(3)
    exc = detect(persistent_url)
    assert exc.version == 3
    assert "missing" in str(exc) or "out of order" in str(exc)


def test_deleted_last_batch_while_a_later_snapshot_exists(
    persistent_url: str, raw: RawStore
) -> None:
    build_journal(persistent_url)
    assert raw.versions("snapshots") == [BATCHES]
    raw.delete(BATCHES)
    assert detect(persistent_url).version == BATCHES


def test_ledger_does_not_write_past_a_hole_at_the_end(
    persistent_url: str, raw: RawStore
) -> None:
    """With batch 6 gone but its snapshot present, a ledger must not open and append
    batch 7 on top of the hole."""
    build_journal(persistent_url)
    raw.delete(BATCHES)
    with pytest.raises(solvent.TamperDetected) as info:
        led = solvent.Ledger.open(persistent_url)
        try:
            led.open_account("late")
        finally:
            led.close()
    assert info.value.version == BATCHES
    assert raw.versions() == list(range(1, BATCHES))


def test_swapped_batches(persistent_url: str, raw: RawStore) -> None:
    build_journal(persistent_url)
    two, four = raw.state(2), raw.state(4)
    raw.set_state(2, four)
    raw.set_state(4, two)
    assert detect(persistent_url).version == 2


def test_swapped_neighbours(persistent_url: str, raw: RawStore) -> None:
    build_journal(persistent_url)
    four, five = raw.state(4), raw.state(5)
    raw.set_state(4, five)
    raw.set_state(5, four)
    assert detect(persistent_url).version == 4


def test_batch_replaced_by_a_copy_of_another(persistent_url: str, raw: RawStore) -> None:
    build_journal(persistent_url)
    raw.set_state(5, raw.state(3))
    assert detect(persistent_url).version == 5


def test_changed_topic(persistent_url: str, raw: RawStore) -> None:
    build_journal(persistent_url)
    raw.set_topic(3, "solvent.journal:StoredSnapshot")
    assert detect(persistent_url).version == 3


def test_unknown_topic(persistent_url: str, raw: RawStore) -> None:
    build_journal(persistent_url)
    raw.set_topic(2, "solvent.journal:NoSuchClass")
    assert detect(persistent_url).version == 2


def test_topic_naming_another_module_is_not_imported(
    persistent_url: str, raw: RawStore, capfd: pytest.CaptureFixture[str]
) -> None:
    """Verifying an untrusted store must not import code its rows name (``this`` prints
    the Zen of Python when imported)."""
    build_journal(persistent_url)
    assert "this" not in sys.modules
    raw.set_topic(3, "this:s")
    raw.set_topic(BATCHES, "this:s", "snapshots")
    assert detect(persistent_url).version == BATCHES  # the snapshot is read first
    raw.set_topic(BATCHES, "solvent.journal:StoredSnapshot", "snapshots")
    assert detect(persistent_url).version == 3
    assert "this" not in sys.modules
    assert "Beautiful is better than ugly" not in capfd.readouterr().out


def detect_or_skipped(url: str) -> None:
    """A damaged snapshot is refused as tampering, or, when the damage reaches its
    ``format`` field (1 flipped to 0, or the key's name), not of this code's format:
    then it is neither loaded nor compared, both detectors say so, and the ledger is the
    journal's replay (the snapshot is a cache; the journal is the truth)."""
    store = JournalStore(url)
    try:
        try:
            report, _state = verify_store(store, "compiled")
        except solvent.TamperDetected as exc:
            assert exc.version == BATCHES, exc
            assert detect(url).version == BATCHES
            return
    finally:
        store.close()
    assert report.snapshots_skipped == 1 and report.snapshots_checked == 0, report
    with solvent.Ledger.open(url) as led:
        assert led.verify().snapshots_skipped == 1


@pytest.mark.parametrize("where", ["middle", "start", "end"])
def test_tampered_snapshot_row(persistent_url: str, raw: RawStore, where: str) -> None:
    build_journal(persistent_url)
    state = raw.state(BATCHES, "snapshots")
    index = {"middle": len(state) // 2, "start": 0, "end": len(state) - 1}[where]
    raw.set_state(BATCHES, flip(state, index), "snapshots")
    detect_or_skipped(persistent_url)


def test_every_single_bit_flip_of_a_snapshot_is_detected(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    build_journal(url)
    skipped = 0
    with RawStore(url) as raw:
        state = raw.state(BATCHES, "snapshots")
        for i in range(len(state)):
            for mask in (0x01, 0x80):
                raw.set_state(BATCHES, flip(state, i, mask), "snapshots")
                store = JournalStore(url)
                try:
                    verify_store(store, "compiled")
                except solvent.TamperDetected:
                    assert detect(url).version == BATCHES, (i, mask)
                else:
                    detect_or_skipped(url)
                    skipped += 1
                finally:
                    store.close()
        raw.set_state(BATCHES, state, "snapshots")
    detect_nothing(url)
    # only flips in the format field's key or value ("format" is 6 bytes, its value 1)
    assert 0 < skipped <= 6 * 2 + 1, skipped


def forge_snapshot(raw: RawStore, version: int, edit: Any) -> None:
    """Rewrite the snapshot at ``version`` as a well-formed but lying snapshot."""
    envelope = msgspec.msgpack.decode(raw.state(version, "snapshots"))
    snap = snapshot_decoder.decode(envelope["payload"])
    forged = edit(msgspec.structs.asdict(snap))
    envelope["payload"] = r.encoder.encode(forged)
    raw.set_state(version, msgspec.msgpack.encode(envelope), "snapshots")


@pytest.mark.parametrize("age", ["before formats", "before the market fields", "a future one"])
def test_a_snapshot_of_another_format_is_replayed_past(
    persistent_url: str, raw: RawStore, age: str
) -> None:
    """Snapshots carry ``format`` (``SNAPSHOT_FORMAT``). One written by older code (no
    field; or one that lacks fields this code needs: before 38cbc4d that made open fail,
    and verify call an honest journal TAMPERED) or by newer code is neither loaded nor
    compared: open replays the journal past it, verify reports it skipped, and the
    point-in-time reads go round it."""
    seen = build_journal(persistent_url)
    edits = {
        "before formats": lambda snap: {k: v for k, v in snap.items() if k != "format"},
        "before the market fields": lambda snap: {k: v for k, v in snap.items()
                                                  if k not in ("format", "markets")},
        "a future one": lambda snap: {**snap, "format": SNAPSHOT_FORMAT + 1, "core": 7},
    }
    forge_snapshot(raw, BATCHES, edits[age])
    with solvent.Ledger.open(persistent_url) as led:
        assert observe(led) == seen  # the journal's replay from genesis
        report = led.verify()
        assert (report.snapshots_checked, report.snapshots_skipped) == (0, 1)
        now = led.liabilities_root("BTC")  # the first proof journals the proof key
        assert led.liabilities_root("BTC", at=now.position) == now
        led.transfer("c000", "c001", "BTC", "0.01", ref="after")
    with solvent.Ledger.open(persistent_url) as led:  # close() wrote one of this format
        report = led.verify()
        assert (report.snapshots_checked, report.snapshots_skipped) == (1, 1)
    result = solvent_verify(persistent_url)
    assert result.returncode == 0, result.stderr
    assert "1 snapshots checked (1 of another format skipped)" in result.stdout, result.stdout


@pytest.mark.parametrize("which", ["journal", "snapshots"])
def test_a_null_row_is_tampering(persistent_url: str, raw: RawStore, which: str) -> None:
    """A row whose state was set to NULL. eventsourcing's PostgreSQL reader raised a
    bare ``TypeError`` on it (``solvent verify`` printed a traceback, exit 1)."""
    build_journal(persistent_url)
    version = 3 if which == "journal" else BATCHES
    raw._run(f"UPDATE {raw.table(which)} SET state = NULL WHERE originator_version = ?",
             version)
    found = detect(persistent_url)
    assert found.version in (version, None)  # PostgreSQL's reader fails a page, not a row
    result = solvent_verify(persistent_url)
    assert result.returncode == 1 and result.stderr.startswith("TAMPERED"), result.stderr


@pytest.mark.parametrize("version", ["'x'", "0", "-1", "2.5"])
def test_a_snapshot_row_with_a_junk_version_is_tampering(tmp_path: Path, version: str) -> None:
    """SQLite stores any value in the version column: ``verify`` compared the text
    ``'x'`` with an int (``TypeError``, a traceback)."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    build_journal(url)
    with RawStore(url) as raw:
        raw._run(f"UPDATE {raw.table('snapshots')} SET originator_version = {version}")
    detect(url)
    result = solvent_verify(url)
    assert result.returncode == 1 and result.stderr.startswith("TAMPERED"), result.stderr


def test_forged_snapshot_that_moves_money_between_customers(
    persistent_url: str, raw: RawStore
) -> None:
    """The forged snapshot keeps every invariant (so it loads), yet verify catches it."""
    seen = build_journal(persistent_url)

    def move_one_satoshi(snap: dict[str, Any]) -> dict[str, Any]:
        rows = snap["core"]["balances"]
        c0 = next(i for i, row in enumerate(rows) if row[0] == 1 and row[1] == 0)
        c1 = next(i for i, row in enumerate(rows) if row[0] == 2 and row[1] == 0)
        rows[c0] = (rows[c0][0], rows[c0][1], rows[c0][2] - 1, rows[c0][3])
        rows[c1] = (rows[c1][0], rows[c1][1], rows[c1][2] + 1, rows[c1][3])
        return snap

    forge_snapshot(raw, BATCHES, move_one_satoshi)
    led = solvent.Ledger.open(persistent_url)
    try:
        # the lie loads (it balances) ...
        assert led.balance_minor("c000", "BTC") == (seen["balances"][("c000", "BTC")][0] - 1, 0)
        # ... and the full replay exposes it
        with pytest.raises(solvent.TamperDetected) as info:
            led.verify()
        assert info.value.version == BATCHES
    finally:
        led.close()
    assert detect(persistent_url).version == BATCHES


def test_forged_snapshot_that_creates_money(persistent_url: str, raw: RawStore) -> None:
    """A snapshot in which a customer holds more than custody does not even load."""
    build_journal(persistent_url)

    def credit_a_customer(snap: dict[str, Any]) -> dict[str, Any]:
        rows = snap["core"]["balances"]
        i = next(i for i, row in enumerate(rows) if row[0] == 1 and row[1] == 0)
        rows[i] = (rows[i][0], rows[i][1], rows[i][2] + 2_000 * BTC, rows[i][3])
        return snap

    forge_snapshot(raw, BATCHES, credit_a_customer)
    assert detect(persistent_url).version == BATCHES


@pytest.mark.parametrize("field", ["head_digest", "position"])
def test_a_snapshot_at_the_tip_that_does_not_match_its_batch_is_refused_at_open(
    persistent_url: str, raw: RawStore, field: str
) -> None:
    """The newest snapshot at the journal's last batch, with one bit of its head digest
    flipped or its position one ahead. No batch follows it for replay to check the
    link of, so ``Ledger.open`` accepted it before 2026-11-22, and the next honest
    commit was chained to the wrong digest (or position): the journal alone then
    failed ``verify`` at a batch the ledger itself wrote."""
    build_journal(persistent_url)

    def lie(snap: dict[str, Any]) -> dict[str, Any]:
        if field == "head_digest":
            snap["head_digest"] = bytes([snap["head_digest"][0] ^ 1]) + snap["head_digest"][1:]
        else:
            snap["position"] += 1
        return snap

    forge_snapshot(raw, BATCHES, lie)
    with pytest.raises(solvent.TamperDetected) as info:
        solvent.Ledger.open(persistent_url)
    assert info.value.version == BATCHES and "does not match the journal" in str(info.value)
    assert detect(persistent_url).version == BATCHES
    raw.delete(BATCHES, "snapshots")  # nothing was committed on the lie: the journal is whole
    detect_nothing(persistent_url)


def test_older_snapshot_tampered(persistent_url: str, raw: RawStore) -> None:
    seen = build_journal(persistent_url, snapshot_every=5)
    versions = raw.versions("snapshots")
    assert len(versions) >= 3 and versions[-1] == BATCHES
    older = versions[len(versions) // 2]
    assert older < BATCHES
    state = raw.state(older, "snapshots")
    raw.set_state(older, flip(state, len(state) // 2), "snapshots")
    # opening reads only the newest snapshot: it still opens, with the right balances
    led = solvent.Ledger.open(persistent_url)
    try:
        assert observe(led) == seen
        with pytest.raises(solvent.TamperDetected) as info:
            led.verify()
        assert info.value.version == older
    finally:
        led.close()


def test_open_is_snapshot_plus_tail(persistent_url: str, raw: RawStore) -> None:
    """Corrupting batch 1 does not disturb opening from the snapshot at batch 6 (opening
    did not replay from zero), but verify's full replay finds it."""
    seen = build_journal(persistent_url)
    state = raw.state(1)
    raw.set_state(1, flip(state, len(state) // 2))
    led = solvent.Ledger.open(persistent_url)
    try:
        assert observe(led, journal=False) == {k: v for k, v in seen.items() if k != "records"}
        with pytest.raises(solvent.TamperDetected) as info:
            led.verify()
        assert info.value.version == 1
    finally:
        led.close()


def test_tampered_tail_after_the_snapshot_is_caught_by_open(
    persistent_url: str, raw: RawStore
) -> None:
    build_journal(persistent_url, snapshot_every=10**6)
    led = solvent.Ledger.open(persistent_url, clock=Clock(2 * 10**18))
    led.transfer("c000", "c001", "BTC", "0.01", ref="tail-1")
    led.transfer("c000", "c001", "BTC", "0.01", ref="tail-2")
    led._store.close()  # a crash: no closing snapshot, batches 7 and 8 are the tail
    assert raw.versions("snapshots") == [BATCHES]
    state = raw.state(BATCHES + 1)
    raw.set_state(BATCHES + 1, flip(state, len(state) // 2))
    with pytest.raises(solvent.TamperDetected) as info:
        solvent.Ledger.open(persistent_url)
    assert info.value.version == BATCHES + 1


def test_forged_batch_that_creates_money_does_not_replay(
    persistent_url: str, raw: RawStore
) -> None:
    seen = build_journal(persistent_url)
    raw.delete(BATCHES, "snapshots")  # make the ledger replay the forged tail
    forged = r.Transferred(position=seen["position"] + 1, time_ns=2 * 10**18, actor="system",
                           ref="forged", from_account="c001", to_account="c000", asset="BTC",
                           amount_minor=2_000 * BTC)
    append_forged_batch(persistent_url, [forged])
    exc = detect(persistent_url)
    assert exc.version == BATCHES + 1
    assert exc.position == seen["position"] + 1


@pytest.mark.parametrize("decimals", [-1, 19, 99])
def test_forged_asset_with_decimals_register_asset_refuses_does_not_replay(
    persistent_url: str, raw: RawStore, decimals: int
) -> None:
    """A chain-valid batch registering an asset with 99 (or −1) decimals verified, and
    the ledger it opened into then failed untyped (``balance`` raised
    ``decimal.Inexact``, a deposit ``TypeError``)."""
    seen = build_journal(persistent_url)
    raw.delete(BATCHES, "snapshots")
    forged = r.AssetRegistered(position=seen["position"] + 1, time_ns=2 * 10**18,
                               actor="system", ref="", asset="ODD", decimals=decimals)
    append_forged_batch(persistent_url, [forged])
    exc = detect(persistent_url)
    assert (exc.version, exc.position) == (BATCHES + 1, seen["position"] + 1)
    assert "decimals" in str(exc)


@pytest.mark.parametrize("kind", ["transfer", "freeze"])
@pytest.mark.parametrize("lie", ["actor never registered", "dated before its predecessor",
                                 "dated before 1970"])
def test_forged_batch_with_an_impossible_actor_or_time_does_not_replay(
    persistent_url: str, raw: RawStore, kind: str, lie: str
) -> None:
    """The live path authorizes every command's actor and never dates a record before
    the one before it; a chain-valid forged batch that does either verified before."""
    seen = build_journal(persistent_url)
    raw.delete(BATCHES, "snapshots")
    actor = "mallory" if lie == "actor never registered" else "system"
    time_ns = {"dated before its predecessor": CLOCK_START_NS - 1,
               "dated before 1970": -1}.get(lie, 2 * 10**18)
    common = {"position": seen["position"] + 1, "time_ns": time_ns, "actor": actor}
    forged: r.JournalRecord = (
        r.Transferred(**common, ref="forged", from_account="c001", to_account="c000",
                      asset="BTC", amount_minor=1) if kind == "transfer"
        else r.AccountFrozen(**common, ref="", account="c001", reason="forged"))
    append_forged_batch(persistent_url, [forged])
    exc = detect(persistent_url)
    assert (exc.version, exc.position) == (BATCHES + 1, seen["position"] + 1)
    assert ("never registered" if actor == "mallory" else "before the record before") in str(exc)


def test_forged_valid_batch_is_caught_only_by_the_anchored_head(
    persistent_url: str, raw: RawStore
) -> None:
    seen = build_journal(persistent_url)
    forged = r.Transferred(position=seen["position"] + 1, time_ns=2 * 10**18, actor="system",
                           ref="forged", from_account="c001", to_account="c000", asset="BTC",
                           amount_minor=1)
    forged_head = append_forged_batch(persistent_url, [forged])
    store = JournalStore(persistent_url)
    try:
        report, _ = verify_store(store, "compiled")  # a well-formed chain ...
        assert report.head_digest == forged_head
        with pytest.raises(solvent.TamperDetected) as info:  # ... but not the head we kept
            verify_store(store, "compiled", expect_head=seen["head"])
        assert info.value.version == BATCHES + 1
    finally:
        store.close()


def test_truncated_journal_is_caught_by_the_anchored_head(
    persistent_url: str, raw: RawStore
) -> None:
    seen = build_journal(persistent_url)
    raw.delete(BATCHES)
    raw.delete(BATCHES, "snapshots")  # a careful intruder removes the snapshot as well
    detect_nothing(persistent_url)  # the chain that is left is well-formed ...
    store = JournalStore(persistent_url)
    try:
        with pytest.raises(solvent.TamperDetected) as info:  # ... but ends too early
            verify_store(store, "compiled", expect_head=seen["head"])
        assert info.value.version == BATCHES - 1
    finally:
        store.close()


# -- the command line ----------------------------------------------------------------------


def solvent_verify(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "solvent", "verify", url, *args],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_cli_verify(persistent_url: str, raw: RawStore) -> None:
    seen = build_journal(persistent_url)
    clean = solvent_verify(persistent_url)
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout.startswith("OK")
    assert seen["head"] in clean.stdout
    assert f"{BATCHES} batches" in clean.stdout

    anchored = solvent_verify(persistent_url, "--expect-head", seen["head"])
    assert anchored.returncode == 0, anchored.stderr
    wrong = solvent_verify(persistent_url, "--expect-head", "ab" * 32)
    assert wrong.returncode == 1
    assert "TAMPERED" in wrong.stdout + wrong.stderr
    for malformed in ("ab" * 31, "zz" * 32, ""):  # a usage error, not a verdict
        bad = solvent_verify(persistent_url, "--expect-head", malformed)
        assert bad.returncode == 2, (malformed, bad.stderr)
        assert "expect_head must be a digest of 64 hex digits" in bad.stderr
        assert "TAMPERED" not in bad.stdout + bad.stderr

    state = raw.state(3)
    raw.set_state(3, flip(state, len(state) // 2))
    tampered = solvent_verify(persistent_url)
    assert tampered.returncode == 1
    output = tampered.stdout + tampered.stderr
    assert "TAMPERED" in output and "batch 3" in output
    assert "OK" not in tampered.stdout


def test_cli_verify_bad_url() -> None:
    result = solvent_verify("mysql://nowhere/x")
    assert result.returncode == 2
    assert "unknown store URL" in result.stderr
    nothing = solvent_verify("memory:")  # was "OK memory:: 0 batches"
    assert nothing.returncode == 2 and "inside one process" in nothing.stderr


def test_cli_verify_of_a_missing_journal_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    proc = subprocess.run(
        [sys.executable, "-m", "solvent", "verify", f"sqlite:///{missing}"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "does not exist" in proc.stderr
    assert not missing.exists()


def test_cli_verify_of_a_postgresql_database_without_a_ledger_says_so() -> None:
    """A database (or prefix) with no ledger's tables said ``cannot read ...: relation
    "public.solvent_snapshots" does not exist``, where SQLite says there is no ledger:
    both say "no ledger at" now, exit 2, and nothing is created."""
    require_postgres()
    url = with_prefix(postgres_base_url(), f"none_{uuid.uuid4().hex[:8]}_")
    _conninfo, prefix = postgres_conninfo(url)
    result = solvent_verify(url)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"no ledger at {url}: table '{prefix}journal' does not exist" in result.stderr
    with pytest.raises(solvent.StoreError, match="no ledger at"):
        solvent.Ledger.open(url, create=False)
    store = JournalStore(url)  # creating it makes the tables
    store.close()
    try:
        assert solvent_verify(url).returncode == 0
    finally:
        drop_postgres_store(url)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_verify_writes_nothing_to_the_file_it_audits(tmp_path: Path) -> None:
    """An auditor's copy of a journal (here a ``VACUUM INTO`` backup, in SQLite's
    rollback-journal mode), another application's database, an empty file, a file
    that is not a database and a truncated journal: ``solvent verify`` reads each
    read-only. Before, opening switched the file to WAL mode (a write to the file
    under audit) and a file that was not a database ended in a traceback, exit 1
    (TAMPERED's code)."""
    source = tmp_path / "ledger.db"
    seen = build_journal(f"sqlite:///{source}")
    backup, other, empty, junk, cut = (tmp_path / n for n in (
        "backup.db", "other.db", "empty.db", "junk.db", "cut.db"))
    with closing(sqlite3.connect(source)) as conn:
        conn.execute(f"VACUUM INTO '{backup}'")
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
        conn.commit()
    empty.write_bytes(b"")
    junk.write_bytes(bytes(range(256)) * 20)
    cut.write_bytes(backup.read_bytes()[:10_000])
    before = {path: sha256_of(path) for path in (backup, other, empty, junk, cut)}

    ok = solvent_verify(f"sqlite:///{backup}", "--expect-head", seen["head"])
    assert ok.returncode == 0, ok.stderr
    for path, why in ((other, "no such table"), (empty, "no such table"),
                      (junk, "not a database"), (cut, "malformed")):
        result = solvent_verify(f"sqlite:///{path}")
        assert result.returncode == 2, (path.name, result.stdout, result.stderr)
        assert why in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert {path: sha256_of(path) for path in before} == before
    with closing(sqlite3.connect(backup)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def solvent_proof(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "solvent", "proof", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_cli_proofs_come_only_from_an_existing_verified_journal(
    persistent_url: str, raw: RawStore, tmp_path: Path
) -> None:
    """``solvent proof publish`` / ``inclusion`` open the ledger without creating it,
    and replay its journal before answering: a forged snapshot (which loads, since it
    balances) is TAMPERED, exit 1, where before it was published as the truth with
    exit 0. An output path that cannot be written is refused before the ledger is
    opened, so nothing is journaled (the first proof journals the proof key)."""
    missing = tmp_path / "typo.db"
    for command in (["publish"], ["inclusion", "--account", "c000"]):
        result = solvent_proof(command[0], f"sqlite:///{missing}", "--asset", "BTC",
                               *command[1:])
        assert result.returncode == 2 and "does not exist" in result.stderr, result.stderr
    assert not missing.exists()

    seen = build_journal(persistent_url)
    unwritable = solvent_proof("publish", persistent_url, "--asset", "BTC", "--out",
                               str(tmp_path / "no-such-dir" / "root.json"))
    assert unwritable.returncode == 2 and "cannot write" in unwritable.stderr
    assert raw.versions() == list(range(1, BATCHES + 1))  # nothing journaled
    root = tmp_path / "root.json"
    published = solvent_proof("publish", persistent_url, "--asset", "BTC", "--out", str(root))
    assert published.returncode == 0, published.stderr
    assert msgspec.json.decode(root.read_bytes())["liabilities"]["total_minor"] == sum(
        available + held for (account, asset), (available, held) in seen["balances"].items()
        if asset == "BTC" and account.startswith("c"))

    def credit_c000_and_its_wallet(snap: dict[str, Any]) -> dict[str, Any]:
        rows = snap["core"]["balances"]
        for i, row in enumerate(rows):
            if row[1] == 0 and row[0] in (1, 4):  # c000 and btc-cold, in BTC
                rows[i] = (row[0], row[1], row[2] + BTC, row[3])
        return snap

    with solvent.Ledger.open(persistent_url) as led:
        version = led.snapshot()
    forge_snapshot(raw, version, credit_c000_and_its_wallet)
    with solvent.Ledger.open(persistent_url) as led:  # the lie loads: it balances
        assert led.balance_minor("c000", "BTC")[0] == seen["balances"][("c000", "BTC")][0] + BTC
    for command in (["publish"], ["inclusion", "--account", "c000"]):
        result = solvent_proof(command[0], persistent_url, "--asset", "BTC", *command[1:])
        assert result.returncode == 1, result.stdout + result.stderr
        assert "TAMPERED" in result.stderr and result.stdout == ""


def test_cli_proof_verify_checks_whose_leaf_it_is(tmp_path: Path) -> None:
    """``--account`` ties the proof to the customer; the OK line names the account, and
    without ``--account`` a note says ownership was not checked. A root file nested
    100,000 deep is a usage error, not a ``RecursionError`` traceback."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    build_journal(url)
    root, mine = tmp_path / "root.json", tmp_path / "c000.json"
    assert solvent_proof("publish", url, "--asset", "BTC", "--out", str(root)).returncode == 0
    assert solvent_proof("inclusion", url, "--asset", "BTC", "--account", "c000",
                         "--out", str(mine)).returncode == 0
    checked = solvent_proof("verify", str(mine), "--root", str(root), "--account", "c000")
    assert checked.returncode == 0 and "for account 'c000'" in checked.stdout, checked.stderr
    assert "note:" not in checked.stderr
    unchecked = solvent_proof("verify", str(mine), "--root", str(root))
    assert unchecked.returncode == 0 and "--account" in unchecked.stderr
    someone_else = solvent_proof("verify", str(mine), "--root", str(root), "--account", "c001")
    assert someone_else.returncode == 1 and "account_mismatch" in someone_else.stderr
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    nested = solvent_proof("verify", str(mine), "--root", str(deep))
    assert nested.returncode == 2 and "Traceback" not in nested.stderr, nested.stderr


def test_records_reads_from_the_batch_it_needs_and_refuses_a_gap(
    persistent_url: str, raw: RawStore
) -> None:
    """``records(after_position=p)`` reads the journal from the batch holding ``p + 1``:
    a batch before it may be damaged without effect on it, while a read from the start
    meets the damage and says so (a record out of place is ``TamperDetected``, not a
    journal with a hole or a repeat)."""
    build_journal(persistent_url)
    store = JournalStore(persistent_url, create=False)
    try:
        starts = {b.originator_version: r.batch_decoder.decode(b.payload).first_position
                  for b in store.read()}
    finally:
        store.close()
    led = solvent.Ledger.open(persistent_url)
    try:
        every = list(led.records())
        from_4 = [rec for rec in every if rec.position >= starts[4]]
        raw.set_state(2, raw.state(3))  # batch 2 now repeats batch 3's records
        with pytest.raises(solvent.TamperDetected, match="batch 2 holds position") as info:
            list(led.records())
        assert (info.value.version, info.value.position) == (2, starts[3])
        assert list(led.records(after_position=starts[4] - 1)) == from_4
        raw.delete(3)  # and batch 3 is gone: a hole in the versions
        with pytest.raises(solvent.TamperDetected):
            list(led.records(after_position=starts[2]))
        assert list(led.records(after_position=starts[4] - 1)) == from_4
        envelope = msgspec.msgpack.decode(raw.state(4))
        envelope["payload"] = b"\xc1"  # never valid msgpack
        raw.set_state(4, msgspec.msgpack.encode(envelope))
        with pytest.raises(solvent.TamperDetected, match="batch 4 does not decode") as info:
            list(led.records(after_position=starts[4]))  # the bisection reads batch 4
        assert info.value.version == 4
    finally:
        led.close()


def test_verify_from_a_directory_it_cannot_write_reads_a_live_journal_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An auditor without write access to the ledger's directory read it as
    ``immutable``: SQLite then ignores the writer's WAL and takes the file as never
    changing, so a journal being written was read stale or torn, and 8 of 28 verifies
    beside a busy writer said TAMPERED (found by the concurrency probe). Where the
    WAL files exist, it is read with ``mode=ro`` now. (Tests run as root, which may
    write anywhere: the directory's access check is what is made to fail.)"""
    path = tmp_path / "live.db"
    url = f"sqlite:///{path}"
    writer = solvent.Ledger.open(url, clock=Clock())
    try:
        build_exchange(writer, customers=2, customer_btc=1)
        for i in range(20):  # small commits: they stay in the WAL, not yet checkpointed
            writer.transfer("c000", "c001", "BTC", "0.001", ref=f"t-{i}")
        assert Path(f"{path}-wal").stat().st_size > 0
        real_access = os.access
        monkeypatch.setattr(
            "solvent.store.os.access",
            lambda p, mode, *a, **k: False if os.path.isdir(p) else real_access(p, mode))
        store = JournalStore(url, readonly=True)
        try:
            report, _state = verify_store(store, "compiled")
        finally:
            store.close()
        assert (report.batches, report.head_digest) == (writer.version, writer.head_digest)
    finally:
        writer.close()
    # with the writer gone (and its WAL files with it), a closed journal is read as
    # immutable: the directory stays unwritten
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()
    store = JournalStore(url, readonly=True)
    try:
        assert verify_store(store, "compiled")[0].batches == 21
    finally:
        store.close()
