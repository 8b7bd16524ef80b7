"""Every public command and read of the ledger, each argument in turn replaced by junk.

``test_bad_input.py`` tests each rejection path by name; this sweep asks the same of
inputs nobody thought of: a call either works or raises a typed
:class:`~solvent.SolventError` with a bounded message, and a refused call changes
nothing (balances, books, open orders, custody, the journal). Before it existed,
unhashable values and signalling NaNs escaped as ``TypeError`` and
``decimal.InvalidOperation``, a proof read that was refused still journaled the
ledger's proof key, and ``confirm_deposit(confirmations=2**64)`` left the state ahead
of the journal.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

import solvent
from conftest import (
    MARKET,
    Clock,
    attest_arrived,
    custody_view,
    market_exchange,
    market_view,
    observe,
)
from solvent.amounts import shown_value


#: Values that are wrong somewhere: of the wrong type, out of range, malformed, or the
#: right kind of value in the wrong place (an asset where an account is asked for).
class ReprRaises:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


JUNK: tuple[Any, ...] = (
    None, True, False, 1.5, float("nan"), -1, 0, 1, 2**63, 2**64, -(2**63) - 1, 10**30,
    "", " ", "x" * 5000, "\x00", "a\nb", "\ud800", "1e5", "1E+3", "0x10", "\u0661", "-0",
    "+1", "1_000", " 1", "1.", ".5", "nan", "inf", "-1", "0", "1" * 400, "0.000000001",
    Decimal("NaN"), Decimal("sNaN"), Decimal("1e-30"), Decimal("Infinity"),
    Decimal("1e30"), Decimal("-1"), Decimal("0"), b"abc", [], {}, (), object(), 1j,
    [None], [1.5], [2**63], [-1], ["a"], (1,),
    "BTC", "KRW", MARKET, "c000", "treasury", "ops-1", "audit", "system", "btc-cold",
    datetime(2020, 1, 1), datetime(2099, 1, 1, tzinfo=UTC), "buy", "limit", "FOK",
    10**5000, ReprRaises(),  # repr() raises on both: no message may need it
)
SLOT = "JUNK"  # where in a row or column the junk goes


def build(core: str) -> tuple[solvent.Ledger, dict[str, Any]]:
    """A live BTC-KRW market with a resting bid and ask, a detected deposit and a
    withdrawal awaiting approval: something for every command to act on."""
    clock = Clock()
    led = solvent.Ledger.open("memory:", core=core, clock=clock)
    market_exchange(led, clock)
    led.set_reference_price(MARKET, "98000000", band="0.05")
    bid = led.place_order("c000", MARKET, "buy", qty="0.5", price="97000000",
                          client_order_id="cid-1").order_id
    led.place_order("c001", MARKET, "sell", qty="0.5", price="99000000")
    led.detect_deposit("c002", "BTC", "0.1", wallet="btc-cold", ref="pending-1")
    # the chain shows it, and room for any amount the sweep's deposit takes as valid ("1E+3"
    # is 1,000 BTC): the deposits the sweep makes credit, not CoverageBreach
    attest_arrived(led, clock, "btc-cold", arrived_minor=10_000 * 10**8)
    wid = led.request_withdrawal("c000", "BTC", "0.01", wallet="btc-cold", address="bc1q",
                                 ref="wd-1")
    now = datetime.fromtimestamp(clock() / 1e9, tz=UTC)
    return led, {"bid": bid, "wid": wid, "now": now}


Call = tuple[str, tuple[Any, ...], dict[str, Any]]


def calls(led: solvent.Ledger, got: dict[str, Any]) -> list[Call]:
    """One valid call of each public method (more where a method has modes)."""
    bid, wid = got["bid"], got["wid"]
    row = led.order_row("c000", MARKET, "buy", qty="0.1", price="97000000")
    cols = ([led.account_index("c000")], [led.account_index("c001")],
            [led.asset_index("BTC")], [5])
    return [
        ("account_id", ("c000",), {}),
        ("account_index", ("c000",), {}),
        ("account_nonce", ("c000",), {}),
        ("amend_order", (bid,), {"qty": "0.2"}),
        ("amend_order", (bid,), {"price": "96000000"}),
        ("amend_row", (bid, MARKET), {"qty": "0.2"}),
        ("approve_resume", ("BTC",), {}),
        ("approve_withdrawal", (wid,), {"actor": "ops-2"}),
        ("asset_index", ("BTC",), {}),
        ("asset_status", ("BTC",), {}),
        ("attest", ("btc-cold", "10"), {"as_of": got["now"], "source": "node"}),
        ("balance", ("c000", "BTC"), {}),
        ("balance_minor", ("c000", "BTC"), {}),
        ("book", (MARKET, 10), {}),
        ("broadcast_withdrawal", (wid,), {"txid": "tx"}),
        ("cancel_order", (bid,), {}),
        ("cancel_row", (bid, MARKET), {}),
        ("complete_withdrawal", (wid,), {}),
        ("confirm_deposit", ("btc-cold", "pending-1"), {"confirmations": 1}),
        ("custody_policy", ("BTC",), {}),
        ("decimals", ("BTC",), {}),
        ("deposit", ("c000", "BTC", "0.5"), {"wallet": "btc-cold", "ref": "sw-dep"}),
        ("detect_deposit", ("c000", "BTC", "0.1"), {"wallet": "btc-cold", "ref": "sw-det"}),
        ("fail_withdrawal", (wid,), {"reason": "r"}),
        ("freeze_account", ("c002",), {"reason": "r"}),
        ("halt_market", (MARKET,), {"reason": "r"}),
        ("inclusion_proof", ("c000", "BTC"), {"at": None}),
        ("is_frozen", ("c000",), {}),
        ("liabilities_root", ("BTC",), {"at": None}),
        ("liabilities_tree", ("BTC",), {"at": None, "implementation": "python"}),
        ("list_market", ("ETH-KRW",), {"base": "BTC", "quote": "KRW", "tick_size": "1000",
                                       "lot_size": "0.001", "maker_fee": "0.001",
                                       "taker_fee": "0.002", "min_notional": "1000"}),
        ("market_id", (MARKET,), {}),
        ("market_spec", (MARKET,), {}),
        ("open_account", ("new-account",), {"kind": "customer"}),
        ("open_orders", ("c000",), {}),
        ("open_wallet", ("new-wallet",), {"asset": "BTC"}),
        ("order_row", ("c000", MARKET, "buy"), {"qty": "0.1", "price": "97000000",
                                                "type": "limit", "tif": "GTC",
                                                "post_only": False, "stp": "expire_maker"}),
        ("pending_deposits", ("c002",), {}),
        ("place_order", ("c000", MARKET, "buy"), {"qty": "0.1", "price": "97000000",
                                                  "type": "limit", "tif": "GTC",
                                                  "post_only": False, "stp": "expire_maker",
                                                  "client_order_id": "sw-c"}),
        ("place_order", ("c001", MARKET, "buy"), {"quote_qty": "100000", "type": "market",
                                                  "tif": "IOC"}),
        ("price_band", (MARKET,), {}),
        ("reconcile", ("BTC",), {}),
        ("records", (0,), {}),
        ("register_actor", ("new-actor", "operator"), {}),
        ("register_asset", ("ETH", 18), {}),
        ("request_withdrawal", ("c000", "BTC", "0.01"), {"wallet": "btc-cold",
                                                         "address": "bc1q", "ref": "sw-wd"}),
        ("require_live", ("BTC",), {}),
        ("reserves_statement", ("BTC",), {"at": None}),
        ("resume_asset", ("BTC",), {"reason": "r"}),
        ("resume_market", (MARKET,), {"reason": "r"}),
        ("set_custody_policy", ("BTC",), {"confirmations": 2, "tolerance": "0.001",
                                          "min_coverage": "1", "max_attestation_age_s": 3600,
                                          "account_daily_limit": "10",
                                          "asset_daily_limit": "100",
                                          "approval_threshold": "1"}),
        ("set_reference_price", (MARKET, "98000000"), {"band": "0.05"}),
        ("submit_orders", ([row],), {"ref": "sw-sub"}),
        *[("submit_orders", ([(*row[:k], SLOT, *row[k + 1:])],), {})
          for k in range(len(row))],
        ("totals", ("BTC",), {}),
        ("transfer", ("c000", "c001", "BTC", "0.1"), {"ref": "sw-tr", "memo": "m"}),
        ("transfer_many", cols, {"ref": "sw-tm"}),
        *[("transfer_many", tuple([SLOT] if j == k else col for j, col in enumerate(cols)),
           {"ref": "sw-tm"}) for k in range(len(cols))],
        ("unfreeze_account", ("c002",), {"reason": "r"}),
        ("verify", (), {"expect_head": None}),
        ("void_deposit", ("btc-cold", "pending-1"), {"reason": "reorg"}),
        ("withdrawal", (wid,), {}),
    ]


def with_junk(call: Call, slot: str | int, junk: Any) -> Callable[[solvent.Ledger], Any]:
    """``call`` with ``junk`` in argument ``slot`` (a position or a keyword); where that
    argument holds rows or columns with a ``SLOT`` marker, the junk goes there."""
    name, args, kwargs = call
    a, kw = list(args), dict(kwargs)
    if isinstance(slot, str):
        kw[slot] = junk
    elif isinstance(a[slot], list) and a[slot] and isinstance(a[slot][0], tuple) and (
        SLOT in a[slot][0]
    ):
        a[slot] = [tuple(junk if x == SLOT else x for x in a[slot][0])]
    elif isinstance(a[slot], list) and SLOT in a[slot]:
        a[slot] = [junk if x == SLOT else x for x in a[slot]]
    else:
        a[slot] = junk

    def run(led: solvent.Ledger) -> Any:
        out = getattr(led, name)(*a, **kw)
        return list(out) if name == "records" else out

    return run


def everything(led: solvent.Ledger) -> dict[str, Any]:
    """What any call could change: state, books, open orders, custody, the journal."""
    return {**market_view(led), **custody_view(led),
            "records": observe(led)["records"],
            "specs": {m: led.market_spec(m) for m in (MARKET,)}}


def test_every_method_of_the_public_api_is_swept() -> None:
    led, got = build("compiled")
    try:
        swept = {name for name, _, _ in calls(led, got)}
        public = {n for n in dir(solvent.Ledger) if not n.startswith("_")
                  and inspect.isfunction(getattr(solvent.Ledger, n))}
        # no argument to sweep, or the ledger's own lifecycle
        public -= {"accounts", "assets", "batch", "check_invariants", "close", "head", "open",
                   "snapshot"}
        assert public - swept == set()
    finally:
        led.close()


@pytest.mark.parametrize("index", range(len(calls(*build("compiled")))))
def test_junk_in_any_argument_is_refused_with_a_typed_error_and_changes_nothing(
    core: str, index: int
) -> None:
    led, got = build(core)
    call = calls(led, got)[index]
    name, args, kwargs = call
    slots: list[str | int] = [*range(len(args)), *kwargs]
    if "actor" in inspect.signature(getattr(led, name)).parameters:
        slots.append("actor")
    refused = 0
    before = everything(led)
    try:
        for slot in slots:
            for junk in JUNK:
                run = with_junk(calls(led, got)[index], slot, junk)
                try:
                    out = run(led)
                except solvent.SolventError as exc:
                    refused += 1
                    where = f"{name}({slot}={shown_value(junk)[:40]})"
                    assert isinstance(exc, solvent.Rejected), (where, exc)
                    assert exc.code == type(exc).code, where
                    assert 0 < len(str(exc)) < 400, (where, str(exc)[:500])
                    assert everything(led) == before, where
                else:  # the junk was valid there: start again from the same ledger
                    try:  # what it journaled decodes and replays (a None client_order_id
                        led.verify()  # was journaled and broke it, before 2026-11-22)
                    except solvent.TamperDetected as exc:
                        raise AssertionError(
                            f"{name}({slot}={shown_value(junk)[:40]}) journaled a record "
                            f"that does not replay: {exc}") from exc
                    if isinstance(out, solvent.BulkOutcomes):  # refused row by row
                        refused += out.codes() != ["ok"]
                    elif isinstance(out, solvent.BulkResult):
                        refused += out.applied == 0
                    led.close()
                    led, got = build(core)
                    before = everything(led)
    finally:
        led.close()
    assert refused > len(slots) * len(JUNK) // 2  # the sweep refuses, not accepts, junk
