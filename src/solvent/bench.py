"""Benchmarks of the ledger: ``solvent bench [--json] [--quick] [--only PREFIX]``.

Every figure is measured for the compiled core, with the pure-Python twin
measured in the same run on the same workload as the baseline ``python_twin``;
the ratio ``compiled_over_twin`` (in ``params``) comes from that same run.
Each benchmark is timed with :func:`time.perf_counter_ns` over whole runs
(setup excluded); the value is the best of ``repeats`` runs, and every run is
listed in ``params``. Cores alternate run by run, so both see the same noise.

Benchmarks (``docs/benchmarks.md`` explains each in full):

``ledger.transfer_bulk_memory``
    transfers per second through :meth:`Ledger.transfer_many` with ``array('q')``
    columns on ``memory:``: validation, content digest, the balance loop,
    msgspec journal encoding, hash chain and the commit to eventsourcing's
    in-memory recorder (each call is one commit).
``ledger.transfer_durable_sqlite``
    the same on a SQLite file (group commit: one ``transfer_many`` per commit);
    commit size, ``journal_mode`` and ``synchronous`` are in ``params``.
``ledger.transfer_single_batched_sqlite``
    :meth:`Ledger.transfer` one call per transfer inside ``with led.batch()``.
``ledger.replay``
    journal records per second replayed by :meth:`Ledger.open` from a SQLite
    file with no snapshot (single ``Transferred`` records).
``ledger.replay_bulk``
    transfer items per second replayed the same way from ``TransfersBulk`` records.

The workload functions below (``open_exchange``, ``transfer_columns``,
``bulk_memory_trial``, ...) are also what ``benchmarks/`` drives through
pytest-benchmark, so both report the same work.

Temporary SQLite files go under ``$SOLVENT_BENCH_DIR`` if set, else the
system temporary directory; the file system type is reported in ``params``.
"""

from __future__ import annotations

import gc
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import msgspec

import solvent
from solvent.amounts import from_minor
from solvent.bench_custody import custody_benchmarks
from solvent.bench_markets import market_benchmarks
from solvent.bench_matching import matching_benchmarks
from solvent.core import codes as c
from solvent.ledger import BulkResult, Ledger, verify_store
from solvent.store import JournalStore

CORES: Final = ("compiled", "python")
BASELINE: Final = "python_twin"
#: Every command of a benchmark carries this command time, so a run's journal
#: is the same bytes for both cores (their head digests are compared).
BENCH_TIME_NS: Final = 1_795_219_200_000_000_000  # 2026-11-21T00:00:00Z
ASSET: Final = "BTC"
ASSET_DECIMALS: Final = 8
WALLET: Final = "btc-custody"
FUNDING_MINOR: Final = 100_000_000  # every customer starts with 1 BTC
MAX_TRANSFER_MINOR: Final = 100_000  # ordinary transfers: 1 .. 0.001 BTC
OVERDRAFT_MINOR: Final = 10**15  # 10,000,000 BTC: more than any account holds
OVERDRAFT_SHARE: Final = 0.02  # share of items refused for insufficient funds
SYNCHRONOUS_NAMES: Final = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}

TARGETS: Final[dict[str, dict[str, float]]] = {
    "ledger.transfer_bulk_memory": {"value": 2_000_000, "compiled_over_twin": 10},
    "ledger.transfer_durable_sqlite": {"value": 300_000},
    "ledger.replay": {"value": 1_000_000},
}


class BenchError(Exception):
    """A benchmark could not run, or the two cores disagreed on its result."""


# -- sizes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """How much work each benchmark does (per timed run)."""

    accounts: int  # funded customers of the transfer benchmarks
    bulk_transfers: int  # items per run, memory and SQLite
    bulk_items_per_call: int  # items per transfer_many call (= per commit)
    durable_commit_sizes: tuple[int, ...]  # extra commit sizes swept (compiled core only)
    single_transfers: int  # led.transfer calls per run
    single_per_commit: int  # led.transfer calls per `with led.batch()` block
    replay_accounts: int
    replay_records: int  # Transferred records in the replay journal
    replay_records_per_batch: int
    replay_bulk_items: int  # transfer items in the bulk replay journal
    replay_bulk_items_per_record: int
    repeats: int


