"""The pure-Python twin of the compiled order book: the readable specification.

One ``OrderBook`` is the resting orders of one market, in integer units:
prices in ticks (``1..MAX_PRICE_TICKS``), quantities in lots
(``1..MAX_QTY_LOTS``). Orders carry a caller-assigned ``order_id``
(``1..MAX_ORDER_ID``, unique among the resting orders of the book) and an
``account`` (``0..MAX_ACCOUNT``, the ledger's account number), which is used for
self-trade prevention and reported in fills. Matching is price-time priority:
the best price first, and first in, first out within a price level. A fill is
always at the resting (maker) order's price.

The compiled book in ``ext/_book.pyx`` (``solvent._book.OrderBook``) mirrors every
public name, argument, result, event and check order here; the differential
tests (``tests/test_book_differential.py``) hold the two to identical outputs and
identical exported state after every command.

Data structures (twin): per side a ``SortedDict`` of price levels keyed so that
the first key is the best price (asks by ``price``, bids by ``-price``); a level
is an ``OrderedDict`` order id -> order (FIFO, O(1) removal anywhere) with its
total quantity; a dict order id -> order; a dict account -> set of order ids.

Commands
--------
Every command either applies completely and returns ``OK`` (0), or returns a
non-zero code from :mod:`solvent.matching.codes` and changes nothing. Numeric
arguments must be ``int`` (a ``float``, ``bool`` or anything else is a
``TypeError``); an int of any size is accepted and one outside its range gives
the range's code.

``submit(order_id, account, side, price_ticks, qty_lots, *, kind=LIMIT, tif=GTC,
post_only=False, stp=STP_NONE, quote_budget=0) -> (code, events)``

* ``kind=LIMIT``: ``price_ticks`` in range, ``qty_lots`` in range,
  ``quote_budget`` 0. ``tif`` GTC (the remainder rests), IOC (the remainder
  expires) or FOK (filled completely now, else rejected ``FOK_UNFILLABLE``
  before anything changes). ``post_only`` only with GTC: rejected whole with
  ``POST_ONLY_WOULD_TAKE`` when its price crosses the opposite best price (even
  if the orders there are its own account's).
* ``kind=MARKET``: ``price_ticks`` 0, ``tif`` IOC or FOK, no ``post_only``.
  A market sell, or a market buy by quantity: ``qty_lots`` in range,
  ``quote_budget`` 0. A market BUY by budget: ``qty_lots`` 0 and ``quote_budget``
  in ``1..MAX_QUOTE_BUDGET`` "tick-lots" (a fill of q lots at p ticks spends
  p*q); tif IOC only. It takes level after level, at each level at most
  ``remaining_budget // price`` lots, and stops when that is 0: the budget is
  never exceeded. The unspent budget is ``quote_budget - sum(p*q)`` over its fills.
* Check order (the first failing code is returned): INVALID_ORDER_ID,
  INVALID_ACCOUNT, INVALID_PARAMS (side/kind/tif/stp values, then
  combinations), INVALID_PRICE, INVALID_QTY, DUPLICATE_ORDER_ID, BOOK_FULL (a GTC
  limit order while ``max_orders`` orders rest, whether or not it would rest),
  POST_ONLY_WOULD_TAKE, FOK_UNFILLABLE.
* Only resting orders are known: an id whose order is filled or cancelled can
  be used again (the ledger assigns ids from a counter).
* Self-trade prevention, by the incoming order's ``stp`` mode, when the order
  at the head of the best crossing level belongs to the same account:
  EXPIRE_TAKER: the incoming order stops, its remainder expires (the maker
  stays); EXPIRE_MAKER: the maker is removed (event MAKER_EXPIRED) and matching
  goes on; EXPIRE_BOTH: the maker is removed and the incoming order stops. The
  FOK check counts makers the same way (EXPIRE_MAKER skips own orders,
  EXPIRE_TAKER/EXPIRE_BOTH stop at the first one). At each maker the order of
  checks is: price crosses, budget affords one lot, same account, fill.

Events are 7-int tuples ``(kind, order_id, maker_order_id, account, price_ticks,
qty_lots, remaining_lots)`` in the order they happened:

* ``EV_FILL``: taker id, maker id, maker account, price (the maker's), qty,
  the maker's remaining after the fill (0: it left the book).
* ``EV_MAKER_EXPIRED`` (STP): taker id, maker id, maker account, maker price,
  the maker's remaining qty removed, 0.
* then exactly one final state of the incoming order: ``EV_RESTING`` (rests
  with ``remaining_lots``), ``EV_FILLED`` (nothing left: qty filled, or the budget
  spent exactly), ``EV_EXPIRED`` (IOC/FOK/market remainder not filled: no more
  crossing liquidity, or the budget cannot buy one more lot), ``EV_STP_EXPIRED``
  (stopped by self-trade prevention); each with taker id, 0, the taker's
  account, its limit price (0 for market), the total qty filled, the remaining
  qty not filled (0 for a market buy by budget).

A rejected order has no events.

``cancel(order_id) -> (code, removed_lots)``: UNKNOWN_ORDER if not resting.

``amend(order_id, qty_lots=None, price_ticks=None) -> code``: ``qty_lots`` is
the new *remaining* quantity. Checks: INVALID_PARAMS (both None),
INVALID_QTY, INVALID_PRICE, UNKNOWN_ORDER, AMEND_WOULD_CROSS. Amend never
matches: a new price that would cross the opposite best price (buy: >= best
ask; sell: <= best bid) is rejected. A smaller quantity at the same price keeps
the order's place in the queue; the same quantity and price is a no-op (OK);
a larger quantity or a new price moves it to the back of its (new) level.

Bulk path
---------
``process_many(op, order_id, account, side, price, qty, flags, out, events) -> applied``
runs one command per row of seven int64 columns (``array('q')``; any other
sequence is first converted with ``array('q', column)``). ``op``: OP_LIMIT,
OP_MARKET, OP_CANCEL, OP_AMEND (anything else: INVALID_PARAMS). For orders,
``flags`` = ``codes.flags(tif, post_only, stp)`` (bits 0-1 tif, bit 2
post_only, bits 3-4 stp; any other bit set: INVALID_PARAMS, checked first);
for OP_MARKET the ``price`` column carries the quote budget (0: by qty). For
OP_AMEND ``qty``/``price`` 0 mean "unchanged" (the ``None`` of ``amend``).
OP_CANCEL uses only ``order_id``. Each row's code goes to ``out[i]`` (a writable
byte buffer of at least n bytes); events are appended to ``events`` (an
``array('q')``, not one of the columns, and not exporting its buffer: a live
``memoryview`` of it is a ``BufferError`` before any row runs, since the array
must grow) as 8-int records: row index, then the event's 7 ints. Cancels
add ``EV_CANCELED`` (order id, 0, account, price, removed qty, 0); amends add
``EV_AMENDED`` (order id, old price, account, new price, new remaining,
old remaining). Returns the number of rows with code OK.

State
-----
``export_state()`` gives ``{"format", "max_orders", "orders"}`` where
``orders`` lists ``(order_id, account, side, price_ticks, remaining_lots)``: bids
best price first, then asks best price first, each level in queue order.
``from_state`` rebuilds exactly that book (same queue order) and checks it.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from collections.abc import Iterator, MutableSequence, Sequence
from typing import Any

from sortedcontainers import SortedDict

from solvent.matching import codes as c
from solvent.matching.bulk import events_can_grow

Event = tuple[int, int, int, int, int, int, int]
StateDump = dict[str, Any]
STATE_FORMAT = "solvent.book/1"


class _Order:
    __slots__ = ("account", "order_id", "price", "qty", "side")

    def __init__(self, order_id: int, account: int, side: int, price: int, qty: int) -> None:
        self.order_id = order_id
        self.account = account
        self.side = side
        self.price = price
        self.qty = qty


class _Level:
    __slots__ = ("orders", "price", "total")

    def __init__(self, price: int) -> None:
        self.price = price
        self.total = 0
        self.orders: OrderedDict[int, _Order] = OrderedDict()


def _check_int(*values: object) -> None:
    for v in values:
        if type(v) is not int:
            raise TypeError(f"expected an int, got {type(v).__name__}")


def _column(col: Sequence[int]) -> array[int]:
    if isinstance(col, array) and col.typecode == "q":
        return col
    return array("q", col)


class OrderBook:
    """The resting orders of one market, matched by price-time priority."""

    __slots__ = ("_accounts", "_asks", "_bids", "_max_orders", "_orders")

    def __init__(self, max_orders: int = c.DEFAULT_MAX_ORDERS) -> None:
        _check_int(max_orders)
        if not 1 <= max_orders <= c.MAX_ORDERS_LIMIT:
            raise ValueError(f"max_orders must be in 1..{c.MAX_ORDERS_LIMIT}")
        self._max_orders = max_orders
        # key -> level; the first key is the best price (bids keyed by -price)
        self._bids: SortedDict = SortedDict()
        self._asks: SortedDict = SortedDict()
        self._orders: dict[int, _Order] = {}
        self._accounts: dict[int, set[int]] = {}

    # -- internals -------------------------------------------------------------------------

    def _side(self, side: int) -> SortedDict:
        return self._bids if side == c.BUY else self._asks

    @staticmethod
    def _key(side: int, price: int) -> int:
        return -price if side == c.BUY else price

    def _rest(self, order: _Order) -> None:
        """Append ``order`` at the back of its price level."""
        book = self._side(order.side)
        key = self._key(order.side, order.price)
        level = book.get(key)
        if level is None:
            level = book[key] = _Level(order.price)
        level.orders[order.order_id] = order
        level.total += order.qty
        self._orders[order.order_id] = order
        self._accounts.setdefault(order.account, set()).add(order.order_id)

    def _remove(self, order: _Order) -> None:
        """Take ``order`` out of the book (its remaining qty is dropped)."""
        book = self._side(order.side)
        key = self._key(order.side, order.price)
        level = book[key]
        del level.orders[order.order_id]
        level.total -= order.qty
        if not level.orders:
            del book[key]
        del self._orders[order.order_id]
        ids = self._accounts[order.account]
        ids.discard(order.order_id)
        if not ids:
            del self._accounts[order.account]

    @staticmethod
    def _crosses(side: int, limit: int | None, level_price: int) -> bool:
        """Would an incoming order of ``side`` with ``limit`` (None: market) take
        from a level at ``level_price``?"""
        if limit is None:
            return True
        return level_price <= limit if side == c.BUY else level_price >= limit

    def _fillable(self, side: int, limit: int | None, qty: int, account: int, stp: int) -> bool:
        """The FOK check: can ``qty`` be filled now (walking makers as matching would)?"""
        need = qty
        for level in self._side(1 - side).values():
            if not self._crosses(side, limit, level.price):
                return False
            for maker in level.orders.values():
                if stp != c.STP_NONE and maker.account == account:
                    if stp != c.EXPIRE_MAKER:
                        return False
                    continue
                need -= maker.qty
                if need <= 0:
                    return True
        return False

    def _check_order(
        self, order_id: int, account: int, side: int, price: int, qty: int, kind: int,
        tif: int, post_only: bool, stp: int, budget: int,
    ) -> int:
        if not 1 <= order_id <= c.MAX_ORDER_ID:
            return c.INVALID_ORDER_ID
        if not 0 <= account <= c.MAX_ACCOUNT:
            return c.INVALID_ACCOUNT
        if side not in (c.BUY, c.SELL) or kind not in (c.LIMIT, c.MARKET):
            return c.INVALID_PARAMS
        if tif not in (c.GTC, c.IOC, c.FOK) or stp not in c.STP_NAMES:
            return c.INVALID_PARAMS
        if kind == c.LIMIT:
            if budget != 0 or (post_only and tif != c.GTC):
                return c.INVALID_PARAMS
            if not 1 <= price <= c.MAX_PRICE_TICKS:
                return c.INVALID_PRICE
            if not 1 <= qty <= c.MAX_QTY_LOTS:
                return c.INVALID_QTY
        else:
            if tif == c.GTC or post_only:
                return c.INVALID_PARAMS
            if budget != 0 and (side != c.BUY or tif != c.IOC):
                return c.INVALID_PARAMS
            if price != 0:
                return c.INVALID_PRICE
            if budget == 0:
                if not 1 <= qty <= c.MAX_QTY_LOTS:
                    return c.INVALID_QTY
            elif qty != 0 or not 1 <= budget <= c.MAX_QUOTE_BUDGET:
                return c.INVALID_QTY
        if order_id in self._orders:
            return c.DUPLICATE_ORDER_ID
        return c.OK

    # -- commands ----------------------------------------------------------------------------

    def submit(
        self,
        order_id: int,
        account: int,
        side: int,
        price_ticks: int,
        qty_lots: int,
        *,
        kind: int = c.LIMIT,
        tif: int = c.GTC,
        post_only: bool = False,
        stp: int = c.STP_NONE,
        quote_budget: int = 0,
    ) -> tuple[int, list[Event]]:
        """Match an incoming order, then rest, fill or expire it (see the module doc)."""
        _check_int(order_id, account, side, price_ticks, qty_lots, kind, tif, stp, quote_budget)
        if type(post_only) is not bool and type(post_only) is not int:
            raise TypeError(f"post_only must be a bool, got {type(post_only).__name__}")
        post = bool(post_only)
        code = self._check_order(order_id, account, side, price_ticks, qty_lots, kind, tif,
                                 post, stp, quote_budget)
        if code:
            return code, []
        limit = price_ticks if kind == c.LIMIT else None
        opp = self._side(1 - side)
        if kind == c.LIMIT and tif == c.GTC and len(self._orders) >= self._max_orders:
            return c.BOOK_FULL, []
        if post and opp and self._crosses(side, limit, opp.peekitem(0)[1].price):
            return c.POST_ONLY_WOULD_TAKE, []
        if tif == c.FOK and not self._fillable(side, limit, qty_lots, account, stp):
            return c.FOK_UNFILLABLE, []
        # -- from here on the order is accepted ---------------------------------------------
        events: list[Event] = []
        by_budget = quote_budget != 0
        remaining = qty_lots
        budget = quote_budget
        filled = 0
        stopped_by_stp = False
        while (budget > 0) if by_budget else (remaining > 0):
            if not opp:
                break
            level: _Level = opp.peekitem(0)[1]
            lp = level.price
            if not self._crosses(side, limit, lp):
                break
            can = budget // lp if by_budget else remaining
            if can == 0:
                break
            maker = next(iter(level.orders.values()))
            if stp != c.STP_NONE and maker.account == account:
                if stp == c.EXPIRE_TAKER:
                    stopped_by_stp = True
                    break
                events.append((c.EV_MAKER_EXPIRED, order_id, maker.order_id, maker.account, lp,
                               maker.qty, 0))
                self._remove(maker)
                if stp == c.EXPIRE_BOTH:
                    stopped_by_stp = True
                    break
                continue
            q = min(can, maker.qty)
            maker.qty -= q
            level.total -= q
            filled += q
            if by_budget:
                budget -= q * lp
            else:
                remaining -= q
            events.append((c.EV_FILL, order_id, maker.order_id, maker.account, lp, q, maker.qty))
            if maker.qty == 0:
                self._remove(maker)
        unfilled = 0 if by_budget else remaining
        done = budget == 0 if by_budget else remaining == 0
        if stopped_by_stp:
            final = c.EV_STP_EXPIRED
        elif done:
            final = c.EV_FILLED
        elif kind == c.LIMIT and tif == c.GTC:
            final = c.EV_RESTING
            self._rest(_Order(order_id, account, side, price_ticks, remaining))
        else:
            final = c.EV_EXPIRED
        events.append((final, order_id, 0, account, price_ticks, filled, unfilled))
        return c.OK, events

    def cancel(self, order_id: int) -> tuple[int, int]:
        """Remove a resting order: ``(OK, remaining qty removed)`` or ``(UNKNOWN_ORDER, 0)``."""
        _check_int(order_id)
        order = self._orders.get(order_id)
        if order is None:
            return c.UNKNOWN_ORDER, 0
        self._remove(order)
        return c.OK, order.qty

    def _check_amend(self, order_id: int, qty: int | None, price: int | None) -> int:
        if qty is None and price is None:
            return c.INVALID_PARAMS
        if qty is not None and not 1 <= qty <= c.MAX_QTY_LOTS:
            return c.INVALID_QTY
        if price is not None and not 1 <= price <= c.MAX_PRICE_TICKS:
            return c.INVALID_PRICE
        order = self._orders.get(order_id)
        if order is None:
            return c.UNKNOWN_ORDER
        if price is not None and price != order.price:
            opp = self._side(1 - order.side)
            if opp and self._crosses(order.side, price, opp.peekitem(0)[1].price):
                return c.AMEND_WOULD_CROSS
        return c.OK

    def amend(
        self, order_id: int, qty_lots: int | None = None, price_ticks: int | None = None
    ) -> int:
        """Change a resting order's remaining qty and/or price (see the module doc)."""
        _check_int(order_id)
        if qty_lots is not None:
            _check_int(qty_lots)
        if price_ticks is not None:
            _check_int(price_ticks)
        code = self._check_amend(order_id, qty_lots, price_ticks)
        if code:
            return code
        order = self._orders[order_id]
        new_qty = order.qty if qty_lots is None else qty_lots
        new_price = order.price if price_ticks is None else price_ticks
        if new_price == order.price and new_qty <= order.qty:
            level = self._side(order.side)[self._key(order.side, order.price)]
            level.total -= order.qty - new_qty
            order.qty = new_qty  # keeps its place in the queue
        else:
            self._remove(order)
            order.price = new_price
            order.qty = new_qty
            self._rest(order)  # the back of the (new) level
        return c.OK

    def process_many(
        self,
        op: Sequence[int],
        order_id: Sequence[int],
        account: Sequence[int],
        side: Sequence[int],
        price: Sequence[int],
        qty: Sequence[int],
        flags: Sequence[int],
        out: MutableSequence[int] | bytearray,
        events: array[int],
    ) -> int:
        """Run one command per row (see "Bulk path" in the module doc)."""
        cols = [_column(col) for col in (op, order_id, account, side, price, qty, flags)]
        n = len(cols[0])
        if any(len(col) != n for col in cols) or len(out) < n:
            raise ValueError("process_many: columns must have equal lengths (out at least)")
        if not isinstance(events, array) or events.typecode != "q":
            raise TypeError("process_many: events must be an array('q')")
        events_can_grow(events, cols)
        ops, oids, accts, sides, prices, qtys, flgs = cols
        applied = 0
        for i in range(n):
            o = ops[i]
            oid = oids[i]
            evs: list[Event] = []
            if o == c.OP_LIMIT or o == c.OP_MARKET:
                f = flgs[i]
                if f & ~c.FLAGS_ALL:
                    code = c.INVALID_PARAMS
                else:
                    tif = f & c.FLAG_TIF_MASK
                    post = bool(f & c.FLAG_POST_ONLY)
                    stp = (f & c.FLAG_STP_MASK) >> c.FLAG_STP_SHIFT
                    if o == c.OP_LIMIT:
                        code, evs = self.submit(oid, accts[i], sides[i], prices[i], qtys[i],
                                                kind=c.LIMIT, tif=tif, post_only=post, stp=stp)
                    else:
                        code, evs = self.submit(oid, accts[i], sides[i], 0, qtys[i],
                                                kind=c.MARKET, tif=tif, post_only=post, stp=stp,
                                                quote_budget=prices[i])
            elif o == c.OP_CANCEL:
                order = self._orders.get(oid)
                code, removed = self.cancel(oid)
                if order is not None:
                    evs = [(c.EV_CANCELED, oid, 0, order.account, order.price, removed, 0)]
            elif o == c.OP_AMEND:
                q = qtys[i]
                p = prices[i]
                order = self._orders.get(oid)
                old = (order.price, order.qty) if order is not None else (0, 0)
                code = self.amend(oid, q if q != 0 else None, p if p != 0 else None)
                if code == c.OK and order is not None:
                    evs = [(c.EV_AMENDED, oid, old[0], order.account, order.price, order.qty,
                            old[1])]
            else:
                code = c.INVALID_PARAMS
            out[i] = code
            if code == c.OK:
                applied += 1
            for ev in evs:
                events.append(i)
                events.extend(ev)
        return applied

    # -- reads -------------------------------------------------------------------------------

    @property
    def max_orders(self) -> int:
        return self._max_orders

    @property
    def n_orders(self) -> int:
        """Number of resting orders."""
        return len(self._orders)

    def __len__(self) -> int:
        return len(self._orders)

    def n_levels(self, side: int) -> int:
        """Number of price levels on ``side``."""
        _check_int(side)
        if side not in (c.BUY, c.SELL):
            raise ValueError("side must be BUY or SELL")
        return len(self._side(side))

    def best_bid(self) -> int | None:
        return self._bids.peekitem(0)[1].price if self._bids else None

    def best_ask(self) -> int | None:
        return self._asks.peekitem(0)[1].price if self._asks else None

    def depth(self, levels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Aggregated L2: the best ``levels`` levels per side as ``(price, total qty)``."""
        _check_int(levels)
        if levels < 0:
            raise ValueError("levels must be >= 0")

        def top(book: SortedDict) -> list[tuple[int, int]]:
            out: list[tuple[int, int]] = []
            for level in book.values():
                if len(out) >= levels:
                    break
                out.append((level.price, level.total))
            return out

        return top(self._bids), top(self._asks)

    def order(self, order_id: int) -> tuple[int, int, int, int] | None:
        """``(account, side, price_ticks, remaining_lots)`` of a resting order, else None."""
        _check_int(order_id)
        o = self._orders.get(order_id)
        return None if o is None else (o.account, o.side, o.price, o.qty)

    def orders_of(self, account: int) -> list[tuple[int, int, int, int]]:
        """The account's resting orders as ``(order_id, side, price_ticks, remaining_lots)``,
        by order id."""
        _check_int(account)
        ids = self._accounts.get(account, ())
        return [(i, self._orders[i].side, self._orders[i].price, self._orders[i].qty)
                for i in sorted(ids)]

    def level_orders(self, side: int, price_ticks: int) -> list[tuple[int, int, int]]:
        """The queue at one price: ``(order_id, account, remaining_lots)`` first in first."""
        _check_int(side, price_ticks)
        if side not in (c.BUY, c.SELL):
            raise ValueError("side must be BUY or SELL")
        level = self._side(side).get(self._key(side, price_ticks))
        if level is None:
            return []
        return [(o.order_id, o.account, o.qty) for o in level.orders.values()]

    # -- invariants and state transfer -----------------------------------------------------

    def _iter_orders(self) -> Iterator[_Order]:
        for book in (self._bids, self._asks):
            for level in book.values():
                yield from level.orders.values()

    def check_invariants(self) -> None:
        """Raise AssertionError if the book's structure is inconsistent."""

        def fail(why: str) -> None:
            raise AssertionError(why)

        seen = 0
        per_account: dict[int, set[int]] = {}
        for side, book in ((c.BUY, self._bids), (c.SELL, self._asks)):
            for key, level in book.items():
                if key != self._key(side, level.price) or not level.orders:
                    fail(f"bad level {level.price}")
                if level.total != sum(o.qty for o in level.orders.values()):
                    fail(f"level {level.price}: total != sum of orders")
                for oid, o in level.orders.items():
                    seen += 1
                    if oid != o.order_id or self._orders.get(oid) is not o:
                        fail(f"order {oid} not indexed")
                    if o.side != side or o.price != level.price or not o.qty > 0:
                        fail(f"order {oid} inconsistent")
                    per_account.setdefault(o.account, set()).add(oid)
        if seen != len(self._orders) or seen > self._max_orders:
            fail("order count mismatch")
        if per_account != self._accounts:
            fail("account index mismatch")
        bid, ask = self.best_bid(), self.best_ask()
        if bid is not None and ask is not None and bid >= ask:
            fail(f"crossed book: bid {bid} >= ask {ask}")

    def export_state(self) -> StateDump:
        """The whole book, queue order included (see the module doc)."""
        return {
            "format": STATE_FORMAT,
            "max_orders": self._max_orders,
            "orders": [(o.order_id, o.account, o.side, o.price, o.qty)
                       for o in self._iter_orders()],
        }

    @classmethod
    def from_state(cls, state: StateDump) -> OrderBook:
        """Rebuild a book from ``export_state()`` output; raise ValueError if it is not valid."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a {STATE_FORMAT} state")
        book = cls(state["max_orders"])
        rows = state["orders"]
        if len(rows) > book._max_orders:
            raise ValueError("more orders than max_orders")
        for row in rows:
            order_id, account, side, price, qty = row
            _check_int(order_id, account, side, price, qty)
            if not (1 <= order_id <= c.MAX_ORDER_ID and 0 <= account <= c.MAX_ACCOUNT
                    and side in (c.BUY, c.SELL) and 1 <= price <= c.MAX_PRICE_TICKS
                    and 1 <= qty <= c.MAX_QTY_LOTS):
                raise ValueError(f"order {row!r} out of range")
            if order_id in book._orders:
                raise ValueError(f"duplicate order id {order_id}")
            book._rest(_Order(order_id, account, side, price, qty))
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None and bid >= ask:
            raise ValueError(f"crossed book: bid {bid} >= ask {ask}")
        return book
