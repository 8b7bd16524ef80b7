"""The event store: eventsourcing recorders chosen by URL.

* ``memory:`` — eventsourcing's POPO recorders (nothing survives the process);
* ``sqlite:///path/to/ledger.db`` — eventsourcing's SQLite recorders (WAL
  journal mode, SQLite's default ``synchronous=FULL``: a commit is on disk when
  it returns). The default store for an embedded ledger;
* ``postgresql://user:password@host:port/dbname`` — eventsourcing's PostgreSQL
  recorders, for production and for more than one machine (the journal's sends each
  batch as a binary parameter: ``solvent.store_postgres``).

Query parameter ``prefix`` (letters, digits, ``_``) names the tables
``{prefix}journal`` and ``{prefix}snapshots`` (default ``solvent_``), so many
ledgers can share one database. PostgreSQL URLs also take ``connect_timeout``:
seconds a try waits for a connection (default 5, at most 300), and ``attempts``: tries
of each read and write, 0.2 s apart (default 3, 1..10; eventsourcing's own is 10). A
server that is gone fails a call after about ``attempts`` × (``connect_timeout`` + 0.2)
seconds. Any other query parameter, or one given twice, is refused, and so is a URL
that does not parse (a port that is not a number; a password whose ``/ ? # @ :`` are
not percent-encoded) or that has a ``#`` fragment. No message shows a password: URLs
go through :func:`redact`, a driver's own messages through :func:`scrub`.

The journal is one stream; each stored event is one batch
(``solvent.journal.StoredBatch``). Appending batch *n* when batch *n* exists
already raises eventsourcing's ``IntegrityError`` (optimistic concurrency),
which this module reports as :class:`~solvent.errors.WriterFenced`.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    ConnectionPoolClosedError,
    IntegrityError,
    InternalError,
    MapperDeserialisationError,
    OperationalError,
    PersistenceError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.utils import TopicError, get_topic

from solvent.errors import StoreError, TamperDetected, WriterFenced
from solvent.journal import JOURNAL_ID, StoredBatch, StoredSnapshot, make_mapper

READ_PAGE_BATCHES = 256
DEFAULT_CONNECT_TIMEOUT_S = 5
MAX_CONNECT_TIMEOUT_S = 300
# checked before the mapper sees a row: it would import whatever module a topic names
CREATE_TABLE_ATTEMPTS = 10
_POSTGRES_PARAMS = ("prefix", "connect_timeout", "attempts")
_PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")
_PASSWORD_PARAM_RE = re.compile(r"(?i)([?&]password=)[^&#]*")


class JournalStore:
    """Append and read journal batches and snapshots in one backend."""

    def __init__(self, url: str, *, create: bool = True, readonly: bool = False) -> None:
        """Open the store at ``url``; with ``create=False`` a missing SQLite file or
        missing tables are a StoreError, and nothing is created. ``readonly=True``
        (auditing a journal: ``solvent verify``) also implies ``create=False`` and
        opens a SQLite file read-only, as it is: not switched to WAL, not written."""
        self.url = url
        self.create = create and not readonly
        self.readonly = readonly
        self.lz4 = False  # PostgreSQL: new batches are stored with lz4 (store_postgres)
        self.mapper = make_mapper()
        self._datastore: Any = None
        try:
            self.backend, self.journal, self.snapshots = self._open(url)
        except BaseException:
            self.close()  # no connection (nor SQLite's -wal and -shm files) left behind
            raise

    # -- backends -----------------------------------------------------------

    def _open(self, url: str) -> tuple[str, ApplicationRecorder, AggregateRecorder]:
        if not isinstance(url, str):
            raise StoreError(f"store URL must be a str, got {type(url).__name__}")
        if url in ("memory:", "memory://"):
            from eventsourcing.popo import POPOAggregateRecorder, POPOApplicationRecorder

            return "memory", POPOApplicationRecorder(), POPOAggregateRecorder()
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  (raises on a port that is not a number in 0..65535)
        except ValueError:  # its message may quote the password: say what to do instead
            raise StoreError(f"malformed store URL {redact(url)}: its host or port does not "
                             "parse (percent-encode / ? # @ : in a password)") from None
        if parts.scheme.startswith("postgres") and "@" in (
                parts.path + parts.query + parts.fragment):
            raise StoreError(f"malformed store URL {redact(url)}: an '@' after the host (a "
                             "password with an unescaped / ? or #: percent-encode them)")
        if parts.fragment or url.endswith("#"):
            raise StoreError(f"store URL {redact(url)} has a '#' fragment: a file name's '#' "
                             "is written %23")
        query = parse_qs(parts.query, keep_blank_values=True)  # "prefix=" is refused
        known = {"sqlite": ("prefix",), "postgresql": _POSTGRES_PARAMS,
                 "postgres": _POSTGRES_PARAMS}.get(parts.scheme, ())
        for key, values in query.items() if known else ():  # else: an unknown scheme, below
            if key not in known:
                raise StoreError(f"unknown store URL parameter {key!r}: "
                                 f"{redact(url)} takes {', '.join(known)}")
            if len(values) > 1:
                raise StoreError(f"store URL parameter {key!r} given {len(values)} times")
        prefix = query.get("prefix", ["solvent_"])[0]
        if not _PREFIX_RE.fullmatch(prefix):
            raise StoreError(f"table prefix {prefix!r} must match {_PREFIX_RE.pattern}")
        try:
            if parts.scheme == "sqlite":
                return self._open_sqlite(parts.path, parts.netloc, prefix)
            if parts.scheme in ("postgresql", "postgres"):
                return self._open_postgres(parts, prefix, _connect_timeout_s(query),
                                           _attempts(query))
        except (PersistenceError, sqlite3.Error) as e:  # eventsourcing lets SQLite's own
            # errors out of a new connection's PRAGMA (a file that is not a database)
            raise StoreError(f"cannot open store {redact(url)}: "
                             f"{scrub(_one_line(e), url)}") from e
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
        if "\x00" in db:
            raise StoreError("sqlite URL names a file with a NUL character")
        if db == ":memory:" or db.startswith("file:"):  # SQLite's names, not files
            raise StoreError(f"sqlite URL names {db!r}, which SQLite reads as a database "
                             f"or URI of its own, not a file: use memory: for a ledger in "
                             f"memory, or ./{db} for a file of that name")
        if not self.create and not os.path.exists(db):
            raise StoreError(f"no ledger at {db!r}: the file does not exist")
        if os.path.isdir(db):
            raise StoreError(f"{db!r} is a directory, not a ledger file")
        # a file: URI (eventsourcing connects with uri=True), so that no path is read as
        # one of SQLite's URIs ("file:x?mode=memory" would be a database in memory)
        uri = "file:" + quote(os.path.abspath(db))
        if self.readonly:
            # mode=ro needs SQLite to find or make the -wal and -shm files: in a directory
            # this process cannot write, it can only find them. Where they are missing, no
            # writer holds the file in WAL mode, so it is read as immutable (a writer that
            # opens it during the read is not seen); where they exist, a writer may be
            # committing and checkpointing, and an immutable read would be torn.
            directory = os.path.dirname(os.path.abspath(db))
            wal_in_use = os.path.exists(db + "-wal") and os.path.exists(db + "-shm")
            uri += "?mode=ro" if wal_in_use or os.access(directory, os.W_OK) else "?immutable=1"
        for attempt in range(CREATE_TABLE_ATTEMPTS):
            self._datastore = datastore = SQLiteDatastore(uri, lock_timeout=10)
            if self.readonly:  # eventsourcing would switch the file to WAL: a write
                datastore.pool.is_journal_mode_wal = True
            journal = SQLiteApplicationRecorder(datastore, events_table_name=prefix + "journal")
            snapshots = SQLiteAggregateRecorder(datastore, events_table_name=prefix + "snapshots")
            if not self.create:
                break
            try:
                journal.create_table()
                snapshots.create_table()
                break
            except (OperationalError, sqlite3.OperationalError) as exc:
                # processes opening a new file at once: SQLite answers "database is
                # locked" at once (not after the lock timeout) to the first connection's
                # switch to WAL mode. The pool that met it does not recover (its writer
                # slot is not given back), so a new one tries again.
                datastore.close()
                self._datastore = None
                if "locked" not in str(exc) or attempt == CREATE_TABLE_ATTEMPTS - 1:
                    raise
                time.sleep(0.02 * (attempt + 1))
        return "sqlite", journal, snapshots

    def _open_postgres(
        self, parts: Any, prefix: str, connect_timeout_s: float, attempts: int
    ) -> tuple[str, ApplicationRecorder, AggregateRecorder]:
        from eventsourcing.postgres import PostgresDatastore

        from solvent.store_postgres import (
            PostgresJournalRecorder,
            PostgresSnapshotRecorder,
            prefer_lz4,
        )

        where: dict[str, Any] = {
            "dbname": unquote(parts.path.lstrip("/")) or "postgres",
            "host": parts.hostname or "127.0.0.1", "port": parts.port or 5432,
            "user": unquote(parts.username or "postgres"),
            "password": unquote(parts.password or "")}
        _first_connection(self.url, where, connect_timeout_s,
                          () if self.create else (prefix + "journal", prefix + "snapshots"))
        self._datastore = PostgresDatastore(**where, connect_timeout=connect_timeout_s,
                                            pool_size=2)
        journal = PostgresJournalRecorder(self._datastore, events_table_name=prefix + "journal")
        snapshots = PostgresSnapshotRecorder(
            self._datastore, events_table_name=prefix + "snapshots"
        )
        journal.attempts = snapshots.attempts = attempts
        for attempt in range(CREATE_TABLE_ATTEMPTS if self.create else 0):
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
        if self.create:
            self.lz4 = prefer_lz4(self._datastore, (prefix + "journal", prefix + "snapshots"))
        return "postgresql", journal, snapshots

    # -- journal --------------------------------------------------------------

    def append(self, batch: StoredBatch) -> None:
        """Commit one batch atomically; a version conflict is WriterFenced."""
        stored = self.mapper.to_stored_event(batch)
        try:
            self.journal.insert_events([stored])
        except IntegrityError as e:
            if not self._has_version(self.journal, batch.originator_version):
                # a constraint or trigger of the database refused it, not another writer
                raise StoreError(f"commit of batch {batch.originator_version} refused: {e}"
                                 ) from e
            raise WriterFenced(
                f"batch {batch.originator_version} was already written by another writer: "
                "this ledger's uncommitted commands were discarded"
            ) from e
        except ConnectionPoolClosedError as e:  # not a PersistenceError in eventsourcing
            raise StoreError(f"commit of batch {batch.originator_version} failed: the store "
                             "is closed") from e
        except (PersistenceError, sqlite3.Error) as e:
            raise StoreError(f"commit of batch {batch.originator_version} failed: {e}") from e

    def _select(self, recorder: AggregateRecorder, **kwargs: Any) -> Sequence[StoredEvent]:
        try:
            return recorder.select_events(JOURNAL_ID, **kwargs)
        except ConnectionPoolClosedError as e:  # not a PersistenceError in eventsourcing
            raise StoreError(f"cannot read {redact(self.url)}: the store is closed") from e
        except (PersistenceError, sqlite3.Error) as e:
            raise StoreError(f"cannot read {redact(self.url)}: {_one_line(e)}") from e
        except TypeError as e:  # eventsourcing's PostgreSQL reader meets a NULL state
            raise TamperDetected(f"a stored row of {redact(self.url)} is malformed "
                                 f"({_one_line(e)})") from e

    def last_version(self) -> int:
        events = self._select(self.journal, desc=True, limit=1)
        return events[0].originator_version if events else 0

    def read(self, after_version: int = 0) -> Iterator[StoredBatch]:
        """Yield stored batches with version > ``after_version``, in order.

        Undecodable stored state raises TamperDetected naming the batch.
        """
        gt = after_version
        while True:
            page = self._select(self.journal, gt=gt, limit=READ_PAGE_BATCHES)
            for stored in page:
                yield self._decode_batch(stored)
            if len(page) < READ_PAGE_BATCHES:
                return
            gt = page[-1].originator_version

    def batch_at(self, version: int) -> StoredBatch | None:
        """Stored batch ``version`` alone (one row read), or None if there is none."""
        page = self._row_at(self.journal, version)
        return self._decode_batch(page[0]) if page else None

    def first_batch_from(self, version: int) -> StoredBatch | None:
        """The first stored batch at or after ``version`` (one row read), or None."""
        page = self._select(self.journal, gt=version - 1, limit=1)
        return self._decode_batch(page[0]) if page else None

    def _decode_batch(self, stored: StoredEvent) -> StoredBatch:
        batch = self._decode(stored, StoredBatch, ("prev_digest", "digest", "payload"), "batch")
        assert isinstance(batch, StoredBatch)
        return batch

    def _decode(
        self, stored: StoredEvent, cls: type, fields: tuple[str, ...], what: str
    ) -> object:
        """Decode a stored journal batch or snapshot; anything unexpected is tampering.

        The topic is checked before eventsourcing resolves it, so a forged topic
        never imports a module. The mapper sets attributes from the stored dict
        without a constructor, so every field is checked to be there, as bytes.
        """
        version = stored.originator_version
        if type(version) is not int or version < 1:  # SQLite keeps whatever a row is given
            raise TamperDetected(f"{what} {str(version)[:40]!r}: the stored version is not a "
                                 "positive int")
        if stored.topic != get_topic(cls):
            raise TamperDetected(
                f"{what} {version}: stored topic {stored.topic!r} is not a journal {what}",
                version=version,
            )
        try:
            obj = self.mapper.to_domain_event(stored)
        except (MapperDeserialisationError, TopicError, ValueError, TypeError) as e:
            raise TamperDetected(
                f"{what} {version}: stored bytes do not decode ({e})", version=version
            ) from e
        if not all(isinstance(getattr(obj, f, None), bytes) for f in fields):
            raise TamperDetected(
                f"{what} {version}: malformed envelope (fields {sorted(vars(obj))})",
                version=version,
            )
        return obj

    # -- snapshots ------------------------------------------------------------

    def put_snapshot(self, version: int, payload: bytes) -> None:
        stored = self.mapper.to_stored_event(
            StoredSnapshot(JOURNAL_ID, version, payload)
        )
        try:
            self.snapshots.insert_events([stored])
        except IntegrityError as e:
            if self._has_version(self.snapshots, version):
                return  # a snapshot of this version exists already (another writer made it)
            raise StoreError(f"snapshot at batch {version} refused: {e}") from e
        except ConnectionPoolClosedError as e:
            raise StoreError(f"snapshot at batch {version} failed: the store is closed") from e
        except (PersistenceError, sqlite3.Error) as e:
            raise StoreError(f"snapshot at batch {version} failed: {e}") from e

    def _has_version(self, recorder: AggregateRecorder, version: int) -> bool:
        """Whether ``recorder``'s table holds a row of ``version`` (after an
        ``IntegrityError``: a duplicate key, or some other constraint?)."""
        return bool(self._row_at(recorder, version))

    def _row_at(self, recorder: AggregateRecorder, version: int) -> Sequence[StoredEvent]:
        """The stored row of ``version`` in ``recorder``'s table, as a page of 0 or 1."""
        return self._select(recorder, gt=version - 1, lte=version, limit=1)

    def snapshots_desc(self, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
        """(version, payload) of the snapshots, newest first (at most ``limit``), read
        one row at a time as the iteration goes: a reader that stops at the first
        snapshot it can use does not load the others."""
        below: int | None = None
        seen = 0
        while limit is None or seen < limit:
            bound = {} if below is None else {"lte": below - 1}
            page = self._select(self.snapshots, desc=True, limit=1, **bound)
            if not page:
                return
            snap = self._decode(page[0], StoredSnapshot, ("payload",), "snapshot at batch")
            assert isinstance(snap, StoredSnapshot)
            yield snap.originator_version, snap.payload
            below = snap.originator_version
            seen += 1

    def close(self) -> None:
        if self._datastore is not None:
            self._datastore.close()
            self._datastore = None


def _first_connection(url: str, where: dict[str, Any], connect_timeout_s: float,
                      tables: Sequence[str] = ()) -> None:
    """Connect once, directly, before the pool does: where the server answers (no such
    database, role or password), the pool would only say "couldn't get a connection
    after 5.00 sec" once its wait ran out; this says why, at once. ``tables`` (a store
    opened without creating it) must exist, as a SQLite file must: else "no ledger"."""
    import psycopg

    try:
        with psycopg.connect(**where, connect_timeout=max(2, math.ceil(connect_timeout_s))
                             ) as conn:
            missing = [t for t in tables
                       if conn.execute("SELECT to_regclass(%s)", (f'"{t}"',)).fetchone()
                       == (None,)]
    except psycopg.Error as exc:
        raise StoreError(f"cannot open store {redact(url)}: "
                         f"{scrub(_one_line(exc), url)}") from None
    if missing:
        raise StoreError(f"no ledger at {redact(url)}: table {missing[0]!r} does not exist")


def _one_line(exc: BaseException) -> str:
    """An error's message on one line, without the statement PostgreSQL quotes after it
    (``LINE 1: SELECT ...`` and a caret)."""
    return " ".join(str(exc).split("\nLINE ")[0].split()) or type(exc).__name__


def _attempts(query: dict[str, list[str]]) -> int:
    from solvent.store_postgres import DEFAULT_ATTEMPTS, MAX_ATTEMPTS

    text = query.get("attempts", [str(DEFAULT_ATTEMPTS)])[0]
    if not (len(text) <= 2 and text.isascii() and text.isdigit()
            and 1 <= int(text) <= MAX_ATTEMPTS):
        raise StoreError(f"attempts {text!r} must be a whole number in 1..{MAX_ATTEMPTS}")
    return int(text)


def _connect_timeout_s(query: dict[str, list[str]]) -> float:
    text = query.get("connect_timeout", [str(DEFAULT_CONNECT_TIMEOUT_S)])[0]
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_CONNECT_TIMEOUT_S:  # also NaN
        raise StoreError(f"connect_timeout {text!r} must be seconds in (0, "
                         f"{MAX_CONNECT_TIMEOUT_S}]")
    return value


def postgres_conninfo(url: str) -> tuple[str, str]:
    """``(libpq URL, table prefix)`` of a ``postgresql://`` store URL: the URL without
    Solvent's own query (``prefix``), and the prefix, checked as the store checks it."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise StoreError(f"not a PostgreSQL store URL: {redact(url)}")
    prefix = parse_qs(parts.query, keep_blank_values=True).get("prefix", ["solvent_"])[0]
    if not _PREFIX_RE.fullmatch(prefix):
        raise StoreError(f"table prefix {prefix!r} must match {_PREFIX_RE.pattern}")
    return parts._replace(query="").geturl(), prefix


def postgres_unreachable(url: str, timeout_s: int = 3) -> str | None:
    """None when a PostgreSQL server answers a query at ``url`` within ``timeout_s``
    seconds, else why not (one line). For tests and benchmarks that need a server."""
    import psycopg

    try:
        with psycopg.connect(postgres_conninfo(url)[0], connect_timeout=timeout_s) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure to parse or to connect means "no server"
        return scrub(" ".join(f"{type(exc).__name__}: {exc}".split()), url)
    return None


def drop_postgres_store(url: str) -> None:
    """Drop the two tables of the PostgreSQL store at ``url`` (``{prefix}journal`` and
    ``{prefix}snapshots``), if they exist. For benchmarks and tests that make a store
    with a table prefix of their own; nothing in a ledger's own path drops tables."""
    import psycopg
    from psycopg.sql import SQL, Identifier

    conninfo, prefix = postgres_conninfo(url)
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        # quoted as eventsourcing quotes them when it creates them (a prefix may have A-Z)
        conn.execute(SQL("DROP TABLE IF EXISTS {}, {}").format(
            Identifier(prefix + "journal"), Identifier(prefix + "snapshots")))


# What eventsourcing creates in a PostgreSQL schema beside a store's tables, shared by
# every store there (the originator ids are UUIDs)
_PG_HELPER_FUNCTION = "es_insert_events_uuid"
_PG_HELPER_TYPE = "stored_event_uuid"


def postgres_helpers_present(url: str) -> bool:
    """Whether eventsourcing's shared function and type exist in ``url``'s database
    (a store created there makes them; they outlive its tables)."""
    import psycopg

    conninfo, _prefix = postgres_conninfo(url)
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM pg_proc WHERE proname = %s)"
            " + (SELECT count(*) FROM pg_type WHERE typname = %s)",
            (_PG_HELPER_FUNCTION, _PG_HELPER_TYPE)).fetchone()
    return bool(row and row[0])


