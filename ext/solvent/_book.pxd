# The C-level declarations of ``solvent._book`` (ext/_book.pyx), so that the market
# engine (ext/_engine.pyx) can run the kernel's commands without Python calls. The
# definitions and their documentation are in _book.pyx.
cimport cython
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t

# Order: 32 bytes, so that with the pool 64-byte aligned an order never straddles two
# cache lines (at 1M resting orders a cancel costs its cache misses) and two consecutive
# ids share one. ``qty`` and ``level`` share one 64-bit word as bit fields: qty <=
# MAX_QTY_LOTS = 10**12 < 2**40 (41 bits, signed: reads are plain int64 arithmetic) and
# level < MAX_ORDERS_LIMIT = 2**23 (there are never more levels than resting orders; 23
# bits, reads are non-negative ints). Cython reads and writes them like the plain fields
# declared here (never take their address). A free slot has qty 0 (a resting order has
# qty >= 1); its level means nothing.
cdef extern from *:
    """
    #include <stdint.h>
    typedef struct {
        int64_t order_id;
        int64_t account;
        int64_t qty : 41;       /* remaining lots */
        uint64_t level : 23;    /* index of its level */
        int32_t prev;
        int32_t next;
    } solvent_Order;
    _Static_assert(sizeof(solvent_Order) == 32, "solvent_Order must be 32 bytes");
    """
    ctypedef struct Order "solvent_Order":
        int64_t order_id
        int64_t qty             # remaining lots; 0 when the slot is free
        int64_t account
        int32_t level           # index of its level (resting orders only)
        int32_t prev            # FIFO within the level
        int32_t next            # FIFO within the level; the free list when free

ctypedef struct Level:
    int64_t key             # price (asks) or -price (bids): ascending key = better price
    int64_t price
    int64_t total           # sum of the orders' qty
    int32_t count
    int32_t head            # first order in (oldest)
    int32_t tail
    int32_t prev            # better level of the side; -1 for the best
    int32_t next            # worse level; also the free list when free
    int32_t left            # treap
    int32_t right
    int32_t parent          # treap; -1 for the root
    uint32_t prio
    int32_t side

ctypedef struct Slot:
    int64_t key             # 0 = empty slot
    int32_t val
    int32_t pad_

ctypedef struct Table:
    Slot* slots             # key and value side by side: one cache line per probe
    Py_ssize_t cap          # a power of two
    Py_ssize_t count

ctypedef struct IdSlot:
    uint32_t tag            # low 32 bits of the order id's hash; its home slot is tag & (cap - 1)
    int32_t oi              # the order's index in the pool; -1 = empty slot

ctypedef struct IdTable:
    IdSlot* slots           # 8 bytes a slot: the key is the order's own order_id
    Py_ssize_t cap          # a power of two
    Py_ssize_t count


@cython.final
cdef class OrderBook:
    cdef Order* _ord                 # [0, _home_cap): home slots; then the overflow region
    cdef Py_ssize_t _ord_cap         # slots in all (home + overflow)
    cdef Py_ssize_t _ord_hw          # _home_cap + overflow slots ever used (the rest is untouched)
    cdef int32_t _ord_free           # free list of the overflow region
    cdef Py_ssize_t _home_cap        # a power of two; order id x's home slot is _home(x, _home_cap)
    cdef Py_ssize_t _home_max        # the power of two >= max_orders
    cdef uint8_t* _ovf               # per home slot: orders of that home in the overflow region
    cdef Level* _lvl
    cdef Py_ssize_t _lvl_cap
    cdef Py_ssize_t _lvl_hw
    cdef int32_t _lvl_free
    cdef IdTable _ids                # order id -> order, for the orders in the overflow region
    cdef Table _prices               # signed price key -> level
    cdef int32_t _best[2]            # best level per side (head of the sorted list)
    cdef int32_t _root[2]            # treap root per side
    cdef Py_ssize_t _nlev[2]
    cdef Py_ssize_t _n               # resting orders
    cdef Py_ssize_t _max_orders
    cdef uint32_t _rng
    cdef int64_t* _ev                # event records, REC int64s each: the book's own buffer,
    cdef Py_ssize_t _ev_len          # or in process_many the caller's array past its items
    cdef Py_ssize_t _ev_cap          # int64s used / room for
    cdef object _ev_arr              # that array while process_many writes into it, else None
    cdef Py_ssize_t _ev_base         # its items before the call
    cdef int64_t _hint_r             # process_many's prefetch hints: rows into the epoch
    cdef int64_t _hint_len           # rows of the epoch: HINT_EPOCH or 4 times that
    cdef bint _hint_off              # the epoch's trial found the rows faster without hints
    cdef int64_t _row                # row index written into event records

    cdef inline int _reserve(self) except -1
    cdef int _grow_for_order(self) except -1
    cdef inline int _reserve_levels(self) except -1
    cdef int _grow_for_level(self) except -1
    cdef int _grow_home(self, Py_ssize_t cap) except -1
    cdef int _ev_grow(self) except -1
    cdef inline int _emit(self, int64_t kind, int64_t a, int64_t b, int64_t acct, int64_t price,
                   int64_t qty, int64_t rem) except -1
    cdef int32_t _level_for(self, int64_t side, int64_t price) noexcept
    cdef void _level_drop(self, int32_t li) noexcept
    cdef inline void _append(self, int32_t oi, int32_t li) noexcept
    cdef inline void _unlink(self, int32_t oi) noexcept
    cdef int32_t _rest(self, int64_t order_id, int64_t account, int64_t side,
                       int64_t price, int64_t qty) noexcept
    cdef void _remove(self, int32_t oi) noexcept
    cdef inline int32_t _find(self, int64_t order_id) noexcept
    cdef inline void _prefetch_price(self, int64_t side, int64_t price) noexcept
    cdef inline void _prefetch_row(self, int64_t op, int64_t order_id, int64_t qty, int64_t price,
                                   int stage) noexcept
    cdef int _check_order(self, int64_t order_id, int64_t account, int64_t side,
                          int64_t price, int64_t qty, int64_t kind, int64_t tif, bint post, int64_t stp, int64_t budget) noexcept
    cdef bint _fillable(self, int64_t side, bint has_limit, int64_t limit, int64_t qty,
                        int64_t account, int64_t stp) noexcept
    cdef int _submit(self, int64_t order_id, int64_t account, int64_t side, int64_t price,
                     int64_t qty, int64_t kind, int64_t tif, bint post, int64_t stp, int64_t budget) except -1
    cdef int _cancel(self, int64_t order_id) except -1
    cdef int _amend(self, int64_t order_id, int64_t qty, int64_t price) except -1
    cdef list _events(self)
    cdef list _top(self, int side, Py_ssize_t levels)
