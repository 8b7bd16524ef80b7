# The C-level declarations of ``solvent._book`` (ext/_book.pyx), so that the market
# engine (ext/_engine.pyx) can run the kernel's commands without Python calls. The
# definitions and their documentation are in _book.pyx.
cimport cython
from libc.stdint cimport int32_t, int64_t, uint32_t

ctypedef struct Order:
    int64_t order_id
    int64_t qty             # remaining lots
    int64_t account
    int32_t level           # index of its level; -1 when the slot is free
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


@cython.final
cdef class OrderBook:
    cdef Order* _ord
    cdef Py_ssize_t _ord_cap
    cdef Py_ssize_t _ord_hw          # slots ever used (the rest of the pool is untouched)
    cdef int32_t _ord_free
    cdef Level* _lvl
    cdef Py_ssize_t _lvl_cap
    cdef Py_ssize_t _lvl_hw
    cdef int32_t _lvl_free
    cdef Table _ids                  # order id -> order
    cdef Table _prices               # signed price key -> level
    cdef int32_t _best[2]            # best level per side (head of the sorted list)
    cdef int32_t _root[2]            # treap root per side
    cdef Py_ssize_t _nlev[2]
    cdef Py_ssize_t _n               # resting orders
    cdef Py_ssize_t _max_orders
    cdef uint32_t _rng
    cdef int64_t* _ev                # event records, REC int64s each
    cdef Py_ssize_t _ev_len          # int64s used
    cdef Py_ssize_t _ev_cap
    cdef int64_t _row                # row index written into event records

    cdef int _reserve(self) except -1
    cdef int _emit(self, int64_t kind, int64_t a, int64_t b, int64_t acct, int64_t price,
                   int64_t qty, int64_t rem) except -1
    cdef int32_t _level_for(self, int64_t side, int64_t price) noexcept
    cdef void _level_drop(self, int32_t li) noexcept
    cdef void _append(self, int32_t oi, int32_t li) noexcept
    cdef void _unlink(self, int32_t oi) noexcept
    cdef int32_t _rest(self, int64_t order_id, int64_t account, int64_t side,
                       int64_t price, int64_t qty) noexcept
    cdef void _remove(self, int32_t oi) noexcept
    cdef int32_t _find(self, int64_t order_id) noexcept
    cdef void _prefetch_row(self, int64_t op, int64_t order_id, int stage) noexcept
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
