"""GroupCommitter: ordering, batching, flush, close, failure propagation, MemoryStore path."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from inbus._committer import GroupCommitter
from inbus._errors import PersistenceError
from inbus._sqlite import SqliteStore
from inbus._store import MemoryStore, MessageRecord, Op, PutMessage, PutVhost, Snapshot

pytestmark = pytest.mark.timeout(30)


class FakeStore:
    """Records every apply; can be slowed down, blocked, or made to fail."""

    path: str | None = "/fake/app.db"

    def __init__(self, delay: float = 0.0, fail_on: int | None = None) -> None:
        self.batches: list[list[Op]] = []
        self.delay = delay
        self.fail_on = fail_on
        self.gate = threading.Event()
        self.gate.set()
        self.threads: set[str] = set()

    def load(self) -> Snapshot:
        return Snapshot()

    def apply(self, ops: Sequence[Op]) -> None:
        self.gate.wait(10)
        self.threads.add(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        if self.fail_on is not None and len(self.batches) == self.fail_on:
            self.batches.append(list(ops))
            raise PersistenceError(str(self.path), "the disk is full (simulated)")
        self.batches.append(list(ops))

    def close(self) -> None:
        pass


def put(seq: int) -> list[Op]:
    return [PutMessage(MessageRecord("/", "q", seq, "", "q", b"x" * 100))]


@pytest.fixture
def fake() -> FakeStore:
    return FakeStore()


@pytest.fixture
def committer(fake: FakeStore) -> Iterator[GroupCommitter]:
    c = GroupCommitter(fake)
    yield c
    c.close()


def test_memory_store_fast_path_has_no_thread_and_calls_back_at_once() -> None:
    before = threading.active_count()
    c = GroupCommitter(MemoryStore())
    assert threading.active_count() == before
    seen: list[object] = []
    c.submit(put(1), seen.append)
    assert seen == [None]  # synchronously, inside submit
    assert c.flush(0) is True
    c.submit(put(2))
    assert c.statistics().submits == 2 and c.statistics().pending == 0
    c.close()
    c.close()
    with pytest.raises(PersistenceError, match="closed"):
        c.submit(put(3))


def test_callbacks_fire_in_submission_order_on_the_writer_thread(
        committer: GroupCommitter, fake: FakeStore) -> None:
    fake.delay = 0.001
    order: list[int] = []
    threads: set[str] = set()

    def cb(i: int) -> object:
        def on_done(exc: BaseException | None) -> None:
            assert exc is None
            order.append(i)
            threads.add(threading.current_thread().name)
        return on_done

    for i in range(500):
        committer.submit(put(i), cb(i))  # type: ignore[arg-type]
    assert committer.flush(10)
    assert order == list(range(500))
    assert threads == {"inbus-committer"}
    applied = [op.record.seq for batch in fake.batches for op in batch  # type: ignore[union-attr]
               ]
    assert applied == list(range(500))  # ops applied in submission order too


def test_callbacks_run_with_no_lock_held(committer: GroupCommitter) -> None:
    done = threading.Event()
    reentered: list[object] = []

    def on_done(exc: BaseException | None) -> None:
        committer.statistics()  # takes the committer's lock: would deadlock if held
        committer.submit(put(2), lambda e: (reentered.append(e), done.set()))

    committer.submit(put(1), on_done)
    assert done.wait(5)
    assert reentered == [None]


def test_a_callback_that_raises_is_logged_and_the_writer_goes_on(
        committer: GroupCommitter, caplog: pytest.LogCaptureFixture) -> None:
    got: list[object] = []
    with caplog.at_level(logging.ERROR, logger="inbus"):
        committer.submit(put(1), lambda e: 1 / 0)  # type: ignore[func-returns-value]
        committer.submit(put(2), got.append)
        assert committer.flush(5)
    assert got == [None]
    assert any("on_done" in r.getMessage() for r in caplog.records)


def test_a_lone_submit_commits_promptly(committer: GroupCommitter) -> None:
    for _ in range(20):
        done = threading.Event()
        t0 = time.perf_counter()
        committer.submit(put(1), lambda e, done=done: done.set())  # type: ignore[misc]
        assert done.wait(5)
        assert time.perf_counter() - t0 < 0.05  # no timer, no fixed sleep


def test_concurrent_submitters_are_batched(fake: FakeStore) -> None:
    fake.delay = 0.002  # like an fsync
    c = GroupCommitter(fake)
    per_thread = 200
    confirmed = [0] * 8

    def producer(k: int) -> None:
        for i in range(per_thread):
            ev = threading.Event()
            c.submit(put(k * per_thread + i), lambda e, ev=ev: ev.set())  # type: ignore[misc]
            assert ev.wait(10)  # each waits for its confirm before the next submit
            confirmed[k] += 1

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    c.close()
    stats = c.statistics()
    assert confirmed == [per_thread] * 8
    assert stats.submits == 8 * per_thread
    assert stats.batches < stats.submits / 2.5, stats  # typically 4..8 per transaction
    assert stats.largest_batch >= 4


def test_streaming_submits_grow_the_batch_up_to_max_batch(fake: FakeStore) -> None:
    fake.gate.clear()  # hold the writer in its first apply while we submit
    c = GroupCommitter(fake, max_batch=100)
    for i in range(1000):
        c.submit(put(i))
    fake.gate.set()
    assert c.flush(10)
    c.close()
    sizes = [len(b) for b in fake.batches]
    assert sum(sizes) == 1000
    assert max(sizes) == 100 and len(sizes) <= 12


def test_flush_waits_for_everything_submitted_so_far(
        committer: GroupCommitter, fake: FakeStore) -> None:
    fake.gate.clear()
    done: list[object] = []
    committer.submit(put(1), done.append)
    assert committer.flush(timeout=0.05) is False
    assert done == []
    fake.gate.set()
    assert committer.flush() is True
    assert done == [None]
    assert committer.flush(0) is True  # nothing pending


def test_close_commits_what_is_queued_and_joins_the_thread(fake: FakeStore) -> None:
    fake.delay = 0.001
    c = GroupCommitter(fake)
    done: list[object] = []
    for i in range(50):
        c.submit(put(i), done.append)
    thread = c._thread
    assert thread is not None and thread.is_alive()
    c.close()
    assert not thread.is_alive()
    assert done == [None] * 50
    c.close()  # idempotent
    with pytest.raises(PersistenceError, match="closed"):
        c.submit(put(99))


def test_close_from_a_callback_does_not_deadlock(fake: FakeStore) -> None:
    c = GroupCommitter(fake)
    done = threading.Event()
    errors: list[BaseException] = []

    def on_done(exc: BaseException | None) -> None:
        try:
            c.flush(1)
        except RuntimeError as e:
            errors.append(e)
        c.close()
        done.set()

    c.submit(put(1), on_done)
    assert done.wait(5)
    c.close()
    assert c._thread is not None and not c._thread.is_alive()
    assert len(errors) == 1 and "deadlock" in str(errors[0])


def test_a_failed_apply_reaches_every_callback_of_its_batch_and_stops_writing(
        fake: FakeStore, caplog: pytest.LogCaptureFixture) -> None:
    fake.fail_on = 1
    fake.gate.clear()
    c = GroupCommitter(fake)
    results: dict[int, BaseException | None] = {}

    def cb(i: int) -> object:
        return lambda e: results.__setitem__(i, e)

    with caplog.at_level(logging.ERROR, logger="inbus"):
        c.submit(put(0), cb(0))  # batch 0: the writer takes it and blocks in apply
        time.sleep(0.05)
        for i in range(1, 6):
            c.submit(put(i), cb(i))  # batch 1 (fails): 1..5
        fake.gate.set()
        with pytest.raises(PersistenceError, match="earlier write failed.*disk is full"):
            c.flush(5)
        with pytest.raises(PersistenceError, match="earlier write failed") as e:
            c.submit(put(9), cb(9))
        assert isinstance(e.value.__cause__, PersistenceError)
        c.close()  # does not raise
    assert results[0] is None
    failures = [results[i] for i in range(1, 6)]
    assert all(isinstance(f, PersistenceError) for f in failures)
    assert failures[0] is failures[4]  # the very exception apply raised
    assert 9 not in results
    assert len(fake.batches) == 2
    assert c.failure is failures[0]
    assert any("failed" in r.getMessage() and r.name == "inbus" for r in caplog.records)


def test_what_was_queued_behind_a_failed_batch_gets_an_error_too() -> None:
    store = FakeStore(fail_on=0)
    store.gate.clear()
    c = GroupCommitter(store, max_batch=1)
    results: list[BaseException | None] = []
    for i in range(3):
        c.submit(put(i), results.append)
    store.gate.set()
    c.close()
    assert len(results) == 3 and all(isinstance(r, PersistenceError) for r in results)
    assert len(store.batches) == 1  # nothing applied after the failure


def test_with_a_real_sqlite_store(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    store = SqliteStore(path)
    c = GroupCommitter(store)
    confirmed: list[int] = []
    for i in range(300):
        c.submit(put(i), lambda e, i=i: confirmed.append(i))  # type: ignore[misc]
    c.submit([PutVhost("/")])
    c.close()
    store.close()
    assert confirmed == list(range(300))
    with SqliteStore(path) as s:
        snap = s.load()
    assert [m.seq for m in snap.messages] == list(range(300)) and snap.vhosts == ["/"]
    assert c.statistics().batches < 300


def test_max_batch_is_validated() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        GroupCommitter(MemoryStore(), max_batch=0)


def test_an_unencodable_value_fails_only_its_own_submission(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "t.db"))
    gate = threading.Event()
    c = GroupCommitter(store)
    c.submit([], lambda e: gate.wait(5))  # hold the writer so the next three form one batch
    results: dict[int, BaseException | None] = {}
    bad = PutMessage(MessageRecord("/", "q", 2, "", "q", b"", {"headers": {"x": object()}}))
    c.submit(put(1), lambda e: results.__setitem__(1, e))
    c.submit([bad], lambda e: results.__setitem__(2, e))
    c.submit(put(3), lambda e: results.__setitem__(3, e))
    gate.set()
    assert c.flush(5)
    assert results[1] is None and results[3] is None
    assert isinstance(results[2], TypeError)
    c.submit(put(4))  # not failed: goes on
    c.close()
    store.close()
    with SqliteStore(str(tmp_path / "t.db")) as s:
        assert [m.seq for m in s.load().messages] == [1, 3, 4]


# --- leader/follower: flush() without a timeout commits on the calling thread --------------


def _flushing_producers(c: GroupCommitter, threads: int, per_thread: int,
                        seen: list[tuple[int, int]] | None = None) -> list[BaseException]:
    """``threads`` threads, each submits one put and flush()es, ``per_thread`` times."""
    errors: list[BaseException] = []

    def producer(k: int) -> None:
        try:
            for i in range(per_thread):
                c.submit(put(k * per_thread + i))
                assert c.flush() is True
                if seen is not None:
                    seen.append((k, i))
        except BaseException as e:  # noqa: BLE001 - handed to the test
            errors.append(e)

    ts = [threading.Thread(target=producer, args=(k,), name=f"producer-{k}")
          for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    assert not any(t.is_alive() for t in ts), "a flusher never returned"
    return errors


def test_waiting_flushers_commit_themselves_in_batches(fake: FakeStore) -> None:
    fake.delay = 0.001  # like an fsync: the other threads submit meanwhile
    c = GroupCommitter(fake)
    seen: list[tuple[int, int]] = []
    assert _flushing_producers(c, 8, 50, seen) == []
    c.close()
    stats = c.statistics()
    assert len(seen) == 400 and stats.submits == 400 and stats.pending == 0
    assert stats.batches < stats.submits / 2.5, stats  # batched, not one by one
    assert any(name.startswith("producer-") for name in fake.threads), fake.threads
    applied = sorted(op.record.seq for b in fake.batches for op in b)  # type: ignore[union-attr]
    assert applied == list(range(400))  # each exactly once


def test_a_leader_hands_callbacks_to_the_writer_in_submission_order(fake: FakeStore) -> None:
    fake.delay = 0.0005
    c = GroupCommitter(fake)
    order: list[int] = []
    threads: set[str] = set()
    stop = threading.Event()

    def with_callbacks() -> None:
        for i in range(300):
            def on_done(exc: BaseException | None, i: int = i) -> None:
                assert exc is None
                order.append(i)
                threads.add(threading.current_thread().name)
            c.submit(put(10_000 + i), on_done)
            if i % 10 == 0:
                time.sleep(0.0005)
        stop.set()

    t = threading.Thread(target=with_callbacks)
    t.start()
    assert _flushing_producers(c, 4, 60) == []
    t.join(20)
    assert stop.is_set()
    assert c.flush()  # a flush returns only once every earlier callback ran
    assert order == list(range(300))
    assert threads == {"inbus-committer"}
    c.close()


def test_flush_returns_after_the_callbacks_of_earlier_submissions(fake: FakeStore) -> None:
    c = GroupCommitter(fake)
    for round_ in range(50):
        ran: list[int] = []
        release = threading.Event()
        c.submit(put(round_), lambda e, r=release, ran=ran: (r.wait(0.01), ran.append(1)))
        c.submit(put(1000 + round_))  # no callback: a flusher may commit it first
        assert c.flush() is True
        assert ran == [1]
    c.close()


def test_a_failed_commit_by_a_leader_fails_every_flusher(fake: FakeStore) -> None:
    fake.fail_on = 5
    fake.delay = 0.0005
    c = GroupCommitter(fake)
    errors = _flushing_producers(c, 4, 20)
    assert errors and all(isinstance(e, PersistenceError) for e in errors)
    assert all("disk is full" in str(e) for e in errors)
    with pytest.raises(PersistenceError, match="earlier write failed"):
        c.flush()
    c.close()
    assert len(fake.batches) == 6  # nothing written after the failure


def test_close_while_flushers_wait_does_not_deadlock(fake: FakeStore) -> None:
    fake.gate.clear()
    c = GroupCommitter(fake)
    results: list[object] = []

    def flusher(i: int) -> None:
        try:
            c.submit(put(i))
            results.append(c.flush())
        except PersistenceError as e:
            results.append(e)

    ts = [threading.Thread(target=flusher, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    time.sleep(0.05)  # one leads (blocked in apply), the others wait
    closer = threading.Thread(target=c.close)
    closer.start()
    fake.gate.set()
    closer.join(10)
    for t in ts:
        t.join(10)
    assert not closer.is_alive() and not any(t.is_alive() for t in ts)
    assert results == [True] * 4  # everything queued before close was committed
    applied = sorted(op.record.seq for b in fake.batches for op in b)  # type: ignore[union-attr]
    assert applied == [0, 1, 2, 3]


def test_an_announced_flush_commits_on_the_calling_thread_without_the_writer(
        fake: FakeStore) -> None:
    c = GroupCommitter(fake)
    for i in range(20):
        c.expect_flush()
        c.submit(put(i))
        assert c.flush(expected=True) is True
    assert fake.threads == {threading.current_thread().name}  # the writer never ran
    c.expect_flush()
    c.submit(put(99))
    c.unexpect()  # withdrawn: the writer commits it
    assert c.flush(timeout=5) is True
    assert "inbus-committer" in fake.threads
    assert c._flushers == 0
    c.close()


def test_throttle_bounds_the_backlog_of_a_writer_faster_than_the_disk(
        fake: FakeStore) -> None:
    fake.delay = 0.002  # a slow disk
    c = GroupCommitter(fake, max_pending=50)
    most = 0
    for i in range(400):
        c.submit(put(i))
        c.throttle()
        most = max(most, c.pending_ops)
    assert most <= 51  # never more than max_pending (+ the one just submitted)
    assert c.flush(10)
    applied = sorted(op.record.seq for b in fake.batches for op in b)  # type: ignore[union-attr]
    assert applied == list(range(400))
    assert c.pending_ops == 0
    with pytest.raises(ValueError, match="max_pending"):
        GroupCommitter(fake, max_pending=0)
    c.close()


def test_the_flusher_that_completes_the_expected_batch_leads_it_at_once(
        fake: FakeStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import inbus._committer as cm
    monkeypatch.setattr(cm, "_COMEBACK", 5.0)  # a gatherer would wait seconds...
    monkeypatch.setattr(cm, "_MAX_GATHER", 5.0)
    c = GroupCommitter(fake)
    c._expect = 2  # as if the last batch came from two waiting publishers
    first = threading.Thread(target=lambda: (c.expect_flush(), c.submit(put(0)),
                                             c.flush(expected=True)), name="first")
    t0 = time.monotonic()
    first.start()
    deadline = time.monotonic() + 5
    while c._gatherer is None and time.monotonic() < deadline:
        time.sleep(0.001)
    assert c._gatherer is not None  # the first flusher waits for the second submitter
    c.expect_flush()
    c.submit(put(1))
    assert c.flush(expected=True) is True  # ...which completes the batch and leads it
    first.join(5)
    assert not first.is_alive() and time.monotonic() - t0 < 2.5  # nobody waited it out
    assert [[op.record.seq for op in b] for b in fake.batches] == [[0, 1]]  # type: ignore[union-attr]
    assert fake.threads == {threading.current_thread().name}
    assert c._gatherer is None and c._flushers == 0
    c.close()


def test_a_gatherer_whose_wait_runs_out_commits_what_there_is(
        fake: FakeStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import inbus._committer as cm
    monkeypatch.setattr(cm, "_COMEBACK", 0.05)
    monkeypatch.setattr(cm, "_MAX_GATHER", 1.0)
    c = GroupCommitter(fake)
    c._expect = 2  # the second publisher never comes
    t0 = time.monotonic()
    c.expect_flush()
    c.submit(put(7))
    assert c.flush(expected=True) is True
    waited = time.monotonic() - t0
    assert 0.09 <= waited < 1.0, waited  # the bound: 2 x _COMEBACK
    assert [[op.record.seq for op in b] for b in fake.batches] == [[7]]  # type: ignore[union-attr]
    assert c._expect == 1 and c._gatherer is None  # the next lone publish does not wait
    t0 = time.monotonic()
    c.expect_flush()
    c.submit(put(8))
    assert c.flush(expected=True) is True and time.monotonic() - t0 < 0.09
    c.close()
