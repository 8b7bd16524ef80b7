"""Proof of liabilities (``solvent.proof``): the Merkle sum tree, inclusion proofs, attacks.

The tests rebuild the construction from its byte-level description
(``docs/proof-of-liabilities.md``) with ``hashlib`` alone (``ref_*`` below) and
use that independent builder to play a dishonest prover: Maxwell's attack
(each customer shown a different sum for their sibling), a node sum lowered
below its children's, a fake negative leaf, sums wrapping around 2**64. Every
such forgery must leave at least one honest customer whose proof fails.
Both builders (the compiled helper and the pure-Python twin) are run and held
to byte-identical trees.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import json
import pickle
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import solvent
from solvent import proof as P
from solvent.errors import BalanceOverflow, InvalidAmount, InvalidArgument
from solvent.proof import (
    InclusionProof,
    LeafNotFound,
    LiabilitiesRoot,
    ProofInvalid,
    ProofLeaf,
    ProofStep,
)

INT64_MAX = (1 << 63) - 1
SECRET = bytes(range(32))
ASSET = "BTC"
POSITION = 4242
HAVE_COMPILED = P.DEFAULT_IMPLEMENTATION == "compiled"
IMPLS = [
    pytest.param("compiled", marks=pytest.mark.skipif(not HAVE_COMPILED,
                                                       reason="solvent._proof is not built")),
    "python",
]
# 13 leaves: padding at level 0 (13 -> 14) and level 1 (7 -> 8); depth 4.
BALANCES = [5, 0, 17, 1_000, 3, 99, 0, 42, 7, 2**40, 11, 8, 123_456_789]


# -- an independent reference of the construction (hashlib only) ----------------------------

Node = tuple[bytes, int]
S = TypeVar("S", bound=msgspec.Struct)


def u64(x: int) -> bytes:
    return x.to_bytes(8, "big")


def ref_nonce(secret: bytes, account: str) -> bytes:
    return hmac.new(secret, b"solvent.pol.v1.nonce\x00" + account.encode(), "sha256").digest()


def ref_key(account: str, nonce: bytes) -> bytes:
    raw = account.encode()
    return hashlib.sha256(b"solvent.pol.v1.key\x00" + len(raw).to_bytes(2, "big") + raw
                          + nonce).digest()


def ref_leaf(key: bytes, balance: int) -> Node:
    return hashlib.sha256(b"solvent.pol.v1.leaf\x00" + key + u64(balance)).digest(), balance


def ref_node(left: Node, right: Node) -> Node:
    (lh, ls), (rh, rs) = left, right
    return (hashlib.sha256(b"solvent.pol.v1.node\x00" + lh + u64(ls) + rh + u64(rs)).digest(),
            ls + rs)


REF_PAD: Node = (hashlib.sha256(b"solvent.pol.v1.pad\x00").digest(), 0)


def ref_root_hash(asset: str, position: int, leaves: int, total: int, top: bytes) -> bytes:
    raw = asset.encode()
    return hashlib.sha256(b"solvent.pol.v1.root\x00" + len(raw).to_bytes(2, "big") + raw
                          + u64(position) + u64(leaves) + u64(total) + top).digest()


def ref_levels(leaf_nodes: list[Node],
               node: Callable[[Node, Node], Node] = ref_node) -> list[list[Node]]:
    """Levels from the leaves up; a level of odd length above one gets the padding node."""
    level = list(leaf_nodes)
    levels = [level]
    while len(level) > 1:
        if len(level) % 2:
            level.append(REF_PAD)
        level = [node(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def ref_path(levels: list[list[Node]], index: int) -> list[ProofStep]:
    path = []
    for level in levels[:-1]:
        h, s = level[index ^ 1]
        path.append(ProofStep(side="left" if index & 1 else "right", sibling_hash=h.hex(),
                              sibling_sum_minor=s))
        index >>= 1
    return path


def make_proof(key: bytes, balance: int, path: list[ProofStep], root: LiabilitiesRoot,
               account: str | None = None, nonce: bytes | None = None) -> InclusionProof:
    return InclusionProof(
        version=1, asset=root.asset, position=root.position,
        leaf=ProofLeaf(leaf_key=key.hex(), balance_minor=balance, account_id=account,
                       nonce=nonce.hex() if nonce else None),
        path=path, root=root)


def published(levels: list[list[Node]], leaves: int, total: int | None = None,
              asset: str = ASSET, position: int = POSITION) -> LiabilitiesRoot:
    top, top_sum = levels[-1][0]
    total = top_sum if total is None else total
    return LiabilitiesRoot(asset=asset, position=position, total_minor=total, leaves=leaves,
                           root_hash=ref_root_hash(asset, position, leaves, total, top).hex())


# -- fixtures ------------------------------------------------------------------------------


class Book:
    """A tree over ``balances`` with the customer secrets behind each leaf."""

    def __init__(self, balances: list[int], impl: str | None = None, asset: str = ASSET,
                 position: int = POSITION, prefix: str = "cust") -> None:
        self.ids = [f"{prefix}-{i}" for i in range(len(balances))]
        self.nonces = [P.account_nonce(SECRET, a) for a in self.ids]
        self.keys = [P.leaf_key(a, n) for a, n in zip(self.ids, self.nonces, strict=True)]
        self.balances = balances
        self.tree = P.build_tree(asset, position, list(zip(self.keys, balances, strict=True)),
                                 implementation=impl)
        self.root = self.tree.root

    def proof(self, i: int, secrets: bool = True) -> InclusionProof:
        if secrets:
            return self.tree.inclusion_proof(self.keys[i], account_id=self.ids[i],
                                             nonce=self.nonces[i])
        return self.tree.inclusion_proof(self.keys[i])

    def sorted_index(self, i: int) -> int:
        index = self.tree.index_of(self.keys[i])
        assert index is not None
        return index


@pytest.fixture(scope="module")
def book() -> Book:
    return Book(BALANCES)


def replace(obj: S, **changes: Any) -> S:
    return msgspec.structs.replace(obj, **changes)


def with_step(proof: InclusionProof, d: int, **changes: Any) -> InclusionProof:
    path = list(proof.path)
    path[d] = replace(path[d], **changes)
    return replace(proof, path=path)


def with_leaf(proof: InclusionProof, **changes: Any) -> InclusionProof:
    return replace(proof, leaf=replace(proof.leaf, **changes))


def flip_hex(h: str, bit: int = 0) -> str:
    raw = bytearray(bytes.fromhex(h))
    raw[bit // 8 % 32] ^= 1 << (bit % 8)
    return raw.hex()


def rejected(proof: InclusionProof, root: LiabilitiesRoot | str) -> ProofInvalid:
    with pytest.raises(ProofInvalid) as info:
        P.verify_inclusion(proof, root)
    assert not P.is_included(proof, root)
    return info.value


# -- the honest tree -----------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_every_proof_verifies_and_sums_to_the_total(impl: str) -> None:
    b = Book(BALANCES, impl)
    assert b.root.total_minor == sum(BALANCES)
    assert b.root.leaves == len(BALANCES)
    for i, balance in enumerate(BALANCES):
        for secrets in (True, False):
            proof = b.proof(i, secrets)
            assert P.verify_inclusion(proof, b.root) is True
            assert P.verify_inclusion(proof, b.root.root_hash) is True
            assert proof.leaf.balance_minor == balance
            assert len(proof.path) == P.tree_depth(len(BALANCES)) == 4
            assert balance + sum(s.sibling_sum_minor for s in proof.path) == b.root.total_minor


@pytest.mark.parametrize("impl", IMPLS)
def test_the_tree_is_the_documented_construction(impl: str) -> None:
    """The module's root and proofs are what the byte-level description gives."""
    b = Book(BALANCES, impl)
    pairs = sorted(zip(b.keys, BALANCES, strict=True))
    assert [ref_key(a, ref_nonce(SECRET, a)) for a in b.ids] == b.keys
    levels = ref_levels([ref_leaf(k, v) for k, v in pairs])
    assert b.root == published(levels, len(pairs))
    assert b.tree.top_hash == levels[-1][0][0]
    for i in range(len(BALANCES)):
        assert b.proof(i, secrets=False).path == ref_path(levels, b.sorted_index(i))
    assert P.node_hash(b"a" * 32, 1, b"b" * 32, 2) == ref_node((b"a" * 32, 1), (b"b" * 32, 2))[0]
    assert REF_PAD[0] == P.PAD_HASH


