"""RabbitMQ's queue and exchange features on the manual clock (issue 5).

Every expectation here was checked against a real RabbitMQ 3.10 with short pika scripts
(real sleeps there, virtual time here): TTLs and expiry, x-expires, max-length with each
overflow mode, dead-lettering and the x-death header, priority queues, alternate
exchanges, mandatory returns, publisher confirms, single active consumer, consumer
priorities and argument validation. Where inbus deliberately differs (x-delivery-limit on
classic queues) the test says so.
"""

from __future__ import annotations

import datetime
import re
import threading
import time

import pytest

from inbus import (
    BasicProperties,
    Bus,
    Channel,
    ChannelClosed,
    NackError,
    PreconditionFailed,
    UnroutableError,
)
from inbus.testing import ManualClock, queue_counts

P = BasicProperties


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def bus(clock: ManualClock):
    b = Bus(clock=clock)
    yield b
    b.close()


@pytest.fixture
def ch(bus: Bus):
    return bus.channel()


def drain(ch, queue: str) -> list[bytes]:
    out = []
    while True:
        m = ch.basic_get(queue, auto_ack=True)
        if m is None:
            return out
        out.append(m.body)


def get(ch, queue: str):
    m = ch.basic_get(queue, auto_ack=True)
    assert m is not None, f"queue {queue!r} is empty"
    return m


def ready(bus: Bus, queue: str) -> int:
    return queue_counts(bus, queue)[0]


def exists(bus: Bus, queue: str) -> bool:
    return queue in bus.statistics().vhosts["/"].queues


def dlx_setup(ch, queue: str = "work", args: dict | None = None,
              dead: str = "dead") -> None:
    """``queue`` dead-letters to exchange "dlx" (fanout) bound to queue ``dead``."""
    ch.exchange_declare("dlx", "fanout")
    ch.queue_declare(dead)
    ch.queue_bind(dead, "dlx")
    a = {"x-dead-letter-exchange": "dlx"}
    a.update(args or {})
    ch.queue_declare(queue, arguments=a)


# --- x-message-ttl and per-message expiration -----------------------------------------------

class TestTTL:
    def test_queue_ttl_expires_on_advance(self, bus, ch, clock):
        ch.queue_declare("q", arguments={"x-message-ttl": 1000})
        ch.basic_publish("", "q", b"a")
        clock.advance(0.999)
        assert ready(bus, "q") == 1
        clock.advance(0.001)
        assert ready(bus, "q") == 0
        assert bus.statistics().vhosts["/"].queues["q"].messages_ready == 0

    def test_advance_expires_without_touching_the_queue(self, bus, ch, clock):
        # The expiry happens in advance() itself, not lazily on the next operation.
        ch.queue_declare("q", arguments={"x-message-ttl": 100})
        dlx_setup(ch, "w", {"x-message-ttl": 100})
        ch.basic_publish("", "w", b"a")
        clock.advance(0.1)
        with bus._lock:
            assert bus._vhosts["/"].queues["dead"].ready_count == 1

    def test_lower_of_queue_ttl_and_message_expiration_applies(self, bus, ch, clock):
        ch.queue_declare("q", arguments={"x-message-ttl": 1000})
        ch.basic_publish("", "q", b"short", P(expiration="100"))
        ch.basic_publish("", "q", b"long", P(expiration="5000"))
        clock.advance(0.1)
        assert ready(bus, "q") == 1
        clock.advance(0.9)
        assert ready(bus, "q") == 0

    def test_message_expiration_without_queue_ttl(self, bus, ch, clock):
        ch.queue_declare("q")
        ch.basic_publish("", "q", b"a", P(expiration="200"))
        ch.basic_publish("", "q", b"b")
        clock.advance(0.2)
        assert drain(ch, "q") == [b"b"]

    def test_per_message_expiry_only_at_the_head(self, bus, ch, clock):
        ch.queue_declare("q")
        ch.basic_publish("", "q", b"long", P(expiration="10000"))
        ch.basic_publish("", "q", b"short", P(expiration="100"))
        clock.advance(1)
        # "short" is dead but stuck behind a live head: still counted, as in RabbitMQ.
        assert ready(bus, "q") == 2
        assert get(ch, "q").body == b"long"
        # Once it reaches the head it is expired, never delivered.
        assert ch.basic_get("q", auto_ack=True) is None

    def test_unacked_messages_do_not_expire(self, bus, ch, clock):
        ch.queue_declare("q", arguments={"x-message-ttl": 100})
        ch.basic_publish("", "q", b"a")
        m = ch.basic_get("q")
        clock.advance(10)
        assert queue_counts(bus, "q") == (0, 1)
        m.ack()
        assert queue_counts(bus, "q") == (0, 0)

    def test_requeued_after_ttl_is_dead_lettered_on_requeue(self, bus, ch, clock):
        dlx_setup(ch, "w", {"x-message-ttl": 100})
        ch.basic_publish("", "w", b"a")
        m = ch.basic_get("w")
        clock.advance(1)
        m.nack(requeue=True)
        assert ready(bus, "w") == 0
        d = get(ch, "dead")
        assert d.properties.headers["x-death"][0]["reason"] == "expired"

    def test_requeued_after_ttl_is_dropped_without_dlx(self, bus, ch, clock):
        ch.queue_declare("q", arguments={"x-message-ttl": 100})
        ch.basic_publish("", "q", b"a")
        m = ch.basic_get("q")
        clock.advance(1)
        ch.close()
        ch2 = bus.channel()
        assert ready(bus, "q") == 0
        assert ch2.basic_get("q") is None
        del m

    def test_requeued_before_ttl_keeps_original_deadline(self, bus, ch, clock):
        ch.queue_declare("q", arguments={"x-message-ttl": 1000})
        ch.basic_publish("", "q", b"a")
        m = ch.basic_get("q")
        clock.advance(0.5)
        m.reject(requeue=True)
        assert ready(bus, "q") == 1
        clock.advance(0.5)
        assert ready(bus, "q") == 0

    @pytest.mark.parametrize("args, props", [({"x-message-ttl": 1000}, None),
                                             ({}, P(expiration="1000"))])
    def test_delivered_at_publish_then_requeued_keeps_its_deadline(self, bus, ch, clock,
                                                                   args, props):
        """A consumer waiting with credit gets the message at publish (it never waits in
        the queue); put back later, it still expires at publish time + TTL."""
        dlx_setup(ch, "w", args)
        got = []
        tag = ch.basic_consume("w", got.append)
        ch.basic_publish("", "w", b"a", props)
        ch.basic_publish("", "w", b"b", props)
        bus.run_until_idle()
        assert [m.body for m in got] == [b"a", b"b"] and ready(bus, "w") == 0
        ch.basic_cancel(tag)  # (its deliveries stay unacked: nack them back)
        clock.advance(0.5)
        got[0].nack(requeue=True)
        assert ready(bus, "w") == 1
        clock.advance(0.499)
        assert ready(bus, "w") == 1
        clock.advance(0.001)
        assert ready(bus, "w") == 0
        clock.advance(1)
        got[1].nack(requeue=True)  # past its deadline: dead-lettered at once
        assert ready(bus, "w") == 0
        assert [get(ch, "dead").properties.headers["x-death"][0]["reason"]
                for _ in range(2)] == ["expired", "expired"]

    def test_expired_message_reaching_the_head_by_a_delivery_goes_at_once(self, bus, ch,
                                                                          clock):
        """Per-message TTL: an expired message behind a live one waits (only heads
        expire); once the one ahead of it is delivered, RabbitMQ dead-letters it at once
        (checked on 3.10), not at the next clock tick."""
        dlx_setup(ch, "w", {})
        ch.basic_qos(prefetch_count=1)
        got = []
        ch.basic_consume("w", got.append)
        ch.basic_publish("", "w", b"x")  # held unacked: no credit left
        ch.basic_publish("", "w", b"a")
        ch.basic_publish("", "w", b"b", P(expiration="100"))
        bus.run_until_idle()
        clock.advance(1)
        assert bus._vhosts["/"].queues["w"].ready_count == 2  # b waits behind a
        got[0].ack()  # a goes out: b, expired, is the head
        bus.run_until_idle()
        assert [m.body for m in got] == [b"x", b"a"]
        assert bus._vhosts["/"].queues["w"].ready_count == 0
        d = get(ch, "dead")
        assert d.body == b"b" and d.properties.headers["x-death"][0]["reason"] == "expired"

    def test_requeued_after_ttl_behind_a_live_message_waits_for_the_head(self, bus, ch,
                                                                         clock):
        """RabbitMQ drops expired messages at the head only, requeued ones too (checked on
        3.10: a nack of a, b (expired), c keeps 3 ready; b goes when a is fetched)."""
        dlx_setup(ch, "w", {})
        got = []
        tag = ch.basic_consume("w", got.append)
        ch.basic_publish("", "w", b"a")
        ch.basic_publish("", "w", b"b", P(expiration="100"))
        ch.basic_publish("", "w", b"c")
        bus.run_until_idle()
        ch.basic_cancel(tag)
        clock.advance(1)
        ch.basic_nack(0, multiple=True, requeue=True)
        assert bus._vhosts["/"].queues["w"].ready_count == 3
        assert ch.basic_get("dead") is None
        assert get(ch, "w").body == b"a"  # b, expired, is the head: it goes now
        assert get(ch, "dead").body == b"b"
        assert [m.body for m in [get(ch, "w")]] == [b"c"]

    def test_ttl_zero_delivered_to_a_waiting_consumer(self, bus, ch, clock):
        # RabbitMQ: a TTL 0 message goes to a consumer that can take it at once.
        ch.queue_declare("q", arguments={"x-message-ttl": 0})
        got = []
        ch.basic_consume("q", lambda m: got.append(m.body), auto_ack=True)
        ch.basic_publish("", "q", b"now")
        bus.run_until_idle()
        assert got == [b"now"]

    def test_expiration_zero_delivered_to_a_waiting_consumer(self, bus, ch, clock):
        ch.queue_declare("q")
        got = []
        ch.basic_consume("q", lambda m: got.append(m.body), auto_ack=True)
        ch.basic_publish("", "q", b"now", P(expiration="0"))
        bus.run_until_idle()
        assert got == [b"now"]

    def test_ttl_zero_without_consumer_is_gone_at_once(self, bus, ch, clock):
        dlx_setup(ch, "w", {"x-message-ttl": 0})
        ch.basic_publish("", "w", b"x")
        assert ch.basic_get("w") is None
        assert ready(bus, "w") == 0
        assert get(ch, "dead").properties.headers["x-death"][0]["reason"] == "expired"

    def test_expired_message_skipped_on_dispatch(self, bus, ch, clock):
        ch.queue_declare("q", arguments={"x-message-ttl": 100})
        ch.basic_publish("", "q", b"old")
        clock.advance(0.05)
        ch.basic_publish("", "q", b"new")
        clock.advance(0.06)
        got = []
        ch.basic_consume("q", lambda m: got.append(m.body), auto_ack=True)
        bus.run_until_idle()
        assert got == [b"new"]

    @pytest.mark.parametrize("exp, why", [
        ("abc", "no_integer"), ("", "no_integer"), ("-1", "{value_negative,-1}"),
        ("1.5", '{leftover_string,".5"}'),
    ])
    def test_invalid_expiration(self, bus, ch, exp, why):
        ch.queue_declare("q")
        with pytest.raises(PreconditionFailed) as ei:
            ch.basic_publish("", "q", b"x", P(expiration=exp))
        assert ei.value.reply_text == f"PRECONDITION_FAILED - invalid expiration '{exp}': {why}"
        assert ch.is_closed

    def test_priority_queue_with_ttl(self, bus, ch, clock):
        ch.queue_declare("q", arguments={"x-max-priority": 5, "x-message-ttl": 100})
        ch.basic_publish("", "q", b"lo", P(priority=1))
        ch.basic_publish("", "q", b"hi", P(priority=5))
        clock.advance(0.1)
        assert ready(bus, "q") == 0


