"""The market engine in Python: the readable specification of ``solvent._engine``.

One :class:`MarketEngine` runs one market: its order book (the matching kernel)
and, against the balance core, every hold, release and settlement its orders
cause. It is the only code that moves money for orders, for a live command and
for replay alike; ``ext/_engine.pyx`` implements the same engine in C over the
compiled core and book, and the differential tests hold the two to identical
output bytes. Rows in and out are described in :mod:`solvent.engine.codes`.

**What an order holds** (:meth:`MarketEngine.hold_needed`, the one rule): a sell
holds ``qty * lot`` base; a limit buy holds ``notional + fee(notional, max(maker,
taker))`` quote with ``notional = price * qty * notional_per_tick_lot``; a
market buy holds its budget. A resting order always holds exactly
``hold_needed(side, price, remaining)``: after each fill of a resting buy what
the fill did not spend of that is released at once, so held funds always equal
what open orders reserve.

**A fill** of q lots at price p (the maker's): ``notional = p * q * npt``, fees
``floor(notional * ppm / 10**6)`` at the maker and taker rates; the seller's
held base ``q * lot`` goes to the buyer; from the buyer's held quote,
``notional - seller_fee`` goes to the seller and ``buyer_fee + seller_fee`` to
the market's fee account. A self-trade (stp ``none``) releases instead of moving,
and so does the fee account's own fee when it buys. Every minor unit is
accounted for.

**Check order of a new order** (the first failing check gives the code, and
nothing changes): the row's shape and flags (INVALID_ARGUMENT); the account
(UNKNOWN_ACCOUNT; a wallet: INVALID_ARGUMENT; another customer's:
PERMISSION_DENIED); market halted; assets live (the caller's ``live_code``);
price and qty ranges (INVALID_AMOUNT); the band; what a market order becomes
under the band; amounts beyond int64 (INVALID_AMOUNT); minimum notional (a
market sell valued at the reference price, else at the best bid; a market buy at
its budget); open orders per account (GTC); the hold (ACCOUNT_FROZEN, INSUFFICIENT_FUNDS); the
book (POST_ONLY_WOULD_TAKE, FOK_UNFILLABLE, a full book: LIMIT_EXCEEDED).

**Under a band** (a reference price is set) a market sell is an IOC/FOK limit at
the band's low edge and a market buy an IOC limit at the high edge for the
whole lots its budget buys there: no new order prints outside the band (an order that
rested before the reference moved keeps its price; docs/matching.md, "The band").
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any, Final

from solvent.core import codes as cc
from solvent.engine import codes as c
from solvent.matching import codes as mc
from solvent.matching.twin import OrderBook
from solvent.records import column_bytes, column_from_bytes

_INT64_MIN: Final = -(2**63)
_BOOK_CODES: Final = {
    mc.POST_ONLY_WOULD_TAKE: c.POST_ONLY_WOULD_TAKE,
    mc.FOK_UNFILLABLE: c.FOK_UNFILLABLE,
    mc.BOOK_FULL: c.LIMIT_EXCEEDED,
}


def fee_of(notional_minor: int, ppm: int) -> int:
    """The fee on ``notional_minor`` at ``ppm`` parts per million, rounded down."""
    return notional_minor * ppm // c.PPM


def engine_row(item: object, market: int) -> tuple[int, ...]:
    """The row ``submit`` runs and journals for ``item`` of ``market``'s run: its ints,
    or the invalid row (op -1) when it is not a tuple/list of IN_FIELDS int64 ints."""
    row = _row_of(item, market)
    return _invalid_row(market) if row is None else row


def _invalid_row(market: int) -> tuple[int, ...]:
    return (-1, market, 0, 0, 0, 0, 0, 0, 0)


def _row_of(item: object, market: int) -> tuple[int, ...] | None:
    """The row's ints, or None when it is not a tuple/list of IN_FIELDS int64 ints."""
    if type(item) is not tuple and type(item) is not list:
        return None
    if len(item) != c.IN_FIELDS:
        return None
    for v in item:
        if type(v) is not int or not _INT64_MIN <= v <= c.INT64_MAX:
            return None
    return tuple(item)



