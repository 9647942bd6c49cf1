"""GroupCommitter: one writer thread that batches concurrent writes into one transaction.

Theory of operation
-------------------
Callers ``submit(ops, on_done)`` from any thread; ``submit`` only appends to a queue under
a lock and never waits for I/O. One writer thread loops: take *everything* pending (up to
``max_batch`` operations, always at least one submission), concatenate the operations,
call ``store.apply`` once -- one SQLite transaction, one fsync -- then call every
``on_done`` of that batch in submission order, on the writer thread, with no lock held.

This is "natural" group commit: there is no timer and no fixed sleep. A lone submit is
picked up at once and committed promptly; under load, the submissions that arrive while
a transaction commits all go into the next one, so the batch grows by itself until the
per-message cost approaches SQLite's one-big-transaction floor. ``max_batch`` bounds the
latency and memory of one transaction.

One refinement for publishers that each wait for their confirm: if the last batch held
k submissions (or k threads were in ``flush()`` at once) and fewer than k are pending, the
committing thread waits -- only until k are there, and at most as long as k threads need
to wake up and submit again (k x 25 µs) or half the last transaction, whichever is longer,
never over 2 ms -- for the submitters it just confirmed to submit again. A flusher (below)
waits as the *gatherer*, asleep on its own lock: the flusher whose submission makes k
leads the batch at once (no thread is woken just to commit), and the gatherer leads what
there is if its wait runs out first. Without it, k waiting publishers split into
two half-size groups that alternate (one commits while the other is being woken), which
halves the batch. A lone submitter (k = 1) and a streaming one (many pending) never wait.

Leader/follower: a thread that calls ``flush()`` with no timeout (a publisher waiting for
its confirm) does not hand its batch to the writer and sleep: when no batch is being
committed it takes what is pending and commits it *itself* (it "leads"); threads that
flush meanwhile wait and the first one to wake leads the next batch, with everything
submitted while the previous transaction ran. Each confirm then costs its own thread one
wakeup instead of three handoffs (submitter -> writer -> submitter). Only one batch is
committed at a time, by the writer or by one leader, so batches stay in submission order.
A leader never runs ``on_done`` callbacks: a batch with callbacks is handed to the writer
thread, which runs them in commit order, so every callback still runs on the writer
thread and a user callback never runs on (or blocks) another publisher's thread.

Backpressure: ``submit`` never blocks (it runs under the bus lock), so a publisher that
does not wait for confirms calls ``throttle()`` after releasing its locks; past
``max_pending`` queued operations that commits the backlog on the publisher's thread.

``on_done(None)`` means "committed (durable)": the moment to fire a publisher confirm.
``on_done(exc)`` means the batch failed and was rolled back: the exception is passed to
every ``on_done`` of the batch and logged on the ``"inbus"`` logger; the committer is then
*failed*: whatever was still queued gets a PersistenceError, ``submit`` and ``flush``
raise PersistenceError, and nothing more is written (a disk that refused one transaction
is not trusted with the next; the Bus reports the error instead of dropping silently).
An exception raised by an ``on_done`` is logged and does not stop the writer. A
TypeError/ValueError from ``apply`` (a value the store cannot encode; nothing written) is
not a storage failure: the batch is retried one submission at a time, so only the
culprit's ``on_done`` gets the error and the committer goes on.

With a plain :class:`~inbus._store.MemoryStore` there is nothing to wait for: no thread
is started and ``on_done(None)`` is called synchronously inside ``submit``.

``close()`` flushes, stops and joins the writer; it does not close the store (the owner
closes the store after the committer).

``_done`` counts submissions that are finished (committed, and their callback run), always
a prefix of the submission order: ``flush`` compares it with the submission count it saw.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ._errors import PersistenceError
from ._store import MemoryStore, Op, Store

__all__ = ["CommitterStatistics", "GroupCommitter", "OnDone"]

OnDone = Callable[[BaseException | None], None]

_log = logging.getLogger("inbus")
_MAX_EXPECT = 64  # more concurrent confirm-waiters than this is streaming, not waiting
_COMEBACK = 25e-6  # about what one confirmed publisher needs to wake up and submit again
_MAX_GATHER = 2e-3  # the longest a commit waits for expected submitters


@dataclass(frozen=True)
class CommitterStatistics:
    """Counters of a GroupCommitter since it started."""

    submits: int  # calls to submit()
    batches: int  # calls to store.apply() (transactions)
    ops: int  # operations applied
    largest_batch: int  # most submissions in one transaction
    pending: int  # submissions not yet committed


def _has_callbacks(batch: list[tuple[Sequence[Op], OnDone | None]]) -> bool:
    for _, on_done in batch:  # (a loop: any() over a generator costs 3x for a batch of 1)
        if on_done is not None:
            return True
    return False


class _Waiter:
    """A thread asleep in flush(): ``wake`` is held until another thread releases it."""

    __slots__ = ("target", "wake")

    def __init__(self, target: int) -> None:
        self.target = target
        self.wake = threading.Lock()
        self.wake.acquire()


class GroupCommitter:
    """Batches ops submitted from many threads into one ``store.apply`` per batch.

    >>> c = GroupCommitter(MemoryStore())
    >>> c.submit([], lambda exc: print("done", exc))
    done None
    >>> c.close()
    """

    def __init__(self, store: Store, *, max_batch: int = 10_000,
                 max_pending: int = 100_000, name: str = "inbus-committer") -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, not {max_batch!r}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, not {max_pending!r}")
        self.store = store
        self.max_batch = max_batch
        self.max_pending = max_pending  # queued operations before throttle() waits
        self.pending_ops = 0  # operations submitted and not yet taken into a batch
        self._path = store.path or "<memory>"
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._done_cond = threading.Condition(self._lock)
        self._timed_waiters = 0  # threads in flush(timeout) waiting on _done_cond
        self._pending: deque[tuple[Sequence[Op], OnDone | None]] = deque()
        self._submitted = 0
        self._done = 0
        self._batches = 0
        self._ops = 0
        self._largest = 0
        self._closing = False
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._expect = 1  # submissions in the last batch: the concurrency to wait for
        self._gathering = False  # the writer thread waits in _gather()
        self._gatherer: _Waiter | None = None  # a flusher waiting to lead a fuller batch
        self._arrival = threading.Condition(self._lock)  # a gathering committer waits here
        self._peak = 0  # most threads in flush() at once since the last batch was taken
        self._last_apply = 0.0
        self._leading = False  # a batch is being committed (by the writer or a leader)
        self._flushers = 0  # threads in flush() that will lead when no batch is committing
        self._running = False  # the writer is running the callbacks of a committed batch
        self._waiters: list[_Waiter] = []  # flushers asleep until a batch completes
        self._close_store = False  # close() asked to close the store after the queue
        self._store_closed = False
        # batches committed by a leader, waiting for the writer: (batch, outcomes)
        self._finished: deque[tuple[list[tuple[Sequence[Op], OnDone | None]],
                                    list[BaseException | None]]] = deque()
        if type(store) is not MemoryStore:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    # --- public ----------------------------------------------------------------------------

    def submit(self, ops: Sequence[Op], on_done: OnDone | None = None) -> None:
        """Queue ``ops`` for the next transaction; ``on_done(None | exc)`` once it is done.

        Never blocks on I/O (O(1) under a short lock). Callbacks fire in submission order
        on the writer thread. Raises PersistenceError when the committer is closed or an
        earlier write failed.
        """
        if self._thread is None:  # MemoryStore: nothing to wait for
            if self._closing:
                raise PersistenceError(self._path, "the committer is closed")
            self.store.apply(ops)
            with self._lock:
                self._submitted += 1
                self._done += 1
            if on_done is not None:
                try:
                    on_done(None)
                except Exception:
                    _log.exception("inbus: an on_done callback raised")
            return
        with self._lock:
            self._check_usable()
            self._pending.append((ops, on_done))
            self._submitted += 1
            self.pending_ops += len(ops)
            # A waiting flusher will lead this batch: no need to wake the writer.
            if self._gathering:
                if len(self._pending) >= self._expect:  # (not before: each wakeup of
                    self._arrival.notify()  # the gatherer costs a GIL handoff)
            elif not self._flushers and len(self._pending) == 1:
                self._work.notify()

    def flush(self, timeout: float | None = None, *, expected: bool = False) -> bool:
        """Wait until everything submitted before this call is committed (and its
        ``on_done`` ran).

        Without a timeout the calling thread may commit pending batches itself (see
        "Leader/follower" above); with one it only waits. Returns False if ``timeout``
        (seconds) passed first. Raises PersistenceError if a write failed, and
        RuntimeError when called from an ``on_done`` callback (the writer thread would
        wait for itself). ``expected``: this thread called ``expect_flush()`` before its
        submit (no timeout then).
        """
        if self._thread is threading.current_thread():
            if expected:
                self.unexpect()
            raise RuntimeError("flush() called from an on_done callback would deadlock")
        with self._lock:
            target = self._submitted
            if expected:
                self._flushers -= 1  # _flush_leading counts this thread again
            if timeout is not None or self._thread is None:
                self._timed_waiters += 1
                try:
                    ok = self._done_cond.wait_for(lambda: self._done >= target or
                                                  self._failure is not None, timeout)
                finally:
                    self._timed_waiters -= 1
                if not self._flushers and self._pending and not self._leading:
                    self._work.notify()
            else:
                ok = self._flush_leading(target)
            if self._failure is not None:
                raise self._failed_error() from self._failure
            return ok

    def on_writer_thread(self) -> bool:
        """True on the writer thread (in an ``on_done`` callback), where ``flush()``
        cannot be called."""
        return self._thread is threading.current_thread()

    def throttle(self) -> None:
        """Backpressure for writers that do not wait for confirms: when more than
        ``max_pending`` operations are queued, commit them (``flush()``) before going on,
        so a publisher faster than the disk cannot grow memory without bound. A no-op
        below the limit (one attribute read) and on the writer thread (an ``on_done``
        callback cannot wait for the writer)."""
        if self.pending_ops > self.max_pending and self._thread is not None and \
                self._thread is not threading.current_thread():
            self.flush()

    def expect_flush(self) -> None:
        """Announce that the calling thread will call ``flush(expected=True)`` right after
        its next submit (a publisher about to wait for its confirm): that submit then does
        not wake the writer, the flusher commits it itself. Pair with ``flush(expected=True)``
        or, if nothing gets submitted after all, ``unexpect()``."""
        with self._lock:
            self._flushers += 1
            if self._flushers > self._peak:
                self._peak = self._flushers

    def unexpect(self) -> None:
        """Withdraw an ``expect_flush()`` that is not followed by a flush."""
        with self._lock:
            self._flushers -= 1
            if not self._flushers and self._pending and not self._leading:
                self._work.notify()

    def _flush_leading(self, target: int) -> bool:
        """flush() without a timeout, lock held: lead batches until ``target`` is done.

        Between batches the thread sleeps on its own lock, which is released only to tell
        it "done" or "lead the next batch" (no herd of waiters re-checking one condition).
        A thread that would lead a batch smaller than the last one's concurrency
        (``_expect``) first sleeps as the *gatherer*, at most ``_gather_bound()``: the
        flusher whose submission completes the batch leads it at once (no wakeup in
        between), and the gatherer leads what there is if its wait runs out first.
        """
        self._flushers += 1
        if self._flushers > self._peak:
            self._peak = self._flushers
        timed_out = False
        try:
            while self._done < target and self._failure is None:
                if self._pending and not self._leading and not self._closing:
                    if timed_out or len(self._pending) >= self._expect:
                        timed_out = False
                        self._lead()
                        continue
                    if self._gatherer is None:
                        waiter = self._gatherer = _Waiter(target)
                        self._waiters.append(waiter)
                        self._lock.release()
                        try:
                            woken = waiter.wake.acquire(True, self._gather_bound())
                        finally:
                            self._lock.acquire()
                        if self._gatherer is waiter:
                            self._gatherer = None
                        if not woken and waiter in self._waiters:  # nobody released it
                            self._waiters.remove(waiter)
                            timed_out = True
                        continue
                waiter = _Waiter(target)
                self._waiters.append(waiter)
                self._lock.release()
                try:
                    waiter.wake.acquire()
                finally:
                    self._lock.acquire()
        finally:
            self._flushers -= 1
            if not self._flushers and self._pending and not self._leading:
                self._work.notify()  # nobody left to lead what was submitted since
        return True

    def _lead(self) -> None:
        """Commit the pending batch on this (flushing) thread. Lock held on entry/exit."""
        self._leading = True
        batch = self._take_locked()
        self._lock.release()
        try:
            outcome = self._commit(batch)
        finally:
            self._lock.acquire()
            self._leading = False
        if self._finished or self._running or _has_callbacks(batch):
            self._finished.append((batch, outcome))  # the writer runs the callbacks
            self._work.notify()
        else:
            self._done += len(batch)
        self._progress_locked()

    def _progress_locked(self) -> None:
        """After a batch committed or its callbacks ran: wake the flushers that are done,
        hand the next batch to one that is not (or to the writer), notify timed waiters."""
        if self._timed_waiters:  # (notify_all costs ~0.5 µs even with nobody waiting)
            self._done_cond.notify_all()
        waiters = self._waiters
        if waiters:
            done, failed = self._done, self._failure is not None
            keep = []
            for w in waiters:
                if failed or w.target <= done:
                    w.wake.release()
                else:
                    keep.append(w)
            if keep and self._pending and not self._leading and not self._closing:
                keep.pop(0).wake.release()  # it leads the next batch
            self._waiters = keep
            if self._gatherer is not None and self._gatherer not in keep:
                self._gatherer = None  # released: it gathers no more
        if self._pending and not self._leading and (not self._waiters or self._closing):
            self._work.notify()

    def close(self, timeout: float | None = None, *, close_store: bool = False) -> None:
        """Commit what is queued, stop and join the writer thread. Idempotent.

        Does not raise for an earlier write failure (it was reported to the callbacks).
        From an ``on_done`` callback it only asks the writer to stop after the queue.
        ``close_store``: then close the store too -- after the last commit, on the writer
        thread itself when called from an ``on_done`` callback (the store must outlive
        the queue the writer still drains).
        """
        with self._lock:
            self._closing = True
            self._arrival.notify_all()
            if close_store:
                self._close_store = True
            self._work.notify_all()
        thread = self._thread
        if thread is threading.current_thread():
            return  # the writer closes the store when it has drained the queue
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                return  # timed out: the writer closes the store when it is done
        if close_store:
            self._close_store_once(report=False)  # an error reaches the caller

    def _close_store_once(self, report: bool) -> None:
        with self._lock:
            if self._store_closed:
                return
            self._store_closed = True
        if not report:
            self.store.close()
            return
        try:
            self.store.close()
        except Exception:  # on the writer thread: nobody to raise it to
            _log.exception("inbus: closing the store %s failed", self._path)

    @property
    def failure(self) -> BaseException | None:
        """The exception that failed the committer, or None."""
        return self._failure

    def statistics(self) -> CommitterStatistics:
        """Counters (submits, transactions, ops, largest batch, pending). O(1)."""
        with self._lock:
            return CommitterStatistics(self._submitted, self._batches, self._ops,
                                       self._largest, self._submitted - self._done)

    def __enter__(self) -> GroupCommitter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the writer thread -----------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise self._failed_error() from self._failure
        if self._closing:
            raise PersistenceError(self._path, "the committer is closed")

    def _failed_error(self) -> PersistenceError:
        f = self._failure
        if isinstance(f, PersistenceError):
            return PersistenceError(f.path, f"an earlier write failed, nothing more is "
                                    f"written: {f.problem}")
        return PersistenceError(self._path, f"an earlier write failed, nothing more is "
                                f"written: {type(f).__name__}: {f}")

    def _take(self) -> tuple[list[tuple[Sequence[Op], OnDone | None]],
                             list[BaseException | None] | None] | None:
        """The writer's next job: a batch a leader committed (with its outcomes) whose
        callbacks are to run, or a pending batch to commit (outcomes None); None to stop."""
        with self._lock:
            while True:
                if self._finished:
                    self._running = True
                    return self._finished.popleft()
                if self._pending and not self._leading and (
                        not self._flushers or self._closing):
                    break
                if self._closing and not self._pending and not self._leading:
                    return None
                self._work.wait()
            if len(self._pending) < self._expect and not self._closing:
                self._gather()
                if self._leading or not self._pending or (
                        self._flushers and not self._closing):
                    self._running = True
                    return [], []  # a flusher took over while we gathered: nothing to do
            self._leading = True
            return self._take_locked(), None

    def _take_locked(self) -> list[tuple[Sequence[Op], OnDone | None]]:
        """Pop the next batch off the pending queue (lock held, pending not empty)."""
        batch = [self._pending.popleft()]
        count = len(batch[0][0])
        while self._pending and count + len(self._pending[0][0]) <= self.max_batch:
            item = self._pending.popleft()
            count += len(item[0])
            batch.append(item)
        self.pending_ops -= count
        self._expect = min(max(len(batch), self._peak), _MAX_EXPECT)
        self._peak = self._flushers
        return batch

    def _gather_bound(self) -> float:
        """How long to wait for the expected submitters (see ``_gather``), in seconds."""
        return min(max(self._last_apply / 2, self._expect * _COMEBACK), _MAX_GATHER)

    def _gather(self) -> None:
        """Wait (lock released) for the submitters of the last batch to submit again.

        Bounded by the time that many threads need to wake up and submit (``_COMEBACK``
        each) or half the last transaction's duration, whichever is longer, at most 2 ms:
        waiting a fraction of a commit can save a whole commit. Even when commits are
        cheap (synchronous=NORMAL) the wait pays: 8 threads each waiting for their
        confirm went from batches of 3.4 to 8 and from 45 to 30 µs per confirm. The
        gatherer is woken once, when the k-th submission arrives, not by each one.
        """
        deadline = time.monotonic() + self._gather_bound()
        self._gathering = True
        try:
            while len(self._pending) < self._expect and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._arrival.wait(remaining)
        finally:
            self._gathering = False

    def _run(self) -> None:
        while True:
            job = self._take()
            if job is None:
                if self._close_store:
                    self._close_store_once(report=True)
                return
            batch, errors = job
            if errors is None:  # ours to commit
                errors = self._commit(batch)
                with self._lock:
                    self._leading = False
                    if not _has_callbacks(batch):
                        self._done += len(batch)
                        self._progress_locked()
                        continue
                    self._running = True
                    self._progress_locked()
            for (_, on_done), error in zip(batch, errors, strict=True):
                if on_done is None:
                    continue
                try:
                    on_done(error)
                except Exception:
                    _log.exception("inbus: an on_done callback raised")
            with self._lock:
                self._running = False
                self._done += len(batch)
                self._progress_locked()

    def _commit(self, batch: list[tuple[Sequence[Op], OnDone | None]]
                ) -> list[BaseException | None]:
        """Apply the batch; the outcome of each submission in it."""
        if self._failure is not None:
            error = self._failed_error()
            error.__cause__ = self._failure
            return [error] * len(batch)
        ops = [op for item in batch for op in item[0]]
        try:
            t0 = time.monotonic()
            if ops:
                self.store.apply(ops)
            self._last_apply = time.monotonic() - t0
            outcome: list[BaseException | None] = [None] * len(batch)
        except (TypeError, ValueError) as exc:
            # A value the store cannot encode: nothing was written (rolled back) and the
            # store is fine. Retry one submission at a time so only the culprit fails.
            if len(batch) == 1:
                _log.error("inbus: a write to %s was refused: %s", self._path, exc)
                outcome = [exc]
            else:
                outcome = [e for item in batch for e in self._commit([item])]
        except BaseException as exc:  # noqa: BLE001 - reported to every on_done
            _log.error("inbus: a write of %d operation(s) to %s failed; nothing more will be "
                       "written", len(ops), self._path, exc_info=exc)
            with self._lock:
                self._failure = exc
            outcome = [exc] * len(batch)
        with self._lock:
            self._batches += 1
            self._ops += len(ops)
            self._largest = max(self._largest, len(batch))
        return outcome
