"""Shared fixtures of the ledger tests: real stores, a deterministic clock, a small exchange.

Stores are real: ``memory:`` (eventsourcing's POPO recorders), a SQLite file under
``tmp_path`` and a PostgreSQL server (``SOLVENT_TEST_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``), each PostgreSQL test with its own
table prefix, dropped afterwards. Without a reachable server the PostgreSQL tests
are skipped with a message, unless ``SOLVENT_REQUIRE_POSTGRES=1`` (CI), in which case
they fail.

Helpers used by several modules are plain functions here (``Clock``,
``build_exchange``, ``observe``, ``RawStore``); test modules import them with
``from conftest import ...``.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import solvent
from solvent import records as r
from solvent.amounts import from_minor
from solvent.journal import StoredBatch
from solvent.store import (
    JournalStore,
    drop_postgres_store,
    postgres_conninfo,
    postgres_unreachable,
)

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
CLOCK_START_NS = 1_771_000_000_000_000_000  # Feb 2026, when the Bithumb payout happened
CORES = ("compiled", "python")


# -- PostgreSQL ----------------------------------------------------------------------------


def postgres_base_url() -> str:
    return os.environ.get("SOLVENT_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL


def postgres_required() -> bool:
    return os.environ.get("SOLVENT_REQUIRE_POSTGRES", "") == "1"


_pg_probe: dict[str, str | None] = {}


def postgres_unreachable_reason() -> str | None:
    """None when the server answers, else why not (probed once per session)."""
    base = postgres_base_url()
    if base not in _pg_probe:
        _pg_probe[base] = postgres_unreachable(base)
    return _pg_probe[base]


def _conninfo(url: str) -> str:
    """The URL without its query (``prefix`` is Solvent's, not libpq's)."""
    return postgres_conninfo(url)[0]


def require_postgres() -> None:
    reason = postgres_unreachable_reason()
    if reason is None:
        return
    message = f"PostgreSQL at {_conninfo(postgres_base_url())} is not reachable ({reason})"
    if postgres_required():
        pytest.fail(f"SOLVENT_REQUIRE_POSTGRES=1 but {message}", pytrace=False)
    pytest.skip(f"{message}; set SOLVENT_TEST_POSTGRES_URL or start the server")


def with_prefix(base: str, prefix: str) -> str:
    return base + ("&" if "?" in base else "?") + f"prefix={prefix}"


def drop_postgres_tables(url: str) -> None:
    drop_postgres_store(url)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL store URL with a table prefix of its own, dropped afterwards."""
    require_postgres()
    url = with_prefix(postgres_base_url(), f"t_{uuid.uuid4().hex[:8]}_")
    yield url
    drop_postgres_tables(url)


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses PostgreSQL carries the ``postgres`` marker."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        uses_pg = "pg_url" in getattr(item, "fixturenames", ()) or any(
            v == "postgresql" for v in params.values()
        )
        if uses_pg and item.get_closest_marker("postgres") is None:
            item.add_marker(pytest.mark.postgres)


# -- stores and cores ----------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A fresh store of each backend: ``memory:``, a SQLite file, a PostgreSQL prefix."""
    if request.param == "memory":
        yield "memory:"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        require_postgres()
        url = with_prefix(postgres_base_url(), f"t_{uuid.uuid4().hex[:8]}_")
        yield url
        drop_postgres_tables(url)


