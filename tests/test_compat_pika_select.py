"""inbus.compat.pika's asynchronous adapters: SelectConnection (and its IOLoop),
AsyncioConnection and pika's asynchronous Channel. The orders asserted here are what pika
1.4 + RabbitMQ 3.10 showed (tests/diff/test_pika_select_diff.py compares them live)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import inbus.compat.pika as pika
from inbus.testing import queue_counts

pytestmark = pytest.mark.timeout(60)

Log = list[Any]


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    pika.reset()
    yield
    pika.reset()


def run(setup: Callable[[Any, Log], Any], timeout: float = 5.0,
        params: Any = None) -> Log:
    """Open a SelectConnection, call ``setup(conn, log)`` once it is open, run the loop
    until the connection closes (its close is logged) or ``timeout``."""
    log: Log = []

    def closed(conn: Any, reason: Any) -> None:
        log.append(("conn-closed", type(reason).__name__, reason.reply_code,
                    reason.reply_text))
        conn.ioloop.stop()

    conn = pika.SelectConnection(params or pika.ConnectionParameters(),
                                 on_open_callback=lambda c: setup(c, log),
                                 on_close_callback=closed)
    guard = conn.ioloop.call_later(timeout, conn.ioloop.stop)
    conn.ioloop.start()
    conn.ioloop.remove_timeout(guard)
    assert conn.is_closed, f"the connection did not close within {timeout}s: {log}"
    return log


def on_channel(body: Callable[[Any, Any, Log], Any]) -> Callable[[Any, Log], Any]:
    """A setup that opens a channel, logs its close, then runs ``body(conn, ch, log)``."""
    def setup(conn: Any, log: Log) -> None:
        def opened(ch: Any) -> None:
            ch.add_on_close_callback(lambda c, r: log.append(
                ("ch-closed", c.channel_number, type(r).__name__, r.reply_code,
                 r.reply_text)))
            body(conn, ch, log)
        conn.channel(on_open_callback=opened)
    return setup


def closer(conn: Any) -> Callable[..., None]:
    return lambda *_a: conn.close()


# --------------------------------------------------------------------------- order


def test_replies_deliveries_and_returns_come_in_pikas_order() -> None:
    def body(conn: Any, ch: Any, log: Log) -> None:
        ch.add_on_return_callback(lambda c, m, p, b: log.append(
            ("return", m.reply_code, m.reply_text, m.routing_key, b)))
        ch.queue_declare("q", exclusive=True, callback=lambda f: log.append(
            ("declareok", f.channel_number, f.method.queue, f.method.message_count,
             f.method.consumer_count)))
        ch.basic_qos(prefetch_count=1, callback=lambda f: log.append(("qosok",)))
        # publishes are not queued behind the synchronous methods (pika sends them at once)
        ch.basic_publish("", "q", b"m1", pika.BasicProperties(headers={"h": 1}))
        ch.basic_publish("", "q", b"m2")
        ch.basic_publish("", "nowhere", b"r", mandatory=True)

        def on_msg(c: Any, m: Any, p: Any, b: bytes) -> None:
            assert c is ch and type(p) is pika.BasicProperties
            log.append(("msg", type(m).__name__, m.consumer_tag, m.delivery_tag,
                        m.redelivered, m.exchange, m.routing_key, p.headers, b))
            c.basic_ack(m.delivery_tag)
            if b == b"m2":
                conn.close()
        tag = ch.basic_consume("q", on_msg, consumer_tag="c1",
                               callback=lambda f: log.append(("consumeok",
                                                              f.method.consumer_tag)))
        log.append(("tag", tag))
    log = run(on_channel(body))
    assert log == [
        ("tag", "c1"),
        ("declareok", 1, "q", 0, 0),
        ("return", 312, "NO_ROUTE", "nowhere", b"r"),
        ("qosok",),
        ("consumeok", "c1"),
        ("msg", "Deliver", "c1", 1, False, "", "q", {"h": 1}, b"m1"),
        ("msg", "Deliver", "c1", 2, False, "", "q", None, b"m2"),
        ("ch-closed", 1, "ChannelClosedByClient", 200, "Normal shutdown"),
        ("conn-closed", "ConnectionClosedByClient", 200, "Normal shutdown"),
    ]


def test_channel_is_opening_until_its_open_callback() -> None:
    def setup(conn: Any, log: Log) -> None:
        ch = conn.channel(on_open_callback=lambda c: (log.append(("open", c.is_open)),
                                                       conn.close()))
        log.append((ch.channel_number, ch.is_opening, ch.is_open, int(ch)))
        with pytest.raises(pika.exceptions.ChannelWrongStateError, match="opening"):
            ch.queue_declare("q", callback=lambda f: None)
        log.append(("second", conn.channel().channel_number))
    log = run(setup)
    assert log[:3] == [(1, True, False, 1), ("second", 2), ("open", True)]
    assert log[-1][0] == "conn-closed"


def test_server_named_queue_and_nowait_methods() -> None:
    def body(conn: Any, ch: Any, log: Log) -> None:
        ch.queue_declare("", exclusive=True, callback=lambda f: log.append(f.method.queue))
        ch.exchange_declare("x", "fanout")            # no callback: nowait, no reply
        ch.queue_declare("q2")
        ch.queue_bind("q2", "x", callback=lambda f: log.append(repr(f.method)))
        ch.queue_purge("q2", callback=lambda f: log.append(f.method.message_count))
        ch.queue_delete("q2", callback=lambda f: (log.append(repr(f.method)), conn.close()))
    log = run(on_channel(body))
    assert log[0].startswith("amq.gen-") and len(log[0]) == 30
    assert log[1:4] == ["<Queue.BindOk>", 0, "<Queue.DeleteOk(['message_count=0'])>"]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("op, code, text", [
    (lambda ch: ch.exchange_declare("nope", passive=True, callback=lambda f: None),
     404, "NOT_FOUND - no exchange 'nope' in vhost '/'"),
    (lambda ch: ch.queue_declare("amq.q", callback=lambda f: None),
     403, "ACCESS_REFUSED - queue name 'amq.q' contains reserved prefix 'amq.*'"),
    (lambda ch: ch.basic_ack(99), 406, "PRECONDITION_FAILED - unknown delivery tag 99"),
    (lambda ch: ch.basic_publish("nope", "k", b"x"), 404,
     "NOT_FOUND - no exchange 'nope' in vhost '/'"),
])
def test_channel_errors_close_the_channel_asynchronously(op: Any, code: int,
                                                         text: str) -> None:
    def body(conn: Any, ch: Any, log: Log) -> None:
        ch.add_on_close_callback(lambda c, r: conn.close())
        op(ch)
        log.append(("after", ch.is_open))          # not closed yet: the close is read later
        ch.queue_declare("never", callback=lambda f: log.append("never"))
        ch.basic_publish("", "never", b"dropped")  # the broker drops what follows
    log = run(on_channel(body))
    assert log == [("after", True), ("ch-closed", 1, "ChannelClosedByBroker", code, text),
                   ("conn-closed", "ConnectionClosedByClient", 200, "Normal shutdown")]


def test_a_closed_channel_refuses_calls_and_redeclare_is_406() -> None:
    def body(conn: Any, ch: Any, log: Log) -> None:
        ch.queue_declare("q", callback=lambda f: None)
        ch.queue_declare("q", durable=True, callback=lambda f: log.append("never"))

        def after(c: Any, r: Any) -> None:
            with pytest.raises(pika.exceptions.ChannelWrongStateError, match="closed"):
                c.basic_publish("", "q", b"x")
            log.append(("closed", c.is_closed))
            conn.close()
        ch.add_on_close_callback(after)
    log = run(on_channel(body))
    assert log[0] == ("ch-closed", 1, "ChannelClosedByBroker", 406,
                      "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in "
                      "vhost '/': received 'true' but current is 'false'")
    assert log[1] == ("closed", True)


def test_exclusive_queue_of_another_connection_is_405() -> None:
    other = pika.BlockingConnection()
    other.channel().queue_declare("mine", exclusive=True)

    def body(conn: Any, ch: Any, log: Log) -> None:
        ch.add_on_close_callback(closer(conn))
        ch.queue_declare("mine", passive=True, callback=lambda f: log.append("never"))
    log = run(on_channel(body))
    assert log[0][:4] == ("ch-closed", 1, "ChannelClosedByBroker", 405)
    assert "RESOURCE_LOCKED" in log[0][4]


def test_connection_error_closes_every_channel_then_the_connection() -> None:
    def setup(conn: Any, log: Log) -> None:
        def first(ch: Any) -> None:
            ch.add_on_close_callback(lambda c, r: log.append(("ch1", type(r).__name__,
                                                              r.reply_code)))
            ch.queue_declare("q", callback=lambda f: log.append("declareok"))
            ch.basic_qos(prefetch_size=1, callback=lambda f: log.append("never"))
        conn.channel(on_open_callback=first)
        conn.channel(on_open_callback=lambda ch: ch.add_on_close_callback(
            lambda c, r: log.append(("ch2", type(r).__name__, r.reply_code))))
    log = run(setup)
    assert log == ["declareok", ("ch1", "ConnectionClosedByBroker", 540),
                   ("ch2", "ConnectionClosedByBroker", 540),
                   ("conn-closed", "ConnectionClosedByBroker", 540,
                    "NOT_IMPLEMENTED - prefetch_size!=0 (1)")]


def test_missing_vhost_is_an_open_error() -> None:
    got: Log = []
    conn = pika.SelectConnection(
        pika.ConnectionParameters(virtual_host="nope"),
        on_open_callback=lambda c: got.append("opened?"),
        on_open_error_callback=lambda c, e: (got.append((type(e).__name__, e.args)),
                                             c.ioloop.stop()))
    conn.ioloop.start()
    assert got == [("ProbableAccessDeniedError",
                    ("ConnectionClosedByBroker: (530) 'NOT_ALLOWED - vhost nope not found'",))]
    assert conn.is_closed
    # without an open-error callback, pika's default raises it out of the loop
    conn = pika.SelectConnection(pika.ConnectionParameters(virtual_host="nope"))
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        conn.ioloop.start()


def test_bus_close_is_a_320_connection_forced() -> None:
    def body(conn: Any, ch: Any, log: Log) -> None:
        threading.Thread(target=pika.get_bus().close).start()
    log = run(on_channel(body))
    text = "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
    assert log == [("ch-closed", 1, "ConnectionClosedByBroker", 320, text),
                   ("conn-closed", "ConnectionClosedByBroker", 320, text)]


# --------------------------------------------------------------------------- confirms


def test_confirms_number_publishes_and_returns_come_before_their_ack() -> None:
    def body(conn: Any, ch: Any, log: Log) -> None:
        ch.add_on_return_callback(lambda c, m, p, b: log.append(("return", b)))

        def confirmed(f: Any) -> None:
            log.append((type(f).__name__, f.method.NAME, f.method.delivery_tag,
                        f.method.multiple))
            if f.method.delivery_tag == 4:
                conn.close()
        ch.confirm_delivery(confirmed, callback=lambda f: log.append(f.method.NAME))
        ch.queue_declare("full", arguments={"x-max-length": 1,
                                            "x-overflow": "reject-publish"},
                         callback=lambda f: [ch.basic_publish("", k, b) for k, b in (
                             ("full", b"1"), ("full", b"2"), ("nowhere", b"3"),
                             ("full", b"4"))])
        ch.basic_publish("", "nowhere", b"0", mandatory=True)
    log = run(on_channel(body))
    assert log[:3] == ["Confirm.SelectOk", ("return", b"0"),
                       ("Method", "Basic.Ack", 1, False)]
    assert log[3:7] == [("Method", "Basic.Ack", 2, False), ("Method", "Basic.Nack", 3, False),
                        ("Method", "Basic.Ack", 4, False), ("Method", "Basic.Nack", 5, False)]


def test_confirm_delivery_needs_an_ack_nack_callback() -> None:
    def body(conn: Any, ch: Any, log: Log) -> None:
        with pytest.raises(ValueError, match="requires a callback"):
            ch.confirm_delivery(None)
        log.append("checked")
        conn.close()
    assert run(on_channel(body))[0] == "checked"


def test_flow_true_is_accepted_and_false_is_rabbitmqs_540() -> None:
    def body(conn: Any, ch: Any, log: Log) -> None:
        def flowed(active: Any) -> None:
            log.append(("flow-ok", active, ch.flow_active))
            ch.flow(False, callback=lambda a: log.append(("never", a)))
        ch.flow(True, callback=flowed)
    text = "NOT_IMPLEMENTED - active=false"
    assert run(on_channel(body)) == [
        ("flow-ok", True, True),
        ("ch-closed", 1, "ConnectionClosedByBroker", 540, text),
        ("conn-closed", "ConnectionClosedByBroker", 540, text)]


# --------------------------------------------------------------------------- consumers


def test_prefetch_limits_unacked_deliveries() -> None:
    def body(conn: Any, ch: Any, log: Log) -> None:
        ch.queue_declare("q", callback=lambda f: None)
        for i in range(5):
            ch.basic_publish("", "q", str(i).encode())
        ch.basic_qos(prefetch_count=2, callback=lambda f: None)
        ch.basic_consume("q", lambda c, m, p, b: log.append(b))
        conn.ioloop.call_later(0.1, conn.close)
    log = run(on_channel(body))
    assert log[:2] == [b"0", b"1"] and log[2][0] == "ch-closed"
    assert queue_counts(pika.get_bus(), "q") == (5, 0)  # the two unacked went back


def test_basic_cancel_and_the_broker_cancelling_a_consumer() -> None:
    def body(conn: Any, ch: Any, log: Log) -> None:
        ch.add_on_cancel_callback(lambda f: (
            log.append(("cancelled", type(f).__name__, f.method.NAME,
                        f.method.consumer_tag, ch.consumer_tags)), conn.close()))
        ch.queue_declare("q1", callback=lambda f: None)
        ch.queue_declare("q2", callback=lambda f: None)
        t1 = ch.basic_consume("q1", lambda *a: None)
        ch.basic_consume("q2", lambda *a: None, consumer_tag="c2")
        log.append((t1.startswith("ctag1."), len(t1)))
        with pytest.raises(pika.exceptions.DuplicateConsumerTag):
            ch.basic_consume("q2", lambda *a: None, consumer_tag="c2")

        def cancelled(f: Any) -> None:
            log.append(("cancelok", f.method.consumer_tag == t1, t1 in ch.consumer_tags))
            ch.queue_delete("q2")  # the broker cancels c2
        ch.basic_cancel(t1, callback=cancelled)
    log = run(on_channel(body))
    assert log[:3] == [(True, 38), ("cancelok", True, True),
                       ("cancelled", "Method", "Basic.Cancel", "c2", [])]


def test_deliveries_for_a_cancelled_consumer_are_not_dispatched() -> None:
    def body(conn: Any, ch: Any, log: Log) -> None:
        ch.queue_declare("q", callback=lambda f: None)
        for b in (b"a", b"b", b"c"):
            ch.basic_publish("", "q", b)

        def on_msg(c: Any, m: Any, p: Any, b: bytes) -> None:
            log.append(b)
            c.basic_cancel(m.consumer_tag)       # the others are not dispatched
            conn.ioloop.call_later(0.05, conn.close)
        ch.basic_consume("q", on_msg)
    log = run(on_channel(body))
    assert log[0] == b"a" and b"b" not in log
    assert queue_counts(pika.get_bus(), "q") == (3, 0)


def test_basic_get_and_get_empty() -> None:
    def body(conn: Any, ch: Any, log: Log) -> None:
        ch.add_callback(lambda f: (log.append(f.method.NAME), conn.close()),
                        [pika.spec.Basic.GetEmpty])
        ch.queue_declare("q", callback=lambda f: None)
        ch.basic_publish("", "q", b"x")

        def got(c: Any, m: Any, p: Any, b: bytes) -> None:
            log.append((m.NAME, m.delivery_tag, m.message_count, b))
            c.basic_get("q", lambda *a: log.append("never"))
        ch.basic_get("q", got, auto_ack=True)
        with pytest.raises(pika.exceptions.DuplicateGetOkCallback):
            ch.basic_get("q", got)
    log = run(on_channel(body))
    assert log[:2] == [("Basic.GetOk", 1, 0, b"x"), "Basic.GetEmpty"]


def test_basic_get_is_sent_whatever_the_channels_state() -> None:
    """pika's basic_get does not check the channel's state (found by the differential
    fuzzer): on a closed channel the Basic.Get reaches a channel number RabbitMQ has
    freed, its connection error 504; the get callback stays pending (DuplicateGetOk);
    on a closing channel whose Close waits behind a declare, the get overtakes it; one
    sent after the Close is ignored."""
    def closed_channel(conn: Any, ch: Any, log: Log) -> None:
        def on_closed(c: Any, r: Any) -> None:
            c.basic_get("q", lambda *a: log.append("never"))
            with pytest.raises(pika.exceptions.DuplicateGetOkCallback):
                c.basic_get("q", lambda *a: log.append("never"))
            log.append("sent")
        ch.add_on_close_callback(on_closed)
        ch.close()
    assert run(on_channel(closed_channel)) == [
        ("ch-closed", 1, "ChannelClosedByClient", 0, "Normal shutdown"), "sent",
        ("conn-closed", "ConnectionClosedByBroker", 504,
         "CHANNEL_ERROR - expected 'channel.open'")]

    def closing_channel(conn: Any, ch: Any, log: Log) -> None:
        ch.queue_declare("q", callback=lambda f: log.append("declared"))
        ch.basic_publish("", "q", b"x")
        ch.close()
        ch.basic_get("q", lambda c, m, p, b: log.append(("got", b, c.is_closing)))
        conn.ioloop.call_later(0.05, conn.close)
    assert run(on_channel(closing_channel)) == [
        "declared", ("got", b"x", True),
        ("ch-closed", 1, "ChannelClosedByClient", 0, "Normal shutdown"),
        ("conn-closed", "ConnectionClosedByClient", 200, "Normal shutdown")]

    def close_sent(conn: Any, ch: Any, log: Log) -> None:   # (the broker ignores it)
        ch.close()
        ch.basic_get("q", lambda *a: log.append("never"))
        conn.ioloop.call_later(0.05, conn.close)
    assert run(on_channel(close_sent)) == [
        ("ch-closed", 1, "ChannelClosedByClient", 0, "Normal shutdown"),
        ("conn-closed", "ConnectionClosedByClient", 200, "Normal shutdown")]

    log: Log = []
    conn = pika.SelectConnection(pika.ConnectionParameters(), on_open_callback=lambda c: (
        c.channel(on_open_callback=lambda ch: (log.append(ch), c.close()))),
        on_close_callback=lambda c, r: c.ioloop.stop())
    guard = conn.ioloop.call_later(5, conn.ioloop.stop)
    conn.ioloop.start()
    conn.ioloop.remove_timeout(guard)
    with pytest.raises(pika.exceptions.ConnectionWrongStateError,
                       match="Attempted to send a frame on closed connection"):
        log[0].basic_get("q", lambda *a: None)


def test_the_504_of_a_freed_channel_comes_after_what_was_sent_with_it() -> None:
    """RabbitMQ raises the 504 of a frame on a freed channel number in a channel process
    of its own: the methods sent right after it are still answered (fuzzer-found)."""
    def body(conn: Any, ch: Any, log: Log) -> None:
        def opened2(ch2: Any) -> None:
            ch2.add_on_return_callback(lambda *a: log.append("return"))
            ch2.add_on_close_callback(lambda c, r: log.append(("ch2-closed", r.reply_code)))

            def on_closed(c: Any, r: Any) -> None:
                c.basic_get("nope", lambda *a: log.append("never"))
                ch2.queue_declare("q2", callback=lambda f: log.append("declareok"))
                ch2.basic_publish("", "nowhere", b"x", mandatory=True)
            ch.add_on_close_callback(on_closed)
            ch.queue_declare("nope", passive=True, callback=lambda f: log.append("never"))
        conn.channel(on_open_callback=opened2)
    assert run(on_channel(body)) == [
        ("ch-closed", 1, "ChannelClosedByBroker", 404,
         "NOT_FOUND - no queue 'nope' in vhost '/'"),
        "declareok", "return", ("ch2-closed", 504),
        ("conn-closed", "ConnectionClosedByBroker", 504,
         "CHANNEL_ERROR - expected 'channel.open'")]


def test_a_deleted_queues_consumers_are_cancelled_in_tag_order() -> None:
    """RabbitMQ's channel cancels a deleted queue's consumers in the order of their tags
    (as bytes), not in the queue's round-robin order (found by the differential fuzzer)."""
    def body(conn: Any, ch: Any, log: Log) -> None:
        ch.add_on_cancel_callback(lambda f: log.append(f.method.consumer_tag))

        def declared(_f: Any) -> None:
            for tag in ("c9", "b", "c10", "a"):
                ch.basic_consume("q", lambda c, m, p, b: c.basic_ack(m.delivery_tag),
                                 consumer_tag=tag)
            for _ in range(3):   # (the round robin moves on)
                ch.basic_publish("", "q", b"x")
            conn.ioloop.call_later(0.05, lambda: conn.channel(
                on_open_callback=lambda c2: c2.queue_delete("q", callback=closer(conn))))
        ch.queue_declare("q", callback=declared)
    log = run(on_channel(body))
    assert log[:4] == ["a", "b", "c10", "c9"], log


