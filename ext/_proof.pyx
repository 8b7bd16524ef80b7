# cython: language_level=3
"""The compiled helper of ``solvent.proof`` (``solvent._proof``): the tree build and
batch leaf keys in C, with SHA-256 and HMAC-SHA256 from OpenSSL's libcrypto.

``solvent/proof.py`` is the specification: ``build_levels`` here is its
``_build_levels_py`` (same checks in the same order, same result codes, same
bytes out) and ``leaf_keys`` is its Python loop over ``account_nonce`` and
``leaf_key``. The tests hold both to identical output. The tags and the
padding hash come in as arguments, so the format's constants live in
``proof.py`` only.

Hashing runs without the GIL. SHA-256 uses one ``EVP_MD`` fetched at import and
one reused ``EVP_MD_CTX`` (``EVP_DigestInit_ex2``): OpenSSL picks the SHA-NI or
AVX2 code path of the CPU.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.unicode cimport PyUnicode_GET_LENGTH
from libc.stdlib cimport free, malloc, qsort
from libc.string cimport memcmp, memcpy, memset

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL

cdef extern from *:
    """
    #include <openssl/evp.h>
    #include <string.h>
    #include <stdint.h>

    typedef struct { unsigned char key[32]; int64_t balance; } solvent_leaf;

    static int solvent_leaf_cmp(const void *a, const void *b) {
        return memcmp(((const solvent_leaf *)a)->key, ((const solvent_leaf *)b)->key, 32);
    }
    static inline void solvent_put_u64(unsigned char *p, uint64_t v) {
        v = __builtin_bswap64(v);
        memcpy(p, &v, 8);
    }
    static inline uint64_t solvent_get_u64(const unsigned char *p) {
        uint64_t v;
        memcpy(&v, p, 8);
        return __builtin_bswap64(v);
    }
    """
    ctypedef struct solvent_leaf:
        unsigned char key[32]
        long long balance
    int solvent_leaf_cmp(const void* a, const void* b) noexcept nogil
    void solvent_put_u64(unsigned char* p, unsigned long long v) noexcept nogil
    unsigned long long solvent_get_u64(const unsigned char* p) noexcept nogil

    ctypedef struct EVP_MD_CTX:
        pass
    ctypedef struct EVP_MD:
        pass
    EVP_MD_CTX* EVP_MD_CTX_new() nogil
    void EVP_MD_CTX_free(EVP_MD_CTX* ctx) nogil
    int EVP_MD_CTX_copy_ex(EVP_MD_CTX* out, const EVP_MD_CTX* inp) nogil
    EVP_MD* EVP_MD_fetch(void* libctx, const char* algorithm, const char* properties) nogil
    int EVP_DigestInit_ex2(EVP_MD_CTX* ctx, const EVP_MD* md, void* params) nogil
    int EVP_DigestUpdate(EVP_MD_CTX* ctx, const void* d, size_t n) nogil
    int EVP_DigestFinal_ex(EVP_MD_CTX* ctx, unsigned char* md, unsigned int* n) nogil

cdef enum:
    HASH = 32
    ENTRY = 40  # hash || u64(sum)
    MAX_TAG = 64
    BLOCK = 64  # SHA-256 block size (HMAC key padding)
    MAX_ID_BYTES = 4 * 256

# Result codes: solvent.proof's _OK, _BAD_LEAF, ... (same values, same order of checks).
cdef enum:
    OK = 0
    BAD_LEAF = 1
    BAD_KEY = 2
    BAD_BALANCE_TYPE = 3
    BALANCE_RANGE = 4
    TOTAL_OVERFLOW = 5
    DUPLICATE_KEY = 6

cdef long long INT64_MAX_ = 9223372036854775807

cdef EVP_MD* SHA256_MD = EVP_MD_fetch(NULL, b"SHA256", NULL)
if SHA256_MD == NULL:
    raise ImportError("OpenSSL has no SHA256 digest")


cdef inline int sha256(EVP_MD_CTX* ctx, const unsigned char* data, size_t n,
                       unsigned char* out) noexcept nogil:
    cdef unsigned int size
    if EVP_DigestInit_ex2(ctx, SHA256_MD, NULL) != 1:
        return 1
    if EVP_DigestUpdate(ctx, data, n) != 1:
        return 1
    if EVP_DigestFinal_ex(ctx, out, &size) != 1:
        return 1
    return 0


cdef EVP_MD_CTX* new_ctx() except NULL:
    cdef EVP_MD_CTX* ctx = EVP_MD_CTX_new()
    if ctx == NULL:
        raise MemoryError()
    return ctx


cdef bytes new_bytes(Py_ssize_t size):
    return PyBytes_FromStringAndSize(NULL, size)


cdef int hash_level_leaves(EVP_MD_CTX* ctx, const solvent_leaf* leaves, Py_ssize_t n,
                           const unsigned char* tag, Py_ssize_t tag_len,
                           unsigned char* out) noexcept nogil:
    """out[40 i] = SHA-256(tag || key || u64(balance)) || u64(balance)"""
    cdef unsigned char buf[MAX_TAG + HASH + 8]
    cdef Py_ssize_t i
    cdef int failed = 0
    memcpy(buf, tag, tag_len)
    for i in range(n):
        memcpy(buf + tag_len, leaves[i].key, HASH)
        solvent_put_u64(buf + tag_len + HASH, <unsigned long long>leaves[i].balance)
        failed |= sha256(ctx, buf, tag_len + HASH + 8, out + ENTRY * i)
        memcpy(out + ENTRY * i + HASH, buf + tag_len + HASH, 8)
    return failed


cdef int hash_level_nodes(EVP_MD_CTX* ctx, const unsigned char* prev, Py_ssize_t pairs,
                          const unsigned char* tag, Py_ssize_t tag_len,
                          unsigned char* out) noexcept nogil:
    """out[40 j] = SHA-256(tag || prev[80 j .. 80 j + 80]) || u64(left_sum + right_sum)"""
    cdef unsigned char buf[MAX_TAG + 2 * ENTRY]
    cdef Py_ssize_t j
    cdef int failed = 0
    cdef const unsigned char* pair
    memcpy(buf, tag, tag_len)
    for j in range(pairs):
        pair = prev + 2 * ENTRY * j
        memcpy(buf + tag_len, pair, 2 * ENTRY)
        failed |= sha256(ctx, buf, tag_len + 2 * ENTRY, out + ENTRY * j)
        # both sums <= the checked total <= INT64_MAX: no overflow
        solvent_put_u64(out + ENTRY * j + HASH,
                        solvent_get_u64(pair + HASH) + solvent_get_u64(pair + ENTRY + HASH))
    return failed


def build_levels(object leaves, bytes leaf_tag, bytes node_tag, bytes pad_hash):
    """``solvent.proof._build_levels_py`` in C: ``(code, index, keys, levels)``."""
    cdef list items = leaves if type(leaves) is list else list(leaves)
    cdef Py_ssize_t n = len(items)
    cdef Py_ssize_t i, m, padded, pairs
    cdef object item, k, b
    cdef long long v
    cdef int of, failed = 0
    cdef unsigned long long total = 0
    cdef bint overflow = False
    cdef solvent_leaf* arr
    cdef unsigned char* out
    cdef const unsigned char* prev
    cdef EVP_MD_CTX* ctx
    cdef bytes keys, level, pad_entry
    cdef list levels
    cdef const unsigned char* ltag = <const unsigned char*>PyBytes_AS_STRING(leaf_tag)
    cdef const unsigned char* ntag = <const unsigned char*>PyBytes_AS_STRING(node_tag)
    cdef Py_ssize_t ltag_len = PyBytes_GET_SIZE(leaf_tag), ntag_len = PyBytes_GET_SIZE(node_tag)
    if ltag_len > MAX_TAG or ntag_len > MAX_TAG or PyBytes_GET_SIZE(pad_hash) != HASH:
        raise ValueError("tags of at most 64 bytes and a 32-byte padding hash expected")
    pad_entry = pad_hash + bytes(8)
    if n == 0:
        return OK, 0, b"", [pad_entry]
    arr = <solvent_leaf*>malloc(n * sizeof(solvent_leaf))
    if arr == NULL:
        raise MemoryError()
    ctx = NULL
    try:
        for i in range(n):
            item = items[i]
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                return BAD_LEAF, i, b"", []
            k = item[0]
            b = item[1]
            if not isinstance(k, bytes) or PyBytes_GET_SIZE(k) != HASH:
                return BAD_KEY, i, b"", []
            if not isinstance(b, int) or isinstance(b, bool):
                return BAD_BALANCE_TYPE, i, b"", []
            of = 0
            v = PyLong_AsLongLongAndOverflow(b, &of)
            if of != 0 or v < 0:
                return BALANCE_RANGE, i, b"", []
            memcpy(arr[i].key, PyBytes_AS_STRING(k), HASH)
            arr[i].balance = v
            total += <unsigned long long>v  # each <= INT64_MAX: a flagged sum never wraps
            if total > <unsigned long long>INT64_MAX_:
                overflow = True
                total = 0
        if overflow:
            return TOTAL_OVERFLOW, -1, b"", []
        with nogil:
            qsort(arr, n, sizeof(solvent_leaf), solvent_leaf_cmp)
        for i in range(n - 1):
            if memcmp(arr[i].key, arr[i + 1].key, HASH) == 0:
                return DUPLICATE_KEY, -1, PyBytes_FromStringAndSize(<char*>arr[i].key, HASH), []
        keys = new_bytes(HASH * n)
        out = <unsigned char*>PyBytes_AS_STRING(keys)
        for i in range(n):
            memcpy(out + HASH * i, arr[i].key, HASH)
        ctx = new_ctx()
        m = n
        padded = m + 1 if m > 1 and m & 1 else m
        level = new_bytes(ENTRY * padded)
        out = <unsigned char*>PyBytes_AS_STRING(level)
        with nogil:
            failed |= hash_level_leaves(ctx, arr, n, ltag, ltag_len, out)
        if padded != m:
            memcpy(out + ENTRY * m, PyBytes_AS_STRING(pad_entry), ENTRY)
        levels = [level]
        while padded > 1:
            prev = <const unsigned char*>PyBytes_AS_STRING(level)
            pairs = padded // 2
            m = pairs
            padded = m + 1 if m > 1 and m & 1 else m
            level = new_bytes(ENTRY * padded)
            out = <unsigned char*>PyBytes_AS_STRING(level)
            with nogil:
                failed |= hash_level_nodes(ctx, prev, pairs, ntag, ntag_len, out)
            if padded != m:
                memcpy(out + ENTRY * m, PyBytes_AS_STRING(pad_entry), ENTRY)
            levels.append(level)
        if failed:
            raise RuntimeError("OpenSSL SHA-256 failed")
        return OK, 0, keys, levels
    finally:
        free(arr)
        if ctx != NULL:
            EVP_MD_CTX_free(ctx)


def leaf_keys(bytes secret_key, list account_ids, bytes nonce_tag, bytes key_tag,
              Py_ssize_t max_chars):
    """``(bad_index, keys)``: ``keys[i] = leaf_key(id, account_nonce(secret_key, id))``
    for every id, or ``bad_index`` >= 0, the first id that is not a str of
    1..``max_chars`` characters encodable as UTF-8 (then ``keys`` is empty)."""
    cdef Py_ssize_t n = len(account_ids), i, size, j
    cdef Py_ssize_t ntag_len = PyBytes_GET_SIZE(nonce_tag), ktag_len = PyBytes_GET_SIZE(key_tag)
    cdef unsigned char block[BLOCK]
    cdef unsigned char pad[BLOCK]
    cdef unsigned char inner[HASH]
    cdef unsigned char nonce[HASH]
    cdef unsigned char buf[MAX_TAG + 2 + MAX_ID_BYTES + HASH]
    cdef unsigned int outlen
    cdef const char* raw
    cdef int failed = 0
    cdef object account
    cdef list out = []
    cdef bytes key
    cdef EVP_MD_CTX* ictx = NULL
    cdef EVP_MD_CTX* octx = NULL
    cdef EVP_MD_CTX* ctx = NULL
    if ntag_len > MAX_TAG or ktag_len > MAX_TAG or max_chars > 256:
        raise ValueError("tags of at most 64 bytes and ids of at most 256 characters expected")
    for i in range(n):  # check every id first (the Python twin raises for the first bad one)
        account = account_ids[i]
        if not isinstance(account, str) or not 0 < PyUnicode_GET_LENGTH(account) <= max_chars:
            return i, []
        try:
            PyUnicode_AsUTF8AndSize(account, &size)
        except UnicodeEncodeError:
            return i, []
    try:
        ictx = new_ctx()
        octx = new_ctx()
        ctx = new_ctx()
        # HMAC (RFC 2104): the key padded to one block (hashed first if longer)
        memset(block, 0, BLOCK)
        if PyBytes_GET_SIZE(secret_key) > BLOCK:
            failed |= sha256(ctx, <const unsigned char*>PyBytes_AS_STRING(secret_key),
                             PyBytes_GET_SIZE(secret_key), block)
        else:
            memcpy(block, PyBytes_AS_STRING(secret_key), PyBytes_GET_SIZE(secret_key))
        for j in range(BLOCK):
            pad[j] = block[j] ^ 0x36
        failed |= EVP_DigestInit_ex2(ictx, SHA256_MD, NULL) != 1
        failed |= EVP_DigestUpdate(ictx, pad, BLOCK) != 1
        for j in range(BLOCK):
            pad[j] = block[j] ^ 0x5c
        failed |= EVP_DigestInit_ex2(octx, SHA256_MD, NULL) != 1
        failed |= EVP_DigestUpdate(octx, pad, BLOCK) != 1
        memcpy(buf, PyBytes_AS_STRING(key_tag), ktag_len)
        for i in range(n):
            raw = PyUnicode_AsUTF8AndSize(account_ids[i], &size)
            # nonce = HMAC(secret_key, nonce_tag || id)
            failed |= EVP_MD_CTX_copy_ex(ctx, ictx) != 1
            failed |= EVP_DigestUpdate(ctx, PyBytes_AS_STRING(nonce_tag), ntag_len) != 1
            failed |= EVP_DigestUpdate(ctx, raw, size) != 1
            failed |= EVP_DigestFinal_ex(ctx, inner, &outlen) != 1
            failed |= EVP_MD_CTX_copy_ex(ctx, octx) != 1
            failed |= EVP_DigestUpdate(ctx, inner, HASH) != 1
            failed |= EVP_DigestFinal_ex(ctx, nonce, &outlen) != 1
            # leaf key = SHA-256(key_tag || u16(len(id)) || id || nonce)
            buf[ktag_len] = <unsigned char>(size >> 8)
            buf[ktag_len + 1] = <unsigned char>(size & 0xff)
            memcpy(buf + ktag_len + 2, raw, size)
            memcpy(buf + ktag_len + 2 + size, nonce, HASH)
            key = new_bytes(HASH)
            failed |= sha256(ctx, buf, ktag_len + 2 + size + HASH,
                             <unsigned char*>PyBytes_AS_STRING(key))
            out.append(key)
        if failed:
            raise RuntimeError("OpenSSL SHA-256 failed")
        return -1, out
    finally:
        memset(block, 0, BLOCK)
        memset(pad, 0, BLOCK)
        EVP_MD_CTX_free(ictx)
        EVP_MD_CTX_free(octx)
        EVP_MD_CTX_free(ctx)
