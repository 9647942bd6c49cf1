"""inspect(path): rabbitmqctl-style listing of a store file, strictly read-only."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from inbus._errors import PersistenceError
from inbus._inspect import inspect
from inbus._sqlite import SqliteStore
from inbus._store import (
    BindingRecord,
    ExchangeRecord,
    MessageRecord,
    PutBinding,
    PutExchange,
    PutMessage,
    PutQueue,
    PutVhost,
    QueueRecord,
)

from .test_sqlite import _as_other_user, shared_dir  # noqa: F401 - fixture

REPO = str(Path(__file__).resolve().parent.parent)


def _state(d: Path) -> dict[str, tuple[int, str]]:
    """Every file of ``d`` with its mtime and content hash."""
    return {f.name: (f.stat().st_mtime_ns, hashlib.sha256(f.read_bytes()).hexdigest())
            for f in sorted(d.iterdir())}


def _fill(path: str) -> None:
    with SqliteStore(path) as s:
        s.apply([
            PutVhost("/"), PutVhost("prod"),
            PutExchange(ExchangeRecord("/", "logs", "topic", arguments={"alternate-exchange":
                                                                         "ae"})),
            PutQueue(QueueRecord("/", "jobs", arguments={"x-message-ttl": 1000})),
            PutQueue(QueueRecord("/", "empty")),
            PutQueue(QueueRecord("prod", "audit", auto_delete=True)),
            PutBinding(BindingRecord("/", "logs", "jobs", "queue", "a.#")),
            PutBinding(BindingRecord("/", "logs", "empty", "queue", "b.*", {"k": True})),
            *[PutMessage(MessageRecord("/", "jobs", i, "logs", "a.b", b"x" * 100))
              for i in range(3)],
            PutMessage(MessageRecord("prod", "audit", 1, "", "audit", b"hello")),
        ])


def test_lists_vhosts_exchanges_queues_and_bindings(tmp_path: Path) -> None:
    path = str(tmp_path / "app.db")
    _fill(path)
    before = _state(tmp_path)
    text = inspect(path)
    assert _state(tmp_path) == before  # nothing created, nothing modified
    lines = text.splitlines()
    assert "closed cleanly: yes" in lines[0] and path in lines[0]
    i = lines.index("Listing vhosts ...")
    assert lines[i + 1:i + 4] == ["name", "/", "prod"]
    assert "Listing exchanges for vhost / ..." in lines
    assert 'logs\ttopic\ttrue\tfalse\tfalse\t[{"alternate-exchange","ae"}]' in lines
    assert ("name\tdurable\tauto_delete\tmessages_ready\tmessage_bytes_ready\targuments"
            in lines)
    assert 'jobs\ttrue\tfalse\t3\t300\t[{"x-message-ttl",1000}]' in lines
    assert "empty\ttrue\tfalse\t0\t0\t[]" in lines
    assert "audit\ttrue\ttrue\t1\t5\t[]" in lines
    assert "logs\texchange\tjobs\tqueue\ta.#\t[]" in lines
    assert 'logs\texchange\tempty\tqueue\tb.*\t[{"k",true}]' in lines
    j = lines.index("Listing queues for vhost prod ...")
    assert lines[j + 2].startswith("audit")


def test_an_empty_new_store(tmp_path: Path) -> None:
    path = str(tmp_path / "new.db")
    SqliteStore(path).close()
    text = inspect(path)
    assert "Listing vhosts ...\nname\n" in text


def test_a_crashed_file_shows_the_wal_and_is_left_as_it_was(tmp_path: Path) -> None:
    path = str(tmp_path / "crashed.db")
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {REPO!r})
        from inbus._sqlite import SqliteStore
        from inbus._store import MessageRecord, PutMessage, PutQueue, QueueRecord
        s = SqliteStore({path!r})
        s.apply([PutQueue(QueueRecord("/", "q"))])
        s.apply([PutMessage(MessageRecord("/", "q", i, "", "q", b"ab")) for i in range(7)])
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    r = subprocess.run([sys.executable, "-c", code], timeout=30)
    assert r.returncode == -signal.SIGKILL
    assert os.path.exists(path + "-wal")
    before = _state(tmp_path)
    text = inspect(path)
    assert _state(tmp_path) == before
    assert "closed cleanly: no" in text
    assert "q\ttrue\tfalse\t7\t14\t[]" in text.splitlines()


def test_a_file_held_by_a_running_store_is_refused_and_unharmed(tmp_path: Path) -> None:
    path = str(tmp_path / "live.db")
    s = SqliteStore(path)
    s.apply([PutVhost("/")])
    with pytest.raises(PersistenceError, match="in use by a running Bus") as e:
        inspect(path)
    assert path in str(e.value) and not os.path.exists(path + "-shm")
    s.apply([PutVhost("v")])
    s.close()
    assert "v" in inspect(path).splitlines()


def test_a_missing_file_is_not_created(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.db")
    with pytest.raises(PersistenceError, match="does not exist"):
        inspect(path)
    assert list(tmp_path.iterdir()) == []


def test_bad_files(tmp_path: Path) -> None:
    text = tmp_path / "text.db"
    text.write_text("hello\n" * 100)
    with pytest.raises(PersistenceError, match="not a SQLite database"):
        inspect(text)
    foreign = str(tmp_path / "foreign.db")
    c = sqlite3.connect(foreign)
    c.execute("CREATE TABLE t (x)")
    c.commit()
    c.close()
    with pytest.raises(PersistenceError, match="not an inbus store"):
        inspect(foreign)
    future = str(tmp_path / "future.db")
    SqliteStore(future).close()
    c = sqlite3.connect(future)
    c.execute("UPDATE meta SET value='7' WHERE key='schema_version'")
    c.commit()
    c.close()
    with pytest.raises(PersistenceError, match="schema version 7, newer"):
        inspect(future)
    with pytest.raises(PersistenceError, match="is a directory"):
        inspect(tmp_path)


def test_works_on_a_read_only_file_in_a_read_only_directory(shared_dir: str) -> None:  # noqa: F811
    path = os.path.join(shared_dir, "ro.db")
    _fill(path)
    os.chmod(path, 0o444)
    os.chmod(shared_dir, 0o555)
    out: list[str] = []

    def check() -> None:
        text = inspect(path)
        assert "jobs\ttrue\tfalse\t3\t300" in text, text

    try:
        out.append(_as_other_user(check))
    finally:
        os.chmod(shared_dir, 0o777)
    assert out == ["ok"]
