# cython: language_level=3
"""The compiled market engine (``solvent._engine``): a mirror of ``solvent/engine/twin.py``.

``twin.py`` is the readable specification (its docstring gives the hold rule,
the settlement of a fill and the check order of every command); this module
runs the same engine in C: one call per batch of rows parses them, and for each
row holds (``BalanceTable._hold``), matches (``OrderBook._submit``) and settles
(``BalanceTable._post_held`` / ``_release``) without a Python call, writing the
result and event rows into C buffers that become the journal's bytes. It reaches
into the compiled core and book through their ``.pxd`` declarations
(``ext/solvent/_core.pxd``, ``ext/solvent/_book.pxd``), so it runs only over the
compiled core and book; the twin runs over theirs.

Amounts: a notional ``price * qty * npt`` is computed with overflow checks in
int64 (an order whose notional or hold would pass ``INT64_MAX`` is refused with
INVALID_AMOUNT), fees with a 128-bit product. Nothing wraps.
"""

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_CheckExact
from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc, PyMem_RawRealloc
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memcpy, memmove

from solvent._book cimport OrderBook
from solvent._core cimport BalanceTable

import sys as _sys

from solvent.core import codes as cc
from solvent.engine import codes as c
from solvent.matching import codes as mc

cdef extern from *:
    """
    static inline int solvent_mul3(int64_t a, int64_t b, int64_t k, int64_t *out) {
        int64_t t;
        if (__builtin_mul_overflow(a, b, &t)) return 1;
        return __builtin_mul_overflow(t, k, out);
    }
    static inline int64_t solvent_fee(int64_t notional, int64_t ppm) {
        return (int64_t)(((__int128)notional * ppm) / 1000000);
    }
    static inline int64_t solvent_kernel_budget(int64_t quote, int64_t taker_ppm, int64_t npt) {
        return (int64_t)(((__int128)quote * 1000000) / ((__int128)(1000000 + taker_ppm) * npt));
    }
    static inline int solvent_add(int64_t a, int64_t b, int64_t *out) {
        return __builtin_add_overflow(a, b, out);
    }
    """
    bint solvent_mul3(int64_t a, int64_t b, int64_t k, int64_t* out) noexcept nogil
    int64_t solvent_fee(int64_t notional, int64_t ppm) noexcept nogil
    int64_t solvent_kernel_budget(int64_t quote, int64_t taker_ppm, int64_t npt) noexcept nogil
    bint solvent_add(int64_t a, int64_t b, int64_t* out) noexcept nogil


cdef enum:
    IN = 9
    OUT = 6
    EVF = 9
    OP_LIMIT = 0
    OP_MARKET = 1
    OP_CANCEL = 2
    OP_AMEND = 3
    OK = 0
    INVALID_ARGUMENT = 1
    INVALID_AMOUNT = 2
    UNKNOWN_ACCOUNT = 3
    PERMISSION_DENIED = 4
    MARKET_HALTED = 5
    PRICE_OUTSIDE_BAND = 8
    BELOW_MIN_NOTIONAL = 9
    LIMIT_EXCEEDED = 10
    ACCOUNT_FROZEN = 11
    INSUFFICIENT_FUNDS = 12
    POST_ONLY_WOULD_TAKE = 13
    FOK_UNFILLABLE = 14
    UNKNOWN_ORDER = 15
    AMEND_WOULD_CROSS = 16
    MAX_ROWS = 100000
    PPM = 1000000
    MAX_FEE_PPM = 100000
    # the book's
    BUY = 0
    SELL = 1
    LIMIT = 0
    MARKET = 1
    GTC = 0
    IOC = 1
    FOK = 2
    EV_FILL = 1
    EV_MAKER_EXPIRED = 2
    EV_RESTING = 3
    EV_CANCELED = 7
    EV_AMENDED = 8
    BK_OK = 0
    BK_POST_ONLY_WOULD_TAKE = 7
    BK_FOK_UNFILLABLE = 8
    BK_BOOK_FULL = 9
    BK_AMEND_WOULD_CROSS = 11
    FLAG_TIF_MASK = 3
    FLAG_POST_ONLY = 4
    FLAG_STP_SHIFT = 3
    FLAGS_ALL = 31
    REC = 8
    # the core's
    CORE_OK = 0
    CORE_ACCOUNT_FROZEN = 2
    KIND_WALLET = 2

cdef int64_t INT64_MAX_ = 0x7FFFFFFFFFFFFFFF
cdef int64_t INT64_MIN_ = -0x7FFFFFFFFFFFFFFF - 1
cdef int64_t MAX_PRICE_TICKS = 1000000000000
cdef int64_t MAX_QTY_LOTS = 1000000000000
cdef int64_t MAX_FIRST_ORDER_ID = 1 << 62


