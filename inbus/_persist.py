"""Opening a durable Bus: load the store, rebuild the state, start the group committer.

Theory of operation
-------------------
``Bus("app.db")`` calls :func:`open_store`: a :class:`~inbus._sqlite.SqliteStore` is
opened (or the ``store=`` given is used), its :class:`~inbus._store.Snapshot` loaded,
and every vhost, durable exchange, durable queue, binding and persistent message is put
back. Routing structures (tries, tables) are rebuilt by binding again, never read from
disk. Recovered messages keep their order (``seq``) and their redelivered flag as the
store reports it (True unless certainly never delivered). Expiry times are stored as
wall-clock times and mapped back onto the bus's monotonic clock. Then, as a starting
RabbitMQ queue does, a queue over its x-max-length / x-max-length-bytes (its unacked
messages came back as ready) drops or dead-letters from the head (:func:`enforce_limits`).

From then on the vhosts emit storage operations, and the bus submits them to a
:class:`~inbus._committer.GroupCommitter`; publisher confirms of persistent messages wait
for the commit (see ``Channel.confirm_delivery``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._committer import GroupCommitter
from ._exchanges import make_exchange
from ._queue import Queue, stored
from ._store import PutVhost, Snapshot
from ._vhost import VHost, content_from_record

if TYPE_CHECKING:
    from ._bus import Bus

__all__ = ["enforce_limits", "open_store", "rebuild"]


def open_store(bus: Bus, path: str | None, store: Any, options: dict[str, Any]) -> None:
    if store is None:
        from ._sqlite import SqliteStore
        store = SqliteStore(path, **options)  # type: ignore[arg-type]
    elif options:
        raise TypeError(f"unexpected options {sorted(options)} with an explicit store")
    bus.path = store.path
    try:
        snap = store.load()
        rebuild(bus, snap)
        bus._committer = GroupCommitter(store)
        if "/" not in snap.vhosts:
            bus._committer.submit([PutVhost("/")])
        enforce_limits(bus)
    except BaseException:
        store.close()
        raise


def rebuild(bus: Bus, snap: Snapshot) -> None:
    """Put a snapshot's entities and messages back into ``bus`` (no ops are emitted)."""
    now_mono = bus._now()
    now_wall = float(bus._clock.time())
    for name in snap.vhosts:
        if name not in bus._vhosts:
            bus._vhosts[name] = VHost(name)
    for xr in snap.exchanges:
        vh = _vhost(bus, xr.vhost)
        if xr.name not in vh.exchanges:
            vh.exchanges[xr.name] = make_exchange(xr.type, xr.name, xr.durable,
                                                  xr.auto_delete, xr.internal,
                                                  dict(xr.arguments))
    for qr in snap.queues:
        vh = _vhost(bus, qr.vhost)
        if qr.name not in vh.queues:
            q = Queue(vh.name, qr.name, qr.durable, None, qr.auto_delete,
                      dict(qr.arguments), now_mono)
            vh.queues[qr.name] = q
            vh.default.bindings[(("queue", qr.name), qr.name, None)] = {}
    for br in snap.bindings:
        vh = _vhost(bus, br.vhost)
        src = vh.exchanges.get(br.source)
        dest_ok = (br.destination in vh.queues if br.destination_kind == "queue"
                   else br.destination in vh.exchanges)
        if src is not None and dest_ok:
            src.bind((br.destination_kind, br.destination), br.routing_key,
                     dict(br.arguments))
    for mr in snap.messages:
        vh = _vhost(bus, mr.vhost)
        mq = vh.queues.get(mr.queue)
        if mq is None:
            continue
        q = mq
        exp = None
        if mr.expires_at is not None:
            exp = now_mono + (mr.expires_at - now_wall)
            q.has_ttl = True
        m = stored(mr.seq, content_from_record(mr), exp, mr.redelivered)
        if mr.returns:
            m.returns = mr.returns  # (x-delivery-limit counts on across restarts)
        q.restore(m)
    for vh in bus._vhosts.values():
        vh.ops.clear()
        vh.routes_changed()  # entities were added behind the vhost's back: no stale routes
        for q in vh.queues.values():
            if q.has_ttl or q.expires is not None:
                bus._arm_timer()
                break


def enforce_limits(bus: Bus) -> None:
    """Apply x-max-length / x-max-length-bytes to the recovered queues, as RabbitMQ does
    when a queue process starts (``init_max_length`` -> ``maybe_drop_head``): a queue
    that came back holding more than its limit (its unacked messages are ready again)
    drops from the head -- dead-letters, reason ``maxlen``, when it has a dead-letter
    exchange -- whatever its ``x-overflow`` (checked on RabbitMQ 3.10, reject-publish
    queues included). The removals are submitted to the committer like any other."""
    with bus._lock:
        for vh in bus._vhosts.values():
            for q in list(vh.queues.values()):
                bus._trim_to_limit_locked(vh, q, bus._now())
            bus._flush_ops_locked(vh)


def _vhost(bus: Bus, name: str) -> VHost:
    vh = bus._vhosts.get(name)
    if vh is None:
        vh = bus._vhosts[name] = VHost(name)
    return vh