def drop_postgres_helpers(url: str) -> None:
    """Drop eventsourcing's shared function and type from ``url``'s database, where no
    table uses the type (for a benchmark that found them absent; never for a ledger)."""
    import psycopg
    from psycopg.sql import SQL, Identifier

    conninfo, _prefix = postgres_conninfo(url)
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        conn.execute(SQL("DROP FUNCTION IF EXISTS {}").format(Identifier(_PG_HELPER_FUNCTION)))
        with contextlib.suppress(psycopg.errors.DependentObjectsStillExist):
            conn.execute(SQL("DROP TYPE IF EXISTS {}").format(Identifier(_PG_HELPER_TYPE)))


def _password(url: str) -> str:
    """The password text of ``url`` as written, found without parsing the URL (one with
    an unescaped ``/``, ``?`` or ``#`` in its password does not parse): what lies
    between the first ``:`` and the last ``@`` after ``scheme://``."""
    rest = url.partition("://")[2]
    userinfo = rest[: max(rest.rfind("@"), 0)]
    return userinfo.partition(":")[2]


def redact(url: str) -> str:
    """``url`` without its password (in the user part or a ``password=`` parameter),
    for messages; a URL that does not parse is redacted all the same."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    at = rest.rfind("@")
    user, colon, _ = rest[: max(at, 0)].partition(":")
    if colon:
        rest = f"{user}:***{rest[at:]}"
    return scheme + sep + _PASSWORD_PARAM_RE.sub(r"\1***", rest)


def scrub(text: str, url: str) -> str:
    """``text`` (a driver's error message about ``url``) with the URL's password, as
    written and percent-decoded, replaced by ``***``."""
    secret = _password(url)
    for form in {secret, unquote(secret)}:
        if len(form) >= 2:  # a one-character password would blank the message instead
            text = text.replace(form, "***")
    return text
