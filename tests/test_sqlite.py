"""SqliteStore: round trips, cascades, encoding, clean flag, permissions, bad files, locks."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inbus import _schema, _sqlite
from inbus._errors import PersistenceError
from inbus._sqlite import SqliteStore, read_summary
from inbus._store import (
    BindingRecord,
    DeleteBinding,
    DeleteExchange,
    DeleteMessage,
    DeleteQueue,
    DeleteVhost,
    ExchangeRecord,
    MarkDelivered,
    MessageRecord,
    PurgeQueue,
    PutBinding,
    PutExchange,
    PutMessage,
    PutQueue,
    PutVhost,
    QueueRecord,
    decode_value,
    encode_value,
)

REPO = str(Path(__file__).resolve().parent.parent)


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "app.db")


@pytest.fixture
def store(path: str) -> Iterator[SqliteStore]:
    s = SqliteStore(path, synchronous="OFF")
    yield s
    s.close()


def msg(seq: int, queue: str = "q", vhost: str = "/", **kw: Any) -> MessageRecord:
    return MessageRecord(vhost, queue, seq, "ex", "rk", f"body{seq}".encode(), **kw)


def crash(s: SqliteStore) -> None:
    """Drop the connection without marking the file clean, as a killed process would."""
    s._conn.close()
    s._closed = True


def same(a: Any, b: Any) -> bool:
    """Equal values of exactly the same types, recursively (1 == 1.0 == True otherwise)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and a != a:
        return b != b
    if isinstance(a, Decimal) and a.is_nan():
        return b.is_nan()
    if isinstance(a, datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    return bool(a == b)


# --- round trips ---------------------------------------------------------------------------


def test_round_trip_of_every_record(path: str) -> None:
    ex = ExchangeRecord("/", "logs", "topic", True, True, True, {"alternate-exchange": "ae"})
    q = QueueRecord("/", "q", True, False, {"x-message-ttl": 1000, "x-max-length": 5.5,
                                             "x-single-active-consumer": True})
    b1 = BindingRecord("/", "logs", "q", "queue", "a.#", {"x-match": "all", "k": b"\x00"})
    b2 = BindingRecord("/", "logs", "other", "exchange", "", {})
    m = MessageRecord("/", "q", 7, "logs", "a.b", b"\x00\xffbody",
                      {"delivery_mode": 2, "headers": {"h": [1, 2.0, None]},
                       "content_type": "text/plain", "priority": 3},
                      redelivered=True, expires_at=1.5e9, death_count=2)
    with SqliteStore(path) as s:
        s.apply([PutVhost("/"), PutVhost("v2"), PutExchange(ex), PutQueue(q), PutBinding(b1),
                 PutBinding(b2), PutMessage(m)])
    with SqliteStore(path) as s:
        snap = s.load()
    assert snap.clean
    assert snap.vhosts == ["/", "v2"]
    assert snap.exchanges == [ex] and snap.queues == [q] and snap.bindings == [b1, b2]
    assert snap.messages == [m]
    assert same(snap.queues[0].arguments, q.arguments)
    assert same(snap.messages[0].properties, m.properties)


def test_messages_come_back_ordered_by_queue_and_seq(store: SqliteStore) -> None:
    seqs = [5, 1, 9, 3, 7]
    store.apply([PutMessage(msg(s, "b")) for s in seqs] + [PutMessage(msg(s, "a")) for s in seqs])
    got = [(m.queue, m.seq) for m in store.load().messages]
    assert got == [("a", s) for s in sorted(seqs)] + [("b", s) for s in sorted(seqs)]


def test_put_twice_replaces_and_keeps_declaration_order(store: SqliteStore) -> None:
    store.apply([PutQueue(QueueRecord("/", "a")), PutQueue(QueueRecord("/", "b"))])
    store.apply([PutQueue(QueueRecord("/", "a", arguments={"x": 1}))] * 2)
    assert store.load().queues == [QueueRecord("/", "a", arguments={"x": 1}),
                                   QueueRecord("/", "b")]
    store.apply([PutExchange(ExchangeRecord("/", "e", "direct"))])
    store.apply([PutExchange(ExchangeRecord("/", "e", "fanout"))])
    assert [e.type for e in store.load().exchanges] == ["fanout"]
    store.apply([PutMessage(msg(1)), PutMessage(msg(1, death_count=4))])
    assert [m.death_count for m in store.load().messages] == [4]


def test_deleting_what_is_absent_is_a_no_op(store: SqliteStore) -> None:
    b = BindingRecord("/", "e", "q", "queue", "k")
    ops = [DeleteVhost("x"), DeleteExchange("/", "x"), DeleteQueue("/", "x"),
           PurgeQueue("/", "x"), DeleteBinding(b), DeleteMessage("/", "q", 1),
           MarkDelivered("/", "q", 1)]
    store.apply(ops)
    store.apply(ops)
    snap = store.load()
    assert snap.messages == [] and snap.bindings == [] and snap.vhosts == []


def test_a_batch_replayed_gives_the_same_state(store: SqliteStore) -> None:
    batch = [PutVhost("/"), PutQueue(QueueRecord("/", "q")), PutMessage(msg(1)),
             PutMessage(msg(2)), DeleteMessage("/", "q", 1),
             PutBinding(BindingRecord("/", "e", "q", "queue", "k"))]
    store.apply(batch)
    first = store.load()
    store.apply(batch)
    assert store.load() == first


def test_empty_apply_is_fine(store: SqliteStore) -> None:
    store.apply([])
    assert store.load().vhosts == []


# --- cascades ------------------------------------------------------------------------------


def _world(s: SqliteStore) -> None:
    s.apply([
        PutVhost("/"), PutVhost("v"),
        PutExchange(ExchangeRecord("/", "e", "direct")),
        PutExchange(ExchangeRecord("/", "e2", "fanout")),
        PutExchange(ExchangeRecord("v", "e", "direct")),
        PutQueue(QueueRecord("/", "q")), PutQueue(QueueRecord("/", "e")),
        PutQueue(QueueRecord("v", "q")),
        PutBinding(BindingRecord("/", "e", "q", "queue", "k")),
        PutBinding(BindingRecord("/", "e2", "e", "exchange", "k")),
        PutBinding(BindingRecord("/", "e2", "e", "queue", "k")),
        PutBinding(BindingRecord("/", "e2", "q", "queue", "k")),
        PutBinding(BindingRecord("v", "e", "q", "queue", "k")),
        PutMessage(msg(1, "q")), PutMessage(msg(2, "q")), PutMessage(msg(1, "e")),
        PutMessage(msg(1, "q", "v")),
    ])


def test_delete_vhost_removes_everything_in_it(store: SqliteStore) -> None:
    _world(store)
    store.apply([DeleteVhost("/")])
    snap = store.load()
    assert snap.vhosts == ["v"]
    assert {e.vhost for e in snap.exchanges} == {"v"}
    assert {q.vhost for q in snap.queues} == {"v"}
    assert {b.vhost for b in snap.bindings} == {"v"}
    assert [(m.vhost, m.queue) for m in snap.messages] == [("v", "q")]


def test_delete_exchange_removes_its_bindings_both_ways(store: SqliteStore) -> None:
    _world(store)
    store.apply([DeleteExchange("/", "e")])
    snap = store.load()
    assert [(b.vhost, b.source, b.destination, b.destination_kind) for b in snap.bindings] == [
        ("/", "e2", "e", "queue"), ("/", "e2", "q", "queue"), ("v", "e", "q", "queue")]
    assert [(e.vhost, e.name) for e in snap.exchanges] == [("/", "e2"), ("v", "e")]


def test_delete_queue_removes_its_bindings_and_messages(store: SqliteStore) -> None:
    _world(store)
    store.apply([DeleteQueue("/", "e")])
    snap = store.load()
    assert ("/", "e2", "e", "exchange") in [
        (b.vhost, b.source, b.destination, b.destination_kind) for b in snap.bindings]
    assert ("/", "e2", "e", "queue") not in [
        (b.vhost, b.source, b.destination, b.destination_kind) for b in snap.bindings]
    assert [(m.vhost, m.queue, m.seq) for m in snap.messages] == [
        ("/", "q", 1), ("/", "q", 2), ("v", "q", 1)]


def test_purge_keeps_the_queue(store: SqliteStore) -> None:
    _world(store)
    store.apply([PurgeQueue("/", "q")])
    snap = store.load()
    assert [(m.vhost, m.queue) for m in snap.messages] == [("/", "e"), ("v", "q")]
    assert ("/", "q") in [(q.vhost, q.name) for q in snap.queues]


def test_delete_binding_matches_every_field_including_arguments(store: SqliteStore) -> None:
    a = BindingRecord("/", "h", "q", "queue", "", {"x-match": "any", "a": 1, "b": b"2"})
    same_args_other_order = BindingRecord("/", "h", "q", "queue", "",
                                          {"b": b"2", "a": 1, "x-match": "any"})
    float_arg = BindingRecord("/", "h", "q", "queue", "", {"x-match": "any", "a": 1.0,
                                                            "b": b"2"})
    store.apply([PutBinding(a), PutBinding(a)])
    assert len(store.load().bindings) == 1
    store.apply([DeleteBinding(float_arg), DeleteBinding(BindingRecord("/", "h", "q", "queue",
                                                                       "", {}))])
    assert len(store.load().bindings) == 1
    store.apply([DeleteBinding(same_args_other_order)])
    assert store.load().bindings == []


def test_delete_and_mark_messages(store: SqliteStore) -> None:
    store.apply([PutMessage(msg(i)) for i in range(5)])
    store.apply([DeleteMessage("/", "q", 1), MarkDelivered("/", "q", 3)])
    assert [(m.seq, m.redelivered) for m in store.load().messages] == [
        (0, False), (2, False), (3, True), (4, False)]


def test_a_re_put_never_clears_the_delivered_mark(store: SqliteStore) -> None:
    store.apply([PutMessage(msg(1)), MarkDelivered("/", "q", 1)])
    store.apply([PutMessage(msg(1, redelivered=False))])
    assert store.load().messages[0].redelivered


# --- property encoding ---------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2**70, 2**70)
           | st.floats(allow_nan=True) | st.text() | st.binary()
           | st.decimals(allow_nan=False) | st.dates()
           | st.datetimes(timezones=st.none() | st.just(timezone.utc)
                          | st.builds(lambda m: timezone(timedelta(minutes=m)),
                                      st.integers(-900, 900))))
