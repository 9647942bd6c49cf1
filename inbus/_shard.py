"""Sharded publish/subscribe (Redis 7's SSUBSCRIBE / SPUBLISH), the native API: mixins of
:class:`inbus.pubsub.PubSubHub` and :class:`inbus.pubsub.PubSub`.

Theory of operation
-------------------
Shard channels are a namespace of their own in the registry (:mod:`inbus._pubsub`), as on
a non-cluster Redis 7.0 (checked against 7.0.15): ``spublish`` reaches only the shard
subscribers of its channel, as ``smessage`` dicts; ``publish`` never reaches them and
patterns never match them; a client subscribed to ``a`` and shard-subscribed to ``a``
holds two separate subscriptions. ``ssubscribe`` / ``sunsubscribe`` confirmations carry
the subscriber's count of shard channels only (its channel + pattern count is separate),
and ``sunsubscribe()`` with none held confirms once with channel None. There is one
"shard" (one in-process server): no slots, no CROSSSLOT errors, as on a non-cluster
server. These methods take the hub lock exactly as their classic twins do, and reuse the
subscriber's buffer, bounds and handlers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from inbus._errors import PubSubError
from inbus._pubsub import Message, Registry, _names, encode

if TYPE_CHECKING:
    from inbus.pubsub import PubSub

__all__ = ["ShardedHub", "ShardedSubscriber"]

Handler = Callable[[Message], Any]


class ShardedHub:
    """SPUBLISH and PUBSUB SHARDCHANNELS / SHARDNUMSUB of a :class:`~inbus.pubsub.PubSubHub`."""

    _lock: threading.Lock
    _closed: bool
    _registry: Registry[PubSub]

    if TYPE_CHECKING:  # (PubSubHub's)
        def _overflowed_locked(self, over: list[PubSub]) -> None: ...

    def spublish(self, channel: object, message: object) -> int:
        """Send ``message`` to the shard subscribers of ``channel`` (Redis 7 SPUBLISH); return
        how many got it. Channel and pattern subscribers get nothing.

        >>> from inbus.pubsub import PubSubHub
        >>> hub = PubSubHub(); p = hub.pubsub(); p.subscribe("orders"); p.psubscribe("*")
        >>> hub.spublish("orders", "x")            # SUBSCRIBE and PSUBSCRIBE do not count
        0
        >>> p.ssubscribe("orders"); hub.spublish("orders", "x"), hub.publish("orders", "y")
        (1, 2)
        """
        ch = encode(channel, "channel")
        data = encode(message, "message")
        size = len(data)
        with self._lock:
            if self._closed:
                raise PubSubError("spublish on a closed bus")
            deliveries = self._registry.spublish(ch, data)
            over = [sub for sub, msg in deliveries if not sub._push(msg, size)]
            if over:
                self._overflowed_locked(over)
            return len(deliveries)

    def pubsub_shardchannels(self, pattern: object = None) -> list[bytes]:
        """PUBSUB SHARDCHANNELS: shard channels with at least one shard subscriber
        (``pattern``: only those it matches, as a Redis glob). Classic channels not listed.

        >>> from inbus.pubsub import PubSubHub
        >>> hub = PubSubHub(); p = hub.pubsub(); p.ssubscribe("s1", "s2"); p.subscribe("c")
        >>> hub.pubsub_shardchannels("s*"), hub.pubsub_channels()
        ([b's1', b's2'], [b'c'])
        """
        pat = None if pattern is None else encode(pattern, "pattern")
        with self._lock:
            return self._registry.shardchannels(pat)

    def pubsub_shardnumsub(self, *channels: object) -> list[tuple[bytes, int]]:
        """PUBSUB SHARDNUMSUB: ``(shard channel, shard subscribers)`` pairs.

        >>> from inbus.pubsub import PubSubHub
        >>> hub = PubSubHub(); p = hub.pubsub(); p.ssubscribe("s")
        >>> hub.pubsub_shardnumsub("s", "other"), hub.pubsub_numsub("s")
        ([(b's', 1), (b'other', 0)], [(b's', 0)])
        """
        names = [encode(c, "channel") for c in _names(channels)]
        with self._lock:
            return self._registry.shardnumsub(names)


class ShardedSubscriber:
    """SSUBSCRIBE / SUNSUBSCRIBE of a :class:`~inbus.pubsub.PubSub`; its ``smessage``
    deliveries are read with ``get_message`` (or ``get_sharded_message``, the same)."""

    _shard_handlers: dict[bytes, Handler | None]
    _pending_sunsub: set[bytes]

    if TYPE_CHECKING:  # (PubSub's)
        from inbus.pubsub import PubSubHub
        _hub: PubSubHub

        def _sub(self, op: str, args: tuple[object, ...], handlers: dict[str, Handler],
                 table: dict[bytes, Handler | None], pending: set[bytes]) -> None: ...
        def get_message(self, ignore_subscribe_messages: bool = False,
                        timeout: float | None = 0.0) -> Message | None: ...

    def ssubscribe(self, *channels: object, **handlers: Handler) -> None:
        """SSUBSCRIBE to shard channels; ``name=handler`` keywords route that shard
        channel's ``smessage``\\ s to a handler. Confirmations count shard channels only.

        >>> from inbus.pubsub import PubSubHub
        >>> hub = PubSubHub(); p = hub.pubsub(); p.subscribe("a"); p.ssubscribe("a", "b")
        >>> [(m["type"], m["data"]) for m in (p.get_message() for _ in range(3))]
        [('subscribe', 1), ('ssubscribe', 1), ('ssubscribe', 2)]
        >>> _ = hub.spublish("b", "hi"); p.get_sharded_message()
        {'type': 'smessage', 'pattern': None, 'channel': b'b', 'data': b'hi'}
        """
        self._sub("ssubscribe", channels, handlers, self._shard_handlers,
                  self._pending_sunsub)

    def sunsubscribe(self, *channels: object) -> None:
        """SUNSUBSCRIBE from the shard channels; none given means all of them (none held:
        one confirmation with channel None).

        >>> from inbus.pubsub import PubSubHub
        >>> p = PubSubHub().pubsub(); p.subscribe("a"); p.sunsubscribe()
        >>> p.get_message()["type"], p.get_message()
        ('subscribe', {'type': 'sunsubscribe', 'pattern': None, 'channel': None, 'data': 0})
        """
        names = [encode(n, "channel") for n in _names(channels)]
        self._pending_sunsub.update(names or self._shard_handlers)
        self._hub._change(cast("PubSub", self), "sunsubscribe", names)

    @property
    def shard_channels(self) -> dict[bytes, Handler | None]:
        """The shard channels held now, each with its handler (or None)."""
        held = self._hub._held(cast("PubSub", self))[2]
        return {c: self._shard_handlers.get(c) for c in held}

    def get_sharded_message(self, ignore_subscribe_messages: bool = False,
                            timeout: float | None = 0.0) -> Message | None:
        """The same as :meth:`~inbus.pubsub.PubSub.get_message` (one subscriber reads
        every kind of message), as in redis-py."""
        return self.get_message(ignore_subscribe_messages, timeout)