# --- x-expires ------------------------------------------------------------------------------

class TestQueueExpiry:
    def test_unused_queue_is_deleted(self, bus, ch, clock):
        ch.queue_declare("q", arguments={"x-expires": 1000})
        ch.basic_publish("", "q", b"x")
        clock.advance(0.999)
        assert exists(bus, "q")
        clock.advance(0.001)
        assert not exists(bus, "q")

    def test_publishing_does_not_count_as_use(self, bus, ch, clock):
        ch.queue_declare("q", arguments={"x-expires": 500})
        for _ in range(6):
            ch.basic_publish("", "q", b"x")
            clock.advance(0.1)
        assert not exists(bus, "q")

    def test_consumer_keeps_it_and_the_timer_restarts_on_cancel(self, bus, ch, clock):
        ch.queue_declare("q", arguments={"x-expires": 500})
        tag = ch.basic_consume("q", lambda m: None)
        clock.advance(10)
        assert exists(bus, "q")
        ch.basic_cancel(tag)
        clock.advance(0.2)
        assert exists(bus, "q")  # RabbitMQ: the timer starts again at the cancel
        clock.advance(0.3)
        assert not exists(bus, "q")

    def test_basic_get_counts_as_use(self, bus, ch, clock):
        ch.queue_declare("q", arguments={"x-expires": 500})
        for _ in range(5):
            clock.advance(0.4)
            ch.basic_get("q")
        assert exists(bus, "q")
        clock.advance(0.5)
        assert not exists(bus, "q")

    def test_redeclare_counts_as_use(self, bus, ch, clock):
        ch.queue_declare("q", arguments={"x-expires": 500})
        for _ in range(5):
            clock.advance(0.4)
            ch.queue_declare("q", arguments={"x-expires": 500})
        assert exists(bus, "q")
        clock.advance(0.5)
        assert not exists(bus, "q")

    def test_passive_redeclare_counts_as_use(self, bus, ch, clock):
        ch.queue_declare("q", arguments={"x-expires": 500})
        for _ in range(5):
            clock.advance(0.3)
            ch.queue_declare("q", passive=True)
        assert exists(bus, "q")
        clock.advance(0.5)
        assert not exists(bus, "q")

    def test_purge_does_not_count_as_use(self, bus, ch, clock):
        ch.queue_declare("q", arguments={"x-expires": 500})
        clock.advance(0.3)
        ch.queue_purge("q")
        clock.advance(0.2)
        assert not exists(bus, "q")

    def test_expiry_is_quiet_and_the_channel_stays_usable(self, bus, ch, clock):
        ch.queue_declare("q", arguments={"x-expires": 100})
        clock.advance(0.1)
        assert not exists(bus, "q")
        ch.queue_declare("q2")
        assert exists(bus, "q2")


# --- max-length -----------------------------------------------------------------------------