def test_a_cancelled_consumers_deliveries_come_back_when_read() -> None:
    """What was delivered to a consumer before its cancel was processed is on the wire:
    pika rejects it (requeue) as it reads it, so a get sent right after the cancel finds
    the queue empty, and one sent later finds the message back, redelivered (found by
    the differential fuzzer: the cancel used to put them back at once)."""
    def body(conn: Any, ch: Any, log: Log) -> None:
        def on_empty(_f: Any) -> None:
            log.append("getempty")
            ch.basic_get("q", lambda c, m, p, b: (log.append(("getok", b, m.redelivered)),
                                                  conn.close()))
        ch.add_callback(on_empty, [pika.spec.Basic.GetEmpty])

        def on_msg(c: Any, m: Any, p: Any, b: bytes) -> None:
            log.append(("deliver", b, m.redelivered))
            c.basic_ack(m.delivery_tag)
            c.basic_cancel(m.consumer_tag, callback=lambda f: log.append("cancelok"))
            c.basic_get("q", lambda *a: log.append("never"))

        def declared(_f: Any) -> None:
            ch.basic_publish("", "q", b"m1")
            ch.basic_publish("", "q", b"m2")
            ch.basic_consume("q", on_msg)
        ch.queue_declare("q", callback=declared)
    log = run(on_channel(body))
    assert [e for e in log if e != "cancelok"][:3] == [
        ("deliver", b"m1", False), "getempty", ("getok", b"m2", True)], log
    assert "cancelok" in log


