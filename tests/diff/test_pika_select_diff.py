"""Differential tests of pika's asynchronous API: the same callback-style client code runs
through the real pika (SelectConnection, AsyncioConnection) against a real RabbitMQ and
through ``inbus.compat.pika`` against a fresh in-process bus; the sequences of callbacks
each records (with their arguments) must be equal.

A scenario is ``f(pika, conn, ch, log, ns)``, called once channel 1 is open (its close
callback already logs); it logs what its callbacks see and ends by closing the connection
(the runner logs that close and stops the loop). The real side is also checked against
``EXPECT`` where given, so a scenario cannot silently observe nothing. RabbitMQ
unreachable: skipped loudly, failed under CI=true / INBUS_REQUIRE_SERVERS=1 (as
tests/diff/test_amqp_diff.py).
"""

from __future__ import annotations

import asyncio
import importlib
import pprint
import re
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from tests.diff.amqp_support import (
    RABBIT_HOST,
    RABBIT_PORT,
    make_params,
    new_ns,
    normalise,
    rabbit_reachable,
    servers_required,
)

pytestmark = [pytest.mark.diff, pytest.mark.timeout(120)]

Log = list[Any]
Scenario = Callable[[ModuleType, Any, Any, Log, str], None]
SCENARIOS: dict[str, Scenario] = {}
EXPECT: dict[str, Log] = {}


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS[fn.__name__] = fn
    return fn


def _require_rabbit() -> None:
    if rabbit_reachable():
        return
    msg = (f"RabbitMQ is not reachable on {RABBIT_HOST}:{RABBIT_PORT} -- the pika "
           "asynchronous differential tests need it: run `bash .ci/servers.sh start`")
    if servers_required():
        pytest.fail(msg + " (CI=true / INBUS_REQUIRE_SERVERS=1: servers are required)")
    pytest.skip("!!! " + msg)


def _clean(obj: Any, ns: str) -> Any:
    obj = normalise(obj, ns)

    def text(s: str) -> str:
        s = re.sub(r"ctag(\d+)\.[0-9a-f]{32}", r"ctag\1.*", s)
        return re.sub(r"amq\.gen-[A-Za-z0-9_-]{22}", "amq.gen-*", s)
    if isinstance(obj, str):
        return text(obj)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clean(x, "\0") for x in obj)
    return obj


def observe(pika: ModuleType, fn: Scenario, ns: str, adapter: str = "select",
            timeout: float = 10.0) -> Log:
    """Run ``fn`` on a fresh connection through ``pika``; the normalised log."""
    log: Log = []

    def on_channel(conn: Any, ch: Any) -> None:
        ch.add_on_close_callback(lambda c, r: log.append(
            ("ch-closed", c.channel_number, type(r).__name__, r.reply_code, r.reply_text)))
        fn(pika, conn, ch, log, ns)

    def on_open(conn: Any) -> None:
        conn.channel(on_open_callback=lambda ch: on_channel(conn, ch))

    def on_closed(conn: Any, reason: Any) -> None:
        log.append(("conn-closed", type(reason).__name__, reason.reply_code,
                    reason.reply_text))
        stop()

    params = make_params(pika)
    if adapter == "select":
        conn = pika.SelectConnection(params, on_open_callback=on_open,
                                     on_close_callback=on_closed)
        stop = conn.ioloop.stop
        guard = conn.ioloop.call_later(timeout, stop)
        conn.ioloop.start()
        conn.ioloop.remove_timeout(guard)
    else:
        loop = asyncio.new_event_loop()
        ac = importlib.import_module(pika.__name__ + ".adapters.asyncio_connection") \
            if pika.__name__ == "pika" else pika._SUBMODULES["adapters.asyncio_connection"]
        conn = ac.AsyncioConnection(params, on_open_callback=on_open,
                                    on_close_callback=on_closed, custom_ioloop=loop)
        stop = loop.stop
        loop.call_later(timeout, stop)
        loop.run_forever()
        loop.close()
    assert conn.is_closed, f"did not finish within {timeout}s: {log}"
    return _clean(log, ns)


