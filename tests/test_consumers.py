"""Consumers and dispatch (issue 4): callbacks, ack/nack/reject, prefetch, fair dispatch,
requeue to the original position, cancel, auto-delete, pumping styles, re-entrancy,
callback errors and background channels."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import inbus
from inbus import (
    AccessRefused,
    BasicProperties,
    Bus,
    ChannelClosed,
    Message,
    NotAllowed,
    PreconditionFailed,
)
from tests._support import checked_bus  # noqa: F401 - the bus fixture


def publish(ch: inbus.Channel, queue: str, *bodies: str) -> None:
    for b in bodies:
        ch.basic_publish("", queue, b)


def collector() -> tuple[list[Message], Any]:
    got: list[Message] = []
    return got, got.append


def bodies(ms: list[Message]) -> list[bytes]:
    return [m.body for m in ms]


def consuming(bus: Bus, bodies: str, global_prefetch: int = 0
              ) -> tuple[inbus.Channel, list[Message]]:
    """A channel (with that channel-wide prefetch, if any) whose one manual-ack consumer
    of queue "q" got what it could of ``bodies`` (one message per character)."""
    ch = bus.channel()
    ch.queue_declare("q")
    if global_prefetch:
        ch.basic_qos(prefetch_count=global_prefetch, global_qos=True)
    got, cb = collector()
    ch.basic_consume("q", cb)
    publish(ch, "q", *bodies)
    bus.run_until_idle()
    return ch, got


def counts(bus: Bus, q: str) -> tuple[int, int]:
    s = bus.statistics().queue(q)
    return s.messages_ready, s.messages_unacknowledged


def inbus_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("inbus")]


# --- the message object ------------------------------------------------------------------


def test_callback_gets_message_with_all_attributes(bus: Bus) -> None:
    ch = bus.channel()
    ch.exchange_declare("x", "direct")
    ch.queue_declare("q")
    ch.queue_bind("q", "x", "rk")
    got, cb = collector()
    tag = ch.basic_consume("q", cb, consumer_tag="ctag")
    props = BasicProperties(correlation_id="c1", headers={"h": 1})
    ch.basic_publish("x", "rk", b"body", props)
    assert got == []  # callbacks never run inside basic_publish
    assert bus.run_until_idle() == 1
    [m] = got
    assert (m.body, m.routing_key, m.exchange, m.delivery_tag, m.redelivered,
            m.consumer_tag) == (b"body", "rk", "x", 1, False, "ctag")
    assert m.properties == props and m.channel is ch and tag == "ctag"
    m.ack()
    assert counts(bus, "q") == (0, 0)


def test_generated_consumer_tag(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    t1 = ch.basic_consume("q", lambda m: None)
    t2 = ch.basic_consume("q", lambda m: None, consumer_tag=None)
    for t in (t1, t2):
        assert t.startswith("amq.ctag-") and len(t) == len("amq.ctag-") + 22
    assert t1 != t2 and set(ch.consumer_tags) == {t1, t2}


def test_ack_nack_reject_via_message_and_channel(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    got, cb = collector()
    ch.basic_consume("q", cb)
    publish(ch, "q", "a", "b", "c", "d", "e", "f")
    bus.run_until_idle()
    a, b, c, d, e, f = got
    a.ack()
    ch.basic_ack(b.delivery_tag)
    c.reject(requeue=False)
    ch.basic_reject(d.delivery_tag, requeue=False)
    e.nack(requeue=False)
    ch.basic_nack(f.delivery_tag, requeue=False)
    assert counts(bus, "q") == (0, 0)
    s = bus.statistics().queue("q")
    assert (s.acked, s.dropped) == (2, 4)


def test_ack_multiple_and_tag_zero(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    got, cb = collector()
    ch.basic_consume("q", cb)
    publish(ch, "q", *"abcdef")
    bus.run_until_idle()
    ch.basic_ack(got[2].delivery_tag, multiple=True)  # a, b, c
    assert counts(bus, "q") == (0, 3)
    got[4].nack(multiple=True, requeue=True)  # d, e back; they are redelivered at once
    bus.run_until_idle()
    assert bodies(got[6:]) == [b"d", b"e"] and all(m.redelivered for m in got[6:])
    ch.basic_ack(0, multiple=True)  # everything outstanding
    assert counts(bus, "q") == (0, 0)


@pytest.mark.parametrize("settle", [
    lambda ch, t: ch.basic_ack(t), lambda ch, t: ch.basic_nack(t),
    lambda ch, t: ch.basic_reject(t), lambda ch, t: ch.basic_ack(t, multiple=True),
])
def test_double_or_unknown_ack_is_406_and_closes_channel(bus: Bus, settle: Any) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    got, cb = collector()
    ch.basic_consume("q", cb)
    publish(ch, "q", "a", "b")
    bus.run_until_idle()
    got[0].ack()
    with pytest.raises(PreconditionFailed) as ei:
        settle(ch, got[0].delivery_tag)
    assert ei.value.reply_code == 406 and ei.value.scope == "channel"
    assert ei.value.reply_text == f"PRECONDITION_FAILED - unknown delivery tag {got[0].delivery_tag}"
    assert ch.is_closed
    with pytest.raises(ChannelClosed) as ci:
        got[1].ack()
    assert ci.value.reply_code == 406
    assert counts(bus, "q") == (1, 0)  # "b" came back when the channel closed


def test_closed_channel_and_connection_errors_say_what_to_do(bus: Bus) -> None:
    """Using a channel (or connection) that is closed says why and what to do next."""
    conn = bus.connection()
    ch = conn.channel()
    with pytest.raises(PreconditionFailed):
        ch.basic_ack(5)
    with pytest.raises(ChannelClosed) as ei:
        ch.basic_ack(1)
    assert str(ei.value) == ("channel is closed by the bus: 406 PRECONDITION_FAILED - "
                             "unknown delivery tag 5; open a new one with "
                             "connection.channel()")
    ch2 = conn.channel()
    ch2.close()
    with pytest.raises(ChannelClosed, match=r"^channel is closed; open a new one with connection"):
        ch2.basic_get("q")
    conn.close()
    with pytest.raises(inbus.ConnectionClosed,
                       match=r"^connection is closed; open a new one with bus.connection"):
        conn.channel()
    closed = Bus()
    closed.close()
    with pytest.raises(inbus.ConnectionClosed, match=r"^the bus is closed; create a new"):
        closed.channel()


def test_auto_ack(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    got, cb = collector()
    ch.basic_consume("q", cb, auto_ack=True)
    publish(ch, "q", *"abc")
    assert bus.run_until_idle() == 3
    assert counts(bus, "q") == (0, 0) and bodies(got) == [b"a", b"b", b"c"]
    with pytest.raises(PreconditionFailed):
        got[0].ack()


# --- prefetch and fair dispatch ----------------------------------------------------------


def test_prefetch_per_consumer(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    ch.basic_qos(prefetch_count=2)
    a, cba = collector()
    ch.basic_consume("q", cba)
    ch.basic_qos(prefetch_count=3)  # only for consumers started later
    b, cbb = collector()
    ch.basic_consume("q", cbb)
    publish(ch, "q", *"0123456789")
    bus.run_until_idle()
    assert (len(a), len(b)) == (2, 3)
    assert counts(bus, "q") == (5, 5)
    a[0].ack()
    bus.run_until_idle()
    assert (len(a), len(b)) == (3, 3)


def test_prefetch_global_and_per_consumer_together(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    ch.basic_qos(prefetch_count=2)
    ch.basic_qos(prefetch_count=3, global_qos=True)
    a, cba = collector()
    b, cbb = collector()
    ch.basic_consume("q", cba)
    ch.basic_consume("q", cbb)
    publish(ch, "q", *"0123456789")
    bus.run_until_idle()
    assert len(a) + len(b) == 3 and len(a) <= 2 and len(b) <= 2
    for m in a + b:
        m.ack()
    bus.run_until_idle()
    assert len(a) + len(b) == 6
    # a second channel is not limited by the first one's global prefetch
    ch2 = bus.channel()
    c, cbc = collector()
    ch2.basic_consume("q", cbc)
    bus.run_until_idle()
    assert len(c) == 4 and counts(bus, "q") == (0, 7)


def test_global_prefetch_raised_later_dispatches(bus: Bus) -> None:
    ch, got = consuming(bus, "abc", global_prefetch=1)
    assert len(got) == 1
    ch.basic_qos(prefetch_count=0, global_qos=True)
    bus.run_until_idle()
    assert len(got) == 3


def test_global_prefetch_set_later_counts_what_the_channel_holds(bus: Bus) -> None:
    # Deliveries made with no global limit count against one set later, also after the
    # limit was lifted and set again, and acks on the fast path in between must not leave
    # the count behind (the same steps on RabbitMQ 3.10 with pika gave the same counts).
    ch, got = consuming(bus, "abc")
    assert len(got) == 3
    ch.basic_qos(prefetch_count=4, global_qos=True)
    publish(ch, "q", *"def")
    bus.run_until_idle()
    assert len(got) == 4 and counts(bus, "q") == (2, 4)
    ch.basic_qos(prefetch_count=0, global_qos=True)
    bus.run_until_idle()
    assert len(got) == 6
    for m in got[:5]:
        m.ack()
    publish(ch, "q", *"gh")
    bus.run_until_idle()
    ch.basic_qos(prefetch_count=2, global_qos=True)  # holds f, g, h: nothing more
    publish(ch, "q", "i")
    bus.run_until_idle()
    assert [m.body for m in got[5:]] == [b"f", b"g", b"h"] and counts(bus, "q") == (1, 3)
    got[5].ack()
    got[6].ack()
    bus.run_until_idle()
    assert [m.body for m in got[8:]] == [b"i"]


def test_per_consumer_qos_after_global_drops_the_global_limit(bus: Bus) -> None:
    """RabbitMQ 3.10: basic.qos(global=false) also removes the channel's global limit (its
    unlimit_prefetch), and the consumers held back by it get messages at once; per
    consumer and global prefetch apply together only when the global one comes last."""
    ch, got = consuming(bus, "abc", global_prefetch=1)
    assert len(got) == 1
    ch.basic_qos(prefetch_count=2)
    bus.run_until_idle()
    assert len(got) == 3 and counts(bus, "q") == (0, 3)


def test_round_robin_without_prefetch(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    a, cba = collector()
    b, cbb = collector()
    ch.basic_consume("q", cba, auto_ack=True)
    ch.basic_consume("q", cbb, auto_ack=True)
    publish(ch, "q", *"012345")
    bus.run_until_idle()
    assert bodies(a) == [b"0", b"2", b"4"] and bodies(b) == [b"1", b"3", b"5"]


def test_prefetch_one_whoever_is_free(bus: Bus) -> None:
    ch = bus.channel()
    ch.basic_qos(prefetch_count=1)
    ch.queue_declare("q")
    slow: list[Message] = []
    fast: list[Message] = []
    ch.basic_consume("q", slow.append)  # never acks
    ch.basic_consume("q", lambda m: (fast.append(m), m.ack()))
    publish(ch, "q", *"012345")
    bus.run_until_idle()
    assert bodies(slow) == [b"0"]
    assert bodies(fast) == [b"1", b"2", b"3", b"4", b"5"]
    slow[0].ack()
    publish(ch, "q", "6", "7")
    bus.run_until_idle()
    assert len(slow) + len(fast) == 8


# --- requeue: original position, redelivered, new tags ----------------------------------------


def test_nack_requeues_to_original_position(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    publish(ch, "q", *"12345")
    ms = [ch.basic_get("q") for _ in range(4)]
    ch.basic_nack(ms[3].delivery_tag, requeue=True)
    ms[1].reject(requeue=True)
    publish(ch, "q", "6")
    got = []
    while (m := ch.basic_get("q", auto_ack=True)) is not None:
        got.append((m.body, m.redelivered, m.delivery_tag))
    assert got == [(b"2", True, 5), (b"4", True, 6), (b"5", False, 7), (b"6", False, 8)]


@pytest.mark.parametrize("how", ["nack", "reject", "recover", "channel", "connection",
                                 "cancel+close"])
def test_requeue_paths_restore_order(bus: Bus, how: str) -> None:
    pub = bus.channel()
    pub.queue_declare("q")
    publish(pub, "q", *"abcde")
    conn = bus.connection()
    ch = conn.channel()
    got, cb = collector()
    tag = ch.basic_consume("q", cb)
    bus.run_until_idle()
    assert bodies(got) == [b"a", b"b", b"c", b"d", b"e"]
    got[0].ack()
    got[2].ack()
    # b and d and e are unacked; put them back
    if how == "nack":
        for m in (got[4], got[1], got[3]):  # out of order on purpose
            m.nack(requeue=True)
    elif how == "reject":
        for m in (got[3], got[4], got[1]):
            m.reject(requeue=True)
    elif how == "recover":
        ch.basic_recover(requeue=True)
    elif how == "cancel+close":
        ch.basic_cancel(tag)
        ch.close()
    elif how == "channel":
        ch.close()
    else:
        conn.close()
    if how in ("nack", "reject", "recover"):
        ch.basic_cancel(tag)
        bus.run_until_idle()
        old_tags = {m.delivery_tag for m in got}
        got2 = [ch.basic_get("q") for _ in range(3)]
        assert [m.delivery_tag for m in got2 if m] == [6 + i for i in range(3)] \
            or all(m and m.delivery_tag not in old_tags for m in got2)
    else:
        check = bus.channel()
        got2 = [check.basic_get("q") for _ in range(3)]
    assert [(m.body, m.redelivered) for m in got2 if m] == [
        (b"b", True), (b"d", True), (b"e", True)]
    for m in got2:
        assert m is not None
        m.ack()
    assert counts(bus, "q") == (0, 0)


def test_requeued_message_goes_before_newer_ones_to_consumer(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    ch.basic_qos(prefetch_count=1)
    seen: list[tuple[bytes, bool, int]] = []
    first = [True]

    def cb(m: Message) -> None:
        seen.append((m.body, m.redelivered, m.delivery_tag))
        if first[0]:
            first[0] = False
            m.nack(requeue=True)
        else:
            m.ack()

    ch.basic_consume("q", cb)
    publish(ch, "q", "1", "2", "3")
    bus.run_until_idle()
    assert seen == [(b"1", False, 1), (b"1", True, 2), (b"2", False, 3), (b"3", False, 4)]


def test_delivery_tags_increase_per_channel(bus: Bus) -> None:
    c1, c2 = bus.channel(), bus.channel()
    c1.queue_declare("q1")
    c1.queue_declare("q2")
    g1, cb1 = collector()
    g2, cb2 = collector()
    c1.basic_consume("q1", cb1, auto_ack=True)
    c2.basic_consume("q2", cb2, auto_ack=True)
    publish(c1, "q1", "a", "b")
    publish(c1, "q2", "c")
    assert c1.basic_get("q1") is None
    bus.run_until_idle()
    assert [m.delivery_tag for m in g1] == [1, 2] and [m.delivery_tag for m in g2] == [1]


# --- cancel ------------------------------------------------------------------------------


def test_cancel_with_unacked_stays_ackable_until_close(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    got, cb = collector()
    tag = ch.basic_consume("q", cb)
    publish(ch, "q", *"abc")
    bus.run_until_idle()
    ch.basic_cancel(tag)
    assert ch.consumer_tags == [] and counts(bus, "q") == (0, 3)
    got[0].ack()
    got[1].nack(requeue=True)
    assert counts(bus, "q") == (1, 1)
    publish(ch, "q", "d")
    bus.run_until_idle()
    assert len(got) == 3  # no more deliveries to the cancelled consumer
    ch.close()
    assert counts(bus, "q") == (3, 0)
    check = bus.channel()
    assert [(m.body, m.redelivered) for m in
            (check.basic_get("q", auto_ack=True) for _ in range(3)) if m] == [
        (b"b", True), (b"c", True), (b"d", False)]


def test_cancel_before_callbacks_ran_puts_pending_back(bus: Bus) -> None:
    """Deliveries whose callback has not run yet when the consumer is cancelled go back to
    their position, flagged redelivered (as RabbitMQ + a client rejecting what it had not
    dispatched, DESIGN §1)."""
    ch = bus.channel()
    ch.queue_declare("q")
    got, cb = collector()
    tag = ch.basic_consume("q", cb)
    publish(ch, "q", "a", "b")
    ch.basic_cancel(tag)
    assert bus.run_until_idle() == 0 and got == []
    assert counts(bus, "q") == (2, 0)
    m = ch.basic_get("q")
    assert m is not None and (m.body, m.redelivered) == (b"a", True)


def test_cancel_unknown_tag_is_fine(bus: Bus) -> None:
    ch = bus.channel()
    ch.basic_cancel("nope")
    assert ch.is_open


def test_cancel_callback_when_queue_deleted(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    cancelled: list[str] = []
    ch.add_on_cancel_callback(cancelled.append)
    tag = ch.basic_consume("q", lambda m: None)
    bus.channel().queue_delete("q")
    bus.run_until_idle()
    assert cancelled == [tag] and ch.consumer_tags == []


def test_auto_delete_queue_on_last_cancel_or_channel_close(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("ad", auto_delete=True)
    publish(ch, "ad", "x")
    assert "ad" in bus.statistics().vhosts["/"].queues  # no consumer yet: stays
    t1 = ch.basic_consume("ad", lambda m: None)
    t2 = bus.channel().basic_consume("ad", lambda m: None)
    ch.basic_cancel(t1)
    assert "ad" in bus.statistics().vhosts["/"].queues
    assert isinstance(t2, str)
    ch.queue_declare("ad2", auto_delete=True)
    ch2 = bus.channel()
    ch2.basic_consume("ad2", lambda m: None)
    ch2.close()
    assert "ad2" not in bus.statistics().vhosts["/"].queues
    for c in list(bus._connections):
        c.close()
    assert "ad" not in bus.statistics().vhosts["/"].queues


def test_exclusive_consumer_403(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    ch.basic_consume("q", lambda m: None, exclusive=True)
    other = bus.channel()
    with pytest.raises(AccessRefused) as ei:
        other.basic_consume("q", lambda m: None)
    assert ei.value.reply_code == 403 and ei.value.scope == "channel"
    assert ei.value.reply_text == "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use"
    assert other.is_closed
    ch.queue_declare("q2")
    ch.basic_consume("q2", lambda m: None)
    other = bus.channel()
    with pytest.raises(AccessRefused):
        other.basic_consume("q2", lambda m: None, exclusive=True)


def test_duplicate_consumer_tag_is_530_connection_error(bus: Bus) -> None:
    conn = bus.connection()
    ch = conn.channel()
    ch.queue_declare("q")
    ch.basic_consume("q", lambda m: None, consumer_tag="t")
    conn.channel().basic_consume("q", lambda m: None, consumer_tag="t")  # other channel: ok
    with pytest.raises(NotAllowed) as ei:
        ch.basic_consume("q", lambda m: None, consumer_tag="t")
    e = ei.value
    assert (e.reply_code, e.scope, e.reply_text) == (
        530, "connection", "NOT_ALLOWED - attempt to reuse consumer tag 't'")
    assert conn.is_closed


def test_consume_callback_must_be_callable(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    with pytest.raises(TypeError, match="on_message_callback"):
        ch.basic_consume("q", None)  # type: ignore[arg-type]


# --- pumping -------------------------------------------------------------------------------


def test_run_until_idle_is_deterministic_and_counts(bus: Bus) -> None:
    order: list[str] = []
    c1, c2 = bus.channel(), bus.channel()
    c1.queue_declare("q1")
    c1.queue_declare("q2")
    c2.basic_consume("q2", lambda m: order.append("q2:" + m.body.decode()), auto_ack=True)
    c1.basic_consume("q1", lambda m: order.append("q1:" + m.body.decode()), auto_ack=True)
    for i in range(3):
        c1.basic_publish("", "q2", str(i))
        c1.basic_publish("", "q1", str(i))
    assert bus.run_until_idle() == 6
    # connections in creation order, each FIFO
    assert order == ["q1:0", "q1:1", "q1:2", "q2:0", "q2:1", "q2:2"]
    assert bus.run_until_idle() == 0


def test_run_until_idle_max_deliveries(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    got, cb = collector()
    ch.basic_consume("q", cb, auto_ack=True)
    publish(ch, "q", *"abcde")
    assert bus.run_until_idle(max_deliveries=2) == 2
    assert bodies(got) == [b"a", b"b"]
    assert bus.run_until_idle() == 3 and bodies(got)[2:] == [b"c", b"d", b"e"]


def test_reentrant_callbacks(bus: Bus) -> None:
    """A callback may publish, ack, declare and consume; run_until_idle delivers what
    callbacks publish, in the same call."""
    ch = bus.channel()
    ch.queue_declare("in")
    out: list[bytes] = []
    tags: list[str] = []

    def on_in(m: Message) -> None:
        n = int(m.body)
        ch.queue_declare(f"out{n}")
        if not tags:
            tags.append(ch.basic_consume("out", lambda o: (out.append(o.body), o.ack())))
        ch.basic_publish("", "out", m.body + b"!")
        if n < 3:
            ch.basic_publish("", "in", str(n + 1))
        m.ack()

    ch.queue_declare("out")
    ch.basic_consume("in", on_in)
    ch.basic_publish("", "in", "0")
    assert bus.run_until_idle() == 8
    assert out == [b"0!", b"1!", b"2!", b"3!"]
    assert counts(bus, "in") == (0, 0) and counts(bus, "out") == (0, 0)
    assert {"out0", "out3"} <= set(bus.statistics().vhosts["/"].queues)


def test_callback_exception_propagates_and_message_stays_unacked(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    seen: list[Message] = []

    def cb(m: Message) -> None:
        seen.append(m)
        if m.body == b"bad":
            raise RuntimeError("boom")
        m.ack()

    ch.basic_consume("q", cb)
    publish(ch, "q", "ok", "bad", "after")
    with pytest.raises(RuntimeError, match="boom"):
        bus.run_until_idle()
    assert counts(bus, "q") == (0, 2)  # "bad" unacked, "after" delivered, not yet run
    assert bus.run_until_idle() == 1  # the rest is not lost
    assert bodies(seen) == [b"ok", b"bad", b"after"]
    assert counts(bus, "q") == (0, 1)
    # no hot redelivery loop: it stays unacked until the channel closes
    assert bus.run_until_idle() == 0
    ch.close()
    check = bus.channel()
    m = check.basic_get("q")
    assert m is not None and (m.body, m.redelivered) == (b"bad", True)


def test_callback_exception_keeps_other_connections_deliveries(bus: Bus) -> None:
    """run_until_idle takes every connection's pending deliveries in one round: when a
    callback of the first connection raises, the later connections' deliveries of that
    round must not be dropped (they were unacked, and their callbacks never ran)."""
    c1, c2 = bus.channel(), bus.channel()
    c1.queue_declare("a")
    c1.queue_declare("b")

    def bad(m: Message) -> None:
        raise RuntimeError("boom")

    got, cb = collector()
    c1.basic_consume("a", bad)
    c2.basic_consume("b", cb)
    publish(c1, "a", "1")
    publish(c1, "b", "2")
    with pytest.raises(RuntimeError, match="boom"):
        bus.run_until_idle()
    assert bus.run_until_idle() == 1
    assert bodies(got) == [b"2"]


def test_stop_consuming_from_another_thread_ends_start_consuming_at_once(
        bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import inbus._pumping
    monkeypatch.setattr(inbus._pumping, "_POLL", 60.0)  # only a wake can end it in time
    ch = bus.channel()
    ch.queue_declare("q")
    ch.basic_consume("q", lambda m: m.ack())
    started = threading.Event()
    ch._conn.add_callback_threadsafe(started.set)
    t = threading.Thread(target=ch.start_consuming)
    t.start()
    assert started.wait(5)  # start_consuming is pumping
    ch.stop_consuming()  # from this (another) thread
    t.join(10)
    assert not t.is_alive(), "start_consuming only noticed the stop at its next poll"
    assert ch.consumer_tags == []


def test_start_and_stop_consuming_from_callback(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    got: list[bytes] = []

    def cb(m: Message) -> None:
        got.append(m.body)
        m.ack()
        if len(got) == 3:
            ch.stop_consuming()

    ch.basic_consume("q", cb)
    publish(ch, "q", *"abcde")
    t0 = time.monotonic()
    ch.start_consuming()
    assert time.monotonic() - t0 < 2
    assert got == [b"a", b"b", b"c"]
    assert ch.consumer_tags == []  # stop_consuming cancels
    assert counts(bus, "q") == (2, 0)  # d and e, taken but not run, went back
    m = ch.basic_get("q")
    assert m is not None and m.body == b"d"


def test_stop_consuming_one_tag_keeps_start_consuming_for_the_others(bus: Bus) -> None:
    """pika: stop_consuming(tag) cancels that consumer; start_consuming goes on while the
    channel has consumers, and returns once the last one is cancelled."""
    ch = bus.channel()
    ch.queue_declare("a")
    ch.queue_declare("b")
    got: list[bytes] = []

    def on_a(m: Message) -> None:
        got.append(m.body)
        m.ack()
        ch.stop_consuming(m.consumer_tag)
        ch.basic_publish("", "b", b"b1")

    def on_b(m: Message) -> None:
        got.append(m.body)
        m.ack()
        if m.body == b"b1":
            ch.basic_publish("", "b", b"b2")
        else:
            ch.stop_consuming(m.consumer_tag)  # the last one: start_consuming returns

    ch.basic_consume("a", on_a)
    ch.basic_consume("b", on_b)
    publish(ch, "a", "a1")
    t0 = time.monotonic()
    ch.start_consuming()
    assert time.monotonic() - t0 < 2
    assert got == [b"a1", b"b1", b"b2"] and ch.consumer_tags == []


@pytest.mark.timeout(30)
def test_start_consuming_raises_when_the_bus_closes_the_channel(bus: Bus) -> None:
    """As pika's start_consuming raises ChannelClosedByBroker: the loop does not just
    return when an error (here a 406 made from another thread) closed the channel."""
    ch = bus.channel()
    ch.queue_declare("q")
    ch.basic_consume("q", lambda m: None)
    ch._conn.add_callback_threadsafe(lambda: threading.Thread(
        target=lambda: pytest.raises(PreconditionFailed, ch.basic_ack, 77)).start())
    with pytest.raises(ChannelClosed) as ei:
        ch.start_consuming()
    assert ei.value.reply_code == 406


def test_start_consuming_with_messages_from_another_thread(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    got: list[bytes] = []

    def cb(m: Message) -> None:
        got.append(m.body)
        m.ack()
        if m.body == b"stop":
            ch.stop_consuming()

    ch.basic_consume("q", cb)

    def producer() -> None:
        p = bus.channel()
        for b in ("1", "2", "stop"):
            time.sleep(0.02)
            p.basic_publish("", "q", b)

    t = threading.Thread(target=producer)
    t.start()
    ch.start_consuming()
    t.join()
    assert got == [b"1", b"2", b"stop"]


def test_process_data_events_time_limit(bus: Bus) -> None:
    conn = bus.connection()
    ch = conn.channel()
    ch.queue_declare("q")
    got, cb = collector()
    ch.basic_consume("q", cb, auto_ack=True)
    t0 = time.monotonic()
    assert conn.process_data_events(time_limit=0) == 0
    assert conn.process_data_events(time_limit=0.1) == 0
    assert 0.09 <= time.monotonic() - t0 < 1
    publish(ch, "q", "a", "b")
    assert conn.process_data_events(time_limit=0) == 2
    # work arriving from another thread ends the wait early (as in pika)
    timer = threading.Timer(0.05, lambda: bus.channel().basic_publish("", "q", b"late"))
    timer.start()
    t0 = time.monotonic()
    n = conn.process_data_events(time_limit=5)
    timer.join()
    assert n == 1 and time.monotonic() - t0 < 2
    assert bodies(got) == [b"a", b"b", b"late"]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("limit", [0, 0.2])
def test_process_data_events_returns_by_its_time_limit_under_a_requeue_loop(
        bus: Bus, limit: float) -> None:
    """A callback that nacks with requeue gets the message again at once: with a time
    limit, process_data_events still returns by then (it looped for ever; pika returns
    after one round of dispatching)."""
    conn = bus.connection()
    ch = conn.channel()
    ch.queue_declare("q")
    ch.basic_publish("", "q", b"poison")
    ch.basic_consume("q", lambda m: m.nack(requeue=True))
    t0 = time.monotonic()
    assert conn.process_data_events(time_limit=limit) >= 1
    assert time.monotonic() - t0 < limit + 2


def test_process_data_events_on_a_closed_connection_raises(bus: Bus) -> None:
    """pika raises ConnectionWrongStateError there; returning 0 at once made the usual
    `while True: conn.process_data_events(1)` loop spin at full speed once the bus (or
    another thread) had closed the connection."""
    conn = bus.connection()
    ch = conn.channel()
    ch.queue_declare("q")
    ch.basic_consume("q", lambda m: None, consumer_tag="t")
    with pytest.raises(NotAllowed):
        ch.basic_consume("q", lambda m: None, consumer_tag="t")  # 530 closes conn
    with pytest.raises(inbus.ConnectionClosed) as ei:
        conn.process_data_events(time_limit=1)
    assert ei.value.reply_code == 530
    other = bus.connection()
    other.close()
    with pytest.raises(inbus.ConnectionClosed):
        other.process_data_events(time_limit=None)


def test_consume_generator(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    publish(ch, "q", "a", "b")
    out: list[Any] = []
    t0 = time.monotonic()
    for m in ch.consume("q", inactivity_timeout=0.2):
        if m is None:
            break
        out.append((m.body, m.consumer_tag is not None))
        m.ack()
    elapsed = time.monotonic() - t0
    assert out == [(b"a", True), (b"b", True)]
    assert 0.15 <= elapsed < 1.5  # messages are yielded at once, then one timeout
    assert ch.consumer_tags == []  # leaving the generator cancelled the consumer
    assert counts(bus, "q") == (0, 0)


def test_consume_generator_gets_messages_from_other_threads(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    threading.Timer(0.05, lambda: bus.channel().basic_publish("", "q", b"x")).start()
    t0 = time.monotonic()
    gen = ch.consume("q", auto_ack=True, inactivity_timeout=5)
    m = next(gen)
    assert m is not None and m.body == b"x" and time.monotonic() - t0 < 2
    gen.close()
    assert ch.consumer_tags == []


def test_consume_inactivity_timeout_counts_only_its_own_messages(bus: Bus) -> None:
    """Another consumer of the connection getting messages (its callbacks run in the
    generator's thread, as in pika) is no activity of the generator's queue: None comes
    after inactivity_timeout seconds without a message *from its queue*."""
    conn = bus.connection()
    ch = conn.channel()
    ch.queue_declare("q")
    ch.queue_declare("other")
    other, cb = collector()
    ch.basic_consume("other", cb, auto_ack=True)
    stop = threading.Event()

    def producer() -> None:
        p = bus.channel()
        while not stop.wait(0.03):
            p.basic_publish("", "other", b"x")

    t = threading.Thread(target=producer)
    t.start()
    try:
        t0 = time.monotonic()
        gen = ch.consume("q", inactivity_timeout=0.5)
        assert next(gen) is None
        assert time.monotonic() - t0 >= 0.45, "None came before inactivity_timeout"
        assert len(other) >= 2  # the other consumer's callbacks ran meanwhile
        gen.close()
    finally:
        stop.set()
        t.join()


def test_consume_inactivity_timeout_zero_still_pumps(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    publish(ch, "q", "a", "b")
    out = []
    for m in ch.consume("q", inactivity_timeout=0):
        if m is None:
            break
        out.append(m.body)
        m.ack()
    assert out == [b"a", b"b"] and ch.consumer_tags == []


def test_consume_generator_close_puts_back_what_it_did_not_yield(bus: Bus) -> None:
    """Deliveries the generator received but never yielded go back to their positions,
    flagged redelivered (pika's cancel() rejects them with requeue), when the generator
    is closed; the one it yielded stays unacked (and ackable) for the caller."""
    ch = bus.channel()
    ch.queue_declare("q")
    ch.basic_qos(prefetch_count=10)
    publish(ch, "q", *"abcde")
    gen = ch.consume("q")
    m = next(gen)
    assert m is not None and m.body == b"a"
    gen.close()
    assert ch.consumer_tags == []
    assert counts(bus, "q") == (4, 1)
    m.ack()
    got = [ch.basic_get("q", auto_ack=True) for _ in range(4)]
    assert [(g.body, g.redelivered) for g in got if g] == [
        (b"b", True), (b"c", True), (b"d", True), (b"e", True)]


def test_channel_cancel_ends_consume_generators_only(bus: Bus) -> None:
    """Channel.cancel() (pika) cancels the consume() generator's consumer, putting back
    what it had not yielded; consumers made with basic_consume are not its business."""
    ch = bus.channel()
    ch.queue_declare("q")
    ch.queue_declare("other")
    tag = ch.basic_consume("other", lambda m: m.ack())
    publish(ch, "q", "a", "b")
    gen = ch.consume("q")
    m = next(gen)
    assert m is not None and m.body == b"a"
    assert ch.cancel() == 0
    assert ch.consumer_tags == [tag]
    assert counts(bus, "q") == (1, 1)
    assert list(gen) == []  # the generator ends
    m.ack()


@pytest.mark.timeout(30)
def test_consume_generator_on_a_background_channel() -> None:
    """On a background channel the worker runs the generator's consumer callback; the
    generator waits for what it hands over (it used to wait on the connection, forever)."""
    with Bus() as bus:
        ch = bus.channel(background=True)
        ch.queue_declare("q")
        publish(ch, "q", "a", "b")
        got = []
        for m in ch.consume("q", inactivity_timeout=5):
            assert m is not None
            got.append(m.body)
            m.ack()
            if len(got) == 2:
                break
        assert got == [b"a", b"b"] and ch.consumer_tags == []
        gen = ch.consume("q")
        threading.Timer(0.05, lambda: bus.channel().basic_publish("", "q", b"c")).start()
        m = next(gen)
        assert m is not None and m.body == b"c"
        gen.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("call", ["consume", "start_consuming"])
def test_blocking_consume_inside_its_own_background_callback_raises(call: str) -> None:
    """consume() / start_consuming() on a background channel from that channel's own
    callback would wait for its own worker (consume() yielded None, or hung without an
    inactivity_timeout): it raises ReentrancyError, and the worker goes on. From another
    channel's worker, or any other thread, both work."""
    errors: list[BaseException] = []
    with Bus(on_error=lambda e, arg: errors.append(e)) as bus:
        ch = bus.channel(background=True)
        other = bus.channel(background=True)
        for q in ("q", "r", "s"):
            ch.queue_declare(q)
        publish(ch, "r", "y")
        got: list[Any] = []
        done = threading.Event()

        def on_q(m: inbus.Message) -> None:
            m.ack()
            try:
                if call == "consume":
                    got.extend(ch.consume("r", inactivity_timeout=0.2))
                else:
                    ch.start_consuming()
            except inbus.ReentrancyError as e:
                got.append(e)
            done.set()

        def on_s(m: inbus.Message) -> None:  # another channel's worker: works
            m.ack()
            for r in ch.consume("r", inactivity_timeout=5):
                got.append(r.body if r is not None else None)
                assert r is not None
                r.ack()
                break
            done.set()

        ch.basic_consume("q", on_q)
        publish(ch, "q", "x")
        assert done.wait(10)
        assert len(got) == 1 and isinstance(got[0], inbus.ReentrancyError), got
        assert "background channel" in str(got[0]) and "basic_get" in str(got[0])
        done.clear()
        got.clear()
        other.basic_consume("s", on_s)
        publish(ch, "s", "z")
        assert done.wait(10)
        assert got == [b"y"] and errors == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", ["basic_cancel", "channel.cancel", "channel.close",
                                 "queue_delete"])