def test_recover_redelivers_and_nack_requeues() -> None:
    def body(conn: Any, ch: Any, log: Log) -> None:
        ch.queue_declare("q", callback=lambda f: None)
        ch.basic_publish("", "q", b"x")

        def on_msg(c: Any, m: Any, p: Any, b: bytes) -> None:
            log.append((m.delivery_tag, m.redelivered))
            if m.delivery_tag == 1:
                c.basic_recover(requeue=True, callback=lambda f: log.append(f.method.NAME))
            elif m.delivery_tag == 2:
                c.basic_nack(m.delivery_tag)
            else:
                c.basic_ack(m.delivery_tag)
                conn.close()
        ch.basic_consume("q", on_msg)
    log = run(on_channel(body))
    assert log[:4] == [(1, False), "Basic.RecoverOk", (2, True), (3, True)]


def test_transactions_hold_publishes_and_acks_until_commit() -> None:
    def body(conn: Any, ch: Any, log: Log) -> None:
        def count(tag: str, then: Callable[[], Any]) -> None:
            ch.queue_declare("q", passive=True, callback=lambda f: (
                log.append((tag, f.method.message_count)), then()))

        def rolled_back(f: Any) -> None:
            log.append(f.method.NAME)
            count("after rollback", lambda: ch.tx_commit(callback=lambda f: (
                log.append("empty commit"), conn.close())))

        def committed(f: Any) -> None:
            log.append(f.method.NAME)
            count("after commit", lambda: (ch.basic_publish("", "q", b"dropped"),
                                           ch.tx_rollback(callback=rolled_back)))

        def selected(f: Any) -> None:
            log.append(f.method.NAME)
            ch.basic_publish("", "q", b"held")
            count("held", lambda: ch.tx_commit(callback=committed))
        ch.queue_declare("q", callback=lambda f: ch.tx_select(callback=selected))
    log = run(on_channel(body))
    assert log[:7] == ["Tx.SelectOk", ("held", 0), "Tx.CommitOk", ("after commit", 1),
                       "Tx.RollbackOk", ("after rollback", 1), "empty commit"]