def compare(name: str, adapter: str = "select") -> None:
    _require_rabbit()
    import pika as real_pika

    import inbus.compat.pika as fake
    fn = SCENARIOS[name]
    real = observe(real_pika, fn, new_ns(), adapter)
    if name in EXPECT:
        assert real == EXPECT[name], (f"RabbitMQ did not show what {name} expects:\n"
                                      f"{pprint.pformat(real)}")
    assert len(real) > 1, f"{name} observed nothing"
    fake.reset()
    try:
        mine = observe(fake, fn, new_ns(), adapter)
    finally:
        fake.reset()
    assert mine == real, (f"inbus disagrees with pika + RabbitMQ on {name} ({adapter}):\n"
                          f"RabbitMQ {pprint.pformat(real)}\ninbus    {pprint.pformat(mine)}")


def rec(log: Log, what: str) -> Callable[[Any], None]:
    """A reply callback that logs ``what`` and the reply method's repr."""
    return lambda frame: log.append((what, type(frame).__name__, frame.channel_number,
                                     repr(frame.method)))


# --------------------------------------------------------------------------- scenarios


@scenario
def order_of_replies_deliveries_returns_and_errors(pika: ModuleType, conn: Any, ch: Any,
                                                   log: Log, ns: str) -> None:
    """Publishes overtake queued synchronous methods; the reply of a method comes before
    what it caused; a 404 closes the channel after what was on the wire before it."""
    q = ns + ".q"
    ch.add_on_close_callback(lambda c, r: conn.close())
    ch.add_on_return_callback(lambda c, m, p, b: log.append(("return", repr(m), b)))
    ch.queue_declare(q, exclusive=True, callback=rec(log, "declareok"))
    ch.queue_declare("", exclusive=True, callback=rec(log, "declareok2"))
    ch.basic_qos(prefetch_count=1, callback=rec(log, "qosok"))
    ch.basic_publish("", q, b"m1", pika.BasicProperties(headers={"n": 1},
                                                         content_type="text/plain"))
    ch.basic_publish("", q, b"m2")
    ch.basic_publish("", "nowhere." + ns, b"ret", mandatory=True)

    def on_msg(c: Any, m: Any, p: Any, b: bytes) -> None:
        log.append(("deliver", repr(m), p.headers, p.content_type, b))
        c.basic_ack(m.delivery_tag)
        if b == b"m2":   # (an error made earlier would race m2's delivery on RabbitMQ)
            ch.exchange_declare("nothere." + ns, passive=True, callback=rec(log, "never"))
            ch.queue_declare(ns + ".after", callback=rec(log, "never"))  # dropped
    log.append(("tag", ch.basic_consume(q, on_msg, consumer_tag="c1",
                                        callback=rec(log, "consumeok"))))
    ch.queue_declare(q, passive=True, callback=rec(log, "passive"))


EXPECT["order_of_replies_deliveries_returns_and_errors"] = [
    ("tag", "c1"),
    ("declareok", "Method", 1,
     "<Queue.DeclareOk(['consumer_count=0', 'message_count=0', 'queue=NS.q'])>"),
    ("return", "<Basic.Return(['exchange=', 'reply_code=312', 'reply_text=NO_ROUTE', "
               "'routing_key=nowhere.NS'])>", b"ret"),
    ("declareok2", "Method", 1,
     "<Queue.DeclareOk(['consumer_count=0', 'message_count=0', 'queue=amq.gen-*'])>"),
    ("qosok", "Method", 1, "<Basic.QosOk>"),
    ("consumeok", "Method", 1, "<Basic.ConsumeOk(['consumer_tag=c1'])>"),
    ("deliver", "<Basic.Deliver(['consumer_tag=c1', 'delivery_tag=1', 'exchange=', "
                "'redelivered=False', 'routing_key=NS.q'])>", {"n": 1}, "text/plain", b"m1"),
    ("passive", "Method", 1,
     "<Queue.DeclareOk(['consumer_count=1', 'message_count=1', 'queue=NS.q'])>"),
    ("deliver", "<Basic.Deliver(['consumer_tag=c1', 'delivery_tag=2', 'exchange=', "
                "'redelivered=False', 'routing_key=NS.q'])>", None, None, b"m2"),
    ("ch-closed", 1, "ChannelClosedByBroker", 404,
     "NOT_FOUND - no exchange 'nothere.NS' in vhost '/'"),
    ("conn-closed", "ConnectionClosedByClient", 200, "Normal shutdown"),
]


