"""The ``solvent`` command: ``demo``, ``verify URL``, ``proof ...``, ``bench``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


def _cmd_verify(args: argparse.Namespace) -> int:
    from solvent.errors import InvalidArgument, SolventError, StoreError
    from solvent.ledger import verify_store
    from solvent.store import JournalStore, redact

    try:
        store = JournalStore(args.url, create=False)
    except SolventError as exc:
        print(f"solvent verify: {exc}", file=sys.stderr)
        return 2
    try:
        report, state = verify_store(store, args.core, args.expect_head)
    except (StoreError, InvalidArgument) as exc:  # not an answer about the journal
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


def _open_for_proof(args: argparse.Namespace) -> Any:
    from solvent.ledger import Ledger

    return Ledger.open(args.url, core=args.core)


def _write(text: str, out: str | None) -> None:
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        print(f"wrote {out}", file=sys.stderr)
    else:
        print(text)


def _cmd_proof_publish(args: argparse.Namespace) -> int:
    import msgspec

    from solvent.errors import SolventError

    try:
        with _open_for_proof(args) as led:
            statement = led.reserves_statement(args.asset, at=args.at)
    except SolventError as exc:
        print(f"solvent proof publish: {exc}", file=sys.stderr)
        return 2
    _write(msgspec.json.format(msgspec.json.encode(statement)).decode(), args.out)
    return 0


def _cmd_proof_inclusion(args: argparse.Namespace) -> int:
    from solvent.errors import SolventError

    try:
        with _open_for_proof(args) as led:
            document = led.inclusion_proof(args.account, args.asset, at=args.at)
    except SolventError as exc:
        print(f"solvent proof inclusion: {exc}", file=sys.stderr)
        return 2
    _write(document, args.out)
    return 0


def _cmd_proof_verify(args: argparse.Namespace) -> int:
    import msgspec

    from solvent.proof import ProofInvalid, root_from_json, verify_inclusion

    with open(args.proof, encoding="utf-8") as fh:
        document = fh.read()
    root: Any
    if args.root is None:
        print("solvent proof verify: --root (the published root hash or statement file) "
              "is required: a proof checked only against itself proves nothing",
              file=sys.stderr)
        return 2
    if len(args.root) == 64 and all(ch in "0123456789abcdef" for ch in args.root.lower()):
        root = args.root.lower()
    else:
        with open(args.root, encoding="utf-8") as fh:
            raw = fh.read()
        data = msgspec.json.decode(raw)
        root = root_from_json(msgspec.json.encode(data.get("liabilities", data)))
    try:
        verify_inclusion(document, root)
    except ProofInvalid as exc:
        print(f"INVALID {args.proof}: {exc}", file=sys.stderr)
        return 1
    proof_doc = msgspec.json.decode(document)
    leaf = proof_doc["leaf"]
    print(f"OK {args.proof}: balance {leaf['balance_minor']} minor units of "
          f"{proof_doc['asset']} is included in the total "
          f"{proof_doc['root']['total_minor']} at position {proof_doc['position']}")
    return 0


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

    proof_cmd = sub.add_parser("proof", help="proof of liabilities: publish, inclusion, verify")
    proof_sub = proof_cmd.add_subparsers(dest="proof_command", required=True)
    publish = proof_sub.add_parser(
        "publish", help="print the liabilities root and attested reserves of an asset")
    inclusion = proof_sub.add_parser("inclusion", help="print one customer's inclusion proof")
    for p in (publish, inclusion):
        p.add_argument("url", help="sqlite:///path or postgresql://...")
        p.add_argument("--asset", required=True)
        p.add_argument("--at", type=int, default=None, help="journal position (default: now)")
        p.add_argument("--out", help="write to this file instead of standard output")
        p.add_argument("--core", default="compiled", choices=("compiled", "python"))
    inclusion.add_argument("--account", required=True)
    publish.set_defaults(func=_cmd_proof_publish)
    inclusion.set_defaults(func=_cmd_proof_inclusion)
    verify_p = proof_sub.add_parser(
        "verify", help="verify an inclusion proof file against a published root, no ledger")
    verify_p.add_argument("proof", help="the inclusion proof JSON file")
    verify_p.add_argument("--root", help="the published root hash (hex) or statement file")
    verify_p.set_defaults(func=_cmd_proof_verify)

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