@pytest.mark.skipif(not HAVE_COMPILED, reason="solvent._proof is not built")
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 100, 1025])
def test_compiled_and_twin_build_identical_trees(n: int) -> None:
    leaves = P.bench_leaves(n, seed=n)
    c = P.build_tree(ASSET, 1, leaves, implementation="compiled")
    p = P.build_tree(ASSET, 1, leaves, implementation="python")
    assert c._levels == p._levels and c._keys == p._keys and c.root == p.root


@pytest.mark.skipif(not HAVE_COMPILED, reason="solvent._proof is not built")
def test_one_or_two_workers_give_the_same_bytes() -> None:
    """Above PARALLEL_MIN_HASHES the compiled helper sorts and hashes in two halves on
    two threads: keys, levels and leaf keys are byte for byte the one-thread ones and
    the twin's, and a duplicate key split across the halves is still found."""
    from solvent import _proof

    n = 2 * _proof.PARALLEL_MIN_HASHES + 3  # odd: padded levels on both paths
    leaves = P.bench_leaves(n, seed=11)
    args = (P.LEAF_TAG, P.NODE_TAG, P.PAD_HASH)
    one = _proof.build_levels(leaves, *args, workers=1)
    two = _proof.build_levels(leaves, *args, workers=2)
    assert one == two and one[0] == 0
    twin = P.build_tree(ASSET, 1, leaves, implementation="python")
    assert list(two[3]) == twin._levels and two[2] == twin._keys
    dup = list(leaves)
    dup[-1] = (dup[0][0], 5)  # the same key first and last: one in each half
    for w in (1, 2):
        code, _, key, _ = _proof.build_levels(dup, *args, workers=w)
        assert (code, key) == (6, dup[0][0])  # DUPLICATE_KEY
    ids = [f"c{i:07d}-é" for i in range(n)]
    secret = b"k" * 32
    keys1 = _proof.leaf_keys(secret, ids, P.NONCE_TAG, P.KEY_TAG, P.MAX_ID_CHARS, workers=1)
    keys2 = _proof.leaf_keys(secret, ids, P.NONCE_TAG, P.KEY_TAG, P.MAX_ID_CHARS, workers=2)
    assert keys1 == keys2 and keys2[0] == -1
    assert keys2[1][::997] == P.leaf_keys(secret, ids[::997], implementation="python")


def test_root_is_independent_of_leaf_order(book: Book) -> None:
    pairs = list(zip(book.keys, BALANCES, strict=True))
    rnd = random.Random(7)
    for _ in range(20):
        rnd.shuffle(pairs)
        for impl in P.IMPLEMENTATIONS if HAVE_COMPILED else ("python",):
            assert P.build_tree(ASSET, POSITION, pairs, implementation=impl).root == book.root