keys = st.text() | st.sampled_from(["$inbus", "v", "x-death"])
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.tuples(inner, inner) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=20)


@given(st.dictionaries(keys, values, max_size=5))
@settings(max_examples=200, deadline=None)
def test_encoding_round_trips_with_exact_types(headers: dict[str, Any]) -> None:
    back = decode_value(encode_value({"headers": headers}))
    assert same(back, {"headers": headers})
    canon = decode_value(encode_value(headers, canonical=True))
    assert same(canon, headers)


@given(st.dictionaries(keys, values, max_size=4))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_properties_round_trip_through_the_file(headers: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "h.db")
        props = {"headers": headers, "delivery_mode": 2, "timestamp": 17}
        args = {"x-args": headers}
        with SqliteStore(p, synchronous="OFF") as s:
            s.apply([PutMessage(msg(1, properties=props)),
                     PutQueue(QueueRecord("/", "q", arguments=args))])
        with SqliteStore(p, synchronous="OFF") as s:
            snap = s.load()
        assert same(snap.messages[0].properties, props)
        assert same(snap.queues[0].arguments, args)


def test_tricky_values_keep_their_types() -> None:
    v = {"i": 1, "f": 1.0, "b": True, "n": None, "big": 2**100, "neg0": -0.0,
         "inf": float("inf"), "d": Decimal("1.10"), "bytes": b"\x00",
         "dt": datetime(2024, 1, 2, 3, 4, 5, 6), "tz": datetime(2024, 1, 2, tzinfo=timezone.utc),
         "tag": {"$inbus": "bytes", "v": "AA=="}, "t": (1, [2, (3,)]), "day": date(2020, 2, 29),
         "ba": bytearray(b"\x01"), "in": [bytearray(b"")]}
    assert same(decode_value(encode_value(v)), v)


