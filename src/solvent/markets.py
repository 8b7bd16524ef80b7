"""Markets: listings, reserve-backed orders, matching, settlement into the journal.

:class:`MarketState` lives inside :class:`~solvent.state.LedgerState`: one
market engine per market (:mod:`solvent.engine`: the compiled ``solvent._engine``
or its twin, following the ledger's core), the listings, reference prices and
halts. The engine is the one path by which an order holds, matches and settles
— for the single-order commands, for :meth:`MarketCommands.submit_orders` and
for replay alike; replay checks that every result comes out exactly as
journaled. The engine's module docstring (``solvent/engine/twin.py``) gives the
money rules: what an order holds, how a fill settles, how fees round, the order
in which an order's checks run.

An order is accepted only when its hold succeeds against available (confirmed)
funds of a non-frozen account, both assets of the market are reconciled and not
halted, and the market is not halted.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, NamedTuple, overload

import msgspec

from solvent import errors as e
from solvent import records as r
from solvent.amounts import (
    AmountLike,
    check_id,
    check_ref,
    check_text,
    from_minor,
    shown_value,
    to_minor,
    to_ppm,
)
from solvent.core import codes as cc
from solvent.engine import codes as ec
from solvent.engine import engine_class
from solvent.engine.twin import band_of, engine_row
from solvent.matching import book_class
from solvent.matching import codes as mc
from solvent.receipts import Receipt
from solvent.records import column_from_bytes

if TYPE_CHECKING:
    from solvent.state import LedgerState
    from solvent.store import JournalStore

PPM: Final = ec.PPM
MAX_OPEN_ORDERS_PER_ACCOUNT: Final = ec.MAX_OPEN_ORDERS_PER_ACCOUNT
MAX_MARKETS: Final = 256
MAX_SUBMIT_BATCH: Final = ec.MAX_SUBMIT_ROWS
MAX_FEE_PPM: Final = ec.MAX_FEE_PPM
MAX_BAND_PPM: Final = 500_000  # 50 %
#: client_order_id is idempotent over an account's last this many ids (older ones are
#: forgotten, oldest first: a retry that late places a new order)
MAX_CLIENT_IDS_PER_ACCOUNT: Final = 10_000

SIDES: Final = {"buy": mc.BUY, "sell": mc.SELL}
SIDE_NAMES: Final = {mc.BUY: "buy", mc.SELL: "sell"}
TIFS: Final = {"GTC": mc.GTC, "IOC": mc.IOC, "FOK": mc.FOK}
TIF_NAMES: Final = {v: k for k, v in TIFS.items()}
STPS: Final = {v: k for k, v in mc.STP_NAMES.items()}
STATUS_NAMES: Final = {
    0: "",
    mc.EV_RESTING: "resting",
    mc.EV_FILLED: "filled",
    mc.EV_EXPIRED: "expired",
    mc.EV_STP_EXPIRED: "stp_expired",
    mc.EV_CANCELED: "cancelled",
    mc.EV_AMENDED: "amended",
}
#: the code ``submit_orders`` reports for a row that names no listed market
UNKNOWN_MARKET_CODE: Final = "unknown_market"
_UNKNOWN_MARKET: Final = -1  # its result code in BulkOutcomes (never journaled)
_LIVE_CODES: Final = {"halted": ec.ASSET_HALTED, "stale": ec.ASSET_HALTED,
                      "not_reconciled": ec.NOT_RECONCILED}


class MarketSpec(msgspec.Struct, frozen=True):
    name: str
    base: str
    quote: str
    tick_minor: int
    lot_minor: int
    npt: int  # quote minor units per tick-lot
    maker_fee_ppm: int
    taker_fee_ppm: int
    min_notional_minor: int
    fee_account: str
    market_id: int


class OpenOrder(msgspec.Struct, frozen=True):
    """A resting order and what it holds (``held_minor`` of ``hold_asset``: always
    exactly what its remaining quantity at its price needs)."""

    order_id: int
    market: str
    account: str
    side: str
    price_ticks: int
    remaining_lots: int
    held_minor: int
    hold_asset: str


class FillView(msgspec.Struct, frozen=True):
    """A fill in the market's units."""

    price: Decimal
    qty: Decimal
    maker_order_id: int
    taker_order_id: int
    maker_fee: Decimal
    taker_fee: Decimal


class Order(msgspec.Struct, frozen=True):
    """An order as the caller sees it, in the market's units. A market buy has
    ``quote_qty`` (its budget) and ``qty`` equal to what it bought."""

    order_id: int
    market: str
    account: str
    side: str
    status: str
    price: Decimal | None
    qty: Decimal
    filled_qty: Decimal
    fills: list[FillView]
    client_order_id: str = ""
    replayed: bool = False
    quote_qty: Decimal | None = None


class BulkOutcome(NamedTuple):
    """One command's outcome in :meth:`MarketCommands.submit_orders`: ``code`` is
    ``"ok"`` or the code of the :class:`~solvent.Rejected` the single-order command
    would raise; the rest are the engine's result row (see
    :mod:`solvent.engine.codes`), ``status`` by name."""

    code: str
    order_id: int
    status: str
    filled_lots: int
    remaining_lots: int
    amount_minor: int


class BulkOutcomes(Sequence[BulkOutcome]):
    """The outcomes of one ``submit_orders`` call, one per command, in order; kept
    as the engine's int64 result rows and turned into :class:`BulkOutcome` only
    when read."""

    def __init__(self) -> None:
        self._rows: array[int] = array("q")
        #: True when a repeated ``ref`` returned the first call's outcomes
        self.replayed = False

    def _extend(self, results: bytes) -> None:
        self._rows.extend(column_from_bytes(results))

    def _refuse(self, code: int) -> None:
        self._rows.extend((code, 0, 0, 0, 0, 0))

    def __len__(self) -> int:
        return len(self._rows) // ec.OUT_FIELDS

    @overload
    def __getitem__(self, i: int) -> BulkOutcome: ...

    @overload
    def __getitem__(self, i: slice) -> list[BulkOutcome]: ...

    def __getitem__(self, i: int | slice) -> BulkOutcome | list[BulkOutcome]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("outcome index out of range")
        row = self._rows[i * ec.OUT_FIELDS:(i + 1) * ec.OUT_FIELDS]
        return BulkOutcome(ec.CODE_NAMES.get(row[0], UNKNOWN_MARKET_CODE), row[1],
                           STATUS_NAMES[row[2]], row[3], row[4], row[5])

    def __iter__(self) -> Iterator[BulkOutcome]:
        return (self[i] for i in range(len(self)))

    def codes(self) -> list[str]:
        """Each command's code (``"ok"`` or a rejection code)."""
        return [ec.CODE_NAMES.get(c, UNKNOWN_MARKET_CODE)
                for c in self._rows[::ec.OUT_FIELDS]]

    def order_ids(self) -> list[int]:
        """Each command's order id (0 when refused)."""
        return list(self._rows[1::ec.OUT_FIELDS])

    @property
    def accepted(self) -> int:
        return sum(1 for c in self._rows[::ec.OUT_FIELDS] if c == ec.OK)


def _fail(rec: r.Record, why: str) -> e.TamperDetected:
    return e.TamperDetected(
        f"position {rec.position}: {type(rec).__name__} {why}", position=rec.position)


def _market_number(item: object) -> object:
    """A bulk row's market number (any object), or None when the row has not the
    shape of a row."""
    if (type(item) is tuple or type(item) is list) and len(item) == ec.IN_FIELDS:
        return item[1]
    return None


