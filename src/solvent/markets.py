"""Markets: listings, reserve-backed orders, matching, settlement into the journal.

:class:`MarketState` lives inside :class:`~solvent.state.LedgerState`: one order
book per market (the compiled kernel ``solvent._book`` or its twin, following
the ledger's core), the open orders with what each still holds, and the
listings. :meth:`MarketState.place` is the one path by which an order holds,
matches and settles — for a live command and for replay alike; replay checks
that every fill comes out exactly as journaled.

Money in a market:

* a buy limit order holds ``notional(price, qty) + fee`` in the quote asset (the
  fee at the larger of the maker and taker rates); a sell holds ``qty`` in the
  base asset; a market buy holds its quote budget; a market sell its quantity;
* a fill of q lots at p ticks moves ``p * q * notional_per_tick_lot`` quote from
  the buyer's hold — minus the seller's fee — to the seller, both fees to the
  market's fee account, and ``q * lot`` base from the seller's hold to the buyer;
  fees are ``floor(notional * rate_ppm / 10**6)``: every minor unit is accounted
  for, and a fee never exceeds what was held for it;
* when an order completes (filled, expired, cancelled) what it still holds is
  released: price improvement comes back to the account.

An order is accepted only when its hold succeeds against available (confirmed)
funds of a non-frozen account, both assets of the market are reconciled and not
halted, and the market is not halted.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final

import msgspec

from solvent import errors as e
from solvent import records as r
from solvent.amounts import AmountLike, check_id, check_text, from_minor, to_minor
from solvent.core import codes as cc
from solvent.matching import book_class
from solvent.matching import codes as mc
from solvent.receipts import Receipt

if TYPE_CHECKING:
    from solvent.state import LedgerState

PPM: Final = 1_000_000
MAX_OPEN_ORDERS_PER_ACCOUNT: Final = 1_000
MAX_MARKETS: Final = 256
MAX_SUBMIT_BATCH: Final = 100_000
MAX_FEE_PPM: Final = 100_000  # 10 %
MAX_BAND_PPM: Final = 500_000  # 50 %

SIDES: Final = {"buy": mc.BUY, "sell": mc.SELL}
TIFS: Final = {"GTC": mc.GTC, "IOC": mc.IOC, "FOK": mc.FOK}
STPS: Final = {v: k for k, v in mc.STP_NAMES.items()}
FINAL_STATUS: Final = {
    mc.EV_RESTING: "resting",
    mc.EV_FILLED: "filled",
    mc.EV_EXPIRED: "expired",
    mc.EV_STP_EXPIRED: "stp_expired",
}
_BOOK_REJECTION: Final[dict[int, type[e.Rejected]]] = {
    mc.POST_ONLY_WOULD_TAKE: e.PostOnlyWouldTake,
    mc.FOK_UNFILLABLE: e.FokUnfillable,
    mc.BOOK_FULL: e.LimitExceeded,
    mc.INVALID_PRICE: e.InvalidAmount,
    mc.INVALID_QTY: e.InvalidAmount,
}


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


class OpenOrder(msgspec.Struct):
    """A resting order and what it still holds (``held_minor`` of ``hold_asset``)."""

    order_id: int
    market: str
    account: str
    side: str
    price_ticks: int
    remaining_lots: int
    filled_lots: int
    held_minor: int
    hold_asset: str
    client_order_id: str


class Placement(msgspec.Struct, frozen=True):
    """The resolved inputs of one order (what ``OrderPlaced`` journals as inputs)."""

    @classmethod
    def of(cls, rec: r.OrderPlaced) -> Placement:
        """The inputs of a journaled order: the fields ``OrderPlaced`` shares with this."""
        return cls(**{f: getattr(rec, f) for f in cls.__struct_fields__})

    market: str
    order_id: int
    account: str
    side: str
    order_type: str
    tif: str
    post_only: bool
    stp: str
    price_ticks: int
    qty_lots: int
    kernel_budget: int
    hold_asset: str
    hold_minor: int
    client_order_id: str


class Outcome(msgspec.Struct, frozen=True):
    code: int
    fills: list[r.Fill]
    expired_makers: list[tuple[int, int]]
    status: str
    filled_lots: int
    remaining_lots: int


class FillView(msgspec.Struct, frozen=True):
    """A fill in the market's units."""

    price: Decimal
    qty: Decimal
    maker_order_id: int
    taker_order_id: int
    maker_fee: Decimal
    taker_fee: Decimal


class Order(msgspec.Struct, frozen=True):
    """An order as the caller sees it, in the market's units."""

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