@pytest.fixture(params=CORES)
def core(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def is_persistent(url: str) -> bool:
    return not url.startswith("memory")


# -- a deterministic clock -----------------------------------------------------------------


class Clock:
    """Nanoseconds since the epoch, advancing ``step_ns`` on every reading."""

    def __init__(self, start_ns: int = CLOCK_START_NS, step_ns: int = 1_000) -> None:
        self.now_ns = start_ns
        self.step_ns = step_ns
        self.readings = 0

    def __call__(self) -> int:
        self.now_ns += self.step_ns
        self.readings += 1
        return self.now_ns


@pytest.fixture
def clock() -> Clock:
    return Clock()


# -- a small exchange ----------------------------------------------------------------------


@dataclass
class Exchange:
    customers: list[str]
    company: str = "treasury"
    btc_wallet: str = "btc-cold"
    krw_wallet: str = "krw-bank"
    assets: tuple[str, ...] = ("BTC", "KRW")
    accounts: list[str] = field(default_factory=list)


def build_exchange(
    led: solvent.Ledger,
    customers: int = 3,
    *,
    treasury_btc: str | int | None = None,
    treasury_krw: str | int | None = None,
    customer_btc: str | int | None = None,
) -> Exchange:
    """BTC (8 decimals) and KRW (0 decimals), a company account "treasury", custody
    wallets "btc-cold" and "krw-bank", and customers c000, c001, ... Optional
    deposits fund the treasury and every customer. All in one commit."""
    names = [f"c{i:03d}" for i in range(customers)]
    with led.batch():
        led.register_asset("BTC", decimals=8)
        led.register_asset("KRW", decimals=0)
        led.open_account("treasury", kind="company")
        for name in names:
            led.open_account(name)
        led.open_wallet("btc-cold", asset="BTC")
        led.open_wallet("krw-bank", asset="KRW")
        if treasury_btc is not None:
            led.deposit("treasury", "BTC", treasury_btc, wallet="btc-cold", ref="fund-btc")
        if treasury_krw is not None:
            led.deposit("treasury", "KRW", treasury_krw, wallet="krw-bank", ref="fund-krw")
        if customer_btc is not None:
            for name in names:
                led.deposit(name, "BTC", customer_btc, wallet="btc-cold", ref=f"dep-{name}")
    return Exchange(customers=names, accounts=["treasury", *names])


@pytest.fixture
def exchange_builder() -> Any:
    return build_exchange


# -- observing a ledger --------------------------------------------------------------------


def balances(led: solvent.Ledger) -> dict[tuple[str, str], tuple[int, int]]:
    """(available, held) in minor units of every account and wallet in every asset."""
    return {
        (acct, asset): led.balance_minor(acct, asset)
        for acct in led.accounts()
        for asset in led.assets()
    }


def observe(led: solvent.Ledger, *, journal: bool = True) -> dict[str, Any]:
    """Everything a command could change: position, version, head, balances, totals,
    freezes and (``journal=True``) the committed journal records."""
    seen: dict[str, Any] = {
        "position": led.position,
        "version": led.version,
        "head": led.head_digest,
        "assets": led.assets(),
        "accounts": led.accounts(),
        "balances": balances(led),
        "totals": [led.totals(a) for a in led.assets()],
        "frozen": {a: led.is_frozen(a) for a in led.accounts()},
    }
    if journal:
        seen["records"] = list(led.records())
    return seen


def assert_books_balance(led: solvent.Ledger) -> None:
    """custody == customer + company per asset, no negative balance, core invariants."""
    for asset in led.assets():
        t = led.totals(asset)
        assert t.custody_minor == t.customer_minor + t.company_minor, t
        assert min(t.custody_minor, t.customer_minor, t.company_minor) >= 0, t
    for (acct, asset), (available, held) in balances(led).items():
        assert available >= 0 and held >= 0, (acct, asset, available, held)
    led.check_invariants()


# -- raw access to the stored rows (for tampering) -----------------------------------------


class RawStore:
    """Direct access to the stored journal and snapshot rows, bypassing Solvent.

    Tables are ``{prefix}journal`` and ``{prefix}snapshots`` with columns
    originator_id, originator_version, topic, state."""

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        self.prefix = parse_qs(parts.query).get("prefix", ["solvent_"])[0]
        self.kind = "sqlite" if parts.scheme == "sqlite" else "postgresql"
        self._conn: Any
        if self.kind == "sqlite":
            self._conn = sqlite3.connect(parts.path[1:])
            self._conn.execute("PRAGMA synchronous = OFF")  # tampering need not be durable
        else:
            import psycopg

            self._conn = psycopg.connect(_conninfo(url), autocommit=True)
        self._mark = "?" if self.kind == "sqlite" else "%s"

    def table(self, which: str) -> str:
        assert which in ("journal", "snapshots")
        return self.prefix + which

    def _run(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        sql = sql.replace("?", self._mark)
        cur = self._conn.execute(sql, args)
        rows = cur.fetchall() if cur.description else []
        if self.kind == "sqlite":
            self._conn.commit()
        return rows

    def versions(self, which: str = "journal") -> list[int]:
        rows = self._run(f"SELECT originator_version FROM {self.table(which)} "
                         "ORDER BY originator_version")
        return [int(v) for (v,) in rows]

    def state(self, version: int, which: str = "journal") -> bytes:
        rows = self._run(f"SELECT state FROM {self.table(which)} WHERE originator_version = ?",
                         version)
        assert len(rows) == 1, (which, version, rows)
        return bytes(rows[0][0])

    def set_state(self, version: int, state: bytes, which: str = "journal") -> None:
        self._run(f"UPDATE {self.table(which)} SET state = ? WHERE originator_version = ?",
                  state, version)
        assert self.state(version, which) == state

    def set_topic(self, version: int, topic: str, which: str = "journal") -> None:
        self._run(f"UPDATE {self.table(which)} SET topic = ? WHERE originator_version = ?",
                  topic, version)

    def delete(self, version: int, which: str = "journal") -> None:
        self._run(f"DELETE FROM {self.table(which)} WHERE originator_version = ?", version)
        assert version not in self.versions(which)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> RawStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def persistent_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A fresh persistent store: a SQLite file or a PostgreSQL prefix."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        require_postgres()
        url = with_prefix(postgres_base_url(), f"t_{uuid.uuid4().hex[:8]}_")
        yield url
        drop_postgres_tables(url)


# -- custody (deposits in flight, withdrawals, attestations) -------------------------------

DAY_NS = 86_400 * 10**9
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def clock_time(clock: Clock, *, ago_ns: int = 0) -> datetime:
    """The clock's current reading (minus ``ago_ns``) as an aware datetime, for
    ``attest(as_of=...)``. Reading it does not advance the clock."""
    return _EPOCH + timedelta(microseconds=(clock.now_ns - ago_ns) // 1_000)


def custody_exchange(
    led: solvent.Ledger,
    customers: int = 3,
    *,
    customer_btc: str | int | None = 2,
    treasury_btc: str | int | None = 1,
    treasury_krw: str | int | None = 1_000_000,
) -> Exchange:
    """``build_exchange`` plus operators ``ops-1``/``ops-2``, an auditor ``audit`` and
    every customer registered as a ``customer`` actor. Nothing is attested yet."""
    ex = build_exchange(led, customers, customer_btc=customer_btc, treasury_btc=treasury_btc,
                        treasury_krw=treasury_krw)
    with led.batch():
        led.register_actor("ops-1", "operator")
        led.register_actor("ops-2", "operator")
        led.register_actor("audit", "auditor")
        for name in ex.customers:
            led.register_actor(name, "customer")
    return ex


def wallet_asset(led: solvent.Ledger, wallet: str) -> str:
    """The asset a custody wallet holds (the one whose reconciliation lists it)."""
    for asset in led.assets():
        if any(row.wallet == wallet for row in led.reconcile(asset).wallets):
            return asset
    raise AssertionError(f"{wallet!r} is not a custody wallet")


def book_minor(led: solvent.Ledger, wallet: str) -> int:
    """A custody wallet's book balance in minor units."""
    return led.balance_minor(wallet, wallet_asset(led, wallet))[0]


def attest_book(
    led: solvent.Ledger, clock: Clock, wallet: str, *, delta_minor: int = 0, **kw: Any
) -> Any:
    """Attest ``wallet`` at its book balance plus ``delta_minor`` (negative: a loss), as
    of the clock's now; returns the reconciliation report."""
    asset = wallet_asset(led, wallet)
    minor = led.balance_minor(wallet, asset)[0] + delta_minor
    kw.setdefault("source", "node")
    return led.attest(wallet, from_minor(minor, led.decimals(asset)), as_of=clock_time(clock),
                      **kw)


def attest_arrived(
    led: solvent.Ledger, clock: Clock, wallet: str, *, arrived_minor: int = 0, **kw: Any
) -> Any:
    """Attest ``wallet`` at what an honest chain shows once coins have arrived: the book
    plus what the reconciliation explains (detected deposits, less broadcast withdrawals),
    plus ``arrived_minor`` (coins a direct ``deposit`` is about to credit).
    A deposit credit needs such an attestation first (``CustodyState.credit_room``);
    returns the reconciliation report."""
    asset = wallet_asset(led, wallet)
    [row] = [w for w in led.reconcile(asset).wallets if w.wallet == wallet]
    kw.setdefault("source", "node")
    return led.attest(wallet, from_minor(row.expected_minor + row.explained_minor + arrived_minor,
                                         led.decimals(asset)),
                      as_of=clock_time(clock), **kw)


def withdrawals(led: solvent.Ledger) -> list[Any]:
    """Every withdrawal, in id order (ids are wd-1, wd-2, ...)."""
    found = []
    while True:
        try:
            found.append(led.withdrawal(f"wd-{len(found) + 1}"))
        except solvent.UnknownWithdrawal:
            return found


def custody_view(led: solvent.Ledger) -> dict[str, Any]:
    """Everything custody commands could change, on top of ``observe``: reconciliation
    reports, asset status, policies, pending deposits and withdrawals."""
    return {
        "reconcile": {a: led.reconcile(a) for a in led.assets()},
        "status": {a: led.asset_status(a) for a in led.assets()},
        "policy": {a: led.custody_policy(a) for a in led.assets()},
        "pending": led.pending_deposits(),
        "withdrawals": withdrawals(led),
    }


# -- markets (orders, books, holds) -----------------------------------------------------------

MARKET = "BTC-KRW"
FEE_ACCOUNT = f"fees:{MARKET}"


def market_exchange(
    led: solvent.Ledger,
    clock: Clock,
    customers: int = 3,
    *,
    customer_krw: str | int | None = 500_000_000,
    customer_btc: str | int | None = 2,
    attest: bool = True,
    **market: Any,
) -> Exchange:
    """``custody_exchange`` plus ``customer_krw`` for every customer, both custody wallets
    attested at their book balance (unless ``attest=False``) and the market BTC-KRW
    listed: tick 1,000 KRW, lot 0.001 BTC (one tick times one lot is exactly 1 KRW, so a
    fill's notional in KRW is ticks × lots), maker fee 0.05 %, taker fee 0.1 %, minimum
    notional 5,000 KRW; ``market`` overrides any listing argument."""
    ex = custody_exchange(led, customers, customer_btc=customer_btc)
    if customer_krw is not None:
        with led.batch():
            for name in ex.customers:
                led.deposit(name, "KRW", customer_krw, wallet="krw-bank", ref=f"krw-{name}")
    if attest:
        for wallet in ("btc-cold", "krw-bank"):
            attest_book(led, clock, wallet)
    listing: dict[str, Any] = {"base": "BTC", "quote": "KRW", "tick_size": "1000",
                               "lot_size": "0.001", "maker_fee": "0.0005",
                               "taker_fee": "0.001", "min_notional": "5000"}
    listing.update(market)
    led.list_market(MARKET, **listing)
    ex.accounts.append(FEE_ACCOUNT)
    return ex


def trading_accounts(led: solvent.Ledger) -> list[str]:
    """Every account that can hold orders' funds (customers and company), no wallets."""
    wallets = {row.wallet for a in led.assets() for row in led.reconcile(a).wallets}
    return [name for name in led.accounts() if name not in wallets]


def market_view(led: solvent.Ledger, markets: tuple[str, ...] = (MARKET,)) -> dict[str, Any]:
    """``observe`` (without the journal) plus every listed market's book (50 levels) and
    every account's open orders: what an order command could change."""
    seen = observe(led, journal=False)
    seen["books"] = {m: led.book(m, depth=50) for m in markets}
    seen["open_orders"] = {a: led.open_orders(a) for a in trading_accounts(led)}
    return seen


def assert_holds_match_orders(led: solvent.Ledger) -> None:
    """Every account's held balance is exactly what its open orders and its open
    withdrawals reserve, per asset."""
    reserved: dict[tuple[str, str], int] = {}
    for account in trading_accounts(led):
        for order in led.open_orders(account):
            key = (account, order.hold_asset)
            reserved[key] = reserved.get(key, 0) + order.held_minor
    for wd in withdrawals(led):
        if wd.status in ("pending_approval", "approved", "broadcast"):
            key = (wd.account, wd.asset)
            reserved[key] = reserved.get(key, 0) + wd.amount_minor
    for account in trading_accounts(led):
        for asset in led.assets():
            held = led.balance_minor(account, asset)[1]
            assert held == reserved.get((account, asset), 0), (account, asset, held, reserved)


# -- forging ---------------------------------------------------------------------------------


def append_forged_batch(url: str, records: list[r.JournalRecord]) -> str:
    """Append a batch with a correct hash chain, as a forger with the code would."""
    store = JournalStore(url)
    try:
        head = bytes(32)
        last = None
        for last in store.read():
            head = last.digest
        assert last is not None
        version = last.originator_version + 1
        payload = r.encoder.encode(
            r.Batch(version=version, first_position=records[0].position, records=records))
        sealed = StoredBatch.seal(version, head, payload)
        store.append(sealed)
        return sealed.digest.hex()
    finally:
        store.close()
