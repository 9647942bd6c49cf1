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
k submissions and fewer than k are pending, the writer waits -- only until k are there,
and at most half as long as the last transaction took (none when that was under 100 µs,
at most 2 ms) -- for the submitters it just confirmed to submit again. Without it, k waiting publishers split into
two half-size groups that alternate (one commits while the other is being woken), which
halves the batch. A lone submitter (k = 1) and a streaming one (many pending) never wait.

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


@dataclass(frozen=True)
class CommitterStatistics:
    """Counters of a GroupCommitter since it started."""

    submits: int  # calls to submit()
    batches: int  # calls to store.apply() (transactions)
    ops: int  # operations applied
    largest_batch: int  # most submissions in one transaction
    pending: int  # submissions not yet committed


class GroupCommitter:
    """Batches ops submitted from many threads into one ``store.apply`` per batch.

    >>> c = GroupCommitter(MemoryStore())
    >>> c.submit([], lambda exc: print("done", exc))
    done None
    >>> c.close()
    """

    def __init__(self, store: Store, *, max_batch: int = 10_000,
                 name: str = "inbus-committer") -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, not {max_batch!r}")
        self.store = store
        self.max_batch = max_batch
        self._path = store.path or "<memory>"
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._done_cond = threading.Condition(self._lock)
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
        self._gathering = False
        self._last_apply = 0.0
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
            if len(self._pending) == 1 or self._gathering:
                self._work.notify()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted before this call is committed.

        Returns False if ``timeout`` (seconds) passed first. Raises PersistenceError if a
        write failed, and RuntimeError when called from an ``on_done`` callback (the writer
        thread would wait for itself).
        """
        if self._thread is threading.current_thread():
            raise RuntimeError("flush() called from an on_done callback would deadlock")
        with self._lock:
            target = self._submitted
            ok = self._done_cond.wait_for(lambda: self._done >= target or
                                          self._failure is not None, timeout)
            if self._failure is not None:
                raise self._failed_error() from self._failure
            return ok

    def close(self, timeout: float | None = None) -> None:
        """Commit what is queued, stop and join the writer thread. Idempotent.

        Does not raise for an earlier write failure (it was reported to the callbacks).
        From an ``on_done`` callback it only asks the writer to stop after the queue.
        """
        with self._lock:
            self._closing = True
            self._work.notify_all()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        thread.join(timeout)

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

    def _take(self) -> list[tuple[Sequence[Op], OnDone | None]] | None:
        with self._lock:
            while not self._pending:
                if self._closing:
                    return None
                self._work.wait()
            if len(self._pending) < self._expect and not self._closing:
                self._gather()
            batch = [self._pending.popleft()]
            count = len(batch[0][0])
            while self._pending and count + len(self._pending[0][0]) <= self.max_batch:
                item = self._pending.popleft()
                count += len(item[0])
                batch.append(item)
            self._expect = min(len(batch), _MAX_EXPECT)
            return batch

    def _gather(self) -> None:
        """Wait (lock released) for the submitters of the last batch to submit again.

        Bounded by half the last transaction's duration (at most 2 ms): waiting a fraction
        of a commit can save a whole commit. When commits are cheap (under 100 µs, e.g.
        synchronous=NORMAL) waking threads costs as much as committing, so no wait.
        """
        bound = min(self._last_apply / 2, 2e-3)
        if bound < 50e-6:
            return
        deadline = time.monotonic() + bound
        self._gathering = True
        try:
            while len(self._pending) < self._expect and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._work.wait(remaining)
        finally:
            self._gathering = False

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            errors = self._commit(batch)
            for (_, on_done), error in zip(batch, errors, strict=True):
                if on_done is None:
                    continue
                try:
                    on_done(error)
                except Exception:
                    _log.exception("inbus: an on_done callback raised")
            with self._lock:
                self._done += len(batch)
                self._done_cond.notify_all()

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