def test_root_changes_if_any_balance_changes(book: Book) -> None:
    seen = {book.root.root_hash}
    for i in range(len(BALANCES)):
        for delta in (1, -1):
            changed = list(BALANCES)
            changed[i] += delta
            if changed[i] < 0:
                continue
            seen.add(Book(changed).root.root_hash)
    swapped = list(BALANCES)
    swapped[0], swapped[2] = swapped[2], swapped[0]  # same total, other owners
    seen.add(Book(swapped).root.root_hash)
    assert len(seen) == 1 + 2 * len(BALANCES) - BALANCES.count(0) + 1


def test_root_binds_asset_position_and_leaf_count(book: Book) -> None:
    pairs = list(zip(book.keys, BALANCES, strict=True))
    others = [P.build_tree("ETH", POSITION, pairs).root,
              P.build_tree(ASSET, POSITION + 1, pairs).root,
              P.build_tree(ASSET, POSITION, [*pairs, (b"\xff" * 32, 0)]).root]
    assert len({r.root_hash for r in [book.root, *others]}) == 4
    assert others[2].total_minor == book.root.total_minor


def test_empty_and_single_leaf_trees() -> None:
    empty = P.build_tree(ASSET, 0, [])
    assert (empty.root.total_minor, empty.root.leaves) == (0, 0)
    assert empty.top_hash == P.PAD_HASH
    one = Book([77])
    proof = one.proof(0)
    assert proof.path == [] and P.verify_inclusion(proof, one.root)
    assert one.tree.top_hash == ref_leaf(one.keys[0], 77)[0]


# -- tampering with a proof ---------------------------------------------------------------

LEAVES = range(len(BALANCES))
STEPS = range(4)


@pytest.mark.parametrize("i", LEAVES)
@pytest.mark.parametrize("delta", [1, -1, 2**40, INT64_MAX])
def test_modified_leaf_balance_fails(book: Book, i: int, delta: int) -> None:
    proof = book.proof(i)
    balance = proof.leaf.balance_minor + delta
    if balance < 0:
        balance = proof.leaf.balance_minor + 1
    err = rejected(with_leaf(proof, balance_minor=balance), book.root)
    assert err.reason in ("total_mismatch", "balance_out_of_range", "sum_out_of_range")


@pytest.mark.parametrize("i", LEAVES)
@pytest.mark.parametrize("d", STEPS)
@pytest.mark.parametrize("bit", [0, 7, 255])
def test_modified_sibling_hash_fails(book: Book, i: int, d: int, bit: int) -> None:
    proof = book.proof(i)
    tampered = with_step(proof, d, sibling_hash=flip_hex(proof.path[d].sibling_hash, bit))
    err = rejected(tampered, book.root)
    assert err.reason in ("root_hash_mismatch", "path_shape") and err.step in (d, None)
    rejected(tampered, book.root.root_hash)


@pytest.mark.parametrize("i", LEAVES)
@pytest.mark.parametrize("d", STEPS)
@pytest.mark.parametrize("delta", [1, -1, 1 << 32])
def test_modified_sibling_sum_fails(book: Book, i: int, d: int, delta: int) -> None:
    proof = book.proof(i)
    value = proof.path[d].sibling_sum_minor + delta
    tampered = with_step(proof, d, sibling_sum_minor=value)
    err = rejected(tampered, book.root)
    assert err.reason in ("total_mismatch", "sibling_sum_out_of_range", "path_shape")
    # ... even when the prover also restates the total to match (then the hash fails)
    if value >= 0:
        restated = replace(book.root, total_minor=book.root.total_minor + delta)
        tampered = replace(tampered, root=restated)
        assert rejected(tampered, restated).reason in ("root_hash_mismatch", "path_shape")
        assert rejected(tampered, book.root).reason == "root_mismatch"


@pytest.mark.parametrize("i", LEAVES)
@pytest.mark.parametrize("d", STEPS)
def test_flipped_side_fails(book: Book, i: int, d: int) -> None:
    proof = book.proof(i)
    side = "left" if proof.path[d].side == "right" else "right"
    rejected(with_step(proof, d, side=side), book.root)


@pytest.mark.parametrize("i", LEAVES)
def test_modified_leaf_identity_fails(book: Book, i: int) -> None:
    proof = book.proof(i)
    other = book.keys[(i + 1) % len(BALANCES)].hex()
    assert rejected(with_leaf(proof, leaf_key=other), book.root).reason == "leaf_key_mismatch"
    bare = with_leaf(proof, account_id=None, nonce=None, leaf_key=other)
    assert rejected(bare, book.root).reason in ("root_hash_mismatch", "total_mismatch")
    assert rejected(with_leaf(proof, account_id=book.ids[(i + 1) % len(BALANCES)]),
                    book.root).reason == "leaf_key_mismatch"
    assert rejected(with_leaf(proof, nonce=flip_hex(proof.leaf.nonce or "")),
                    book.root).reason == "leaf_key_mismatch"
    assert rejected(with_leaf(proof, nonce=None), book.root).reason == "malformed"


