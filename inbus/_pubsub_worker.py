"""The reader thread of :meth:`inbus.pubsub.PubSub.run_in_thread` (part of the threaded
shell of :mod:`inbus.pubsub`, which re-exports it).

Theory of operation
-------------------
The thread loops on ``get_message(ignore_subscribe_messages=True)``, so that the
subscriber's handlers run in it, as redis-py's ``PubSubWorkerThread`` does; ``stop()``
clears its flag and interrupts a blocked read at once. It always closes its PubSub when it
ends and tells the hub it is gone (the hub joins the threads still running on close()). A
disconnection by the bus (buffer overflow) goes to ``exception_handler`` or is raised; a
close by the user ends the loop quietly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from inbus._errors import SubscriberClosed

if TYPE_CHECKING:
    from inbus.pubsub import PubSub

__all__ = ["PubSubWorkerThread"]


class PubSubWorkerThread(threading.Thread):
    """The thread of :meth:`PubSub.run_in_thread`; ``stop()`` ends it and closes the PubSub."""

    def __init__(self, pubsub: PubSub, sleep_time: float, *, daemon: bool,
                 exception_handler: Callable[[BaseException, PubSub,
                                              PubSubWorkerThread], Any] | None) -> None:
        super().__init__(name="inbus-pubsub-worker", daemon=daemon)
        self.pubsub = pubsub
        self.sleep_time = sleep_time
        self.exception_handler = exception_handler
        self._running = True

    def run(self) -> None:
        p = self.pubsub
        timeout = self.sleep_time if self.sleep_time > 0 else None
        try:
            while self._running:
                try:
                    p.get_message(ignore_subscribe_messages=True, timeout=timeout)
                except SubscriberClosed as exc:
                    if not p._closed_by_user and self.exception_handler is not None:
                        self.exception_handler(exc, p, self)
                    elif not p._closed_by_user:
                        raise
                    break
                except BaseException as exc:
                    if self.exception_handler is None:
                        raise
                    self.exception_handler(exc, p, self)
        finally:
            p.close()
            p._hub._remove_thread(self)

    def stop(self) -> None:
        """Ask the thread to end; it wakes at once, closes its PubSub and exits."""
        self._running = False
        self.pubsub._interrupt()