def test_tx_commit_without_select_closes_the_channel_406() -> None:
    def body(conn: Any, ch: Any, log: Log) -> None:
        ch.add_on_close_callback(closer(conn))
        ch.tx_commit(callback=lambda f: log.append("never"))
    log = run(on_channel(body))
    assert ("ch-closed", 1, "ChannelClosedByBroker", 406,
            "PRECONDITION_FAILED - channel is not transactional") in log
    assert "never" not in log


# --------------------------------------------------------------------------- closing


def test_close_callbacks_of_channel_and_connection() -> None:
    def setup(conn: Any, log: Log) -> None:
        def first(ch: Any) -> None:
            ch.add_on_close_callback(lambda c, r: (
                log.append(("ch1", type(r).__name__, r.reply_code, r.reply_text)),
                conn.channel(on_open_callback=second)))
            ch.close()
            assert ch.is_closing
            with pytest.raises(pika.exceptions.ChannelWrongStateError, match="closing"):
                ch.close()

        def second(ch: Any) -> None:
            ch.add_on_close_callback(lambda c, r: log.append(
                ("ch", c.channel_number, type(r).__name__, r.reply_code, r.reply_text)))
            conn.close(reply_code=200, reply_text="bye")
            assert conn.is_closing
            with pytest.raises(pika.exceptions.ConnectionWrongStateError):
                conn.close()
        conn.channel(on_open_callback=first)
    log = run(setup)
    # (channel 1's number is freed after its close callbacks ran, as in pika)
    assert log == [("ch1", "ChannelClosedByClient", 0, "Normal shutdown"),
                   ("ch", 2, "ChannelClosedByClient", 200, "bye"),
                   ("conn-closed", "ConnectionClosedByClient", 200, "bye")]