def test_a_proof_is_checked_against_the_customers_own_account(book: Book) -> None:
    """Two customers with equal balances could be shown one leaf (the other left out of
    the total): each proof verifies, so only the account it names tells them apart.
    ``account=`` checks it."""
    proof = book.proof(0)
    assert P.verify_inclusion(proof, book.root, account=book.ids[0])
    assert rejected_for(proof, book.root, book.ids[1]).reason == "account_mismatch"
    assert rejected_for(proof, book.root, book.ids[0] + "x").reason == "account_mismatch"
    bare = book.proof(0, secrets=False)
    assert P.verify_inclusion(bare, book.root)  # a path-only proof is still a path check
    assert "names no account" in str(rejected_for(bare, book.root, book.ids[0]))


def test_look_alike_account_ids_are_two_accounts() -> None:
    composed, decomposed = "jos\u00e9", "jose\u0301"  # the same glyphs, two ids
    nonces = {a: P.account_nonce(SECRET, a) for a in (composed, decomposed)}
    keys = {a: P.leaf_key(a, n) for a, n in nonces.items()}
    tree = P.build_tree(ASSET, POSITION, [(keys[composed], 5)])  # the other left out
    theirs = tree.inclusion_proof(keys[composed], account_id=composed, nonce=nonces[composed])
    assert P.verify_inclusion(theirs, tree.root, account=composed)
    assert rejected_for(theirs, tree.root, decomposed).reason == "account_mismatch"


def rejected_for(proof: InclusionProof, root: LiabilitiesRoot, account: str) -> ProofInvalid:
    with pytest.raises(ProofInvalid) as info:
        P.verify_inclusion(proof, root, account=account)
    assert not P.is_included(proof, root, account=account)
    return info.value


@pytest.mark.parametrize("where", ["balance", "sibling_sum", "version", "total", "position"])
def test_an_int_too_long_to_print_is_a_proof_invalid(book: Book, where: str) -> None:
    """``repr`` of an int over 4,300 digits raises ``ValueError``: the messages quoted
    such fields (an ``InclusionProof`` built in code; JSON refuses them earlier)."""
    proof, huge = book.proof(1), 10**5000
    forged = {"balance": lambda: with_leaf(proof, balance_minor=huge),
              "sibling_sum": lambda: with_step(proof, 0, sibling_sum_minor=huge),
              "version": lambda: replace(proof, version=huge),
              "total": lambda: replace(proof, root=replace(proof.root, total_minor=huge)),
              "position": lambda: replace(proof, position=huge,
                                          root=replace(proof.root, position=huge))}[where]()
    rejected(forged, book.root.root_hash)
    rejected(forged, book.root)


@pytest.mark.parametrize("document", [b'{"version": 1, "asset": "\xff"}', '{"asset": "\ud800"}'])
def test_a_document_that_is_not_unicode_is_malformed(book: Book, document: Any) -> None:
    for decode in (P.proof_from_json, P.root_from_json):
        with pytest.raises(ProofInvalid, match="malformed"):
            decode(document)
    assert rejected(document, book.root).reason == "malformed"


@pytest.mark.parametrize("field,value,reasons", [
    ("total_minor", +1, {"total_mismatch"}),
    ("total_minor", -1, {"total_mismatch"}),
    ("leaves", +1, {"root_hash_mismatch"}),
    ("leaves", +4, {"path_shape"}),
    ("leaves", -1, {"root_hash_mismatch", "path_shape"}),
    ("position", +1, {"position_mismatch"}),
    ("asset", "ETH", {"asset_mismatch"}),
    ("root_hash", "flip", {"root_hash_mismatch"}),
])
def test_modified_root_in_the_proof_fails(book: Book, field: str, value: object,
                                          reasons: set[str]) -> None:
    proof = book.proof(len(BALANCES) - 1)
    old = getattr(book.root, field)
    new = (flip_hex(old) if value == "flip" else value if isinstance(value, str)
           else old + value)
    forged_root = replace(book.root, **{field: new})
    forged = replace(proof, root=forged_root)
    assert rejected(forged, book.root).reason == "root_mismatch"  # the published one
    assert rejected(forged, book.root.root_hash).reason in reasons | {"root_mismatch"}
    assert rejected(forged, forged_root).reason in reasons  # not even self-consistent


def test_path_of_the_wrong_shape_fails(book: Book) -> None:
    proof = book.proof(0)
    extra = ProofStep(side="right", sibling_hash=P.PAD_HASH.hex(), sibling_sum_minor=0)
    assert rejected(replace(proof, path=[*proof.path, extra]), book.root).reason == "path_shape"
    assert rejected(replace(proof, path=proof.path[:-1]), book.root).reason == "path_shape"
    # a leaf index pointing at the padding (13 leaves: index 13 does not exist)
    last = book.proof(BALANCES.index(max(BALANCES)))
    pad_sides = replace(last, path=[replace(s, side="left") for s in last.path])
    assert rejected(pad_sides, book.root).reason in ("path_shape", "root_hash_mismatch")


def test_leaf_count_is_enforced_by_the_path_shape() -> None:
    """A root that understates its leaf count (14 leaves, 13 stated, hash recomputed for 13)
    fails the two customers at the end: one has an index beyond the count, the other a
    sibling where only the padding node may be."""
    b = Book([3] * 14, prefix="count")
    pairs = sorted(zip(b.keys, b.balances, strict=True))
    levels = ref_levels([ref_leaf(k, v) for k, v in pairs])
    assert P.build_tree(ASSET, POSITION, pairs).root == published(levels, 14)
    root = published(levels, 13)
    reasons: dict[int, object] = {}
    for i, (k, v) in enumerate(pairs):
        try:
            reasons[i] = P.verify_inclusion(make_proof(k, v, ref_path(levels, i), root), root)
        except ProofInvalid as exc:
            reasons[i] = (exc.reason, exc.step)
    assert reasons == {**{i: True for i in range(12)}, 12: ("path_shape", 0),
                       13: ("path_shape", None)}