class TestMaxLength:
    def test_drop_head_is_default(self, bus, ch):
        ch.queue_declare("q", arguments={"x-max-length": 2})
        for b in (b"1", b"2", b"3"):
            ch.basic_publish("", "q", b)
        assert drain(ch, "q") == [b"2", b"3"]

    def test_drop_head_dead_letters_with_maxlen(self, bus, ch):
        dlx_setup(ch, "w", {"x-max-length": 1})
        ch.basic_publish("", "w", b"1", P(expiration="10000"))
        ch.basic_publish("", "w", b"2")
        d = get(ch, "dead")
        assert d.body == b"1"
        death = d.properties.headers["x-death"][0]
        assert death["reason"] == "maxlen"
        assert death["original-expiration"] == "10000"
        assert d.properties.expiration is None
        assert d.properties.headers["x-first-death-reason"] == "maxlen"

    def test_max_length_bytes(self, bus, ch):
        ch.queue_declare("q", arguments={"x-max-length-bytes": 10})
        ch.basic_publish("", "q", b"12345")
        ch.basic_publish("", "q", b"67890")
        ch.basic_publish("", "q", b"abc")
        assert drain(ch, "q") == [b"67890", b"abc"]

    def test_only_ready_messages_count(self, bus, ch):
        ch.queue_declare("q", arguments={"x-max-length": 1})
        ch.basic_publish("", "q", b"1")
        m = ch.basic_get("q")
        ch.basic_publish("", "q", b"2")
        assert queue_counts(bus, "q") == (1, 1)
        m.ack()
        assert drain(ch, "q") == [b"2"]

    def test_max_length_zero_still_delivers_to_waiting_consumer(self, bus, ch):
        # RabbitMQ delivers straight to a consumer with credit; nothing is queued.
        ch.queue_declare("q", arguments={"x-max-length": 0})
        got = []
        ch.basic_consume("q", lambda m: got.append(m.body), auto_ack=True)
        ch.basic_publish("", "q", b"x")
        bus.run_until_idle()
        assert got == [b"x"]

    def test_reject_publish_drops_new(self, bus, ch):
        ch.queue_declare("q", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        ch.basic_publish("", "q", b"1")
        ch.basic_publish("", "q", b"2")
        assert drain(ch, "q") == [b"1"]

    def test_reject_publish_confirm_nack(self, bus, ch):
        ch.queue_declare("q", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        ch.confirm_delivery()
        ch.basic_publish("", "q", b"1")
        with pytest.raises(NackError):
            ch.basic_publish("", "q", b"2")
        assert ch.is_open
        assert drain(ch, "q") == [b"1"]

    def test_reject_publish_counts_only_ready(self, bus, ch):
        ch.queue_declare("q", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        ch.basic_publish("", "q", b"1")
        m = ch.basic_get("q")
        ch.confirm_delivery()
        ch.basic_publish("", "q", b"2")  # the unacked one does not count
        assert queue_counts(bus, "q") == (1, 1)
        del m

    def test_reject_publish_bytes(self, bus, ch):
        ch.queue_declare("q", arguments={"x-max-length-bytes": 5,
                                         "x-overflow": "reject-publish"})
        ch.confirm_delivery()
        ch.basic_publish("", "q", b"123")
        with pytest.raises(NackError):
            ch.basic_publish("", "q", b"456")
        ch.basic_publish("", "q", b"45")

    def test_reject_publish_dlx_nacks_and_dead_letters(self, bus, ch):
        dlx_setup(ch, "w", {"x-max-length": 1, "x-overflow": "reject-publish-dlx"})
        ch.confirm_delivery()
        ch.basic_publish("", "w", b"1")
        with pytest.raises(NackError):
            ch.basic_publish("", "w", b"2")
        d = get(ch, "dead")
        assert d.body == b"2"
        assert d.properties.headers["x-death"][0]["reason"] == "maxlen"
        assert d.properties.headers["x-death"][0]["queue"] == "w"
        assert drain(ch, "w") == [b"1"]

    def test_reject_publish_to_two_queues_other_gets_it(self, bus, ch):
        ch.exchange_declare("f", "fanout")
        ch.queue_declare("full", arguments={"x-max-length": 0,
                                            "x-overflow": "reject-publish"})
        ch.queue_declare("ok")
        ch.queue_bind("full", "f")
        ch.queue_bind("ok", "f")
        ch.confirm_delivery()
        with pytest.raises(NackError):
            ch.basic_publish("f", "", b"x")
        assert drain(ch, "ok") == [b"x"]

    def test_async_confirm_callback_nack(self, bus, ch):
        ch.queue_declare("q", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        seen = []
        ch.confirm_delivery(lambda seq, ok: seen.append((seq, ok)))
        ch.basic_publish("", "q", b"1")
        ch.basic_publish("", "q", b"2")
        ch.basic_publish("", "amq.direct", b"3")
        bus.run_until_idle()
        assert seen == [(1, True), (2, False), (3, True)]

    def test_priority_queue_drop_head_drops_the_next_to_deliver(self, bus, ch):
        # Checked on RabbitMQ 3.10: priorities 5,1,9 into max-length 2 keep 5 and 1;
        # 9,9,1 keep the second 9 and 1; 1,1,9 keep both 1s.
        cases = [((5, 1, 9), [5, 1]), ((9, 9, 1), [9, 1]), ((1, 1, 9), [1, 1])]
        for i, (prios, kept) in enumerate(cases):
            name = f"pq{i}"
            ch.queue_declare(name, arguments={"x-max-priority": 10, "x-max-length": 2})
            for n, p in enumerate(prios):
                ch.basic_publish("", name, b"%d" % n, P(priority=p))
            got = []
            while (m := ch.basic_get(name, auto_ack=True)) is not None:
                got.append(m.properties.priority)
            assert got == kept, (prios, got)
        ch.queue_declare("pq9", arguments={"x-max-priority": 10, "x-max-length": 2})
        for n, p in enumerate((9, 9, 1)):
            ch.basic_publish("", "pq9", b"%d" % n, P(priority=p))
        assert drain(ch, "pq9") == [b"1", b"2"]


# --- dead-lettering -------------------------------------------------------------------------

class TestDeadLettering:
    def test_rejected_and_x_death_fields(self, bus, ch, clock):
        ch.exchange_declare("src", "direct")
        dlx_setup(ch, "w")
        ch.queue_bind("w", "src", "rk")
        ch.basic_publish("src", "rk", b"x", P(headers={"h": 1}, expiration="60000"))
        m = ch.basic_get("w")
        m.reject(requeue=False)
        d = get(ch, "dead")
        h = d.properties.headers
        assert d.exchange == "dlx" and d.routing_key == "rk"
        assert h["h"] == 1
        (death,) = h["x-death"]
        assert death == {
            "count": 1, "reason": "rejected", "queue": "w", "exchange": "src",
            "routing-keys": ["rk"], "original-expiration": "60000",
            "time": datetime.datetime.fromtimestamp(int(clock.time()),
                                                    datetime.timezone.utc)}
        assert h["x-first-death-reason"] == "rejected"
        assert h["x-first-death-queue"] == "w"
        assert h["x-first-death-exchange"] == "src"
        assert d.properties.expiration is None

    def test_a_publish_reaches_all_its_queues_before_their_dead_letters(self, bus, ch):
        # As RabbitMQ, whose channel hands a message to every queue before any reacts:
        # "big" overflows q3, whose head is dead-lettered back to x and so to q2 only
        # after "big" reached q2 (where it is too big for the byte limit itself).
        ch.exchange_declare("x", "headers")
        ch.queue_declare("q3", arguments={"x-max-length": 1, "x-dead-letter-exchange": "x"})
        ch.queue_declare("q2", arguments={"x-max-length-bytes": 3})
        ch.queue_bind("q3", "x")
        ch.queue_bind("q2", "x")
        ch.basic_publish("x", "", b"m3")
        ch.basic_publish("x", "", b"big")
        assert drain(ch, "q3") == [b"big"]
        (m,) = [get(ch, "q2")]
        assert m.body == b"m3" and m.properties.headers["x-death"][0]["queue"] == "q3"
        assert drain(ch, "q2") == []

    def test_a_dead_letter_reaches_all_its_queues_before_theirs(self, bus, ch):
        # The same for a dead letter routed to several queues: "a" expires (TTL 0) into
        # dlx, reaching d1 and d2; d1 overflows into d2 only after "a" reached d2.
        ch.exchange_declare("dlx", "fanout")
        ch.exchange_declare("dlx2", "fanout")
        ch.queue_declare("d1", arguments={"x-max-length": 1, "x-dead-letter-exchange": "dlx2"})
        ch.queue_declare("d2", arguments={"x-max-length": 1})
        ch.queue_bind("d1", "dlx")
        ch.queue_bind("d2", "dlx")
        ch.queue_bind("d2", "dlx2")
        ch.queue_declare("w", arguments={"x-message-ttl": 0, "x-dead-letter-exchange": "dlx"})
        ch.basic_publish("", "d1", b"old")
        ch.basic_publish("", "w", b"a")
        assert drain(ch, "d1") == [b"a"]
        assert drain(ch, "d2") == [b"old"]

    def test_nack_without_requeue_dead_letters(self, bus, ch):
        dlx_setup(ch, "w")
        ch.basic_publish("", "w", b"a")
        ch.basic_publish("", "w", b"b")
        ch.basic_get("w")
        m2 = ch.basic_get("w")
        m2.nack(multiple=True, requeue=False)
        assert drain(ch, "dead") == [b"a", b"b"]

    def test_expired_reason_and_no_original_expiration_for_queue_ttl(self, bus, ch, clock):
        dlx_setup(ch, "w", {"x-message-ttl": 100})
        ch.basic_publish("", "w", b"x")
        clock.advance(0.1)
        death = get(ch, "dead").properties.headers["x-death"][0]
        assert death["reason"] == "expired"
        assert "original-expiration" not in death

    def test_dead_letter_routing_key(self, bus, ch):
        ch.exchange_declare("dlx", "direct")
        ch.queue_declare("dead")
        ch.queue_bind("dead", "dlx", "special")
        ch.queue_declare("w", arguments={"x-dead-letter-exchange": "dlx",
                                         "x-dead-letter-routing-key": "special"})
        ch.basic_publish("", "w", b"x", P(headers={"CC": ["other"]}))
        ch.basic_get("w").reject(requeue=False)
        d = get(ch, "dead")
        assert d.routing_key == "special"
        # The death records the original keys; CC is removed with a dead-letter key.
        assert d.properties.headers["x-death"][0]["routing-keys"] == ["w", "other"]
        assert "CC" not in d.properties.headers

    def test_default_exchange_as_dlx(self, bus, ch):
        ch.queue_declare("dead")
        ch.queue_declare("w", arguments={"x-dead-letter-exchange": "",
                                         "x-dead-letter-routing-key": "dead"})
        ch.basic_publish("", "w", b"x")
        ch.basic_get("w").reject(requeue=False)
        assert drain(ch, "dead") == [b"x"]

    def test_missing_dlx_drops(self, bus, ch):
        ch.queue_declare("w", arguments={"x-dead-letter-exchange": "nope"})
        ch.basic_publish("", "w", b"x")
        ch.basic_get("w").reject(requeue=False)
        assert queue_counts(bus, "w") == (0, 0)
        assert ch.is_open

    def test_cc_and_bcc(self, bus, ch, clock):
        # Checked on RabbitMQ: BCC is stripped at publish but its key still routes the
        # dead letter; x-death routing-keys list the key and the CC keys only.
        ch.exchange_declare("src", "direct")
        ch.exchange_declare("dlx", "direct")
        ch.queue_declare("w", arguments={"x-dead-letter-exchange": "dlx",
                                         "x-message-ttl": 100})
        ch.queue_bind("w", "src", "rk")
        ch.queue_bind("w", "src", "cc1")
        for q, k in (("dead", "rk"), ("ccq", "cc1"), ("bccq", "bcc1")):
            ch.queue_declare(q)
            ch.queue_bind(q, "dlx", k)
        ch.basic_publish("src", "rk", b"m", P(headers={"CC": ["cc1"], "BCC": ["bcc1"]}))
        clock.advance(0.1)
        for q in ("dead", "ccq", "bccq"):
            d = get(ch, q)
            h = d.properties.headers
            assert "BCC" not in h and h["CC"] == ["cc1"]
            assert d.routing_key == "rk"
            assert h["x-death"][0]["routing-keys"] == ["rk", "cc1"]
            assert h["x-death"][0]["count"] == 1  # one death although it reached w once

    def test_cc_routes_publish_once_per_queue(self, bus, ch):
        ch.exchange_declare("src", "direct")
        ch.queue_declare("a")
        ch.queue_bind("a", "src", "k1")
        ch.queue_bind("a", "src", "k2")
        ch.queue_declare("b")
        ch.queue_bind("b", "src", "k3")
        ch.basic_publish("src", "k1", b"x", P(headers={"CC": ["k2"], "BCC": ["k3"]}))
        assert drain(ch, "a") == [b"x"]
        b = get(ch, "b")
        assert b.properties.headers == {"CC": ["k2"]}

    def test_x_death_count_increments_and_moves_to_front(self, bus, ch, clock):
        # a --reject--> b --expire--> a: a cycle with a rejection in it is kept.
        ch.queue_declare("a", arguments={"x-dead-letter-exchange": "",
                                         "x-dead-letter-routing-key": "b"})
        ch.queue_declare("b", arguments={"x-dead-letter-exchange": "",
                                         "x-dead-letter-routing-key": "a",
                                         "x-message-ttl": 50})
        ch.basic_publish("", "a", b"cyc")
        ch.basic_get("a").reject(requeue=False)
        clock.advance(0.05)
        m = ch.basic_get("a")
        assert [(d["queue"], d["reason"], d["count"])
                for d in m.properties.headers["x-death"]] == [("b", "expired", 1),
                                                               ("a", "rejected", 1)]
        m.reject(requeue=False)
        clock.advance(0.05)
        m = get(ch, "a")
        h = m.properties.headers
        assert [(d["queue"], d["reason"], d["count"])
                for d in h["x-death"]] == [("b", "expired", 2), ("a", "rejected", 2)]
        assert h["x-first-death-queue"] == "a"
        assert h["x-first-death-reason"] == "rejected"

    def test_fully_automatic_cycle_is_dropped(self, bus, ch, clock):
        ch.queue_declare("self", arguments={"x-dead-letter-exchange": "",
                                            "x-message-ttl": 50})
        ch.basic_publish("", "self", b"loop")
        clock.advance(0.05)
        assert ready(bus, "self") == 0
        clock.advance(1)
        assert ready(bus, "self") == 0

    def test_two_queue_automatic_cycle_is_dropped(self, bus, ch, clock):
        ch.queue_declare("a", arguments={"x-dead-letter-exchange": "",
                                         "x-dead-letter-routing-key": "b",
                                         "x-message-ttl": 10})
        ch.queue_declare("b", arguments={"x-dead-letter-exchange": "",
                                         "x-dead-letter-routing-key": "a",
                                         "x-message-ttl": 10})
        ch.basic_publish("", "a", b"x")
        clock.advance(0.01)
        assert ready(bus, "b") == 1
        clock.advance(0.01)
        assert ready(bus, "a") == 0 and ready(bus, "b") == 0

    def test_cycle_through_a_rejection_of_the_same_queue_is_kept(self, bus, ch):
        ch.queue_declare("self", arguments={"x-dead-letter-exchange": ""})
        ch.basic_publish("", "self", b"x")
        for _ in range(3):
            m = ch.basic_get("self")
            assert m is not None
            m.reject(requeue=False)
        m = get(ch, "self")
        assert m.properties.headers["x-death"][0]["count"] == 3

    def test_dead_letter_persists_through_fanout_dlx_to_several(self, bus, ch):
        ch.exchange_declare("dlx", "fanout")
        for q in ("d1", "d2"):
            ch.queue_declare(q)
            ch.queue_bind(q, "dlx")
        ch.queue_declare("w", arguments={"x-dead-letter-exchange": "dlx"})
        ch.basic_publish("", "w", b"x")
        ch.basic_get("w").reject(requeue=False)
        assert drain(ch, "d1") == [b"x"] and drain(ch, "d2") == [b"x"]

    def test_statistics_count_dead_lettered(self, bus, ch):
        dlx_setup(ch, "w")
        ch.basic_publish("", "w", b"x")
        ch.basic_get("w").reject(requeue=False)
        st = bus.statistics().vhosts["/"].queues["w"]
        assert st.dead_lettered == 1


# --- priority queues -------------------------------------------------------------------------

class TestPriority:
    def test_order(self, bus, ch):
        ch.queue_declare("q", arguments={"x-max-priority": 5})
        for body, p in ((b"none", None), (b"p3a", 3), (b"p9", 9), (b"p0", 0), (b"p3b", 3),
                        (b"p5", 5)):
            ch.basic_publish("", "q", body, P(priority=p))
        # above max = max (p9 ranks with p5, FIFO); no priority = 0.
        assert drain(ch, "q") == [b"p9", b"p5", b"p3a", b"p3b", b"none", b"p0"]

    def test_priority_ignored_without_max_priority(self, bus, ch):
        ch.queue_declare("q")
        ch.basic_publish("", "q", b"a", P(priority=1))
        ch.basic_publish("", "q", b"b", P(priority=9))
        assert drain(ch, "q") == [b"a", b"b"]

    def test_requeue_returns_to_position_within_priority(self, bus, ch):
        ch.queue_declare("q", arguments={"x-max-priority": 5})
        for body, p in ((b"a", 2), (b"b", 2), (b"c", 4)):
            ch.basic_publish("", "q", body, P(priority=p))
        c = ch.basic_get("q")
        a = ch.basic_get("q")
        a.nack(requeue=True)
        c.nack(requeue=True)
        got = [ch.basic_get("q", auto_ack=True) for _ in range(3)]
        assert [m.body for m in got] == [b"c", b"a", b"b"]
        assert [m.redelivered for m in got] == [True, True, False]

    def test_expiry_at_the_head_only_lower_lanes_wait(self, bus, ch, clock):
        # As RabbitMQ 3.10's priority queue: expired messages go from the head, the
        # highest non-empty priority first; a lower priority's expired message waits
        # (and counts) while a live message of a higher priority is ahead of it.
        dlx_setup(ch, "p", {"x-max-priority": 5})
        ch.basic_publish("", "p", b"hi", P(priority=5))
        ch.basic_publish("", "p", b"lo", P(priority=0, expiration="10000"))
        ch.basic_publish("", "p", b"zero", P(priority=0, expiration="0"))
        clock.advance(20)
        assert ready(bus, "p") == 3
        m = get(ch, "p")
        assert (m.body, m.message_count) == (b"hi", 0)  # the rest expire as the head moves
        assert drain(ch, "dead") == [b"lo", b"zero"]

    def test_consumer_gets_highest_first(self, bus, ch):
        ch.queue_declare("q", arguments={"x-max-priority": 10})
        for i in range(10):
            ch.basic_publish("", "q", b"%d" % i, P(priority=i))
        got = []
        ch.basic_consume("q", lambda m: got.append(int(m.body)), auto_ack=True)
        bus.run_until_idle()
        assert got == list(range(9, -1, -1))


# --- alternate exchange, mandatory, confirms --------------------------------------------------

def _ae_catching_into_unrouted(ch: Channel) -> None:
    """A fanout exchange "ae" that puts what reaches it in the queue "unrouted"."""
    ch.exchange_declare("ae", "fanout")
    ch.queue_declare("unrouted")
    ch.queue_bind("unrouted", "ae")


class TestRouting:
    def test_alternate_exchange(self, bus, ch):
        _ae_catching_into_unrouted(ch)
        ch.exchange_declare("main", "direct", arguments={"alternate-exchange": "ae"})
        ch.queue_declare("q")
        ch.queue_bind("q", "main", "k")
        ch.basic_publish("main", "k", b"routed")
        ch.basic_publish("main", "other", b"lost")
        assert drain(ch, "q") == [b"routed"]
        assert drain(ch, "unrouted") == [b"lost"]

    def test_alternate_exchange_chain(self, bus, ch):
        ch.exchange_declare("x3", "fanout")
        ch.exchange_declare("x2", "direct", arguments={"alternate-exchange": "x3"})
        ch.exchange_declare("x1", "direct", arguments={"alternate-exchange": "x2"})
        ch.queue_declare("aeq")
        ch.queue_bind("aeq", "x3")
        ch.basic_publish("x1", "k", b"x")
        assert drain(ch, "aeq") == [b"x"]

    def test_each_exchange_on_the_route_uses_its_own_ae(self, bus, ch):
        # x5 routes to x4 (an exchange binding), x4 routes nowhere: x4's AE is used.
        ch.exchange_declare("x3", "fanout")
        ch.exchange_declare("x4", "direct", arguments={"alternate-exchange": "x3"})
        ch.exchange_declare("x5", "direct", arguments={"alternate-exchange": "x2"})
        ch.exchange_declare("x2", "fanout")
        ch.queue_declare("aeq")
        ch.queue_bind("aeq", "x3")
        ch.queue_declare("x2q")
        ch.queue_bind("x2q", "x2")
        ch.exchange_bind("x4", "x5", "k")
        ch.basic_publish("x5", "k", b"x")
        assert drain(ch, "aeq") == [b"x"]
        assert drain(ch, "x2q") == []

    def test_cc_keys_route_together_the_ae_only_when_none_matched(self, bus, ch):
        # RabbitMQ 3.10 routes a message through an exchange with all its keys at once
        # (routing key + CC + BCC): the alternate exchange takes it only when no key
        # matched, not once per key that matched nothing.
        _ae_catching_into_unrouted(ch)
        ch.exchange_declare("main", "direct", arguments={"alternate-exchange": "ae"})
        ch.queue_declare("q")
        ch.queue_bind("q", "main", "k")
        ch.basic_publish("main", "k", b"cc", P(headers={"CC": ["other"]}))
        ch.basic_publish("main", "other", b"bcc", P(headers={"BCC": ["k"]}))
        ch.basic_publish("main", "x", b"none", P(headers={"CC": ["y"]}))
        assert drain(ch, "q") == [b"cc", b"bcc"]
        assert drain(ch, "unrouted") == [b"none"]

    def test_dead_letter_keys_route_together_the_ae_only_when_none_matched(self, bus, ch):
        _ae_catching_into_unrouted(ch)
        ch.exchange_declare("dlx", "direct", arguments={"alternate-exchange": "ae"})
        ch.queue_declare("dead")
        ch.queue_bind("dead", "dlx", "k")
        ch.queue_declare("work", arguments={"x-dead-letter-exchange": "dlx"})
        ch.basic_publish("", "work", b"m", P(headers={"CC": ["k"]}))
        ch.basic_nack(ch.basic_get("work").delivery_tag, requeue=False)
        assert drain(ch, "dead") == [b"m"]
        assert drain(ch, "unrouted") == []

    def test_missing_alternate_exchange_means_unroutable(self, bus, ch):
        ch.exchange_declare("main", "direct", arguments={"alternate-exchange": "nope"})
        returned = []
        ch.add_on_return_callback(returned.append)
        ch.basic_publish("main", "k", b"x", mandatory=True)
        bus.run_until_idle()
        assert [r.reply_code for r in returned] == [312]

    def test_ae_routing_to_a_queue_is_not_returned(self, bus, ch):
        _ae_catching_into_unrouted(ch)
        ch.exchange_declare("main", "direct", arguments={"alternate-exchange": "ae"})
        returned = []
        ch.add_on_return_callback(returned.append)
        ch.basic_publish("main", "k", b"x", mandatory=True)
        bus.run_until_idle()
        assert returned == []

    def test_mandatory_return(self, bus, ch):
        returned = []
        ch.add_on_return_callback(returned.append)
        ch.basic_publish("amq.direct", "nowhere", b"x", P(message_id="m1"), mandatory=True)
        ch.basic_publish("amq.direct", "nowhere", b"y")  # not mandatory: dropped silently
        bus.run_until_idle()
        (r,) = returned
        assert (r.reply_code, r.reply_text, r.exchange, r.routing_key, r.body) == \
            (312, "NO_ROUTE", "amq.direct", "nowhere", b"x")
        assert r.properties.message_id == "m1"

    def test_confirm_unroutable_mandatory_raises(self, bus, ch):
        ch.confirm_delivery()
        with pytest.raises(UnroutableError) as ei:
            ch.basic_publish("amq.direct", "nowhere", b"x", mandatory=True)
        assert ei.value.messages[0].reply_code == 312
        ch.basic_publish("amq.direct", "nowhere", b"x")  # acked: no error
        ch.queue_declare("q")
        ch.basic_publish("", "q", b"x", mandatory=True)
        assert ch.is_open

    def test_confirm_callback_acks_routed_and_unroutable_return_first(self, bus, ch):
        ch.queue_declare("q")
        events = []
        ch.add_on_return_callback(lambda r: events.append(("return", r.body)))
        ch.confirm_delivery(lambda seq, ok: events.append(("ack" if ok else "nack", seq)))
        ch.basic_publish("", "q", b"a")
        ch.basic_publish("amq.direct", "nowhere", b"b", mandatory=True)
        ch.basic_publish("amq.direct", "nowhere", b"c")
        bus.run_until_idle()
        assert events == [("ack", 1), ("return", b"b"), ("ack", 2), ("ack", 3)]


# --- consumers: single active, priorities ------------------------------------------------------

class TestConsumers:
    def test_single_active_consumer(self, bus, ch):
        ch.queue_declare("q", arguments={"x-single-active-consumer": True})
        got = []
        ta = ch.basic_consume("q", lambda m: got.append(("A", m.body)), auto_ack=True)
        ch.basic_consume("q", lambda m: got.append(("B", m.body)), auto_ack=True)
        for i in range(3):
            ch.basic_publish("", "q", b"%d" % i)
        bus.run_until_idle()
        assert got == [("A", b"0"), ("A", b"1"), ("A", b"2")]
        got.clear()
        ch.basic_cancel(ta)
        ch.basic_publish("", "q", b"3")
        bus.run_until_idle()
        assert got == [("B", b"3")]

    def test_single_active_consumer_keeps_first_despite_priority(self, bus, ch):
        # RabbitMQ 3.10: a later consumer with a higher x-priority does not take over.
        ch.queue_declare("q", arguments={"x-single-active-consumer": True})
        got = []
        ta = ch.basic_consume("q", lambda m: got.append("A"), auto_ack=True)
        ch.basic_consume("q", lambda m: got.append("B"), auto_ack=True,
                         arguments={"x-priority": 10})
        for _ in range(3):
            ch.basic_publish("", "q", b"x")
        bus.run_until_idle()
        assert got == ["A", "A", "A"]
        ch.basic_cancel(ta)
        ch.basic_publish("", "q", b"x")
        bus.run_until_idle()
        assert got[-1] == "B"

    def test_single_active_consumer_without_credit_blocks_others(self, bus, ch):
        ch.queue_declare("q", arguments={"x-single-active-consumer": True})
        ch.basic_qos(prefetch_count=1)
        got = []
        ch.basic_consume("q", lambda m: got.append(("A", m)))
        ch2 = bus.channel()
        ch2.basic_consume("q", lambda m: got.append(("B", m)))
        for i in range(3):
            ch.basic_publish("", "q", b"%d" % i)
        bus.run_until_idle()
        assert [w for w, _ in got] == ["A"]
        assert queue_counts(bus, "q") == (2, 1)
        got[0][1].ack()
        bus.run_until_idle()
        assert [w for w, _ in got] == ["A", "A"]
        ch.close()  # the active consumer's channel closes: B takes over
        bus.run_until_idle()
        assert [w for w, _ in got] == ["A", "A", "B", "B"]
        assert [(m.body, m.redelivered) for _, m in got[2:]] == [(b"1", True), (b"2", False)]

    def test_consumer_priorities_round_robin_within_top_group(self, bus, ch):
        ch.queue_declare("q")
        got = []
        ch.basic_consume("q", lambda m: got.append("H1"), auto_ack=True,
                         arguments={"x-priority": 10})
        ch.basic_consume("q", lambda m: got.append("H2"), auto_ack=True,
                         arguments={"x-priority": 10})
        ch.basic_consume("q", lambda m: got.append("L"), auto_ack=True)
        for _ in range(6):
            ch.basic_publish("", "q", b"x")
        bus.run_until_idle()
        assert got == ["H1", "H2"] * 3

    def test_consumer_priority_falls_back_when_high_has_no_credit(self, bus, ch):
        ch.queue_declare("q")
        ch.basic_qos(prefetch_count=1)
        got = []
        ch.basic_consume("q", lambda m: got.append(("H", m)),
                         arguments={"x-priority": 5})
        ch.basic_consume("q", lambda m: got.append(("L", m)))
        for _ in range(3):
            ch.basic_publish("", "q", b"x")
        bus.run_until_idle()
        assert [w for w, _ in got] == ["H", "L"]
        got[0][1].ack()
        bus.run_until_idle()
        assert [w for w, _ in got] == ["H", "L", "H"]

    def test_negative_consumer_priority(self, bus, ch):
        ch.queue_declare("q")
        got = []
        ch.basic_consume("q", lambda m: got.append("N"), auto_ack=True,
                         arguments={"x-priority": -1})
        ch.basic_consume("q", lambda m: got.append("Z"), auto_ack=True)
        ch.basic_publish("", "q", b"x")
        bus.run_until_idle()
        assert got == ["Z"]

    @pytest.mark.parametrize("prio, typ", [("abc", "longstr"), (True, "bool")])
    def test_invalid_consumer_priority(self, bus, ch, prio, typ):
        ch.queue_declare("q")
        with pytest.raises(PreconditionFailed) as ei:
            ch.basic_consume("q", lambda m: None, arguments={"x-priority": prio})
        assert ei.value.reply_text == (
            "PRECONDITION_FAILED - invalid arg 'x-priority' for queue 'q' in vhost '/': "
            f'"expected integer, got {typ}"')


# --- x-delivery-limit (inbus: a poison-message guard on classic queues) --------------------------

class TestDeliveryLimit:
    def test_dead_lettered_after_limit_returns(self, bus, ch):
        # Quorum-queue semantics (checked on RabbitMQ 3.10 with a quorum queue): with a
        # limit of 1 a message is delivered twice; its second return dead-letters it with
        # reason "delivery_limit". RabbitMQ refuses the argument on classic queues; inbus
        # implements it there (documented difference).
        ch.queue_declare("dead")
        ch.queue_declare("q", arguments={"x-delivery-limit": 1,
                                         "x-dead-letter-exchange": "",
                                         "x-dead-letter-routing-key": "dead"})
        ch.basic_publish("", "q", b"poison")
        deliveries = 0
        while (m := ch.basic_get("q")) is not None:
            deliveries += 1
            m.nack(requeue=True)
            assert deliveries < 10
        assert deliveries == 2
        d = get(ch, "dead")
        assert d.properties.headers["x-death"][0]["reason"] == "delivery_limit"
        assert d.properties.headers["x-first-death-reason"] == "delivery_limit"

    def test_zero_limit_and_drop_without_dlx(self, bus, ch):
        ch.queue_declare("q", arguments={"x-delivery-limit": 0})
        ch.basic_publish("", "q", b"x")
        ch.basic_get("q").reject(requeue=True)
        assert queue_counts(bus, "q") == (0, 0)

    def test_channel_close_counts_as_a_return(self, bus, ch):
        ch.queue_declare("q", arguments={"x-delivery-limit": 1})
        ch.basic_publish("", "q", b"x")
        for _ in range(2):
            c = bus.channel()
            assert c.basic_get("q") is not None
            c.close()
        assert queue_counts(bus, "q") == (0, 0)

    def test_acked_before_limit_is_fine(self, bus, ch):
        ch.queue_declare("q", arguments={"x-delivery-limit": 2})
        ch.basic_publish("", "q", b"x")
        ch.basic_get("q").nack(requeue=True)
        ch.basic_get("q").nack(requeue=True)
        m = ch.basic_get("q")
        assert m.redelivered
        m.ack()
        assert queue_counts(bus, "q") == (0, 0)

    def test_consumer_poison_message_stops(self, bus, ch):
        ch.queue_declare("q", arguments={"x-delivery-limit": 3})
        seen = []
        ch.basic_consume("q", lambda m: (seen.append(m.body), m.nack(requeue=True)))
        ch.basic_publish("", "q", b"poison")
        bus.run_until_idle()
        assert seen == [b"poison"] * 4
        assert queue_counts(bus, "q") == (0, 0)

    def test_poison_message_dropped_on_requeue_frees_credit(self, bus, ch):
        # The consumer's credit comes back with the dropped message: what waits behind it
        # is delivered (it stayed ready, with a consumer that had credit, before).
        ch.queue_declare("q", arguments={"x-delivery-limit": 0})
        ch.basic_qos(prefetch_count=1)
        seen = []
        ch.basic_consume("q", lambda m: (seen.append(m.body), m.nack(requeue=True)
                                         if m.body == b"poison" else m.ack()))
        ch.basic_publish("", "q", b"poison")
        ch.basic_publish("", "q", b"next")
        bus.run_until_idle()
        assert seen == [b"poison", b"next"]
        assert queue_counts(bus, "q") == (0, 0)
        bus._check()


def test_expired_message_requeued_frees_credit(bus, ch, clock):
    # nack(requeue) of a message that expired meanwhile drops it, and the credit it held
    # goes to what is ready behind it (no stall until the next publish).
    ch.queue_declare("q")
    ch.basic_qos(prefetch_count=1)
    got = []
    ch.basic_consume("q", got.append)
    ch.basic_publish("", "q", b"a", BasicProperties(expiration="1000"))
    ch.basic_publish("", "q", b"b")
    bus.run_until_idle()
    clock.advance(2)
    got[0].nack(requeue=True)
    bus.run_until_idle()
    assert [m.body for m in got] == [b"a", b"b"]
    assert queue_counts(bus, "q") == (0, 1)
    bus._check()


# --- argument validation ------------------------------------------------------------------------

def _bad(name, key, why):
    return f"PRECONDITION_FAILED - invalid arg '{key}' for queue '{name}' in vhost '/': {why}"


@pytest.mark.parametrize("args, text", [
    ({"x-max-length": "abc"}, _bad("q", "x-max-length", '"expected integer, got longstr"')),
    ({"x-max-length": True}, _bad("q", "x-max-length", '"expected integer, got bool"')),
    ({"x-max-length": -1}, _bad("q", "x-max-length", "{value_negative,-1}")),
    ({"x-max-length-bytes": -1}, _bad("q", "x-max-length-bytes", "{value_negative,-1}")),
    ({"x-message-ttl": -1}, _bad("q", "x-message-ttl", "{value_negative,-1}")),
    ({"x-message-ttl": "100"}, _bad("q", "x-message-ttl", '"expected integer, got longstr"')),
    ({"x-max-priority": 256}, _bad("q", "x-max-priority", "{max_value_exceeded,256}")),
    ({"x-max-priority": -1}, _bad("q", "x-max-priority", "{value_negative,-1}")),
    ({"x-max-priority": "5"}, _bad("q", "x-max-priority", '"expected integer, got longstr"')),
    ({"x-expires": 0}, _bad("q", "x-expires", "{value_zero,0}")),
    ({"x-expires": -5}, _bad("q", "x-expires", "{value_negative,-5}")),
    ({"x-expires": "5"}, _bad("q", "x-expires", '"expected integer, got longstr"')),
    ({"x-overflow": "bogus"}, _bad("q", "x-overflow", "invalid_overflow")),
    ({"x-overflow": 5}, _bad("q", "x-overflow", "{unacceptable_type,signedint}")),
    ({"x-dead-letter-exchange": 5},
     "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in "
     "queue 'q' in vhost '/'"),
    ({"x-dead-letter-routing-key": "k"},
     _bad("q", "x-dead-letter-routing-key", "routing_key_but_no_dlx_defined")),
    ({"x-single-active-consumer": 1},
     _bad("q", "x-single-active-consumer", "{unacceptable_type,signedint}")),
    ({"x-single-active-consumer": "true"},
     _bad("q", "x-single-active-consumer", "{unacceptable_type,longstr}")),
    ({"x-queue-mode": "bogus"}, _bad("q", "x-queue-mode", "\"unsupported queue mode 'bogus'\"")),
    ({"x-queue-version": 3}, _bad("q", "x-queue-version", "\"unsupported queue version '3'\"")),
    ({"x-delivery-limit": -1}, _bad("q", "x-delivery-limit", "{value_negative,-1}")),
])
def test_invalid_queue_arguments(args, text):
    with Bus(clock=ManualClock()) as bus:
        ch = bus.channel()
        with pytest.raises(PreconditionFailed) as ei:
            ch.queue_declare("q", arguments=args)
        assert ei.value.reply_code == 406
        assert ei.value.reply_text == text
        assert ch.is_closed
        with pytest.raises(ChannelClosed):
            ch.queue_declare("q2")
        assert "q" not in bus.statistics().vhosts["/"].queues


@pytest.mark.parametrize("args", [
    {"x-message-ttl": 0}, {"x-max-priority": 0}, {"x-max-priority": 255},
    {"x-max-length": 0}, {"x-message-ttl": 2**33}, {"x-expires": 2**33},
    {"x-dead-letter-exchange": "not-declared-yet"}, {"x-queue-mode": "lazy"},
    {"x-queue-version": 2},
])
def test_valid_queue_arguments(args):
    with Bus(clock=ManualClock()) as bus:
        bus.channel().queue_declare("q", arguments=args)


# --- the real clock: the timer thread -----------------------------------------------------------

def _timer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "inbus-timer" and t.is_alive()]


def test_real_clock_ttl_expires_on_its_own_and_close_joins_the_timer():
    before = len(_timer_threads())
    bus = Bus()
    try:
        ch = bus.channel()
        ch.exchange_declare("dlx", "fanout")
        ch.queue_declare("dead")
        ch.queue_bind("dead", "dlx")
        ch.queue_declare("w", arguments={"x-message-ttl": 50,
                                         "x-dead-letter-exchange": "dlx"})
        got = []
        ev = threading.Event()
        ch2 = bus.channel(background=True)
        ch2.basic_consume("dead", lambda m: (got.append(m.body), ev.set()), auto_ack=True)
        t0 = time.monotonic()
        ch.basic_publish("", "w", b"x")
        # Nobody touches the queue: the timer thread must expire it.
        assert ev.wait(5.0), "the TTL'd message never expired on its own"
        assert time.monotonic() - t0 >= 0.045
        assert got == [b"x"]
        assert len(_timer_threads()) == before + 1
    finally:
        bus.close()
    assert len(_timer_threads()) == before
    assert not [t for t in threading.enumerate() if re.fullmatch(r"inbus-c\d+-ch\d+", t.name)]


@pytest.mark.parametrize("how", ["get", "consume", "drop-head"])
def test_real_clock_ttl_of_a_new_head_expires_on_its_own(how):
    """The timer watches queue heads: when the head goes (fetched, delivered, dropped for
    overflow), it learns the deadline of the message behind it, which expires on its own
    (RabbitMQ 3.10 dead-letters b in all three cases)."""
    bus = Bus()
    try:
        ch = bus.channel()
        args: dict = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead"}
        if how == "drop-head":
            args["x-max-length"] = 2
        ch.queue_declare("w", arguments=args)
        ch.queue_declare("dead")
        ev = threading.Event()
        ch2 = bus.channel(background=True)
        ch2.basic_consume("dead", lambda m: m.body == b"b" and ev.set(), auto_ack=True)
        ch.basic_publish("", "w", b"a")
        ch.basic_publish("", "w", b"b", BasicProperties(expiration="50"))
        time.sleep(0.02)  # the timer thread looks at the heads: none expires (a is first)
        if how == "get":
            assert ch.basic_get("w", auto_ack=True).body == b"a"
        elif how == "consume":
            ch3 = bus.channel()
            ch3.basic_qos(prefetch_count=1)
            ch3.basic_consume("w", lambda m: None)
        else:
            ch.basic_publish("", "w", b"c")  # drops a: b is the head
        assert ev.wait(5.0), "the new head's TTL never expired on its own"
    finally:
        bus.close()


def test_real_clock_x_expires_on_its_own():
    with Bus() as bus:
        ch = bus.channel()
        ch.queue_declare("q", arguments={"x-expires": 50})
        deadline = time.monotonic() + 5
        while "q" in bus.statistics().vhosts["/"].queues:
            assert time.monotonic() < deadline, "x-expires never fired"
            time.sleep(0.01)


def test_requeue_over_max_length_drops_from_the_head():
    # RabbitMQ: a requeue that takes the queue over x-max-length drops from the head
    # (the requeued message, back at its original position, goes first).
    with Bus(clock=ManualClock()) as bus:
        ch = bus.channel()
        ch.exchange_declare("dlx", "fanout")
        ch.queue_declare("dead")
        ch.queue_bind("dead", "dlx")
        ch.queue_declare("q", arguments={"x-max-length": 2, "x-dead-letter-exchange": "dlx"})
        ch.basic_publish("", "q", b"1")
        m = ch.basic_get("q")
        ch.basic_publish("", "q", b"2")
        ch.basic_publish("", "q", b"3")
        m.nack(requeue=True)
        assert drain(ch, "q") == [b"2", b"3"]
        d = get(ch, "dead")
        assert d.body == b"1"
        assert d.properties.headers["x-death"][0]["reason"] == "maxlen"


def test_requeue_over_max_length_reject_publish_keeps_all():
    with Bus(clock=ManualClock()) as bus:
        ch = bus.channel()
        ch.queue_declare("q", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        ch.basic_publish("", "q", b"1")
        m = ch.basic_get("q")
        ch.basic_publish("", "q", b"2")
        m.nack(requeue=True)
        assert drain(ch, "q") == [b"1", b"2"]


def test_basic_get_message_count_excludes_expired_new_head():
    # RabbitMQ drops expired messages at the head right after a fetch, so the count
    # basic_get reports does not include them.
    with Bus(clock=ManualClock()) as bus:
        ch = bus.channel()
        clock = bus._clock
        ch.queue_declare("q")
        ch.basic_publish("", "q", b"live")
        ch.basic_publish("", "q", b"short", P(expiration="50"))
        clock.advance(0.2)
        m = ch.basic_get("q", auto_ack=True)
        assert (m.body, m.message_count) == (b"live", 0)


def test_single_active_consumer_next_is_highest_priority():
    # RabbitMQ 3.10: A (0), B (0), C (10), D (5): A is active (first); when A goes, C
    # (highest priority) takes over; when C goes, D.
    with Bus(clock=ManualClock()) as bus:
        ch = bus.channel()
        ch.queue_declare("q", arguments={"x-single-active-consumer": True})
        got: list[str] = []
        for tag, prio in (("A", 0), ("B", 0), ("C", 10), ("D", 5)):
            ch.basic_consume("q", lambda m, t=tag: got.append(t), auto_ack=True,
                             consumer_tag=tag, arguments={"x-priority": prio})
        for cancel in (None, "A", "C"):
            if cancel:
                ch.basic_cancel(cancel)
            ch.basic_publish("", "q", b"x")
            bus.run_until_idle()
        assert got == ["A", "C", "D"]


def test_message_published_without_properties_has_read_only_empty_properties():
    with Bus(clock=ManualClock()) as bus:
        ch = bus.channel()
        ch.queue_declare("q")
        ch.basic_publish("", "q", b"x")
        m = get(ch, "q")
        p = m.properties
        assert isinstance(p, BasicProperties) and p == BasicProperties()
        assert p.headers is None and p.to_dict() == {}
        with pytest.raises(AttributeError):
            p.headers = {"a": 1}
        q = p.copy(headers={"a": 1})
        q.priority = 3
        assert (q.headers, q.priority) == ({"a": 1}, 3)
        ch.basic_publish("", "q", b"y")
        assert get(ch, "q").properties.headers is None


def test_real_clock_expires_behind_a_consumer_without_credit():
    # The message waits because the only consumer is at its prefetch limit; the timer
    # must still expire (dead-letter) it on time.
    with Bus() as bus:
        ch = bus.channel()
        ch.exchange_declare("dlx", "fanout")
        ch.queue_declare("dead")
        ch.queue_bind("dead", "dlx")
        ch.queue_declare("w", arguments={"x-message-ttl": 50,
                                         "x-dead-letter-exchange": "dlx"})
        ch.basic_qos(prefetch_count=1)
        held = []
        ch.basic_consume("w", held.append)
        ch.basic_publish("", "w", b"first")
        bus.run_until_idle()
        assert [m.body for m in held] == [b"first"]
        ch.basic_publish("", "w", b"second")
        deadline = time.monotonic() + 5
        while True:  # read the queue without statistics(), which would expire lazily
            with bus._lock:
                if bus._vhosts["/"].queues["dead"].ready_count:
                    break
            assert time.monotonic() < deadline, "the waiting message never expired"
            time.sleep(0.01)
        assert queue_counts(bus, "w") == (0, 1)
        held[0].ack()