def test_channel_needs_an_open_connection_and_clear_errors() -> None:
    conn = pika.SelectConnection()
    with pytest.raises(pika.exceptions.ConnectionWrongStateError, match="open connection"):
        conn.channel()
    with pytest.raises(TypeError, match="custom_ioloop"):
        pika.SelectConnection(custom_ioloop=object())
    with pytest.raises(NotImplementedError, match="internal_connection_workflow"):
        pika.SelectConnection(internal_connection_workflow=False)
    conn.close()          # before it opened: pika reports ConnectionOpenAborted
    got: Log = []
    conn.add_on_open_error_callback(lambda c, e: (got.append(type(e).__name__),
                                                  c.ioloop.stop()))
    conn.ioloop.start()
    assert got == ["ConnectionOpenAborted"] and conn.is_closed


# --------------------------------------------------------------------------- the loop


def test_timers_fire_in_order_on_time_and_can_be_removed() -> None:
    loop = pika._SUBMODULES["adapters.select_connection"].IOLoop()
    log: Log = []
    t0 = time.monotonic()
    loop.call_later(0.2, lambda: log.append(("t0.2", time.monotonic() - t0)))
    loop.call_later(0.1, lambda: log.append(("t0.1", time.monotonic() - t0)))
    loop.call_later(0.1, lambda: log.append(("t0.1b", time.monotonic() - t0)))
    gone = loop.call_later(0.15, lambda: log.append("removed"))
    loop.remove_timeout(gone)
    loop.call_later(0, lambda: log.append(("t0", 0)))
    loop.add_callback(lambda: log.append(("cb", 0)))
    loop.call_later(0.25, loop.stop)
    loop.start()
    assert [e[0] for e in log] == ["cb", "t0", "t0.1", "t0.1b", "t0.2"]
    assert 0.1 <= log[2][1] < 0.19 and 0.2 <= log[4][1] < 0.3