FULL: Final = Sizes(
    accounts=10_000,
    bulk_transfers=1_000_000,
    bulk_items_per_call=10_000,
    durable_commit_sizes=(1_000, 10_000, 100_000),
    single_transfers=50_000,
    single_per_commit=10_000,
    replay_accounts=1_000,
    replay_records=200_000,
    replay_records_per_batch=10_000,
    replay_bulk_items=2_000_000,
    replay_bulk_items_per_record=10_000,
    repeats=3,
)

QUICK: Final = Sizes(
    accounts=1_000,
    bulk_transfers=50_000,
    bulk_items_per_call=10_000,
    durable_commit_sizes=(),
    single_transfers=2_000,
    single_per_commit=1_000,
    replay_accounts=200,
    replay_records=10_000,
    replay_records_per_batch=2_000,
    replay_bulk_items=100_000,
    replay_bulk_items_per_record=10_000,
    repeats=1,
)


# -- workload ------------------------------------------------------------------------------


class Columns(NamedTuple):
    """The four ``array('q')`` columns of :meth:`Ledger.transfer_many`."""

    from_index: array[int]
    to_index: array[int]
    asset_index: array[int]
    amount_minor: array[int]

    @property
    def items(self) -> int:
        return len(self.from_index)

    def split(self, items_per_call: int) -> list[Columns]:
        """Consecutive slices of ``items_per_call`` items (copies, made before timing)."""
        n = len(self.from_index)
        return [
            Columns(*(col[lo : lo + items_per_call] for col in self))
            for lo in range(0, n, items_per_call)
        ]


def customer_name(i: int) -> str:
    return f"c{i:06d}"


def open_exchange(
    url: str, core: str, accounts: int, *, snapshot_every: int | None = None
) -> Ledger:
    """A ledger with one asset (BTC, 8 decimals), one custody wallet and
    ``accounts`` customers, each funded with a 1 BTC deposit; one commit."""
    kwargs: dict[str, Any] = {}
    if snapshot_every is not None:
        kwargs["snapshot_every"] = snapshot_every
    led = Ledger.open(url, core=core, clock=lambda: BENCH_TIME_NS, **kwargs)
    try:
        with led.batch():
            led.register_asset(ASSET, decimals=ASSET_DECIMALS)
            led.open_wallet(WALLET, asset=ASSET)
            for i in range(accounts):
                led.open_account(customer_name(i))
            one = from_minor(FUNDING_MINOR, ASSET_DECIMALS)
            for i in range(accounts):
                led.deposit(customer_name(i), ASSET, one, wallet=WALLET, ref=f"fund-{i}")
    except BaseException:
        led.close()
        raise
    first = first_customer_index()
    if accounts and (
        led.account_index(customer_name(0)),
        led.account_index(customer_name(accounts - 1)),
    ) != (first, first + accounts - 1):
        led.close()
        raise BenchError("customer accounts are not numbered as transfer_columns assumes")
    return led


def first_customer_index() -> int:
    """Account number of ``c000000`` in :func:`open_exchange` (the wallet is number 0)."""
    return 1


def _pairs(rnd: random.Random, accounts: int, n: int) -> tuple[list[int], list[int]]:
    """``n`` random (from, to) customer numbers, never the same account twice."""
    frm = [rnd.randrange(accounts) for _ in range(n)]
    to = [(f + 1 + rnd.randrange(accounts - 1)) % accounts for f in frm]
    return frm, to


def _amounts(rnd: random.Random, n: int, overdraft_share: float) -> list[int]:
    return [
        OVERDRAFT_MINOR if rnd.random() < overdraft_share else rnd.randint(1, MAX_TRANSFER_MINOR)
        for _ in range(n)
    ]


def transfer_columns(
    accounts: int, n: int, *, seed: int = 1, overdraft_share: float = OVERDRAFT_SHARE
) -> Columns:
    """``n`` customer-to-customer BTC transfers among the customers of
    :func:`open_exchange`, uniformly random pairs, 1..100,000 satoshi each,
    except ``overdraft_share`` of them asking for 10,000,000 BTC (refused:
    insufficient funds). With 1 BTC per customer nothing else is refused."""
    if accounts < 2:
        raise BenchError("transfers need at least two accounts")
    rnd = random.Random(seed)
    frm, to = _pairs(rnd, accounts, n)
    base = first_customer_index()
    return Columns(
        array("q", [base + f for f in frm]),
        array("q", [base + t for t in to]),
        array("q", bytes(8 * n)),  # asset number 0: BTC
        array("q", _amounts(rnd, n, overdraft_share)),
    )


