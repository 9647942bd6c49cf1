"""The expiry boundary on the manual clock: a message whose deadline is the clock's
instant is expired; a microsecond before, it is alive.

RabbitMQ 3.10 (``rabbit_amqqueue_process:drop_expired_msgs/2``, read in 3.10.8's
module) drops a message when ``Now >= Exp``, its deadline ``Exp`` being
publish time + the lower of ``x-message-ttl`` and ``expiration``; its TTL timer fires
no earlier than ``Exp`` (``ensure_ttl_timer``: "always fire later"), and every fetch
(``basic.get``, each delivery to a consumer) drops the expired messages it leaves at
the head, so nothing expired at the instant of an operation is fetched, delivered or
counted at the head. Only what is delivered at publish to a waiting consumer
(``attempt_delivery``, before the message is queued) escapes, TTL 0 included.
``x-expires``: the queue goes when its timer of ``x-expires`` ms fires, unused.

Each test runs at ``deadline - EPS``, ``deadline`` and ``deadline + EPS``.
"""

from __future__ import annotations

from typing import Any

import pytest

from inbus import BasicProperties, Bus
from inbus.testing import ManualClock, queue_counts

EPS = 1e-6  # RabbitMQ keeps deadlines in microseconds
OFFSETS = pytest.mark.parametrize("off", [-EPS, 0.0, EPS], ids=["before", "at", "after"])
# How the 1 s deadline is set: the queue's x-message-ttl, or the message's expiration.
KINDS = pytest.mark.parametrize("args, props", [
    ({"x-message-ttl": 1000}, None),
    ({}, BasicProperties(expiration="1000")),
], ids=["queue_ttl", "expiration"])


@pytest.fixture
def clock() -> ManualClock:
    c = ManualClock()
    c.advance(10.0)  # (not at 0.0: deadlines are 11.0)
    return c


@pytest.fixture
def bus(clock: ManualClock) -> Any:
    b = Bus(clock=clock)
    yield b
    b.close()


@pytest.fixture
def ch(bus: Bus) -> Any:
    return bus.channel()


def alive(off: float) -> bool:
    return off < 0


def publish_then_advance(ch: Any, clock: ManualClock, args: dict[str, Any],
                         props: BasicProperties | None, off: float) -> None:
    """Queue "q" with ``args`` gets one message, then the clock moves to its deadline
    (1 s) plus ``off``."""
    ch.queue_declare("q", arguments=args)
    ch.basic_publish("", "q", b"m", props)
    clock.advance(1.0 + off)


@OFFSETS
@KINDS
def test_ready_count_after_advance(bus, ch, clock, args, props, off):
    publish_then_advance(ch, clock, args, props, off)
    assert queue_counts(bus, "q") == (int(alive(off)), 0)
    bus._check()


@OFFSETS
@KINDS
def test_dead_lettered_at_the_deadline(bus, ch, clock, args, props, off):
    ch.exchange_declare("dlx", "fanout")
    ch.queue_declare("dead")
    ch.queue_bind("dead", "dlx")
    ch.queue_declare("q", arguments={**args, "x-dead-letter-exchange": "dlx"})
    ch.basic_publish("", "q", b"m", props)
    clock.advance(1.0 + off)
    assert queue_counts(bus, "dead") == (int(not alive(off)), 0)


@OFFSETS
@KINDS
def test_basic_get(bus, ch, clock, args, props, off):
    publish_then_advance(ch, clock, args, props, off)
    m = ch.basic_get("q", auto_ack=True)
    assert (m and (m.body, m.message_count)) == ((b"m", 0) if alive(off) else None)


@OFFSETS
@KINDS
def test_consumer_arriving(bus, ch, clock, args, props, off):
    publish_then_advance(ch, clock, args, props, off)
    got: list[bytes] = []
    ch.basic_consume("q", lambda m: got.append(m.body), auto_ack=True)
    bus.run_until_idle()
    assert got == ([b"m"] if alive(off) else [])


@OFFSETS
@KINDS
def test_queue_declare_passive_message_count(bus, ch, clock, args, props, off):
    publish_then_advance(ch, clock, args, props, off)
    assert ch.queue_declare("q", passive=True).message_count == int(alive(off))


@OFFSETS
@KINDS
def test_requeued_at_the_deadline(bus, ch, clock, args, props, off):
    ch.queue_declare("q", arguments=args)
    ch.basic_publish("", "q", b"m", props)
    m = ch.basic_get("q")
    clock.advance(1.0 + off)
    m.nack(requeue=True)
    assert queue_counts(bus, "q") == (int(alive(off)), 0)