def test_add_callback_threadsafe_wakes_the_loop_from_another_thread() -> None:
    ran: Log = []

    def setup(conn: Any, log: Log) -> None:
        loop = conn.ioloop

        def later() -> None:
            time.sleep(0.1)
            loop.add_callback_threadsafe(lambda: (ran.append(threading.get_ident()),
                                                  conn.close()))
        threading.Thread(target=later).start()
    t0 = time.monotonic()
    log = run(setup, timeout=10)
    assert ran == [threading.get_ident()]          # on the loop's thread
    assert time.monotonic() - t0 < 2 and log[-1][0] == "conn-closed"


def test_a_publish_from_another_thread_wakes_the_loop() -> None:
    def body(conn: Any, ch: Any, log: Log) -> None:
        def on_msg(c: Any, m: Any, p: Any, b: bytes) -> None:
            log.append((b, threading.get_ident()))
            conn.close()

        def consumed(_f: Any) -> None:
            def publish() -> None:
                time.sleep(0.1)
                pika.get_bus().channel().basic_publish("", "q", b"from a thread")
            threading.Thread(target=publish).start()
        ch.queue_declare("q", callback=lambda f: None)
        ch.basic_consume("q", on_msg, auto_ack=True, callback=consumed)
    t0 = time.monotonic()
    log = run(on_channel(body), timeout=10)
    assert log[0] == (b"from a thread", threading.get_ident())
    assert time.monotonic() - t0 < 2