def _tif_for(type: object, tif: object) -> Any:
    """An order's time in force: as given, or by default GTC for a limit order and
    IOC for a market order (which never rests)."""
    if tif is None:
        return "IOC" if type == "market" else "GTC"
    return tif


def _check_order_id(order_id: object) -> None:
    if isinstance(order_id, bool) or not isinstance(order_id, int):
        raise e.InvalidArgument(f"order_id must be an int, got {type(order_id).__name__}")
    if not -ec.INT64_MAX - 1 <= order_id <= ec.INT64_MAX:  # as the engine refuses a row's
        raise e.InvalidArgument(f"order_id {shown_value(order_id)} is beyond int64")


class MarketState:
    """Listings, reference prices, halts and one engine per market; changed by
    record handlers and by the commands' engine calls."""

    def __init__(self, state: LedgerState) -> None:
        self.state = state
        self.specs: dict[str, MarketSpec] = {}
        self.engines: dict[str, Any] = {}
        self.names: list[str] = []  # market number -> name
        self.references: dict[str, tuple[int, int]] = {}  # market -> (price, band_ppm)
        self.halted: dict[str, str] = {}
        self.next_order_id = 1
        # (account, client order id) -> (order id, position, batch version of the record)
        self.client_ids: dict[tuple[str, str], tuple[int, int, int]] = {}
        self._client_fifo: dict[str, deque[str]] = {}  # account -> its ids, oldest first
        # submit_orders ref -> its records: [(position, batch version, batch index), ...]
        self.order_refs: dict[str, list[tuple[int, int, int]]] = {}

    def remember_client_id(self, account: str, client_order_id: str, order_id: int,
                           position: int, version: int) -> None:
        """Keep ``client_order_id`` for retries (with where its record is: ``position``
        in batch ``version``), forgetting the account's oldest beyond
        ``MAX_CLIENT_IDS_PER_ACCOUNT``."""
        fifo = self._client_fifo.setdefault(account, deque())
        if len(fifo) >= MAX_CLIENT_IDS_PER_ACCOUNT:
            del self.client_ids[(account, fifo.popleft())]
        fifo.append(client_order_id)
        self.client_ids[(account, client_order_id)] = (order_id, position, version)

    def remember_order_ref(self, rec: r.OrdersSubmitted, version: int) -> None:
        """Index a ``submit_orders`` record by its call's ``ref`` (a repeated ref
        returns the call's outcomes). The records of one call follow one another."""
        found = self.order_refs.get(rec.ref)
        at = (rec.position, version, rec.batch_index)
        if found is None:
            self.order_refs[rec.ref] = [at]
            return
        if found[-1][0] != rec.position - 1 or found[-1][2] >= rec.batch_index:
            raise _fail(rec, f"reuses the ref {rec.ref!r} of the call at position {found[0][0]}")
        found.append(at)

    @property
    def books(self) -> dict[str, Any]:
        return {m: eng.book for m, eng in self.engines.items()}

    def handlers(self) -> dict[type, Any]:
        return {
            r.MarketListed: self._on_listed,
            r.ReferencePriceSet: self._on_reference,
            r.OrderPlaced: self._on_placed,
            r.OrderCancelled: self._on_cancelled,
            r.OrderAmended: self._on_amended,
            r.OrdersSubmitted: self._on_submitted,
            r.MarketHalted: self._on_halted,
            r.MarketResumed: self._on_resumed,
        }

    # -- listing -------------------------------------------------------------------

    def _engine(self, spec: MarketSpec, book: Any = None) -> Any:
        st = self.state
        if book is None:
            book = book_class(st.core_name)()
        return engine_class(st.core_name)(
            st.core, market=spec.market_id, base=st.asset_index[spec.base],
            quote=st.asset_index[spec.quote], fee_account=st.account_index[spec.fee_account],
            lot_minor=spec.lot_minor, npt=spec.npt, maker_fee_ppm=spec.maker_fee_ppm,
            taker_fee_ppm=spec.taker_fee_ppm, min_notional_minor=spec.min_notional_minor,
            max_open_per_account=MAX_OPEN_ORDERS_PER_ACCOUNT, book=book)

    def _on_listed(self, rec: r.MarketListed) -> None:
        if rec.market in self.specs:
            raise _fail(rec, "lists an existing market")
        st = self.state
        st.asset_index[rec.base]
        st.asset_index[rec.quote]
        if st.account_index.get(rec.fee_account) is None or st.core.kind(
            st.account_index[rec.fee_account]
        ) != cc.KIND_COMPANY:
            raise _fail(rec, "names no company fee account")
        spec = MarketSpec(
            rec.market, rec.base, rec.quote, rec.tick_minor, rec.lot_minor,
            rec.notional_per_tick_lot_minor, rec.maker_fee_ppm, rec.taker_fee_ppm,
            rec.min_notional_minor, rec.fee_account, len(self.names))
        self.engines[rec.market] = self._engine(spec)
        self.specs[rec.market] = spec
        self.names.append(rec.market)

    def _on_reference(self, rec: r.ReferencePriceSet) -> None:
        spec = self.specs.get(rec.market)
        if spec is None:
            raise _fail(rec, "names no listed market")
        if not (1 <= rec.price_ticks <= mc.MAX_PRICE_TICKS and 0 <= rec.band_ppm <= MAX_BAND_PPM):
            raise _fail(rec, "sets a reference price or band out of range")
        ids = rec.cancelled_order_ids
        low, high = band_of(rec.price_ticks, rec.band_ppm)
        if len(ids) > MAX_SUBMIT_BATCH:
            raise _fail(rec, f"cancels more than {MAX_SUBMIT_BATCH:,} orders")
        eng = self.engines[rec.market]
        for i, oid in enumerate(ids):
            found = eng.book.order(oid)
            if i and not ids[i - 1] < oid:
                raise _fail(rec, "lists the orders it cancels out of order")
            if found is None or not ((found[1] == mc.SELL and found[2] < low)
                                     or (found[1] == mc.BUY and found[2] > high)):
                raise _fail(rec, f"cancels order {oid}, which does not rest where the new "
                                 "band strands it")
        eng.set_reference(rec.price_ticks, rec.band_ppm)
        self.references[rec.market] = (rec.price_ticks, rec.band_ppm)
        if ids:
            rows = [(ec.OP_CANCEL, spec.market_id, oid, 0, 0, 0, 0, 0, 0) for oid in ids]
            consumed, _first, _ins, outs, _evs = self.run(rec.market, rows, 0, ec.OK, -1)
            codes = column_from_bytes(outs)[0::ec.OUT_FIELDS]
            assert consumed == len(rows) and not any(codes), "a stranded order did not cancel"
        if (eng.book.best_ask() or high) < low or (eng.book.best_bid() or 0) > high:
            raise _fail(rec, "leaves resting orders a taker inside the new band would meet "
                             "outside it")

    def stranded(self, market: str, low: int, high: int) -> list[int]:
        """The resting orders of ``market`` a band of ``low``..``high`` ticks would strand
        where a taker inside it meets them: asks below ``low``, bids above ``high``;
        ascending ids. Reads from the best price inwards, so the cost follows the
        stranded orders, not the book."""
        book = self.engines[market].book
        levels = 16
        while True:
            bids, asks = book.depth(levels)
            bid_prices = [p for p, _ in bids if p > high]
            ask_prices = [p for p, _ in asks if p < low]
            if (len(bid_prices) < levels or len(bids) < levels) and (
                    len(ask_prices) < levels or len(asks) < levels):
                break
            levels *= 4
        ids = [oid for p in bid_prices for oid, _a, _q in book.level_orders(mc.BUY, p)]
        ids += [oid for p in ask_prices for oid, _a, _q in book.level_orders(mc.SELL, p)]
        ids.sort()
        return ids

    def _on_halted(self, rec: r.MarketHalted) -> None:
        self.engines[rec.market].set_halted(True)
        self.halted[rec.market] = rec.reason

    def _on_resumed(self, rec: r.MarketResumed) -> None:
        if self.halted.pop(rec.market, None) is None:
            raise _fail(rec, "resumes a market that is not halted")
        self.engines[rec.market].set_halted(False)

    # -- running the engine ------------------------------------------------------------

    def band(self, market: str) -> tuple[int, int] | None:
        """The (low, high) ticks orders may trade at, or None without a reference price."""
        eng = self.engines[market]
        return (eng.band_low, eng.band_high) if eng.reference_ticks else None

    def live_code(self, spec: MarketSpec, now_ns: int | None) -> int:
        """0 when both assets of the market are live, else the engine's code."""
        st = self.state
        for asset in (spec.base, spec.quote):
            why, _ = st.custody.liveness(st.asset_index[asset], now_ns)
            if why:
                return _LIVE_CODES[why]
        return ec.OK

    def run(self, market: str, rows: Sequence[object], start: int, live_code: int,
            owner: int) -> tuple[int, int, bytes, bytes, bytes]:
        """Run rows through the market's engine: ``(consumed, first order id, rows,
        results, events)``. The caller journals them; an exception from the
        engine leaves state the caller must reload."""
        first = self.next_order_id
        consumed, self.next_order_id, ins, outs, evs = self.engines[market].submit(
            rows, start, live_code, owner, first)
        return consumed, first, ins, outs, evs

    def fills_of(self, spec: MarketSpec, events: bytes
                 ) -> tuple[list[r.Fill], list[tuple[int, int]]]:
        """The journal's view of one order's event rows."""
        names = self.state.account_names
        ev = column_from_bytes(events)
        fills: list[r.Fill] = []
        expired: list[tuple[int, int]] = []
        for i in range(0, len(ev), ec.EVENT_FIELDS):
            _row, kind, maker_id, maker, price, qty, rem, maker_fee, taker_fee = \
                ev[i:i + ec.EVENT_FIELDS]
            if kind == mc.EV_FILL:
                fills.append(r.Fill(maker_id, names[maker], price, qty, price * qty * spec.npt,
                                    maker_fee, taker_fee, rem))
            else:
                expired.append((maker_id, qty))
        return fills, expired

    # -- reads ---------------------------------------------------------------------------

    def _open_order(self, market: str, order_id: int, account: int, side: int, price: int,
                    remaining: int) -> OpenOrder:
        spec = self.specs[market]
        return OpenOrder(order_id, market, self.state.account_names[account], SIDE_NAMES[side],
                         price, remaining,
                         self.engines[market].hold_needed(side, price, remaining),
                         spec.quote if side == mc.BUY else spec.base)

    def order(self, order_id: int) -> OpenOrder | None:
        """The resting order ``order_id``, in whichever market it rests."""
        for market, eng in self.engines.items():
            found = eng.book.order(order_id)
            if found is not None:
                account, side, price, remaining = found
                return self._open_order(market, order_id, account, side, price, remaining)
        return None

    def orders_of(self, account: int) -> list[OpenOrder]:
        """``account``'s resting orders in every market, oldest first. Each market's
        engine keeps its accounts' order ids, so this reads those orders alone."""
        out = [self._open_order(market, oid, account, side, price, remaining)
               for market, eng in self.engines.items()
               for oid, side, price, remaining in eng.orders_of(account)]
        out.sort(key=lambda o: o.order_id)
        return out

    # -- replay ------------------------------------------------------------------------

    def _replay_one(self, rec: r.Record, market: str, row: tuple[int, ...]
                    ) -> tuple[array[int], bytes]:
        try:
            _n, _first, _ins, outs, evs = self.run(market, [row], 0, ec.OK, -1)
        except AssertionError as exc:  # a settlement the holds cannot pay
            raise _fail(rec, f"does not settle: {exc}") from exc
        return column_from_bytes(outs), evs

    def _on_placed(self, rec: r.OrderPlaced) -> None:
        spec = self.specs[rec.market]
        if rec.order_id != self.next_order_id:
            raise _fail(rec, f"numbers order {rec.order_id}, expected {self.next_order_id}")
        if self.live_code(spec, None):
            raise _fail(rec, "places an order while an asset of the market is not live")
        out, evs = self._replay_one(rec, rec.market, placed_row(self, rec))
        fills, expired = self.fills_of(spec, evs)
        got = (ec.CODE_NAMES[out[0]], out[1], STATUS_NAMES[out[2]], out[3], out[4], out[5],
               fills, expired)
        want = ("ok", rec.order_id, rec.status, rec.filled_lots, rec.remaining_lots,
                rec.hold_minor, rec.fills, [tuple(x) for x in rec.expired_makers])
        hold_asset = spec.quote if rec.side == "buy" else spec.base
        if got != want or rec.hold_asset != hold_asset:
            raise _fail(rec, f"replays as {got!r}, journaled as {want!r}")
        if rec.client_order_id:
            self.remember_client_id(rec.account, rec.client_order_id, rec.order_id,
                                    rec.position, self.state.version + 1)

    def _on_cancelled(self, rec: r.OrderCancelled) -> None:
        found = self.order(rec.order_id)
        if found is None or (found.market, found.account) != (rec.market, rec.account):
            raise _fail(rec, "cancels no resting order of that account and market")
        row = (ec.OP_CANCEL, self.specs[rec.market].market_id, rec.order_id, 0, 0, 0, 0, 0, 0)
        out, _evs = self._replay_one(rec, rec.market, row)
        if (out[0], out[4], out[5]) != (ec.OK, rec.removed_lots, rec.released_minor):
            raise _fail(rec, f"replays as {tuple(out)}")

    def _on_amended(self, rec: r.OrderAmended) -> None:
        found = self.order(rec.order_id)
        if found is None or (found.market, found.account) != (rec.market, rec.account):
            raise _fail(rec, "amends no resting order of that account and market")
        spec = self.specs[rec.market]
        grows = rec.qty_lots > found.remaining_lots or rec.price_ticks != found.price_ticks
        if grows and self.live_code(spec, None):
            raise _fail(rec, "grows an order while an asset of the market is not live")
        row = (ec.OP_AMEND, spec.market_id, rec.order_id, 0, 0, rec.price_ticks, rec.qty_lots,
               0, 0)
        out, _evs = self._replay_one(rec, rec.market, row)
        if (out[0], out[5]) != (ec.OK, rec.hold_delta_minor):
            raise _fail(rec, f"replays as {tuple(out)}")

    def _on_submitted(self, rec: r.OrdersSubmitted) -> None:
        spec = self.specs.get(rec.market)
        if spec is None:
            raise _fail(rec, f"names unknown market {rec.market!r}")
        if rec.first_order_id != self.next_order_id:
            raise _fail(rec, f"numbers from {rec.first_order_id}, expected {self.next_order_id}")
        if rec.live_code != self.live_code(spec, None):
            raise _fail(rec, f"claims live code {rec.live_code}, the state says otherwise")
        if not -1 <= rec.owner < self.state.core.n_accounts:
            raise _fail(rec, f"names owner {rec.owner}")
        try:
            self.next_order_id, outs, evs = self.engines[rec.market].replay(
                rec.rows, rec.live_code, rec.owner, rec.first_order_id)
        except (AssertionError, ValueError) as exc:
            raise _fail(rec, f"does not replay: {exc}") from exc
        if outs != rec.results or evs != rec.events:
            raise _fail(rec, "replays to other results or events than journaled")
        rows = len(rec.rows) // (8 * ec.IN_FIELDS)
        legacy = rec.batch_rows == rec.batch_index == 0 and not rec.ref  # written before them
        if not legacy and not 0 <= rec.batch_index <= rec.batch_rows - rows:
            raise _fail(rec, f"places rows {rec.batch_index}..{rec.batch_index + rows - 1} in "
                             f"a call of {rec.batch_rows}")
        if rec.ref:
            self.remember_order_ref(rec, self.state.version + 1)

    # -- snapshots ---------------------------------------------------------------------

    def export(self) -> dict[str, Any]:
        return {
            "specs": [self.specs[m] for m in self.names],
            "books": {m: eng.export_state() for m, eng in self.engines.items()},
            "references": sorted(self.references.items()),
            "halted": sorted(self.halted.items()),
            "next_order_id": self.next_order_id,
            "client_ids": [[a, c, o, pos, v] for (a, c), (o, pos, v) in self.client_ids.items()],
            "order_refs": [[ref, [list(x) for x in at]] for ref, at in self.order_refs.items()],
        }

    def load(self, data: dict[str, Any]) -> None:
        cls = book_class(self.state.core_name)
        for spec in data["specs"]:
            spec = msgspec.convert(spec, MarketSpec)
            self.specs[spec.name] = spec
            self.names.append(spec.name)
            self.engines[spec.name] = self._engine(spec, cls.from_state(data["books"][spec.name]))
        for market, (price, band) in data["references"]:
            self.references[market] = (price, band)
            self.engines[market].set_reference(price, band)
        for market, reason in data["halted"]:
            self.halted[market] = reason
            self.engines[market].set_halted(True)
        self.next_order_id = data["next_order_id"]
        for account, client, order_id, pos, version in data["client_ids"]:  # oldest first
            self.remember_client_id(account, client, order_id, pos, version)
        for ref, at in data.get("order_refs", ()):  # absent from older snapshots: no refs
            self.order_refs[ref] = [(pos, version, index) for pos, version, index in at]


