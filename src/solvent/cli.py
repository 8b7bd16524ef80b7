"""The ``solvent`` command: ``demo``, ``verify URL``, ``bench``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_verify(args: argparse.Namespace) -> int:
    from solvent.errors import SolventError, StoreError
    from solvent.ledger import verify_store
    from solvent.store import JournalStore, redact

    try:
        store = JournalStore(args.url, create=False)
    except SolventError as exc:
        print(f"solvent verify: {exc}", file=sys.stderr)
        return 2
    try:
        report, state = verify_store(store, args.core, args.expect_head)
    except StoreError as exc:
        print(f"solvent verify: {exc}", file=sys.stderr)
        return 2
    except SolventError as exc:
        print(f"TAMPERED {redact(args.url)}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(
        f"OK {redact(args.url)}: {report.batches} batches, {report.records} records, "
        f"{report.snapshots_checked} snapshots checked, position {state.position}\n"
        f"head digest {report.head_digest}"
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from solvent.demo import run_demo

    return run_demo(path=args.path, customers=args.customers, core=args.core)


def _cmd_bench(args: argparse.Namespace) -> int:
    from solvent.bench import main as bench_main

    return bench_main(quick=args.quick, as_json=args.json, only=args.only)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="solvent",
        description="Event-sourced custodial ledger: demo, journal verification, benchmarks.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the Bithumb-payout demo on an embedded SQLite file")
    demo.add_argument("--path", default="solvent-demo.db", help="SQLite file (recreated)")
    demo.add_argument("--customers", type=int, default=3000, help="number of customers")
    demo.add_argument("--core", default="compiled", choices=("compiled", "python"))
    demo.set_defaults(func=_cmd_demo)

    verify = sub.add_parser("verify", help="replay a stored journal and check its hash chain")
    verify.add_argument("url", help="memory:, sqlite:///path or postgresql://...")
    verify.add_argument("--expect-head", help="hex head digest kept elsewhere (anchors the chain)")
    verify.add_argument("--core", default="compiled", choices=("compiled", "python"))
    verify.set_defaults(func=_cmd_verify)

    bench = sub.add_parser("bench", help="run the benchmarks")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--quick", action="store_true", help="small sizes, seconds")
    bench.add_argument("--only", action="append", default=None,
                       help="run only benchmarks whose name starts with this (repeatable)")
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