def test_stop_from_a_callback_returns_start_and_start_goes_on() -> None:
    def body(conn: Any, ch: Any, log: Log) -> None:
        ch.queue_declare("q", callback=lambda f: None)
        for b in (b"1", b"2", b"3"):
            ch.basic_publish("", "q", b)

        def on_msg(c: Any, m: Any, p: Any, b: bytes) -> None:
            log.append(b)
            c.basic_ack(m.delivery_tag)
            conn.ioloop.stop()                      # after each message
        ch.basic_consume("q", on_msg)
    log: Log = []
    conn = pika.SelectConnection(on_open_callback=lambda c: on_channel(body)(c, log))
    starts = 0
    while len(log) < 3 and starts < 20:
        conn.ioloop.start()
        starts += 1
    assert log == [b"1", b"2", b"3"] and starts == 3
    conn.close()
    conn.ioloop.call_later(1, conn.ioloop.stop)
    conn.add_on_close_callback(lambda c, r: c.ioloop.stop())
    conn.ioloop.start()
    assert conn.is_closed
    with pytest.raises(RuntimeError, match="reentrant"):
        loop = pika._SUBMODULES["adapters.select_connection"].IOLoop()
        loop.add_callback(loop.start)
        loop.start()


def test_stop_before_start_makes_start_return_at_once() -> None:
    loop = pika._SUBMODULES["adapters.select_connection"].IOLoop()
    loop.stop()
    t0 = time.monotonic()
    loop.start()
    ran: Log = []
    loop.add_callback(lambda: (ran.append(1), loop.stop()))
    loop.start()
    assert time.monotonic() - t0 < 1 and ran == [1]


def test_two_connections_share_a_custom_ioloop() -> None:
    loop = pika._SUBMODULES["adapters.select_connection"].IOLoop()
    log: Log = []

    def consumer(ch: Any) -> None:
        ch.queue_declare("shared", callback=lambda f: ch.basic_consume(
            "shared", lambda c, m, p, b: (log.append(b), loop.stop()), auto_ack=True,
            callback=lambda f: pub.channel(on_open_callback=lambda p: p.basic_publish(
                "", "shared", b"across"))))
    sub = pika.SelectConnection(on_open_callback=lambda c: c.channel(
        on_open_callback=consumer), custom_ioloop=loop)
    pub = pika.SelectConnection(custom_ioloop=loop)
    loop.call_later(5, loop.stop)
    loop.start()
    assert log == [b"across"] and sub.ioloop is pub.ioloop is loop


# --------------------------------------------------------------------------- asyncio