@scenario
def cancel_and_close_callbacks(pika: ModuleType, conn: Any, ch: Any, log: Log,
                               ns: str) -> None:
    """basic_cancel's CancelOk (user callback before the tag is forgotten), a close
    queued behind pending methods, channel close codes 0 and 200."""
    q = ns + ".q"

    def declared(_f: Any) -> None:
        tag = ch.basic_consume(q, lambda *a: None, callback=rec(log, "consumeok"))
        ch.basic_cancel(tag, callback=lambda f: log.append(
            ("cancelok", f.method.NAME, tag in ch.consumer_tags)))
        ch.basic_consume(q, lambda *a: None, consumer_tag="c2")
        ch.close()
        log.append(("closing", ch.is_closing, ch.is_open, ch.is_closed))
        for call in (ch.close, lambda: ch.basic_publish("", q, b"")):
            try:
                call()
            except pika.exceptions.ChannelWrongStateError as e:
                log.append(("wrong-state", str(e)))
        # (channel 2's events go to a list of their own: how they interleave with
        # channel 1's depends on RabbitMQ's timing)
        log2: Log = []
        log.append(("channel 2", log2))
        ch2 = conn.channel(on_open_callback=lambda c: (log2.append(("ch2-open",
                                                                    c.channel_number)),
                                                       conn.close()))
        ch2.add_on_close_callback(lambda c, r: log2.append(
            ("ch2-closed", c.channel_number, type(r).__name__, r.reply_code, r.reply_text)))
    ch.queue_declare(q, exclusive=True, callback=declared)


EXPECT["cancel_and_close_callbacks"] = [
    ("closing", True, False, False),
    ("wrong-state", "Channel is closing."), ("wrong-state", "Channel is closing."),
    ("channel 2", [("ch2-open", 2),
                   ("ch2-closed", 2, "ChannelClosedByClient", 200, "Normal shutdown")]),
    ("consumeok", "Method", 1, "<Basic.ConsumeOk(['consumer_tag=ctag1.*'])>"),
    ("cancelok", "Basic.CancelOk", True),
    ("ch-closed", 1, "ChannelClosedByClient", 0, "Normal shutdown"),
    ("conn-closed", "ConnectionClosedByClient", 200, "Normal shutdown"),
]


@scenario
def connection_error_closes_all(pika: ModuleType, conn: Any, ch: Any, log: Log,
                                ns: str) -> None:
    conn.channel(on_open_callback=lambda c2: c2.add_on_close_callback(
        lambda c, r: log.append(("ch2-closed", type(r).__name__, r.reply_code))))
    ch.queue_declare(ns + ".q", exclusive=True, callback=rec(log, "declareok"))
    ch.basic_qos(prefetch_size=1, callback=rec(log, "never"))


@scenario
def channel_flow(pika: ModuleType, conn: Any, ch: Any, log: Log, ns: str) -> None:
    """Channel.Flow: RabbitMQ accepts active=True (FlowOk, the callback gets True) and
    answers active=False with its connection error 540."""
    def flowed(active: Any) -> None:
        log.append(("flow-ok", active, ch.flow_active))
        ch.flow(False, callback=lambda a: log.append(("never", a)))
    ch.flow(True, callback=flowed)


EXPECT["channel_flow"] = [
    ("flow-ok", True, True),
    ("ch-closed", 1, "ConnectionClosedByBroker", 540, "NOT_IMPLEMENTED - active=false"),
    ("conn-closed", "ConnectionClosedByBroker", 540, "NOT_IMPLEMENTED - active=false"),
]