def fee_of(notional_minor: int, ppm: int) -> int:
    """The fee on ``notional_minor`` at ``ppm`` parts per million, rounded down."""
    return notional_minor * ppm // PPM


class MarketState:
    """Books, listings and open orders; changed by record handlers and ``place``."""

    def __init__(self, state: LedgerState) -> None:
        self.state = state
        self.specs: dict[str, MarketSpec] = {}
        self.books: dict[str, Any] = {}
        self.references: dict[str, tuple[int, int]] = {}  # market -> (price, band_ppm)
        self.halted: dict[str, str] = {}
        self.orders: dict[int, OpenOrder] = {}
        self.open_count: dict[str, int] = {}
        self.next_order_id = 1
        self.client_ids: dict[tuple[str, str], tuple[int, int]] = {}  # -> (order id, position)

    def handlers(self) -> dict[type, Any]:
        return {
            r.MarketListed: self._on_listed,
            r.ReferencePriceSet: self._on_reference,
            r.OrderPlaced: self._on_placed,
            r.OrderCancelled: self._on_cancelled,
            r.OrderAmended: self._on_amended,
            r.MarketHalted: self._on_halted,
            r.MarketResumed: self._on_resumed,
        }

    def _fail(self, rec: r.Record, why: str) -> e.TamperDetected:
        return e.TamperDetected(
            f"position {rec.position}: {type(rec).__name__} {why}", position=rec.position
        )

    def _book(self) -> Any:
        return book_class(self.state.core_name)()

    # -- listing -------------------------------------------------------------------

    def _on_listed(self, rec: r.MarketListed) -> None:
        if rec.market in self.specs:
            raise self._fail(rec, "lists an existing market")
        st = self.state
        st.asset_index[rec.base]
        st.asset_index[rec.quote]
        if st.account_index.get(rec.fee_account) is None or st.core.kind(
            st.account_index[rec.fee_account]
        ) != cc.KIND_COMPANY:
            raise self._fail(rec, "names no company fee account")
        self.specs[rec.market] = MarketSpec(
            rec.market, rec.base, rec.quote, rec.tick_minor, rec.lot_minor,
            rec.notional_per_tick_lot_minor, rec.maker_fee_ppm, rec.taker_fee_ppm,
            rec.min_notional_minor, rec.fee_account,
        )
        self.books[rec.market] = self._book()

    def _on_reference(self, rec: r.ReferencePriceSet) -> None:
        self.specs[rec.market]
        self.references[rec.market] = (rec.price_ticks, rec.band_ppm)

    def _on_halted(self, rec: r.MarketHalted) -> None:
        self.specs[rec.market]
        self.halted[rec.market] = rec.reason

    def _on_resumed(self, rec: r.MarketResumed) -> None:
        if self.halted.pop(rec.market, None) is None:
            raise self._fail(rec, "resumes a market that is not halted")

    # -- placing, matching, settling -------------------------------------------------------

    def place(self, p: Placement) -> Outcome:
        """Hold, match and settle one order. A non-zero ``code`` means the book
        refused it and nothing changed (the hold was released again)."""
        st = self.state
        core = st.core
        spec = self.specs[p.market]
        book = self.books[p.market]
        acct = st.account_index[p.account]
        hold_a = st.asset_index[p.hold_asset]
        code = core.hold(acct, hold_a, p.hold_minor)
        if code:
            return Outcome(-code, [], [], "", 0, 0)  # a balance code, negated
        side = SIDES[p.side]
        kind = mc.MARKET if p.order_type == "market" else mc.LIMIT
        code, events = book.submit(
            p.order_id, acct, side, p.price_ticks, p.qty_lots, kind=kind, tif=TIFS[p.tif],
            post_only=p.post_only, stp=STPS[p.stp], quote_budget=p.kernel_budget,
        )
        if code:
            assert core.release(acct, hold_a, p.hold_minor) == cc.OK
            return Outcome(code, [], [], "", 0, 0)
        taker_held = p.hold_minor
        fills: list[r.Fill] = []
        expired: list[tuple[int, int]] = []
        status, filled, remaining = "", 0, 0
        for kind_ev, _oid, maker_id, maker_acct, price, qty, rem in events:
            if kind_ev == mc.EV_FILL:
                fill, spent = self._settle(spec, p, acct, side, maker_id, maker_acct, price, qty,
                                           rem)
                fills.append(fill)
                taker_held -= spent
            elif kind_ev == mc.EV_MAKER_EXPIRED:
                self._close_order(maker_id)
                expired.append((maker_id, qty))
            else:
                status, filled, remaining = FINAL_STATUS[kind_ev], qty, rem
        assert status, "the book reported no final state"
        if status == "resting":
            self.orders[p.order_id] = OpenOrder(
                p.order_id, p.market, p.account, p.side, p.price_ticks, remaining, filled,
                taker_held, p.hold_asset, p.client_order_id)
            self.open_count[p.account] = self.open_count.get(p.account, 0) + 1
        elif taker_held:
            assert core.release(acct, hold_a, taker_held) == cc.OK
        if p.client_order_id:
            self.client_ids[(p.account, p.client_order_id)] = (p.order_id, st.position + 1)
        self.next_order_id = max(self.next_order_id, p.order_id + 1)
        return Outcome(0, fills, expired, status, filled, remaining)

    def _settle(
        self, spec: MarketSpec, p: Placement, taker: int, side: int, maker_id: int,
        maker_acct: int, price: int, qty: int, maker_remaining: int,
    ) -> tuple[r.Fill, int]:
        """Settle one fill; return it and what it spent of the taker's hold."""
        st = self.state
        core = st.core
        base = st.asset_index[spec.base]
        quote = st.asset_index[spec.quote]
        fee_acct = st.account_index[spec.fee_account]
        notional = price * qty * spec.npt
        base_amt = qty * spec.lot_minor
        maker_fee = fee_of(notional, spec.maker_fee_ppm)
        taker_fee = fee_of(notional, spec.taker_fee_ppm)
        if side == mc.BUY:
            buyer, seller, buyer_fee, seller_fee = taker, maker_acct, taker_fee, maker_fee
        else:
            buyer, seller, buyer_fee, seller_fee = maker_acct, taker, maker_fee, taker_fee
        if buyer == seller:  # a self-trade (stp "none"): its legs are releases
            legs = (core.release(seller, base, base_amt),
                    core.release(buyer, quote, notional - seller_fee)
                    if notional > seller_fee else cc.OK)
        else:
            legs = (core.post_held(seller, buyer, base, base_amt),
                    core.post_held(buyer, seller, quote, notional - seller_fee)
                    if notional > seller_fee else cc.OK)
        for code in (
            *legs,
            core.post_held(buyer, fee_acct, quote, buyer_fee + seller_fee)
            if buyer_fee + seller_fee else cc.OK,
        ):
            assert code == cc.OK, f"settlement refused: {cc.CODE_NAMES[code]}"
        maker = self.orders[maker_id]
        maker.remaining_lots = maker_remaining
        maker.filled_lots += qty
        maker.held_minor -= base_amt if side == mc.BUY else notional + buyer_fee
        if maker_remaining == 0:
            self._close_order(maker_id)
        spent = notional + taker_fee if side == mc.BUY else base_amt
        fill = r.Fill(maker_id, st.account_names[maker_acct], price, qty, notional, maker_fee,
                      taker_fee, maker_remaining)
        return fill, spent

    def _close_order(self, order_id: int) -> OpenOrder:
        """Forget an order that left the book; release what it still held."""
        st = self.state
        order = self.orders.pop(order_id)
        if order.held_minor:
            code = st.core.release(st.account_index[order.account],
                                   st.asset_index[order.hold_asset], order.held_minor)
            assert code == cc.OK, f"release refused: {cc.CODE_NAMES[code]}"
        self.open_count[order.account] -= 1
        return order

    def band(self, market: str) -> tuple[int, int] | None:
        """The (low, high) ticks orders may trade at, or None without a reference price.
        Rounded inwards: never outside the band."""
        ref = self.references.get(market)
        if ref is None:
            return None
        price, band_ppm = ref
        return -(-price * (PPM - band_ppm) // PPM), price * (PPM + band_ppm) // PPM

    def hold_needed(self, spec: MarketSpec, side: str, price: int, lots: int) -> int:
        """What a resting order of ``lots`` at ``price`` must hold."""
        if side == "sell":
            return lots * spec.lot_minor
        notional = price * lots * spec.npt
        return notional + fee_of(notional, max(spec.maker_fee_ppm, spec.taker_fee_ppm))

    def cancel(self, order_id: int) -> tuple[int, int, int]:
        """(code, removed lots, released minor)."""
        order = self.orders.get(order_id)
        if order is None:
            return mc.UNKNOWN_ORDER, 0, 0
        code, removed = self.books[order.market].cancel(order_id)
        assert code == mc.OK and removed == order.remaining_lots, (code, removed)
        released = order.held_minor
        self._close_order(order_id)
        return mc.OK, removed, released

    def amend(self, order_id: int, lots: int, price: int) -> tuple[int, int]:
        """(code, hold delta); the hold grows only when the account has the funds."""
        st = self.state
        order = self.orders.get(order_id)
        if order is None:
            return mc.UNKNOWN_ORDER, 0
        spec = self.specs[order.market]
        need = self.hold_needed(spec, order.side, price, lots)
        delta = need - order.held_minor if order.side == "buy" else (
            lots * spec.lot_minor - order.held_minor)
        acct = st.account_index[order.account]
        hold_a = st.asset_index[order.hold_asset]
        if delta > 0:
            code = st.core.hold(acct, hold_a, delta)
            if code:
                return -code, delta  # what it would have held more
        book = self.books[order.market]
        code = book.amend(order_id, qty_lots=lots, price_ticks=price)
        if code:
            if delta > 0:
                assert st.core.release(acct, hold_a, delta) == cc.OK
            return code, 0
        if delta < 0:
            assert st.core.release(acct, hold_a, -delta) == cc.OK
        order.held_minor += delta
        order.remaining_lots = lots
        order.price_ticks = price
        return mc.OK, delta

    # -- replay ------------------------------------------------------------------------

    def _on_placed(self, rec: r.OrderPlaced) -> None:
        p = Placement.of(rec)
        spec = self.specs[rec.market]
        if rec.order_id != self.next_order_id or rec.market in self.halted:
            raise self._fail(rec, "is out of sequence or on a halted market")
        if not self._hold_covers(spec, p):
            raise self._fail(rec, "holds other than what the order can spend")
        try:
            out = self.place(p)
        except AssertionError as exc:  # a settlement the holds cannot pay
            raise self._fail(rec, f"does not settle: {exc}") from exc
        want = Outcome(0, rec.fills, rec.expired_makers, rec.status, rec.filled_lots,
                       rec.remaining_lots)
        if msgspec.msgpack.encode(out) != msgspec.msgpack.encode(want):
            raise self._fail(rec, f"replays as {out!r}, journaled as {want!r}")

    def _hold_covers(self, spec: MarketSpec, p: Placement) -> bool:
        """Whether a journaled order holds what the live path would have held: a
        sell its quantity, a resting buy ``hold_needed``, an IOC/FOK buy at least
        its notional and taker fee, a market buy the budget its kernel budget is from."""
        if p.hold_asset != (spec.base if p.side == "sell" else spec.quote):
            return False
        if p.side == "sell":
            return p.hold_minor == p.qty_lots * spec.lot_minor
        if p.order_type == "market":
            return p.kernel_budget == p.hold_minor * PPM // (
                (PPM + spec.taker_fee_ppm) * spec.npt)
        if p.tif == "GTC":
            return p.hold_minor == self.hold_needed(spec, "buy", p.price_ticks, p.qty_lots)
        notional = p.price_ticks * p.qty_lots * spec.npt
        return p.hold_minor >= notional + fee_of(notional, spec.taker_fee_ppm)

    def _on_cancelled(self, rec: r.OrderCancelled) -> None:
        code, removed, released = self.cancel(rec.order_id)
        if (code, removed, released) != (mc.OK, rec.removed_lots, rec.released_minor):
            raise self._fail(rec, f"replays as {(code, removed, released)}")

    def _on_amended(self, rec: r.OrderAmended) -> None:
        code, delta = self.amend(rec.order_id, rec.qty_lots, rec.price_ticks)
        if (code, delta) != (mc.OK, rec.hold_delta_minor):
            raise self._fail(rec, f"replays as {(code, delta)}")

    # -- snapshots ---------------------------------------------------------------------

    def export(self) -> dict[str, Any]:
        return {
            "specs": list(self.specs.values()),
            "books": {m: b.export_state() for m, b in self.books.items()},
            "references": sorted(self.references.items()),
            "halted": sorted(self.halted.items()),
            "orders": list(self.orders.values()),
            "next_order_id": self.next_order_id,
            "client_ids": [[a, c, o, pos] for (a, c), (o, pos) in self.client_ids.items()],
        }

    def load(self, data: dict[str, Any]) -> None:
        cls = book_class(self.state.core_name)
        for spec in data["specs"]:
            spec = msgspec.convert(spec, MarketSpec)
            self.specs[spec.name] = spec
        for market, dump in data["books"].items():
            self.books[market] = cls.from_state(dump)
        for market, (price, band) in data["references"]:
            self.references[market] = (price, band)
        for market, reason in data["halted"]:
            self.halted[market] = reason
        for order in data["orders"]:
            order = msgspec.convert(order, OpenOrder)
            self.orders[order.order_id] = order
            self.open_count[order.account] = self.open_count.get(order.account, 0) + 1
        self.next_order_id = data["next_order_id"]
        for account, client, order_id, pos in data["client_ids"]:
            self.client_ids[(account, client)] = (order_id, pos)


