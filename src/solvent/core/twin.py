"""The pure-Python twin of the compiled balance core: the readable specification.

``BalanceTable`` holds every balance of the ledger as integers in minor units,
indexed by account number and asset number (both dense, assigned in order of
registration). Every operation is *checked*: it either applies completely and
returns ``codes.OK`` or changes nothing and returns a non-zero code.

Normal balances. Customer and company accounts are credit-normal (a credit
raises their balance, a debit lowers it); custody wallets are debit-normal.
``post(debit, credit, asset, amount)`` is one double-entry posting, so at
every moment, per asset::

    custody_total == customer_total + company_total

and, since no balance may be negative, customer liabilities never exceed
custody. Overflow: the custody total of an asset is kept <= INT64_MAX, and
every balance in that asset is bounded by it, so no balance can wrap.

Check order (both cores return the *first* failing code, in this order):
INVALID_AMOUNT, UNKNOWN_ASSET, UNKNOWN_ACCOUNT (debit, then credit),
SAME_ACCOUNT, ASSET_MISMATCH (debit, then credit), WRONG_KIND,
ACCOUNT_FROZEN (debit side), INSUFFICIENT_FUNDS / INSUFFICIENT_HELD
(debit side, then credit side), COVERAGE, OVERFLOW. Single-account operations
(hold, release) check INVALID_AMOUNT, UNKNOWN_ASSET, UNKNOWN_ACCOUNT,
WRONG_KIND, ACCOUNT_FROZEN (hold only), then the balance.

The compiled core in ``ext/_core.pyx`` mirrors every name here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from solvent.core import codes as c
from solvent.core.refs import TransferRefs

StateDump = dict[str, Any]


def _may_transfer(role: str | None, actor: str, debit_name: str, debit_kind: int) -> bool:
    """Could ``actor`` (of ``role``) have made a transfer from ``debit_name``?
    ``Ledger._authorize``'s rule for ``transfer``, checked again on replay."""
    if role == "operator" or role == "system":
        return True
    return role == "customer" and actor == debit_name and debit_kind == c.KIND_CUSTOMER