def band_of(price_ticks: int, band_ppm: int) -> tuple[int, int]:
    """The (low, high) ticks a reference of ``price_ticks`` and a band of ``band_ppm``
    let orders trade at, rounded inwards (``set_reference``; the ledger also uses it to
    find the orders a move strands before it makes the move)."""
    return (-(-price_ticks * (c.PPM - band_ppm) // c.PPM),
            min(price_ticks * (c.PPM + band_ppm) // c.PPM, mc.MAX_PRICE_TICKS))

class MarketEngine:
    """One market: its book, its parameters, and what its orders do to balances."""

    def __init__(
        self, core: Any, *, market: int, base: int, quote: int, fee_account: int,
        lot_minor: int, npt: int, maker_fee_ppm: int, taker_fee_ppm: int,
        min_notional_minor: int, max_open_per_account: int = c.MAX_OPEN_ORDERS_PER_ACCOUNT,
        book: OrderBook | None = None,
    ) -> None:
        for v in (market, base, quote, fee_account, lot_minor, npt, maker_fee_ppm,
                  taker_fee_ppm, min_notional_minor, max_open_per_account):
            if type(v) is not int:
                raise TypeError("engine parameters are ints")
        if not (market >= 0 and base >= 0 and quote >= 0 and base != quote
                and fee_account >= 0 and 1 <= lot_minor <= c.INT64_MAX
                and 1 <= npt <= c.INT64_MAX and 0 <= maker_fee_ppm <= c.MAX_FEE_PPM
                and 0 <= taker_fee_ppm <= c.MAX_FEE_PPM
                and 0 <= min_notional_minor <= c.INT64_MAX and max_open_per_account >= 1):
            raise ValueError("engine parameters out of range")
        self.core = core
        self.market = market
        self.base = base
        self.quote = quote
        self.fee_account = fee_account
        self.lot_minor = lot_minor
        self.npt = npt
        self.maker_fee_ppm = maker_fee_ppm
        self.taker_fee_ppm = taker_fee_ppm
        self.max_fee_ppm = max(maker_fee_ppm, taker_fee_ppm)
        self.min_notional_minor = min_notional_minor
        self.max_open_per_account = max_open_per_account
        self.book = OrderBook() if book is None else book
        self.reference_ticks = 0
        self.band_low = 0
        self.band_high = 0
        self.halted = False
        self._open: dict[int, set[int]] = {}  # account: ids of its resting orders
        self._fault_rows = -1  # inject_fault: rows to let through, -1 when off
        for oid, acct, _side, _price, _qty in self.book.export_state()["orders"]:
            self._open.setdefault(acct, set()).add(oid)

    # -- controls ------------------------------------------------------------------------

    def set_reference(self, price_ticks: int, band_ppm: int) -> None:
        """Orders may trade only within ``band_ppm`` of ``price_ticks`` (rounded inwards)."""
        if not (1 <= price_ticks <= mc.MAX_PRICE_TICKS and 0 <= band_ppm <= c.PPM):
            raise ValueError("reference price or band out of range")
        self.reference_ticks = price_ticks
        self.band_low, self.band_high = band_of(price_ticks, band_ppm)

    def set_halted(self, halted: bool) -> None:
        self.halted = bool(halted)

    def inject_fault(self, after_rows: int) -> None:
        """A test seam that the ledger never calls: after ``after_rows`` more placing
        rows (limit or market) have been taken by the book, the next one the book takes
        raises ``MemoryError`` where the compiled engine's event buffer can really fail
        to grow, with the book already changed by that row (rested or traded) and none
        of its fills settled. -1 turns it off. (The ledger must then undo the whole call; the
        tests of ``test_markets.py`` check that it does, on both engines.)"""
        if type(after_rows) is not int or not -1 <= after_rows <= c.MAX_SUBMIT_ROWS:
            raise ValueError(f"after_rows must be an int in -1..{c.MAX_SUBMIT_ROWS}")
        self._fault_rows = after_rows

    # -- reads ---------------------------------------------------------------------------

    def hold_needed(self, side: int, price_ticks: int, qty_lots: int) -> int:
        """What a limit order of ``qty_lots`` at ``price_ticks`` holds (see the module doc)."""
        if side == mc.SELL:
            return qty_lots * self.lot_minor
        notional = price_ticks * qty_lots * self.npt
        return notional + fee_of(notional, self.max_fee_ppm)

    def open_count(self, account: int) -> int:
        return len(self._open.get(account, ()))

    def orders_of(self, account: int) -> list[tuple[int, int, int, int]]:
        """``account``'s resting orders as ``(order_id, side, price_ticks,
        remaining_lots)``, by order id: the engine keeps each account's ids (an order's
        id goes in when it rests and out when it ends), so this reads those orders
        alone, not the whole book."""
        if type(account) is not int:
            raise TypeError("account must be an int")
        out = []
        for oid in sorted(self._open.get(account, ())):
            found = self.book.order(oid)
            assert found is not None and found[0] == account, "an open order id left the book"
            out.append((oid, found[1], found[2], found[3]))
        return out

    # -- the commands --------------------------------------------------------------------

    def submit(
        self, rows: Sequence[object], start: int, live_code: int, owner: int,
        first_order_id: int,
    ) -> tuple[int, int, bytes, bytes, bytes]:
        """Run ``rows[start:]`` up to the first row of another market (at most
        ``MAX_SUBMIT_ROWS``). ``live_code``: 0, or the code that refuses new orders
        and growing amends because an asset is not live; ``owner``: -1, or the only
        account the caller may act for. Returns ``(rows consumed, next order id,
        input rows, result rows, event rows)`` (the last three as journal bytes)."""
        if start < 0:
            raise ValueError("start must be >= 0")
        if type(rows) is not list and type(rows) is not tuple:
            rows = list(rows)
        ins = array("q")
        end = start
        limit = min(len(rows), start + c.MAX_SUBMIT_ROWS)
        while end < limit:
            item = rows[end]
            row = _row_of(item, self.market)
            if row is None:
                if (type(item) is tuple or type(item) is list) and len(item) == c.IN_FIELDS \
                        and type(item[1]) is int and item[1] != self.market:
                    break
                row = _invalid_row(self.market)
            elif row[1] != self.market:
                break
            ins.extend(row)
            end += 1
        next_id, outs, evs = self._run(ins, live_code, owner, first_order_id)
        return end - start, next_id, column_bytes(ins), column_bytes(outs), column_bytes(evs)

    def replay(self, ops: bytes, live_code: int, owner: int, first_order_id: int
               ) -> tuple[int, bytes, bytes]:
        """Run journaled input rows again: ``(next order id, result rows, event rows)``."""
        if len(ops) % (8 * c.IN_FIELDS) or len(ops) > 8 * c.IN_FIELDS * c.MAX_SUBMIT_ROWS:
            raise ValueError("input rows: not a whole number of rows, or too many")
        next_id, outs, evs = self._run(column_from_bytes(ops), live_code, owner, first_order_id)
        return next_id, column_bytes(outs), column_bytes(evs)

    def _run(self, ins: array, live_code: int, owner: int, next_id: int  # type: ignore[type-arg]
             ) -> tuple[int, array, array]:  # type: ignore[type-arg]
        if not 1 <= next_id <= c.MAX_FIRST_ORDER_ID:
            raise ValueError("first_order_id out of range")
        outs = array("q")
        evs = array("q")
        for i in range(0, len(ins), c.IN_FIELDS):
            row = i // c.IN_FIELDS
            op, _m, oid, acct, side, price, qty, quote, flags = ins[i:i + c.IN_FIELDS]
            if op == c.OP_LIMIT or op == c.OP_MARKET:
                out = self._place(row, next_id, op, oid, acct, side, price, qty, quote, flags,
                                  live_code, owner, evs)
                if out[0] == c.OK:
                    next_id += 1
            elif op == c.OP_CANCEL:
                out = self._cancel(oid, acct, side, price, qty, quote, flags, owner)
            elif op == c.OP_AMEND:
                out = self._amend(oid, acct, side, price, qty, quote, flags, live_code, owner)
            else:
                out = (c.INVALID_ARGUMENT, 0, 0, 0, 0, 0)
            outs.extend(out)
        return next_id, outs, evs

    def _account_code(self, acct: int, owner: int) -> int:
        if not 0 <= acct < self.core.n_accounts:
            return c.UNKNOWN_ACCOUNT
        if self.core.kind(acct) == cc.KIND_WALLET:
            return c.INVALID_ARGUMENT
        if owner >= 0 and acct != owner:
            return c.PERMISSION_DENIED
        return c.OK

    def _place(
        self, row: int, order_id: int, op: int, oid: int, acct: int, side: int, price: int,
        qty: int, quote: int, flags: int, live_code: int, owner: int,
        evs: array,  # type: ignore[type-arg]
    ) -> tuple[int, ...]:
        refused = (0, 0, 0, 0, 0)
        tif = flags & mc.FLAG_TIF_MASK
        post = (flags & mc.FLAG_POST_ONLY) != 0
        stp = flags >> mc.FLAG_STP_SHIFT
        if (oid != 0 or flags & ~mc.FLAGS_ALL or side not in (mc.BUY, mc.SELL)
                or tif > mc.FOK):
            return (c.INVALID_ARGUMENT, *refused)
        is_market = op == c.OP_MARKET
        if is_market:
            if tif == mc.GTC or post or price != 0:
                return (c.INVALID_ARGUMENT, *refused)
            if (side == mc.SELL and quote != 0) or (side == mc.BUY and (qty != 0 or tif != mc.IOC)):
                return (c.INVALID_ARGUMENT, *refused)
        elif quote != 0 or (post and tif != mc.GTC):
            return (c.INVALID_ARGUMENT, *refused)
        code = self._account_code(acct, owner)
        if code:
            return (code, *refused)
        if self.halted:
            return (c.MARKET_HALTED, *refused)
        if live_code:
            return (live_code, *refused)
        banded = self.reference_ticks != 0
        kernel_budget = 0
        if not is_market:
            if not (1 <= price <= mc.MAX_PRICE_TICKS and 1 <= qty <= mc.MAX_QTY_LOTS):
                return (c.INVALID_AMOUNT, *refused)
            if banded and not self.band_low <= price <= self.band_high:
                return (c.PRICE_OUTSIDE_BAND, *refused)
            notional = price * qty * self.npt
            hold = self.hold_needed(side, price, qty)
        elif side == mc.SELL:
            if not 1 <= qty <= mc.MAX_QTY_LOTS:
                return (c.INVALID_AMOUNT, *refused)
            hold = qty * self.lot_minor
            # valued at the reference price, else at the best bid (0: nothing to sell to)
            value_ticks = self.reference_ticks or self.book.best_bid() or 0
            notional = qty * value_ticks * self.npt
            if banded:  # a market sell cannot print below the band
                is_market, price = False, self.band_low
        else:
            if not 1 <= quote <= c.INT64_MAX:
                return (c.INVALID_AMOUNT, *refused)
            hold = notional = quote
            kernel_budget = quote * c.PPM // ((c.PPM + self.taker_fee_ppm) * self.npt)
            if banded:  # nor buy above it: an IOC limit at the edge for whole lots
                is_market, price = False, self.band_high
                qty, kernel_budget = kernel_budget // price, 0
                if qty == 0:
                    return (c.BELOW_MIN_NOTIONAL, *refused)
                if qty > mc.MAX_QTY_LOTS:
                    return (c.INVALID_AMOUNT, *refused)
            elif kernel_budget == 0:
                return (c.BELOW_MIN_NOTIONAL, *refused)
        if hold > c.INT64_MAX or notional > c.INT64_MAX:
            return (c.INVALID_AMOUNT, *refused)
        if notional and notional < self.min_notional_minor:
            return (c.BELOW_MIN_NOTIONAL, *refused)
        may_rest = not is_market and tif == mc.GTC
        if may_rest and self.open_count(acct) >= self.max_open_per_account:
            return (c.LIMIT_EXCEEDED, *refused)
        hold_asset = self.quote if side == mc.BUY else self.base
        code = self.core.hold(acct, hold_asset, hold)
        if code:
            return (c.ACCOUNT_FROZEN if code == cc.ACCOUNT_FROZEN else c.INSUFFICIENT_FUNDS,
                    *refused)
        code, events = self.book.submit(
            order_id, acct, side, price, qty, kind=mc.MARKET if is_market else mc.LIMIT,
            tif=tif, post_only=post, stp=stp, quote_budget=kernel_budget)
        if code:
            self._release(acct, hold_asset, hold)
            return (_BOOK_CODES.get(code, c.INVALID_ARGUMENT), *refused)
        if self._fault_rows >= 0:
            if self._fault_rows == 0:
                self._fault_rows = -1
                raise MemoryError("engine buffer (a fault injected by a test)")
            self._fault_rows -= 1
        held = hold
        status = filled = remaining = 0
        for kind, _oid, maker_id, maker_acct, lp, q, rem in events:
            if kind == mc.EV_FILL:
                maker_fee, taker_fee, spent = self._settle(acct, side, maker_acct, lp, q, rem)
                if rem == 0:
                    self._open[maker_acct].remove(maker_id)
                held -= spent
                evs.extend((row, kind, maker_id, maker_acct, lp, q, rem, maker_fee, taker_fee))
            elif kind == mc.EV_MAKER_EXPIRED:
                self._release(maker_acct, self.base if side == mc.BUY else self.quote,
                              self.hold_needed(1 - side, lp, q))
                self._open[maker_acct].remove(maker_id)
                evs.extend((row, kind, maker_id, maker_acct, lp, q, 0, 0, 0))
            else:
                status, filled, remaining = kind, q, rem
        if status == mc.EV_RESTING:
            keep = self.hold_needed(side, price, remaining)
            assert held >= keep, "a resting order holds less than it needs"
            held -= keep
            self._open.setdefault(acct, set()).add(order_id)
        self._release(acct, hold_asset, held)
        return (c.OK, order_id, status, filled, remaining, hold)

    def _settle(self, taker: int, side: int, maker: int, price: int, qty: int,
                maker_remaining: int) -> tuple[int, int, int]:
        """Settle one fill; return (maker fee, taker fee, what it spent of the taker's hold)."""
        core = self.core
        notional = price * qty * self.npt
        base_amt = qty * self.lot_minor
        maker_fee = fee_of(notional, self.maker_fee_ppm)
        taker_fee = fee_of(notional, self.taker_fee_ppm)
        if side == mc.BUY:
            buyer, seller, buyer_fee, seller_fee = taker, maker, taker_fee, maker_fee
        else:
            buyer, seller, buyer_fee, seller_fee = maker, taker, maker_fee, taker_fee
        if buyer == seller:  # a self-trade (stp "none"): its legs are releases
            self._release(seller, self.base, base_amt)
            self._release(buyer, self.quote, notional - seller_fee)
        else:
            self._ok(core.post_held(seller, buyer, self.base, base_amt))
            if notional > seller_fee:
                self._ok(core.post_held(buyer, seller, self.quote, notional - seller_fee))
        if buyer == self.fee_account:  # the fee account buying: its fees stay its own
            self._release(buyer, self.quote, buyer_fee + seller_fee)
        elif buyer_fee + seller_fee:
            self._ok(core.post_held(buyer, self.fee_account, self.quote,
                                    buyer_fee + seller_fee))
        if side == mc.SELL:  # the maker is a resting buy: release what the fill freed
            freed = (self.hold_needed(mc.BUY, price, maker_remaining + qty)
                     - self.hold_needed(mc.BUY, price, maker_remaining) - notional - maker_fee)
            assert freed >= 0, "a resting buy held less than its fill"
            self._release(maker, self.quote, freed)
        return maker_fee, taker_fee, notional + taker_fee if side == mc.BUY else base_amt

    def _resting(self, oid: int, owner: int) -> tuple[int, tuple[int, int, int, int]]:
        """The resting order ``oid`` as (account, side, price, remaining), and the code
        refusing a cancel or amend of it by ``owner`` (UNKNOWN_ORDER, PERMISSION_DENIED)."""
        found = self.book.order(oid) if oid >= 1 else None
        if found is None:
            return c.UNKNOWN_ORDER, (0, 0, 0, 0)
        if owner >= 0 and found[0] != owner:
            return c.PERMISSION_DENIED, found
        return c.OK, found

    def _cancel(self, oid: int, acct: int, side: int, price: int, qty: int, quote: int,
                flags: int, owner: int) -> tuple[int, ...]:
        if acct or side or price or qty or quote or flags:
            return (c.INVALID_ARGUMENT, 0, 0, 0, 0, 0)
        code, found = self._resting(oid, owner)
        if code:
            return (code, 0, 0, 0, 0, 0)
        account, o_side, o_price, _rem = found
        code, removed = self.book.cancel(oid)
        assert code == mc.OK
        released = self.hold_needed(o_side, o_price, removed)
        self._release(account, self.quote if o_side == mc.BUY else self.base, released)
        self._open[account].remove(oid)
        return (c.OK, oid, mc.EV_CANCELED, 0, removed, released)

    def _amend(self, oid: int, acct: int, side: int, price: int, qty: int, quote: int,
               flags: int, live_code: int, owner: int) -> tuple[int, ...]:
        refused = (0, 0, 0, 0, 0)
        if acct or side or quote or flags or (price == 0 and qty == 0):
            return (c.INVALID_ARGUMENT, *refused)
        if not (0 <= price <= mc.MAX_PRICE_TICKS and 0 <= qty <= mc.MAX_QTY_LOTS):
            return (c.INVALID_AMOUNT, *refused)
        code, found = self._resting(oid, owner)
        if code:
            return (code, *refused)
        account, o_side, o_price, o_rem = found
        if self.halted:
            return (c.MARKET_HALTED, *refused)
        new_price = price or o_price
        new_qty = qty or o_rem
        if (new_price != o_price and self.reference_ticks
                and not self.band_low <= new_price <= self.band_high):
            return (c.PRICE_OUTSIDE_BAND, *refused)
        if live_code and (new_qty > o_rem or new_price != o_price):
            return (live_code, *refused)
        need = self.hold_needed(o_side, new_price, new_qty)
        if need > c.INT64_MAX or new_price * new_qty * self.npt > c.INT64_MAX:
            return (c.INVALID_AMOUNT, *refused)
        if new_price * new_qty * self.npt < self.min_notional_minor:  # as a new order would be
            return (c.BELOW_MIN_NOTIONAL, *refused)
        delta = need - self.hold_needed(o_side, o_price, o_rem)
        asset = self.quote if o_side == mc.BUY else self.base
        if delta > 0:
            code = self.core.hold(account, asset, delta)
            if code:
                return (c.ACCOUNT_FROZEN if code == cc.ACCOUNT_FROZEN else c.INSUFFICIENT_FUNDS,
                        *refused)
        code = self.book.amend(oid, qty_lots=new_qty, price_ticks=new_price)
        if code:
            if delta > 0:
                self._release(account, asset, delta)
            return (c.AMEND_WOULD_CROSS if code == mc.AMEND_WOULD_CROSS else c.INVALID_ARGUMENT,
                    *refused)
        if delta < 0:
            self._release(account, asset, -delta)
        return (c.OK, oid, mc.EV_AMENDED, 0, new_qty, delta)

    def _release(self, account: int, asset: int, amount: int) -> None:
        if amount:
            self._ok(self.core.release(account, asset, amount))

    @staticmethod
    def _ok(code: int) -> None:
        assert code == cc.OK, f"settlement refused: {cc.CODE_NAMES[code]}"

    # -- state ---------------------------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        """The book (queue order included); everything else is derived from it."""
        return self.book.export_state()


__all__ = ["MarketEngine", "fee_of"]