def _verify_constants():
    """Fail the import if the C constants above drift from the codes modules."""
    pairs = (
        (IN, c.IN_FIELDS), (OUT, c.OUT_FIELDS), (EVF, c.EVENT_FIELDS),
        (OP_LIMIT, c.OP_LIMIT), (OP_MARKET, c.OP_MARKET), (OP_CANCEL, c.OP_CANCEL),
        (OP_AMEND, c.OP_AMEND), (OK, c.OK), (INVALID_ARGUMENT, c.INVALID_ARGUMENT),
        (INVALID_AMOUNT, c.INVALID_AMOUNT), (UNKNOWN_ACCOUNT, c.UNKNOWN_ACCOUNT),
        (PERMISSION_DENIED, c.PERMISSION_DENIED), (MARKET_HALTED, c.MARKET_HALTED),
        (PRICE_OUTSIDE_BAND, c.PRICE_OUTSIDE_BAND), (BELOW_MIN_NOTIONAL, c.BELOW_MIN_NOTIONAL),
        (LIMIT_EXCEEDED, c.LIMIT_EXCEEDED), (ACCOUNT_FROZEN, c.ACCOUNT_FROZEN),
        (INSUFFICIENT_FUNDS, c.INSUFFICIENT_FUNDS),
        (POST_ONLY_WOULD_TAKE, c.POST_ONLY_WOULD_TAKE), (FOK_UNFILLABLE, c.FOK_UNFILLABLE),
        (UNKNOWN_ORDER, c.UNKNOWN_ORDER), (AMEND_WOULD_CROSS, c.AMEND_WOULD_CROSS),
        (MAX_ROWS, c.MAX_SUBMIT_ROWS), (PPM, c.PPM), (MAX_FEE_PPM, c.MAX_FEE_PPM),
        (BUY, mc.BUY), (SELL, mc.SELL), (LIMIT, mc.LIMIT), (MARKET, mc.MARKET), (GTC, mc.GTC),
        (IOC, mc.IOC), (FOK, mc.FOK), (EV_FILL, mc.EV_FILL),
        (EV_MAKER_EXPIRED, mc.EV_MAKER_EXPIRED), (EV_RESTING, mc.EV_RESTING),
        (EV_CANCELED, mc.EV_CANCELED), (EV_AMENDED, mc.EV_AMENDED), (BK_OK, mc.OK),
        (BK_POST_ONLY_WOULD_TAKE, mc.POST_ONLY_WOULD_TAKE),
        (BK_FOK_UNFILLABLE, mc.FOK_UNFILLABLE), (BK_BOOK_FULL, mc.BOOK_FULL),
        (BK_AMEND_WOULD_CROSS, mc.AMEND_WOULD_CROSS), (FLAG_TIF_MASK, mc.FLAG_TIF_MASK),
        (FLAG_POST_ONLY, mc.FLAG_POST_ONLY), (FLAG_STP_SHIFT, mc.FLAG_STP_SHIFT),
        (FLAGS_ALL, mc.FLAGS_ALL), (REC, mc.BULK_EVENT_FIELDS),
        (MAX_PRICE_TICKS, mc.MAX_PRICE_TICKS), (MAX_QTY_LOTS, mc.MAX_QTY_LOTS),
        (MAX_FIRST_ORDER_ID, c.MAX_FIRST_ORDER_ID), (CORE_OK, cc.OK), (CORE_ACCOUNT_FROZEN, cc.ACCOUNT_FROZEN),
        (KIND_WALLET, cc.KIND_WALLET), (INT64_MAX_, c.INT64_MAX),
    )
    for mine, theirs in pairs:
        if mine != theirs:
            raise ImportError(f"solvent._engine constants out of date: {pairs}")
    if _sys.byteorder != "little":
        raise ImportError("solvent._engine writes little-endian rows; this machine is not")


_verify_constants()


cdef inline bint _int64_of(object v, int64_t* out) noexcept:
    """``v`` as an int64 if it is an exact int that fits; else False."""
    cdef int overflow = 0
    cdef long long x
    if not PyLong_CheckExact(v):
        return False
    x = PyLong_AsLongLongAndOverflow(v, &overflow)
    if overflow:
        return False
    out[0] = x
    return True


