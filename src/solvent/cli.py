"""The ``solvent`` command: ``demo``, ``verify URL``, ``proof ...``, ``bench``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any


class _OutputClosed(Exception):
    """Whoever reads this command's output stopped reading (a broken pipe)."""


def _quiet_stdout() -> None:
    """Send what is left for stdout nowhere (the interpreter's last flush included)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _verdict(text: str) -> None:
    """Print a verdict line. Its answer is the exit code: a reader that went away
    (``solvent verify URL | head -1``) does not change it."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        _quiet_stdout()


def _data(text: str) -> None:
    """Print a document (a proof, a root): one not read to its end was not delivered."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        _quiet_stdout()
        raise _OutputClosed from None


def _cmd_verify(args: argparse.Namespace) -> int:
    from solvent.errors import InvalidArgument, SolventError, StoreError
    from solvent.ledger import verify_store
    from solvent.store import JournalStore, redact

    if args.url.startswith("memory:"):
        print("solvent verify: memory: is a store inside one process; there is nothing to "
              "read from here (verify a sqlite:/// or postgresql:// URL)", file=sys.stderr)
        return 2
    try:
        store = JournalStore(args.url, readonly=True)
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
    _verdict(
        f"OK {redact(args.url)}: {report.batches} batches, {report.records} records, "
        f"{report.snapshots_checked} snapshots checked"
        + (f" ({report.snapshots_skipped} of another format skipped)"
           if report.snapshots_skipped else "")
        + f", position {state.position}\n"
        f"head digest {report.head_digest}"
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from solvent.demo import run_demo
    from solvent.errors import StoreError

    try:
        return run_demo(path=args.path, customers=args.customers, core=args.core)
    except StoreError as exc:  # a full disk, say: the demo stops; what it committed verifies
        print(f"solvent demo: the store failed, the demo stopped: {exc}", file=sys.stderr)
        return 2


def _cmd_bench(args: argparse.Namespace) -> int:
    from solvent.bench import main as bench_main

    return bench_main(quick=args.quick, as_json=args.json, only=args.only)


def _open_for_proof(args: argparse.Namespace) -> Any:
    """The ledger at ``args.url`` (never created), its journal verified: a proof is
    made from the replayed journal's state, never from a snapshot alone."""
    from solvent.ledger import Ledger

    led = Ledger.open(args.url, core=args.core, create=False)
    try:
        led.verify()
    except BaseException:
        led.close()
        raise
    return led


def _prove(args: argparse.Namespace, name: str, make: Callable[[Any], str]) -> int:
    """Run a proof command: an output path that cannot be written is refused before the
    ledger is opened, a tampered journal is TAMPERED (exit 1), any other refusal exit 2."""
    from solvent.errors import SolventError, TamperDetected
    from solvent.store import redact

    if args.out is not None:
        folder = os.path.dirname(os.path.abspath(args.out))
        if os.path.isdir(args.out) or not os.path.isdir(folder) or not os.access(folder,
                                                                                 os.W_OK):
            print(f"solvent proof {name}: cannot write {args.out}: not a file in a writable "
                  "directory", file=sys.stderr)
            return 2
    try:
        with _open_for_proof(args) as led:
            text = make(led)
    except TamperDetected as exc:
        print(f"TAMPERED {redact(args.url)}: {exc}", file=sys.stderr)
        return 1
    except SolventError as exc:
        print(f"solvent proof {name}: {exc}", file=sys.stderr)
        return 2
    if args.out is None:
        _data(text)
        return 0
    try:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    except OSError as exc:
        print(f"solvent proof {name}: cannot write {args.out}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _cmd_proof_publish(args: argparse.Namespace) -> int:
    import msgspec

    return _prove(args, "publish", lambda led: msgspec.json.format(msgspec.json.encode(
        led.reserves_statement(args.asset, at=args.at))).decode())


def _cmd_proof_inclusion(args: argparse.Namespace) -> int:
    return _prove(args, "inclusion",
                  lambda led: led.inclusion_proof(args.account, args.asset, at=args.at))


def _read_text(path: str, what: str) -> str:
    """The UTF-8 text of ``path``; a path that cannot be read is a ``ValueError``
    whose message says which file and why."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"the {what} {path} is not UTF-8 text") from exc


def _cmd_proof_verify(args: argparse.Namespace) -> int:
    import msgspec

    from solvent.proof import ProofInvalid, root_from_json, verify_inclusion

    root: Any
    if args.root is None:
        print("solvent proof verify: --root (the published root hash or statement file) "
              "is required: a proof checked only against itself proves nothing",
              file=sys.stderr)
        return 2
    try:
        document = _read_text(args.proof, "proof")
        if len(args.root) == 64 and all(ch in "0123456789abcdef" for ch in args.root.lower()):
            root = args.root.lower()
        else:
            raw = _read_text(args.root, "root")
            try:
                data = msgspec.json.decode(raw)
                if isinstance(data, dict):
                    data = data.get("liabilities", data)
                root = root_from_json(msgspec.json.encode(data))
            except (msgspec.DecodeError, ProofInvalid, RecursionError) as exc:  # nested deep
                raise ValueError(f"{args.root} is neither a root hash nor a published "
                                 f"statement or root document ({exc})") from exc
    except ValueError as exc:
        print(f"solvent proof verify: {exc}", file=sys.stderr)
        return 2
    try:
        verify_inclusion(document, root, account=args.account)
    except ProofInvalid as exc:
        print(f"INVALID {args.proof}: {exc}", file=sys.stderr)
        return 1
    proof_doc = msgspec.json.decode(document)
    leaf = proof_doc["leaf"]
    whose = leaf.get("account_id")
    _verdict(f"OK {args.proof}: balance {leaf['balance_minor']} minor units of "
             f"{proof_doc['asset']} for account {whose!r} is included in the total "
             f"{proof_doc['root']['total_minor']} at position {proof_doc['position']}")
    if args.account is None:
        print("note: pass --account YOUR_ID to check that the leaf is yours: a proof of "
              "another customer's leaf with the same balance verifies too"
              if whose is not None else "note: this proof names no account: it shows a leaf "
              "is counted, not that it is yours", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="solvent",
        description="Event-sourced custodial ledger: demo, journal verification, benchmarks.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the Bithumb-payout demo on an embedded SQLite file")
    demo.add_argument("--path", default="solvent-demo.db",
                      help="SQLite file (recreated if the demo made it; any other file is refused)")
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
    verify_p.add_argument("--account", help="your account id: the leaf must be yours")
    verify_p.set_defaults(func=_cmd_proof_verify)

    bench = sub.add_parser("bench", help="run the benchmarks")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--quick", action="store_true", help="small sizes, seconds")
    bench.add_argument("--only", action="append", default=None,
                       help="run only benchmarks whose name starts with this (repeatable)")
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code (docs: 0 OK, 1 TAMPERED or INVALID, 2 any other
    failure, such as output nobody read to its end)."""
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
        sys.stdout.flush()
    except (BrokenPipeError, _OutputClosed):
        _quiet_stdout()
        print("solvent: the output was closed before it was all written", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
