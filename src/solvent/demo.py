"""``solvent demo``: the Bithumb payout of February 2026, replayed against Solvent.

A small exchange on an embedded SQLite file: BTC and KRW, a few thousand
customers with deposits, and company funds (175 BTC of its own, a KRW
promotion budget). The promotion meant to pay 2,000 KRW to each of 249
customers is run as it happened, with the unit set to BTC: the very first
credit is refused because the company's BTC cannot cover it, and the refusal
is journaled. The intended KRW payout then succeeds. Finally the ledger is
closed, reopened from disk, its hash chain verified, and every balance compared.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import quote

import msgspec

from solvent import records as r
from solvent.amounts import format_minor
from solvent.engine.codes import OP_LIMIT
from solvent.errors import Rejected, StoreError
from solvent.ledger import Ledger
from solvent.proof import ProofInvalid, verify_inclusion
from solvent.store import JournalStore

BTC_DECIMALS = 8
KRW_DECIMALS = 0
COMPANY_BTC = 175
EXCHANGE_BTC = 42_600  # what the exchange held in all
WINNERS = 249
PROMO_KRW_EACH = 2_000
PROMO_BUDGET_KRW = 10_000_000


def _say(text: str = "") -> None:
    print(text, flush=True)


def _refuse(why: str) -> int:
    """One line on stderr, exit code 2 (the demo did not run)."""
    print(f"solvent demo: {why}", file=sys.stderr)
    return 2


@contextmanager
def _step(title: str) -> Iterator[None]:
    start = time.perf_counter()
    _say(f"\n== {title}")
    yield
    _say(f"   ({time.perf_counter() - start:.2f} s)")


def _progress(done: int, total: int, label: str) -> None:
    if sys.stdout.isatty():
        print(f"\r   {label}: {done:,}/{total:,}", end="" if done < total else "\n", flush=True)
    elif done == total:
        _say(f"   {label}: {done:,}/{total:,}")


def _btc(minor: int) -> str:
    return format_minor(minor, BTC_DECIMALS) + " BTC"


def _krw(minor: int) -> str:
    return format_minor(minor, KRW_DECIMALS) + " KRW"


def _all_balances(led: Ledger) -> dict[tuple[str, str], tuple[int, int]]:
    out = {}
    for name in led.accounts():
        for asset in led.assets():
            av, hd = led.balance_minor(name, asset)
            if av or hd:
                out[(name, asset)] = (av, hd)
    return out


def run_demo(path: str = "solvent-demo.db", customers: int = 3000, core: str = "compiled") -> int:
    """Run the demo on a fresh SQLite file at ``path``; return an exit code."""
    if customers < WINNERS:
        return _refuse(f"needs at least {WINNERS} customers")
    if not path or os.path.isdir(path):
        return _refuse(f"--path {path!r} must name a file (it is recreated)")
    url = "sqlite:///" + quote(path)  # the file itself, whatever its name holds ('#', '%')
    if os.path.exists(path) and os.path.getsize(path) and not _made_by_the_demo(url):
        return _refuse(f"--path {path!r} holds something the demo did not make (another "
                       "ledger, or not a ledger at all); it replaces only its own ledger: "
                       "remove the file yourself or choose another path")
    clock = SimClock()
    try:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        led = Ledger.open(url, core=core, clock=clock)
    except (OSError, StoreError) as exc:  # a directory that does not exist, or unwritable
        return _refuse(f"cannot make the demo's ledger at --path {path!r}: "
                       f"{getattr(exc, 'strerror', None) or exc}")
    rng = random.Random(20260206)
    _say("Solvent demo: the Bithumb promotion of 6 February 2026, replayed.")
    _say(f"Store: {url} (core: {core})")
    names = [f"cust-{i:05d}" for i in range(customers)]

    with _step(f"Opening a small exchange: BTC and KRW, {customers:,} customers"), led.batch():
        led.register_actor("ops-kim", "operator")
        led.register_asset("BTC", BTC_DECIMALS)
        led.register_asset("KRW", KRW_DECIMALS)
        led.open_wallet("btc-cold", asset="BTC")
        led.open_wallet("btc-hot", asset="BTC")
        led.open_wallet("krw-bank", asset="KRW")
        led.open_account("treasury", kind="company")
        for i, name in enumerate(names, 1):
            led.open_account(name)
            if i % 500 == 0 or i == customers:
                _progress(i, customers, "accounts opened")

    customer_btc_minor = (EXCHANGE_BTC - COMPANY_BTC) * 10**BTC_DECIMALS
    with _step("Confirmed deposits (one commit per 1,000 customers)"):
        weights = [rng.paretovariate(1.2) for _ in names]
        scale = customer_btc_minor / sum(weights)
        shares = [int(w * scale) for w in weights]
        shares[0] += customer_btc_minor - sum(shares)  # exact total, no rounding lost
        for start in range(0, customers, 1000):
            with led.batch():
                for i in range(start, min(start + 1000, customers)):
                    wallet = "btc-cold" if i % 4 else "btc-hot"
                    led.deposit(names[i], "BTC", _decimal(shares[i]), wallet=wallet,
                                ref=f"btc-tx-{i}")
                    led.deposit(names[i], "KRW", rng.randrange(10_000, 5_000_000),
                                wallet="krw-bank", ref=f"krw-wire-{i}")
            _progress(min(start + 1000, customers), customers, "customers funded")
        with led.batch():
            led.deposit("treasury", "BTC", COMPANY_BTC, wallet="btc-cold", ref="company-btc")
            led.deposit("treasury", "KRW", PROMO_BUDGET_KRW, wallet="krw-bank",
                        ref="promo-budget-krw")
        t = led.totals("BTC")
        _say(f"   BTC custody  {_btc(t.custody_minor):>28}")
        _say(f"   customers    {_btc(t.customer_minor):>28}")
        _say(f"   company      {_btc(t.company_minor):>28}")

    winners = rng.sample(names, WINNERS)
    before = _all_balances(led)
    position_before = led.position
    with _step(f"The promotion as it ran: {PROMO_KRW_EACH:,} each to {WINNERS} winners, "
               "unit set to BTC"):
        _say(f"   intended: {PROMO_KRW_EACH * WINNERS:,} KRW in all; "
             f"as configured: {PROMO_KRW_EACH * WINNERS:,} BTC "
             f"(the exchange holds {EXCHANGE_BTC:,} BTC)")
        paid = 0
        try:
            for i, name in enumerate(winners):
                led.transfer("treasury", name, "BTC", PROMO_KRW_EACH, memo="promo 2026-02",
                             ref=f"promo-btc-{i}", actor="ops-kim")
                paid += 1
        except Rejected as exc:
            _say(f"   REJECTED at credit {paid + 1} of {WINNERS} ({exc.code}):")
            _say(f"   {exc}")
        else:
            _say("   !! the payout went through: this must never happen")
            return 1
        trace = [rec for rec in led.records(after_position=position_before)]
        _say(f"   journal trace: {len(trace)} record(s)")
        for rec in trace:
            if isinstance(rec, r.CommandRejected):
                _say(f"     #{rec.position} command_rejected by {rec.actor} ref={rec.ref}: "
                     f"{rec.code}")
        if _all_balances(led) != before:
            _say("   !! balances changed")
            return 1
        _say("   no balance changed; no phantom BTC exists, so none can trade or leave")

    with _step(f"The intended payout: {PROMO_KRW_EACH:,} KRW to each winner"):
        with led.batch():
            for i, name in enumerate(winners):
                led.transfer("treasury", name, "KRW", PROMO_KRW_EACH, memo="promo 2026-02",
                             ref=f"promo-krw-{i}", actor="ops-kim")
        av, _ = led.balance_minor("treasury", "KRW")
        _say(f"   paid {_krw(PROMO_KRW_EACH * WINNERS)}; promotion budget left {_krw(av)}")
        for asset in ("BTC", "KRW"):
            t = led.totals(asset)
            ok = t.custody_minor == t.customer_minor + t.company_minor
            _say(f"   {asset}: custody = customers + company: {'holds' if ok else 'BROKEN'}")
        led.check_invariants()

    live = _all_balances(led)
    head = led.head_digest
    position = led.position
    with _step("Close, reopen from disk, verify the hash chain, compare balances"):
        led.close()
        reopened = Ledger.open(url, core=core, clock=clock)
        report = reopened.verify(expect_head=head)
        _say(f"   verified {report.batches} batches, {report.records:,} records, "
             f"{report.snapshots_checked} snapshot(s); head {report.head_digest[:16]}…")
        again = _all_balances(reopened)
        same = again == live and reopened.position == position
        _say(f"   {len(again):,} balances after reopening: "
             f"{'identical' if same else 'DIFFERENT'} (position {reopened.position:,})")
        sample = winners[0]
        b = reopened.balance(sample, "KRW")
        _say(f"   e.g. {sample}: {b.available} KRW available")
        if not same:
            reopened.close()
            return 1
    try:
        return _custody_part(reopened, clock, path)
    finally:
        reopened.close()
        _say(f"\nDone. Inspect the journal with: solvent verify {url}")


class SimClock:
    """Command time for the demo: starts now, and jumps ahead when days are simulated."""

    def __init__(self) -> None:
        self.now_ns = time.time_ns()

    def __call__(self) -> int:
        self.now_ns += 1_000  # every command a microsecond later
        return self.now_ns

    def advance_days(self, days: float) -> None:
        self.now_ns += int(days * 86_400 * 10**9)

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now_ns / 1e9, UTC)


def _custody_part(led: Ledger, clock: SimClock, path: str) -> int:
    customer = max((n for n in led.accounts() if n.startswith("cust-")),
                   key=lambda n: led.balance_minor(n, "BTC")[0])
    for name in ("ops-lee", "ops-park"):
        led.register_actor(name, "operator")
    led.set_custody_policy("BTC", tolerance="1", max_attestation_age_s=2 * 86_400,
                           approval_threshold="5", actor="ops-kim")
    led.set_custody_policy("KRW", max_attestation_age_s=2 * 86_400,
                           approval_threshold=10_000_000, actor="ops-kim")

    with _step("Custody: attest every wallet against the chain and the bank"):
        for wallet in ("btc-cold", "btc-hot", "krw-bank"):
            book, _ = led.balance_minor(wallet, "KRW" if wallet == "krw-bank" else "BTC")
            asset = "KRW" if wallet == "krw-bank" else "BTC"
            dec = led.decimals(asset)
            led.attest(wallet, _plain(book, dec) if book else 0, as_of=clock.datetime(),
                       source="node" if asset == "BTC" else "bank statement", actor="ops-lee")
        for asset in ("BTC", "KRW"):
            rep = led.reconcile(asset)
            _say(f"   {asset}: reserves {format_minor(rep.reserves_minor, led.decimals(asset))}, "
                 f"customer liabilities {format_minor(rep.liabilities_minor, led.decimals(asset))}"
                 f", coverage {rep.coverage:.4f}, {'clean' if rep.clean else rep.problems}")
        # the promotion's error as a deposit: coins the chain does not show cannot be credited
        before = led.balance_minor(customer, "BTC")
        try:
            led.deposit(customer, "BTC", "620000", wallet="btc-cold", ref="promo-as-deposit",
                        actor="ops-kim")
        except Rejected as exc:
            _say(f"   a 620,000 BTC deposit the chain does not show: refused ({exc.code}), "
                 "journaled")
        if led.balance_minor(customer, "BTC") != before:
            _say("   FAILED: an unbacked deposit was credited")
            return 1

    with _step("A withdrawal: held, approved by a second operator, broadcast, completed"):
        wid = led.request_withdrawal(customer, "BTC", "6", wallet="btc-hot", address="bc1q-demo",
                                     ref="wd-demo-1", actor="ops-lee")
        try:
            led.approve_withdrawal(wid, actor="ops-lee")
        except Rejected as exc:
            _say(f"   same operator approving: refused ({exc.code})")
        led.approve_withdrawal(wid, actor="ops-park")
        led.broadcast_withdrawal(wid, txid="f00dfeed" * 8, actor="ops-lee")
        rep = led.reconcile("BTC")
        _say(f"   in flight: {format_minor(-rep.explained_minor, BTC_DECIMALS)} BTC explained; "
             f"reconciliation {'clean' if rep.clean else rep.problems}")
        led.complete_withdrawal(wid, actor="ops-lee")
        _say(f"   {wid} completed: {customer} and btc-hot both debited 6 BTC")

    if _trading_part(led) != 0:
        return 1

    with _step("Mt.Gox, replayed: the hot wallet leaks 0.4 BTC a day on-chain, no ledger entry"):
        book, _ = led.balance_minor("btc-hot", "BTC")
        cold, _ = led.balance_minor("btc-cold", "BTC")
        krw, _ = led.balance_minor("krw-bank", "KRW")
        for day in range(1, 5):
            clock.advance_days(1)
            observed = book - day * 40_000_000
            led.attest("btc-cold", _plain(cold, BTC_DECIMALS), as_of=clock.datetime(),
                       source="node", actor="ops-lee")
            led.attest("krw-bank", krw, as_of=clock.datetime(), source="bank statement",
                       actor="ops-lee")
            rep = led.attest("btc-hot", _plain(observed, BTC_DECIMALS), as_of=clock.datetime(),
                             source="node", actor="ops-lee")
            status = led.asset_status("BTC")
            _say(f"   day {day}: unexplained {format_minor(rep.unexplained_minor, BTC_DECIMALS)}"
                 f" BTC (tolerance 1 BTC) -> {'HALTED' if status.halted else 'trading'}")
            if status.halted:
                _say(f"   {status.reason}")
                break
        else:
            _say("   !! the drain was never caught")
            return 1
        try:
            led.request_withdrawal(customer, "BTC", "0.1", wallet="btc-cold", address="bc1q-x",
                                   ref="wd-demo-2", actor="ops-lee")
            _say("   !! a BTC withdrawal was accepted while halted")
            return 1
        except Rejected as exc:
            _say(f"   BTC withdrawal refused ({exc.code})")
        try:
            led.place_order(customer, "BTC-KRW", "sell", qty="0.01", price="98000000",
                            actor="ops-lee")
            _say("   !! an order in a halted asset was accepted")
            return 1
        except Rejected as exc:
            _say(f"   BTC-KRW order refused too ({exc.code}): a halted asset cannot trade")
        wid = led.request_withdrawal(customer, "KRW", 1_000, wallet="krw-bank",
                                     address="kb-123-456", ref="wd-demo-3", actor="ops-lee")
        _say(f"   KRW is unaffected: withdrawal {wid} accepted")

    with _step("Proof of liabilities: publish the BTC root; one customer checks their proof"):
        statement = led.reserves_statement("BTC")
        root = statement.liabilities
        root_file = path + ".btc-root.json"
        proof_file = path + f".{customer}.proof.json"
        with open(root_file, "w", encoding="utf-8") as fh:
            fh.write(msgspec.json.encode(statement).decode())
        with open(proof_file, "w", encoding="utf-8") as fh:
            fh.write(led.inclusion_proof(customer, "BTC"))
        _say(f"   published {root_file}: {root.leaves:,} customers owed "
             f"{format_minor(root.total_minor, BTC_DECIMALS)} BTC at position {root.position:,};"
             f" attested reserves {format_minor(statement.reserves_minor, BTC_DECIMALS)} BTC")
        _say(f"   root {root.root_hash}")
        with open(proof_file, encoding="utf-8") as fh:
            document = fh.read()
        # no ledger: the file, the hash, and the customer's own id
        verify_inclusion(document, root.root_hash, account=customer)
        _say(f"   {proof_file}: verified against the published root, from the file alone, "
             f"as {customer}'s own leaf")
        forged = document.replace('"balance_minor":', '"balance_minor":1', 1)
        try:
            verify_inclusion(forged, root.root_hash)
            _say("   !! a forged proof verified")
            return 1
        except ProofInvalid as exc:
            _say(f"   the same proof with its balance changed: rejected ({exc.reason})")
    return 0


REFERENCE_KRW = 98_000_000


def _trading_part(led: Ledger) -> int:
    rng = random.Random(20260207)
    names = [n for n in led.accounts() if n.startswith("cust-")]
    with _step(f"Trading: BTC-KRW with {len(names):,} customers, every order backed by a hold"):
        led.list_market("BTC-KRW", base="BTC", quote="KRW", tick_size="1000", lot_size="0.001",
                        maker_fee="0.0005", taker_fee="0.001", min_notional="5000",
                        actor="ops-kim")
        # bids resting far below before any band exists: what a panic would sell into
        deep: list[int] = []
        for i, name in enumerate(rng.sample(names, 40)):
            price = REFERENCE_KRW * 83 // 100 + 300_000 * i  # -17 % .. just under the floor
            with contextlib.suppress(Rejected):  # a customer without the KRW is refused
                led.place_order(name, "BTC-KRW", "buy", qty="0.01", price=price,
                                actor="ops-kim")
                deep.append(price)
        led.set_reference_price("BTC-KRW", REFERENCE_KRW, band="0.05", actor="ops-kim")
        band = led.price_band("BTC-KRW")
        assert band is not None and deep
        _say(f"   {len(deep)} bids of 0.01 BTC rest at {min(deep):,} (-17 %) .. {max(deep):,} KRW;"
             f" then the band {band[0]:,} .. {band[1]:,} KRW around the reference "
             f"{REFERENCE_KRW:,} (set after them: they stay, and cannot trade)")
        orders = 20_000
        outcomes: dict[str, int] = {}
        fills = 0
        low_print = high_print = 0
        for start in range(0, orders, 2_000):
            with led.batch():
                for _ in range(start, start + 2_000):
                    name = rng.choice(names)
                    side = rng.choice(("buy", "sell"))
                    away = rng.randint(-3, 40)  # a few cross the touch
                    ticks = REFERENCE_KRW // 1000 + (-away if side == "buy" else away)
                    qty = f"0.00{rng.randint(1, 5)}" if side == "buy" else (
                        f"0.0{rng.randint(1, 9)}")
                    try:
                        o = led.place_order(name, "BTC-KRW", side, qty=qty,
                                            price=ticks * 1000, actor="ops-kim")
                    except Rejected as exc:
                        outcomes[exc.code] = outcomes.get(exc.code, 0) + 1
                        continue
                    outcomes["accepted"] = outcomes.get("accepted", 0) + 1
                    for f in o.fills:
                        fills += 1
                        p = int(f.price)
                        low_print = min(low_print or p, p)
                        high_print = max(high_print, p)
            _progress(start + 2_000, orders, "orders")
        # a few patient buyers far down, inside the band
        for i, name in enumerate(rng.sample(names, 20)):
            with contextlib.suppress(Rejected):
                led.place_order(name, "BTC-KRW", "buy", qty="0.001",
                                price=(REFERENCE_KRW * 95 // 100 + 1000 * (i + 1)),
                                actor="ops-kim")
        book = led.book("BTC-KRW", depth=1)
        fees, _ = led.balance_minor("fees:BTC-KRW", "KRW")
        _say(f"   {outcomes.get('accepted', 0):,} accepted, refused: "
             + ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items()) if k != "accepted"))
        _say(f"   {fills:,} fills between {low_print:,} and {high_print:,} KRW; fees "
             f"{fees:,} KRW; touch {book['bids'][0][0]:,} / {book['asks'][0][0]:,}")
        # the bulk path: plain int rows, one compiled call per 10,000 rows
        m = led.market_id("BTC-KRW")
        numbers = [led.account_id(n) for n in names]
        rows: list[tuple[int, ...]] = []
        for _ in range(100_000):
            sell = rng.randrange(2)  # 0 buy, 1 sell
            away = rng.randint(-3, 40)
            ticks = REFERENCE_KRW // 1000 + (away if sell else -away)
            rows.append((OP_LIMIT, m, 0, rng.choice(numbers), sell, ticks,
                         rng.randint(1, 9 if sell else 5), 0, 0))
        t0 = time.perf_counter()
        codes: dict[str, int] = {}
        bulk_traded = 0
        for lo in range(0, len(rows), 10_000):
            results = led.submit_orders(rows[lo:lo + 10_000], actor="ops-kim")
            for code in results.codes():
                codes[code] = codes.get(code, 0) + 1
            bulk_traded += sum(1 for o in results if o.filled_lots)
        elapsed = time.perf_counter() - t0
        _say(f"   then the bulk path: {len(rows):,} orders as int rows through submit_orders "
             f"in {elapsed:.2f} s (one compiled call and one journal record per 10,000): "
             f"{codes.pop('ok', 0):,} accepted ({bulk_traded:,} traded), refused: "
             + ", ".join(f"{k} {v:,}" for k, v in sorted(codes.items())))
        led.check_invariants()

    with _step("The crash attempt: panic sells 17% below the reference price"):
        panic = int(REFERENCE_KRW * 0.83) // 1000 * 1000
        refused = 0
        for name in rng.sample(names, 50):
            try:
                led.place_order(name, "BTC-KRW", "sell", qty="0.01", price=panic,
                                actor="ops-kim")
            except Rejected as exc:
                refused += exc.code == "price_outside_band"
        _say(f"   50 limit sells at {panic:,} KRW (-17%): {refused} refused (price_outside_band)")
        band = led.price_band("BTC-KRW")
        assert band is not None
        low_band = int(band[0])
        below_before = _bids_below(led, low_band)
        lowest = REFERENCE_KRW
        sold = unfilled = Decimal(0)
        richest = sorted(names, key=lambda n: led.balance_minor(n, "BTC")[0])[-100:]
        for name in richest:
            try:
                o = led.place_order(name, "BTC-KRW", "sell", type="market", qty="2",
                                    tif="IOC", actor="ops-kim")
            except Rejected:
                continue
            sold += o.filled_qty
            unfilled += o.qty - o.filled_qty
            for f in o.fills:
                lowest = min(lowest, int(f.price))
        drop = (REFERENCE_KRW - lowest) * 100 / REFERENCE_KRW
        below_after = _bids_below(led, low_band)
        _say(f"   100 market sells of 2 BTC: {sold} BTC sold down to {lowest:,} KRW "
             f"(-{drop:.1f}%); {unfilled} BTC expired unfilled at the band floor "
             f"{low_band:,} KRW while {below_after} BTC of bids rested below it, down to -17 %:"
             " none of them traded")
        if lowest < low_band or below_after != below_before:
            _say("   !! a trade printed below the band")
            return 1
        if not (below_after and unfilled):
            _say("   !! the band was never tested: no sell met the floor with bids below it")
            return 1
        report = led.verify()
        _say(f"   replay: {report.records:,} records verified, books and balances identical")
    return 0


def _made_by_the_demo(url: str) -> bool:
    """Whether the SQLite file at ``url`` is a journal the demo wrote: its first batch
    opens with the demo's operator and its two assets (read only; anything that is
    not a journal is not the demo's)."""
    try:
        store = JournalStore(url, readonly=True)
    except Exception:  # not SQLite, unreadable, locked: not one to replace
        return False
    try:
        first = store.batch_at(1)
        if first is None:
            return False
        head = r.batch_decoder.decode(first.payload).records[:3]
    except Exception:  # not this schema
        return False
    finally:
        store.close()
    return head == [  # what the demo's first batch opens with, headers aside
        r.ActorRegistered(position=1, time_ns=head[0].time_ns, actor="system", name="ops-kim",
                          role="operator"),
        r.AssetRegistered(position=2, time_ns=head[1].time_ns, actor="system", asset="BTC",
                          decimals=BTC_DECIMALS),
        r.AssetRegistered(position=3, time_ns=head[2].time_ns, actor="system", asset="KRW",
                          decimals=KRW_DECIMALS),
    ] if len(head) == 3 else False


def _bids_below(led: Ledger, price: int) -> Decimal:
    """BTC bid below ``price`` KRW in the BTC-KRW book (its 1,000 best levels)."""
    return sum((qty for p, qty in led.book("BTC-KRW", depth=1000)["bids"] if p < price),
               Decimal(0))


def _plain(minor: int, decimals: int) -> str:
    whole, frac = divmod(minor, 10**decimals)
    return f"{whole}.{frac:0{decimals}d}" if decimals else str(whole)


def _decimal(minor: int) -> str:
    whole, frac = divmod(minor, 10**BTC_DECIMALS)
    return f"{whole}.{frac:0{BTC_DECIMALS}d}"
