"""AMQP transactions: Channel.tx_select / tx_commit / tx_rollback, and the pika facade's.

The rules (RabbitMQ 3.10's, probed on the real server; the differential scenarios in
tests/diff/amqp_tx_scenarios.py compare them with it): publishes are checked and routed
at the call and delivered at commit; acks / nacks / rejects are checked at the call and
settled at commit; a rollback drops the publishes and leaves the acked messages unacked;
the channel stays transactional; a commit on a durable bus is one storage batch and
returns once durable.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import inbus
from inbus import BasicProperties, Bus, Channel, Message
from tests._support import checked_bus  # noqa: F401 - the bus fixture

P = BasicProperties(delivery_mode=2)


def ready(ch: Channel, q: str) -> int:
    return ch.queue_declare(q, passive=True).message_count


def drain(ch: Channel, q: str) -> list[tuple[bytes, bool]]:
    out = []
    while (m := ch.basic_get(q, auto_ack=True)) is not None:
        out.append((m.body, m.redelivered))
    return out


# --------------------------------------------------------------------------- publishes


def test_publishes_are_held_until_commit_then_routed_in_order(bus: Bus) -> None:
    ch, other = bus.channel(), bus.channel()
    ch.queue_declare("q")
    got: list[bytes] = []
    other.basic_consume("q", lambda m: got.append(m.body), auto_ack=True)
    ch.tx_select()
    for b in (b"1", b"2", b"3"):
        ch.basic_publish("", "q", b)
    assert bus.run_until_idle() == 0 and got == []
    assert ready(other, "q") == 0
    assert other.basic_get("q") is None
    assert ch.tx_commit() is None
    assert bus.run_until_idle() == 3
    assert got == [b"1", b"2", b"3"]


def test_rollback_drops_publishes_and_the_channel_stays_transactional(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    ch.tx_select()
    ch.basic_publish("", "q", b"dropped")
    ch.tx_rollback()
    assert ready(ch, "q") == 0
    ch.basic_publish("", "q", b"held")  # still a transaction after the rollback
    assert ready(ch, "q") == 0
    ch.tx_commit()
    ch.basic_publish("", "q", b"held too")  # ...and after the commit
    assert ready(ch, "q") == 1
    ch.tx_commit()
    ch.tx_commit()  # an empty commit
    ch.tx_select()  # selecting again changes nothing
    ch.tx_rollback()  # an empty rollback
    assert drain(ch, "q") == [(b"held", False), (b"held too", False)]


@pytest.mark.parametrize("method", ["tx_commit", "tx_rollback"])
def test_commit_or_rollback_without_select_is_406(bus: Bus, method: str) -> None:
    ch = bus.channel()
    with pytest.raises(inbus.PreconditionFailed) as e:
        getattr(ch, method)()
    assert e.value.reply_code == 406
    assert e.value.reply_text == "PRECONDITION_FAILED - channel is not transactional"
    assert e.value.method == method.replace("_", ".")
    assert e.value.scope == "channel"
    assert ch.is_closed
    with pytest.raises(inbus.ChannelClosed) as closed:
        ch.tx_select()
    assert closed.value.reason is e.value


def test_confirm_mode_and_tx_mode_exclude_each_other(bus: Bus) -> None:
    ch = bus.channel()
    ch.tx_select()
    with pytest.raises(inbus.PreconditionFailed,
                       match="cannot switch from tx to confirm mode") as e:
        ch.confirm_delivery()
    assert e.value.method == "confirm.select" and ch.is_closed
    ch = bus.channel()
    ch.confirm_delivery()
    with pytest.raises(inbus.PreconditionFailed,
                       match="cannot switch from confirm to tx mode") as e:
        ch.tx_select()
    assert e.value.method == "tx.select" and ch.is_closed


def test_publish_errors_are_raised_at_the_call(bus: Bus) -> None:
    ch = bus.channel()
    ch.exchange_declare("int", "direct", internal=True)
    cases: list[tuple[dict[str, Any], type[inbus.AMQPError], str]] = [
        ({"exchange": "nope"}, inbus.NotFound, "no exchange 'nope' in vhost '/'"),
        ({"exchange": "int"}, inbus.AccessRefused, "internal exchange 'int'"),
        ({"properties": BasicProperties(delivery_mode=3)}, inbus.PreconditionFailed,
         "delivery_mode_unknown,3"),
        ({"properties": BasicProperties(expiration="soon")}, inbus.PreconditionFailed,
         "invalid expiration 'soon'"),
        ({"immediate": True}, inbus.NotImplementedByBus, "immediate=true"),
    ]
    for kwargs, error, text in cases:
        ch = bus.channel()
        ch.tx_select()
        args = {"exchange": "amq.direct", "routing_key": "k", "body": b"m", **kwargs}
        with pytest.raises(error, match=text):
            ch.basic_publish(**args)
        assert ch.is_closed


def test_routed_at_publish_delivered_at_commit(bus: Bus) -> None:
    ch, admin = bus.channel(), bus.channel()
    ch.exchange_declare("x")
    for q in ("q1", "q2"):
        ch.queue_declare(q)
    ch.queue_bind("q1", "x", "k")
    ch.tx_select()
    ch.basic_publish("x", "k", b"m")
    admin.queue_unbind("q1", "x", "k")
    admin.queue_bind("q2", "x", "k")
    ch.tx_commit()
    assert (drain(admin, "q1"), drain(admin, "q2")) == ([(b"m", False)], [])
    ch.basic_publish("x", "k", b"n")
    admin.exchange_delete("x")  # routed already: it still goes
    ch.tx_commit()
    assert drain(admin, "q2") == [(b"n", False)]


def test_cc_and_bcc_in_a_transaction(bus: Bus) -> None:
    ch = bus.channel()
    for q in ("a", "b", "c"):
        ch.queue_declare(q)
    ch.tx_select()
    ch.basic_publish("", "a", b"m", BasicProperties(headers={"CC": ["b"], "BCC": ["c"]}))
    assert [ready(ch, q) for q in "abc"] == [0, 0, 0]
    ch.tx_commit()
    got = [ch.basic_get(q, auto_ack=True) for q in "abc"]
    assert all(m is not None and m.body == b"m" for m in got)
    assert got[2] is not None and got[2].properties.headers == {"CC": ["b"]}


def test_mandatory_returns_come_at_commit(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    returned: list[tuple[int, str, bytes]] = []
    ch.add_on_return_callback(lambda r: returned.append((r.reply_code, r.reply_text,
                                                         r.body)))
    ch.tx_select()
    ch.basic_publish("amq.direct", "nowhere", b"r1", mandatory=True)
    ch.basic_publish("", "q", b"gone", mandatory=True)
    bus.run_until_idle()
    assert returned == []
    bus.channel().queue_delete("q")  # its only queue is gone by the commit
    ch.tx_commit()
    bus.run_until_idle()
    assert returned == [(312, "NO_ROUTE", b"r1"), (312, "NO_ROUTE", b"gone")]
    ch.basic_publish("amq.direct", "nowhere", b"r3", mandatory=True)
    ch.tx_rollback()
    bus.run_until_idle()
    assert len(returned) == 2
    stats = bus.statistics()
    assert stats.returned == 2


@pytest.mark.parametrize("overflow", ["reject-publish", "reject-publish-dlx"])
def test_a_publish_refused_by_overflow_fails_the_commit(bus: Bus, overflow: str) -> None:
    # RabbitMQ: a queue's reject-publish refusal at commit makes it 406 "partial tx
    # completion": the rest of the commit stands (publishes, the ack), the channel closes
    # and requeues its other unacked messages (fuzz h9, seed 8)
    ch = bus.channel()
    ch.queue_declare("dl")
    ch.queue_declare("full", arguments={"x-max-length": 0, "x-overflow": overflow,
                                        "x-dead-letter-exchange": "",
                                        "x-dead-letter-routing-key": "dl"})
    ch.queue_declare("q")
    for b in (b"a", b"b"):
        ch.basic_publish("", "q", b)
    a, b = ch.basic_get("q"), ch.basic_get("q")
    assert a is not None and b is not None
    ch.tx_select()
    ch.basic_publish("", "q", b"t1")
    ch.basic_publish("", "full", b"t2")
    ch.basic_publish("", "q", b"t3")
    a.ack()
    with pytest.raises(inbus.PreconditionFailed) as e:
        ch.tx_commit()
    assert e.value.reply_text == "PRECONDITION_FAILED - partial tx completion"
    assert e.value.method == "tx.commit" and ch.is_closed
    other = bus.channel()
    assert drain(other, "q") == [(b"b", True), (b"t1", False), (b"t3", False)]
    assert drain(other, "dl") == ([(b"t2", False)] if overflow == "reject-publish-dlx"
                                  else [])


def test_a_commit_routes_its_dead_letters_after_its_last_publish(bus: Bus) -> None:
    # RabbitMQ's channel hands every publish of the commit to its queues before any
    # queue can react: m1's dead letter (q1 overflows) reaches q2 after m2 (fuzz h9 seed
    # 1774)
    ch = bus.channel()
    ch.exchange_declare("dlx", "fanout")
    ch.queue_declare("q2")
    ch.queue_bind("q2", "dlx")
    ch.queue_declare("q1", arguments={"x-max-length": 0, "x-dead-letter-exchange": "dlx"})
    ch.tx_select()
    ch.basic_publish("", "q1", b"m1")
    ch.basic_publish("", "q2", b"m2")
    ch.tx_commit()
    assert [body for body, _ in drain(ch, "q2")] == [b"m2", b"m1"]


# --------------------------------------------------------------------------- settles


def one_unacked_in_tx(bus: Bus) -> tuple[Channel, Message]:
    """A channel that got message b"m" from queue "q" (unacked), then tx_select()ed."""
    ch = bus.channel()
    ch.queue_declare("q")
    ch.basic_publish("", "q", b"m")
    m = ch.basic_get("q")
    assert m is not None
    ch.tx_select()
    return ch, m


def test_ack_is_held_until_commit_and_rollback_keeps_it_unacked(bus: Bus) -> None:
    ch, m = one_unacked_in_tx(bus)
    m.ack()  # through the channel
    bus._check()  # (the held ack still counts as unacked in its queue)
    assert bus.statistics().queue("q").messages_unacknowledged == 1
    ch.tx_rollback()
    m.ack()  # unacked again after the rollback: it may be acked again
    ch.tx_commit()
    assert bus.statistics().queue("q").messages_unacknowledged == 0
    ch.close()
    assert drain(bus.channel(), "q") == []


def test_rolled_back_ack_returns_on_close(bus: Bus) -> None:
    ch, m = one_unacked_in_tx(bus)
    ch.basic_ack(m.delivery_tag)
    ch.tx_rollback()
    ch.close()
    assert drain(bus.channel(), "q") == [(b"m", True)]


@pytest.mark.parametrize("settle", [
    lambda ch: ch.basic_ack(99), lambda ch: ch.basic_nack(99),
    lambda ch: ch.basic_reject(99), lambda ch: ch.basic_ack(99, multiple=True),
])
def test_an_unknown_tag_fails_at_the_call(bus: Bus, settle: Any) -> None:
    ch = bus.channel()
    ch.tx_select()
    with pytest.raises(inbus.PreconditionFailed, match="unknown delivery tag 99"):
        settle(ch)
    assert ch.is_closed


def test_a_tag_acked_twice_in_one_transaction_fails_at_the_second_call(bus: Bus) -> None:
    ch, m = one_unacked_in_tx(bus)
    m.ack()
    with pytest.raises(inbus.PreconditionFailed, match="unknown delivery tag 1"):
        m.nack()
    ch2 = bus.channel()
    assert drain(ch2, "q") == [(b"m", True)]  # the close requeued the held ack's message


def test_nack_requeue_happens_at_commit_at_the_original_position(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    for b in (b"a", b"b", b"c"):
        ch.basic_publish("", "q", b)
    a = ch.basic_get("q")
    assert a is not None
    ch.tx_select()
    a.nack(requeue=True)
    assert ready(ch, "q") == 2
    ch.tx_commit()
    assert drain(ch, "q") == [(b"a", True), (b"b", False), (b"c", False)]


def test_reject_without_requeue_dead_letters_at_commit(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("dlq")
    ch.queue_declare("q", arguments={"x-dead-letter-exchange": "",
                                     "x-dead-letter-routing-key": "dlq"})
    ch.basic_publish("", "q", b"poison")
    m = ch.basic_get("q")
    assert m is not None
    ch.tx_select()
    m.reject(requeue=False)
    assert ready(ch, "dlq") == 0
    ch.tx_commit()
    dead = ch.basic_get("dlq", auto_ack=True)
    assert dead is not None and dead.body == b"poison"
    assert dead.properties.headers["x-death"][0]["reason"] == "rejected"


def test_rejects_dead_letter_in_tag_order_per_run_of_the_same_kind(bus: Bus) -> None:
    # RabbitMQ (ack_cons): settles of one kind in a row are one group, applied in tag
    # order at commit; an ack between two rejects splits them (fuzz h9)
    ch = bus.channel()
    ch.queue_declare("dl")
    ch.queue_declare("q", arguments={"x-dead-letter-exchange": "",
                                     "x-dead-letter-routing-key": "dl"})
    for b in (b"a", b"b", b"c", b"d", b"e"):
        ch.basic_publish("", "q", b)
    a, b, c, d, e = (ch.basic_get("q") for _ in range(5))
    assert a and b and c and d and e
    ch.tx_select()
    c.reject(requeue=False)
    a.ack()
    e.reject(requeue=False)
    b.nack(requeue=False)
    d.reject(requeue=False)
    ch.tx_commit()
    assert [body for body, _ in drain(ch, "dl")] == [b"c", b"b", b"d", b"e"]


def test_a_commit_settles_per_queue_then_per_consumer_tag(bus: Bus) -> None:
    # RabbitMQ (foreach_per_queue): a run of settles goes to its queues by queue name,
    # and within a queue per consumer tag (a basic_get's is its delivery tag, before any
    # consumer's), each in tag order: what two queues dead-letter to one target comes in
    # that order (on RabbitMQ usually: the queues work in parallel), whatever the tags'
    # or the calls' (fuzz h23, probes/p3 and p4)
    ch = bus.channel()
    ch.exchange_declare("dlx", "fanout")
    ch.queue_declare("t")
    ch.queue_bind("t", "dlx")
    for q in ("s0", "s1"):
        ch.queue_declare(q, arguments={"x-dead-letter-exchange": "dlx"})
    for b in ("a", "b", "c", "d"):
        ch.basic_publish("", "s0", b)
    ch.basic_publish("", "s1", "e")
    ch.basic_qos(prefetch_count=1)
    e = ch.basic_get("s1")
    got: list[Message] = []
    ch.basic_consume("s0", got.append, consumer_tag="zb")
    ch.basic_consume("s0", got.append, consumer_tag="za")
    bus.run_until_idle()
    ch.basic_cancel("zb")
    ch.basic_cancel("za")
    c, d = ch.basic_get("s0"), ch.basic_get("s0")
    assert e and c and d and [m.body for m in got] == [b"a", b"b"]
    ch.tx_select()
    for m in (d, got[0], e, c, got[1]):  # one run, the calls in no order
        m.nack(requeue=False)
    ch.tx_commit()
    assert [body for body, _ in drain(ch, "t")] == [b"c", b"d", b"b", b"a", b"e"]
    for b in ("f", "g"):
        ch.basic_publish("", "s1", b)
        ch.basic_publish("", "s0", b)
    ch.tx_commit()
    f1, f0, g1, g0 = (ch.basic_get(q) for q in ("s1", "s0", "s1", "s0"))
    assert f1 and f0 and g1 and g0
    ch.basic_nack(0, multiple=True, requeue=False)
    ch.tx_commit()
    assert [(m.body, m.routing_key) for m in iter(lambda: ch.basic_get("t", auto_ack=True), None)
            ] == [(b"f", "s0"), (b"g", "s0"), (b"f", "s1"), (b"g", "s1")]


def test_a_commits_dead_letters_follow_its_settles(bus: Bus) -> None:
    # RabbitMQ's queues dead-letter a commit's rejects on their own, after the channel
    # has handed the whole commit to its queues: m2, rejected into its own queue, comes
    # back after m1's requeue is applied, and so after m1 (fuzz h23 seed 482)
    ch = bus.channel()
    ch.queue_declare("q", arguments={"x-dead-letter-exchange": ""})
    got: list[Message] = []
    ch.basic_consume("q", got.append)
    ch.tx_select()
    for b in ("m1", "m2"):
        ch.basic_publish("", "q", b)
    ch.tx_commit()
    bus.run_until_idle()
    got[1].reject(requeue=False)
    got[0].nack(requeue=True)
    ch.tx_commit()
    bus.run_until_idle()
    assert [(m.body, m.redelivered, bool(m.properties.headers))
            for m in got[2:]] == [(b"m1", True, False), (b"m2", False, True)]


def test_multiple_acks_take_every_tag_up_to_it(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    for i in range(4):
        ch.basic_publish("", "q", str(i))
    tags = [m.delivery_tag for m in (ch.basic_get("q") for _ in range(4)) if m]
    ch.tx_select()
    ch.basic_ack(tags[1], multiple=True)  # tags 1, 2
    ch.tx_rollback()
    ch.basic_ack(tags[2], multiple=True)  # tags 1, 2, 3 again after the rollback
    ch.basic_nack(0, multiple=True, requeue=True)  # all the rest: tag 4
    with pytest.raises(inbus.PreconditionFailed):
        ch.basic_ack(tags[0])  # taken by the multiple ack already
    # the close discarded the transaction: all four are back, in order
    assert drain(bus.channel(), "q") == [(b"0", True), (b"1", True), (b"2", True),
                                         (b"3", True)]


def test_ack_frees_prefetch_credit_only_at_commit(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    for i in range(3):
        ch.basic_publish("", "q", str(i))
    ch.basic_qos(prefetch_count=1)
    ch.tx_select()
    got: list[Message] = []
    ch.basic_consume("q", got.append)
    bus.run_until_idle()
    assert [m.body for m in got] == [b"0"]
    got[0].ack()
    bus.run_until_idle()
    assert len(got) == 1
    ch.tx_commit()
    bus.run_until_idle()
    assert [m.body for m in got] == [b"0", b"1"]


def test_a_global_limit_counts_the_unacked_gets_but_not_the_held_settles(bus: Bus) -> None:
    # RabbitMQ 3.10 (rabbit_channel, basic.qos global: limit_prefetch(.., len(UAMQ))): a
    # global limit set on a channel starts from all its unacked messages, basic_get ones
    # included and the ones a transaction holds settled excluded; settling a basic_get
    # message never gives that credit back (fuzz h23, probes/p1_global_gets.py)
    ch = bus.channel()
    ch.queue_declare("q")
    for i in range(6):
        ch.basic_publish("", "q", str(i))
    a, b = ch.basic_get("q"), ch.basic_get("q")
    assert a and b
    ch.tx_select()
    a.ack()  # held: no longer in the channel's unacked record
    ch.basic_qos(prefetch_count=2, global_qos=True)  # counts b only
    got: list[Message] = []
    ch.basic_consume("q", got.append)
    bus.run_until_idle()
    assert [m.body for m in got] == [b"2"]
    ch.tx_commit()
    b.ack()
    ch.tx_commit()
    bus.run_until_idle()
    assert [m.body for m in got] == [b"2"]  # (RabbitMQ too: b's count stays)
    got[0].ack()
    ch.tx_commit()
    bus.run_until_idle()
    assert [m.body for m in got] == [b"2", b"3"]


def test_a_commit_takes_nothing_off_a_global_count_of_zero(bus: Bus) -> None:
    # RabbitMQ's limiter ignores acks while its count is 0 (rabbit_limiter: Volume == 0
    # -> 0). A consumer's ack held when the global limit is set is not counted by it, and
    # its commit then frees nothing: one delivery under qos(1), not two (fuzz h23, p7)
    ch, pub = bus.channel(), bus.channel()
    ch.queue_declare("q")
    got: list[Message] = []
    ch.basic_consume("q", got.append)
    pub.basic_publish("", "q", "m1")
    bus.run_until_idle()
    ch.tx_select()
    got[0].ack()
    ch.basic_qos(prefetch_count=1, global_qos=True)
    ch.tx_commit()
    for b in ("m2", "m3", "m4"):
        pub.basic_publish("", "q", b)
    bus.run_until_idle()
    assert [m.body for m in got] == [b"m1", b"m2"]
    got[1].ack()
    ch.tx_commit()
    bus.run_until_idle()
    assert [m.body for m in got] == [b"m1", b"m2", b"m3"]


@pytest.mark.parametrize("requeue_first", [False, True])
def test_a_commit_resumes_a_channel_at_its_global_limit_after_all_its_settles(
        bus: Bus, requeue_first: bool) -> None:
    # RabbitMQ: the credit a commit frees under a global limit comes back through the
    # channel's limiter, which resumes the queue once the queue has applied the whole
    # commit (usually: 14 and 18 of 20 runs): the requeued m1, back at the head, goes
    # before m3 (fuzz h23 seeds 106, 121; RabbitMQ timing, so no differential scenario)
    ch = bus.channel()
    ch.queue_declare("q")
    ch.tx_select()
    ch.basic_qos(prefetch_count=2, global_qos=True)
    got: list[Message] = []
    ch.basic_consume("q", got.append)
    for b in ("m1", "m2", "m3"):
        ch.basic_publish("", "q", b)
    ch.tx_commit()
    bus.run_until_idle()
    m1, m2 = got
    if requeue_first:
        m1.nack(requeue=True)
        m2.nack(requeue=False)
    else:
        m2.nack(requeue=False)
        m1.nack(requeue=True)
    ch.tx_commit()
    bus.run_until_idle()
    assert [(m.body, m.redelivered) for m in got[2:]] == [(b"m1", True), (b"m3", False)]


def test_a_commit_frees_a_consumers_own_limit_at_once_under_a_global_one(bus: Bus) -> None:
    # The same, but the consumer's own limit held it (per-consumer 3, global 3): the
    # queue frees that at once, so m4 goes before the requeued m3 (fuzz h23 seed 299)
    ch = bus.channel()
    ch.queue_declare("q")
    ch.tx_select()
    ch.basic_qos(prefetch_count=3)
    ch.basic_qos(prefetch_count=3, global_qos=True)
    got: list[Message] = []
    ch.basic_consume("q", got.append)
    for b in ("m1", "m2", "m3", "m4"):
        ch.basic_publish("", "q", b)
    ch.tx_commit()
    bus.run_until_idle()
    got[0].reject(requeue=False)
    got[2].nack(requeue=True)
    ch.tx_commit()
    bus.run_until_idle()
    assert [(m.body, m.redelivered) for m in got[3:]] == [(b"m4", False), (b"m3", True)]


def test_auto_ack_consumers_and_basic_get_are_not_transactional(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    for b in (b"a", b"b"):
        bus.channel().basic_publish("", "q", b)
    ch.tx_select()
    m = ch.basic_get("q", auto_ack=True)
    assert m is not None and m.body == b"a"
    got: list[bytes] = []
    ch.basic_consume("q", lambda m: got.append(m.body), auto_ack=True)
    bus.run_until_idle()
    ch.tx_rollback()
    ch.close()
    assert got == [b"b"] and ready(bus.channel(), "q") == 0


def test_cancel_puts_back_undispatched_deliveries_at_commit(bus: Bus) -> None:
    # As RabbitMQ + pika, whose basic_cancel rejects (requeue) the deliveries it had not
    # dispatched: in a transaction that reject waits for the commit (fuzz h9)
    ch = bus.channel()
    ch.queue_declare("q")
    for b in (b"a", b"b", b"c"):
        ch.basic_publish("", "q", b)
    ch.basic_qos(prefetch_count=2)
    ch.tx_select()
    got: list[bytes] = []
    tag = ch.basic_consume("q", lambda m: got.append(m.body))
    ch.basic_cancel(tag)  # a and b were delivered, their callbacks never ran
    other = bus.channel()
    assert ready(other, "q") == 1
    ch.tx_rollback()  # the reject is dropped: a and b are unacked on ch again
    assert ready(other, "q") == 1
    ch.basic_nack(0, multiple=True)  # (held too)
    assert ready(other, "q") == 1
    ch.tx_commit()
    assert bus.run_until_idle() == 0 and got == []
    assert drain(other, "q") == [(b"a", True), (b"b", True), (b"c", False)]


def test_a_cancel_from_a_callback_holds_the_batch_put_back_too(bus: Bus) -> None:
    # The deliveries already taken for running when a callback cancels its consumer are
    # put back as basic_cancel's are: in a transaction, at its commit
    ch = bus.channel()
    ch.queue_declare("q")
    for b in (b"a", b"b", b"c"):
        ch.basic_publish("", "q", b)
    ch.tx_select()
    got: list[bytes] = []

    def on_message(m: Message) -> None:
        got.append(m.body)
        ch.basic_cancel("c")
    ch.basic_consume("q", on_message, consumer_tag="c")
    bus.run_until_idle()
    assert got == [b"a"]
    other = bus.channel()
    assert ready(other, "q") == 0  # b and c: held by the transaction
    ch.tx_commit()
    assert drain(other, "q") == [(b"b", True), (b"c", True)]


def test_recover_requeues_unacked_but_not_held_acks(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    for b in (b"a", b"b"):
        ch.basic_publish("", "q", b)
    a, _b = ch.basic_get("q"), ch.basic_get("q")
    assert a is not None
    ch.tx_select()
    a.ack()
    ch.basic_recover()
    assert ready(ch, "q") == 1
    ch.tx_commit()
    ch.close()
    assert drain(bus.channel(), "q") == [(b"b", True)]


@pytest.mark.parametrize("close", ["channel", "connection"])
def test_close_discards_publishes_and_requeues_held_acks(bus: Bus, close: str) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    ch.basic_publish("", "q", b"a")
    m = ch.basic_get("q")
    assert m is not None
    ch.tx_select()
    m.ack()
    ch.basic_publish("", "q", b"lost")
    (ch.close if close == "channel" else ch.connection.close)()
    assert drain(bus.channel(), "q") == [(b"a", True)]


# --------------------------------------------------------------------------- a model


class Model:
    """One queue, no consumers: ready messages leave in publish order (a requeue puts one
    back at its original position), so 'ready' is a sorted list of message numbers."""

    def __init__(self) -> None:
        self.ready: list[int] = []
        self.unacked: dict[int, int] = {}  # tag -> message number
        self.publishes: list[int] = []
        self.settles: list[tuple[str, dict[int, int]]] = []  # held: (how, tag -> number)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["publish", "get", "ack", "nack", "reject",
                                           "ack_multiple", "commit", "rollback"]),
                          st.integers(0, 5)), max_size=40))
def test_transactions_against_a_model(ops: list[tuple[str, int]]) -> None:
    with Bus() as b:
        ch, watch = b.channel(), b.channel()
        ch.queue_declare("q")
        ch.tx_select()
        model, n = Model(), 0
        for op, k in ops:
            if op == "publish":
                ch.basic_publish("", "q", str(n))
                model.publishes.append(n)
                n += 1
            elif op == "get":
                m = ch.basic_get("q")
                assert (m is None) == (not model.ready)
                if m is not None:
                    assert int(m.body) == model.ready[0]
                    assert m.message_count == len(model.ready) - 1
                    model.unacked[m.delivery_tag] = model.ready.pop(0)
            elif op in ("ack", "nack", "reject", "ack_multiple") and model.unacked:
                tags = sorted(model.unacked)
                tag = tags[k % len(tags)]
                if op == "ack_multiple":
                    ch.basic_ack(tag, multiple=True)
                    taken = [t for t in tags if t <= tag]
                else:
                    getattr(ch, "basic_" + op)(tag)  # (nack / reject: requeue)
                    taken = [tag]
                how = "ack" if op.startswith("ack") else "requeue"
                model.settles.append((how, {t: model.unacked.pop(t) for t in taken}))
            elif op == "commit":
                ch.tx_commit()
                model.ready += model.publishes
                for how, held in model.settles:
                    if how == "requeue":
                        model.ready += held.values()
                model.ready.sort()
                model.publishes, model.settles = [], []
            elif op == "rollback":
                ch.tx_rollback()
                for _, held in model.settles:
                    model.unacked.update(held)  # unacked again, with their tags
                model.publishes, model.settles = [], []
            assert ready(watch, "q") == len(model.ready)
            b._check()
        ch.close()  # held publishes dropped, unacked and held settles requeued
        back = model.ready + list(model.unacked.values())
        back += [num for _, held in model.settles for num in held.values()]
        assert [int(body) for body, _ in drain(watch, "q")] == sorted(back)


# --------------------------------------------------------------------------- threads


@pytest.mark.timeout(60)
def test_concurrent_transactions_from_many_threads() -> None:
    """Publishers commit or roll back batches from threads while a transactional consumer
    acks in batches from a worker thread: exactly the committed messages arrive, each
    once; a rolled-back batch is never seen; the invariants hold."""
    with Bus() as b:
        b.channel().queue_declare("q")
        committed: set[bytes] = set()
        lock = threading.Lock()
        errors: list[BaseException] = []

        def publisher(i: int) -> None:
            try:
                ch = b.channel()
                ch.tx_select()
                for batch in range(30):
                    bodies = [f"{i}-{batch}-{k}".encode() for k in range(5)]
                    for body in bodies:
                        ch.basic_publish("", "q", body)
                    if batch % 3 == 2:
                        ch.tx_rollback()
                    else:
                        ch.tx_commit()
                        with lock:
                            committed.update(bodies)
                ch.close()
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        seen: list[bytes] = []
        cons = b.channel(background=True)
        cons.basic_qos(prefetch_count=10)
        cons.tx_select()

        def on_message(m: Message) -> None:  # on the channel's worker thread
            seen.append(m.body)
            m.ack()
            if len(seen) % 7 == 0:
                cons.tx_commit()  # a callback may commit (no lock is held here)

        cons.basic_consume("q", on_message)
        threads = [threading.Thread(target=publisher, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, errors
        deadline = time.monotonic() + 20
        while len(seen) < len(committed) and time.monotonic() < deadline:
            time.sleep(0.01)
            cons.tx_commit()  # (from this thread too: credit for the consumer)
        assert sorted(seen) == sorted(committed) and len(committed) == 4 * 20 * 5
        cons.tx_commit()
        b._check()
        stats = b.statistics().queue("q")
        assert (stats.messages_ready, stats.messages_unacknowledged) == (0, 0)


def test_callbacks_run_without_the_lock_and_may_use_transactions(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("in")
    ch.queue_declare("out")
    ch.tx_select()
    held: list[bool] = []

    def on_message(m: Message) -> None:
        held.append(bus._lock._is_owned())  # type: ignore[attr-defined]
        ch.basic_publish("", "out", m.body.upper())
        m.ack()
        ch.tx_commit()

    ch.add_on_return_callback(lambda r: held.append(bus._lock._is_owned()))  # type: ignore[attr-defined]
    ch.basic_consume("in", on_message)
    bus.channel().basic_publish("", "in", b"x")
    ch.basic_publish("", "nowhere", b"r", mandatory=True)
    ch.tx_commit()
    bus.run_until_idle()
    assert held == [False, False]
    assert drain(bus.channel(), "out") == [(b"X", False)]
    assert bus.statistics().queue("in").messages_unacknowledged == 0


# --------------------------------------------------------------------------- durable


def test_a_durable_commit_is_one_storage_batch_and_durable_on_return(tmp_path: Path) -> None:
    db = str(tmp_path / "app.db")
    with Bus(db) as b:
        ch = b.channel()
        ch.queue_declare("q", durable=True)
        ch.queue_declare("q2", durable=True)
        ch.basic_publish("", "q", b"old", P)
        ch.basic_publish("", "q", b"back", P)
        assert b.flush(timeout=5)
        old, back = ch.basic_get("q"), ch.basic_get("q")
        assert old is not None and back is not None
        ch.tx_select()
        before = b._committer.statistics()
        for i in range(5):
            ch.basic_publish("", "q" if i % 2 else "q2", f"new {i}", P)
        old.ack()
        back.nack(requeue=True)  # (without the commit's batch: a submit of its own)
        ch.basic_publish("", "q", b"transient")  # (nothing to store)
        assert b._committer.statistics().submits == before.submits  # held: nothing yet
        ch.tx_commit()
        after = b._committer.statistics()
        assert after.submits == before.submits + 1  # one batch: one SQLite transaction
        assert after.pending == 0  # committed when tx_commit returned
        ch.basic_publish("", "q", b"rolled back", P)
        ch.tx_rollback()
        assert b._committer.statistics().submits == after.submits
    with Bus(db) as b:
        ch = b.channel()
        assert drain(ch, "q") == [(b"back", True), (b"new 1", False), (b"new 3", False)]
        assert drain(ch, "q2") == [(b"new 0", False), (b"new 2", False), (b"new 4", False)]


CHILD = r"""
import os, signal, sys
from inbus import Bus, BasicProperties
bus = Bus(sys.argv[1])
ch = bus.channel()
ch.queue_declare("q", durable=True)
ch.basic_publish("", "q", b"acked", BasicProperties(delivery_mode=2))
bus.flush()
m = ch.basic_get("q")
ch.tx_select()
for i in range(50):
    ch.basic_publish("", "q", str(i).encode(), BasicProperties(delivery_mode=2))
