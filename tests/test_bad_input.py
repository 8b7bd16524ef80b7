"""Bad input at the boundary: every rejection path raises its typed error, carries a
machine-readable ``code`` and a message naming what is involved, and changes nothing:
not the position, not the version, not a balance, not the journal.

The exception: a refused command that spends company funds is journaled as a
``CommandRejected`` record (one record, no balance change) for forensics.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from decimal import Decimal, localcontext
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import solvent
from conftest import Clock, Exchange, assert_books_balance, build_exchange, observe
from solvent import records as r
from solvent.amounts import from_minor, to_minor
from solvent.core import codes as c
from solvent.core import refs_class

BTC = 10**8
INT64_MAX = 2**63 - 1


@pytest.fixture
def led(core: str) -> Iterator[solvent.Ledger]:
    ledger = solvent.Ledger.open("memory:", core=core, clock=Clock())
    yield ledger
    ledger.close()


@pytest.fixture
def ex(led: solvent.Ledger) -> Exchange:
    """treasury (company), customers c000..c002, each customer holding 1 BTC and 1,000 KRW."""
    ex = build_exchange(led, customers=3, customer_btc=1)
    with led.batch():
        for cust in ex.customers:
            led.deposit(cust, "KRW", 1_000, wallet="krw-bank", ref=f"krw-{cust}")
    return ex


def rejects(
    led: solvent.Ledger,
    error: type[solvent.Rejected],
    code: str,
    call: Callable[[], object],
    *names: str,
) -> solvent.Rejected:
    """``call()`` raises ``error`` with ``code`` and every one of ``names`` in its
    message, and the ledger (state and journal) is exactly as before."""
    before = observe(led)
    with pytest.raises(error) as info:
        call()
    exc = info.value
    assert isinstance(exc, solvent.Rejected)
    assert exc.code == code, (exc.code, str(exc))
    assert type(exc).code == code
    message = str(exc)
    assert message == exc.message
    for name in names:
        assert name in message, (name, message)
    assert len(message) < 400, message  # bounded, even for a 10 KB input
    assert observe(led) == before
    return exc


def deposit(led: solvent.Ledger, amount: Any, *, account: str = "c000", asset: str = "BTC",
            wallet: str = "btc-cold", ref: str = "bad-dep") -> Callable[[], object]:
    return lambda: led.deposit(account, asset, amount, wallet=wallet, ref=ref)


def transfer(led: solvent.Ledger, amount: Any, *, src: str = "c000", dst: str = "c001",
             asset: str = "BTC", ref: str = "bad-tr", **kw: Any) -> Callable[[], object]:
    return lambda: led.transfer(src, dst, asset, amount, ref=ref, **kw)


# -- amounts -------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [1.5, 0.1, 1.0, float("nan"), float("inf"), -0.0])
def test_float_amount_is_a_type_error(led: solvent.Ledger, ex: Exchange, amount: float) -> None:
    for call in (deposit(led, amount), transfer(led, amount)):
        exc = rejects(led, solvent.FloatAmount, "float_amount", call, "BTC", "float", "c000")
        assert isinstance(exc, TypeError)
        assert isinstance(exc, solvent.InvalidAmount)


@pytest.mark.parametrize(
    "amount",
    [Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("-Infinity"),
     Decimal("-NaN")],
)
def test_non_finite_decimal_is_invalid(led: solvent.Ledger, ex: Exchange, amount: Decimal) -> None:
    for call in (deposit(led, amount), transfer(led, amount)):
        rejects(led, solvent.InvalidAmount, "invalid_amount", call, "BTC", "c000")


@pytest.mark.parametrize(
    "amount",
    ["-1", "-0.5", Decimal("-1"), Decimal("-0.00000001"), -1, -(10**30), "+1", " 1", "1 ",
     "1e3", "0x10", "1_000", "", ".5", "5.", "１", "1,5", "--1"],
)
def test_negative_or_malformed_amount_is_invalid(
    led: solvent.Ledger, ex: Exchange, amount: object
) -> None:
    for call in (deposit(led, amount), transfer(led, amount)):
        rejects(led, solvent.InvalidAmount, "invalid_amount", call, "BTC", "c000")


@pytest.mark.parametrize(
    "amount", ["0", "0.0", "0.00000000", "00", Decimal(0), Decimal("-0"), Decimal("0E-8"), 0]
)
def test_zero_amount_is_invalid(led: solvent.Ledger, ex: Exchange, amount: object) -> None:
    for call in (deposit(led, amount), transfer(led, amount)):
        exc = rejects(led, solvent.InvalidAmount, "invalid_amount", call, "BTC", "c000")
        assert "positive" in str(exc)


@pytest.mark.parametrize(
    ("asset", "wallet", "amount"),
    [
        ("BTC", "btc-cold", "0.000000001"),
        ("BTC", "btc-cold", "1.123456789"),
        ("BTC", "btc-cold", Decimal("0.000000001")),
        ("BTC", "btc-cold", Decimal("1.000000005")),
        ("KRW", "krw-bank", "1.5"),
        ("KRW", "krw-bank", "0.1"),
        ("KRW", "krw-bank", Decimal("2000.5")),
    ],
)
def test_excess_decimals_are_an_error_never_a_rounding(
    led: solvent.Ledger, ex: Exchange, asset: str, wallet: str, amount: object
) -> None:
    rejects(led, solvent.InvalidAmount, "invalid_amount",
            deposit(led, amount, asset=asset, wallet=wallet), asset, "decimals", "c000")
    rejects(led, solvent.InvalidAmount, "invalid_amount",
            transfer(led, amount, asset=asset), asset, "decimals", "c000")


@pytest.mark.parametrize(
    ("asset", "wallet", "amount"),
    [
        ("BTC", "btc-cold", 92_233_720_369),  # whole units: * 10**8 > INT64_MAX
        ("BTC", "btc-cold", 10**40),
        ("BTC", "btc-cold", "92233720368.54775808"),  # INT64_MAX + 1 satoshi
        ("BTC", "btc-cold", "9" * 60),
        ("BTC", "btc-cold", "9" * 10_000),  # a huge string
        ("BTC", "btc-cold", Decimal("1E+30")),
        ("BTC", "btc-cold", Decimal("1E+1000000")),
        ("BTC", "btc-cold", Decimal("9" * 100)),
        ("BTC", "btc-cold", Decimal("9" * 10_000)),
        ("KRW", "krw-bank", INT64_MAX + 1),
        ("KRW", "krw-bank", 2**64),
        ("KRW", "krw-bank", str(INT64_MAX + 1)),
    ],
)
def test_int64_overflow_is_invalid(
    led: solvent.Ledger, ex: Exchange, asset: str, wallet: str, amount: object
) -> None:
    exc = rejects(led, solvent.InvalidAmount, "invalid_amount",
                  deposit(led, amount, asset=asset, wallet=wallet), asset, "c000")
    assert exc.details.get("asset") == asset
    rejects(led, solvent.InvalidAmount, "invalid_amount",
            transfer(led, amount, asset=asset), asset, "c000")


def test_largest_int64_amount_is_accepted_and_custody_cannot_overflow(
    led: solvent.Ledger, ex: Exchange
) -> None:
    led.deposit("c000", "KRW", INT64_MAX - 3_000, wallet="krw-bank", ref="whale")
    assert led.totals("KRW").custody_minor == INT64_MAX
    exc = rejects(led, solvent.BalanceOverflow, "balance_overflow",
                  deposit(led, 1, asset="KRW", wallet="krw-bank", ref="one-more"),
                  "KRW", "int64")
    assert exc.details["amount_minor"] == 1
    # moving money around at the limit is fine; only custody growth is bounded
    led.transfer("c000", "c001", "KRW", INT64_MAX - 3_000, ref="whale-move")
    assert led.balance_minor("c001", "KRW") == (INT64_MAX - 2_000, 0)
    assert_books_balance(led)


@pytest.mark.parametrize("amount", [True, False])
def test_bool_is_not_an_amount(led: solvent.Ledger, ex: Exchange, amount: bool) -> None:
    for call in (deposit(led, amount), transfer(led, amount)):
        rejects(led, solvent.InvalidAmount, "invalid_amount", call, "bool", "BTC", "c000")


@pytest.mark.parametrize("amount", [None, b"1", [1], (1,), {"1": 1}, 1j, object()])
def test_other_types_are_not_amounts(led: solvent.Ledger, ex: Exchange, amount: object) -> None:
    for call in (deposit(led, amount), transfer(led, amount)):
        rejects(led, solvent.InvalidAmount, "invalid_amount", call, "BTC",
                type(amount).__name__)


def test_amounts_are_exact(led: solvent.Ledger, ex: Exchange) -> None:
    led.deposit("c000", "BTC", "0.00000001", wallet="btc-cold", ref="sat")
    led.deposit("c000", "BTC", Decimal("1.10000000"), wallet="btc-cold", ref="dec")
    led.deposit("c000", "BTC", 2, wallet="btc-cold", ref="int")
    led.deposit("c000", "BTC", "007.5", wallet="btc-cold", ref="lead-zeros")
    assert led.balance_minor("c000", "BTC") == (BTC + 1 + 110_000_000 + 2 * BTC + 750_000_000, 0)
    assert led.balance("c000", "BTC").available == Decimal("11.60000001")


# -- ids -----------------------------------------------------------------------------------


BAD_IDS: list[tuple[object, str]] = [
    ("", "empty"),
    ("a" * 10 * 1024, "10240 characters"),
    ("a" * 129, "129 characters"),
    (7, "got int"),
    (None, "got NoneType"),
    (b"c000", "got bytes"),
    (["c000"], "got list"),
    ("c 000", "white space"),
    ("c000\n", "white space"),
    ("c\x00", "printable"),
]


@pytest.mark.parametrize(
    ("slot", "bad", "why"),
    [
        (slot, bad, why)
        for slot in ("account", "asset", "wallet", "ref", "to", "actor")
        for bad, why in BAD_IDS
        if not (slot == "actor" and bad is None)  # actor=None: the default actor
    ],
)
def test_bad_ids_are_rejected(
    led: solvent.Ledger, ex: Exchange, slot: str, bad: object, why: str
) -> None:
    calls: dict[str, Callable[[], object]] = {
        "account": deposit(led, "1", account=bad),  # type: ignore[arg-type]
        "asset": deposit(led, "1", asset=bad),  # type: ignore[arg-type]
        "wallet": deposit(led, "1", wallet=bad),  # type: ignore[arg-type]
        "ref": deposit(led, "1", ref=bad),  # type: ignore[arg-type]
        "to": transfer(led, "1", dst=bad),  # type: ignore[arg-type]
        "actor": transfer(led, "0.1", actor=bad),
    }
    exc = rejects(led, solvent.InvalidId, "invalid_id", calls[slot], why)
    assert isinstance(exc, ValueError)


def test_ids_up_to_128_characters_are_accepted(led: solvent.Ledger, ex: Exchange) -> None:
    name = "x" * 128
    led.open_account(name)
    led.deposit(name, "BTC", "1", wallet="btc-cold", ref="r" * 128)
    assert led.balance_minor(name, "BTC") == (BTC, 0)


@pytest.mark.parametrize(
    ("call", "what"),
    [
        (lambda led: led.register_asset("", decimals=2), "asset"),
        (lambda led: led.register_asset(None, decimals=2), "asset"),
        (lambda led: led.open_account("a" * 10240), "account"),
        (lambda led: led.open_account(42), "account"),
        (lambda led: led.open_wallet(b"w", asset="BTC"), "wallet"),
        (lambda led: led.register_actor("", "operator"), "actor"),
        (lambda led: led.transfer_many([1], [2], [0], [1], ref=""), "ref"),
        (lambda led: led.freeze_account(7, reason="x"), "account"),
        (lambda led: led.transfer("c000", "c001", "BTC", "1", ref="m", memo="m" * 1025),
         "memo"),
        (lambda led: led.transfer("c000", "c001", "BTC", "1", ref="m", memo=5), "memo"),
        (lambda led: led.freeze_account("c000", reason="r" * 1025), "reason"),
        # a lone surrogate: no journal (UTF-8) can hold it; refused before any posting
        (lambda led: led.transfer("c000", "c001", "BTC", "0.1", ref="m", memo="x\ud800"),
         "memo"),
        (lambda led: led.freeze_account("c000", reason="\udfff"), "reason"),
    ],
)
def test_bad_ids_in_registration_and_other_commands(
    led: solvent.Ledger, ex: Exchange, call: Callable[[solvent.Ledger], object], what: str
) -> None:
    rejects(led, solvent.InvalidId, "invalid_id", lambda: call(led), what)


# -- unknown names -------------------------------------------------------------------------


def test_unknown_asset_account_wallet(led: solvent.Ledger, ex: Exchange) -> None:
    rejects(led, solvent.UnknownAsset, "unknown_asset", deposit(led, "1", asset="ETH"), "ETH")
    rejects(led, solvent.UnknownAsset, "unknown_asset", transfer(led, "1", asset="ETH"), "ETH")
    rejects(led, solvent.UnknownAsset, "unknown_asset",
            lambda: led.open_wallet("eth-cold", asset="ETH"), "ETH")
    rejects(led, solvent.UnknownAccount, "unknown_account",
            deposit(led, "1", account="nobody"), "nobody")
    rejects(led, solvent.UnknownAccount, "unknown_account", transfer(led, "1", src="nobody"),
            "nobody")
    rejects(led, solvent.UnknownAccount, "unknown_account", transfer(led, "1", dst="nobody"),
            "nobody")
    rejects(led, solvent.UnknownAccount, "unknown_account",
            lambda: led.freeze_account("nobody", reason="x"), "nobody")
    rejects(led, solvent.UnknownWallet, "unknown_wallet",
            deposit(led, "1", wallet="btc-hot"), "btc-hot")
    # an account is not a wallet
    rejects(led, solvent.UnknownWallet, "unknown_wallet",
            deposit(led, "1", wallet="c001"), "c001", "wallet")
    for read in (lambda: led.balance("nobody", "BTC"), lambda: led.balance("c000", "ETH"),
                 lambda: led.totals("ETH")):
        with pytest.raises((solvent.UnknownAccount, solvent.UnknownAsset)):
            read()


def test_asset_mismatch(led: solvent.Ledger, ex: Exchange) -> None:
    exc = rejects(led, solvent.AssetMismatch, "asset_mismatch",
                  deposit(led, "1", asset="BTC", wallet="krw-bank"), "krw-bank", "KRW", "BTC")
    assert exc.details == {"wallet": "krw-bank", "asset": "BTC", "wallet_asset": "KRW"}
    rejects(led, solvent.AssetMismatch, "asset_mismatch",
            deposit(led, 2000, asset="KRW", wallet="btc-cold"), "btc-cold", "KRW", "BTC")


# -- refs ----------------------------------------------------------------------------------


def test_duplicate_refs_with_different_content(led: solvent.Ledger, ex: Exchange) -> None:
    led.deposit("c000", "BTC", "0.5", wallet="btc-cold", ref="txid-1")
    led.transfer("c000", "c001", "BTC", "0.1", ref="pay-1", memo="m")
    for call in (
        deposit(led, "0.6", ref="txid-1"),
        deposit(led, "0.5", account="c001", ref="txid-1"),
    ):
        exc = rejects(led, solvent.DuplicateRef, "duplicate_ref", call, "txid-1", "btc-cold",
                      "50000000", "BTC", "c000")
        assert exc.details["ref"] == "txid-1"
    for call in (
        transfer(led, "0.2", ref="pay-1", memo="m"),
        transfer(led, "0.1", ref="pay-1", memo="other"),
        transfer(led, "0.1", src="c001", dst="c000", ref="pay-1", memo="m"),
        transfer(led, "0.1", dst="c002", ref="pay-1", memo="m"),
    ):
        rejects(led, solvent.DuplicateRef, "duplicate_ref", call, "pay-1", "10000000", "BTC",
                "c000", "c001")
    led.transfer_many([1], [2], [0], [5], ref="bulk-1")
    rejects(led, solvent.DuplicateRef, "duplicate_ref",
            lambda: led.transfer_many([1], [2], [0], [6], ref="bulk-1"), "bulk-1")
    # the same bulk again is a replay with the first outcome
    before = observe(led)
    replay = led.transfer_many(array("q", [1]), [2], [0], [5], ref="bulk-1")
    assert replay.replayed and replay.applied == 1 and replay.outcomes == b"\x00"
    assert observe(led) == before


# -- transfer shapes -----------------------------------------------------------------------


def test_transfer_to_self(led: solvent.Ledger, ex: Exchange) -> None:
    rejects(led, solvent.SameAccount, "same_account", transfer(led, "0.1", dst="c000"), "c000")
    rejects(led, solvent.SameAccount, "same_account",
            transfer(led, "1", src="treasury", dst="treasury"), "treasury")


@pytest.mark.parametrize(("src", "dst"), [("btc-cold", "c000"), ("c000", "btc-cold"),
                                          ("krw-bank", "c000"), ("btc-cold", "btc-cold")])
def test_transfer_from_or_to_a_wallet(
    led: solvent.Ledger, ex: Exchange, src: str, dst: str
) -> None:
    wallet = src if src.endswith(("cold", "bank")) else dst
    rejects(led, solvent.InvalidArgument, "invalid_argument",
            transfer(led, "0.1", src=src, dst=dst), wallet, "wallet")


def test_deposit_into_a_wallet_as_account(led: solvent.Ledger, ex: Exchange) -> None:
    rejects(led, solvent.InvalidArgument, "invalid_argument",
            deposit(led, "1", account="btc-cold"), "btc-cold", "wallet")


def test_insufficient_funds_names_account_asset_and_amounts(
    led: solvent.Ledger, ex: Exchange
) -> None:
    exc = rejects(led, solvent.InsufficientFunds, "insufficient_funds",
                  transfer(led, "1.5"), "c000", "BTC", "1.5", "1.00000000")
    assert exc.details["account"] == "c000"
    assert exc.details["amount_minor"] == 150_000_000
    assert exc.details["available_minor"] == BTC
    led.open_account("empty")
    exc = rejects(led, solvent.InsufficientFunds, "insufficient_funds",
                  transfer(led, "0.1", src="empty"), "empty", "available 0.00000000 BTC")
    assert "E-" not in str(exc)


# -- registration --------------------------------------------------------------------------


def test_register_duplicates(led: solvent.Ledger, ex: Exchange) -> None:
    rejects(led, solvent.AlreadyExists, "already_exists",
            lambda: led.register_asset("BTC", decimals=8), "BTC")
    rejects(led, solvent.AlreadyExists, "already_exists",
            lambda: led.register_asset("BTC", decimals=2), "BTC")
    rejects(led, solvent.AlreadyExists, "already_exists", lambda: led.open_account("c000"),
            "c000")
    rejects(led, solvent.AlreadyExists, "already_exists",
            lambda: led.open_account("treasury", kind="company"), "treasury")
    rejects(led, solvent.AlreadyExists, "already_exists",
            lambda: led.open_account("btc-cold"), "btc-cold")
    rejects(led, solvent.AlreadyExists, "already_exists",
            lambda: led.open_wallet("c000", asset="BTC"), "c000")
    led.register_actor("ops", "operator")
    rejects(led, solvent.AlreadyExists, "already_exists",
            lambda: led.register_actor("ops", "auditor"), "ops")
    rejects(led, solvent.AlreadyExists, "already_exists",
            lambda: led.register_actor("system", "operator"), "system")


@pytest.mark.parametrize("decimals", [-1, 19, 100, "8", 8.0, True, None, Decimal(8)])
def test_bad_decimals(led: solvent.Ledger, ex: Exchange, decimals: object) -> None:
    rejects(led, solvent.InvalidArgument, "invalid_argument",
            lambda: led.register_asset("ETH", decimals=decimals), "decimals")  # type: ignore


def test_decimals_bounds_are_accepted(led: solvent.Ledger, ex: Exchange) -> None:
    led.register_asset("ZERO", decimals=0)
    led.register_asset("WEI18", decimals=18)
    led.open_wallet("wei-cold", asset="WEI18")
    led.deposit("c000", "WEI18", "0.000000000000000001", wallet="wei-cold", ref="1wei")
    assert led.balance_minor("c000", "WEI18") == (1, 0)
    # 18 decimals leave room for only ~9.2 whole units in int64
    rejects(led, solvent.InvalidAmount, "invalid_amount",
            deposit(led, 10, asset="WEI18", wallet="wei-cold", ref="10eth"), "WEI18")


@pytest.mark.parametrize("kind", ["wallet", "vip", "", "Customer", None, 0])
def test_bad_account_kind(led: solvent.Ledger, ex: Exchange, kind: object) -> None:
    rejects(led, solvent.InvalidArgument, "invalid_argument",
            lambda: led.open_account("new", kind=kind), "kind")  # type: ignore[arg-type]


@pytest.mark.parametrize("role", ["admin", "", "Operator", None, 1])
def test_bad_role(led: solvent.Ledger, ex: Exchange, role: object) -> None:
    rejects(led, solvent.InvalidArgument, "invalid_argument",
            lambda: led.register_actor("new", role), "role")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"core": "rust"}, "core"), ({"snapshot_every": 0}, "snapshot_every"),
     ({"snapshot_every": 1.5}, "snapshot_every"), ({"snapshot_every": True}, "snapshot_every"),
     ({"actor": ""}, "actor"), ({"clock": 1_771_000_000}, "clock"), ({"clock": "x"}, "clock")],
)
def test_bad_open_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(solvent.Rejected, match=message):
        solvent.Ledger.open("memory:", **kwargs)


BAD_READINGS = [1_771_000_000.5, -1, 2**63, True, "1771000000000000000",
                Decimal("1771000000000000000"), None,
                # a clock that raises: an NTP source gone, an interrupt
                RuntimeError("clock source unavailable"), KeyboardInterrupt()]


@pytest.mark.parametrize("reading", BAD_READINGS, ids=repr)
def test_a_clock_reading_that_is_not_int_nanoseconds_is_refused_and_changes_nothing(
    store_url: str, core: str, reading: object
) -> None:
    """``Ledger.open(clock=time.time)`` (a float) used to be journaled, and the journal
    then did not decode: the ledger could not be opened again. Now every reading is
    checked before a record is made, on the path that journals a change it already
    made (an order) as on the one that journals first (a transfer). A clock that raises
    used to leave the change made and unjournaled: a transfer applied in memory only
    (its ref then applied again on retry), an order resting with no record; the clock's
    exception now goes out with nothing changed."""
    if isinstance(reading, BaseException):
        expected: tuple[type[BaseException], str | None] = (type(reading), str(reading) or None)
    else:
        expected = (solvent.InvalidArgument, "clock returned")

    def read() -> object:
        if isinstance(reading, BaseException):
            raise reading
        return reading

    good = Clock()
    readings: list[Callable[[], object]] = [good]
    led = solvent.Ledger.open(store_url, core=core, clock=lambda: readings[-1]())
    try:
        from conftest import MARKET, market_exchange

        market_exchange(led, good)
        order = led.place_order("c000", MARKET, "buy", qty="0.01", price="98000000")
        before = observe(led)
        commands: list[Callable[[], object]] = [
            lambda: led.transfer("c000", "c001", "BTC", "0.1", ref="t-1"),
            lambda: led.place_order("c001", MARKET, "sell", qty="0.01", price="99000000"),
            lambda: led.cancel_order(order.order_id),
            lambda: led.freeze_account("c002", reason="check"),
        ]
        readings.append(read)
        for command in commands:
            with pytest.raises(expected[0], match=expected[1]):
                command()
            assert observe(led) == before
            with pytest.raises(expected[0], match=expected[1]), led.batch():
                led.open_account("inside")
            assert observe(led) == before
        readings.pop()
        for command in commands:
            command()
        led.verify()
    finally:
        led.close()
    if store_url != "memory:":
        with solvent.Ledger.open(store_url, core=core) as again:
            assert again.is_frozen("c002") and len(again.open_orders("c001")) == 1


@pytest.mark.parametrize(
    "url", ["", "mysql://x/y", "sqlite://host/file.db", "sqlite:///", "memory:?x",
            "sqlite:///x.db?prefix=bad-prefix", "postgresql:///test?prefix=1abc",
            "sqlite:///x.db?prefix=", 42, "sqlite:///.", "sqlite:///a%00b.db",
            "sqlite:///:memory:", "sqlite:///file:x.db%3Fmode=memory"],
)
def test_bad_store_urls(url: object, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(solvent.StoreError):
        solvent.Ledger.open(url)  # type: ignore[arg-type]


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Any) -> None:
    """SQLite's own error from opening it (eventsourcing lets it out of its first
    PRAGMA) used to escape as ``sqlite3.DatabaseError``."""
    junk = tmp_path / "junk.db"
    junk.write_bytes(bytes(range(256)) * 20)
    with pytest.raises(solvent.StoreError, match="not a database"):
        solvent.Ledger.open(f"sqlite:///{junk}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.db"]


@pytest.mark.parametrize("url", [
    "postgresql://u:Sekr1t@127.0.0.1:notaport/db", "postgresql://u:Sekr1t@127.0.0.1:99999/db",
    "postgresql://u:Sekr1t@[::1/db", "postgresql://u:Sek/r1t@127.0.0.1:1/db",
    "postgresql://u:Sek?r1t@127.0.0.1:1/db", "postgresql://u:Sek#r1t@127.0.0.1:1/db",
    "postgresql://u@127.0.0.1:1/db?password=Sekr1t",
])
def test_a_malformed_store_url_is_a_store_error_that_shows_no_password(url: str) -> None:
    """A password with an unescaped ``/``, ``?`` or ``#`` splits the URL elsewhere: the
    port did not parse (a bare ``ValueError`` quoting part of the password), or the rest
    of the password became a query parameter quoted in the message."""
    with pytest.raises(solvent.StoreError) as info:
        solvent.Ledger.open(url)
    message = str(info.value)
    assert not any(piece in message for piece in ("Sekr1t", "Sek", "r1t")), message
    assert "malformed store URL" in message or (
        "unknown store URL parameter 'password'" in message)


def test_a_driver_message_about_a_url_shows_no_password() -> None:
    from solvent.store import postgres_unreachable, redact

    why = postgres_unreachable("postgresql://u:Sekr1t%zz@127.0.0.1:1/db", 1)
    assert why is not None and "Sekr1t" not in why, why
    assert redact("postgresql://u:p%40ss@h/db?prefix=x") == "postgresql://u:***@h/db?prefix=x"
    assert redact("sqlite:///a@b.db") == "sqlite:///a@b.db"


def test_a_fragment_is_refused_not_dropped(tmp_path: Any) -> None:
    """``sqlite:///ledger.db#x`` opened ``ledger.db``: the ``#x`` was dropped silently."""
    with pytest.raises(solvent.StoreError, match="fragment"):
        solvent.Ledger.open(f"sqlite:///{tmp_path}/ledger.db#x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seconds", ["0", "-1", "nan", "inf", "301", "5s", ""])