def _ratio_ppm(value: object, what: str, limit: int) -> int:
    if isinstance(value, float):
        raise e.FloatAmount(f"{what}: floats are not accepted; pass a str such as '0.001'")
    if not isinstance(value, (str, Decimal)):
        raise e.InvalidArgument(f"{what} must be a str or Decimal, got {type(value).__name__}")
    try:
        ratio = Decimal(value)
    except InvalidOperation as exc:
        raise e.InvalidArgument(f"{what} {value!r} is not a number") from exc
    ppm = ratio * PPM
    if not ratio.is_finite() or ppm != ppm.to_integral_value() or not 0 <= ppm <= limit:
        raise e.InvalidArgument(
            f"{what} {value!r} must be 0..{Decimal(limit) / PPM} with at most 6 decimals")
    return int(ppm)


class MarketCommands:
    """The market commands of :class:`~solvent.Ledger` (a mixin)."""

    if TYPE_CHECKING:
        _state: LedgerState
        _lock: Any
        _pending: list[r.JournalRecord]

        def _authorize(self, actor: str | None, command: str, debit_account: str = "") -> str:
            ...

        def _emit(self, cls: type[Any], actor: str, ref: str, **fields: Any) -> Receipt: ...

        def _journal(self, cls: type[Any], actor: str, ref: str, **fields: Any) -> Receipt: ...

        def _asset(self, asset: str) -> int: ...

        def _account(self, name: str, what: str) -> int: ...

        def _require_live(self, a: int, who: str) -> None: ...

        def _rejection(self, code: int, command: str, account: str, asset: str,
                       amount_minor: int, **extra: Any) -> e.Rejected: ...

        def batch(self) -> Any: ...

        def open_account(self, account: str, kind: str = "customer", *,
                         actor: str | None = None) -> Receipt: ...

    @property
    def _markets(self) -> MarketState:
        return self._state.markets

    def _spec(self, market: str) -> MarketSpec:
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
            maker_ppm = _ratio_ppm(maker_fee, "maker_fee", MAX_FEE_PPM)
            taker_ppm = _ratio_ppm(taker_fee, "taker_fee", MAX_FEE_PPM)
            min_minor = 0 if min_notional is None else to_minor(
                min_notional, qdec, what="min_notional", asset=quote)
            fee_account = f"fees:{market}"
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
        (``"0.05"``: orders may not trade more than 5 % away from it)."""
        with self._lock:
            who = self._authorize(actor, "set_reference_price")
            spec = self._spec(market)
            ticks = self._ticks(spec, price)
            band_ppm = _ratio_ppm(band, "band", MAX_BAND_PPM)
            return self._emit(r.ReferencePriceSet, who, "", market=market, price_ticks=ticks,
                              band_ppm=band_ppm)

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

    # -- orders --------------------------------------------------------------------------

    def place_order(
        self, account: str, market: str, side: str, *, qty: AmountLike | None = None,
        price: AmountLike | None = None, quote_qty: AmountLike | None = None,
        type: str = "limit", tif: str = "GTC", post_only: bool = False,
        stp: str = "expire_maker", client_order_id: str = "", actor: str | None = None,
    ) -> Order:
        """Place an order backed by funds held now from ``account``.

        ``type="limit"`` with ``price`` and ``qty`` (``tif`` GTC, IOC or FOK;
        ``post_only`` with GTC); ``type="market"``: a sell by ``qty``, a buy by
        ``quote_qty`` (a budget in quote units, fees included). Self-trade
        prevention ``stp``: none, expire_taker, expire_maker, expire_both.
        ``client_order_id`` is idempotent per account. Raises a
        :class:`~solvent.Rejected` subclass and changes nothing when refused."""
        with self._lock:
            placement = self._placement(account, market, side, qty, price, quote_qty, type, tif,
                                        post_only, stp, client_order_id, actor)
            if isinstance(placement, Order):
                return placement
            who, p = placement
            return self._place(who, p)

    def _placement(
        self, account: str, market: str, side: str, qty: AmountLike | None,
        price: AmountLike | None, quote_qty: AmountLike | None, type: str, tif: str,
        post_only: bool, stp: str, client_order_id: str, actor: str | None,
    ) -> tuple[str, Placement] | Order:
        st = self._state
        ms = self._markets
        spec = self._spec(market)
        acct = self._account(account, "account")
        if acct in st.wallet_accounts:
            raise e.InvalidArgument(f"{account!r} is a wallet, not an account", account=account)
        who = self._authorize(actor, "place_order", debit_account=account)
        if side not in SIDES:
            raise e.InvalidArgument(f"side {side!r}: buy or sell", market=market)
        if type not in ("limit", "market"):
            raise e.InvalidArgument(f"type {type!r}: limit or market", market=market)
        if tif not in TIFS:
            raise e.InvalidArgument(f"tif {tif!r}: GTC, IOC or FOK", market=market)
        if stp not in STPS:
            raise e.InvalidArgument(f"stp {stp!r}: {', '.join(STPS)}", market=market)
        if not isinstance(post_only, bool):
            raise e.InvalidArgument("post_only must be a bool")
        if client_order_id:
            check_id(client_order_id, "client_order_id")
        if market in ms.halted:
            raise e.MarketHalted(f"market {market} is halted: {ms.halted[market]}",
                                 market=market)
        ref = ms.references.get(market)
        low, high = ms.band(market) or (0, 0)
        qdec = st.asset_decimals[st.asset_index[spec.quote]]
        kernel_budget = 0
        order_type = type
        if type == "limit":
            if price is None or qty is None or quote_qty is not None:
                raise e.InvalidArgument("a limit order takes price and qty", market=market)
            if post_only and tif != "GTC":
                raise e.InvalidArgument("post_only goes with GTC only", market=market)
            ticks = self._ticks(spec, price)
            lots = self._lots(spec, qty)
            if ref is not None and not low <= ticks <= high:
                raise e.PriceOutsideBand(
                    f"price {price} {spec.quote} is outside the band "
                    f"{from_minor(low * spec.tick_minor, qdec)}.."
                    f"{from_minor(high * spec.tick_minor, qdec)} {spec.quote} of {market}",
                    market=market, price_ticks=ticks, low_ticks=low, high_ticks=high)
            notional = ticks * lots * spec.npt
            hold = ms.hold_needed(spec, side, ticks, lots)
        else:
            if post_only or tif == "GTC":
                raise e.InvalidArgument("a market order is IOC or FOK, never post-only",
                                        market=market)
            if price is not None:
                raise e.InvalidArgument("a market order takes no price", market=market)
            if side == "sell":
                if qty is None or quote_qty is not None:
                    raise e.InvalidArgument("a market sell takes qty", market=market)
                lots = self._lots(spec, qty)
                hold = lots * spec.lot_minor
                ticks = 0
                notional = lots * (ref[0] if ref else 0) * spec.npt
                if ref is not None:  # a market sell cannot print below the band
                    order_type, ticks = "limit", low
            else:
                if quote_qty is None or qty is not None:
                    raise e.InvalidArgument("a market buy takes quote_qty (a budget)",
                                            market=market)
                if tif != "IOC":
                    raise e.InvalidArgument("a market buy by budget is IOC", market=market)
                hold = to_minor(quote_qty, qdec, what="quote_qty", asset=spec.quote)
                kernel_budget = hold * PPM // ((PPM + spec.taker_fee_ppm) * spec.npt)
                notional = hold
                lots = 0
                ticks = 0
                if ref is not None:  # nor print above it: an IOC limit at the edge
                    order_type, ticks = "limit", high
                    lots, kernel_budget = kernel_budget // high, 0
                    if lots == 0:
                        raise e.BelowMinNotional(
                            f"budget {quote_qty} {spec.quote} buys no lot at the band's "
                            f"upper edge", market=market)
                elif kernel_budget == 0:
                    raise e.BelowMinNotional(f"budget {quote_qty} {spec.quote} buys nothing",
                                             market=market)
        if notional and notional < spec.min_notional_minor:
            raise e.BelowMinNotional(
                f"notional {from_minor(notional, qdec)} {spec.quote} is below the minimum "
                f"{from_minor(spec.min_notional_minor, qdec)} of {market}", market=market)
        if hold > cc.INT64_MAX or notional > cc.INT64_MAX:
            raise e.InvalidAmount("the order's amount exceeds int64 minor units",
                                  market=market)
        hold_asset = spec.quote if side == "buy" else spec.base
        p = Placement(market, ms.next_order_id, account, side, order_type, tif, post_only, stp,
                      ticks, lots, kernel_budget, hold_asset, hold, client_order_id)
        if client_order_id:
            prior = ms.client_ids.get((account, client_order_id))
            if prior is not None:
                return self._replayed_order(prior[1], p)
        may_rest = order_type == "limit" and tif == "GTC"
        if may_rest and ms.open_count.get(account, 0) >= MAX_OPEN_ORDERS_PER_ACCOUNT:
            raise e.LimitExceeded(
                f"{account!r} has {MAX_OPEN_ORDERS_PER_ACCOUNT:,} open orders, the limit",
                account=account, limit=MAX_OPEN_ORDERS_PER_ACCOUNT)
        for asset in (spec.base, spec.quote):
            self._require_live(st.asset_index[asset], who)
        if st.core.is_frozen(acct):
            raise e.AccountFrozen(f"order of {account!r}: the account is frozen",
                                  account=account, market=market)
        if st.core.available(acct, st.asset_index[hold_asset]) < hold:
            raise self._rejection(cc.INSUFFICIENT_FUNDS, "order", account, hold_asset, hold,
                                  market=market)
        return who, p

    def _place(self, who: str, p: Placement) -> Order:
        out = self._markets.place(p)
        if out.code:
            if out.code < 0:
                raise self._rejection(-out.code, "order", p.account, p.hold_asset, p.hold_minor,
                                      market=p.market)
            cls = _BOOK_REJECTION.get(out.code, e.InvalidArgument)
            raise cls(f"order on {p.market} refused: {mc.CODE_NAMES[out.code]}",
                      market=p.market, code_name=mc.CODE_NAMES[out.code])
        receipt = self._journal(
            r.OrderPlaced, who, p.client_order_id,
            market=p.market, order_id=p.order_id, account=p.account, side=p.side,
            order_type=p.order_type, tif=p.tif, post_only=p.post_only, stp=p.stp,
            price_ticks=p.price_ticks, qty_lots=p.qty_lots, kernel_budget=p.kernel_budget,
            hold_asset=p.hold_asset, hold_minor=p.hold_minor,
            client_order_id=p.client_order_id, fills=out.fills,
            expired_makers=out.expired_makers, status=out.status, filled_lots=out.filled_lots,
            remaining_lots=out.remaining_lots)
        del receipt
        return self._order_view(p, out)

    def _order_view(self, p: Placement, out: Outcome, replayed: bool = False) -> Order:
        st = self._state
        spec = self._markets.specs[p.market]
        bdec = st.asset_decimals[st.asset_index[spec.base]]
        qdec = st.asset_decimals[st.asset_index[spec.quote]]
        lot = spec.lot_minor

        def q(lots: int) -> Decimal:
            return from_minor(lots * lot, bdec)

        fills = [FillView(from_minor(f.price_ticks * spec.tick_minor, qdec), q(f.qty_lots),
                          f.maker_order_id, p.order_id, from_minor(f.maker_fee_minor, qdec),
                          from_minor(f.taker_fee_minor, qdec)) for f in out.fills]
        return Order(
            order_id=p.order_id, market=p.market, account=p.account, side=p.side,
            status=out.status,
            price=from_minor(p.price_ticks * spec.tick_minor, qdec) if p.price_ticks else None,
            qty=q(p.qty_lots), filled_qty=q(out.filled_lots), fills=fills,
            client_order_id=p.client_order_id, replayed=replayed)

    def _replayed_order(self, position: int, p: Placement) -> Order:
        """The first result of a repeated client_order_id, read back from the journal."""
        pending = self._pending  # inside batch(), the first may not be committed yet
        if pending and pending[0].position <= position:
            found: Any = (rec for rec in pending if rec.position >= position)
        else:
            found = self.records(after_position=position - 1)  # type: ignore[attr-defined]
        for rec in found:
            if isinstance(rec, r.OrderPlaced) and rec.position == position:
                first = Placement.of(rec)
                if msgspec.structs.replace(first, order_id=p.order_id) != p:
                    raise e.DuplicateRef(
                        f"client_order_id {p.client_order_id!r} of {p.account!r} was used for "
                        f"order {rec.order_id} with other content", ref=p.client_order_id)
                out = Outcome(0, rec.fills, rec.expired_makers, rec.status, rec.filled_lots,
                              rec.remaining_lots)
                return self._order_view(first, out, replayed=True)
            break
        raise AssertionError(f"client order id points at position {position}, not found")

    def cancel_order(self, order_id: int, *, actor: str | None = None) -> Receipt:
        """Take a resting order off its book and release what it holds."""
        with self._lock:
            if isinstance(order_id, bool) or not isinstance(order_id, int):
                raise e.InvalidArgument("order_id must be an int")
            order = self._markets.orders.get(order_id)
            if order is None:
                raise e.UnknownOrder(f"no resting order {order_id}", order_id=order_id)
            who = self._authorize(actor, "place_order", debit_account=order.account)
            code, removed, released = self._markets.cancel(order_id)
            assert code == mc.OK
            return self._journal(r.OrderCancelled, who, "", market=order.market,
                                 order_id=order_id, account=order.account,
                                 removed_lots=removed, released_minor=released)

    def amend_order(
        self, order_id: int, *, qty: AmountLike | None = None, price: AmountLike | None = None,
        actor: str | None = None,
    ) -> Receipt:
        """Change a resting order's remaining ``qty`` and/or ``price``. A smaller qty
        keeps its queue priority; a price change re-queues; an amend never trades
        (a price that would cross is refused)."""
        with self._lock:
            if isinstance(order_id, bool) or not isinstance(order_id, int):
                raise e.InvalidArgument("order_id must be an int")
            order = self._markets.orders.get(order_id)
            if order is None:
                raise e.UnknownOrder(f"no resting order {order_id}", order_id=order_id)
            who = self._authorize(actor, "place_order", debit_account=order.account)
            if qty is None and price is None:
                raise e.InvalidArgument("amend needs qty or price")
            spec = self._markets.specs[order.market]
            if order.market in self._markets.halted:
                raise e.MarketHalted(f"market {order.market} is halted", market=order.market)
            lots = order.remaining_lots if qty is None else self._lots(spec, qty)
            ticks = order.price_ticks if price is None else self._ticks(spec, price)
            band = self._markets.band(order.market)
            if band is not None and price is not None:
                low, high = band
                if not low <= ticks <= high:
                    raise e.PriceOutsideBand(f"price {price} is outside the band",
                                             market=order.market)
            if lots > order.remaining_lots or ticks != order.price_ticks:
                for asset in (spec.base, spec.quote):
                    self._require_live(self._state.asset_index[asset], who)
            code, delta = self._markets.amend(order_id, lots, ticks)
            if code < 0:
                raise self._rejection(-code, "amend", order.account, order.hold_asset, delta,
                                      order_id=order_id)
            if code:
                cls = e.InvalidArgument if code != mc.AMEND_WOULD_CROSS else e.InvalidState
                raise cls(f"amend of order {order_id} refused: {mc.CODE_NAMES[code]}",
                          order_id=order_id)
            return self._journal(r.OrderAmended, who, "", market=order.market,
                                 order_id=order_id, account=order.account, qty_lots=lots,
                                 price_ticks=ticks, hold_delta_minor=delta)

    # -- reads ------------------------------------------------------------------------------

    def open_orders(self, account: str) -> list[OpenOrder]:
        """``account``'s resting orders (with what each still holds), oldest first."""
        with self._lock:
            self._account(account, "account")
            return [msgspec.structs.replace(o) for o in self._markets.orders.values()
                    if o.account == account]

    def book(self, market: str, depth: int = 10) -> dict[str, list[tuple[Decimal, Decimal]]]:
        """The L2 book: ``{"bids": [(price, qty), ...], "asks": [...]}``, best first."""
        with self._lock:
            spec = self._spec(market)
            if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 1000:
                raise e.InvalidArgument("depth must be an int in 1..1000")
            st = self._state
            bdec = st.asset_decimals[st.asset_index[spec.base]]
            qdec = st.asset_decimals[st.asset_index[spec.quote]]
            bids, asks = self._markets.books[market].depth(depth)

            def view(levels: list[tuple[int, int]]) -> list[tuple[Decimal, Decimal]]:
                return [(from_minor(p * spec.tick_minor, qdec), from_minor(q * spec.lot_minor,
                                                                              bdec))
                        for p, q in levels]

            return {"bids": view(bids), "asks": view(asks)}

    def market_spec(self, market: str) -> MarketSpec:
        return self._spec(market)

    # -- the bulk path ------------------------------------------------------------------

    def submit_orders(self, batch: list[dict[str, Any]], *, actor: str | None = None
                      ) -> list[tuple[str, int]]:
        """Place many orders; return one ``(code, order_id)`` per order, never raising
        for a refused order (code ``"ok"`` or the rejection's code; order id 0 when
        refused). Each order is journaled as it is placed; inside ``batch()`` they
        share one commit."""
        if not isinstance(batch, list) or len(batch) > MAX_SUBMIT_BATCH:
            raise e.LimitExceeded(f"submit_orders takes a list of at most {MAX_SUBMIT_BATCH}")
        results: list[tuple[str, int]] = []
        with self._lock:
            for item in batch:
                try:
                    order = self.place_order(actor=actor, **item)
                except e.Rejected as exc:
                    results.append((exc.code, 0))
                except TypeError as exc:
                    results.append((f"bad_request: {exc}", 0))
                else:
                    results.append(("ok", order.order_id))
        return results