def test_proof_for_one_root_does_not_verify_against_another(book: Book) -> None:
    others = [Book([*BALANCES[:-1], BALANCES[-1] + 1]),  # one balance differs
              Book(BALANCES, position=POSITION + 1),  # a later statement
              Book(BALANCES, asset="ETH"),
              Book(BALANCES, prefix="other")]  # other customers, same balances
    for other in others:
        for i in LEAVES:
            proof = book.proof(i)
            assert rejected(proof, other.root).reason == "root_mismatch"
            assert rejected(proof, other.root.root_hash).reason == "root_mismatch"
            assert not P.is_included(other.proof(i), book.root)


def test_root_given_as_hex_is_accepted_in_any_case(book: Book) -> None:
    proof = book.proof(3)
    assert P.verify_inclusion(proof, book.root.root_hash.upper())
    assert P.verify_inclusion(proof, f"  {book.root.root_hash}\n")
    assert rejected(proof, "abc").reason == "malformed"
    assert rejected(proof, "zz" * 32).reason == "malformed"


def test_proof_reveals_no_other_customer(book: Book) -> None:
    doc = P.proof_to_json(book.proof(4))
    for j in LEAVES:
        if j != 4:
            assert book.ids[j] not in doc and book.keys[j].hex() not in doc
            assert book.nonces[j].hex() not in doc


# -- a dishonest prover --------------------------------------------------------------------


def maxwell_node(left: Node, right: Node) -> Node:
    """Maxwell's original node: the hash commits to the children's total only."""
    (lh, ls), (rh, rs) = left, right
    return hashlib.sha256(b"maxwell" + u64(ls + rs) + lh + rh).digest(), ls + rs


def maxwell_verify(leaf: Node, path: list[ProofStep], top: Node) -> bool:
    h, s = leaf
    for step in path:
        sib = (bytes.fromhex(step.sibling_hash), step.sibling_sum_minor)
        h, s = maxwell_node(sib, (h, s)) if step.side == "left" else maxwell_node((h, s), sib)
    return (h, s) == top


@pytest.mark.parametrize("pair", [0, 2, 4, 6])
def test_maxwell_attack_fails(pair: int) -> None:
    """Hu, Zhang and Guo: with only the total committed, a prover shows each of two sibling
    customers a sibling sum lowered by min(a, b); both proofs verify and the total is
    understated. Committing each child's sum separately, one of them must fail."""
    b = Book([10, 30, 25, 40, 55, 20, 35, 15], prefix="mx")
    pairs = sorted(zip(b.keys, b.balances, strict=True))
    leaves = [ref_leaf(k, v) for k, v in pairs]
    (ka, a), (kb, bal) = pairs[pair], pairs[pair + 1]
    d = min(a, bal)
    cheat = sum(v for _, v in pairs) - d

    def forged(node: Callable[[Node, Node], Node], left_view: bool) -> list[list[Node]]:
        # the parent of the two, as committed: A's view (B's sum lowered) or B's view
        level1 = []
        for i in range(0, 8, 2):
            if i != pair:
                level1.append(node(leaves[i], leaves[i + 1]))
            elif left_view:
                level1.append(node(leaves[i], (leaves[i + 1][0], bal - d)))
            else:
                level1.append(node((leaves[i][0], a - d), leaves[i + 1]))
        return [leaves, *ref_levels(level1, node)]

    # Maxwell's scheme: the two views are the same tree; both customers are fooled.
    mx_a, mx_b = forged(maxwell_node, True), forged(maxwell_node, False)
    assert mx_a[-1] == mx_b[-1] and mx_a[-1][0][1] == cheat
    path_a = ref_path(mx_a, pair)
    path_a[0] = replace(path_a[0], sibling_sum_minor=bal - d)
    path_b = ref_path(mx_b, pair + 1)
    path_b[0] = replace(path_b[0], sibling_sum_minor=a - d)
    assert maxwell_verify(leaves[pair], path_a, mx_a[-1][0])
    assert maxwell_verify(leaves[pair + 1], path_b, mx_a[-1][0])

    # Solvent's scheme: the prover must publish one root; take A's view.
    ours = forged(ref_node, True)
    root = published(ours, 8)
    assert root.total_minor == cheat
    path_a = ref_path(ours, pair)
    path_a[0] = replace(path_a[0], sibling_sum_minor=bal - d)
    assert P.verify_inclusion(make_proof(ka, a, path_a, root), root)
    # B's proof: whatever sum the prover states for A, B's check fails.
    path_b = ref_path(ours, pair + 1)
    for x in range(0, a + 1):
        attempt = [replace(path_b[0], sibling_sum_minor=x), *path_b[1:]]
        err = rejected(make_proof(kb, bal, attempt, root), root)
        assert err.reason in ("total_mismatch", "root_hash_mismatch")
    # ... while every honest customer elsewhere still verifies (detection is by A or B).
    for i in range(8):
        if i not in (pair, pair + 1):
            k, v = pairs[i]
            assert P.verify_inclusion(make_proof(k, v, ref_path(ours, i), root), root)


def _internal_nodes() -> list[tuple[int, int]]:
    widths, n = [], len(BALANCES)
    while n > 1:
        n = (n + 1) // 2
        widths.append(n)
    return [(lvl + 1, j) for lvl, w in enumerate(widths) for j in range(w)]