def test_bad_postgres_connect_timeout(seconds: str) -> None:
    """Refused before any connection is tried (no server is needed to see it)."""
    url = f"postgresql://nobody@127.0.0.1:1/none?connect_timeout={seconds}"
    with pytest.raises(solvent.StoreError, match=r"connect_timeout .* must be seconds in"):
        solvent.Ledger.open(url)


@pytest.mark.parametrize("attempts", ["0", "11", "-1", "1.5", "", "x", "9" * 5000, "\u0663"])
def test_bad_postgres_attempts(attempts: str) -> None:
    """Refused before any connection is tried (no server is needed to see it)."""
    url = f"postgresql://nobody@127.0.0.1:1/none?attempts={attempts}"
    with pytest.raises(solvent.StoreError, match=r"attempts .* must be a whole number in 1\.\.10"):
        solvent.Ledger.open(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [("sqlite:///x.db?connect_timeout=5", "unknown store URL parameter 'connect_timeout'"),
     ("sqlite:///x.db?attempts=2", "unknown store URL parameter 'attempts'"),
     ("sqlite:///x.db?prefix=a&prefix=b", "'prefix' given 2 times"),
     ("postgresql://nobody@127.0.0.1:1/none?atempts=3", "unknown store URL parameter 'atempts'"),
     ("postgresql://nobody@127.0.0.1:1/none?sslmode=require", "parameter 'sslmode'"),
     ("postgresql://nobody@127.0.0.1:1/none?attempts=2&attempts=3", "given 2 times")],
)
def test_unknown_or_repeated_store_url_parameters(
    url: str, message: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A parameter the store does not take (a typo, or one it would not honour) is
    refused rather than ignored, before anything is created or connected."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(solvent.StoreError, match=message):
        solvent.Ledger.open(url)
    assert list(tmp_path.iterdir()) == []


# -- actors and roles ----------------------------------------------------------------------


def test_unknown_actor(led: solvent.Ledger, ex: Exchange) -> None:
    rejects(led, solvent.UnknownActor, "unknown_actor",
            lambda: led.deposit("c000", "BTC", "1", wallet="btc-cold", ref="x",
                                actor="mallory"), "mallory")
    rejects(led, solvent.UnknownActor, "unknown_actor", transfer(led, "0.1", actor="mallory"),
            "mallory")
    rejects(led, solvent.UnknownActor, "unknown_actor",
            lambda: led.open_account("x", actor="mallory"), "mallory")
    with pytest.raises(solvent.UnknownActor):
        solvent.Ledger.open("memory:", actor="mallory").open_account("x")


def test_auditor_may_read_but_not_command(led: solvent.Ledger, ex: Exchange) -> None:
    led.register_actor("aud", "auditor")
    commands: list[Callable[[], object]] = [
        lambda: led.register_asset("ETH", decimals=18, actor="aud"),
        lambda: led.open_account("x", actor="aud"),
        lambda: led.open_wallet("w", asset="BTC", actor="aud"),
        lambda: led.register_actor("aud2", "operator", actor="aud"),
        lambda: led.deposit("c000", "BTC", "1", wallet="btc-cold", ref="x", actor="aud"),
        transfer(led, "0.1", actor="aud"),
        lambda: led.transfer_many([1], [2], [0], [1], ref="b", actor="aud"),
        lambda: led.freeze_account("c000", reason="x", actor="aud"),
        lambda: led.unfreeze_account("c000", reason="x", actor="aud"),
    ]
    for call in commands:
        exc = rejects(led, solvent.PermissionDenied, "permission_denied", call, "aud",
                      "auditor")
        assert exc.details["role"] == "auditor"
    assert led.verify().records == led.position
    assert led.balance("c000", "BTC").available == 1


def test_customer_actor_may_only_spend_its_own_account(led: solvent.Ledger, ex: Exchange) -> None:
    led.register_actor("c000", "customer")
    led.transfer("c000", "c001", "BTC", "0.1", ref="own", actor="c000")
    assert led.balance_minor("c001", "BTC") == (110_000_000, 0)
    rejects(led, solvent.PermissionDenied, "permission_denied",
            transfer(led, "0.1", src="c001", dst="c000", actor="c000"), "c000", "c001")
    rejects(led, solvent.PermissionDenied, "permission_denied",
            transfer(led, "0.1", src="treasury", dst="c000", actor="c000"), "treasury")
    for call in (
        lambda: led.deposit("c000", "BTC", "1", wallet="btc-cold", ref="x", actor="c000"),
        lambda: led.freeze_account("c001", reason="x", actor="c000"),
        lambda: led.transfer_many([1], [2], [0], [1], ref="b", actor="c000"),
        lambda: led.open_account("x", actor="c000"),
    ):
        rejects(led, solvent.PermissionDenied, "permission_denied", call, "c000", "customer")


def test_customer_actor_named_like_a_company_account_may_not_spend_it(
    led: solvent.Ledger, ex: Exchange
) -> None:
    led.deposit("treasury", "BTC", "5", wallet="btc-cold", ref="fund")
    led.register_actor("treasury", "customer")
    rejects(led, solvent.PermissionDenied, "permission_denied",
            transfer(led, "1", src="treasury", actor="treasury"), "treasury")


# -- freezes -------------------------------------------------------------------------------


def test_frozen_account_refuses_debits_but_receives_credits(
    led: solvent.Ledger, ex: Exchange
) -> None:
    led.register_actor("ops", "operator")
    receipt = led.freeze_account("c000", reason="phantom credit", actor="ops")
    rec = list(led.records())[-1]
    assert isinstance(rec, r.AccountFrozen)
    assert (rec.position, rec.account, rec.reason, rec.actor) == (
        receipt.position, "c000", "phantom credit", "ops")
    exc = rejects(led, solvent.AccountFrozen, "account_frozen", transfer(led, "0.1"), "c000",
                  "frozen", "BTC", "0.1")
    assert exc.details["account"] == "c000"
    rejects(led, solvent.AccountFrozen, "account_frozen", transfer(led, "0.1", actor="ops"),
            "c000")
    led.transfer("c001", "c000", "BTC", "0.1", ref="credit-while-frozen")
    led.deposit("c000", "BTC", "1", wallet="btc-cold", ref="deposit-while-frozen")
    assert led.balance_minor("c000", "BTC") == (210_000_000, 0)
    rejects(led, solvent.InvalidState, "invalid_state",
            lambda: led.freeze_account("c000", reason="again"), "c000", "frozen")
    led.unfreeze_account("c000", reason="cleared", actor="ops")
    rec = list(led.records())[-1]
    assert isinstance(rec, r.AccountUnfrozen)
    assert (rec.account, rec.reason, rec.actor) == ("c000", "cleared", "ops")
    rejects(led, solvent.InvalidState, "invalid_state",
            lambda: led.unfreeze_account("c000", reason="again"), "c000")
    led.transfer("c000", "c001", "BTC", "0.1", ref="after-unfreeze")


def test_freeze_needs_a_reason_and_an_account(led: solvent.Ledger, ex: Exchange) -> None:
    rejects(led, solvent.InvalidArgument, "invalid_argument",
            lambda: led.freeze_account("c000", reason=""), "reason")
    rejects(led, solvent.InvalidArgument, "invalid_argument",
            lambda: led.freeze_account("btc-cold", reason="x"), "btc-cold", "wallet")


def test_frozen_company_account_refusal_is_journaled(led: solvent.Ledger, ex: Exchange) -> None:
    led.deposit("treasury", "BTC", "5", wallet="btc-cold", ref="fund")
    led.freeze_account("treasury", reason="incident")
    before = observe(led, journal=False)
    with pytest.raises(solvent.AccountFrozen):
        led.transfer("treasury", "c000", "BTC", "1", ref="promo")
    after = observe(led, journal=False)
    assert after["balances"] == before["balances"]
    assert after["position"] == before["position"] + 1
    rec = list(led.records())[-1]
    assert isinstance(rec, r.CommandRejected)
    assert (rec.code, rec.account, rec.asset, rec.amount_minor, rec.ref) == (
        "account_frozen", "treasury", "BTC", BTC, "promo")


def test_company_overdraft_refusal_is_journaled_customer_one_is_not(
    led: solvent.Ledger, ex: Exchange
) -> None:
    before = observe(led)
    with pytest.raises(solvent.InsufficientFunds) as info:
        led.transfer("treasury", "c000", "BTC", "1", ref="promo", actor="system")
    assert "treasury" in str(info.value)
    after = observe(led)
    assert after["balances"] == before["balances"]
    assert after["position"] == before["position"] + 1
    assert after["records"][:-1] == before["records"]
    rec = after["records"][-1]
    assert isinstance(rec, r.CommandRejected)
    assert (rec.command, rec.code, rec.actor, rec.account, rec.amount_minor) == (
        "transfer", "insufficient_funds", "system", "treasury", BTC)
    assert rec.message == str(info.value)
    # a customer's own overdraft is a plain refusal, not journaled
    rejects(led, solvent.InsufficientFunds, "insufficient_funds", transfer(led, "2"), "c000")


# -- the bulk path -------------------------------------------------------------------------


def test_bulk_float_column_is_a_type_error(led: solvent.Ledger, ex: Exchange) -> None:
    exc = rejects(led, solvent.FloatAmount, "float_amount",
                  lambda: led.transfer_many([1, 2], [2, 3], [0, 0], [1, 2.5], ref="b"),
                  "amount_minor", "float")
    assert isinstance(exc, TypeError)
    rejects(led, solvent.FloatAmount, "float_amount",
            lambda: led.transfer_many([1.0], [2], [0], [1], ref="b"), "from_index")


def test_bulk_bool_amount_is_not_one_minor_unit(led: solvent.Ledger, ex: Exchange) -> None:
    """A bool is refused as an amount on the single path; in a bulk column it was taken
    as 1 minor unit."""
    rejects(led, solvent.InvalidAmount, "invalid_amount",
            lambda: led.transfer_many([1, 2], [2, 3], [0, 0], [5, True], ref="b"),
            "amount_minor", "bool")


@pytest.mark.parametrize("value", [2**63, 2**64, -(2**63) - 1, 10**30])
def test_bulk_value_beyond_int64(led: solvent.Ledger, ex: Exchange, value: int) -> None:
    rejects(led, solvent.InvalidAmount, "invalid_amount",
            lambda: led.transfer_many([1], [2], [0], [value], ref="b"), "amount_minor", "int64")
    rejects(led, solvent.InvalidAmount, "invalid_amount",
            lambda: led.transfer_many([1], [value], [0], [1], ref="b"), "to_index", "int64")


@pytest.mark.parametrize(
    "cols",
    [([1, 2], [2], [0], [1]), ([1], [2, 3], [0], [1]), ([1], [2], [0, 0], [1]),
     ([1], [2], [0], [1, 1])],
)
def test_bulk_unequal_columns(
    led: solvent.Ledger, ex: Exchange, cols: tuple[list[int], ...]
) -> None:
    rejects(led, solvent.InvalidArgument, "invalid_argument",
            lambda: led.transfer_many(*cols, ref="b"), "differ in length")


@pytest.mark.parametrize("bad", [
    "1234", b"\x01\x02", None, 5, [None],
    # array() reads a buffer's raw bytes: 8 bytes were taken as one packed int64
    bytearray(b"\x01"), bytearray(b"\x01" + bytes(7)),
    [True], {1}, {1: 1}, (i for i in [1]),  # a bool; no order to pair items by
], ids=repr)
def test_bulk_columns_must_be_int_sequences(
    led: solvent.Ledger, ex: Exchange, bad: object
) -> None:
    rejects(led, solvent.InvalidArgument, "invalid_argument",
            lambda: led.transfer_many(bad, [2], [0], [1], ref="b"),  # type: ignore[arg-type]
            "from_index")


def test_transfer_ref_index_full(led: solvent.Ledger, ex: Exchange) -> None:
    """A full transfer-ref index refuses the next transfer before anything moves. (The
    limit is 2^31 - 2; the ledger's index is swapped for a real one of the same core with
    room for the entries it holds and one more.)"""
    led.transfer("c000", "c001", "BTC", "0.1", ref="pay-1")
    state = led._state
    small = refs_class(state.core_name)(max_refs=len(state.transfer_refs) + 1)
    for row in state.transfer_refs.export():
        small.add(*row)
    state.transfer_refs = small
    led.transfer("c000", "c001", "BTC", "0.1", ref="pay-2")
    exc = rejects(led, solvent.LimitExceeded, "limit_exceeded",
                  transfer(led, "0.1", ref="pay-3"), "transfer-ref index", "maximum")
    assert exc.details["ref"] == "pay-3"
    # a retry of a journaled transfer is still answered
    assert led.transfer("c000", "c001", "BTC", "0.1", ref="pay-2").replayed


def test_bulk_empty_and_too_large(led: solvent.Ledger, ex: Exchange) -> None:
    exc = rejects(led, solvent.LimitExceeded, "limit_exceeded",
                  lambda: led.transfer_many([], [], [], [], ref="b"), "got 0")
    assert exc.details["items"] == 0
    n = 1_000_001
    zeros = array("q", bytes(8 * n))
    exc = rejects(led, solvent.LimitExceeded, "limit_exceeded",
                  lambda: led.transfer_many(zeros, zeros, zeros, zeros, ref="b"),
                  "1000000", str(n))
    assert exc.details["items"] == n


def test_bulk_per_item_outcomes_without_exception(led: solvent.Ledger, ex: Exchange) -> None:
    idx = {name: led.account_index(name) for name in led.accounts()}
    btc, krw = led.asset_index("BTC"), led.asset_index("KRW")
    led.freeze_account("c002", reason="kyc")
    items = [
        ("c000", "c001", btc, 10, "ok"),
        ("c001", "c000", btc, 2 * BTC, "insufficient_funds"),
        (9_999, "c000", btc, 1, "unknown_account"),
        ("c000", -1, btc, 1, "unknown_account"),
        ("c000", "btc-cold", btc, 1, "wrong_kind"),
        ("btc-cold", "c000", btc, 1, "wrong_kind"),
        ("c000", "c000", btc, 1, "same_account"),
        ("c000", "c001", 7, 1, "unknown_asset"),
        ("c000", "c001", btc, -5, "invalid_amount"),
        ("c000", "c001", btc, 0, "invalid_amount"),
        ("c002", "c000", btc, 1, "account_frozen"),
        ("c000", "krw-bank", btc, 1, "asset_mismatch"),
        ("treasury", "c000", krw, 1, "insufficient_funds"),
        ("c001", "c002", krw, 1_000, "ok"),
    ]

    def num(x: str | int) -> int:
        return idx[x] if isinstance(x, str) else x

    before = observe(led)
    result = led.transfer_many([num(i[0]) for i in items], [num(i[1]) for i in items],
                               [i[2] for i in items], [i[3] for i in items], ref="bulk-mixed")
    expected = [(n, i[4]) for n, i in enumerate(items) if i[4] != "ok"]
    assert result.rejected() == expected
    assert result.applied == 2 and not result.replayed
    assert list(result.outcomes) == [
        0 if i[4] == "ok" else next(k for k, v in c.CODE_NAMES.items() if v == i[4])
        for i in items
    ]
    after = observe(led)
    assert after["position"] == before["position"] + 1 == result.position
    changed = {k for k in after["balances"] if after["balances"][k] != before["balances"][k]}
    assert changed == {("c000", "BTC"), ("c001", "BTC"), ("c001", "KRW"), ("c002", "KRW")}
    assert led.balance_minor("c000", "BTC") == (BTC - 10, 0)
    assert led.balance_minor("c002", "KRW") == (2_000, 0)
    rec = after["records"][-1]
    assert isinstance(rec, r.TransfersBulk)
    assert rec.outcome == result.outcomes and rec.ref == "bulk-mixed"
    assert_books_balance(led)
    led.verify()


class _Str(str):
    """A str subclass: ``to_minor`` takes its general path for it, not the fast one."""


@settings(max_examples=500, deadline=None)
@given(
    text=st.one_of(
        st.from_regex(r"[0-9]{1,22}(\.[0-9]{0,20})?", fullmatch=True),
        st.text(alphabet="0123456789.-+ e_", max_size=70),
    ),
    decimals=st.integers(min_value=0, max_value=18),
)
def test_str_amount_fast_path_matches_the_general_path(text: str, decimals: int) -> None:
    """``to_minor`` parses a plain str on a fast path; every str, valid or not, gets the
    same value or the same refusal (type and message) as on the general path."""
    def outcome(value: str) -> object:
        try:
            return to_minor(value, decimals, what="qty", asset="BTC")
        except (solvent.InvalidAmount, solvent.FloatAmount) as exc:
            return (type(exc), str(exc))

    fast, general = outcome(text), outcome(_Str(text))
    assert fast == general
    if isinstance(fast, int):  # and the value is the exact decimal one
        assert fast == Decimal(text).scaleb(decimals)


def _from_minor_by_text(minor: int, decimals: int) -> Decimal:
    """What ``from_minor`` returns, spelt out: the digits as text, the point placed."""
    if not decimals:
        return Decimal(minor)
    whole, frac = divmod(abs(minor), 10**decimals)
    return Decimal(f"{'-' if minor < 0 else ''}{whole}.{frac:0{decimals}d}")


@settings(max_examples=1_000, deadline=None)
@given(
    minor=st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**140), 2**140)),
    decimals=st.integers(min_value=0, max_value=18),
    caller_precision=st.sampled_from([None, 3, 12]),
)
def test_from_minor_is_exact_whatever_the_callers_decimal_context(
    minor: int, decimals: int, caller_precision: int | None
) -> None:
    """``from_minor`` shifts the point of ints of up to 40 digits in its own context and
    spells out longer ones: the same sign, digits and exponent as the text, also when the
    embedding program runs with a decimal context of low precision."""
    with localcontext() as ctx:
        if caller_precision is not None:
            ctx.prec = caller_precision
        got = from_minor(minor, decimals)
    want = _from_minor_by_text(minor, decimals)
    assert got.as_tuple() == want.as_tuple() and str(got) == str(want)
    if 0 < minor <= c.INT64_MAX:  # and it parses back to the same minor units
        assert to_minor(got, decimals) == minor