def test_unstorable_values_raise_type_error_and_roll_back(store: SqliteStore) -> None:
    with pytest.raises(TypeError, match="object"):
        encode_value({"x": object()})
    with pytest.raises(TypeError, match="key"):
        encode_value({"x": {1: "a"}})
    with pytest.raises(TypeError):
        store.apply([PutMessage(msg(1)), PutMessage(msg(2, properties={"h": {1, 2}}))])
    assert store.load().messages == []
    store.apply([PutMessage(msg(3))])  # still usable
    assert [m.seq for m in store.load().messages] == [3]


def test_no_pickle_in_the_file(path: str) -> None:
    with SqliteStore(path) as s:
        s.apply([PutMessage(msg(1, properties={"headers": {"d": Decimal("2.5")}}))])
    raw = sqlite3.connect(path).execute("SELECT properties FROM messages").fetchone()[0]
    assert raw == '{"headers":{"d":{"$inbus":"decimal","v":"2.5"}}}'


# --- clean flag and redelivered ------------------------------------------------------------


def test_clean_close_keeps_only_marked_messages_redelivered(path: str) -> None:
    s = SqliteStore(path)
    assert s.load().clean  # a new file has nothing to recover
    s.apply([PutMessage(msg(1)), PutMessage(msg(2)), PutMessage(msg(3, redelivered=True)),
             MarkDelivered("/", "q", 2)])
    s.close()
    s.close()  # idempotent
    with SqliteStore(path) as s:
        snap = s.load()
    assert snap.clean
    assert [(m.seq, m.redelivered) for m in snap.messages] == [(1, False), (2, True), (3, True)]


