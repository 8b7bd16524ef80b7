"""Replay the LOBSTER AAPL sample (NASDAQ, 2012-06-21, 10 levels) through both books.

As ``shared/data/lobster/README.md`` says: the book is seeded from row 0 of the
order-book file (one stand-in order per visible level, "seeded" orders, account
0); then message by message:

* type 1 (new limit order): ``submit`` GTC; it must rest without trading.
* type 2 (partial cancel) and 3 (deletion): ``amend`` down / ``cancel`` of the
  named order; an order that predates the sample (not in the book) is part of
  a seeded stand-in, which is reduced by the size instead.
* type 4 (execution of a visible resting order): an incoming IOC limit order on
  the opposite side, for the size, at the resting price. Its fills must hit the
  named order, and only it (FIFO within the level); for an order that predates
  the sample, the seeded stand-in of that level.
* types 5-7 (hidden executions, cross trades, halts): skipped (no visible change).

After every message the top 10 levels of both sides (price and size) must equal
the order-book file's row for it, apart from levels that enter the 10-level
window unseen (the file only has messages for the top 10 levels, so a level
that comes into view after a level above it went away may hold orders the
replay never saw, or have lost orders it did see): such a level, one that was
not in the previous row's window and differs from the file, is re-seeded from
the file (its orders are replaced by one stand-in of the file's size, or removed
if the file shows none there) and counted in ``reseeded_levels``. Every count is asserted exactly.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from solvent.matching import book_class
from solvent.matching import codes as c

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lobster"
MESSAGES = DATA / "AAPL_2012-06-21_34200000_57600000_message_10.csv"
BOOKS = DATA / "AAPL_2012-06-21_34200000_57600000_orderbook_10.csv"
EMPTY_PRICES = (9999999999, -9999999999)
SEED_ACCOUNT = 0  # stand-ins for orders that predate the sample
ORDER_ACCOUNT = 1  # the sample's own orders
TAKER_ACCOUNT = 2  # the incoming side of executions
SEED_ID_BASE = 10**12
TAKER_ID_BASE = 2 * 10**12
LEVELS = 10

# The exact counts of this replay (the same for both books).
EXPECTED = {
    "messages": 999,  # rows in each file (the message file ends without a newline)
    "events_compared": 998,  # every message after row 0, skipped types included
    "equal_as_replayed": 984,  # equal to the file with no level re-seeded
    "events_with_reseed": 14,  # equal after re-seeding levels that entered the window unseen
    "adds": 470,
    "partial_cancels": 0,
    "deletions": 369,
    "executions": 98,
    "executions_hit_named_order": 94,
    "executions_hit_seeded_level": 4,  # the named order predates the sample
    "skipped_hidden_cross_halt": 61,
    "reseeded_levels": 16,
    "mismatches": 0,
}

Levels = list[tuple[int, int]]


def read_rows(path: Path) -> list[list[int]]:
    with path.open(newline="") as f:
        return [[int(float(x)) if k == 0 and "." in x else int(x) for k, x in enumerate(row)]
                for row in csv.reader(f)]


def read_messages() -> list[tuple[int, int, int, int, int]]:
    """(type, order_id, size, price, direction) per message."""
    with MESSAGES.open(newline="") as f:
        return [(int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in csv.reader(f)]


def book_levels(row: list[int]) -> tuple[Levels, Levels]:
    """(bids, asks) of an order-book row as (price, size), best first, empties dropped."""
    asks: Levels = []
    bids: Levels = []
    for k in range(LEVELS):
        ap, asz, bp, bsz = row[4 * k: 4 * k + 4]
        if ap not in EMPTY_PRICES and asz > 0:
            asks.append((ap, asz))
        if bp not in EMPTY_PRICES and bsz > 0:
            bids.append((bp, bsz))
    return bids, asks


@dataclass
class Replay:
    book: Any
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EXPECTED, 0))
    seeded: dict[tuple[int, int], int] = field(default_factory=dict)  # (side, price) -> id
    next_seed: int = SEED_ID_BASE
    first_mismatch: str = ""

    def seed_level(self, side: int, price: int, size: int) -> None:
        """Set the seeded stand-in at (side, price) to ``size`` lots (0: remove it);
        a new stand-in joins the back of the level."""
        oid = self.seeded.get((side, price))
        if oid is not None and self.book.order(oid) is None:
            oid = None
        if size == 0:
            if oid is not None:
                assert self.book.cancel(oid)[0] == c.OK
                del self.seeded[(side, price)]
            return
        if oid is None:
            self.next_seed += 1
            oid = self.next_seed
            code, events = self.book.submit(oid, SEED_ACCOUNT, side, price, size)
            assert code == c.OK and events[-1][0] == c.EV_RESTING, (side, price, events)
            self.seeded[(side, price)] = oid
        else:
            assert self.book.amend(oid, qty_lots=size) == c.OK

    def reseed_level(self, side: int, price: int, size: int) -> None:
        """Replace the whole level at (side, price) by one stand-in of ``size`` lots
        (none if 0): what the file shows is all that is known about it."""
        for oid, _, _ in self.book.level_orders(side, price):
            assert self.book.cancel(oid)[0] == c.OK
        self.seeded.pop((side, price), None)
        if size:
            self.seed_level(side, price, size)

    def reduce(self, oid: int, side: int, price: int, size: int) -> bool:
        """Take ``size`` lots off order ``oid`` (or the seeded stand-in at its level)."""
        known = self.book.order(oid)
        if known is None:
            stand_in = self.seeded.get((side, price))
            known = self.book.order(stand_in) if stand_in is not None else None
            if known is None or known[3] < size:
                return False
            oid = stand_in
        remaining = known[3] - size
        if remaining < 0:
            return False
        if remaining == 0:
            return bool(self.book.cancel(oid)[0] == c.OK)
        return bool(self.book.amend(oid, qty_lots=remaining) == c.OK)

    def execute(self, i: int, oid: int, side: int, price: int, size: int) -> str:
        """An incoming order takes ``size`` at ``price`` from the resting ``side``."""
        named = self.book.order(oid)
        expected_maker = oid if named is not None else self.seeded.get((side, price))
        code, events = self.book.submit(TAKER_ID_BASE + i, TAKER_ACCOUNT, 1 - side, price, size,
                                        tif=c.IOC)
        fills = [e for e in events if e[0] == c.EV_FILL]
        if code != c.OK or sum(f[5] for f in fills) != size:
            return "miss"
        if any(f[2] != expected_maker or f[4] != price for f in fills):
            return "miss"
        return "named" if named is not None else "seeded"

    def compare(self, i: int, prev: tuple[Levels, Levels], now: tuple[Levels, Levels]) -> None:
        mine = self.book.depth(LEVELS)
        if mine == now:
            self.counts["equal_as_replayed"] += 1
            return
        self.counts["events_with_reseed"] += 1
        # re-seed the levels that entered the window unseen, then look again
        for side in (c.BUY, c.SELL):
            seen = {p for p, _ in prev[side]}
            theirs = dict(now[side])
            ours = dict(mine[side])  # our top levels; a level's full size is read below
            worst = now[side][-1][0] if len(now[side]) == LEVELS else None
            for p in sorted(set(theirs) | set(ours)):
                if p in seen or theirs.get(p, 0) == ours.get(p, 0):
                    continue
                beyond = worst is not None and (p < worst if side == c.BUY else p > worst)
                if beyond:
                    continue
                self.reseed_level(side, p, theirs.get(p, 0))
                self.counts["reseeded_levels"] += 1
        mine = self.book.depth(LEVELS)
        if mine != now:
            self.counts["mismatches"] += 1
            if not self.first_mismatch:
                self.first_mismatch = f"row {i}: book {mine} != file {now}"


def replay(core: str) -> Replay:
    messages = read_messages()
    rows = [book_levels(r) for r in read_rows(BOOKS)]
    assert len(messages) == len(rows)
    r = Replay(book_class(core)())
    bids, asks = rows[0]
    for p, size in bids:
        r.seed_level(c.BUY, p, size)
    for p, size in asks:
        r.seed_level(c.SELL, p, size)
    assert r.book.depth(LEVELS) == rows[0]
    r.counts["messages"] = len(messages)
    for i in range(1, len(messages)):
        kind, oid, size, price, direction = messages[i]
        side = c.BUY if direction == 1 else c.SELL
        if kind == 1:
            r.counts["adds"] += 1
            code, events = r.book.submit(oid, ORDER_ACCOUNT, side, price, size)
            if code != c.OK or events != [(c.EV_RESTING, oid, 0, ORDER_ACCOUNT, price, 0, size)]:
                r.counts["mismatches"] += 1
        elif kind in (2, 3):
            r.counts["partial_cancels" if kind == 2 else "deletions"] += 1
            if not r.reduce(oid, side, price, size):
                r.counts["mismatches"] += 1
        elif kind == 4:
            r.counts["executions"] += 1
            hit = r.execute(i, oid, side, price, size)
            if hit == "miss":
                r.counts["mismatches"] += 1
            else:
                which = "named_order" if hit == "named" else "seeded_level"
                r.counts[f"executions_hit_{which}"] += 1
        else:
            r.counts["skipped_hidden_cross_halt"] += 1
        r.counts["events_compared"] += 1
        r.compare(i, rows[i - 1], rows[i])
    r.book.check_invariants()
    return r


@pytest.fixture(scope="module")
def replays() -> dict[str, Replay]:
    if not (MESSAGES.exists() and BOOKS.exists()):
        pytest.skip(f"LOBSTER sample not found in {DATA} (shared/data/lobster beside the repo)")
    return {core: replay(core) for core in ("compiled", "python")}


def test_lobster_replay_counts(replays: dict[str, Replay]) -> None:
    counts = {core: r.counts for core, r in replays.items()}
    print(f"\nLOBSTER AAPL replay counts: {counts['compiled']}")
    assert counts["compiled"] == counts["python"]
    assert replays["compiled"].first_mismatch == ""
    assert counts["compiled"] == EXPECTED


def test_lobster_books_identical(replays: dict[str, Replay]) -> None:
    assert replays["compiled"].book.export_state() == replays["python"].book.export_state()
