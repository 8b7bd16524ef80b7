"""The hash-chained journal batch and its encoding through eventsourcing's seams.

A commit stores one :class:`StoredBatch` as one eventsourcing stored event in
the journal stream (originator :data:`JOURNAL_ID`, version = batch number from
1). Its ``payload`` is the msgspec-encoded :class:`solvent.records.Batch`, and::

    digest = SHA-256(prev_digest || version as 8 bytes big-endian || payload)

where ``prev_digest`` is the previous batch's digest (32 zero bytes for
batch 1). Changing, removing or reordering any stored byte breaks either a
digest or the link to the next batch; :func:`verify_link` names the batch.
The newest batch is protected by its own digest against accidental change;
against a forger who recomputes it, compare :attr:`Ledger.head_digest` with a
copy kept elsewhere (``solvent verify URL --expect-head HEX``).

The conversion to eventsourcing's ``StoredEvent`` goes through its ``Mapper``
with :class:`MsgspecTranscoder`, so its compressor and cipher (encryption at
rest) can be plugged in unchanged.
"""

from __future__ import annotations

import hashlib
from typing import Any
from uuid import UUID, uuid5

import msgspec
from eventsourcing.persistence import Mapper, Transcoder

from solvent.errors import TamperDetected

JOURNAL_ID = uuid5(UUID("8f4c2d52-1f0b-4f5e-9a4c-6a1b1d0c5e11"), "solvent.journal")
GENESIS_DIGEST = bytes(32)


def chain_digest(prev_digest: bytes, version: int, payload: bytes) -> bytes:
    """The digest that batch ``version`` with ``payload`` must carry."""
    h = hashlib.sha256(prev_digest)
    h.update(version.to_bytes(8, "big"))
    h.update(payload)
    return h.digest()


class StoredBatch:
    """One commit of the journal, shaped as an eventsourcing domain event."""

    originator_id: UUID
    originator_version: int
    prev_digest: bytes
    digest: bytes
    payload: bytes

    def __init__(
        self,
        originator_id: UUID,
        originator_version: int,
        prev_digest: bytes,
        digest: bytes,
        payload: bytes,
    ) -> None:
        self.originator_id = originator_id
        self.originator_version = originator_version
        self.prev_digest = prev_digest
        self.digest = digest
        self.payload = payload

    @classmethod
    def seal(cls, version: int, prev_digest: bytes, payload: bytes) -> StoredBatch:
        return cls(JOURNAL_ID, version, prev_digest, chain_digest(prev_digest, version, payload),
                   payload)


class StoredSnapshot:
    """A snapshot of the ledger state after batch ``originator_version``."""

    originator_id: UUID
    originator_version: int
    payload: bytes

    def __init__(self, originator_id: UUID, originator_version: int, payload: bytes) -> None:
        self.originator_id = originator_id
        self.originator_version = originator_version
        self.payload = payload


class MsgspecTranscoder(Transcoder):
    """eventsourcing Transcoder that encodes an event's state with msgspec (MessagePack)."""

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(dict[str, Any])

    def encode(self, obj: Any) -> bytes:
        return self._encoder.encode(obj)

    def decode(self, data: bytes) -> Any:
        return self._decoder.decode(data)


def make_mapper() -> Mapper[UUID]:
    return Mapper(transcoder=MsgspecTranscoder())


def verify_link(batch: Any, version: int, prev_digest: bytes) -> None:
    """Raise TamperDetected unless ``batch`` is a well-formed batch ``version``
    whose digest is correct and whose link points at ``prev_digest``."""
    if not isinstance(batch, StoredBatch):
        raise TamperDetected(f"batch {version}: not a journal batch", version=version)
    if batch.originator_version != version:
        raise TamperDetected(
            f"batch {version}: found batch {batch.originator_version} where {version} belongs"
            " (a batch is missing or out of order)",
            version=version,
        )
    fields = (batch.prev_digest, batch.digest, batch.payload)
    if not all(isinstance(f, bytes) for f in fields) or len(batch.digest) != 32:
        raise TamperDetected(f"batch {version}: malformed envelope", version=version)
    if batch.prev_digest != prev_digest:
        raise TamperDetected(
            f"batch {version}: link to batch {version - 1} is broken "
            f"(expected {prev_digest.hex()[:16]}…, stored {batch.prev_digest.hex()[:16]}…)",
            version=version,
        )
    if chain_digest(prev_digest, version, batch.payload) != batch.digest:
        raise TamperDetected(
            f"batch {version}: content does not match its digest (stored bytes were changed)",
            version=version,
        )
