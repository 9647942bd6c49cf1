"""SqliteStore: the durable :class:`~inbus._store.Store`, one SQLite file per Bus.

Theory of operation
-------------------
This is the only module of inbus that imports ``sqlite3``. Every ``sqlite3.Error`` (and
every ``OSError`` met while opening) is translated here into
:class:`~inbus._errors.PersistenceError` naming the file and the problem, ``from`` the
original exception; nothing from sqlite3 escapes.

*Opening.* The file is created by us with mode 0600 (owner only); SQLite gives its
``-wal`` file the permissions of the database file, so it is 0600 too (no process-wide
``umask`` games, which would race with other threads). The connection runs in WAL mode with
``locking_mode=EXCLUSIVE``: the first access takes an exclusive OS lock that is held until
``close()``. So a second opener -- another process or another store in this process --
fails after ``timeout`` seconds with a PersistenceError saying the file is in use. The lock
is a kernel file lock: when its owner dies (even by SIGKILL) the kernel drops it and the
next open recovers the WAL. (No ``-shm`` file is used in exclusive mode.)

*Schema.* The tables, versions and migrations are data in :mod:`inbus._schema`; opening
runs the migrations a file needs in the opening transaction, so an upgrade is
all-or-nothing. A file of a version newer than this code knows is refused.

*Durability.* ``apply(ops)`` is one transaction (``BEGIN`` .. ``COMMIT``); when it returns
the ops are durable to the level chosen by ``synchronous``:

- ``"FULL"`` (the default): the WAL is fsynced at every commit, so a committed (confirmed)
  transaction survives a process crash *and* a power loss or OS crash -- the meaning of a
  RabbitMQ publisher confirm (it fsyncs before confirming). Group commit amortises the
  fsync over every write in a batch.
- ``"NORMAL"``: no fsync at commit (only at checkpoints). Survives a process crash
  (SIGKILL) with every committed transaction; a power loss may lose the last few commits
  (the file is never corrupted). About 5x cheaper per commit on a VM disk.
- ``"OFF"``: no fsync at all; a power loss may corrupt the file. For tests and throwaway
  data only.

*Clean shutdown and redelivered.* Opening sets ``clean`` to 0 in the same transaction
that reads its previous value (reported as ``Snapshot.clean``); ``close()`` sets it back
to 1. After an unclean close every stored message is flagged redelivered *in the file*
(``MarkDelivered`` operations of the crashed run may have been lost), so
``redelivered=False`` in a snapshot always means "certainly never delivered".

*Encoding.* Bodies are BLOBs; properties and arguments are tagged JSON
(:func:`~inbus._store.encode_value`), never pickle; binding arguments canonically (sorted
keys) so ``DeleteBinding`` can match them.

Not thread-safe: one thread at a time (the GroupCommitter serialises ``apply``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._errors import PersistenceError
from ._schema import MIGRATIONS as _MIGRATIONS
from ._schema import SCHEMA_VERSION
from ._store import (
    BindingRecord,
    DeleteBinding,
    DeleteExchange,
    DeleteMessage,
    DeleteQueue,
    DeleteVhost,
    ExchangeRecord,
    MarkDelivered,
    MessageRecord,
    Op,
    PurgeQueue,
    PutBinding,
    PutExchange,
    PutMessage,
    PutQueue,
    PutVhost,
    QueueRecord,
    Snapshot,
    coalesce,
    decode_value,
    encode_value,
)

__all__ = ["SCHEMA_VERSION", "FileSummary", "SqliteStore", "read_summary"]

SYNCHRONOUS_LEVELS = ("FULL", "NORMAL", "OFF")

# --- error translation ---------------------------------------------------------------------

# (SQLite primary error name, its text for Pythons < 3.11 that lack .sqlite_errorname, problem)
_PROBLEMS = (
    ("SQLITE_BUSY", "locked", "is locked: another Bus or process has it open (only one may "
     "open a file at a time; close the other one, or wait for it to exit)"),
    ("SQLITE_LOCKED", "", "is locked by another connection in this process"),
    ("SQLITE_READONLY", "readonly", "is read-only: check the permissions of the file and of "
     "its directory (SQLite must create a -wal file next to it)"),
    ("SQLITE_PERM", "", "permission denied: check the permissions of the file and directory"),
    ("SQLITE_CORRUPT", "malformed", "is corrupt (database disk image is malformed): restore "
     "it from a backup, or move it aside to start empty"),
    ("SQLITE_NOTADB", "not a database", "is not a SQLite database (wrong file, or its header "
     "is damaged)"),
    ("SQLITE_FULL", "full", "the disk is full (or the file reached its size limit): free "
     "some space; the failed write was rolled back"),
    ("SQLITE_CANTOPEN", "unable to open", "cannot be opened: check that its directory exists "
     "and is writable"),
    ("SQLITE_IOERR", "I/O error", "I/O error while reading or writing (truncated file or "
     "failing disk?)"),
)


def _translate(path: str, exc: BaseException, doing: str) -> PersistenceError:
    name = getattr(exc, "sqlite_errorname", "") or ""
    problem = "SQLite error" if isinstance(exc, sqlite3.Error) else "cannot be used"
    for primary, text, what in _PROBLEMS:
        if name.startswith(primary) if name else (text and text in str(exc)):
            problem = what
            break
    if "SHORT_READ" in name:
        problem = ("is truncated or damaged (short read): restore it from a backup, or move "
                   "it aside to start empty")
    return PersistenceError(path, f"{problem} ({doing}: {type(exc).__name__}: {exc})")


def _check_header(path: str) -> None:
    """Name the two commonest bad files precisely before SQLite sees them (cheap: 100 bytes).

    A file whose header is not SQLite's, and a file shorter than its header says (the page
    count is trusted only when SQLite marked it valid and no -wal may extend the file).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(100)
            size = f.seek(0, os.SEEK_END)
    except OSError as exc:
        raise PersistenceError(path, f"cannot be read: {exc.strerror}") from exc
    if not head:
        return  # a new, empty file
    if not b"SQLite format 3\x00".startswith(head[:16]):
        raise PersistenceError(path, "is not a SQLite database (wrong file, or its header is "
                               "damaged)")
    if len(head) < 100:
        raise PersistenceError(path, f"is truncated ({size} bytes, shorter than a SQLite "
                               "header): restore it from a backup, or move it aside")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    valid = head[24:28] == head[92:96]
    if valid and pages and pages * page_size > size and not os.path.exists(path + "-wal"):
        raise PersistenceError(path, f"is truncated ({size} bytes where its header says "
                               f"{pages * page_size}): restore it from a backup, or move it "
                               "aside to start empty")