class BalanceTable:
    """Balances of every account in every asset, with checked operations."""

    __slots__ = (
        "_available",
        "_caps",
        "_frozen",
        "_held",
        "_kinds",
        "_totals",
        "_wallet_assets",
    )

    def __init__(self) -> None:
        self._kinds: list[int] = []
        self._wallet_assets: list[int] = []
        self._frozen: list[bool] = []
        # per asset: account -> amount (absent means 0)
        self._available: list[dict[int, int]] = []
        self._held: list[dict[int, int]] = []
        # per asset: [customer_total, company_total, custody_total]
        self._totals: list[list[int]] = []
        # per asset: the most customer liabilities a company-funded credit may
        # lead to (the attested reserves); INT64_MAX when the asset has none
        self._caps: list[int] = []

    # -- registration -----------------------------------------------------

    @property
    def n_accounts(self) -> int:
        return len(self._kinds)

    @property
    def n_assets(self) -> int:
        return len(self._totals)

    def add_asset(self) -> int:
        """Register the next asset number and return it."""
        if len(self._totals) >= c.MAX_ASSETS:
            raise OverflowError("asset limit reached")
        self._available.append({})
        self._held.append({})
        self._totals.append([0, 0, 0])
        self._caps.append(c.INT64_MAX)
        return len(self._totals) - 1

    def add_account(self, kind: int, wallet_asset: int = -1) -> int:
        """Register the next account number (a wallet is bound to one asset)."""
        if kind not in c.KIND_NAMES:
            raise ValueError(f"unknown account kind {kind}")
        if (kind == c.KIND_WALLET) != (wallet_asset >= 0) or wallet_asset < -1:
            raise ValueError("a wallet, and only a wallet, is bound to an asset")
        if wallet_asset >= len(self._totals):
            raise ValueError(f"unknown asset number {wallet_asset}")
        if len(self._kinds) >= c.MAX_ACCOUNTS:
            raise OverflowError("account limit reached")
        self._kinds.append(kind)
        self._wallet_assets.append(wallet_asset)
        self._frozen.append(False)
        return len(self._kinds) - 1

    def kind(self, account: int) -> int:
        return self._kinds[account]

    def wallet_asset(self, account: int) -> int:
        return self._wallet_assets[account]

    def set_frozen(self, account: int, frozen: bool) -> None:
        self._frozen[account] = bool(frozen)

    def is_frozen(self, account: int) -> bool:
        return self._frozen[account]

    def set_liability_cap(self, asset: int, cap: int) -> None:
        """Cap customer liabilities of ``asset`` for company-funded credits.

        A posting from a company account to a customer account that would lift
        the customer total of ``asset`` above ``cap`` is refused with COVERAGE
        (deposits and customer-to-customer transfers are not capped). The ledger
        sets the cap to the attested reserves; ``INT64_MAX`` lifts it.
        """
        self._caps[asset]  # an unknown asset is an IndexError first, as in reads
        if not 0 <= cap <= c.INT64_MAX:
            raise ValueError(f"cap {cap} is outside 0..INT64_MAX")
        self._caps[asset] = cap

    def liability_cap(self, asset: int) -> int:
        return self._caps[asset]

    # -- reads --------------------------------------------------------------

    def available(self, account: int, asset: int) -> int:
        return self._available[asset].get(account, 0)

    def held(self, account: int, asset: int) -> int:
        return self._held[asset].get(account, 0)

    def total(self, asset: int, kind: int) -> int:
        """Sum of available + held over all accounts of ``kind`` in ``asset``."""
        return self._totals[asset][kind]

    # -- checked operations ---------------------------------------------------

    def _check_pair(self, debit: int, credit: int, asset: int, amount: int) -> int:
        if type(amount) is not int:
            raise TypeError(f"amount must be an int, got {type(amount).__name__}")
        if amount <= 0 or amount > c.INT64_MAX:
            return c.INVALID_AMOUNT
        if asset < 0 or asset >= len(self._totals):
            return c.UNKNOWN_ASSET
        n = len(self._kinds)
        if debit < 0 or debit >= n or credit < 0 or credit >= n:
            return c.UNKNOWN_ACCOUNT
        if debit == credit:
            return c.SAME_ACCOUNT
        if self._kinds[debit] == c.KIND_WALLET and self._wallet_assets[debit] != asset:
            return c.ASSET_MISMATCH
        if self._kinds[credit] == c.KIND_WALLET and self._wallet_assets[credit] != asset:
            return c.ASSET_MISMATCH
        return c.OK

    def post(self, debit: int, credit: int, asset: int, amount: int) -> int:
        """Debit one account and credit another by ``amount`` of ``asset``."""
        code = self._check_pair(debit, credit, asset, amount)
        if code:
            return code
        return self._post(debit, credit, asset, amount, from_held=False)

    def post_held(self, debit: int, credit: int, asset: int, amount: int) -> int:
        """Like ``post``, but the debit comes out of the debit account's held part.

        This settles a hold (a fill, a completed withdrawal). The debit account
        must be a customer or company account; freezing does not block it,
        because the funds were already committed by an earlier, checked hold.
        """
        code = self._check_pair(debit, credit, asset, amount)
        if code:
            return code
        if self._kinds[debit] == c.KIND_WALLET:
            return c.WRONG_KIND
        return self._post(debit, credit, asset, amount, from_held=True)

    def _post(self, debit: int, credit: int, asset: int, amount: int, from_held: bool) -> int:
        avail = self._available[asset]
        held = self._held[asset]
        totals = self._totals[asset]
        dk = self._kinds[debit]
        ck = self._kinds[credit]
        if dk != c.KIND_WALLET:
            if not from_held and self._frozen[debit]:
                return c.ACCOUNT_FROZEN
            if from_held:
                if held.get(debit, 0) < amount:
                    return c.INSUFFICIENT_HELD
            elif avail.get(debit, 0) < amount:
                return c.INSUFFICIENT_FUNDS
        if ck == c.KIND_WALLET and avail.get(credit, 0) < amount:
            return c.INSUFFICIENT_FUNDS
        if (
            dk == c.KIND_COMPANY
            and ck == c.KIND_CUSTOMER
            and totals[c.KIND_CUSTOMER] > self._caps[asset] - amount
        ):
            return c.COVERAGE
        custody_delta = (amount if dk == c.KIND_WALLET else 0) - (
            amount if ck == c.KIND_WALLET else 0
        )
        if totals[c.KIND_WALLET] + custody_delta > c.INT64_MAX:
            return c.OVERFLOW
        # apply: nothing above this line changed state
        if dk == c.KIND_WALLET:
            avail[debit] = avail.get(debit, 0) + amount
        elif from_held:
            held[debit] -= amount
        else:
            avail[debit] -= amount
        if ck == c.KIND_WALLET:
            avail[credit] -= amount
        else:
            avail[credit] = avail.get(credit, 0) + amount
        totals[dk] += amount if dk == c.KIND_WALLET else -amount
        totals[ck] += -amount if ck == c.KIND_WALLET else amount
        return c.OK

    def _check_single(self, account: int, asset: int, amount: int) -> int:
        if type(amount) is not int:
            raise TypeError(f"amount must be an int, got {type(amount).__name__}")
        if amount <= 0 or amount > c.INT64_MAX:
            return c.INVALID_AMOUNT
        if asset < 0 or asset >= len(self._totals):
            return c.UNKNOWN_ASSET
        if account < 0 or account >= len(self._kinds):
            return c.UNKNOWN_ACCOUNT
        if self._kinds[account] == c.KIND_WALLET:
            return c.WRONG_KIND
        return c.OK

    def hold(self, account: int, asset: int, amount: int) -> int:
        """Move ``amount`` from available to held (refused when frozen)."""
        code = self._check_single(account, asset, amount)
        if code:
            return code
        if self._frozen[account]:
            return c.ACCOUNT_FROZEN
        avail = self._available[asset]
        if avail.get(account, 0) < amount:
            return c.INSUFFICIENT_FUNDS
        avail[account] -= amount
        held = self._held[asset]
        held[account] = held.get(account, 0) + amount
        return c.OK

    def release(self, account: int, asset: int, amount: int) -> int:
        """Move ``amount`` from held back to available (allowed when frozen)."""
        code = self._check_single(account, asset, amount)
        if code:
            return code
        held = self._held[asset]
        if held.get(account, 0) < amount:
            return c.INSUFFICIENT_HELD
        held[account] -= amount
        avail = self._available[asset]
        avail[account] = avail.get(account, 0) + amount
        return c.OK

    def post_many(
        self,
        debit: Sequence[int],
        credit: Sequence[int],
        asset: Sequence[int],
        amount: Sequence[int],
        out: bytearray | memoryview,
    ) -> int:
        """Post item by item; write each item's code to ``out``.

        The bulk path moves money between customer and company accounts only:
        an item naming a custody wallet on either side is WRONG_KIND (checked
        after ``_check_pair``, before ACCOUNT_FROZEN), so no bulk item can create
        or destroy liabilities. Items are independent: a failing item changes
        nothing and the next one is tried. Returns the number of items applied.
        """
        n = len(debit)
        if not (len(credit) == len(asset) == len(amount) == n) or len(out) < n:
            raise ValueError("post_many: columns must have equal lengths")
        applied = 0
        kinds = self._kinds
        for i in range(n):
            d, cr, a, amt = debit[i], credit[i], asset[i], amount[i]
            code = self._check_pair(d, cr, a, amt)
            if code == c.OK:
                if kinds[d] == c.KIND_WALLET or kinds[cr] == c.KIND_WALLET:
                    code = c.WRONG_KIND
                else:
                    code = self._post(d, cr, a, amt, from_held=False)
            out[i] = code
            if code == 0:
                applied += 1
        return applied

    def replay_transfers(
        self,
        records: Sequence[Any],
        start: int,
        transferred: Any,
        account_index: dict[str, int],
        asset_index: dict[str, int],
        wallets: set[int],
        refs: TransferRefs,
        position: int,
        last_time_ns: int,
        actors: dict[str, str] | None = None,
    ) -> tuple[int, int, int]:
        """Replay consecutive ``Transferred`` journal records, from ``records[start]``.

        A record is applied here only when it fits exactly: it is of type
        ``transferred``, its ``position`` is ``position + 1``, its ``time_ns`` is not
        before ``last_time_ns``, its actor is in ``actors`` (unless None) with a role that
        may make it (an operator or the system; a customer only from its own customer
        account: ``Ledger._authorize``), its ``ref`` and
        ``memo`` are str and ``refs`` (a ``TransferRefs``) has room for them (a new
        ref, texts within ``MAX_REF_TEXT_BYTES``, fewer than ``max_refs``
        entries), its accounts and asset are registered, neither account is a
        wallet (in ``wallets``), and ``post`` applies it. Then ``refs._put`` (``add``
        without the checks just made) records it. At the first record that does
        not fit, nothing is changed for it and the loop stops. Returns (index of
        that record or ``len(records)``, position, last_time_ns). The caller
        replays the stopping record the slow way (where a record that does not
        fit is reported as tampering).
        """
        n = len(records)
        for i in range(start, n):
            rec: Any = records[i]
            if rec.__class__ is not transferred:
                return i, position, last_time_ns
            p = rec.position
            ref = rec.ref
            memo = rec.memo
            if type(ref) is not str or type(memo) is not str or not refs._room_for(ref, memo):
                return i, position, last_time_ns
            debit = account_index.get(rec.from_account, -1)
            credit = account_index.get(rec.to_account, -1)
            a = asset_index.get(rec.asset, -1)
            if (
                type(p) is not int
                or p != position + 1
                or debit < 0
                or credit < 0
                or a < 0
                or debit in wallets
                or credit in wallets
                or type(rec.amount_minor) is not int
                or type(rec.time_ns) is not int
                or rec.time_ns < last_time_ns
                or (actors is not None and not _may_transfer(
                    actors.get(rec.actor), rec.actor, rec.from_account, self._kinds[debit]))
                or self.post(debit, credit, a, rec.amount_minor) != c.OK
            ):
                return i, position, last_time_ns
            refs._put(ref, debit, credit, a, rec.amount_minor, memo, p)
            position = p
            if rec.time_ns > last_time_ns:
                last_time_ns = rec.time_ns
        return n, position, last_time_ns

    # -- invariants and state transfer -----------------------------------------

    def check_invariants(self) -> None:
        """Raise AssertionError if any balance invariant is broken.

        (Explicit raises, not ``assert``: this holds under ``python -O`` too.)
        """

        def fail(why: str) -> None:
            raise AssertionError(why)

        for a, totals in enumerate(self._totals):
            sums = [0, 0, 0]
            for acct, v in self._available[a].items():
                if v < 0:
                    fail(f"negative available: account {acct} asset {a}")
                k = self._kinds[acct]
                if k == c.KIND_WALLET and self._wallet_assets[acct] != a and v:
                    fail(f"wallet {acct} holds asset {a}, not its own")
                sums[k] += v
            for acct, v in self._held[a].items():
                if v < 0:
                    fail(f"negative held: account {acct} asset {a}")
                if v and self._kinds[acct] == c.KIND_WALLET:
                    fail("wallet with held funds")
                sums[self._kinds[acct]] += v
            if sums != totals:
                fail(f"asset {a}: totals {totals} != sums {sums}")
            if totals[c.KIND_WALLET] != totals[c.KIND_CUSTOMER] + totals[c.KIND_COMPANY]:
                fail(f"asset {a}: custody != customer + company")
            if totals[c.KIND_WALLET] > c.INT64_MAX:
                fail(f"asset {a}: custody exceeds INT64_MAX")

    def export_state(self) -> StateDump:
        """A plain, deterministic description of the whole table (for snapshots)."""
        balances: list[tuple[int, int, int, int]] = []
        for a in range(len(self._totals)):
            accts = sorted(set(self._available[a]) | set(self._held[a]))
            for acct in accts:
                av = self._available[a].get(acct, 0)
                hd = self._held[a].get(acct, 0)
                if av or hd:
                    balances.append((acct, a, av, hd))
        return {
            "n_assets": len(self._totals),
            "kinds": list(self._kinds),
            "wallet_assets": list(self._wallet_assets),
            "frozen": [int(f) for f in self._frozen],
            "balances": balances,
        }

    @classmethod
    def from_state(cls, state: StateDump) -> BalanceTable:
        """Rebuild a table from ``export_state()`` output, checking invariants."""
        t = cls()
        for _ in range(state["n_assets"]):
            t.add_asset()
        for kind, wa in zip(state["kinds"], state["wallet_assets"], strict=True):
            t.add_account(kind, wa)
        if len(state["frozen"]) != len(t._kinds):
            raise ValueError("frozen flags and accounts differ in number")
        for acct, f in enumerate(state["frozen"]):
            t._frozen[acct] = bool(f)
        for acct, a, av, hd in state["balances"]:
            if not (0 <= acct < len(t._kinds) and 0 <= a < len(t._totals)):
                raise IndexError(f"balance row {(acct, a)} names no account/asset")
            k = t._kinds[acct]
            if av:
                t._available[a][acct] = av
            if hd:
                t._held[a][acct] = hd
            t._totals[a][k] += av + hd
        t.check_invariants()
        return t