@pytest.mark.parametrize("level,index", _internal_nodes())
def test_node_sum_lower_than_its_children_is_caught(book: Book, level: int, index: int) -> None:
    """The prover lowers one internal node's stated sum by 1 and rehashes everything above
    it: the customers below that node (and only they) see their proofs fail."""
    pairs = sorted(zip(book.keys, BALANCES, strict=True))
    levels = ref_levels([ref_leaf(k, v) for k, v in pairs])
    h, s = levels[level][index]
    if s == 0:  # a zero node (or the padding) cannot be understated
        return
    levels[level][index] = (h, s - 1)
    for lv in range(level + 1, len(levels)):  # rebuild above, consistently
        below = levels[lv - 1]
        levels[lv] = [ref_node(below[i], below[i + 1]) for i in range(0, len(below), 2)]
        if len(levels[lv]) > 1 and len(levels[lv]) % 2:
            levels[lv].append(REF_PAD)
    root = published(levels, len(pairs))
    assert root.total_minor == sum(BALANCES) - 1
    failed = set()
    for i, (k, v) in enumerate(pairs):
        if not P.is_included(make_proof(k, v, ref_path(levels, i), root), root):
            failed.add(i)
    under = {i for i in range(len(pairs)) if i >> level == index}
    assert failed == under and failed


@pytest.mark.parametrize("where", range(8))
@pytest.mark.parametrize("encoding", ["negative", "wrapped"])
def test_fake_negative_leaf_is_caught(where: int, encoding: str) -> None:
    """The prover slips in a leaf of -500 (hashed as a two's-complement u64, sums computed
    mod 2**64): a customer next to it sees a sibling sum out of range."""
    b = Book([100, 200, 300, 400, 500, 600, 700], prefix="neg")
    pairs = sorted(zip(b.keys, b.balances, strict=True))
    fake_key = b"\x00" * 32
    rows = list(pairs)
    rows.insert(where, (fake_key, -500))

    def enc(x: int) -> int:
        return x % (1 << 64) if encoding == "wrapped" else x

    def u64_wrapped(x: int) -> bytes:  # two's complement: how -500 fits a u64
        return (x % (1 << 64)).to_bytes(8, "big")

    def node(left: Node, right: Node) -> Node:
        (lh, ls), (rh, rs) = left, right
        h = hashlib.sha256(b"solvent.pol.v1.node\x00" + lh + u64_wrapped(ls)
                           + rh + u64_wrapped(rs)).digest()
        return h, enc(ls + rs)

    leaf_nodes = [(hashlib.sha256(b"solvent.pol.v1.leaf\x00" + k + u64_wrapped(v)).digest(),
                   enc(v)) for k, v in rows]
    levels = ref_levels(leaf_nodes, node)
    total = sum(b.balances) - 500
    root = published([[(levels[-1][0][0], total)]], len(rows), total=total)
    results = {}
    for i, (k, v) in enumerate(rows):
        if v >= 0:
            try:
                P.verify_inclusion(make_proof(k, v, ref_path(levels, i), root), root)
                results[i] = "ok"
            except ProofInvalid as exc:
                results[i] = exc.reason
    assert results[where ^ 1] == "sibling_sum_out_of_range"  # the fake leaf's neighbour


def test_sums_beyond_int64_are_refused(book: Book) -> None:
    proof = book.proof(1)
    for value in (INT64_MAX + 1, 1 << 64, -1, -(1 << 63)):
        assert rejected(with_step(proof, 0, sibling_sum_minor=value),
                        book.root).reason == "sibling_sum_out_of_range"
    # each sibling in range, but their sum is not
    path = [ProofStep(side="right", sibling_hash="00" * 32, sibling_sum_minor=INT64_MAX)]
    root = LiabilitiesRoot(asset=ASSET, position=1, total_minor=0, leaves=2,
                           root_hash="00" * 32)
    err = rejected(make_proof(b"\x01" * 32, 1, path, root), root)
    assert err.reason == "sum_out_of_range" and err.step == 0
    assert rejected(with_leaf(proof, balance_minor=-1), book.root).reason == \
        "balance_out_of_range"
    assert rejected(with_leaf(proof, balance_minor=True), book.root).reason == \
        "balance_out_of_range"


# -- building: refusals --------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("balance", [-1, INT64_MAX + 1, 1 << 64, -(1 << 70)])
def test_balance_out_of_range_is_refused(impl: str, balance: int) -> None:
    leaves = [(bytes([i]) * 32, 5) for i in range(4)]
    leaves[2] = (leaves[2][0], balance)
    with pytest.raises(InvalidAmount, match=r"leaf #2 of BTC: balance .* outside 0\.\.INT64_MAX"):
        P.build_tree(ASSET, 1, leaves, implementation=impl)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("balance", [True, 1.0, "5", None])
def test_balance_of_the_wrong_type_is_refused(impl: str, balance: object) -> None:
    with pytest.raises(InvalidAmount, match="leaf #1 of BTC"):
        P.build_tree(ASSET, 1, [(b"a" * 32, 1), (b"b" * 32, balance)],  # type: ignore[list-item]
                     implementation=impl)