def _create_and_check(path: str) -> None:
    """Create ``path`` (0600) if absent; refuse a missing or read-only place with a reason."""
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise PersistenceError(path, f"directory {directory!r} does not exist: create it first")
    if os.path.isdir(path):
        raise PersistenceError(path, "is a directory, not a database file")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise PersistenceError(path, f"cannot create the file: {exc.strerror} (is its "
                               "directory writable?)") from exc
    if not os.access(path, os.R_OK | os.W_OK):
        raise PersistenceError(path, "is read-only (or unreadable) for this user: check the "
                               "file's permissions and owner")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PersistenceError(path, f"its directory {directory!r} is read-only: SQLite "
                               "must create a -wal file next to the database")


# --- the store -----------------------------------------------------------------------------


class SqliteStore:
    """A :class:`~inbus._store.Store` kept in one SQLite file (WAL mode, exclusive lock).

    ``SqliteStore(path, synchronous="FULL", timeout=1.0)`` opens or creates ``path``
    (0600), migrates its schema, and takes an exclusive lock on it until ``close()``.
    ``timeout`` is how long to wait for another holder of the file to go away before
    raising PersistenceError. Every method raises PersistenceError for storage problems.

    >>> store = SqliteStore("app.db")              # doctest: +SKIP
    >>> store.apply([PutVhost("/")]); store.load().vhosts   # doctest: +SKIP
    ['/']
    """

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "FULL",
                 timeout: float = 1.0) -> None:
        sync = synchronous.upper()
        if sync not in SYNCHRONOUS_LEVELS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_LEVELS}, "
                             f"not {synchronous!r}")
        if timeout < 0:
            raise ValueError(f"timeout must be >= 0, not {timeout!r}")
        self.path: str | None = os.fspath(path)
        self._path = os.path.abspath(self.path)
        self.synchronous = sync
        self._closed = False
        self._was_clean = True
        self.schema_version = 0
        _create_and_check(self._path)
        _check_header(self._path)
        uri = "file:" + urllib.parse.quote(self._path) + "?mode=rw"
        try:
            self._conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None,
                                         check_same_thread=False)
        except sqlite3.Error as exc:
            raise _translate(self._path, exc, "opening") from exc
        try:
            self._open()
        except BaseException:
            self._conn.close()
            raise

    def _open(self) -> None:
        c = self._conn
        try:
            c.execute("PRAGMA locking_mode=EXCLUSIVE")
            mode = c.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise PersistenceError(self._path, f"cannot switch to WAL mode (got {mode!r})")
            c.execute(f"PRAGMA synchronous={self.synchronous}")
            with _immediate_transaction(c):
                self._migrate()
                row = c.execute("SELECT value FROM meta WHERE key='clean'").fetchone()
                self._was_clean = row is None or row[0] == "1"
                if not self._was_clean:
                    c.execute("UPDATE messages SET redelivered=1 WHERE redelivered=0")
                c.execute("INSERT OR REPLACE INTO meta VALUES ('clean', '0')")
        except sqlite3.Error as exc:
            raise _translate(self._path, exc, "opening") from exc

    def _migrate(self) -> None:
        c = self._conn
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" in tables:
            row = c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row is not None else 0
        elif tables:
            raise PersistenceError(self._path, "is a SQLite database but not an inbus store "
                                   f"(it has tables {sorted(tables)} and no inbus schema)")
        else:
            version = 0
        if version > SCHEMA_VERSION:
            raise PersistenceError(self._path, f"was written by a newer inbus (schema version "
                                   f"{version}; this inbus reads up to {SCHEMA_VERSION}): "
                                   "upgrade inbus to open it")
        for v in range(version, SCHEMA_VERSION):
            for statement in _MIGRATIONS[v]:
                c.execute(statement)
            c.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(v + 1),))
        self.schema_version = SCHEMA_VERSION

    def _check_open(self) -> None:
        if self._closed:
            raise PersistenceError(self._path, "the store is closed")

    # --- Store protocol --------------------------------------------------------------------

    def load(self) -> Snapshot:
        """Everything stored, after an integrity check. O(size of the file).

        Messages come ordered by (vhost, queue, seq); entities in declaration order.
        ``clean`` tells whether the previous run closed the file; after an unclean close
        every message is redelivered=True.
        """
        self._check_open()
        c = self._conn
        try:
            _quick_check(self._path, c)
            snap = Snapshot(*_entities(c), clean=self._was_clean)
            props = _PropertiesCache()
            snap.messages = [
                MessageRecord(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), props.decode(r[6]),
                              bool(r[7]), r[8], r[9], r[10],
                              None if r[11] is None else _routing_keys(r[11]))
                for r in c.execute("SELECT vhost, queue, seq, exchange, routing_key, body,"
                                   " properties, redelivered, expires_at, death_count,"
                                   " returns, routing_keys"
                                   " FROM messages ORDER BY vhost, queue, seq")]
        except sqlite3.Error as exc:
            raise _translate(self._path, exc, "reading") from exc
        return snap

    def apply(self, ops: Sequence[Op]) -> None:
        """Apply ``ops`` in order as one transaction; durable (per ``synchronous``) on return.

        Idempotent: Put* replaces, deleting what is absent does nothing. On any error the
        whole transaction is rolled back. A value that cannot be encoded raises TypeError.
        Message ops on distinct messages commute, so between two other ops they are
        coalesced per message to their net effect (a put acked in the same batch becomes
        one delete) and run with ``executemany``. O(len(ops)).
        """
        self._check_open()
        if not ops:
            return
        c = self._conn
        try:
            with _immediate_transaction(c):
                kinds = {type(op) for op in ops}
                if len(kinds) == 1 and (kind := kinds.pop()) in _IN_ORDER:
                    _HANDLERS[kind](c, ops)  # (the batch of waiting publishers: all puts)
                else:
                    for kind, run in coalesce(ops):
                        _HANDLERS[kind](c, run)
        except sqlite3.Error as exc:
            raise _translate(self._path, exc, "writing") from exc

    def close(self) -> None:
        """Mark the file cleanly closed, checkpoint the WAL and release the lock. Idempotent.

        Call it only after every write was applied (close the GroupCommitter first).
        """
        if self._closed:
            return
        self._closed = True
        error: BaseException | None = None
        try:
            self._conn.execute("UPDATE meta SET value='1' WHERE key='clean'")
        except sqlite3.Error as exc:
            error = exc
        try:
            self._conn.close()
        except sqlite3.Error as exc:
            error = error or exc
        if error is not None:
            raise _translate(self._path, error, "closing") from error

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<SqliteStore {self._path!r} {state} synchronous={self.synchronous}>"


