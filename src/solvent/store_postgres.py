"""The PostgreSQL journal: eventsourcing's recorder, with the batch sent as binary and
stored with lz4.

eventsourcing's ``PostgresApplicationRecorder`` inserts stored events through an array
of a composite type (``unnest(%s::stored_event[])``). psycopg sends that array as text,
so the ``bytea`` payload of each event is escaped on the client (a regular expression
over every byte) and parsed back on the server. A Solvent batch is one stored event
whose payload can be megabytes (an ``OrdersSubmitted`` record of 10,000 rows is about
1.6 MB): that text round trip was most of the commit.

This recorder inserts the one event of an ``append`` with a plain ``INSERT ... VALUES``
whose payload parameter is sent in binary (psycopg's ``%b``), and so does the
snapshot recorder (a big ledger's snapshot is tens of megabytes: 64 MB took 5.0 s
to store as text, 0.5 s as binary). Everything else is
eventsourcing's: the table and its primary key on ``(originator_id,
originator_version)`` (a second writer of the same batch number gets ``IntegrityError``,
which the store reports as ``WriterFenced``), the exclusive table lock and the
``NOTIFY`` of each insert, the pipeline and the transaction, and the notification id it
returns. Several events in one call (Solvent never makes such a call) take
eventsourcing's own path.

PostgreSQL compresses a large ``bytea`` value before it stores it, with ``pglz`` by
default: about 50 ms for one such batch, and a synthetic 1.6 MB one took 220 ms against
7.8 ms with ``lz4`` (the server's other method since PostgreSQL 14, where it was built
with it, as Debian's is). :func:`prefer_lz4` sets the journal and snapshot tables'
``state`` column to ``lz4`` when a store is opened for writing. It changes how new rows
are stored, never what they hold. A server without ``lz4`` keeps its default.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
)
from psycopg.sql import SQL, Identifier

DEFAULT_ATTEMPTS = 3
MAX_ATTEMPTS = 10
RETRY_WAIT_S = 0.2  # between attempts, as eventsourcing waits


class AttemptedRecorder(PostgresAggregateRecorder):
    """eventsourcing's PostgreSQL aggregate recorder, with two changes shared by the
    journal's and the snapshots' recorders.

    One event is inserted with a plain ``INSERT ... VALUES``, its payload a binary
    parameter (see the module doc). Inserts and selects are tried ``attempts`` times (a
    store URL's ``?attempts=``), ``RETRY_WAIT_S`` apart, where eventsourcing tries each
    10 times.

    A try fails on a lost connection or on waiting ``connect_timeout`` for one; more
    tries ride out a server restart (a pool may hand out a connection the restart
    closed), fewer fail sooner when the server is gone: a commit holds the ledger's
    lock for up to ``attempts`` x (``connect_timeout`` + ``RETRY_WAIT_S``) seconds."""

    attempts: int = DEFAULT_ATTEMPTS
    RETURNING = ""  # what the one-event INSERT returns

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.insert_one_binary_statement = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "VALUES (%s, %s, %s, %b)" + self.RETURNING
        ).format(schema=Identifier(self.datastore.schema),
                 table=Identifier(self.events_table_name))

    def _insert_stored_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        if len(stored_events) != 1:
            super()._insert_stored_events(curs, stored_events, **kwargs)
            return
        self._before_insert(curs)
        event = stored_events[0]
        curs.execute(self.insert_one_binary_statement,
                     (event.originator_id, event.originator_version, event.topic, event.state))

    def _before_insert(self, curs: Any) -> None:
        """What the recorder does in the insert's transaction before the row."""

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any
                      ) -> Sequence[int] | None:
        result: Sequence[int] | None = self._attempt(super().insert_events, stored_events,
                                                     **kwargs)
        return result

    def select_events(self, originator_id: UUID | str, *, gt: int | None = None,
                      lte: int | None = None, desc: bool = False, limit: int | None = None
                      ) -> Sequence[StoredEvent]:
        result: Sequence[StoredEvent] = self._attempt(
            super().select_events, originator_id, gt=gt, lte=lte, desc=desc, limit=limit)
        return result

    def _attempt(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """The bound ``method`` without eventsourcing's retry decorator (``functools.wraps``
        keeps the plain function as ``__wrapped__``), tried ``attempts`` times; a method
        without one is tried as it is."""
        raw = getattr(method, "__wrapped__", None)
        attempt = 1
        while True:
            try:
                return method(*args, **kwargs) if raw is None else raw(self, *args, **kwargs)
            except (InterfaceError, OperationalError):
                if attempt >= self.attempts:
                    raise
                attempt += 1
                time.sleep(RETRY_WAIT_S)


class PostgresJournalRecorder(AttemptedRecorder, PostgresApplicationRecorder):
    """eventsourcing's PostgreSQL application recorder, inserting one event with its
    payload as a binary parameter (see the module doc) after its table lock and
    ``NOTIFY``, and returning its notification id, as eventsourcing's own insert does."""

    RETURNING = " RETURNING notification_id"

    def _before_insert(self, curs: Any) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)


class PostgresSnapshotRecorder(AttemptedRecorder):
    """eventsourcing's PostgreSQL aggregate recorder for the snapshots table, inserting
    one snapshot with its payload as a binary parameter (see the module doc). The
    primary key still makes a second snapshot of a version an ``IntegrityError``."""


def prefer_lz4(datastore: PostgresDatastore, tables: Sequence[str]) -> bool:
    """Store new values of each table's ``state`` column with ``lz4`` (see the module
    doc); True when every table does so now, False when the server cannot (it keeps
    its default, ``pglz``). A table already set is left alone, so only the first open
    of a store takes the brief exclusive lock of ``ALTER TABLE``."""
    done = True
    with datastore.get_connection() as conn:
        for table in tables:
            try:
                row = conn.execute(  # quoted as the recorder quotes it (a prefix may have A-Z)
                    "SELECT attcompression FROM pg_attribute WHERE attname = 'state' "
                    "AND attrelid = to_regclass(format('%%I.%%I', %s::text, %s::text))",
                    (datastore.schema, table),
                ).fetchone()
                if row is not None and row["attcompression"] == "l":
                    continue
                conn.execute(SQL("ALTER TABLE {}.{} ALTER COLUMN state SET COMPRESSION lz4")
                             .format(Identifier(datastore.schema), Identifier(table)))
            except psycopg.Error:  # before PostgreSQL 14, or built without lz4
                done = False
    return done