@scenario
def confirms_returns_and_nacks(pika: ModuleType, conn: Any, ch: Any, log: Log,
                               ns: str) -> None:
    """Each publish's confirm (RabbitMQ may confirm several at once, and an unroutable
    message before a queued one: the outcome per tag is compared), and each return
    before its message's confirm."""
    q = ns + ".q"
    outcome: dict[int, str] = {}
    events: list[Any] = []
    tag_of = {b"early": 1, b"r": 2, b"1": 3, b"2": 4, b"3": 5, b"4": 6}

    def on_confirm(f: Any) -> None:
        m = f.method
        tags = [t for t in range(1, m.delivery_tag + 1) if t not in outcome] \
            if m.multiple else [m.delivery_tag]
        for t in tags:
            outcome[t] = m.NAME
            events.append(("confirm", t))
        if len(outcome) == 6:
            log.append(("outcomes", sorted(outcome.items())))
            log.append(("returns", [e for e in events if e[0] == "return"]))
            log.append(("each return before its confirm", all(
                events.index(("confirm", e[1])) > i for i, e in enumerate(events)
                if e[0] == "return")))
            conn.close()
    ch.add_on_return_callback(lambda c, m, p, b: events.append(("return", tag_of[b],
                                                                m.reply_code)))
    ch.confirm_delivery(on_confirm, callback=rec(log, "selectok"))
    ch.queue_declare(q, exclusive=True, arguments={"x-max-length": 1,
                                                   "x-overflow": "reject-publish"},
                     callback=lambda f: [ch.basic_publish("", k, b, mandatory=True)
                                         for k, b in ((q, b"1"), (q, b"2"),
                                                      ("nowhere", b"3"), (q, b"4"))])
    ch.basic_publish("", q, b"early")        # overtakes the declare: unroutable, acked
    ch.basic_publish("", "nowhere", b"r", mandatory=True)


EXPECT["confirms_returns_and_nacks"] = [
    ("selectok", "Method", 1, "<Confirm.SelectOk>"),
    ("outcomes", [(1, "Basic.Ack"), (2, "Basic.Ack"), (3, "Basic.Ack"), (4, "Basic.Nack"),
                  (5, "Basic.Ack"), (6, "Basic.Nack")]),
    ("returns", [("return", 2, 312), ("return", 5, 312)]),
    ("each return before its confirm", True),
    ("ch-closed", 1, "ChannelClosedByClient", 200, "Normal shutdown"),
    ("conn-closed", "ConnectionClosedByClient", 200, "Normal shutdown"),
]


@scenario
def nack_frame_of_a_rejected_publish(pika: ModuleType, conn: Any, ch: Any, log: Log,
                                     ns: str) -> None:
    def confirmed(f: Any) -> None:   # (RabbitMQ may set multiple: left out)
        log.append(("confirm", f.method.NAME, f.method.delivery_tag,
                    getattr(f.method, "requeue", None)))
        if f.method.delivery_tag == 2:
            ch.close()
            conn.close()
    ch.confirm_delivery(confirmed)
    ch.queue_declare(ns + ".q", exclusive=True, arguments={
        "x-max-length": 1, "x-overflow": "reject-publish"}, callback=lambda f: (
            ch.basic_publish("", ns + ".q", b"1"), ch.basic_publish("", ns + ".q", b"2")))


@scenario
def duplicate_channel_number_is_504(pika: ModuleType, conn: Any, ch: Any, log: Log,
                                    ns: str) -> None:
    dup = conn.channel(channel_number=1, on_open_callback=lambda c: log.append("never"))
    dup.add_on_close_callback(lambda c, r: log.append(("dup-closed", type(r).__name__,
                                                       r.reply_code, r.reply_text)))
    log.append(("same object", dup is ch))


@scenario
def broker_cancel_and_exchange_ops(pika: ModuleType, conn: Any, ch: Any, log: Log,
                                   ns: str) -> None:
    q, q4, x, y = ns + ".q", ns + ".q4", ns + ".x", ns + ".y"
    ch.add_on_close_callback(lambda c, r: conn.close())
    ch.add_on_cancel_callback(lambda f: log.append(("cancel", repr(f.method),
                                                    ch.consumer_tags)))
    ch.queue_declare(q, exclusive=True, callback=rec(log, "declareok"))
    ch.basic_consume(q, lambda *a: None, consumer_tag="c1", callback=rec(log, "consumeok"))
    ch.queue_delete(q, callback=rec(log, "deleteok"))
    ch.queue_declare(q4, exclusive=True, callback=rec(log, "q4"))
    ch.basic_recover(requeue=True, callback=rec(log, "recoverok"))
    ch.queue_purge(q4, callback=rec(log, "purgeok"))
    ch.exchange_declare(x, "fanout", auto_delete=True, callback=rec(log, "xok"))
    ch.exchange_declare(y, "fanout", auto_delete=True, callback=rec(log, "yok"))
    ch.exchange_bind(y, x, callback=rec(log, "xbindok"))
    ch.exchange_unbind(y, x, callback=rec(log, "xunbindok"))   # x auto-deletes now
    ch.queue_bind(q4, x, callback=rec(log, "never"))