@contextlib.contextmanager
def _immediate_transaction(c: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT; rolled back on any exception, which propagates."""
    c.execute("BEGIN IMMEDIATE")
    try:
        yield
        c.execute("COMMIT")
    except BaseException:
        if c.in_transaction:
            c.execute("ROLLBACK")
        raise


# --- operation handlers: each takes a run of ops of one type -------------------------------


def _put_vhost(c: sqlite3.Connection, ops: Iterable[Any]) -> None:
    c.executemany("INSERT OR IGNORE INTO vhosts VALUES (?)", [(o.name,) for o in ops])


def _delete_vhost(c: sqlite3.Connection, ops: Iterable[Any]) -> None:
    for o in ops:
        for table in ("messages", "bindings", "queues", "exchanges"):
            c.execute(f"DELETE FROM {table} WHERE vhost=?", (o.name,))
        c.execute("DELETE FROM vhosts WHERE name=?", (o.name,))


def _put_exchange(c: sqlite3.Connection, ops: Iterable[Any]) -> None:
    c.executemany(
        "INSERT INTO exchanges VALUES (?,?,?,?,?,?,?) ON CONFLICT (vhost, name) DO UPDATE SET"
        " type=excluded.type, durable=excluded.durable, auto_delete=excluded.auto_delete,"
        " internal=excluded.internal, arguments=excluded.arguments",
        [(r.vhost, r.name, r.type, r.durable, r.auto_delete, r.internal,
          encode_value(r.arguments)) for r in (o.record for o in ops)])


def _delete_exchange(c: sqlite3.Connection, ops: Iterable[Any]) -> None:
    for o in ops:
        c.execute("DELETE FROM bindings WHERE vhost=? AND (source=? OR"
                  " (destination=? AND destination_kind='exchange'))", (o.vhost, o.name, o.name))
        c.execute("DELETE FROM exchanges WHERE vhost=? AND name=?", (o.vhost, o.name))


def _put_queue(c: sqlite3.Connection, ops: Iterable[Any]) -> None:
    c.executemany(
        "INSERT INTO queues VALUES (?,?,?,?,?) ON CONFLICT (vhost, name) DO UPDATE SET"
        " durable=excluded.durable, auto_delete=excluded.auto_delete,"
        " arguments=excluded.arguments",
        [(r.vhost, r.name, r.durable, r.auto_delete, encode_value(r.arguments))
         for r in (o.record for o in ops)])


def _delete_queue(c: sqlite3.Connection, ops: Iterable[Any]) -> None:
    for o in ops:
        c.execute("DELETE FROM bindings WHERE vhost=? AND destination=?"
                  " AND destination_kind='queue'", (o.vhost, o.name))
        c.execute("DELETE FROM messages WHERE vhost=? AND queue=?", (o.vhost, o.name))
        c.execute("DELETE FROM queues WHERE vhost=? AND name=?", (o.vhost, o.name))


def _purge_queue(c: sqlite3.Connection, ops: Iterable[Any]) -> None:
    c.executemany("DELETE FROM messages WHERE vhost=? AND queue=?",
                  [(o.vhost, o.name) for o in ops])


def _binding_row(r: BindingRecord) -> tuple[str, str, str, str, str, str]:
    return (r.vhost, r.source, r.destination, r.destination_kind, r.routing_key,
            encode_value(r.arguments, canonical=True))


def _put_binding(c: sqlite3.Connection, ops: Iterable[Any]) -> None:
    c.executemany("INSERT OR IGNORE INTO bindings VALUES (?,?,?,?,?,?)",
                  [_binding_row(o.record) for o in ops])


def _delete_binding(c: sqlite3.Connection, ops: Iterable[Any]) -> None:
    c.executemany("DELETE FROM bindings WHERE vhost=? AND source=? AND destination=? AND"
                  " destination_kind=? AND routing_key=? AND arguments=?",
                  [_binding_row(o.record) for o in ops])


def _put_message(c: sqlite3.Connection, ops: Iterable[Any]) -> None:
    # A re-put never clears a redelivered mark nor lowers the return count: redelivered=False
    # must stay honest, and x-delivery-limit must not be reset.
    c.executemany(
        "INSERT INTO messages (vhost, queue, seq, exchange, routing_key, body, properties,"
        " redelivered, expires_at, death_count, returns, routing_keys)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (vhost, queue, seq)"
        " DO UPDATE SET exchange=excluded.exchange, routing_key=excluded.routing_key,"
        " body=excluded.body, properties=excluded.properties,"
        " redelivered=max(redelivered, excluded.redelivered),"
        " expires_at=excluded.expires_at, death_count=excluded.death_count,"
        " returns=max(returns, excluded.returns), routing_keys=excluded.routing_keys",
        [(r.vhost, r.queue, r.seq, r.exchange, r.routing_key, bytes(r.body),
          encode_value(r.properties), r.redelivered, r.expires_at, r.death_count,
          r.returns, None if r.routing_keys is None else encode_value(r.routing_keys))
         for r in (o.record for o in ops)])


def _routing_keys(text: str) -> list[str]:
    keys = decode_value(text)
    if type(keys) is not list or not all(type(k) is str for k in keys):
        raise sqlite3.DatabaseError(f"malformed routing_keys column: {text[:80]!r}")
    return keys


def _delete_message(c: sqlite3.Connection, ops: Iterable[Any]) -> None:
    c.executemany("DELETE FROM messages WHERE vhost=? AND queue=? AND seq=?",
                  [(o.vhost, o.queue, o.seq) for o in ops])


def _mark_delivered(c: sqlite3.Connection, ops: Iterable[Any]) -> None:
    c.executemany("UPDATE messages SET redelivered=1, returns=max(returns, ?)"
                  " WHERE vhost=? AND queue=? AND seq=?",
                  [(o.returns, o.vhost, o.queue, o.seq) for o in ops])


# Runs of one of these op types need no coalescing: applied in order, they have the net
# effect coalesce() would compute (a re-put replaces and keeps a redelivered mark; deletes
# are idempotent).
_IN_ORDER = frozenset((PutMessage, DeleteMessage))

_HANDLERS: dict[type, Callable[[sqlite3.Connection, Iterable[Any]], None]] = {
    PutVhost: _put_vhost, DeleteVhost: _delete_vhost,
    PutExchange: _put_exchange, DeleteExchange: _delete_exchange,
    PutQueue: _put_queue, DeleteQueue: _delete_queue, PurgeQueue: _purge_queue,
    PutBinding: _put_binding, DeleteBinding: _delete_binding,
    PutMessage: _put_message, DeleteMessage: _delete_message, MarkDelivered: _mark_delivered,
}


class _PropertiesCache:
    """Decodes each distinct properties text once per load (most messages share a few).

    Only flat tables of immutable values are cached, and each caller gets its own copy,
    so no two records share a mutable object.
    """

    def __init__(self) -> None:
        self._flat: dict[str, dict[str, Any]] = {}

    def decode(self, text: str) -> Any:
        hit = self._flat.get(text)
        if hit is not None:
            return dict(hit)
        value = decode_value(text)
        if len(self._flat) < 1024 and type(value) is dict and all(
                x is None or type(x) in (str, int, float, bool) for x in value.values()):
            self._flat[text] = dict(value)
        return value


def _quick_check(path: str, c: sqlite3.Connection) -> None:
    check = c.execute("PRAGMA quick_check").fetchall()
    if check != [("ok",)]:
        detail = "; ".join(str(r[0]) for r in check[:3])
        raise PersistenceError(path, f"is corrupt (integrity check: {detail}): restore it "
                               "from a backup, or move it aside to start empty")


def _entities(c: sqlite3.Connection) -> tuple[list[str], list[ExchangeRecord],
                                              list[QueueRecord], list[BindingRecord]]:
    """Vhosts, exchanges, queues and bindings, each in declaration order."""
    return (
        [r[0] for r in c.execute("SELECT name FROM vhosts ORDER BY rowid")],
        [ExchangeRecord(r[0], r[1], r[2], bool(r[3]), bool(r[4]), bool(r[5]),
                        decode_value(r[6]))
         for r in c.execute("SELECT vhost, name, type, durable, auto_delete, internal,"
                            " arguments FROM exchanges ORDER BY rowid")],
        [QueueRecord(r[0], r[1], bool(r[2]), bool(r[3]), decode_value(r[4]))
         for r in c.execute("SELECT vhost, name, durable, auto_delete, arguments"
                            " FROM queues ORDER BY rowid")],
        [BindingRecord(r[0], r[1], r[2], r[3], r[4], decode_value(r[5]))
         for r in c.execute("SELECT vhost, source, destination, destination_kind,"
                            " routing_key, arguments FROM bindings ORDER BY rowid")],
    )


# --- read-only access for `inbus inspect` --------------------------------------------------


@dataclass
class FileSummary:
    """What a store file holds, read without modifying it (for ``inbus inspect``)."""

    path: str
    schema_version: int
    clean: bool
    vhosts: list[str] = field(default_factory=list)
    exchanges: list[ExchangeRecord] = field(default_factory=list)
    queues: list[QueueRecord] = field(default_factory=list)
    bindings: list[BindingRecord] = field(default_factory=list)
    ready: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    """(vhost, queue) -> (stored message count, total body bytes)."""


def read_summary(path: str | os.PathLike[str]) -> FileSummary:
    """Read ``path`` without modifying it (for ``inbus inspect``).

    A cleanly closed file has no ``-wal`` and is opened ``immutable``: no lock, no side
    file. A file with a ``-wal`` (a running Bus, or a crash) is opened read-only so the
    WAL's commits are seen; SQLite then needs a ``-shm`` index, which is removed again if
    this call created it. The database and its WAL are never written. Raises
    PersistenceError when the file is absent, held by a running Bus, or bad.
    """
    p = os.path.abspath(os.fspath(path))
    if not os.path.exists(p):
        raise PersistenceError(p, "does not exist")
    if os.path.isdir(p):
        raise PersistenceError(p, "is a directory, not a database file")
    _check_header(p)
    has_wal = os.path.exists(p + "-wal")
    made_shm = has_wal and not os.path.exists(p + "-shm")
    flags = "mode=ro" if has_wal else "mode=ro&immutable=1"
    uri = "file:" + urllib.parse.quote(p) + "?" + flags
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=0.2, isolation_level=None)
        try:
            return _summarise(p, conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_BUSY" or "locked" in str(exc):
            raise PersistenceError(p, "is in use by a running Bus (it holds an exclusive "
                                   "lock): stop it, or inspect a copy") from exc
        raise _translate(p, exc, "reading read-only") from exc
    finally:
        if made_shm:
            with contextlib.suppress(OSError):
                os.remove(p + "-shm")


def _summarise(p: str, c: sqlite3.Connection) -> FileSummary:
    tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "meta" not in tables:
        raise PersistenceError(p, "is not an inbus store (no inbus schema)")
    meta = dict(c.execute("SELECT key, value FROM meta").fetchall())
    version = int(meta.get("schema_version", "0"))
    # (what is read here has been in every version; an older file is not upgraded: this
    # never writes, a Bus that opens it does)
    if not 1 <= version <= SCHEMA_VERSION:
        newer = "newer" if version > SCHEMA_VERSION else "older"
        raise PersistenceError(p, f"has schema version {version}, {newer} than this inbus "
                               f"reads (1 to {SCHEMA_VERSION})")
    _quick_check(p, c)
    s = FileSummary(p, version, meta.get("clean") == "1")
    s.vhosts, s.exchanges, s.queues, s.bindings = _entities(c)
    for vhost, queue, n, size in c.execute(
            "SELECT vhost, queue, count(*), total(length(body)) FROM messages"
            " GROUP BY vhost, queue"):
        s.ready[(vhost, queue)] = (n, int(size))
    return s