def test_consume_generator_ends_when_cancelled_from_another_thread(bus: Bus,
                                                                   how: str) -> None:
    """Without an inactivity_timeout the generator waits for messages; a cancel or a
    close from another thread (or the queue's deletion) ends it."""
    ch = bus.channel()
    ch.queue_declare("q")
    gen = ch.consume("q")
    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(list(gen)))
    t.start()
    deadline = time.monotonic() + 5
    while not ch.consumer_tags:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.05)  # the generator is waiting
    if how == "basic_cancel":
        ch.basic_cancel(ch.consumer_tags[0])
    elif how == "channel.cancel":
        ch.cancel()
    elif how == "channel.close":
        ch.close()
    else:
        bus.channel().queue_delete("q")
    t.join(5)
    assert not t.is_alive(), "the generator still waits"
    assert result == [[]]


def test_consume_generator_raises_when_the_bus_closes_its_channel(bus: Bus) -> None:
    """As pika's consume() raises ChannelClosedByBroker: a generator whose channel the bus
    closed (here, a 406 from an ack on another thread's behalf) raises ChannelClosed."""
    ch = bus.channel()
    ch.queue_declare("q")
    gen = ch.consume("q", inactivity_timeout=0.05)
    assert next(gen) is None
    with pytest.raises(PreconditionFailed):
        ch.basic_ack(42)
    with pytest.raises(ChannelClosed) as ei:
        next(gen)
    assert ei.value.reply_code == 406


