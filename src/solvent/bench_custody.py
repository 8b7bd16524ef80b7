"""Custody benchmarks for ``solvent bench``: reconciliation and proof of liabilities.

One ledger with N customer balances (1,000,000 at full size) is built once, not
timed: customers are opened in one commit, funded from a company account through
``transfer_many``, and every custody wallet is attested. Then:

* ``custody.reconcile_1m``: seconds for ``led.reconcile(asset)`` (liabilities
  from the core's running totals) — and, in params, a full recount of the N
  customer balances, for what an auditor's independent sum costs;
* ``custody.liabilities_root_1m``: seconds to build the liabilities root from
  the live ledger, cold (every leaf key derived: one HMAC and one SHA-256 per
  customer) and warm (leaf keys cached by the ledger);
* ``custody.inclusion_proof``: inclusion-proof documents (JSON) per second;
* ``custody.verify_inclusion``: proofs verified per second from their JSON,
  with no ledger (``solvent.verify_inclusion``).

Lower is better for the two ``s`` units. Baseline ``python_twin``: the same
with the pure-Python balance core and the pure-Python tree builder.
"""

from __future__ import annotations

import gc
import os
import platform
import time
from array import array
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

from solvent import proof
from solvent.core import codes as c
from solvent.ledger import Ledger

ASSET: Final = "BTC"
FULL_CUSTOMERS: Final = 1_000_000
QUICK_CUSTOMERS: Final = 20_000
PROOFS: Final = 2_000
TARGET_S: Final = 2.0


def build_ledger(customers: int, core: str) -> Ledger:
    """A memory ledger with ``customers`` funded customer accounts and an attested wallet."""
    led = Ledger.open("memory:", core=core, snapshot_every=2**62)
    with led.batch():
        led.register_asset(ASSET, 8)
        led.open_wallet("btc-cold", asset=ASSET)
        led.open_account("treasury", kind="company")
    for lo in range(0, customers, 100_000):
        with led.batch():
            for i in range(lo, min(lo + 100_000, customers)):
                led.open_account(f"c{i:07d}")
    led.deposit("treasury", ASSET, 10_000_000, wallet="btc-cold", ref="fund")
    first = led.account_index("c0000000")
    treasury = led.account_index("treasury")
    step = 100_000
    for lo in range(0, customers, step):
        n = min(step, customers - lo)
        res = led.transfer_many(
            array("q", [treasury]) * n, array("q", range(first + lo, first + lo + n)),
            array("q", [0]) * n, array("q", (1_000 + (i * 7919) % 1_000_000 for i in range(n))),
            ref=f"fund-{lo}")
        if res.applied != n:
            raise RuntimeError("funding transfers were refused")
    custody, _ = led.balance_minor("btc-cold", ASSET)
    led.attest("btc-cold", f"{custody // 10**8}.{custody % 10**8:08d}",
               as_of=datetime.fromtimestamp(time.time(), UTC), source="bench")
    return led