class SingleTransfer(NamedTuple):
    from_account: str
    to_account: str
    amount: str  # decimal string in BTC, as a user would pass it
    ref: str


def single_transfers(
    accounts: int, n: int, *, seed: int = 2, overdraft_share: float = OVERDRAFT_SHARE,
    ref_prefix: str = "t",
) -> list[SingleTransfer]:
    """The same mix as :func:`transfer_columns`, as arguments of :meth:`Ledger.transfer`."""
    rnd = random.Random(seed)
    frm, to = _pairs(rnd, accounts, n)
    amounts = _amounts(rnd, n, overdraft_share)
    out = []
    for i in range(n):
        amount = f"{from_minor(amounts[i], ASSET_DECIMALS):f}"
        out.append(SingleTransfer(customer_name(frm[i]), customer_name(to[i]), amount,
                                  f"{ref_prefix}{i}"))
    return out


def apply_bulk(led: Ledger, calls: Sequence[Columns], ref_prefix: str) -> list[BulkResult]:
    """One :meth:`Ledger.transfer_many` per element of ``calls`` (outside
    ``batch()`` each call is its own commit). This is the timed part."""
    transfer_many = led.transfer_many
    return [
        transfer_many(*cols, ref=f"{ref_prefix}-{k}") for k, cols in enumerate(calls)
    ]


def apply_single(led: Ledger, transfers: Sequence[SingleTransfer], per_commit: int) -> int:
    """:meth:`Ledger.transfer` per item, ``per_commit`` calls per ``with led.batch()``
    block; refusals (insufficient funds) are caught as a caller would. Returns the
    number refused. This is the timed part."""
    refused = 0
    transfer = led.transfer
    insufficient = solvent.InsufficientFunds
    for lo in range(0, len(transfers), per_commit):
        with led.batch():
            for frm, to, amount, ref in transfers[lo : lo + per_commit]:
                try:
                    transfer(frm, to, ASSET, amount, ref=ref)
                except insufficient:
                    refused += 1
    return refused


def tally(results: Sequence[BulkResult]) -> dict[str, int]:
    """Items per outcome code name over bulk results."""
    counts: dict[str, int] = {}
    for res in results:
        for code, name in c.CODE_NAMES.items():
            k = res.outcomes.count(code)
            if k:
                counts[name] = counts.get(name, 0) + k
    return counts


# -- trials: one prepared run each ------------------------------------------------------


@dataclass
class Trial:
    """A prepared run: ``run()`` is the timed part and returns the units it
    processed; ``info`` is filled by ``finish()`` (untimed) for checks and params;
    ``close()`` releases the ledger and any files."""

    run: Callable[[], int]
    finish: Callable[[], None]
    close: Callable[[], None]
    info: dict[str, Any] = field(default_factory=dict)


def bench_dir() -> str | None:
    return os.environ.get("SOLVENT_BENCH_DIR") or None


def sqlite_url(path: str) -> str:
    return "sqlite:///" + os.path.abspath(path)


def bulk_trial(core: str, accounts: int, calls: Sequence[Columns], url: str = "memory:") -> Trial:
    """``transfer_many`` over ``calls`` on a fresh exchange at ``url``
    (``memory:``, or a SQLite URL made by the caller)."""
    led = open_exchange(url, core, accounts)
    results: list[BulkResult] = []
    items = sum(cols.items for cols in calls)
    trial = Trial(run=lambda: 0, finish=lambda: None, close=led.close)

    def run() -> int:
        results.extend(apply_bulk(led, calls, "bulk"))
        return items

    def finish() -> None:
        trial.info.update(
            check=(led.head_digest, led.position),
            outcomes=tally(results),
            applied=sum(res.applied for res in results),
            items=items,
            commits=len(calls),
        )

    trial.run, trial.finish = run, finish
    return trial


def bulk_memory_trial(core: str, accounts: int, calls: Sequence[Columns]) -> Trial:
    return bulk_trial(core, accounts, calls, "memory:")


