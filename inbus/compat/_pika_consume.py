"""pika look-alike, part 4: BlockingChannel's ``consume()`` generator (a mixin of
:class:`inbus.compat._pika_channel.BlockingChannel`), on its basic_consume.

As pika 1.x: one generator per channel at a time (the same ``(queue, auto_ack,
exclusive)`` continues it, others raise ValueError); it yields ``(method, properties,
body)`` per message and ``(None, None, None)`` after ``inactivity_timeout`` seconds
without one, pumping the connection meanwhile; it ends when its consumer is cancelled
(``cancel()``, or by the broker), and raises the broker's close of the channel or the
connection when it reads one. ``cancel()`` nacks (requeue) what was received but not
yielded."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from .._message import BasicProperties

if TYPE_CHECKING:
    from .pika import BlockingConnection

__all__ = ["ConsumeGenerator"]


class _Generator:
    __slots__ = ("params", "tag", "pending", "auto_ack")

    def __init__(self, params: tuple[Any, ...], auto_ack: bool) -> None:
        self.params = params
        self.tag = ""
        self.auto_ack = auto_ack
        self.pending: deque[tuple[Any, BasicProperties, bytes]] = deque()


class ConsumeGenerator:
    """consume() / get_waiting_message_count() / cancel() of the BlockingChannel
    look-alike."""

    _gen: _Generator | None
    _consumers: dict[str, Any]
    _connection: BlockingConnection

    if TYPE_CHECKING:  # (BlockingChannel's)
        def _consume(self, queue: str, callback: Callable[..., Any], auto_ack: bool,
                     exclusive: bool, consumer_tag: str | None,
                     arguments: dict[str, Any] | None) -> str: ...
        def _live(self) -> bool: ...
        def _process_data_events(self, time_limit: float | None) -> None: ...
        def basic_cancel(self, consumer_tag: str) -> list[tuple[Any, Any, Any]]: ...
        def basic_nack(self, delivery_tag: int = 0, multiple: bool = False,
                       requeue: bool = True) -> None: ...
        @property
        def is_closed(self) -> bool: ...

    def consume(self, queue: str, auto_ack: bool = False, exclusive: bool = False,
                arguments: dict[str, Any] | None = None,
                inactivity_timeout: float | None = None,
                consumer_tag: str | None = None
                ) -> Generator[tuple[Any, Any, Any], None, None]:
        """Yield ``(method, properties, body)`` per message, ``(None, None, None)`` after
        ``inactivity_timeout`` seconds without one; ends when the consumer is cancelled
        (``cancel()`` or by the broker)."""
        params = (queue, auto_ack, exclusive)   # what pika compares
        gen = self._gen
        if gen is None:
            gen = _Generator(params, auto_ack)

            def on_message(ch: Any, method: Any, props: Any, body: bytes) -> None:
                gen.pending.append((method, props, body))

            gen.tag = self._consume(queue, on_message, auto_ack, exclusive, consumer_tag,
                                    arguments)
            self._gen = gen
        elif gen.params != params:
            raise ValueError("Consume with different params not allowed on existing queue "
                             f"consumer generator; previous params: {gen.params!r}; "
                             f"new params: {params!r}")
        while True:
            if gen.pending:
                yield gen.pending.popleft()
                continue
            if self._gen is not gen or gen.tag not in self._consumers or not self._live():
                self._connection._raise_shutdown()
                return
            deadline = None if inactivity_timeout is None \
                else time.monotonic() + inactivity_timeout
            while not gen.pending and self._gen is gen and gen.tag in self._consumers \
                    and self._live():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._process_data_events(left)   # raises if the broker closed the channel
            if gen.pending:
                continue
            if self._gen is not gen or gen.tag not in self._consumers or not self._live():
                self._connection._raise_shutdown()
                return                      # cancelled (by cancel() or by the broker)
            if deadline is not None:
                yield None, None, None

    def get_waiting_message_count(self) -> int:
        """Messages received by the consume() generator but not yet yielded."""
        return len(self._gen.pending) if self._gen is not None else 0

    def cancel(self) -> int:
        """Cancel the consume() generator's consumer; received but unyielded ackable
        messages are nacked back to the queue. Returns 0, as pika 1.x does."""
        gen, self._gen = self._gen, None
        if gen is None:
            return 0
        pending = list(gen.pending)
        gen.pending.clear()
        self.basic_cancel(gen.tag)
        if gen.auto_ack or not pending or self.is_closed:
            return 0
        for method, _p, _b in pending:
            self.basic_nack(method.delivery_tag, requeue=True)
        return 0  # (pika 1.x: "for compatibility with legacy implementation")