@pytest.mark.parametrize("impl", IMPLS)
def test_int64_max_balance_is_accepted(impl: str) -> None:
    tree = P.build_tree(ASSET, 1, [(b"a" * 32, INT64_MAX), (b"b" * 32, 0)], implementation=impl)
    assert tree.root.total_minor == INT64_MAX
    assert P.verify_inclusion(tree.inclusion_proof(b"a" * 32), tree.root)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("balances", [[INT64_MAX, 1], [1 << 62, 1 << 62],
                                      [INT64_MAX // 3 + 1] * 3, [INT64_MAX] * 2])
def test_total_overflowing_int64_is_refused(impl: str, balances: list[int]) -> None:
    leaves = [(bytes([i]) * 32, v) for i, v in enumerate(balances)]
    with pytest.raises(BalanceOverflow, match="exceeds INT64_MAX"):
        P.build_tree(ASSET, 1, leaves, implementation=impl)
    leaves[-1] = (leaves[-1][0], leaves[-1][1] - 1 - (sum(balances) - INT64_MAX - 1))
    assert P.build_tree(ASSET, 1, leaves, implementation=impl).root.total_minor == INT64_MAX


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("bad,match", [
    ((b"a" * 31, 1), "leaf #1 of BTC: the leaf key must be bytes of 32"),
    ((bytearray(32), 1), "leaf #1 of BTC: the leaf key must be bytes of 32"),
    (("a" * 32, 1), "leaf #1 of BTC: the leaf key must be bytes of 32"),
    ((b"a" * 32,), r"leaf #1 of BTC is not a \(leaf_key, balance_minor\) pair"),
    ((b"a" * 32, 1, 2), r"leaf #1 of BTC is not a \(leaf_key, balance_minor\) pair"),
    (b"a" * 32, r"leaf #1 of BTC is not a \(leaf_key, balance_minor\) pair"),
    ((b"z" * 32, 3), "leaf key 7a7a.* of BTC appears more than once"),
])
def test_malformed_leaves_are_refused(impl: str, bad: object, match: str) -> None:
    leaves = [(b"z" * 32, 1), bad, (b"c" * 32, 2)]
    with pytest.raises(InvalidArgument, match=match):
        P.build_tree(ASSET, 1, leaves, implementation=impl)  # type: ignore[arg-type]


def test_first_bad_leaf_wins_and_both_builders_agree() -> None:
    leaves: list[object] = [(b"a" * 32, 1), (b"b" * 32, -5), (b"c", 1), (b"b" * 32, INT64_MAX)]
    messages = set()
    for impl in P.IMPLEMENTATIONS if HAVE_COMPILED else ("python",):
        with pytest.raises(InvalidAmount) as info:
            P.build_tree(ASSET, 1, leaves, implementation=impl)  # type: ignore[arg-type]
        messages.add(str(info.value))
        assert info.value.details["index"] == 1
    assert len(messages) == 1


def test_bad_statement_fields_are_refused() -> None:
    for asset, position in [("", 1), ("x" * 129, 1), (5, 1), ("BTC", -1), ("BTC", 1 << 63),
                            ("BTC", True)]:
        with pytest.raises(InvalidArgument):
            P.build_tree(asset, position, [])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        P.build_tree(ASSET, 1, iter([]))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        P.build_tree(ASSET, 1, [], implementation="fortran")


# -- keys, nonces and the tree's lookups ---------------------------------------------------


def test_nonce_and_leaf_key_follow_the_description() -> None:
    nonce = P.account_nonce(SECRET, "alice")
    assert nonce == ref_nonce(SECRET, "alice") and len(nonce) == 32
    assert P.leaf_key("alice", nonce) == ref_key("alice", nonce)
    assert P.account_nonce(SECRET, "bob") != nonce
    assert P.account_nonce(bytes(32), "alice") != nonce
    assert P.leaf_key("alicf", nonce) != P.leaf_key("alice", nonce)
    assert P.leaf_key("ü" * 128, nonce) == ref_key("ü" * 128, nonce)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("secret", [SECRET, bytes(64), bytes(range(100))])
def test_leaf_keys_in_bulk_equal_one_by_one(impl: str, secret: bytes) -> None:
    ids = [f"acct-{i}" for i in range(50)] + ["ü" * 128, "x", "日本"]
    expected = [P.leaf_key(a, P.account_nonce(secret, a)) for a in ids]
    assert P.leaf_keys(secret, ids, implementation=impl) == expected
    assert P.leaf_keys(secret, iter(ids), implementation=impl) == expected


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("bad", ["", "x" * 129, 5, None, "\ud800"])
def test_bad_account_ids_are_refused(impl: str, bad: object) -> None:
    with pytest.raises(InvalidArgument, match="account id #1"):
        P.leaf_keys(SECRET, ["ok", bad, "fine"], implementation=impl)  # type: ignore[list-item]
    with pytest.raises(InvalidArgument):
        P.account_nonce(SECRET, bad)  # type: ignore[arg-type]


def test_bad_secrets_and_nonces_are_refused() -> None:
    for secret in (b"short", bytes(31), "x" * 32):
        with pytest.raises(InvalidArgument, match="at least 32 bytes"):
            P.account_nonce(secret, "alice")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            P.leaf_keys(secret, ["alice"])  # type: ignore[arg-type]
    for nonce in (b"", bytes(31), bytes(33), "00" * 32):
        with pytest.raises(InvalidArgument, match="32 bytes"):
            P.leaf_key("alice", nonce)  # type: ignore[arg-type]


def test_tree_lookups(book: Book) -> None:
    for i, key in enumerate(book.keys):
        assert key in book.tree and book.tree.balance_of(key) == BALANCES[i]
    assert b"\x00" * 32 not in book.tree and b"short" not in book.tree
    assert len(book.tree) == len(BALANCES) and "BTC at 4242" in repr(book.tree)
    with pytest.raises(LeafNotFound):
        book.tree.inclusion_proof(b"\x00" * 32)
    with pytest.raises(InvalidArgument, match="does not have leaf key"):
        book.tree.inclusion_proof(book.keys[0], account_id=book.ids[1], nonce=book.nonces[1])
    with pytest.raises(InvalidArgument, match="both"):
        book.tree.inclusion_proof(book.keys[0], account_id=book.ids[0])


# -- JSON ----------------------------------------------------------------------------------


def test_json_round_trip(book: Book) -> None:
    proof = book.proof(5)
    doc = P.proof_to_json(proof)
    assert P.proof_from_json(doc) == proof
    assert P.proof_from_json(doc.encode()) == proof
    assert P.verify_inclusion(doc, book.root) and P.verify_inclusion(doc.encode(), book.root)
    data = json.loads(doc)
    assert set(data) == {"version", "asset", "position", "leaf", "path", "root"}
    assert data["leaf"] == {"leaf_key": book.keys[5].hex(), "balance_minor": BALANCES[5],
                            "account_id": book.ids[5], "nonce": book.nonces[5].hex()}
    assert set(data["path"][0]) == {"side", "sibling_hash", "sibling_sum_minor"}
    assert data["root"] == msgspec.to_builtins(book.root)
    assert P.root_from_json(P.root_to_json(book.root)) == book.root
    # the customer's check from two files alone
    assert P.verify_inclusion(P.proof_from_json(doc), P.root_from_json(P.root_to_json(book.root)))


@pytest.mark.parametrize("mutate", [
    lambda d: d.pop("path"),
    lambda d: d.update(extra=1),
    lambda d: d["path"][0].update(side="up"),
    lambda d: d["path"][0].update(sibling_sum_minor="5"),
    lambda d: d["path"][0].update(sibling_sum_minor=1.5),
    lambda d: d["leaf"].update(balance_minor=None),
    lambda d: d["root"].pop("root_hash"),
])
def test_malformed_documents_are_refused(book: Book, mutate: Callable[[dict[str, object]],
                                                                       object]) -> None:
    data = json.loads(P.proof_to_json(book.proof(0)))
    mutate(data)
    with pytest.raises(ProofInvalid) as info:
        P.verify_inclusion(json.dumps(data), book.root)
    assert info.value.reason == "malformed"
    assert not P.is_included(json.dumps(data), book.root)


def test_other_malformed_inputs(book: Book) -> None:
    proof = book.proof(0)
    for doc in ("", "not json", "[]", "{}"):
        assert rejected(doc, book.root).reason == "malformed"  # type: ignore[arg-type]
    with pytest.raises(ProofInvalid, match="malformed"):
        P.root_from_json("{}")
    assert rejected(replace(proof, version=2), book.root).reason == "malformed"
    assert rejected(proof, 42).reason == "malformed"  # type: ignore[arg-type]
    assert rejected(with_step(proof, 0, sibling_hash="zz" * 32), book.root).reason == "malformed"
    weird = replace(book.root, asset="\ud800")
    assert rejected(replace(proof, asset="\ud800", root=weird), weird).reason == "malformed"
    err = pickle.loads(pickle.dumps(ProofInvalid("path_shape", "x", step=3)))
    assert (err.reason, err.step, str(err)) == ("path_shape", 3, "path_shape: x")


# -- properties ----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=32, max_size=32), st.integers(0, INT64_MAX >> 7)),
                max_size=70, unique_by=lambda leaf: leaf[0]))
def test_property_every_leaf_verifies_and_sums_to_the_total(
        pairs: list[tuple[bytes, int]]) -> None:
    tree = P.build_tree(ASSET, 9, pairs)
    balances = [v for _, v in pairs]
    assert tree.root.total_minor == sum(balances) and tree.root.leaves == len(balances)
    twin = P.build_tree(ASSET, 9, pairs[::-1], implementation="python")
    assert twin.root == tree.root
    for key, balance in pairs:
        proof = tree.inclusion_proof(key)
        assert proof.leaf.balance_minor == balance
        assert balance + sum(s.sibling_sum_minor for s in proof.path) == tree.root.total_minor
        assert P.verify_inclusion(P.proof_to_json(proof), tree.root)


def test_the_documentation_examples_run() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "proof-of-liabilities.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.DOTALL)
    assert blocks
    for block in blocks:
        exec(compile(block, "proof-of-liabilities.md", "exec"), {})
    for tag in (P.NONCE_TAG, P.KEY_TAG, P.LEAF_TAG, P.NODE_TAG, P.PAD_TAG, P.ROOT_TAG):
        assert f"`{tag[:-1].decode()}` `00` ({len(tag)} bytes)" in doc


def test_bench_helpers_run_small() -> None:
    root = P.bench_liabilities_root(2_000, repeats=1)
    assert root["unit"] == "s" and root["params"]["leaves"] == 2_000
    assert P.bench_inclusion_proofs(50, leaves=300, repeats=1)["value"] > 0
    assert P.bench_verify_inclusion(50, leaves=300, repeats=1)["value"] > 0


@pytest.mark.parametrize("enabled", [True, False])
def test_gc_paused_restores_the_collector_as_it_was(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        with P.gc_paused():
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
        with pytest.raises(ZeroDivisionError), P.gc_paused():
            1 // 0  # noqa: B018
        assert gc.isenabled() is enabled
        # a root build pauses it for its gather and build, and restores it
        led = solvent.Ledger.open("memory:")
        led.register_asset("BTC", 8)
        led.open_account("alice")
        led.liabilities_root("BTC")
        assert gc.isenabled() is enabled
        led.close()
    finally:
        (gc.enable if was else gc.disable)()