# -- behind a live head: the message expires when a fetch makes it the head -------------

# The head "live" does not expire by then (no expiration, or a longer queue TTL); "short"
# behind it has a 1 s expiration. Only heads expire, so "short" waits, counted, until a
# fetch takes "live": then it is dropped at once if its deadline has come.
BEHIND = pytest.mark.parametrize("args", [{}, {"x-message-ttl": 5000}],
                                 ids=["no_queue_ttl", "longer_queue_ttl"])


def publish_live_then_short(ch: Any, args: dict[str, Any]) -> None:
    ch.queue_declare("q", arguments=args)
    ch.basic_publish("", "q", b"live")
    ch.basic_publish("", "q", b"short", BasicProperties(expiration="1000"))


@OFFSETS
@BEHIND
def test_behind_the_head_counted_until_it_is_the_head(bus, ch, clock, args, off):
    publish_live_then_short(ch, args)
    clock.advance(1.0 + off)
    assert ch.queue_declare("q", passive=True).message_count == 2
    assert queue_counts(bus, "q") == (2, 0)


@OFFSETS
@BEHIND
def test_behind_the_head_basic_get(bus, ch, clock, args, off):
    publish_live_then_short(ch, args)
    clock.advance(1.0 + off)
    m = ch.basic_get("q", auto_ack=True)
    assert (m.body, m.message_count) == (b"live", int(alive(off)))
    m = ch.basic_get("q", auto_ack=True)
    assert (m and m.body) == (b"short" if alive(off) else None)


@OFFSETS
@BEHIND
def test_behind_the_head_consumer_arriving(bus, ch, clock, args, off):
    publish_live_then_short(ch, args)
    clock.advance(1.0 + off)
    got: list[bytes] = []
    ch.basic_consume("q", lambda m: got.append(m.body), auto_ack=True)
    bus.run_until_idle()
    assert got == ([b"live", b"short"] if alive(off) else [b"live"])
    assert queue_counts(bus, "q") == (0, 0)
    bus._check()


@OFFSETS
@BEHIND
def test_behind_the_head_channel_prefetch_raised(bus, ch, clock, args, off):
    ch.basic_qos(prefetch_count=1, global_qos=True)
    got: list[Any] = []
    ch.queue_declare("q", arguments=args)
    ch.basic_consume("q", got.append)
    ch.basic_publish("", "q", b"held")  # no credit left: the next two wait
    publish_live_then_short(ch, args)
    clock.advance(1.0 + off)
    ch.basic_qos(prefetch_count=3, global_qos=True)  # two credits at once: "live", then "short" if alive
    bus.run_until_idle()
    assert [m.body for m in got] == [b"held", b"live"] + [b"short"] * alive(off)
    assert queue_counts(bus, "q") == (0, 2 + alive(off))
    bus._check()


# -- at publish: a waiting consumer takes even a TTL 0 message (attempt_delivery) ---------

@pytest.mark.parametrize("args, props", [
    ({"x-message-ttl": 0}, BasicProperties()),
    ({}, BasicProperties(expiration="0")),
    ({"x-message-ttl": 0}, BasicProperties(delivery_mode=2)),
    ({}, BasicProperties(expiration="0", delivery_mode=2)),
    ({"x-message-ttl": 0, "x-max-length": 10}, BasicProperties()),
    ({"x-max-length": 10}, BasicProperties(expiration="0")),
], ids=["queue_ttl", "expiration", "queue_ttl_persistent", "expiration_persistent",
        "queue_ttl_max_length", "expiration_max_length"])
@pytest.mark.parametrize("auto_ack", [True, False], ids=["auto_ack", "manual_ack"])
def test_ttl_zero_reaches_a_waiting_consumer(bus, ch, args, props, auto_ack):
    ch.queue_declare("q", durable=True, arguments=args)
    got: list[Any] = []
    ch.basic_consume("q", got.append, auto_ack=auto_ack)
    ch.basic_publish("", "q", b"now", props)
    bus.run_until_idle()
    assert [m.body for m in got] == [b"now"]
    bus._check()


# -- x-expires ----------------------------------------------------------------------------

@OFFSETS
def test_unused_queue_deleted_at_its_x_expires(bus, ch, clock, off):
    ch.queue_declare("q", arguments={"x-expires": 1000})
    clock.advance(1.0 + off)
    assert ("q" in bus.statistics().vhosts["/"].queues) == alive(off)
