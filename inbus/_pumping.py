"""pika's blocking ways to consume on a channel: ``start_consuming`` / ``stop_consuming``
and the ``consume()`` generator (a mixin of :class:`inbus._channel.Channel`).

They pump the channel's connection in the calling thread
(``Connection.process_data_events``), so callbacks run there, with no bus lock held.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._connection import Connection
    from ._message import Message
    from ._queue import Consumer

__all__ = ["BlockingConsuming"]

_POLL = 0.25  # seconds between checks when nothing wakes start_consuming (a safety net)


class BlockingConsuming:
    """The pumping half of a Channel (state lives on the Channel)."""

    _conn: Connection
    _lock: Any
    _consuming: bool
    _consumers: dict[str, Consumer]
    _open: bool
    _sink: Any

    @property
    def consumer_tags(self) -> list[str]:
        raise NotImplementedError

    def _check_open(self) -> None:
        raise NotImplementedError

    def basic_consume(self, queue: str, on_message_callback: Callable[[Message], Any],
                      auto_ack: bool = False, exclusive: bool = False,
                      consumer_tag: str | None = None,
                      arguments: dict[str, Any] | None = None) -> str:
        raise NotImplementedError

    def basic_cancel(self, consumer_tag: str = "") -> None:
        raise NotImplementedError

    def start_consuming(self) -> None:
        """Run callbacks in this thread until ``stop_consuming`` or no consumers are left."""
        sink, lock = self._conn._sink, self._lock
        with lock:
            self._check_open()
            self._consuming = True
        try:
            while True:
                with lock:
                    # checked under the lock that stop_consuming() takes to wake us: a stop
                    # from another thread ends this at once, not at the next poll
                    if not self._consuming or not self._consumers or not self._open:
                        return
                    if not sink.items:
                        sink.wait(_POLL)
                        continue
                    items = sink.take()
                sink.run(items, lock)
        finally:
            self._consuming = False

    def stop_consuming(self, consumer_tag: str | None = None) -> None:
        """Cancel consumers (all, or one) and make ``start_consuming`` return."""
        with self._lock:
            if not self._open:
                return
            tags = [consumer_tag] if consumer_tag else list(self._consumers)
        for t in tags:
            self.basic_cancel(t)
        with self._lock:
            self._consuming = False
            self._sink.wake()

    def consume(self, queue: str, auto_ack: bool = False, exclusive: bool = False,
                arguments: dict[str, Any] | None = None,
                inactivity_timeout: float | None = None
                ) -> Generator[Message | None, None, None]:
        """Yield messages from ``queue`` as they come (None after ``inactivity_timeout``
        seconds without one). Closing the generator cancels the consumer."""
        box: deque[Message] = deque()
        tag = self.basic_consume(queue, box.append, auto_ack, exclusive, None, arguments)
        try:
            while True:
                if box:
                    yield box.popleft()
                    continue
                self._conn.process_data_events(
                    inactivity_timeout if inactivity_timeout is not None else None)
                if not box:
                    if not self._open or tag not in self._consumers:
                        return
                    if inactivity_timeout is not None:
                        yield None
        finally:
            if self._open and tag in self._consumers:
                self.basic_cancel(tag)

    def cancel(self) -> int:
        """Cancel every consumer created by ``consume()`` (pika); returns 0."""
        for tag in self.consumer_tags:
            self.basic_cancel(tag)
        return 0