@scenario
def get_empty_and_unknown_ack(pika: ModuleType, conn: Any, ch: Any, log: Log,
                              ns: str) -> None:
    q = ns + ".q"
    ch.add_on_close_callback(lambda c, r: conn.close())
    ch.add_callback(lambda f: (log.append(("getempty", repr(f.method))), ch.basic_ack(99)),
                    [pika.spec.Basic.GetEmpty])

    def got(c: Any, m: Any, p: Any, b: bytes) -> None:
        log.append(("getok", repr(m), p.app_id, b))
        c.basic_get(q, lambda *a: log.append("never"))

    def declared(_f: Any) -> None:
        ch.basic_publish("", q, b"x", pika.BasicProperties(app_id="a"))
        ch.basic_get(q, got)
        try:
            ch.basic_get(q, got)
        except pika.exceptions.DuplicateGetOkCallback:
            log.append("duplicate-get")
    ch.queue_declare(q, exclusive=True, callback=declared)


@scenario
def access_refused(pika: ModuleType, conn: Any, ch: Any, log: Log, ns: str) -> None:
    ch.add_on_close_callback(lambda c, r: conn.close())
    ch.queue_declare("amq." + ns, callback=rec(log, "never"))
    ch.queue_declare(ns + ".after", callback=rec(log, "never"))


@scenario
def precondition_failed_on_redeclare(pika: ModuleType, conn: Any, ch: Any, log: Log,
                                     ns: str) -> None:
    def cleanup(_c: Any, _r: Any) -> None:
        conn.channel(on_open_callback=lambda c2: c2.queue_delete(
            ns + ".q", callback=lambda f: (rec(log, "deleteok")(f), conn.close())))
    ch.add_on_close_callback(cleanup)
    ch.queue_declare(ns + ".q", callback=rec(log, "declareok"))
    ch.queue_declare(ns + ".q", durable=True, callback=rec(log, "never"))


@scenario
def prefetch_limits_deliveries(pika: ModuleType, conn: Any, ch: Any, log: Log,
                               ns: str) -> None:
    q = ns + ".q"
    got: list[Any] = []

    def snapshot() -> None:
        log.append(("delivered before any ack", list(got)))
        conn.close()

    def declared(_f: Any) -> None:
        for i in range(5):
            ch.basic_publish("", q, str(i).encode())
        ch.basic_qos(prefetch_count=2)
        ch.basic_consume(q, lambda c, m, p, b: got.append((m.delivery_tag, b)),
                         callback=lambda f: conn.ioloop.call_later(0.3, snapshot))
    ch.queue_declare(q, exclusive=True, callback=declared)


@scenario
def transactions(pika: ModuleType, conn: Any, ch: Any, log: Log, ns: str) -> None:
    """tx_select / tx_commit / tx_rollback with their callbacks: publishes held until
    the commit, dropped by a rollback; then confirm_delivery in tx mode is a 406."""
    q = ns + ".q"
    ch.add_on_close_callback(lambda c, r: conn.close())

    def count(tag: str, then: Callable[[], Any]) -> None:
        ch.queue_declare(q, passive=True, callback=lambda f: (
            log.append((tag, f.method.message_count)), then()))

    def rolled_back(f: Any) -> None:
        rec(log, "rollbackok")(f)
        count("after rollback", lambda: ch.confirm_delivery(
            lambda f: log.append("never"), callback=rec(log, "never")))

    def committed(f: Any) -> None:
        rec(log, "commitok")(f)
        count("after commit", lambda: (ch.basic_publish("", q, b"dropped"),
                                       ch.tx_rollback(callback=rolled_back)))

    def selected(f: Any) -> None:
        rec(log, "selectok")(f)
        ch.basic_publish("", q, b"held")
        count("held", lambda: ch.tx_commit(callback=committed))
    ch.queue_declare(q, exclusive=True, callback=lambda f: ch.tx_select(callback=selected))