m.ack()
ch.tx_commit()
os.kill(os.getpid(), signal.SIGKILL)  # right after the commit-ok: no clean close
"""


@pytest.mark.timeout(60)
def test_a_commit_survives_a_kill_right_after_it_returned(tmp_path: Path) -> None:
    db = str(tmp_path / "app.db")
    r = subprocess.run([sys.executable, "-c", CHILD, db], capture_output=True,
                       timeout=50, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert r.returncode == -signal.SIGKILL, r.stderr.decode()
    with Bus(db) as b:
        assert [body for body, _ in drain(b.channel(), "q")] == [
            str(i).encode() for i in range(50)]


# --------------------------------------------------------------------------- the pika facade


def test_pika_facade_transactions() -> None:
    from inbus.compat import pika

    pika.reset()
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("localhost"))
        ch = conn.channel()
        ch.queue_declare("q")
        frame = ch.tx_select()
        assert isinstance(frame, pika.frame.Method)
        assert isinstance(frame.method, pika.spec.Tx.SelectOk)
        assert (frame.channel_number, frame.method.NAME) == (ch.channel_number, "Tx.SelectOk")
        ch.basic_publish("", "q", b"m")
        assert ch.queue_declare("q", passive=True).method.message_count == 0
        assert isinstance(ch.tx_commit().method, pika.spec.Tx.CommitOk)
        assert ch.queue_declare("q", passive=True).method.message_count == 1
        assert repr(ch.tx_rollback().method) == "<Tx.RollbackOk>"
        # an ack of an unknown tag is asynchronous: pika reads the close at the commit
        ch.basic_ack(42)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.tx_commit()
        assert (e.value.reply_code, e.value.reply_text) == (
            406, "PRECONDITION_FAILED - unknown delivery tag 42")
        with pytest.raises(pika.exceptions.ChannelWrongStateError):
            ch.tx_rollback()
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.tx_rollback()
        assert e.value.reply_code == 406
        conn.close()
    finally:
        pika.reset()