def test_unclean_close_reports_every_message_redelivered_for_good(path: str) -> None:
    s = SqliteStore(path)
    s.apply([PutMessage(msg(1)), PutMessage(msg(2))])
    crash(s)
    s = SqliteStore(path)
    snap = s.load()
    assert not snap.clean
    assert all(m.redelivered for m in snap.messages)
    s.apply([PutMessage(msg(3))])
    s.close()
    with SqliteStore(path) as s:  # clean now, but 1 and 2 may have been delivered before
        snap = s.load()
    assert snap.clean
    assert [(m.seq, m.redelivered) for m in snap.messages] == [(1, True), (2, True), (3, False)]


def test_store_use_after_close_is_a_persistence_error(path: str) -> None:
    s = SqliteStore(path)
    s.close()
    with pytest.raises(PersistenceError, match="closed"):
        s.apply([PutVhost("/")])
    with pytest.raises(PersistenceError, match="closed"):
        s.load()


def test_options_are_validated(path: str) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStore(path, synchronous="EXTRA")
    with pytest.raises(ValueError, match="timeout"):
        SqliteStore(path, timeout=-1)
    for level, code in (("full", 2), ("NORMAL", 1), ("OFF", 0)):
        with SqliteStore(path, synchronous=level) as s:
            assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == code
            assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert SqliteStore.__init__.__kwdefaults__["synchronous"] == "FULL"


# --- files: permissions, migrations, bad files ---------------------------------------------


def test_new_files_are_owner_only(path: str) -> None:
    old = os.umask(0o022)
    try:
        s = SqliteStore(path)
        s.apply([PutVhost("/")])
        files = [path, path + "-wal"]
        for f in files:
            assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
        assert not os.path.exists(path + "-shm")  # exclusive mode: no shared memory file
        s.close()
    finally:
        os.umask(old)