EXPECT["transactions"] = [
    ("selectok", "Method", 1, "<Tx.SelectOk>"), ("held", 0),
    ("commitok", "Method", 1, "<Tx.CommitOk>"), ("after commit", 1),
    ("rollbackok", "Method", 1, "<Tx.RollbackOk>"), ("after rollback", 1),
    ("ch-closed", 1, "ChannelClosedByBroker", 406,
     "PRECONDITION_FAILED - cannot switch from tx to confirm mode"),
    ("conn-closed", "ConnectionClosedByClient", 200, "Normal shutdown")]


@scenario
def basic_get_on_closed_and_closing_channels(pika: ModuleType, conn: Any, ch: Any,
                                             log: Log, ns: str) -> None:
    """pika sends Basic.Get whatever the channel's state: one queued behind nothing on a
    closing channel overtakes its Close; on the closed channel it is a 504."""
    q = ns + ".q"

    def on_closed(c: Any, _r: Any) -> None:
        c.basic_get(q, lambda *a: log.append("never"))
        try:
            c.basic_get(q, lambda *a: log.append("never"))
        except pika.exceptions.DuplicateGetOkCallback:
            log.append("duplicate-get")
    ch.add_on_close_callback(on_closed)
    ch.queue_declare(q, exclusive=True, callback=rec(log, "declareok"))
    ch.basic_publish("", q, b"x")
    ch.close()
    ch.basic_get(q, lambda c, m, p, b: log.append(("getok", m.delivery_tag, b,
                                                   c.is_closing)))


EXPECT["basic_get_on_closed_and_closing_channels"] = [
    ("declareok", "Method", 1,
     "<Queue.DeclareOk(['consumer_count=0', 'message_count=0', 'queue=NS.q'])>"),
    ("getok", 1, b"x", True),
    ("ch-closed", 1, "ChannelClosedByClient", 0, "Normal shutdown"),
    "duplicate-get",
    ("conn-closed", "ConnectionClosedByBroker", 504,
     "CHANNEL_ERROR - expected 'channel.open'")]


@scenario
def freed_channel_504_closes_every_channel(pika: ModuleType, conn: Any, ch: Any,
                                           log: Log, ns: str) -> None:
    """A Basic.Get on a channel the broker closed: RabbitMQ's 504 closes the connection
    and every channel. (RabbitMQ raises it in a channel process of its own and may
    still answer a method sent right after it, e.g. this QosOk, or not: a race, so the
    QosOk is not logged; inbus answers it: tests/test_compat_pika_select.py.)"""
    def opened2(ch2: Any) -> None:
        ch2.add_on_close_callback(lambda c, r: log.append(("ch2-closed", r.reply_code)))

        def on_closed(c: Any, _r: Any) -> None:
            c.basic_get(ns + ".q", lambda *a: log.append("never"))
            ch2.basic_qos(prefetch_count=1, callback=lambda f: None)
        ch.add_on_close_callback(on_closed)
        ch.queue_declare(ns + ".nope", passive=True, callback=rec(log, "never"))
    conn.channel(on_open_callback=opened2)


EXPECT["freed_channel_504_closes_every_channel"] = [
    ("ch-closed", 1, "ChannelClosedByBroker", 404,
     "NOT_FOUND - no queue 'NS.nope' in vhost '/'"),
    ("ch2-closed", 504),
    ("conn-closed", "ConnectionClosedByBroker", 504,
     "CHANNEL_ERROR - expected 'channel.open'")]