# --- background delivery ---------------------------------------------------------------------


def wait_for(cond: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("per", ["bus", "channel"])
def test_background_callbacks_run_on_worker_in_order(per: str) -> None:
    bus = Bus(background=(per == "bus"))
    ch = bus.channel() if per == "bus" else bus.channel(background=True)
    ch.queue_declare("q")
    seen: list[tuple[bytes, str]] = []
    ch.basic_consume("q", lambda m: (seen.append((m.body, threading.current_thread().name)),
                                     m.ack()))
    publish(ch, "q", *[str(i) for i in range(200)])
    wait_for(lambda: len(seen) == 200)
    assert [b for b, _ in seen] == [str(i).encode() for i in range(200)]
    names = {n for _, n in seen}
    assert len(names) == 1 and threading.current_thread().name not in names
    assert bus.run_until_idle() == 0  # nothing for the caller's thread
    wait_for(lambda: counts(bus, "q") == (0, 0))
    assert inbus_threads()
    bus._check()
    bus.close()
    assert inbus_threads() == []


@pytest.mark.timeout(30)
def test_background_errors_go_to_on_error_and_bus_errors() -> None:
    hooked: list[tuple[BaseException, Any]] = []
    bus = Bus(background=True, on_error=lambda e, arg: hooked.append((e, arg)))
    ch = bus.channel()
    ch.queue_declare("q")

    def cb(m: Message) -> None:
        if m.body == b"bad":
            raise ValueError("bad message")
        m.ack()

    ch.basic_consume("q", cb)
    publish(ch, "q", "ok", "bad", "ok2")
    wait_for(lambda: counts(bus, "q") == (0, 1))
    wait_for(lambda: len(hooked) == 1)
    [err] = bus.errors
    assert isinstance(err, ValueError) and hooked[0][0] is err
    assert isinstance(hooked[0][1], Message) and hooked[0][1].body == b"bad"
    assert bus.statistics().callback_errors == 1
    ch.close()  # the unacked poison message comes back, once
    assert counts(bus, "q") == (1, 0)
    bus.close()
    assert inbus_threads() == []


@pytest.mark.timeout(30)
def test_background_channel_reentrancy_and_close_from_callback() -> None:
    bus = Bus()
    ch = bus.channel(background=True)
    ch.queue_declare("q")
    ch.queue_declare("out")
    done = threading.Event()

    def cb(m: Message) -> None:
        ch.queue_declare("made-in-callback")
        ch.basic_publish("", "out", m.body)
        m.ack()
        if m.body == b"last":
            ch.close()  # closing from its own worker thread must not deadlock
            done.set()

    ch.basic_consume("q", cb)
    publish(bus.channel(), "q", "a", "last")
    assert done.wait(5)
    assert counts(bus, "out") == (2, 0)
    bus.close()
    assert inbus_threads() == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", ["close", "406"])
def test_bus_close_joins_the_worker_of_a_channel_closed_from_its_callback(how: str) -> None:
    """A background channel closed by its own callback (or by an error it made) cannot
    join its worker then; bus.close() must still wait for that thread to finish."""
    bus = Bus(background=True, on_error=lambda e, arg: None)
    ch = bus.channel()
    ch.queue_declare("q")
    closed, finished = threading.Event(), threading.Event()

    def cb(m: Message) -> None:
        if how == "close":
            ch.close()
        else:
            with pytest.raises(PreconditionFailed):
                ch.basic_ack(999)
        closed.set()
        time.sleep(0.3)  # the callback goes on after its channel closed
        finished.set()

    ch.basic_consume("q", cb)
    publish(ch, "q", "x")
    assert closed.wait(5)
    bus.close()
    assert finished.is_set(), "bus.close() returned while a worker still ran a callback"
    assert inbus_threads() == []


@pytest.mark.timeout(30)
def test_close_joins_background_threads_while_busy() -> None:
    bus = Bus(background=True)
    chans = [bus.channel() for _ in range(3)]
    for i, ch in enumerate(chans):
        ch.queue_declare(f"q{i}")
        ch.basic_consume(f"q{i}", lambda m: (time.sleep(0.001), m.ack()))
        publish(ch, f"q{i}", *["x"] * 100)
    assert len(inbus_threads()) >= 3
    bus.close()
    assert inbus_threads() == []


def test_callbacks_after_a_callback_closed_the_channel_do_not_run(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    seen: list[bytes] = []

    def cb(m: Message) -> None:
        seen.append(m.body)
        if m.body == b"a":
            ch.close()
        else:
            m.ack()  # would raise ChannelClosed if it ran

    ch.basic_consume("q", cb)
    publish(ch, "q", "a", "b", "c")
    assert bus.run_until_idle() == 1
    assert seen == [b"a"] and counts(bus, "q") == (3, 0)
    check = bus.channel()
    assert [m.body for m in (check.basic_get("q", auto_ack=True) for _ in range(3)) if m] \
        == [b"a", b"b", b"c"]


@pytest.mark.parametrize("free", ["ack", "reject", "nack-requeue", "recover",
                                  "ack-after-cancel", "ack-after-queue-delete"])
def test_global_prefetch_credit_wakes_consumers_of_other_queues(bus: Bus, free: str) -> None:
    """With global_qos, credit freed by a message of queue A lets the channel's consumer of
    queue B take its waiting message (found by the stateful test)."""
    ch = bus.channel()
    ch.queue_declare("a")
    ch.queue_declare("b")
    ch.basic_qos(prefetch_count=1, global_qos=True)
    ga, cba = collector()
    gb, cbb = collector()
    ta = ch.basic_consume("a", cba)
    publish(ch, "a", "a1")
    bus.run_until_idle()
    ch.basic_consume("b", cbb)
    publish(ch, "b", "b1")
    bus.run_until_idle()
    assert (bodies(ga), bodies(gb)) == ([b"a1"], [])  # the channel's one credit is used
    m = ga[0]
    if free == "ack":
        m.ack()
    elif free == "reject":
        m.reject(requeue=False)
    elif free == "nack-requeue":
        ch.basic_cancel(ta)  # so that a1 does not simply come back to the same consumer
        m.nack(requeue=True)
    elif free == "recover":
        ch.basic_cancel(ta)
        ch.basic_recover()
    elif free == "ack-after-cancel":
        ch.basic_cancel(ta)
        m.ack()
    else:
        bus.channel().queue_delete("a")
        m.ack()
    bus.run_until_idle()
    assert bodies(gb) == [b"b1"]


def test_global_prefetch_credit_starves_no_queue(bus: Bus) -> None:
    """One global credit shared by consumers of two busy queues: RabbitMQ's limiter
    resumes the queues starting at a random one (its order differs from run to run, e.g.
    abbbbaabbbababbaaaaa); inbus starts one queue further at each resume. Before, queue
    a, the first, took every freed credit while it had messages."""
    ch = bus.channel()
    for q in ("a", "b"):
        ch.queue_declare(q)
        for i in range(5):
            publish(ch, q, f"{q}{i}")
    ch.basic_qos(prefetch_count=1, global_qos=True)
    order: list[str] = []

    def cb(m: Message) -> None:
        order.append(m.body.decode()[0])
        m.ack()
    ch.basic_consume("a", cb)
    ch.basic_consume("b", cb)
    bus.run_until_idle()
    assert "".join(order) == "aababababb"


@pytest.mark.timeout(30)
def test_background_error_is_logged_to_the_inbus_logger(
        caplog: pytest.LogCaptureFixture) -> None:
    bus = Bus()
    ch = bus.channel(background=True)
    ch.queue_declare("q")
    ch.basic_consume("q", lambda m: 1 / 0)
    with caplog.at_level("ERROR", logger="inbus"):
        ch.basic_publish("", "q", b"x")
        wait_for(lambda: bus.errors)
        bus.close()
    recs = [r for r in caplog.records if r.name == "inbus"]
    assert recs and recs[0].exc_info and recs[0].exc_info[0] is ZeroDivisionError
    assert isinstance(bus.errors[0], ZeroDivisionError)


@pytest.mark.timeout(30)
def test_background_error_log_names_the_consumer_and_the_message_fate(
        caplog: pytest.LogCaptureFixture) -> None:
    """The log line names the consumer and its queue, and says what became of the
    message: unacked (manual ack) or already settled (auto-ack, nothing comes back)."""
    bus = Bus()
    ch = bus.channel(background=True)
    ch.queue_declare("manual")
    ch.queue_declare("auto")
    ch.basic_consume("manual", lambda m: 1 / 0, consumer_tag="m")
    ch.basic_consume("auto", lambda m: 1 / 0, auto_ack=True, consumer_tag="a")
    with caplog.at_level("ERROR", logger="inbus"):
        ch.basic_publish("", "manual", b"x")
        wait_for(lambda: len(bus.errors) == 1)
        ch.basic_publish("", "auto", b"y")
        wait_for(lambda: len(bus.errors) == 2)
        bus.close()
    msgs = [r.getMessage() for r in caplog.records if r.name == "inbus"]
    assert msgs[0].startswith("inbus: consumer 'm' of queue 'manual' raised")
    assert "stays unacked" in msgs[0]
    assert msgs[1].startswith("inbus: consumer 'a' of queue 'auto' raised")
    assert "auto-ack: the message was settled on delivery" in msgs[1]
    assert "unacked" not in msgs[1]


def consumers_a_and_b(bus: Bus, bodies: list[str], **qos: Any
                      ) -> tuple[inbus.Channel, list[Message], list[Message]]:
    """Consumer A on a channel with ``basic_qos(**qos)``, then B on another channel, both
    of queue "q", which then gets ``bodies``. Returns A's channel and what each got."""
    ch1, ch2 = bus.channel(), bus.channel()
    ch1.queue_declare("q")
    ch1.basic_qos(**qos)
    a: list[Message] = []
    b: list[Message] = []
    ch1.basic_consume("q", a.append, consumer_tag="A")
    ch2.basic_consume("q", b.append, consumer_tag="B")
    publish(ch1, "q", *bodies)
    bus.run_until_idle()
    return ch1, a, b


def test_global_limit_rejoins_after_the_requeue_is_dispatched(bus: Bus) -> None:
    # A (channel-wide prefetch 1) is offered m2 without credit and leaves the round
    # robin; when its channel requeues m0, the queue dispatches m0 first (to B), and A
    # rejoins only then, at the back: m3 to B, m4 to A. The same steps on RabbitMQ 3.10
    # with pika give the same deliveries.
    ch1, a, b = consumers_a_and_b(bus, ["m0", "m1", "m2"], prefetch_count=1, global_qos=True)
    assert (bodies(a), bodies(b)) == ([b"m0"], [b"m1", b"m2"])
    a[0].reject(requeue=True)
    bus.run_until_idle()
    assert bodies(b)[2:] == [b"m0"] and b[2].redelivered
    publish(ch1, "q", "m3", "m4")
    bus.run_until_idle()
    assert (bodies(a)[1:], bodies(b)[3:]) == ([b"m4"], [b"m3"])


def test_own_limit_rejoins_at_once_under_a_reached_global_limit(bus: Bus) -> None:
    # A (prefetch 2) is offered m4 without credit and leaves the round robin; a global
    # limit of 1 is set on its channel (which holds 2). Its ack of m0 gives A its own
    # credit back: A rejoins at once, behind B, though the channel's limit is still
    # reached (RabbitMQ asks the consumer's own limit first). So m5 goes to B and, once
    # the channel has credit too, m6 to A and m7 to B. The same steps on RabbitMQ 3.10
    # with pika give the same deliveries.
    ch1, a, b = consumers_a_and_b(bus, ["m0", "m1", "m2", "m3", "m4"], prefetch_count=2)
    assert (bodies(a), bodies(b)) == ([b"m0", b"m2"], [b"m1", b"m3", b"m4"])
    ch1.basic_qos(prefetch_count=1, global_qos=True)
    a[0].ack()
    publish(ch1, "q", "m5")
    bus.run_until_idle()
    assert bodies(b)[3:] == [b"m5"]
    a[1].ack()
    publish(ch1, "q", "m6", "m7")
    bus.run_until_idle()
    assert (bodies(a)[2:], bodies(b)[4:]) == ([b"m6"], [b"m7"])


def test_global_limit_suspends_the_channel_at_the_queue_until_it_resumes(bus: Bus) -> None:
    # ch1: A (x-priority 5, its own prefetch 1) and M, channel-wide prefetch 2; ch2: X.
    # M is refused m3 by the channel's limit, which suspends ch1 at the queue. A's reject
    # of m0 gives A its own credit and ch1 one back, but ch1 is still suspended while the
    # queue dispatches the requeued m0, so X (not A, first by priority) takes it; ch1
    # resumes afterwards: m5 to A, then X. The same steps on RabbitMQ 3.10 with pika give
    # the same deliveries.
    ch1, ch2 = bus.channel(), bus.channel()
    ch1.queue_declare("q")
    got: dict[str, list[Message]] = {"A": [], "M": [], "X": []}
    ch1.basic_qos(prefetch_count=1)
    ch1.basic_consume("q", got["A"].append, consumer_tag="A", arguments={"x-priority": 5})
    ch1.basic_qos(prefetch_count=0)
    ch1.basic_consume("q", got["M"].append, consumer_tag="M")
    ch1.basic_qos(prefetch_count=2, global_qos=True)
    ch2.basic_consume("q", got["X"].append, consumer_tag="X")
    publish(ch1, "q", "m0", "m1", "m2", "m3", "m4")
    bus.run_until_idle()
    assert {k: bodies(v) for k, v in got.items()} == {
        "A": [b"m0"], "M": [b"m1"], "X": [b"m2", b"m3", b"m4"]}
    got["A"][0].reject(requeue=True)
    bus.run_until_idle()
    assert bodies(got["X"])[3:] == [b"m0"] and len(got["A"]) == 1
    publish(ch1, "q", "m5", "m6", "m7")
    bus.run_until_idle()
    assert (bodies(got["A"])[1:], bodies(got["X"])[4:]) == ([b"m5"], [b"m6", b"m7"])
    bus._check()


def test_own_credit_back_rejoins_the_channels_other_consumers_too(bus: Bus) -> None:
    # x01 (its own prefetch 2) holds m0, m1 and leaves the round robin when offered m2;
    # then a channel-wide limit of 1 (below what the channel holds) refuses d02 m2. A
    # requeue of m1 gives x01 its own credit back: x01 and d02 both rejoin, in the order
    # they left, and both are refused again (the channel is still suspended there). When
    # the requeue of m0 resumes the channel, x01, which left first, takes m0. The same
    # steps on RabbitMQ 3.10 with pika give the same deliveries.
    ch = bus.channel()
    ch.queue_declare("q")
    publish(ch, "q", "m0", "m1", "m2", "m3")
    ch.basic_qos(prefetch_count=2)
    x01: list[Message] = []
    d02: list[Message] = []
    ch.basic_consume("q", x01.append, consumer_tag="x01")
    bus.run_until_idle()
    ch.basic_qos(prefetch_count=1, global_qos=True)
    ch.basic_consume("q", d02.append, consumer_tag="d02")
    publish(ch, "q", "m4")
    bus.run_until_idle()
    assert (bodies(x01), d02) == ([b"m0", b"m1"], [])
    x01[1].reject(requeue=True)
    bus.run_until_idle()
    assert (len(x01), d02) == (2, [])
    x01[0].reject(requeue=True)
    bus.run_until_idle()
    assert (bodies(x01)[2:], d02) == ([b"m0"], []) and x01[2].redelivered
    bus._check()