def _best(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    runs = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return min(runs), runs


def _recount(led: Ledger, customers: int) -> int:
    core = led._state.core  # the auditor's independent sum, straight from the balance table
    first = led.account_index("c0000000")
    a = led.asset_index(ASSET)
    total = 0
    for i in range(first, first + customers):
        if core.kind(i) == c.KIND_CUSTOMER:
            total += core.available(i, a) + core.held(i, a)
    return total


def run_custody(quick: bool, repeats: int) -> dict[str, Any]:
    customers = QUICK_CUSTOMERS if quick else FULL_CUSTOMERS
    results: dict[str, Any] = {}
    per_core: dict[str, dict[str, Any]] = {}
    for core, impl in (("compiled", proof.DEFAULT_IMPLEMENTATION), ("python", "python")):
        t0 = time.perf_counter()
        led = build_ledger(customers, core)
        setup_s = time.perf_counter() - t0
        rec_s, rec_runs = _best(partial(led.reconcile, ASSET), max(repeats, 3))
        recount_s, _ = _best(partial(_recount, led, customers), 1)
        report = led.reconcile(ASSET)
        if _recount(led, customers) != report.liabilities_minor:
            raise RuntimeError("the recount differs from the core's running total")

        def cold(led: Ledger = led, impl: str = impl) -> proof.LiabilitiesRoot:
            led._leaf_key_cache.clear()
            led._trees.clear()
            return _root(led, impl)

        def warm(led: Ledger = led, impl: str = impl) -> proof.LiabilitiesRoot:
            led._trees.clear()
            return _root(led, impl)

        cold_s, cold_runs = _best(cold, repeats)
        warm_s, warm_runs = _best(warm, repeats)
        root = led.liabilities_root(ASSET)
        names = [f"c{(i * 104_729) % customers:07d}" for i in range(PROOFS)]
        docs: list[str] = []
        t0 = time.perf_counter()
        for name in names:
            docs.append(led.inclusion_proof(name, ASSET))
        proof_rate = len(names) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for doc in docs:
            proof.verify_inclusion(doc, root)
        verify_rate = len(docs) / (time.perf_counter() - t0)
        per_core[core] = {
            "setup_s": round(setup_s, 2), "reconcile_s": rec_s, "reconcile_runs": rec_runs,
            "recount_s": recount_s, "cold_s": cold_s, "cold_runs": cold_runs,
            "warm_s": warm_s, "warm_runs": warm_runs, "proofs_per_s": proof_rate,
            "verify_per_s": verify_rate, "tree": impl,
            # the proof key is random per ledger, so compare what it does not touch
            "root": (root.position, root.leaves, root.total_minor),
            "liabilities_minor": report.liabilities_minor,
        }
        led.close()
    if per_core["compiled"]["root"] != per_core["python"]["root"]:
        raise RuntimeError("the two cores built liabilities roots of different totals")
    fast, twin = per_core["compiled"], per_core["python"]
    common = {"customers": customers, "asset": ASSET, "store": "memory:",
              "cpu_count": os.cpu_count(), "python": platform.python_version(),
              "repeats": repeats}
    suffix = "_1m"  # the same names with --quick: params.customers says how many
    results["custody.reconcile" + suffix] = {
        "unit": "s", "value": round(fast["reconcile_s"], 6),
        "baselines": {"python_twin": round(twin["reconcile_s"], 6)},
        "params": {**common, "compiled_over_twin": _speedup(fast["reconcile_s"],
                                                             twin["reconcile_s"]),
                   "what": "led.reconcile(asset): wallets book vs attested, in flight, "
                           "coverage from the core's running liability total",
                   "full_recount_s": {"compiled": round(fast["recount_s"], 3),
                                      "python_twin": round(twin["recount_s"], 3)},
                   "runs": {"compiled": fast["reconcile_runs"],
                            "python_twin": twin["reconcile_runs"]},
                   "target": {"value": TARGET_S, "lower_is_better": True},
                   "meets_target": fast["reconcile_s"] < TARGET_S and (
                       fast["recount_s"] < TARGET_S),
                   "setup_s": fast["setup_s"]},
    }
    results["custody.liabilities_root" + suffix] = {
        "unit": "s", "value": round(fast["cold_s"], 3),
        "baselines": {"python_twin": round(twin["cold_s"], 3)},
        "params": {**common, "compiled_over_twin": _speedup(fast["cold_s"], twin["cold_s"]),
                   "what": "led.liabilities_tree(asset) from the live ledger: gather every "
                           "customer balance, derive leaf keys (cold), sort, build the "
                           "Merkle sum tree",
                   "cold_runs": {"compiled": fast["cold_runs"], "python_twin": twin["cold_runs"]},
                   "warm_s": {"compiled": round(fast["warm_s"], 3),
                              "python_twin": round(twin["warm_s"], 3)},
                   "tree_builder": {"compiled": fast["tree"], "python_twin": twin["tree"]},
                   "target": {"value": TARGET_S, "lower_is_better": True},
                   "meets_target": fast["cold_s"] < TARGET_S},
    }
    results["custody.inclusion_proof"] = {
        "unit": "proofs/s", "value": round(fast["proofs_per_s"]),
        "baselines": {"python_twin": round(twin["proofs_per_s"])},
        "params": {**common, "proofs": PROOFS,
                   "compiled_over_twin": round(fast["proofs_per_s"] / twin["proofs_per_s"], 2),
                   "what": "led.inclusion_proof(account, asset): JSON document with the "
                           "customer's nonce, from a cached tree"},
    }
    results["custody.verify_inclusion"] = {
        "unit": "verifications/s", "value": round(fast["verify_per_s"]),
        "baselines": {"python_twin": round(twin["verify_per_s"])},
        "params": {**common, "proofs": PROOFS,
                   "compiled_over_twin": round(fast["verify_per_s"] / twin["verify_per_s"], 2),
                   "what": "solvent.verify_inclusion(json, root): decode, recompute the leaf "
                           "key, hash up the path, check every sum"},
    }
    return results


def _speedup(compiled_s: float, twin_s: float) -> float:
    """For seconds (lower is better): how many times faster the compiled run was."""
    return round(twin_s / compiled_s, 2) if compiled_s else float("inf")


def _root(led: Ledger, impl: str) -> proof.LiabilitiesRoot:
    return led.liabilities_tree(ASSET, implementation=impl).root


CUSTODY_NAMES: Final = (
    "custody.reconcile_1m",
    "custody.liabilities_root_1m",
    "custody.inclusion_proof",
    "custody.verify_inclusion",
)


def custody_benchmarks() -> dict[str, Callable[[Any], dict[str, Any]]]:
    """The ``custody.*`` benchmarks for ``solvent bench``: name -> function of the bench
    context. The four share one (expensive) ledger, built on the first call of a run."""
    cache: dict[int, dict[str, Any]] = {}

    def bind(name: str) -> Callable[[Any], dict[str, Any]]:
        def call(ctx: Any) -> dict[str, Any]:
            key = id(ctx)
            if key not in cache:
                cache.clear()
                quick = ctx.sizes.repeats == 1
                cache[key] = run_custody(quick=quick, repeats=ctx.sizes.repeats)
            return dict(cache[key][name])

        return call

    return {name: bind(name) for name in CUSTODY_NAMES}