@scenario
def deleted_queue_cancels_consumers_in_tag_order(pika: ModuleType, conn: Any, ch: Any,
                                                 log: Log, ns: str) -> None:
    """A deleted queue's consumers on one channel are cancelled in the order of their
    tags (bytes), whatever the queue's round-robin position."""
    q = ns + ".q"
    log2: Log = []    # (channel 2's DeleteOk races channel 1's cancels on RabbitMQ)
    log.append(("channel 2", log2))
    ch.add_on_cancel_callback(lambda f: log.append(("cancel", f.method.consumer_tag)))

    def declared(_f: Any) -> None:
        for tag in ("c9", "b", "c10", "a"):
            ch.basic_consume(q, lambda c, m, p, b: c.basic_ack(m.delivery_tag),
                             consumer_tag=tag)
        for _ in range(3):
            ch.basic_publish("", q, b"x")
        conn.ioloop.call_later(0.2, lambda: conn.channel(
            on_open_callback=lambda c2: c2.queue_delete(q, callback=lambda f: (
                rec(log2, "deleteok")(f), conn.ioloop.call_later(0.2, conn.close)))))
    ch.queue_declare(q, callback=declared)


EXPECT["deleted_queue_cancels_consumers_in_tag_order"] = [
    ("channel 2", [("deleteok", "Method", 2, "<Queue.DeleteOk(['message_count=0'])>")]),
    ("cancel", "a"), ("cancel", "b"), ("cancel", "c10"), ("cancel", "c9"),
    ("ch-closed", 1, "ChannelClosedByClient", 200, "Normal shutdown"),
    ("conn-closed", "ConnectionClosedByClient", 200, "Normal shutdown")]


@scenario
def cancelled_consumers_deliveries_come_back_when_read(pika: ModuleType, conn: Any,
                                                       ch: Any, log: Log, ns: str) -> None:
    """A delivery made before the cancel is on the wire: pika rejects it as it reads it,
    after a get sent with the cancel (empty), before one sent later (the message)."""
    q = ns + ".q"
    cancel: Log = []    # (the CancelOk comes through the queue's process in RabbitMQ: it
    log.append(("cancel", cancel))  # races the GetEmpty)

    def on_empty(_f: Any) -> None:
        log.append("getempty")
        ch.basic_get(q, lambda c, m, p, b: (log.append(("getok", b, m.redelivered)),
                                            conn.close()))
    ch.add_callback(on_empty, [pika.spec.Basic.GetEmpty])

    def on_msg(c: Any, m: Any, p: Any, b: bytes) -> None:
        log.append(("deliver", b, m.redelivered))
        c.basic_ack(m.delivery_tag)
        c.basic_cancel(m.consumer_tag, callback=rec(cancel, "cancelok"))
        c.basic_get(q, lambda *a: log.append("never"))

    def declared(_f: Any) -> None:
        ch.basic_publish("", q, b"m1")
        ch.basic_publish("", q, b"m2")
        ch.basic_consume(q, on_msg, consumer_tag="c1")
    ch.queue_declare(q, exclusive=True, callback=declared)


EXPECT["cancelled_consumers_deliveries_come_back_when_read"] = [
    ("cancel", [("cancelok", "Method", 1, "<Basic.CancelOk(['consumer_tag=c1'])>")]),
    ("deliver", b"m1", False), "getempty", ("getok", b"m2", True),
    ("ch-closed", 1, "ChannelClosedByClient", 200, "Normal shutdown"),
    ("conn-closed", "ConnectionClosedByClient", 200, "Normal shutdown")]


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_select_connection_scenario(name: str) -> None:
    compare(name)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_asyncio_connection_scenario(name: str) -> None:
    compare(name, adapter="asyncio")


def _publisher_example(pika: ModuleType, ns: str) -> Any:
    """pika's asynchronous publisher example (tests/pika_examples), on its own names."""
    saved = sys.modules.get("pika")
    sys.modules["pika"] = pika
    try:
        sys.modules.pop("tests.pika_examples.asynchronous_publisher_example", None)
        mod = importlib.import_module("tests.pika_examples.asynchronous_publisher_example")
    finally:
        if saved is not None:
            sys.modules["pika"] = saved
    cls = type("Publisher", (mod.ExamplePublisher,), {
        "EXCHANGE": ns + ".message", "QUEUE": ns + ".text", "PUBLISH_INTERVAL": 0.01})
    url = f"amqp://guest:guest@{RABBIT_HOST}:{RABBIT_PORT}/%2F"
    pub = cls(url)
    confirmed = pub.on_delivery_confirmation

    def ctrl_c_after_3(frame: Any) -> None:
        confirmed(frame)
        if pub._acked >= 3:
            raise KeyboardInterrupt
    pub.on_delivery_confirmation = ctrl_c_after_3
    pub.run()
    conn = pika.BlockingConnection(make_params(pika))
    ch = conn.channel()
    count = ch.queue_declare(ns + ".text", passive=True).method.message_count
    _m, props, body = ch.basic_get(ns + ".text", auto_ack=True)
    ch.queue_delete(ns + ".text")
    ch.exchange_delete(ns + ".message")
    conn.close()
    return (pub._message_number, pub._acked, pub._nacked, pub._deliveries,
            pub._connection.is_closed, count, body, props.headers, props.app_id)


