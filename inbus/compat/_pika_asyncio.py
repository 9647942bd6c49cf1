"""pika look-alike, part 8: ``pika.adapters.asyncio_connection.AsyncioConnection`` over an
in-process bus, sharing the asynchronous Channel (:mod:`inbus.compat._pika_async_channel`)
and the connection logic (:mod:`inbus.compat._pika_select`) with SelectConnection.

Theory of operation
-------------------
The asyncio event loop is the I/O loop: ``connection.ioloop`` is it, and the application
runs it (``run_forever()`` / ``stop()``; timers are its ``call_later``). The connection's
sink rings a bell (:class:`inbus.compat._pika_ioloop._WireSink`) when the bus appends to
it while the connection waits; the bell schedules a pump with ``call_soon_threadsafe``,
so deliveries published from any thread wake the loop. A pump runs the items pending
then (in order, on the loop's thread, no bus lock held) and reschedules itself with
``call_soon`` while items remain, so other coroutines and callbacks interleave. An
exception from a callback goes to the event loop's exception handler (asyncio's rule).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._pika_ioloop import _Bell, _WireSink
from ._pika_select import _AsyncConnection
from ._pika_spec import ConnectionParameters

if TYPE_CHECKING:
    from .._connection import Connection as _NativeConnection

__all__ = ["AsyncioConnection"]

Callback = Callable[..., Any]


class AsyncioConnection(_AsyncConnection):
    """pika 1.x's ``AsyncioConnection(parameters=None, on_open_callback=None,
    on_open_error_callback=None, on_close_callback=None, custom_ioloop=None)`` on an
    asyncio event loop (``custom_ioloop``, else ``asyncio.get_event_loop()``); channels
    are pika's asynchronous ``Channel``, as with SelectConnection.

    >>> import asyncio
    >>> loop = asyncio.new_event_loop()
    >>> def on_open(conn):
    ...     conn.channel(on_open_callback=lambda ch: ch.queue_declare(
    ...         "q", callback=lambda frame: (print(frame.method.queue), loop.stop())))
    >>> conn = AsyncioConnection(on_open_callback=on_open, custom_ioloop=loop)
    >>> loop.run_forever()
    q
    >>> loop.close()
    """

    def __init__(self, parameters: ConnectionParameters | None = None,
                 on_open_callback: Callback | None = None,
                 on_open_error_callback: Callback | None = None,
                 on_close_callback: Callback | None = None,
                 custom_ioloop: asyncio.AbstractEventLoop | None = None,
                 internal_connection_workflow: bool = True) -> None:
        if custom_ioloop is not None and not isinstance(custom_ioloop,
                                                        asyncio.AbstractEventLoop):
            raise TypeError("custom_ioloop must be an asyncio event loop, not "
                            f"{type(custom_ioloop).__name__}")
        self._loop = custom_ioloop if custom_ioloop is not None \
            else asyncio.get_event_loop()
        super().__init__(parameters, on_open_callback, on_open_error_callback,
                         on_close_callback, internal_connection_workflow)
        self._loop.call_soon(self._run)

    @property
    def ioloop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def _run(self) -> None:
        """Pump what is pending (on the loop); again soon while items remain."""
        try:
            self._pump(lambda: False)
        finally:
            if self._arm():
                self._loop.call_soon(self._run)

    def _ring(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._run)
        except RuntimeError:
            pass  # the event loop is closed: nothing will run this connection again

    def _install_waker(self, native: _NativeConnection) -> None:
        native._sink = _WireSink(native._lock, _Bell(self._ring))

    def _detach_loop(self) -> None:
        pass