cdef class Buffer:
    """A growable int64 buffer (C memory), handed out as bytes."""
    cdef int64_t* data
    cdef Py_ssize_t length
    cdef Py_ssize_t cap

    def __cinit__(self):
        self.data = NULL
        self.length = 0
        self.cap = 0

    def __dealloc__(self):
        PyMem_RawFree(self.data)

    cdef int reserve(self, Py_ssize_t extra) except -1:
        cdef Py_ssize_t cap
        cdef void* p
        if self.length + extra <= self.cap:
            return 0
        cap = self.cap * 2 if self.cap else 1024
        while cap < self.length + extra:
            cap *= 2
        p = PyMem_RawRealloc(self.data, <size_t>cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError("engine buffer")
        self.data = <int64_t*>p
        self.cap = cap
        return 0

    cdef bytes take(self):
        cdef bytes out = PyBytes_FromStringAndSize(<char*>self.data,
                                                    self.length * <Py_ssize_t>sizeof(int64_t))
        self.length = 0
        return out


ctypedef struct IdList:
    int64_t open            # the account's resting orders
    int64_t* ids            # their ids, and ended ones not yet dropped
    Py_ssize_t n
    Py_ssize_t cap


@cython.final
cdef class AccountOrders:
    """Each account's resting orders: how many (``open_of``) and their ids (for
    ``orders_of``), in an array indexed by account number.

    The ids are kept lazily (the twin keeps exact sets): an id goes in when its order
    rests, and an order that ends (filled, expired, cancelled) only lowers the count. Its
    id leaves when the list is compacted, each id looked up in the book: on a read, and
    when the list is full and holds at least 2 x the account's open orders + 8 ids, so at
    least half of it has ended. Compaction thus looks up at most two ids for every id
    dropped, and a list never outgrows 4 x the account's open orders + 16 ids. Ids keep
    the order in which they went in."""
    cdef IdList* lists
    cdef Py_ssize_t length

    def __cinit__(self):
        self.lists = NULL
        self.length = 0

    def __dealloc__(self):
        cdef Py_ssize_t a
        if self.lists != NULL:
            for a in range(self.length):
                PyMem_RawFree(self.lists[a].ids)
        PyMem_RawFree(self.lists)

    cdef inline int64_t open_of(self, int64_t account) noexcept:
        return self.lists[account].open if 0 <= account < self.length else 0

    cdef inline int ended(self, int64_t account) except -1:
        """One of ``account``'s resting orders ended (its id stays until compaction)."""
        if not (0 <= account < self.length and self.lists[account].open > 0):
            raise AssertionError("an order ended that was not counted as resting")
        self.lists[account].open -= 1
        return 0

    cdef Py_ssize_t compact(self, OrderBook book, int64_t account, list out) except -1:
        """Drop the ids whose order no longer rests (for ``account``); the ids left. With
        ``out``, append each resting order to it as ``(order_id, side, price_ticks,
        remaining_lots)``; a MemoryError there keeps the ids not yet read."""
        if not 0 <= account < self.length:
            return 0
        cdef IdList* l = &self.lists[account]
        cdef Py_ssize_t n = l.n, i = 0, kept = 0
        cdef int32_t oi
        if n == 0:
            return 0
        try:
            while i < n:
                oi = book._find(l.ids[i])
                if oi >= 0 and book._ord[oi].account == account:
                    if out is not None:
                        out.append((l.ids[i], book._lvl[book._ord[oi].level].side,
                                    book._lvl[book._ord[oi].level].price, book._ord[oi].qty))
                    l.ids[kept] = l.ids[i]
                    kept += 1
                i += 1
        finally:
            memmove(l.ids + kept, l.ids + i, <size_t>(n - i) * sizeof(int64_t))
            l.n = kept + n - i
        return kept

    cdef inline int reserve(self, OrderBook book, int64_t account) except -1:
        """Room for one more id of ``account``: compact the list if at least half of it
        has ended, else grow it. Raises MemoryError having changed nothing visible."""
        if 0 <= account < self.length and self.lists[account].n < self.lists[account].cap:
            return 0
        return self._make_room(book, account)

    cdef int _make_room(self, OrderBook book, int64_t account) except -1:
        cdef Py_ssize_t cap
        cdef void* p
        cdef Py_ssize_t a
        if account < 0:
            raise ValueError("account numbers are >= 0")
        if account >= self.length:
            cap = self.length * 2 if self.length else 1024
            while cap <= account:
                cap *= 2
            p = PyMem_RawRealloc(self.lists, <size_t>cap * sizeof(IdList))
            if p == NULL:
                raise MemoryError("open order ids per account")
            self.lists = <IdList*>p
            for a in range(self.length, cap):
                self.lists[a].open = 0
                self.lists[a].ids = NULL
                self.lists[a].n = 0
                self.lists[a].cap = 0
            self.length = cap
        cdef IdList* l = &self.lists[account]
        if l.n < l.cap:
            return 0
        if l.n >= 2 * l.open + 8 and self.compact(book, account, None) < l.cap:
            return 0
        cap = l.cap * 2 if l.cap else 4
        p = PyMem_RawRealloc(l.ids, <size_t>cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError("open order ids of an account")
        l.ids = <int64_t*>p
        l.cap = cap
        return 0

    cdef inline void rested(self, int64_t account, int64_t order_id) noexcept:
        """An order of ``account`` rests: count it, append its id (``reserve`` made room)."""
        cdef IdList* l = &self.lists[account]
        l.open += 1
        l.ids[l.n] = order_id
        l.n += 1


@cython.final
cdef class MarketEngine:
    """One market: its book, its parameters, and what its orders do to balances."""

    cdef readonly BalanceTable core
    cdef readonly OrderBook book
    cdef readonly int64_t market, base, quote, fee_account, lot_minor, npt
    cdef readonly int64_t maker_fee_ppm, taker_fee_ppm, max_fee_ppm, min_notional_minor
    cdef readonly int64_t max_open_per_account
    cdef readonly int64_t reference_ticks, band_low, band_high
    cdef readonly bint halted
    cdef AccountOrders _accounts
    cdef Buffer _ins, _outs, _evs
    cdef Py_ssize_t _fault_rows      # inject_fault: rows to let through, -1 when off

    def __init__(self, BalanceTable core not None, *, market, base, quote, fee_account,
                 lot_minor, npt, maker_fee_ppm, taker_fee_ppm, min_notional_minor,
                 max_open_per_account=c.MAX_OPEN_ORDERS_PER_ACCOUNT, OrderBook book=None):
        for v in (market, base, quote, fee_account, lot_minor, npt, maker_fee_ppm,
                  taker_fee_ppm, min_notional_minor, max_open_per_account):
            if type(v) is not int:
                raise TypeError("engine parameters are ints")
        if not (0 <= market and 0 <= base and 0 <= quote and base != quote
                and 0 <= fee_account and 1 <= lot_minor <= INT64_MAX_
                and 1 <= npt <= INT64_MAX_ and 0 <= maker_fee_ppm <= MAX_FEE_PPM
                and 0 <= taker_fee_ppm <= MAX_FEE_PPM
                and 0 <= min_notional_minor <= INT64_MAX_ and 1 <= max_open_per_account
                and max_open_per_account <= INT64_MAX_):
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
        self.max_fee_ppm = maker_fee_ppm if maker_fee_ppm > taker_fee_ppm else taker_fee_ppm
        self.min_notional_minor = min_notional_minor
        self.max_open_per_account = max_open_per_account
        self.book = OrderBook() if book is None else book
        self.reference_ticks = 0
        self.band_low = 0
        self.band_high = 0
        self.halted = False
        self._ins = Buffer()
        self._outs = Buffer()
        self._evs = Buffer()
        self._accounts = AccountOrders()
        self._fault_rows = -1
        for oid, acct, _side, _price, _qty in self.book.export_state()["orders"]:
            self._accounts.reserve(self.book, acct)
            self._accounts.rested(acct, oid)

    # -- controls ------------------------------------------------------------------------

    def set_reference(self, price_ticks, band_ppm):
        """Orders may trade only within ``band_ppm`` of ``price_ticks`` (rounded inwards)."""
        if not (1 <= price_ticks <= MAX_PRICE_TICKS and 0 <= band_ppm <= PPM):
            raise ValueError("reference price or band out of range")
        self.reference_ticks = price_ticks
        self.band_low = -(-price_ticks * (PPM - band_ppm) // PPM)
        self.band_high = min(price_ticks * (PPM + band_ppm) // PPM, MAX_PRICE_TICKS)

    def set_halted(self, halted):
        self.halted = bool(halted)

    def inject_fault(self, after_rows):
        """A test seam that the ledger never calls (see the twin): after ``after_rows``
        more placing rows (limit or market) have been taken by the book, the next one the
        book takes raises ``MemoryError`` where growing the event buffer can really fail,
        with the book already changed by that row (rested or traded) and none of its
        fills settled. -1 turns it off."""
        if type(after_rows) is not int or not -1 <= after_rows <= MAX_ROWS:
            raise ValueError(f"after_rows must be an int in -1..{MAX_ROWS}")
        self._fault_rows = after_rows

    # -- reads ---------------------------------------------------------------------------

    def hold_needed(self, side, price_ticks, qty_lots):
        """What a limit order of ``qty_lots`` at ``price_ticks`` holds (see the twin)."""
        if side == SELL:
            return qty_lots * self.lot_minor
        notional = price_ticks * qty_lots * self.npt
        return notional + notional * self.max_fee_ppm // PPM

    def open_count(self, account):
        return self._accounts.open_of(account)

    def kept_ids(self, account):
        """How many ids the lazy list of ``account`` holds now, ended ones included (a
        read for the tests of its bound; the twin's exact sets hold ``open_count``)."""
        if type(account) is not int:
            raise TypeError("account must be an int")
        return self._accounts.lists[account].n if 0 <= account < self._accounts.length else 0

    def orders_of(self, account):
        """``account``'s resting orders as ``(order_id, side, price_ticks, remaining_lots)``,
        by order id (see the twin): its own ids, not a scan of the book."""
        if type(account) is not int:
            raise TypeError("account must be an int")
        cdef list out = []
        if not 0 <= account < self._accounts.length:
            return out
        self._accounts.compact(self.book, account, out)   # compacts as it reads
        out.sort()
        return out

    cdef inline bint _hold_of(self, int64_t side, int64_t price, int64_t qty,
                              int64_t* out) noexcept:
        """``hold_needed`` in int64; False when it would pass INT64_MAX."""
        cdef int64_t notional
        if side == SELL:
            return not solvent_mul3(qty, self.lot_minor, 1, out)
        if solvent_mul3(price, qty, self.npt, &notional):
            return False
        return not solvent_add(notional, solvent_fee(notional, self.max_fee_ppm), out)

    # -- the commands --------------------------------------------------------------------

    def submit(self, rows, Py_ssize_t start, int64_t live_code, int64_t owner,
               int64_t first_order_id):
        """Run ``rows[start:]`` up to the first row of another market (see the twin)."""
        cdef bint is_list = type(rows) is list
        if not is_list and type(rows) is not tuple:
            rows = list(rows)
            is_list = True
        cdef Py_ssize_t n = PyList_GET_SIZE(rows) if is_list else PyTuple_GET_SIZE(rows)
        cdef Py_ssize_t end = start
        cdef Py_ssize_t limit = n if n < start + MAX_ROWS else start + MAX_ROWS
        cdef object item, v
        cdef Py_ssize_t k, size
        cdef int64_t* dst
        cdef bint good
        cdef int64_t m = 0
        if start < 0:
            raise ValueError("start must be >= 0")
        self._ins.length = 0
        self._ins.reserve((limit - start if limit > start else 0) * IN)
        while end < limit:
            item = <object>(PyList_GET_ITEM(rows, end) if is_list else PyTuple_GET_ITEM(rows, end))
            dst = self._ins.data + self._ins.length
            good = False
            size = -1
            if type(item) is tuple:
                size = PyTuple_GET_SIZE(item)
            elif type(item) is list:
                size = PyList_GET_SIZE(item)
            if size == IN:
                v = item[1]
                if PyLong_CheckExact(v) and not (_int64_of(v, &m) and m == self.market):
                    break                      # the next market's rows
                good = True
                for k in range(IN):
                    v = item[k]
                    if not _int64_of(v, &dst[k]):
                        good = False
                        break
            if not good:
                dst[0] = -1
                dst[1] = self.market
                for k in range(2, IN):
                    dst[k] = 0
            self._ins.length += IN
            end += 1
        next_id = self._run(self._ins.data, end - start, live_code, owner, first_order_id)
        return end - start, next_id, self._ins.take(), self._outs.take(), self._evs.take()

    def replay(self, const unsigned char[::1] ops, int64_t live_code, int64_t owner,
               int64_t first_order_id):
        """Run journaled input rows again: ``(next order id, result rows, event rows)``."""
        cdef Py_ssize_t nbytes = ops.shape[0]
        if nbytes % (8 * IN) or nbytes > 8 * IN * MAX_ROWS:
            raise ValueError("input rows: not a whole number of rows, or too many")
        self._ins.length = 0
        self._ins.reserve(nbytes // 8)
        if nbytes:
            memcpy(self._ins.data, &ops[0], nbytes)
        next_id = self._run(self._ins.data, nbytes // (8 * IN), live_code, owner,
                            first_order_id)
        self._ins.length = 0
        return next_id, self._outs.take(), self._evs.take()

    cdef int64_t _run(self, const int64_t* ins, Py_ssize_t n, int64_t live_code, int64_t owner,
                      int64_t next_id) except -1:
        if not 1 <= next_id <= MAX_FIRST_ORDER_ID:
            raise ValueError("first_order_id out of range")
        cdef Py_ssize_t i
        cdef const int64_t* r
        cdef int64_t* out
        cdef int64_t op
        self._outs.length = 0
        self._evs.length = 0
        self._outs.reserve(n * OUT)
        for i in range(n):
            r = ins + i * IN
            out = self._outs.data + i * OUT
            out[0] = out[1] = out[2] = out[3] = out[4] = out[5] = 0
            op = r[0]
            if op == OP_LIMIT or op == OP_MARKET:
                self._place(i, next_id, r, live_code, owner, out)
                if out[0] == OK:
                    next_id += 1
            elif op == OP_CANCEL:
                self._cancel(r, owner, out)
            elif op == OP_AMEND:
                self._amend(r, live_code, owner, out)
            else:
                out[0] = INVALID_ARGUMENT
        self._outs.length = n * OUT
        return next_id

    cdef int _account_code(self, int64_t acct, int64_t owner) noexcept:
        if acct < 0 or acct >= self.core._n_accounts:
            return UNKNOWN_ACCOUNT
        if self.core._kinds[acct] == KIND_WALLET:
            return INVALID_ARGUMENT
        if owner >= 0 and acct != owner:
            return PERMISSION_DENIED
        return OK

    cdef int _place(self, Py_ssize_t row, int64_t order_id, const int64_t* r, int64_t live_code,
                    int64_t owner, int64_t* out) except -1:
        cdef int64_t op = r[0], oid = r[2], acct = r[3], side = r[4], price = r[5], qty = r[6]
        cdef int64_t quote = r[7], flags = r[8]
        cdef int64_t tif = flags & FLAG_TIF_MASK
        cdef bint post = (flags & FLAG_POST_ONLY) != 0
        cdef int64_t stp = flags >> FLAG_STP_SHIFT
        if oid != 0 or flags & ~(<int64_t>FLAGS_ALL) or (side != BUY and side != SELL) or tif > FOK:
            out[0] = INVALID_ARGUMENT
            return 0
        cdef bint is_market = op == OP_MARKET
        if is_market:
            if tif == GTC or post or price != 0:
                out[0] = INVALID_ARGUMENT
                return 0
            if (side == SELL and quote != 0) or (side == BUY and (qty != 0 or tif != IOC)):
                out[0] = INVALID_ARGUMENT
                return 0
        elif quote != 0 or (post and tif != GTC):
            out[0] = INVALID_ARGUMENT
            return 0
        cdef int code = self._account_code(acct, owner)
        if code:
            out[0] = code
            return 0
        if self.halted:
            out[0] = MARKET_HALTED
            return 0
        if live_code:
            out[0] = live_code
            return 0
        cdef bint banded = self.reference_ticks != 0
        cdef int64_t kernel_budget = 0
        cdef int64_t notional = 0, hold = 0, value = 0
        cdef bint too_big = False
        if not is_market:
            if not (1 <= price <= MAX_PRICE_TICKS and 1 <= qty <= MAX_QTY_LOTS):
                out[0] = INVALID_AMOUNT
                return 0
            if banded and not self.band_low <= price <= self.band_high:
                out[0] = PRICE_OUTSIDE_BAND
                return 0
            too_big = solvent_mul3(price, qty, self.npt, &notional) or not self._hold_of(
                side, price, qty, &hold)
        elif side == SELL:
            if not 1 <= qty <= MAX_QTY_LOTS:
                out[0] = INVALID_AMOUNT
                return 0
            value = self.reference_ticks
            if value == 0 and self.book._best[BUY] >= 0:
                value = self.book._lvl[self.book._best[BUY]].price
            too_big = solvent_mul3(qty, self.lot_minor, 1, &hold) or solvent_mul3(
                qty, value, self.npt, &notional)
            if banded:
                is_market = False
                price = self.band_low
        else:
            if not 1 <= quote:
                out[0] = INVALID_AMOUNT
                return 0
            hold = notional = quote
            kernel_budget = solvent_kernel_budget(quote, self.taker_fee_ppm, self.npt)
            if banded:
                is_market = False
                price = self.band_high
                qty = kernel_budget // price
                kernel_budget = 0
                if qty == 0:
                    out[0] = BELOW_MIN_NOTIONAL
                    return 0
                if qty > MAX_QTY_LOTS:
                    out[0] = INVALID_AMOUNT
                    return 0
            elif kernel_budget == 0:
                out[0] = BELOW_MIN_NOTIONAL
                return 0
        if too_big:
            out[0] = INVALID_AMOUNT
            return 0
        if notional and notional < self.min_notional_minor:
            out[0] = BELOW_MIN_NOTIONAL
            return 0
        cdef bint may_rest = not is_market and tif == GTC
        if may_rest and self._accounts.open_of(acct) >= self.max_open_per_account:
            out[0] = LIMIT_EXCEEDED
            return 0
        if may_rest:
            self._accounts.reserve(self.book, acct)
        cdef int64_t hold_asset = self.quote if side == BUY else self.base
        code = self.core._hold(acct, hold_asset, hold)
        if code:
            out[0] = ACCOUNT_FROZEN if code == CORE_ACCOUNT_FROZEN else INSUFFICIENT_FUNDS
            return 0
        cdef OrderBook book = self.book
        book._ev_len = 0
        book._row = row
        code = book._submit(order_id, acct, side, price, qty, MARKET if is_market else LIMIT,
                            tif, post, stp, kernel_budget)
        if code:
            self._release(acct, hold_asset, hold)
            out[0] = (POST_ONLY_WOULD_TAKE if code == BK_POST_ONLY_WOULD_TAKE else
                      FOK_UNFILLABLE if code == BK_FOK_UNFILLABLE else
                      LIMIT_EXCEEDED if code == BK_BOOK_FULL else INVALID_ARGUMENT)
            return 0
        cdef int64_t held = hold
        cdef int64_t status = 0, filled = 0, remaining = 0, keep = 0
        cdef Py_ssize_t e
        cdef int64_t* ev
        cdef int64_t kind
        cdef int64_t fees[3]
        if self._fault_rows >= 0:
            if self._fault_rows == 0:
                self._fault_rows = -1
                raise MemoryError("engine buffer (a fault injected by a test)")
            self._fault_rows -= 1
        self._evs.reserve(book._ev_len // REC * EVF)
        for e in range(0, book._ev_len, REC):
            ev = book._ev + e      # row, kind, order id, maker id, maker account, price, qty, rem
            kind = ev[1]
            if kind == EV_FILL:
                self._settle(acct, side, ev[4], ev[5], ev[6], ev[7], fees)
                held -= fees[2]
                self._event(row, kind, ev, ev[7], fees[0], fees[1])
            elif kind == EV_MAKER_EXPIRED:
                self._hold_of(1 - side, ev[5], ev[6], &keep)
                self._release(ev[4], self.base if side == BUY else self.quote, keep)
                self._accounts.ended(ev[4])
                self._event(row, kind, ev, 0, 0, 0)
            else:
                status = kind
                filled = ev[6]
                remaining = ev[7]
        book._ev_len = 0
        if status == EV_RESTING:
            self._hold_of(side, price, remaining, &keep)
            if held < keep:
                raise AssertionError("a resting order holds less than it needs")
            held -= keep
            self._accounts.rested(acct, order_id)
        self._release(acct, hold_asset, held)
        out[0] = OK
        out[1] = order_id
        out[2] = status
        out[3] = filled
        out[4] = remaining
        out[5] = hold
        return 0

    cdef inline void _event(self, Py_ssize_t row, int64_t kind, const int64_t* ev,
                            int64_t maker_remaining, int64_t maker_fee,
                            int64_t taker_fee) noexcept:
        """Append one event row (room was reserved): row, kind, maker order id, maker
        account, price, qty, maker remaining, maker fee, taker fee."""
        cdef int64_t* w = self._evs.data + self._evs.length
        w[0] = row
        w[1] = kind
        w[2] = ev[3]
        w[3] = ev[4]
        w[4] = ev[5]
        w[5] = ev[6]
        w[6] = maker_remaining
        w[7] = maker_fee
        w[8] = taker_fee
        self._evs.length += EVF

    cdef int _settle(self, int64_t taker, int64_t side, int64_t maker, int64_t price,
                     int64_t qty, int64_t maker_remaining, int64_t* fees) except -1:
        """Settle one fill; fees[0..2] = maker fee, taker fee, what it spent of the taker's
        hold. The amounts fit: the maker's or taker's hold covered them at placement."""
        cdef BalanceTable core = self.core
        cdef int64_t notional = price * qty * self.npt
        cdef int64_t base_amt = qty * self.lot_minor
        cdef int64_t maker_fee = solvent_fee(notional, self.maker_fee_ppm)
        cdef int64_t taker_fee = solvent_fee(notional, self.taker_fee_ppm)
        cdef int64_t buyer, seller, buyer_fee, seller_fee, before, after
        if side == BUY:
            buyer, seller, buyer_fee, seller_fee = taker, maker, taker_fee, maker_fee
        else:
            buyer, seller, buyer_fee, seller_fee = maker, taker, maker_fee, taker_fee
        if buyer == seller:
            self._release(seller, self.base, base_amt)
            self._release(buyer, self.quote, notional - seller_fee)
        else:
            self._ok(core._post_held(seller, buyer, self.base, base_amt))
            if notional > seller_fee:
                self._ok(core._post_held(buyer, seller, self.quote, notional - seller_fee))
        if buyer == self.fee_account:
            self._release(buyer, self.quote, buyer_fee + seller_fee)
        elif buyer_fee + seller_fee:
            self._ok(core._post_held(buyer, self.fee_account, self.quote,
                                     buyer_fee + seller_fee))
        if side == SELL:
            self._hold_of(BUY, price, maker_remaining + qty, &before)
            self._hold_of(BUY, price, maker_remaining, &after)
            before = before - after - notional - maker_fee
            if before < 0:
                raise AssertionError("a resting buy held less than its fill")
            self._release(maker, self.quote, before)
        if maker_remaining == 0:
            self._accounts.ended(maker)
        fees[0] = maker_fee
        fees[1] = taker_fee
        fees[2] = notional + taker_fee if side == BUY else base_amt
        return 0

    cdef int _resting(self, int64_t oid, int64_t owner, int64_t* o) noexcept:
        """The resting order ``oid`` as (account, side, price, remaining) in ``o``; the
        code refusing a cancel or amend of it by ``owner`` (UNKNOWN_ORDER,
        PERMISSION_DENIED), else OK."""
        cdef OrderBook book = self.book
        cdef int32_t oi = book._find(oid)
        if oi < 0:
            return UNKNOWN_ORDER
        o[0] = book._ord[oi].account
        o[1] = book._lvl[book._ord[oi].level].side
        o[2] = book._lvl[book._ord[oi].level].price
        o[3] = book._ord[oi].qty
        if owner >= 0 and o[0] != owner:
            return PERMISSION_DENIED
        return OK

    cdef int _cancel(self, const int64_t* r, int64_t owner, int64_t* out) except -1:
        cdef int64_t oid = r[2]
        if r[3] or r[4] or r[5] or r[6] or r[7] or r[8]:
            out[0] = INVALID_ARGUMENT
            return 0
        cdef OrderBook book = self.book
        cdef int64_t o[4]          # account, side, price, remaining
        out[0] = self._resting(oid, owner, o)
        if out[0]:
            return 0
        cdef int64_t account = o[0], o_side = o[1], o_price = o[2]
        book._ev_len = 0
        if book._cancel(oid) != BK_OK:
            raise AssertionError("cancel of a found order refused")
        cdef int64_t removed = book._ev[6]
        book._ev_len = 0
        cdef int64_t released = 0
        self._hold_of(o_side, o_price, removed, &released)
        self._release(account, self.quote if o_side == BUY else self.base, released)
        self._accounts.ended(account)
        out[0] = OK
        out[1] = oid
        out[2] = EV_CANCELED
        out[4] = removed
        out[5] = released
        return 0

    cdef int _amend(self, const int64_t* r, int64_t live_code, int64_t owner,
                    int64_t* out) except -1:
        cdef int64_t oid = r[2], price = r[5], qty = r[6]
        if r[3] or r[4] or r[7] or r[8] or (price == 0 and qty == 0):
            out[0] = INVALID_ARGUMENT
            return 0
        if not (0 <= price <= MAX_PRICE_TICKS and 0 <= qty <= MAX_QTY_LOTS):
            out[0] = INVALID_AMOUNT
            return 0
        cdef OrderBook book = self.book
        cdef int64_t o[4]          # account, side, price, remaining
        out[0] = self._resting(oid, owner, o)
        if out[0]:
            return 0
        cdef int64_t account = o[0], o_side = o[1], o_price = o[2], o_rem = o[3]
        if self.halted:
            out[0] = MARKET_HALTED
            return 0
        cdef int64_t new_price = price if price else o_price
        cdef int64_t new_qty = qty if qty else o_rem
        if (new_price != o_price and self.reference_ticks
                and not self.band_low <= new_price <= self.band_high):
            out[0] = PRICE_OUTSIDE_BAND
            return 0
        if live_code and (new_qty > o_rem or new_price != o_price):
            out[0] = live_code
            return 0
        cdef int64_t need = 0, old = 0, notional = 0
        if not self._hold_of(o_side, new_price, new_qty, &need) or solvent_mul3(
                new_price, new_qty, self.npt, &notional):
            out[0] = INVALID_AMOUNT
            return 0
        if notional < self.min_notional_minor:   # as a new order would be
            out[0] = BELOW_MIN_NOTIONAL
            return 0
        self._hold_of(o_side, o_price, o_rem, &old)
        cdef int64_t delta = need - old
        cdef int64_t asset = self.quote if o_side == BUY else self.base
        cdef int code
        if delta > 0:
            code = self.core._hold(account, asset, delta)
            if code:
                out[0] = ACCOUNT_FROZEN if code == CORE_ACCOUNT_FROZEN else INSUFFICIENT_FUNDS
                return 0
        book._ev_len = 0
        code = book._amend(oid, new_qty, new_price)
        book._ev_len = 0
        if code:
            if delta > 0:
                self._release(account, asset, delta)
            out[0] = AMEND_WOULD_CROSS if code == BK_AMEND_WOULD_CROSS else INVALID_ARGUMENT
            return 0
        if delta < 0:
            self._release(account, asset, -delta)
        out[0] = OK
        out[1] = oid
        out[2] = EV_AMENDED
        out[4] = new_qty
        out[5] = delta
        return 0

    cdef inline int _release(self, int64_t account, int64_t asset, int64_t amount) except -1:
        if amount:
            self._ok(self.core._release(account, asset, amount))
        return 0

    cdef inline int _ok(self, int code) except -1:
        if code != CORE_OK:
            raise AssertionError(f"settlement refused: {cc.CODE_NAMES[code]}")
        return 0

    # -- state ---------------------------------------------------------------------------

    def export_state(self):
        """The book (queue order included); everything else is derived from it."""
        return self.book.export_state()
