"""The event store: eventsourcing recorders chosen by URL.

* ``memory:`` — eventsourcing's POPO recorders (nothing survives the process);
* ``sqlite:///path/to/ledger.db`` — eventsourcing's SQLite recorders (WAL
  journal mode, SQLite's default ``synchronous=FULL``: a commit is on disk when
  it returns). The default store for an embedded ledger;
* ``postgresql://user:password@host:port/dbname`` — eventsourcing's PostgreSQL
  recorders, for production and for more than one machine.

Query parameter ``prefix`` (letters, digits, ``_``) names the tables
``{prefix}journal`` and ``{prefix}snapshots`` (default ``solvent_``), so many
ledgers can share one database.

The journal is one stream; each stored event is one batch
(``solvent.journal.StoredBatch``). Appending batch *n* when batch *n* exists
already raises eventsourcing's ``IntegrityError`` (optimistic concurrency),
which this module reports as :class:`~solvent.errors.WriterFenced`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    IntegrityError,
    InternalError,
    MapperDeserialisationError,
    PersistenceError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.utils import TopicError, get_topic

from solvent.errors import StoreError, TamperDetected, WriterFenced
from solvent.journal import JOURNAL_ID, StoredBatch, StoredSnapshot, make_mapper

READ_PAGE_BATCHES = 256
_BATCH_FIELDS = ("prev_digest", "digest", "payload")
# checked before the mapper sees a row: it would import whatever module a topic names
_BATCH_TOPIC = get_topic(StoredBatch)
_SNAPSHOT_TOPIC = get_topic(StoredSnapshot)
CREATE_TABLE_ATTEMPTS = 10
_PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")


class JournalStore:
    """Append and read journal batches and snapshots in one backend."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.mapper = make_mapper()
        self._datastore: Any = None
        self.backend, self.journal, self.snapshots = self._open(url)

    # -- backends -----------------------------------------------------------

    def _open(self, url: str) -> tuple[str, ApplicationRecorder, AggregateRecorder]:
        if not isinstance(url, str):
            raise StoreError(f"store URL must be a str, got {type(url).__name__}")
        if url in ("memory:", "memory://"):
            from eventsourcing.popo import POPOAggregateRecorder, POPOApplicationRecorder

            return "memory", POPOApplicationRecorder(), POPOAggregateRecorder()
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        prefix = query.get("prefix", ["solvent_"])[0]
        if not _PREFIX_RE.fullmatch(prefix):
            raise StoreError(f"table prefix {prefix!r} must match {_PREFIX_RE.pattern}")
        try:
            if parts.scheme == "sqlite":
                return self._open_sqlite(parts.path, parts.netloc, prefix)
            if parts.scheme in ("postgresql", "postgres"):
                return self._open_postgres(parts, prefix)
        except PersistenceError as e:
            raise StoreError(f"cannot open store {redact(url)}: {e}") from e
        raise StoreError(
            f"unknown store URL {redact(url)}: use memory:, sqlite:///path or postgresql://..."
        )

    def _open_sqlite(
        self, path: str, netloc: str, prefix: str
    ) -> tuple[str, ApplicationRecorder, AggregateRecorder]:
        from eventsourcing.sqlite import (
            SQLiteAggregateRecorder,
            SQLiteApplicationRecorder,
            SQLiteDatastore,
        )

        if netloc:
            raise StoreError("sqlite URL takes three slashes: sqlite:///relative or sqlite:////abs")
        db = unquote(path[1:] if path.startswith("/") else path)
        if not db:
            raise StoreError("sqlite URL names no file")
        self._datastore = SQLiteDatastore(db, lock_timeout=10)
        journal = SQLiteApplicationRecorder(self._datastore, events_table_name=prefix + "journal")
        snapshots = SQLiteAggregateRecorder(self._datastore, events_table_name=prefix + "snapshots")
        journal.create_table()
        snapshots.create_table()
        return "sqlite", journal, snapshots

    def _open_postgres(
        self, parts: Any, prefix: str
    ) -> tuple[str, ApplicationRecorder, AggregateRecorder]:
        from eventsourcing.postgres import (
            PostgresAggregateRecorder,
            PostgresApplicationRecorder,
            PostgresDatastore,
        )

        dbname = unquote(parts.path.lstrip("/")) or "postgres"
        self._datastore = PostgresDatastore(
            dbname=dbname,
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            connect_timeout=5,
            pool_size=2,
        )
        journal = PostgresApplicationRecorder(
            self._datastore, events_table_name=prefix + "journal"
        )
        snapshots = PostgresAggregateRecorder(
            self._datastore, events_table_name=prefix + "snapshots"
        )
        for attempt in range(CREATE_TABLE_ATTEMPTS):
            try:
                journal.create_table()
                snapshots.create_table()
                break
            except (InternalError, IntegrityError, ProgrammingError):
                # eventsourcing re-creates a database-wide SQL function and type on every
                # open; two processes opening at once collide ("tuple concurrently
                # updated", "relation ... already exists"): try again
                if attempt == CREATE_TABLE_ATTEMPTS - 1:
                    raise
                time.sleep(0.02 * (attempt + 1))
        return "postgresql", journal, snapshots

    # -- journal --------------------------------------------------------------

    def append(self, batch: StoredBatch) -> None:
        """Commit one batch atomically; a version conflict is WriterFenced."""
        stored = self.mapper.to_stored_event(batch)
        try:
            self.journal.insert_events([stored])
        except IntegrityError as e:
            raise WriterFenced(
                f"batch {batch.originator_version} was already written by another writer: "
                "this ledger's uncommitted commands were discarded"
            ) from e
        except PersistenceError as e:
            raise StoreError(f"commit of batch {batch.originator_version} failed: {e}") from e

    def last_version(self) -> int:
        events = self.journal.select_events(JOURNAL_ID, desc=True, limit=1)
        return events[0].originator_version if events else 0

    def read(self, after_version: int = 0) -> Iterator[StoredBatch]:
        """Yield stored batches with version > ``after_version``, in order.

        Undecodable stored state raises TamperDetected naming the batch.
        """
        gt = after_version
        while True:
            page = self.journal.select_events(JOURNAL_ID, gt=gt, limit=READ_PAGE_BATCHES)
            for stored in page:
                yield self._decode_batch(stored)
            if len(page) < READ_PAGE_BATCHES:
                return
            gt = page[-1].originator_version

    def _decode_batch(self, stored: StoredEvent) -> StoredBatch:
        if stored.topic != _BATCH_TOPIC:
            raise TamperDetected(
                f"batch {stored.originator_version}: stored topic {stored.topic!r} "
                "is not a journal batch",
                version=stored.originator_version,
            )
        try:
            batch = self.mapper.to_domain_event(stored)
        except (MapperDeserialisationError, TopicError, ValueError, TypeError) as e:
            raise TamperDetected(
                f"batch {stored.originator_version}: stored bytes do not decode ({e})",
                version=stored.originator_version,
            ) from e
        if not isinstance(batch, StoredBatch):
            raise TamperDetected(
                f"batch {stored.originator_version}: stored topic {stored.topic!r} "
                "is not a journal batch",
                version=stored.originator_version,
            )
        # the mapper sets attributes from the stored dict without a constructor:
        # a changed key name leaves a field missing
        if not all(isinstance(getattr(batch, f, None), bytes) for f in _BATCH_FIELDS):
            raise TamperDetected(
                f"batch {stored.originator_version}: malformed envelope (fields "
                f"{sorted(vars(batch))})",
                version=stored.originator_version,
            )
        return batch

    # -- snapshots ------------------------------------------------------------

    def put_snapshot(self, version: int, payload: bytes) -> None:
        stored = self.mapper.to_stored_event(
            StoredSnapshot(JOURNAL_ID, version, payload)
        )
        try:
            self.snapshots.insert_events([stored])
        except IntegrityError:
            return  # a snapshot of this version exists already (another writer made it)
        except PersistenceError as e:
            raise StoreError(f"snapshot at batch {version} failed: {e}") from e

    def snapshots_desc(self, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
        """(version, payload) of the snapshots, newest first (at most ``limit``)."""
        for stored in self.snapshots.select_events(JOURNAL_ID, desc=True, limit=limit):
            if stored.topic != _SNAPSHOT_TOPIC:
                raise TamperDetected(
                    f"snapshot at batch {stored.originator_version} has topic {stored.topic!r}",
                    version=stored.originator_version,
                )
            try:
                snap = self.mapper.to_domain_event(stored)
            except (MapperDeserialisationError, TopicError, ValueError, TypeError) as e:
                raise TamperDetected(
                    f"snapshot at batch {stored.originator_version} does not decode ({e})",
                    version=stored.originator_version,
                ) from e
            if not isinstance(snap, StoredSnapshot) or not isinstance(
                getattr(snap, "payload", None), bytes
            ):
                raise TamperDetected(
                    f"snapshot at batch {stored.originator_version} has topic {stored.topic!r}"
                    " or a malformed envelope",
                    version=stored.originator_version,
                )
            yield snap.originator_version, snap.payload

    def close(self) -> None:
        if self._datastore is not None:
            self._datastore.close()
            self._datastore = None


def redact(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url