def placed_row(ms: MarketState, rec: r.OrderPlaced) -> tuple[int, ...]:
    """The engine's input row of a journaled single order."""
    return (ec.OP_MARKET if rec.order_type == "market" else ec.OP_LIMIT,
            ms.specs[rec.market].market_id, 0, ms.state.account_index[rec.account],
            SIDES[rec.side], rec.price_ticks, rec.qty_lots, rec.quote_minor,
            mc.flags(TIFS[rec.tif], rec.post_only, STPS[rec.stp]))


class MarketCommands:
    """The market commands of :class:`~solvent.Ledger` (a mixin)."""

    if TYPE_CHECKING:
        _state: LedgerState
        _lock: Any
        _pending: list[r.JournalRecord]

        def _authorize(self, actor: str | None, command: str, debit_account: str = "") -> str:
            ...

        def _emit(self, cls: type[Any], actor: str, ref: str, *, time_ns: int | None = None,
                  **fields: Any) -> Receipt: ...

        def _journal(self, cls: type[Any], actor: str, ref: str, **fields: Any) -> Receipt: ...

        def _asset(self, asset: str) -> int: ...

        def _account(self, name: str, what: str) -> int: ...

        def _require_live(self, a: int, who: str) -> None: ...

        def _rejection(self, code: int, command: str, account: str, asset: str,
                       amount_minor: int, **extra: Any) -> e.Rejected: ...

        def batch(self) -> Any: ...

        def _abort(self, mark: int) -> None: ...

        _actor: str
        _store: JournalStore

        def open_account(self, account: str, kind: str = "customer", *,
                         actor: str | None = None) -> Receipt: ...

    @property
    def _markets(self) -> MarketState:
        return self._state.markets

    def _spec(self, market: str) -> MarketSpec:
        spec = self._markets.specs.get(market) if type(market) is str else None
        if spec is not None:  # listed, so a valid id
            return spec
        check_id(market, "market")
        spec = self._markets.specs.get(market)
        if spec is None:
            raise e.UnknownMarket(f"unknown market {market!r}", market=market)
        return spec

    # -- listing -------------------------------------------------------------------------

    def list_market(
        self, market: str, *, base: str, quote: str, tick_size: AmountLike,
        lot_size: AmountLike, maker_fee: str | Decimal = "0", taker_fee: str | Decimal = "0",
        min_notional: AmountLike | None = None, actor: str | None = None,
    ) -> Receipt:
        """List a spot market. ``tick_size`` is in quote units, ``lot_size`` in base
        units, fees are ratios (``"0.001"`` = 0.1 %), ``min_notional`` in quote units.
        Refused unless one tick times one lot is a whole number of quote minor units,
        so that every fill's notional is exact."""
        with self._lock:
            who = self._authorize(actor, "list_market")
            check_id(market, "market")
            if market in self._markets.specs:
                raise e.AlreadyExists(f"market {market!r} exists already", market=market)
            if len(self._markets.specs) >= MAX_MARKETS:
                raise e.LimitExceeded(f"at most {MAX_MARKETS} markets")
            b = self._asset(base)
            q = self._asset(quote)
            if b == q:
                raise e.InvalidArgument(f"market {market!r}: base and quote are both {base}")
            bdec = self._state.asset_decimals[b]
            qdec = self._state.asset_decimals[q]
            tick_minor = to_minor(tick_size, qdec, what="tick_size", asset=quote)
            lot_minor = to_minor(lot_size, bdec, what="lot_size", asset=base)
            npt, rem = divmod(tick_minor * lot_minor, 10**bdec)
            if rem or npt == 0:
                raise e.TickOrLotViolation(
                    f"market {market!r}: one tick ({tick_size} {quote}) times one lot "
                    f"({lot_size} {base}) is {Decimal(tick_minor * lot_minor) / 10**bdec} "
                    f"{quote} minor units, not a whole number: fills would not be exact",
                    market=market)
            if npt > ec.INT64_MAX:  # the engine keeps one tick times one lot in int64
                raise e.InvalidAmount(
                    f"market {market!r}: one tick ({tick_size} {quote}) times one lot "
                    f"({lot_size} {base}) is {npt} {quote} minor units, past int64",
                    market=market)
            maker_ppm = to_ppm(maker_fee, "maker_fee", MAX_FEE_PPM)
            taker_ppm = to_ppm(taker_fee, "taker_fee", MAX_FEE_PPM)
            min_minor = 0 if min_notional is None else to_minor(
                min_notional, qdec, what="min_notional", asset=quote)
            fee_account = f"fees:{market}"
            existing = self._state.account_index.get(fee_account)
            if existing is not None and self._state.core.kind(existing) != cc.KIND_COMPANY:
                raise e.AlreadyExists(
                    f"market {market!r} needs the company account {fee_account!r} for its "
                    "fees, and an account or wallet of another kind has that name",
                    market=market, account=fee_account)
            with self.batch():
                if fee_account not in self._state.account_index:
                    self.open_account(fee_account, kind="company", actor=who)
                return self._emit(
                    r.MarketListed, who, "", market=market, base=base, quote=quote,
                    tick_minor=tick_minor, lot_minor=lot_minor,
                    notional_per_tick_lot_minor=npt, maker_fee_ppm=maker_ppm,
                    taker_fee_ppm=taker_ppm, min_notional_minor=min_minor,
                    fee_account=fee_account)

    def set_reference_price(
        self, market: str, price: AmountLike, *, band: str | Decimal,
        actor: str | None = None,
    ) -> Receipt:
        """Set the reference (index) price of ``market`` and the band around it
        (``"0.05"``: orders may not trade more than 5 % away from it).

        A move can strand resting orders where a taker inside the new band would
        meet them: asks below its floor, bids above its ceiling. This command
        cancels them in the same record (``cancelled_order_ids``) and releases their
        holds, so no trade prints outside the band; asks above the ceiling and bids
        below the floor cannot trade and keep resting. More than
        ``MAX_SUBMIT_BATCH`` stranded orders is :class:`~solvent.LimitExceeded`:
        cancel some first (``submit_orders`` rows of an operator)."""
        with self._lock:
            who = self._authorize(actor, "set_reference_price")
            spec = self._spec(market)
            ticks = self._ticks(spec, price)
            band_ppm = to_ppm(band, "band", MAX_BAND_PPM)
            stranded = self._markets.stranded(market, *band_of(ticks, band_ppm))
            if len(stranded) > MAX_SUBMIT_BATCH:
                raise e.LimitExceeded(
                    f"the move would strand {len(stranded):,} resting orders of {market} "
                    f"outside its band; at most {MAX_SUBMIT_BATCH:,} are cancelled with it: "
                    "cancel some first", market=market, limit=MAX_SUBMIT_BATCH)
            return self._emit(r.ReferencePriceSet, who, "", market=market, price_ticks=ticks,
                              band_ppm=band_ppm, cancelled_order_ids=tuple(stranded))

    def halt_market(self, market: str, *, reason: str, actor: str | None = None) -> Receipt:
        """Stop new orders and amends in ``market`` (cancels still work). One event."""
        with self._lock:
            who = self._authorize(actor, "halt_market")
            self._spec(market)
            check_text(reason, "reason")
            if not reason:
                raise e.InvalidArgument("a halt needs a reason")
            if market in self._markets.halted:
                raise e.InvalidState(f"market {market!r} is already halted", market=market)
            return self._emit(r.MarketHalted, who, "", market=market, reason=reason)

    def resume_market(self, market: str, *, reason: str = "resumed",
                      actor: str | None = None) -> Receipt:
        with self._lock:
            who = self._authorize(actor, "resume_market")
            self._spec(market)
            check_text(reason, "reason")
            if market not in self._markets.halted:
                raise e.InvalidState(f"market {market!r} is not halted", market=market)
            return self._emit(r.MarketResumed, who, "", market=market, reason=reason)

    # -- units -------------------------------------------------------------------------

    def _ticks(self, spec: MarketSpec, price: AmountLike) -> int:
        return self._on_grid(spec, price, spec.quote, spec.tick_minor, "price", "tick",
                             mc.MAX_PRICE_TICKS)

    def _lots(self, spec: MarketSpec, qty: AmountLike) -> int:
        return self._on_grid(spec, qty, spec.base, spec.lot_minor, "qty", "lot",
                             mc.MAX_QTY_LOTS)

    def _on_grid(self, spec: MarketSpec, value: AmountLike, asset: str, step_minor: int,
                 what: str, step: str, limit: int) -> int:
        """``value`` (in ``asset``'s units) as a whole number of steps of ``step_minor``."""
        dec = self._state.asset_decimals[self._state.asset_index[asset]]
        steps, rem = divmod(to_minor(value, dec, what=what, asset=asset), step_minor)
        if rem:
            raise e.TickOrLotViolation(
                f"{what} {value} {asset} is not a multiple of the {step} "
                f"{from_minor(step_minor, dec)}", market=spec.name)
        if steps > limit:
            raise e.InvalidAmount(f"{what} {value} exceeds {limit} {step}s", market=spec.name)
        return steps

    # -- numbers for the bulk path -----------------------------------------------------

    def market_id(self, market: str) -> int:
        """The number of ``market`` (column 1 of a :meth:`submit_orders` row)."""
        with self._lock:
            return self._spec(market).market_id

    def account_id(self, account: str) -> int:
        """The number of ``account`` (column 3 of a :meth:`submit_orders` row)."""
        with self._lock:
            return self._account(account, "account")

    def order_row(
        self, account: str, market: str, side: str, *, qty: AmountLike | None = None,
        price: AmountLike | None = None, quote_qty: AmountLike | None = None,
        type: str = "limit", tif: str | None = None, post_only: bool = False,
        stp: str = "expire_maker",
    ) -> tuple[int, ...]:
        """The :meth:`submit_orders` row of an order given as :meth:`place_order`
        takes it (units checked and converted now; everything that depends on
        state is checked when the row runs)."""
        with self._lock:
            return self._order_row(account, market, side, qty, price, quote_qty, type,
                                   _tif_for(type, tif), post_only, stp)

    def cancel_row(self, order_id: int, market: str) -> tuple[int, ...]:
        """The :meth:`submit_orders` row cancelling ``order_id`` in ``market``."""
        with self._lock:
            _check_order_id(order_id)
            return (ec.OP_CANCEL, self._spec(market).market_id, order_id, 0, 0, 0, 0, 0, 0)

    def amend_row(self, order_id: int, market: str, *, qty: AmountLike | None = None,
                  price: AmountLike | None = None) -> tuple[int, ...]:
        """The :meth:`submit_orders` row amending ``order_id`` in ``market`` (an
        omitted ``qty`` or ``price`` stays as it is)."""
        with self._lock:
            _check_order_id(order_id)
            spec = self._spec(market)
            if qty is None and price is None:
                raise e.InvalidArgument("amend needs qty or price")
            lots = 0 if qty is None else self._lots(spec, qty)
            ticks = 0 if price is None else self._ticks(spec, price)
            return (ec.OP_AMEND, spec.market_id, order_id, 0, 0, ticks, lots, 0, 0)

    # -- orders --------------------------------------------------------------------------

    def place_order(
        self, account: str, market: str, side: str, *, qty: AmountLike | None = None,
        price: AmountLike | None = None, quote_qty: AmountLike | None = None,
        type: str = "limit", tif: str | None = None, post_only: bool = False,
        stp: str = "expire_maker", client_order_id: str = "", actor: str | None = None,
    ) -> Order:
        """Place an order backed by funds held now from ``account``.

        ``type="limit"`` with ``price`` and ``qty`` (``tif`` GTC, the default, IOC or
        FOK; ``post_only`` with GTC); ``type="market"``: a sell by ``qty`` (``tif`` IOC,
        the default, or FOK), a buy by ``quote_qty`` (a budget in quote units, fees
        included; IOC). Self-trade
        prevention ``stp``: none, expire_taker, expire_maker, expire_both.
        ``client_order_id`` is idempotent per account: a repeat returns the first
        result (``replayed=True``) before any other check. Raises a
        :class:`~solvent.Rejected` subclass and changes nothing when refused."""
        with self._lock:
            spec = self._spec(market)
            self._account(account, "account")
            who = self._authorize(actor, "place_order", debit_account=account)
            check_ref(client_order_id, "client_order_id")  # "" or an id (None, 0: refused)
            tif = _tif_for(type, tif)
            row = self._order_row(account, market, side, qty, price, quote_qty, type, tif,
                                  post_only, stp)
            ms = self._markets
            if client_order_id:
                prior = ms.client_ids.get((account, client_order_id))
                if prior is not None:
                    return self._replayed_order(prior[1], prior[2], row, client_order_id)
            live_code, live_exc = self._live(spec, who)
            mark = len(self._pending)
            try:
                _n, order_id, _ins, outs, evs = ms.run(market, [row], 0, live_code, -1)
            except BaseException:
                self._abort(mark)
                raise
            out = column_from_bytes(outs)
            if out[0] != ec.OK:
                raise self._order_refusal(out[0], spec, row, account, live_exc)
            fills, expired = ms.fills_of(spec, evs)
            status = STATUS_NAMES[out[2]]
            version = self._state.version + 1  # the batch the record goes into
            if client_order_id:  # before the record commits: its commit may take a snapshot
                ms.remember_client_id(account, client_order_id, order_id,
                                      self._state.position + 1, version)
            self._journal(
                r.OrderPlaced, who, client_order_id, market=market, order_id=order_id,
                account=account, side=side, order_type=type, tif=tif, post_only=post_only,
                stp=stp, price_ticks=row[5], qty_lots=row[6], quote_minor=row[7],
                hold_asset=spec.quote if side == "buy" else spec.base, hold_minor=out[5],
                client_order_id=client_order_id, fills=fills, expired_makers=expired,
                status=status, filled_lots=out[3], remaining_lots=out[4])
            return self._order_view(spec, order_id, account, side, row, status, out[3], fills,
                                    client_order_id)

    def _order_row(
        self, account: str, market: str, side: str, qty: AmountLike | None,
        price: AmountLike | None, quote_qty: AmountLike | None, type: str, tif: str,
        post_only: bool, stp: str,
    ) -> tuple[int, ...]:
        """Validate an order's arguments and convert them into the engine's row."""
        st = self._state
        spec = self._spec(market)
        acct = self._account(account, "account")
        if acct in st.wallet_accounts:
            raise e.InvalidArgument(f"{account!r} is a wallet, not an account", account=account)
        if not isinstance(side, str) or side not in SIDES:
            raise e.InvalidArgument(f"side {shown_value(side)}: buy or sell", market=market)
        if type not in ("limit", "market"):  # a tuple: compared, never hashed
            raise e.InvalidArgument(f"type {shown_value(type)}: limit or market", market=market)
        if not isinstance(tif, str) or tif not in TIFS:
            raise e.InvalidArgument(f"tif {shown_value(tif)}: GTC, IOC or FOK", market=market)
        if not isinstance(stp, str) or stp not in STPS:
            raise e.InvalidArgument(f"stp {shown_value(stp)}: {', '.join(STPS)}", market=market)
        if not isinstance(post_only, bool):
            raise e.InvalidArgument("post_only must be a bool")
        ticks = lots = quote_minor = 0
        if type == "limit":
            if price is None or qty is None or quote_qty is not None:
                raise e.InvalidArgument("a limit order takes price and qty", market=market)
            if post_only and tif != "GTC":
                raise e.InvalidArgument("post_only goes with GTC only", market=market)
            ticks = self._ticks(spec, price)
            lots = self._lots(spec, qty)
        else:
            if post_only:
                raise e.InvalidArgument("a market order is never post-only", market=market)
            if tif == "GTC":
                raise e.InvalidArgument("a market order is IOC or FOK, never GTC",
                                        market=market)
            if price is not None:
                raise e.InvalidArgument("a market order takes no price", market=market)
            if side == "sell":
                if qty is None or quote_qty is not None:
                    raise e.InvalidArgument("a market sell takes qty", market=market)
                lots = self._lots(spec, qty)
            else:
                if quote_qty is None or qty is not None:
                    raise e.InvalidArgument("a market buy takes quote_qty (a budget)",
                                            market=market)
                if tif != "IOC":
                    raise e.InvalidArgument("a market buy by budget is IOC", market=market)
                qdec = st.asset_decimals[st.asset_index[spec.quote]]
                quote_minor = to_minor(quote_qty, qdec, what="quote_qty", asset=spec.quote)
                if quote_minor > ec.INT64_MAX:
                    raise e.InvalidAmount("quote_qty exceeds int64 minor units", market=market)
        return (ec.OP_MARKET if type == "market" else ec.OP_LIMIT, spec.market_id, 0, acct,
                SIDES[side], ticks, lots, quote_minor,
                mc.flags(TIFS[tif], post_only, STPS[stp]))

    def _live(self, spec: MarketSpec, who: str) -> tuple[int, e.Rejected | None]:
        """The engine's live code for the market's assets, and the exception that
        explains it (checking may journal a stale-attestation halt)."""
        try:
            for asset in (spec.base, spec.quote):
                self._require_live(self._state.asset_index[asset], who)
        except (e.AssetHalted, e.NotReconciled) as exc:
            return (ec.ASSET_HALTED if isinstance(exc, e.AssetHalted)
                    else ec.NOT_RECONCILED), exc
        return ec.OK, None

    def _order_refusal(self, code: int, spec: MarketSpec, row: tuple[int, ...], account: str,
                       live_exc: e.Rejected | None) -> e.Rejected:
        """The exception the single-order path raises for an engine result code."""
        st = self._state
        market = spec.name
        qdec = st.asset_decimals[st.asset_index[spec.quote]]
        ms = self._markets
        if code in (ec.ASSET_HALTED, ec.NOT_RECONCILED) and live_exc is not None:
            return live_exc
        if code == ec.MARKET_HALTED:
            return e.MarketHalted(f"market {market} is halted: {ms.halted.get(market, '')}",
                                  market=market)
        if code == ec.PRICE_OUTSIDE_BAND:
            low, high = ms.band(market) or (0, 0)
            return e.PriceOutsideBand(
                f"price {from_minor(row[5] * spec.tick_minor, qdec)} {spec.quote} is outside "
                f"the band {from_minor(low * spec.tick_minor, qdec)}.."
                f"{from_minor(high * spec.tick_minor, qdec)} {spec.quote} of {market}",
                market=market, price_ticks=row[5], low_ticks=low, high_ticks=high)
        if code == ec.BELOW_MIN_NOTIONAL:
            return e.BelowMinNotional(
                f"the order's notional is below the minimum "
                f"{from_minor(spec.min_notional_minor, qdec)} {spec.quote} of {market}, or its "
                f"budget buys no lot", market=market)
        if code == ec.LIMIT_EXCEEDED:
            return e.LimitExceeded(
                f"{account!r} has {MAX_OPEN_ORDERS_PER_ACCOUNT:,} open orders in {market}, the "
                f"limit per market, or the book of {market} is full", account=account,
                limit=MAX_OPEN_ORDERS_PER_ACCOUNT)
        if code == ec.ACCOUNT_FROZEN:
            return e.AccountFrozen(f"order of {account!r}: the account is frozen",
                                   account=account, market=market)
        if code == ec.INSUFFICIENT_FUNDS:
            side = row[4]
            hold_asset = spec.quote if side == mc.BUY else spec.base
            if row[0] == ec.OP_MARKET:
                hold = row[7] if side == mc.BUY else row[6] * spec.lot_minor
            else:
                hold = ms.engines[market].hold_needed(side, row[5], row[6])
            return self._rejection(cc.INSUFFICIENT_FUNDS, "order", account, hold_asset, hold,
                                   market=market)
        if code == ec.POST_ONLY_WOULD_TAKE:
            return e.PostOnlyWouldTake(f"post-only order on {market} would take", market=market)
        if code == ec.FOK_UNFILLABLE:
            return e.FokUnfillable(f"fill-or-kill order on {market} cannot fill completely",
                                   market=market)
        if code == ec.INVALID_AMOUNT:
            return e.InvalidAmount("the order's amount exceeds int64 minor units",
                                   market=market)
        if code == ec.AMEND_WOULD_CROSS:
            return e.AmendWouldCross(f"the amended price would cross the book of {market}",
                                     market=market)
        if code == ec.UNKNOWN_ORDER:
            return e.UnknownOrder(f"no resting order {row[2]} in {market}", order_id=row[2])
        return e.InvalidArgument(f"order on {market} refused: {ec.CODE_NAMES[code]}",
                                 market=market, code_name=ec.CODE_NAMES[code])

    def _order_view(self, spec: MarketSpec, order_id: int, account: str, side: str,
                    row: Sequence[int], status: str, filled_lots: int, fills: list[r.Fill],
                    client_order_id: str, replayed: bool = False) -> Order:
        st = self._state
        bdec = st.asset_decimals[st.asset_index[spec.base]]
        qdec = st.asset_decimals[st.asset_index[spec.quote]]
        lot = spec.lot_minor

        def q(lots: int) -> Decimal:
            return from_minor(lots * lot, bdec)

        views = [FillView(from_minor(f.price_ticks * spec.tick_minor, qdec), q(f.qty_lots),
                          f.maker_order_id, order_id, from_minor(f.maker_fee_minor, qdec),
                          from_minor(f.taker_fee_minor, qdec)) for f in fills]
        by_budget = row[0] == ec.OP_MARKET and row[4] == mc.BUY
        return Order(
            order_id=order_id, market=spec.name, account=account, side=side, status=status,
            price=from_minor(row[5] * spec.tick_minor, qdec) if row[5] else None,
            qty=q(filled_lots if by_budget else row[6]), filled_qty=q(filled_lots),
            fills=views, client_order_id=client_order_id, replayed=replayed,
            quote_qty=from_minor(row[7], qdec) if by_budget else None)

    def _replayed_order(self, position: int, version: int, row: tuple[int, ...],
                        client_order_id: str) -> Order:
        """The first result of a repeated client_order_id, read back from its batch."""
        for rec in self._batch_holding(position, version):
            if rec.position < position:
                continue
            if isinstance(rec, r.OrderPlaced) and rec.position == position:
                if placed_row(self._markets, rec) != row:
                    raise e.DuplicateRef(
                        f"client_order_id {client_order_id!r} of {rec.account!r} was used for "
                        f"order {rec.order_id} with other content", ref=client_order_id)
                return self._order_view(self._markets.specs[rec.market], rec.order_id,
                                        rec.account, rec.side, row, rec.status,
                                        rec.filled_lots, rec.fills, client_order_id,
                                        replayed=True)
            break
        raise AssertionError(f"client order id points at position {position}, not found")

    def _resting(self, order_id: int, actor: str | None) -> tuple[OpenOrder, str]:
        """The resting order ``order_id`` and the actor allowed to change it."""
        _check_order_id(order_id)
        order = self._markets.order(order_id)
        if order is None:
            raise e.UnknownOrder(f"no resting order {order_id}", order_id=order_id)
        return order, self._authorize(actor, "place_order", debit_account=order.account)

    def cancel_order(self, order_id: int, *, actor: str | None = None) -> Receipt:
        """Take a resting order off its book and release what it holds."""
        with self._lock:
            order, who = self._resting(order_id, actor)
            spec = self._markets.specs[order.market]
            out = self._run_one(order.market, (ec.OP_CANCEL, spec.market_id, order_id, 0, 0, 0,
                                               0, 0, 0), ec.OK)
            assert out[0] == ec.OK, ec.CODE_NAMES[out[0]]
            return self._journal(r.OrderCancelled, who, "", market=order.market,
                                 order_id=order_id, account=order.account,
                                 removed_lots=out[4], released_minor=out[5])

    def amend_order(
        self, order_id: int, *, qty: AmountLike | None = None, price: AmountLike | None = None,
        actor: str | None = None,
    ) -> Receipt:
        """Change a resting order's remaining ``qty`` and/or ``price``. A smaller qty
        keeps its queue priority; a price change re-queues; an amend never trades
        (a price that would cross is refused). What it leaves resting is checked as
        a new order would be: a new price inside the band, and remaining qty × price
        at least the market's minimum notional (``BelowMinNotional``; cancel instead)."""
        with self._lock:
            order, who = self._resting(order_id, actor)
            ms = self._markets
            if qty is None and price is None:
                raise e.InvalidArgument("amend needs qty or price")
            spec = ms.specs[order.market]
            lots = order.remaining_lots if qty is None else self._lots(spec, qty)
            ticks = order.price_ticks if price is None else self._ticks(spec, price)
            live_code, live_exc = ec.OK, None
            if lots > order.remaining_lots or ticks != order.price_ticks:
                live_code, live_exc = self._live(spec, who)
            row = (ec.OP_AMEND, spec.market_id, order_id, 0, 0, ticks, lots, 0, 0)
            out = self._run_one(order.market, row, live_code)
            if out[0] != ec.OK:
                if out[0] == ec.INSUFFICIENT_FUNDS:
                    need = ms.engines[order.market].hold_needed(SIDES[order.side], ticks, lots)
                    raise self._rejection(cc.INSUFFICIENT_FUNDS, "amend", order.account,
                                          order.hold_asset, need - order.held_minor,
                                          order_id=order_id)
                raise self._order_refusal(out[0], spec, row, order.account, live_exc)
            return self._journal(r.OrderAmended, who, "", market=order.market,
                                 order_id=order_id, account=order.account, qty_lots=lots,
                                 price_ticks=ticks, hold_delta_minor=out[5])

    def _run_one(self, market: str, row: tuple[int, ...], live_code: int) -> array[int]:
        mark = len(self._pending)
        try:
            _n, _first, _ins, outs, _evs = self._markets.run(market, [row], 0, live_code, -1)
        except BaseException:
            self._abort(mark)
            raise
        return column_from_bytes(outs)

    # -- reads ------------------------------------------------------------------------------

    def open_orders(self, account: str) -> list[OpenOrder]:
        """``account``'s resting orders in every market (with what each holds), oldest
        first. Each market's engine keeps its accounts' order ids, so the cost grows with
        ``account``'s own orders, not with the books (about 0.3 ms for an account's 1,000
        orders among 1,000,000 resting, in the engine)."""
        with self._lock:
            return self._markets.orders_of(self._account(account, "account"))

    def book(self, market: str, depth: int = 10) -> dict[str, list[tuple[Decimal, Decimal]]]:
        """The L2 book: ``{"bids": [(price, qty), ...], "asks": [...]}``, best first."""
        with self._lock:
            spec = self._spec(market)
            if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 1000:
                raise e.InvalidArgument("depth must be an int in 1..1000")
            st = self._state
            bdec = st.asset_decimals[st.asset_index[spec.base]]
            qdec = st.asset_decimals[st.asset_index[spec.quote]]
            bids, asks = self._markets.engines[market].book.depth(depth)

            def view(levels: list[tuple[int, int]]) -> list[tuple[Decimal, Decimal]]:
                return [(from_minor(p * spec.tick_minor, qdec), from_minor(q * spec.lot_minor,
                                                                              bdec))
                        for p, q in levels]

            return {"bids": view(bids), "asks": view(asks)}

    def market_spec(self, market: str) -> MarketSpec:
        """The listing of ``market`` (tick, lot, fees, minimum notional, fee account);
        its band is :meth:`price_band`."""
        with self._lock:
            return self._spec(market)

    def price_band(self, market: str) -> tuple[Decimal, Decimal] | None:
        """The lowest and highest prices (in the quote asset) at which ``market`` may
        trade, set by :meth:`set_reference_price`; None before any reference price."""
        with self._lock:
            spec = self._spec(market)
            band = self._markets.band(market)
            if band is None:
                return None
            st = self._state
            qdec = st.asset_decimals[st.asset_index[spec.quote]]
            return (from_minor(band[0] * spec.tick_minor, qdec),
                    from_minor(band[1] * spec.tick_minor, qdec))

    # -- the bulk path ------------------------------------------------------------------

    def submit_orders(self, batch: Sequence[tuple[int, ...]], *, actor: str | None = None,
                      ref: str = "") -> BulkOutcomes:
        """Run many order commands, given as int rows (:mod:`solvent.engine.codes`;
        build them with :meth:`order_row`, :meth:`cancel_row`, :meth:`amend_row`,
        or directly with :meth:`market_id` and :meth:`account_id`), in order, in
        one compiled call per run of rows of the same market, journaled as one
        ``OrdersSubmitted`` record per run. Returns one :class:`BulkOutcome` per
        row and never raises for a refused row: its code is the one the
        single-order command would raise (``"unknown_market"`` for a row naming
        no listed market). An operator or system actor may act for any account;
        a customer only for its own (others' rows: ``permission_denied``).
        At most ``MAX_SUBMIT_BATCH`` rows.

        The call is atomic: its records commit together, in one store batch (or
        with the enclosing :meth:`~solvent.Ledger.batch`). If the engine or the
        store fails part way, the exception propagates and none of the call took
        effect, so a retry, with the same ``ref`` or none, runs every row afresh;
        except :class:`~solvent.CommitOutcomeUnknown` (the store could not tell
        whether the commit landed), after which only a retry with the same ``ref``
        is safe.

        ``ref`` (optional) makes the call idempotent: a later call with the same
        ``ref`` and the same rows, by the same actor, runs nothing and returns the
        first call's outcomes (``replayed`` set); other rows or another actor raise
        :class:`~solvent.errors.DuplicateRef`. (A call whose rows were all refused
        before reaching a market journals nothing and keeps no ref.)"""
        if not isinstance(batch, (list, tuple)) or len(batch) > MAX_SUBMIT_BATCH:
            raise e.LimitExceeded(f"submit_orders takes a list of at most {MAX_SUBMIT_BATCH:,} "
                                  "rows", limit=MAX_SUBMIT_BATCH)
        with self._lock:
            who = self._actor if actor is None else check_id(actor, "actor")
            if self._state.actors.get(who) in ("operator", "system"):
                who, owner = self._authorize(actor, "place_order"), -1
            else:  # a customer acts for its own account only (else this raises)
                who = self._authorize(actor, "place_order", debit_account=who)
                owner = self._state.account_index[who]
            ms = self._markets
            if check_ref(ref):  # "" or an id (None, 0: refused, never journaled)
                prior = ms.order_refs.get(ref)
                if prior is not None:
                    return self._replayed_submit(prior, batch, who, ref)
            results = BulkOutcomes()
            live: dict[str, tuple[int, e.Rejected | None]] = {}
            i, n = 0, len(batch)
            with self.batch():  # one commit: the call lands whole or not at all
                while i < n:
                    item = batch[i]
                    mid = _market_number(item)
                    if type(mid) is not int or not 0 <= mid < len(ms.names):
                        # no run to join: refused here, nothing to journal
                        results._refuse(_UNKNOWN_MARKET if type(mid) is int
                                        else ec.INVALID_ARGUMENT)
                        i += 1
                        continue
                    market = ms.names[mid]
                    spec = ms.specs[market]
                    if market not in live:
                        live[market] = self._live(spec, who)
                    consumed, first, ins, outs, evs = ms.run(market, batch, i,
                                                             live[market][0], owner)
                    version = self._state.version + 1  # the batch the record goes into
                    receipt = self._journal(
                        r.OrdersSubmitted, who, ref, market=market, first_order_id=first,
                        live_code=live[market][0], owner=owner, rows=ins, results=outs,
                        events=evs, batch_rows=n, batch_index=i)
                    if ref:
                        ms.order_refs.setdefault(ref, []).append((receipt.position, version, i))
                    results._extend(outs)
                    i += consumed
            return results

    def _replayed_submit(self, at: list[tuple[int, int, int]], batch: Sequence[object],
                         who: str, ref: str) -> BulkOutcomes:
        """The outcomes of the ``submit_orders`` call that first used ``ref``, read back
        from its records, after checking that ``batch`` holds the same rows."""
        recs = self._records_at(at)
        first = recs[0]
        if first.actor != who:
            raise e.DuplicateRef(f"ref {ref!r} was used by another actor", ref=ref)
        if first.batch_rows != len(batch):
            raise e.DuplicateRef(f"ref {ref!r} was used for a call of {first.batch_rows} rows, "
                                 f"not {len(batch)}", ref=ref)
        results = BulkOutcomes()
        i = 0
        for rec in [*recs, None]:
            end = rec.batch_index if rec is not None else len(batch)
            while i < end:  # rows refused before reaching a market
                item = batch[i]
                mid = _market_number(item)
                if type(mid) is int and 0 <= mid < len(self._markets.names):
                    # refused as unknown_market then (a call lands whole), or other rows
                    # now: the row itself was not journaled, so nothing tells them apart
                    raise e.DuplicateRef(f"ref {ref!r}: row {i} names market {mid}, which the "
                                         "first call did not run (no market had that number "
                                         "then, or the rows differ)", ref=ref)
                results._refuse(_UNKNOWN_MARKET if type(mid) is int else ec.INVALID_ARGUMENT)
                i += 1
            if rec is None:
                break
            market = self._markets.specs[rec.market].market_id
            k = len(rec.rows) // (8 * ec.IN_FIELDS)
            rows = array("q")
            for item in batch[i:i + k]:
                rows.extend(engine_row(item, market))
            if r.column_bytes(rows) != rec.rows:
                raise e.DuplicateRef(f"ref {ref!r} was used for other rows (rows {i}.."
                                     f"{i + k - 1} differ)", ref=ref)
            results._extend(rec.results)
            i += k
        results.replayed = True
        return results

    def _records_at(self, at: list[tuple[int, int, int]]) -> list[r.OrdersSubmitted]:
        """The ``OrdersSubmitted`` records of a call, at its ``(position, batch version,
        batch index)`` entries (store batches, or pending inside ``batch()``). Each batch
        is read and decoded once, and its records found by position: a call of one
        record per row (rows alternating between markets) made a retry decode its batch
        once a record, quadratic in the rows (8,000 rows: 60 s)."""
        by_version: dict[int, dict[int, r.Record]] = {}
        found: list[r.OrdersSubmitted] = []
        for position, version, _index in at:
            records = by_version.get(version)
            if records is None:
                records = by_version[version] = {
                    rec.position: rec for rec in self._batch_holding(position, version)}
            rec = records.get(position)
            if not isinstance(rec, r.OrdersSubmitted):
                raise AssertionError(f"a submit_orders ref points at position {position}, "
                                     "not found")
            found.append(rec)
        return found

    def _batch_holding(self, position: int, version: int) -> Sequence[r.Record]:
        """The records of store batch ``version``, which holds ``position``: the pending
        ones inside ``batch()`` when it is not committed yet, else that one batch read
        back and decoded (not the journal up to it)."""
        pending = self._pending
        if pending and pending[0].position <= position:
            return pending
        stored = self._store.batch_at(version)
        if stored is None:
            raise e.TamperDetected(f"batch {version}, which holds position {position}, is "
                                   "not in the store", version=version, position=position)
        records: Sequence[r.Record] = r.batch_decoder.decode(stored.payload).records
        return records