def durable_trial(core: str, accounts: int, calls: Sequence[Columns]) -> Trial:
    """``bulk_trial`` on a new SQLite file in a temporary directory."""
    tmp = tempfile.TemporaryDirectory(prefix="solvent-bench-", dir=bench_dir())
    path = os.path.join(tmp.name, "ledger.db")
    try:
        trial = bulk_trial(core, accounts, calls, sqlite_url(path))
    except BaseException:
        tmp.cleanup()
        raise
    close_ledger, finish_bulk = trial.close, trial.finish

    def finish() -> None:
        finish_bulk()
        trial.info.update(sqlite_settings(path))

    def close() -> None:
        try:
            close_ledger()
        finally:
            tmp.cleanup()

    trial.finish, trial.close = finish, close
    trial.info["path"] = path
    return trial


def single_batched_trial(
    core: str, accounts: int, transfers: Sequence[SingleTransfer], per_commit: int
) -> Trial:
    """:meth:`Ledger.transfer` calls inside ``with led.batch()`` on a new SQLite file."""
    tmp = tempfile.TemporaryDirectory(prefix="solvent-bench-", dir=bench_dir())
    path = os.path.join(tmp.name, "ledger.db")
    try:
        led = open_exchange(sqlite_url(path), core, accounts)
    except BaseException:
        tmp.cleanup()
        raise
    refused: list[int] = []

    def run() -> int:
        refused.append(apply_single(led, transfers, per_commit))
        return len(transfers)

    def finish() -> None:
        trial.info.update(
            check=(led.head_digest, led.position),
            refused=refused[-1],
            commits=-(-len(transfers) // per_commit),
            **sqlite_settings(path),
        )

    def close() -> None:
        try:
            led.close()
        finally:
            tmp.cleanup()

    trial = Trial(run=run, finish=finish, close=close)
    return trial


@dataclass(frozen=True)
class ReplayStore:
    """A SQLite journal with no snapshot, built by :func:`build_replay_store`."""

    url: str
    path: str
    records: int  # journal records in it (setup included)
    setup_records: int  # asset, wallet, accounts and deposits
    batches: int
    transfer_records: int  # single Transferred records
    bulk_records: int  # TransfersBulk records
    bulk_items: int  # transfer items inside the bulk records
    head_digest: str


def build_replay_store(
    directory: str,
    accounts: int,
    *,
    transfer_records: int = 0,
    records_per_batch: int = 10_000,
    bulk_items: int = 0,
    bulk_items_per_record: int = 10_000,
    name: str = "replay.db",
) -> ReplayStore:
    """Write a journal on a SQLite file: the exchange of :func:`open_exchange`,
    then ``transfer_records`` single transfers committed ``records_per_batch`` per
    batch, then ``bulk_items`` transfer items in records of ``bulk_items_per_record``
    (one per commit). No transfer is refused. Then remove the snapshot that
    ``close()`` writes, so that opening it replays the journal from position 1."""
    path = os.path.join(directory, name)
    url = sqlite_url(path)
    led = open_exchange(url, "compiled", accounts, snapshot_every=2**62)
    try:
        setup_records = led.position
        transfers = single_transfers(accounts, transfer_records, seed=3, overdraft_share=0.0)
        for lo in range(0, transfer_records, records_per_batch):
            with led.batch():
                for frm, to, amount, ref in transfers[lo : lo + records_per_batch]:
                    led.transfer(frm, to, ASSET, amount, ref=ref)
        calls = transfer_columns(accounts, bulk_items, seed=4, overdraft_share=0.0).split(
            bulk_items_per_record
        )
        results = apply_bulk(led, calls, "replay-bulk")
        if any(res.applied != cols.items for res, cols in zip(results, calls, strict=True)):
            raise BenchError("a transfer of the replay journal was refused")
        store = ReplayStore(
            url=url,
            path=path,
            records=led.position,
            setup_records=setup_records,
            batches=led.version,
            transfer_records=transfer_records,
            bulk_records=len(calls),
            bulk_items=bulk_items,
            head_digest=led.head_digest,
        )
    finally:
        led.close()
    con = sqlite3.connect(path)
    try:
        with con:
            con.execute("DELETE FROM solvent_snapshots")
    finally:
        con.close()
    return store


def replay_trial(core: str, store: ReplayStore, unit: str = "records") -> Trial:
    """Time :meth:`Ledger.open` (no snapshot: ``load_state`` replays every batch,
    checking the hash chain). ``unit``: ``records`` or ``items`` (bulk transfer items)."""
    opened: list[Ledger] = []

    def run() -> int:
        opened.append(Ledger.open(store.url, core=core))
        return store.records if unit == "records" else store.bulk_items

    def finish() -> None:
        led = opened[-1]
        trial.info["check"] = (led.head_digest, led.position)
        if (led.head_digest, led.position) != (store.head_digest, store.records):
            raise BenchError(f"{core} core replayed to a different head than was written")

    def close() -> None:
        for led in opened:
            led.close()

    trial = Trial(run=run, finish=finish, close=close)
    return trial


def verify_trial(core: str, store: ReplayStore) -> Trial:
    """Time ``verify_store``: full replay, chain and invariant check (``solvent verify``)."""
    js = JournalStore(store.url)
    records: list[int] = []

    def run() -> int:
        report, _ = verify_store(js, core)
        records.append(report.records)
        return report.records

    def finish() -> None:
        trial.info["check"] = records[-1]

    trial = Trial(run=run, finish=finish, close=js.close)
    return trial


def journal_reads(store: ReplayStore, repeats: int = 5) -> dict[str, Any]:
    """Milliseconds (best of ``repeats``) for an auditor's two reads of the journal:
    every record (``records()``), and the last one (``records(after_position=last - 1)``,
    which starts at the batch holding it)."""
    led = Ledger.open(store.url)
    try:
        def best(read: Callable[[], int], expect: int) -> float:
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                got = read()
                times.append(time.perf_counter() - t0)
                if got != expect:
                    raise BenchError(f"read {got} journal records, expected {expect}")
            return min(times) * 1e3

        every = best(lambda: sum(1 for _ in led.records()), store.records)
        tail = best(lambda: len(list(led.records(after_position=store.records - 1))), 1)
    finally:
        led.close()
    return {"records_all_ms": round(every, 2), "records_last_ms": round(tail, 3),
            "timed": "Ledger.records() over the replay journal, and records(after_position="
                     "last - 1): a bisection of the batches, then the last batch alone"}


# -- measuring -------------------------------------------------------------------------------


def sqlite_settings(path: str) -> dict[str, Any]:
    """``journal_mode`` and ``synchronous`` as a connection to the file sees them.

    ``journal_mode=WAL`` is stored in the file; ``synchronous`` is per connection,
    and eventsourcing's connections keep SQLite's default, which a new connection
    also reports."""
    con = sqlite3.connect(path)
    try:
        mode = str(con.execute("PRAGMA journal_mode").fetchone()[0])
        sync = int(con.execute("PRAGMA synchronous").fetchone()[0])
    finally:
        con.close()
    return {
        "journal_mode": mode,
        "synchronous": SYNCHRONOUS_NAMES.get(sync, str(sync)),
        "sqlite_version": sqlite3.sqlite_version,
        "filesystem": filesystem_type(path),
    }


def filesystem_type(path: str) -> str:
    """File system type of ``path`` from /proc/mounts (Linux), else ``unknown``."""
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            mounts = [line.split()[:3] for line in f]
    except OSError:
        return "unknown"
    real = os.path.realpath(path)
    best, kind = "", "unknown"
    for parts in mounts:
        if len(parts) < 3:
            continue
        mount = parts[1]
        inside = real == mount or real.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, parts[2]
    return kind


@dataclass
class Measured:
    """Rates (units per second) of every run, per core, and the last run's info."""

    rates: dict[str, list[float]]
    info: dict[str, dict[str, Any]]

    def best(self, core: str) -> float:
        return max(self.rates[core])


def measure(
    make: Callable[[str], Trial], repeats: int, cores: Sequence[str] = CORES
) -> Measured:
    """Run ``make(core)`` trials ``repeats`` times per core, alternating cores,
    and check that every run of every core ended with the same ``info['check']``."""
    rates: dict[str, list[float]] = {core: [] for core in cores}
    info: dict[str, dict[str, Any]] = {}
    checks: set[Any] = set()
    for _ in range(repeats):
        for core in cores:
            trial = make(core)
            try:
                gc.collect()
                t0 = time.perf_counter_ns()
                units = trial.run()
                elapsed_ns = time.perf_counter_ns() - t0
                trial.finish()
            finally:
                trial.close()
            rates[core].append(units * 1e9 / max(elapsed_ns, 1))
            info[core] = trial.info
            checks.add(repr(trial.info.get("check")))
    if len(checks) > 1:
        raise BenchError(f"the runs ended in different states: {sorted(checks)}")
    return Measured(rates, info)


def _rate(x: float) -> int:
    return round(x)


def _ratio(a: float, b: float) -> float:
    return round(a / b, 1) if b else float("inf")


def entry(
    name: str, unit: str, m: Measured, params: dict[str, Any], *, repeats: int
) -> dict[str, Any]:
    """One benchmark's JSON object."""
    value = m.best("compiled")
    twin = m.best("python")
    p: dict[str, Any] = {
        "compiled_over_twin": _ratio(value, twin),
        **params,
        "repeats": repeats,
        "runs": {"compiled": [_rate(x) for x in m.rates["compiled"]],
                 BASELINE: [_rate(x) for x in m.rates["python"]]},
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    target = TARGETS.get(name)
    if target:
        p["target"] = target
        p["meets_target"] = value >= target["value"] and (
            "compiled_over_twin" not in target
            or p["compiled_over_twin"] >= target["compiled_over_twin"]
        )
    return {"unit": unit, "value": _rate(value), "baselines": {BASELINE: _rate(twin)},
            "params": p}


# -- the benchmarks --------------------------------------------------------------------------


@dataclass
class Context:
    """Inputs shared by several benchmarks of one run (generated once, untimed)."""

    sizes: Sizes
    workdir: str
    _columns: Columns | None = None
    _replay: ReplayStore | None = None
    _replay_bulk: ReplayStore | None = None

    @property
    def columns(self) -> Columns:
        if self._columns is None:
            self._columns = transfer_columns(self.sizes.accounts, self.sizes.bulk_transfers)
        return self._columns

    @property
    def replay_store(self) -> ReplayStore:
        if self._replay is None:
            s = self.sizes
            self._replay = build_replay_store(
                self.workdir, s.replay_accounts, transfer_records=s.replay_records,
                records_per_batch=s.replay_records_per_batch, name="replay.db",
            )
        return self._replay

    @property
    def replay_bulk_store(self) -> ReplayStore:
        if self._replay_bulk is None:
            s = self.sizes
            self._replay_bulk = build_replay_store(
                self.workdir, s.replay_accounts, bulk_items=s.replay_bulk_items,
                bulk_items_per_record=s.replay_bulk_items_per_record, name="replay-bulk.db",
            )
        return self._replay_bulk


def _bulk_params(info: dict[str, Any], per_call: int, accounts: int) -> dict[str, Any]:
    items = info["items"]
    outcomes = info["outcomes"]
    refused = items - info["applied"]
    return {
        "accounts": accounts,
        "transfers": items,
        "transfers_per_call": per_call,
        "calls": info["commits"],
        "columns": "array('q')",
        "refused_share": round(refused / items, 4) if items else 0.0,
        "outcomes": outcomes,
    }


def bench_transfer_bulk_memory(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    calls = ctx.columns.split(s.bulk_items_per_call)
    m = measure(lambda core: bulk_memory_trial(core, s.accounts, calls), s.repeats)
    info = m.info["compiled"]
    params = {
        "store": "memory:",
        **_bulk_params(info, s.bulk_items_per_call, s.accounts),
        "commits": info["commits"],
        "counts": "every item submitted (refused ones too: each gets an outcome code)",
        "applied_per_s": {
            "compiled": _rate(m.best("compiled") * info["applied"] / info["items"]),
            BASELINE: _rate(m.best("python") * info["applied"] / info["items"]),
        },
        "includes": "transfer_many: column checks, content digest, balance loop, msgspec "
                    "journal encoding, hash chain, commit to eventsourcing's POPO recorder",
    }
    return entry("ledger.transfer_bulk_memory", "transfers/s", m, params, repeats=s.repeats)


def _durable_maker(accounts: int, calls: Sequence[Columns]) -> Callable[[str], Trial]:
    return lambda core: durable_trial(core, accounts, calls)


def bench_transfer_durable_sqlite(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    calls = ctx.columns.split(s.bulk_items_per_call)
    m = measure(_durable_maker(s.accounts, calls), s.repeats)
    info = m.info["compiled"]
    best = m.best("compiled")
    params: dict[str, Any] = {
        "store": "sqlite file (eventsourcing SQLite recorder)",
        "transfers_per_commit": s.bulk_items_per_call,
        "group_commit": "one transfer_many per commit; the call returns after the commit",
        "journal_mode": info["journal_mode"],
        "synchronous": info["synchronous"],
        "fsync": "the WAL is synced (fdatasync) at every commit"
                 if info["synchronous"] in ("FULL", "EXTRA") else "not at every commit",
        **_bulk_params(info, s.bulk_items_per_call, s.accounts),
        "ms_per_commit_with_its_work": round(s.bulk_items_per_call / best * 1e3, 2),
        "filesystem": info["filesystem"],
        "sqlite_version": info["sqlite_version"],
    }
    sweep: dict[str, int] = {}
    for size in s.durable_commit_sizes:
        n = min(ctx.columns.items, 200 * size)
        cols = Columns(*(col[:n] for col in ctx.columns)).split(size)
        swept = measure(_durable_maker(s.accounts, cols), s.repeats, cores=("compiled",))
        sweep[str(size)] = _rate(swept.best("compiled"))
    if sweep:
        params["compiled_by_transfers_per_commit"] = sweep
    return entry("ledger.transfer_durable_sqlite", "transfers/s", m, params, repeats=s.repeats)


def bench_transfer_single_batched_sqlite(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    transfers = single_transfers(s.accounts, s.single_transfers)
    m = measure(
        lambda core: single_batched_trial(core, s.accounts, transfers, s.single_per_commit),
        s.repeats,
    )
    info = m.info["compiled"]
    params = {
        "store": "sqlite file",
        "call": "led.transfer(from, to, 'BTC', amount, ref=...) inside with led.batch(); "
                "amount a decimal str such as '0.00012345'",
        "accounts": s.accounts,
        "transfers": s.single_transfers,
        "transfers_per_commit": s.single_per_commit,
        "commits": info["commits"],
        "refused_share": round(info["refused"] / s.single_transfers, 4),
        "refusals": "InsufficientFunds raised and caught per refused call",
        "journal_mode": info["journal_mode"],
        "synchronous": info["synchronous"],
        "us_per_call": round(1e6 / m.best("compiled"), 2),
    }
    return entry("ledger.transfer_single_batched_sqlite", "transfers/s", m, params,
                 repeats=s.repeats)


def bench_replay(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    store = ctx.replay_store
    m = measure(lambda core: replay_trial(core, store, "records"), s.repeats)
    v = measure(lambda core: verify_trial(core, store), s.repeats)
    params = {
        "timed": "Ledger.open(url) = load_state: read every batch, check its hash link, "
                 "decode (msgspec), apply every record; no snapshot in the store",
        "store": "sqlite file (warm page cache)",
        "records": store.records,
        "transferred_records": store.transfer_records,
        "setup_records": store.setup_records,
        "records_per_batch": s.replay_records_per_batch,
        "batches": store.batches,
        "accounts": s.replay_accounts,
        "verify_records_per_s": {"compiled": _rate(v.best("compiled")),
                                 BASELINE: _rate(v.best("python"))},
        "verify": "verify_store (solvent verify): the same replay plus snapshot and "
                  "invariant checks",
        "bulk": "see ledger.replay_bulk (transfer items/s)",
        "journal_reads": journal_reads(store),
    }
    return entry("ledger.replay", "records/s", m, params, repeats=s.repeats)


def bench_replay_bulk(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    store = ctx.replay_bulk_store
    m = measure(lambda core: replay_trial(core, store, "items"), s.repeats)
    params = {
        "timed": "Ledger.open(url) with no snapshot (as ledger.replay)",
        "store": "sqlite file (warm page cache)",
        "transfer_items": store.bulk_items,
        "bulk_records": store.bulk_records,
        "items_per_record": s.replay_bulk_items_per_record,
        "setup_records": store.setup_records,
        "records": store.records,
        "accounts": s.replay_accounts,
    }
    return entry("ledger.replay_bulk", "transfer items/s", m, params, repeats=s.repeats)


BENCHMARKS: Final[dict[str, Callable[[Context], dict[str, Any]]]] = {
    "ledger.transfer_bulk_memory": bench_transfer_bulk_memory,
    "ledger.transfer_durable_sqlite": bench_transfer_durable_sqlite,
    "ledger.transfer_single_batched_sqlite": bench_transfer_single_batched_sqlite,
    "ledger.replay": bench_replay,
    "ledger.replay_bulk": bench_replay_bulk,
    **matching_benchmarks(),  # matching.* (solvent/bench_matching.py)
    **market_benchmarks(),  # matching.pipeline_memory, matching.durable_sqlite
    **custody_benchmarks(),  # custody.* (solvent/bench_custody.py)
}


def select(only: Sequence[str] | None) -> list[str]:
    """Names of the benchmarks whose name starts with one of ``only`` (all if None)."""
    if not only:
        return list(BENCHMARKS)
    return [name for name in BENCHMARKS if any(name.startswith(p) for p in only)]


def run(names: Sequence[str], sizes: Sizes, *, progress: bool = False) -> dict[str, Any]:
    """Run the named benchmarks; return name -> result object."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="solvent-bench-", dir=bench_dir()) as workdir:
        ctx = Context(sizes=sizes, workdir=workdir)
        for name in names:
            if progress:
                print(f"solvent bench: {name} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            results[name] = BENCHMARKS[name](ctx)
            results[name]["params"]["wall_s"] = round(time.perf_counter() - t0, 1)
    return results


def _fmt(x: float) -> str:
    if x != x:  # NaN: not measured in this run
        return "-"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.4g}"


def render_table(results: dict[str, Any]) -> str:
    rows = [("benchmark", "compiled", "python twin", "ratio", "unit", "target")]
    for name, res in results.items():
        p = res["params"]
        target = p.get("target")
        tgt = ""
        if target:
            sign = "<" if target.get("lower_is_better") else ">="
            tgt = f"{sign} {_fmt(target['value'])}"
            if "compiled_over_twin" in target:
                tgt += f", >= {target['compiled_over_twin']:g}x"
            tgt += " (met)" if p.get("meets_target") else " (NOT met)"
        ratio = p.get("compiled_over_twin")
        rows.append((name, _fmt(res["value"]), _fmt(res["baselines"].get(BASELINE, float("nan"))),
                     "-" if ratio is None or ratio != ratio else f"{ratio:.1f}x", res["unit"],
                     tgt))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for k, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])]
        cells += [row[i].rjust(widths[i]) for i in (1, 2, 3)]
        cells += [row[4].ljust(widths[4]), row[5]]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = []
    for name, res in results.items():
        p = res["params"]
        if "transfers_per_commit" in p:
            extra = ""
            if "journal_mode" in p:
                extra = f", journal_mode={p['journal_mode']}, synchronous={p['synchronous']}"
            notes.append(f"{name}: {p['transfers_per_commit']:,} transfers per commit{extra}")
    head = (f"solvent {solvent.__version__} benchmarks, Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs; best of the runs, the twin measured in the same run")
    return "\n".join([head, "", *lines, "", *notes])


def main(quick: bool = False, as_json: bool = False, only: list[str] | None = None) -> int:
    """Entry point of ``solvent bench``; returns the process exit code."""
    names = select(only)
    if not names:
        print(f"solvent bench: no benchmark name starts with {', '.join(only or [])}; "
              f"known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    sizes = QUICK if quick else FULL
    try:
        results = run(names, sizes, progress=sys.stderr.isatty())
    except BenchError as exc:
        print(f"solvent bench: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(msgspec.json.encode(results).decode())
    else:
        print(render_table(results))
    return 0


__all__ = [
    "BENCHMARKS",
    "FULL",
    "QUICK",
    "BenchError",
    "Columns",
    "Measured",
    "ReplayStore",
    "SingleTransfer",
    "Sizes",
    "Trial",
    "apply_bulk",
    "apply_single",
    "build_replay_store",
    "bulk_memory_trial",
    "durable_trial",
    "main",
    "measure",
    "open_exchange",
    "replay_trial",
    "single_batched_trial",
    "single_transfers",
    "transfer_columns",
    "verify_trial",
]