def test_asyncio_connection_runs_the_same_channel_on_an_event_loop() -> None:
    loop = asyncio.new_event_loop()
    log: Log = []

    def on_open(conn: Any) -> None:
        def opened(ch: Any) -> None:
            ch.queue_declare("q", callback=lambda f: log.append(f.method.queue))
            ch.basic_consume("q", lambda c, m, p, b: (log.append(b), conn.close()),
                             auto_ack=True)

            def publish() -> None:   # from another thread: must wake the event loop
                time.sleep(0.05)
                pika.get_bus().channel().basic_publish("", "q", b"hi")
            threading.Thread(target=publish).start()
        conn.channel(on_open_callback=opened)

    AC = pika._SUBMODULES["adapters.asyncio_connection"].AsyncioConnection
    conn = AC(on_open_callback=on_open, custom_ioloop=loop,
              on_close_callback=lambda c, r: (log.append(type(r).__name__), loop.stop()))
    assert conn.ioloop is loop
    loop.call_later(5, loop.stop)
    loop.run_forever()
    loop.close()
    assert log == ["q", b"hi", "ConnectionClosedByClient"]


def test_the_plugin_makes_pika_submodules_importable(inbus_pika: Any) -> None:
    import pika as patched
    from pika.adapters.asyncio_connection import AsyncioConnection
    from pika.adapters.select_connection import IOLoop, SelectConnection
    from pika.channel import Channel

    assert patched.SelectConnection is SelectConnection is inbus_pika.SelectConnection
    assert patched.adapters.SelectConnection is SelectConnection
    assert patched.adapters.asyncio_connection.AsyncioConnection is AsyncioConnection
    assert IOLoop.__name__ == "IOLoop" and Channel.__name__ == "Channel"


# --------------------------------------------------------------------------- threads


def test_callbacks_run_with_no_bus_lock_held() -> None:
    def body(conn: Any, ch: Any, log: Log) -> None:
        def on_msg(c: Any, m: Any, p: Any, b: bytes) -> None:
            # another thread needs the bus lock: it would deadlock if this held it
            t = threading.Thread(target=lambda: pika.get_bus().channel().basic_publish(
                "", "other", b"from a thread"))
            t.start()
            t.join(5)
            log.append(("joined", not t.is_alive()))
            conn.close()
        ch.queue_declare("q", callback=lambda f: None)
        ch.queue_declare("other", callback=lambda f: None)
        ch.basic_consume("q", on_msg, auto_ack=True)
        ch.basic_publish("", "q", b"go")
    log = run(on_channel(body), timeout=10)
    assert log[0] == ("joined", True)
    assert queue_counts(pika.get_bus(), "other") == (1, 0)


def test_many_deliveries_arrive_in_order_with_prefetch() -> None:
    def body(conn: Any, ch: Any, log: Log) -> None:
        def on_msg(c: Any, m: Any, p: Any, b: bytes) -> None:
            log.append(int(b))
            c.basic_ack(m.delivery_tag)
            if len(log) == 300:
                conn.close()

        def publish() -> None:   # from another thread, while the loop consumes
            pch = pika.get_bus().channel()
            for i in range(300):
                pch.basic_publish("", "q", str(i).encode())
        ch.queue_declare("q", callback=lambda f: threading.Thread(target=publish).start())
        ch.basic_qos(prefetch_count=10)
        ch.basic_consume("q", on_msg)
    log = run(on_channel(body), timeout=20)
    assert log[:300] == list(range(300))


def test_persistent_confirms_from_the_storage_thread_reach_the_loop(tmp_path: Any) -> None:
    import inbus
    pika._buses[("localhost", 5672)] = inbus.Bus(str(tmp_path / "bus.db"))
    loop_thread = threading.get_ident()

    def body(conn: Any, ch: Any, log: Log) -> None:
        def confirmed(f: Any) -> None:
            log.append((f.method.NAME, f.method.delivery_tag,
                        threading.get_ident() == loop_thread))
            if f.method.delivery_tag == 3:
                conn.close()
        ch.confirm_delivery(confirmed)
        ch.queue_declare("durable", durable=True, callback=lambda f: [
            ch.basic_publish("", "durable", b"x", pika.BasicProperties(delivery_mode=2))
            for _ in range(3)])
    log = run(on_channel(body), timeout=20)
    assert log[:3] == [("Basic.Ack", 1, True), ("Basic.Ack", 2, True), ("Basic.Ack", 3, True)]


def test_an_idle_loop_sleeps_and_a_thread_can_stop_it() -> None:
    loop = pika._SUBMODULES["adapters.select_connection"].IOLoop()
    threading.Timer(0.5, lambda: loop.add_callback_threadsafe(loop.stop)).start()
    cpu, t0 = time.process_time(), time.monotonic()
    loop.start()
    assert 0.45 <= time.monotonic() - t0 < 2
    assert time.process_time() - cpu < 0.2   # it slept: no busy loop