def test_migrations_run_in_order_and_a_future_version_is_refused(
        path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    v = _sqlite.SCHEMA_VERSION
    with SqliteStore(path) as s:
        assert s.schema_version == v == len(_sqlite._MIGRATIONS) == 2
        s.apply([PutMessage(msg(1))])
    future = ("CREATE TABLE extra (x INTEGER)", "INSERT INTO extra VALUES (42)")
    monkeypatch.setattr(_sqlite, "_MIGRATIONS", (*_sqlite._MIGRATIONS, future))
    monkeypatch.setattr(_sqlite, "SCHEMA_VERSION", v + 1)
    with SqliteStore(path) as s:
        assert s.schema_version == v + 1
        assert s._conn.execute("SELECT x FROM extra").fetchall() == [(42,)]
        assert [m.seq for m in s.load().messages] == [1]
    monkeypatch.undo()
    with pytest.raises(PersistenceError, match=f"newer inbus.*version {v + 1}") as e:
        SqliteStore(path)
    assert path in str(e.value)


def test_a_failed_migration_changes_nothing(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    v = _sqlite.SCHEMA_VERSION
    with SqliteStore(path) as s:
        s.apply([PutVhost("/")])
    bad = ("CREATE TABLE extra (x INTEGER)", "INSERT INTO nowhere VALUES (1)")
    monkeypatch.setattr(_sqlite, "_MIGRATIONS", (*_sqlite._MIGRATIONS, bad))
    monkeypatch.setattr(_sqlite, "SCHEMA_VERSION", v + 1)
    with pytest.raises(PersistenceError):
        SqliteStore(path)
    monkeypatch.undo()
    with SqliteStore(path) as s:
        assert s.schema_version == v and s.load().vhosts == ["/"]
        assert s._conn.execute("SELECT count(*) FROM sqlite_master WHERE name='extra'"
                               ).fetchone() == (0,)


def _write_version_1_file(path: str) -> None:
    """A store file as the first schema wrote it: queue "q" with one message, seq 7."""
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    for statement in _schema.V1:
        c.execute(statement)
    c.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    c.execute("INSERT INTO vhosts VALUES ('/')")
    c.execute("INSERT INTO queues VALUES ('/', 'q', 1, 0, '{}')")
    c.execute("INSERT INTO messages VALUES ('/', 'q', 7, '', 'q', x'6869',"
              " '{\"delivery_mode\":2}', 1, NULL, 0)")
    c.close()


def test_a_version_1_file_is_upgraded_in_place(path: str) -> None:
    """A file written by the first schema opens, keeps every message, and gains version
    2's columns (return count, CC / BCC routing keys)."""
    _write_version_1_file(path)
    with SqliteStore(path) as s:
        assert s.schema_version == 2
        [m] = s.load().messages
        assert (m.seq, m.body, m.properties, m.redelivered) == (7, b"hi", {"delivery_mode": 2},
                                                                True)
        assert (m.returns, m.routing_keys) == (0, None)
        s.apply([MarkDelivered("/", "q", 7, returns=3),
                 PutMessage(MessageRecord("/", "q", 8, "x", "a", b"", routing_keys=["a", "b"]))])
    with SqliteStore(path) as s:
        m7, m8 = s.load().messages
        assert m7.returns == 3 and m8.routing_keys == ["a", "b"] and m8.returns == 0


def test_inspect_reads_a_version_1_file_without_upgrading_it(path: str) -> None:
    _write_version_1_file(path)
    before = open(path, "rb").read()
    summary = read_summary(path)
    assert summary.schema_version == 1 and summary.ready == {("/", "q"): (1, 2)}
    assert open(path, "rb").read() == before


def test_return_counts_only_grow(path: str) -> None:
    with SqliteStore(path) as s:
        s.apply([PutMessage(msg(1)), MarkDelivered("/", "q", 1, returns=2)])
        s.apply([MarkDelivered("/", "q", 1, returns=1)])  # (a stale count)
        s.apply([PutMessage(msg(1))])  # a re-put keeps the count and the mark
        [m] = s.load().messages
        assert (m.returns, m.redelivered) == (2, True)
        # in one batch, coalesced: put + mark + mark
        s.apply([PutMessage(msg(2)), MarkDelivered("/", "q", 2, returns=4),
                 MarkDelivered("/", "q", 2, returns=1)])
        assert {m.seq: m.returns for m in s.load().messages} == {1: 2, 2: 4}


def _filled(path: str, n: int = 2000) -> None:
    with SqliteStore(path, synchronous="OFF") as s:
        s.apply([PutQueue(QueueRecord("/", "q"))]
                + [PutMessage(MessageRecord("/", "q", i, "", "q", os.urandom(500)))
                   for i in range(n)])


def _expect_error(path: str, pattern: str, action: Callable[[], Any] | None = None) -> None:
    def default() -> None:
        with SqliteStore(path, timeout=0) as s:
            s.load()
    with pytest.raises(PersistenceError, match=pattern) as e:
        (action or default)()
    assert path in str(e.value)
    assert not isinstance(e.value, sqlite3.Error)


def test_not_a_sqlite_file_or_a_damaged_header(path: str) -> None:
    Path(path).write_bytes(b"this is a text file, not a database\n" * 200)
    _expect_error(path, "not a SQLite database")
    os.remove(path)
    _filled(path, 10)
    with open(path, "r+b") as f:
        f.write(b"garbage garbage!")
    _expect_error(path, "not a SQLite database")


def test_a_foreign_sqlite_file(path: str) -> None:
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE users (id INTEGER)")
    c.commit()
    c.close()
    _expect_error(path, "not an inbus store")


def test_a_truncated_file(path: str) -> None:
    _filled(path)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    _expect_error(path, "is truncated")
    with open(path, "r+b") as f:
        f.truncate(50)
    _expect_error(path, "is truncated")


def test_a_corrupt_file(path: str) -> None:
    _filled(path)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:  # scribble over the middle pages, keep the header
        f.seek(8192)
        f.write(os.urandom(size - 16384))
    _expect_error(path, "corrupt|malformed|not a SQLite")


def test_a_missing_directory(tmp_path: Path) -> None:
    p = str(tmp_path / "nope" / "app.db")
    _expect_error(p, "directory .* does not exist")
    assert not os.path.exists(os.path.dirname(p))


def test_a_directory_in_place_of_the_file(tmp_path: Path) -> None:
    _expect_error(str(tmp_path), "is a directory")


def test_a_full_disk_rolls_back_and_says_so(path: str) -> None:
    s = SqliteStore(path, synchronous="OFF")
    s.apply([PutQueue(QueueRecord("/", "q")), PutMessage(msg(0))])
    pages = s._conn.execute("PRAGMA page_count").fetchone()[0]
    s._conn.execute(f"PRAGMA max_page_count={pages + 2}")
    big = [PutMessage(MessageRecord("/", "q", i, "", "q", b"x" * 4000)) for i in range(1, 50)]
    _expect_error(path, "disk is full", lambda: s.apply(big))
    assert [m.seq for m in s.load().messages] == [0]  # rolled back, nothing half-written
    s.close()


def _as_other_user(fn: Callable[[], None]) -> str:
    """Run ``fn`` in a forked child with uid nobody (root ignores file permissions)."""
    if os.geteuid() != 0:
        try:
            fn()
            return "ok"
        except Exception as exc:  # noqa: BLE001
            return f"{type(exc).__name__}: {exc}"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.setgid(65534)
            os.setuid(65534)
            fn()
            out = "ok"
        except BaseException as exc:  # noqa: BLE001
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "-"
            out = f"{type(exc).__name__}: {exc} [cause {cause}]"
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    os.waitpid(pid, 0)
    return out


@pytest.fixture
def shared_dir() -> Iterator[str]:
    d = tempfile.mkdtemp()
    os.chmod(d, 0o777)
    yield d
    os.chmod(d, 0o700)
    subprocess.run(["rm", "-rf", d], check=False)


def _open_and_write(p: str) -> None:
    with SqliteStore(p, timeout=0) as s:
        s.apply([PutVhost("x")])


def test_a_read_only_file(shared_dir: str) -> None:
    p = os.path.join(shared_dir, "ro.db")
    with SqliteStore(p) as s:
        s.apply([PutVhost("/")])
    os.chmod(p, 0o444)
    out = _as_other_user(lambda: _open_and_write(p))
    assert out.startswith("PersistenceError") and p in out and "read-only" in out, out


def test_a_read_only_directory(shared_dir: str) -> None:
    p = os.path.join(shared_dir, "app.db")
    with SqliteStore(p) as s:
        s.apply([PutVhost("/")])
    os.chmod(p, 0o666)
    os.chmod(shared_dir, 0o555)
    out = _as_other_user(lambda: _open_and_write(p))
    assert out.startswith("PersistenceError") and p in out, out
    assert "directory" in out, out
    out = _as_other_user(lambda: _open_and_write(os.path.join(shared_dir, "new.db")))
    assert out.startswith("PersistenceError") and "cannot create" in out, out
    os.chmod(shared_dir, 0o777)


# --- two openers ---------------------------------------------------------------------------


def test_a_second_store_on_the_same_file_is_refused(path: str) -> None:
    s = SqliteStore(path)
    _expect_error(path, "locked: another Bus or process", lambda: SqliteStore(path, timeout=0))
    s.apply([PutVhost("/")])  # the first one is unharmed
    s.close()
    with SqliteStore(path) as s2:
        assert s2.load().vhosts == ["/"]


# --- coalescing of message ops in one transaction ------------------------------------------

_keys = st.tuples(st.sampled_from(["q", "r"]), st.integers(0, 3))
_ops = st.one_of(
    st.builds(lambda k, red: PutMessage(msg(k[1], k[0], redelivered=red)), _keys, st.booleans()),
    st.builds(lambda k: DeleteMessage("/", k[0], k[1]), _keys),
    st.builds(lambda k: MarkDelivered("/", k[0], k[1]), _keys),
    st.builds(lambda q: PurgeQueue("/", q), st.sampled_from(["q", "r"])),
    st.builds(lambda q: DeleteQueue("/", q), st.sampled_from(["q", "r"])),
    st.just(PutVhost("/")),
)


@pytest.fixture(scope="module")
def two_stores() -> Iterator[tuple[SqliteStore, SqliteStore]]:
    with tempfile.TemporaryDirectory() as d:
        with SqliteStore(os.path.join(d, "a.db"), synchronous="OFF") as a, \
                SqliteStore(os.path.join(d, "b.db"), synchronous="OFF") as b:
            yield a, b


@given(st.lists(_ops, max_size=30), st.lists(_ops, max_size=8))
@settings(max_examples=150, deadline=None)
def test_one_batch_has_the_effect_of_its_ops_one_by_one(
        two_stores: tuple[SqliteStore, SqliteStore], before: list[Any], ops: list[Any]) -> None:
    a, b = two_stores
    for s in (a, b):
        s.apply([DeleteVhost("/"), *before])  # every op here is in vhost "/": a fresh start
    a.apply(ops)
    for op in ops:
        b.apply([op])
    assert a.load() == b.load()


_message_ops = st.lists(st.one_of(
    st.builds(lambda seq, red, ret, keys: PutMessage(msg(
        seq, redelivered=red, returns=ret, routing_keys=keys)),
        st.integers(0, 3), st.booleans(), st.integers(0, 3),
        st.none() | st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=2)),
    st.builds(lambda seq: DeleteMessage("/", "q", seq), st.integers(0, 3)),
    st.builds(lambda seq, ret: MarkDelivered("/", "q", seq, ret),
              st.integers(0, 3), st.integers(0, 3)),
    st.just(PutVhost("/"))), max_size=25)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_message_ops)
def test_a_batch_has_the_effect_of_its_ops_one_by_one(tmp_path: Path, ops: list[Any]) -> None:
    """apply() coalesces message ops (and applies runs of one kind in order): the file it
    leaves is the one that applying each op in its own transaction leaves."""
    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        with SqliteStore(os.path.join(d, "one.db"), synchronous="OFF") as one, \
                SqliteStore(os.path.join(d, "all.db"), synchronous="OFF") as batch:
            for s in (one, batch):
                s.apply([PutQueue(QueueRecord("/", "q"))])
            for op in ops:
                one.apply([op])
            batch.apply(ops)
            assert batch.load().messages == one.load().messages