def test_publisher_example_against_both() -> None:
    _require_rabbit()
    import pika as real_pika

    import inbus.compat.pika as fake
    real = _publisher_example(real_pika, new_ns())
    assert real[1] >= 3 and real[3] == [] and real[4], real
    fake.reset()
    try:
        mine = _publisher_example(fake, new_ns())
    finally:
        fake.reset()
    assert mine == real


def _consumer_example(pika: ModuleType, ns: str, module: str) -> Any:
    """One of pika's asynchronous consumer examples (tests/pika_examples), on its own
    names: 4 messages waiting, Ctrl-C after the third; what it saw and what is left."""
    conn = pika.BlockingConnection(make_params(pika))
    ch = conn.channel()
    ch.exchange_declare(ns + ".message", "topic")
    ch.queue_declare(ns + ".text")
    ch.queue_bind(ns + ".text", ns + ".message", "example.text")
    for i in range(4):
        ch.basic_publish(ns + ".message", "example.text", f"m{i}".encode(),
                         pika.BasicProperties(app_id="diff"))
    saved = sys.modules.get("pika")
    saved_ac = sys.modules.get("pika.adapters.asyncio_connection")
    sys.modules["pika"] = pika
    if pika.__name__ != "pika":
        sys.modules["pika.adapters.asyncio_connection"] = \
            pika._SUBMODULES["adapters.asyncio_connection"]
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        sys.modules.pop(f"tests.pika_examples.{module}", None)
        mod = importlib.import_module(f"tests.pika_examples.{module}")
    finally:
        for name, old in (("pika", saved), ("pika.adapters.asyncio_connection", saved_ac)):
            if old is not None:
                sys.modules[name] = old
            else:
                sys.modules.pop(name, None)
    cls = type("Consumer", (mod.ExampleConsumer,), {
        "EXCHANGE": ns + ".message", "QUEUE": ns + ".text"})
    consumer = cls(f"amqp://guest:guest@{RABBIT_HOST}:{RABBIT_PORT}/%2F")
    seen: list[Any] = []
    on_message = consumer.on_message

    def ctrl_c_after_3(c: Any, deliver: Any, props: Any, body: bytes) -> None:
        seen.append((deliver.delivery_tag, deliver.redelivered, props.app_id, body))
        on_message(c, deliver, props, body)
        if len(seen) == 3:
            raise KeyboardInterrupt
    consumer.on_message = ctrl_c_after_3
    try:
        consumer.run()
    except KeyboardInterrupt:
        consumer.stop()          # what its ReconnectingExampleConsumer does on Ctrl-C
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    left = ch.queue_declare(ns + ".text", passive=True).method.message_count
    ch.queue_delete(ns + ".text")
    ch.exchange_delete(ns + ".message")
    conn.close()
    return seen, left, consumer._connection.is_closed, consumer._consuming


@pytest.mark.parametrize("module", ["asynchronous_consumer_example",
                                    "asyncio_consumer_example"])
def test_consumer_examples_against_both(module: str) -> None:
    _require_rabbit()
    import pika as real_pika

    import inbus.compat.pika as fake
    real = _consumer_example(real_pika, new_ns(), module)
    assert real == ([(1, False, "diff", b"m0"), (2, False, "diff", b"m1"),
                     (3, False, "diff", b"m2")], 1, True, False), real
    fake.reset()
    try:
        mine = _consumer_example(fake, new_ns(), module)
    finally:
        fake.reset()
    assert mine == real
