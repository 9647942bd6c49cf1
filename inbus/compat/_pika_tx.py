"""pika look-alike, part 3: BlockingChannel's transaction methods (a mixin of
:class:`inbus.compat._pika_channel.BlockingChannel`), on the native channel's
:meth:`inbus.Channel.tx_select` / ``tx_commit`` / ``tx_rollback``.

As pika 1.x's BlockingChannel, each is a synchronous method returning the reply frame
(``.method`` is ``Tx.SelectOk`` / ``Tx.CommitOk`` / ``Tx.RollbackOk``); a refusal (406
``channel is not transactional``, confirm mode) raises ``ChannelClosedByBroker`` and an
error left by an earlier asynchronous method (a publish to a missing exchange, an ack of
an unknown tag) surfaces here, as it does in pika when the next reply is read."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._pika_spec import Method, spec

if TYPE_CHECKING:
    from .._channel import Channel

__all__ = ["TxMethods"]


class TxMethods:
    """tx_select / tx_commit / tx_rollback of the pika BlockingChannel look-alike."""

    _native: Channel

    def _sync(self, fn: Callable[[], Any]) -> Any:
        raise NotImplementedError

    def _ok(self, method: Any) -> Method:
        raise NotImplementedError

    def tx_select(self) -> Method:
        """Make the channel transactional; ``.method`` is Tx.SelectOk."""
        self._sync(self._native.tx_select)
        return self._ok(spec.Tx.SelectOk())

    def tx_commit(self) -> Method:
        """Commit the held publishes and acks; ``.method`` is Tx.CommitOk."""
        self._sync(self._native.tx_commit)
        return self._ok(spec.Tx.CommitOk())

    def tx_rollback(self) -> Method:
        """Drop the held publishes and acks; ``.method`` is Tx.RollbackOk."""
        self._sync(self._native.tx_rollback)
        return self._ok(spec.Tx.RollbackOk())
