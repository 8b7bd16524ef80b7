# The C-level declarations of ``solvent._core`` (ext/_core.pyx), so that the market
# engine (ext/_engine.pyx) can hold, release and settle against the balance core
# without Python calls. The definitions and their documentation are in _core.pyx.
cimport cython
from libc.stdint cimport int32_t, int64_t, uint8_t

ctypedef struct AssetBook:
    int64_t* available      # indexed by account; beyond available_len reads as 0
    int64_t* held           # indexed by account; beyond held_len reads as 0
    Py_ssize_t available_len
    Py_ssize_t held_len
    int64_t totals[3]       # [customer_total, company_total, custody_total]
    int64_t cap             # the twin's _caps[asset]: see set_liability_cap


@cython.final
cdef class BalanceTable:
    cdef uint8_t* _kinds
    cdef int32_t* _wallet_assets
    cdef uint8_t* _frozen
    cdef Py_ssize_t _n_accounts
    cdef Py_ssize_t _accounts_cap
    cdef AssetBook* _books           # the twin's _available, _held and _totals
    cdef Py_ssize_t _n_assets
    cdef Py_ssize_t _assets_cap

    cdef int _grow_accounts(self) except -1
    cdef inline int _check_pair(self, int64_t debit, int64_t credit, int64_t asset,
                         int64_t amount) noexcept
    cdef inline int _post(self, int64_t debit, int64_t credit, int64_t asset, int64_t amount,
                   bint from_held) except -1
    cdef inline int _check_single(self, int64_t account, int64_t asset, int64_t amount) noexcept
    cdef int _hold(self, int64_t acct, int64_t a, int64_t am) except -1
    cdef int _release(self, int64_t acct, int64_t a, int64_t am) except -1
    cdef int _post_held(self, int64_t d, int64_t cr, int64_t a, int64_t am) except -1
    cdef inline int _post_many_item(self, int64_t debit, int64_t credit, int64_t asset,
                             int64_t amount) except -1
    cdef object _post_many_items(self, debit, credit, asset, amount, out)
