"""The broker's entity model (issue 2, DESIGN.md §1): declarations, deletes, bindings,
routing, vhosts, errors, exclusive and auto-delete entities, returns, bodies, names,
statistics.

Reply codes and texts were checked against a real RabbitMQ 3.10 through pika (and py-amqp
for float header values, which pika cannot encode): see the ``RABBIT`` notes.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from decimal import Decimal
from typing import Any

import pytest

import inbus
from inbus import (
    AccessRefused,
    BasicProperties,
    Bus,
    ChannelClosed,
    CommandInvalid,
    ConnectionClosed,
    NotAllowed,
    NotFound,
    NotImplementedByBus,
    PreconditionFailed,
    ResourceLocked,
    UnroutableError,
)
from tests._support import checked_bus  # noqa: F401 - the bus fixture


@pytest.fixture
def ch(bus: Bus) -> inbus.Channel:
    return bus.channel()


def fail(exc: type[inbus.AMQPError], code: int, text: str, *, scope: str = "channel",
         method: str | None = None) -> Any:
    """pytest.raises for an AMQP error, checking code, exact text and scope afterwards."""

    class _Check:
        def __enter__(self) -> Any:
            self.cm = pytest.raises(exc)
            self.info = self.cm.__enter__()
            return self.info

        def __exit__(self, *a: Any) -> bool:
            r = self.cm.__exit__(*a)
            e = self.info.value
            assert e.reply_code == code
            assert e.reply_text == text, e.reply_text
            assert e.scope == scope
            if method is not None:
                assert e.method == method
            return bool(r)

    return _Check()


LOCKED = ("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{}' in vhost "
          "'/'. It could be originally declared on another connection or the exclusive "
          "property value does not match that of the original declaration.")
DEFAULT_REFUSED = "ACCESS_REFUSED - operation not permitted on the default exchange"


def drain(ch: inbus.Channel, queue: str) -> list[bytes]:
    out = []
    while (m := ch.basic_get(queue, auto_ack=True)) is not None:
        out.append(m.body)
    return out


def ready(bus: Bus, queue: str, vhost: str = "/") -> int:
    return bus.statistics().queue(queue, vhost).messages_ready


# --- declarations ----------------------------------------------------------------------


def test_queue_declare_returns_name_and_counts(ch: inbus.Channel) -> None:
    r = ch.queue_declare("q")
    assert (r.queue, r.message_count, r.consumer_count) == ("q", 0, 0)
    ch.basic_publish("", "q", b"a")
    ch.basic_publish("", "q", b"b")
    ch.basic_consume("q", lambda m: None) if False else None
    assert ch.queue_declare("q") == ("q", 2, 0)
    ch.basic_get("q")  # unacked messages are not counted
    assert ch.queue_declare("q", passive=True).message_count == 1


def test_server_named_queue(ch: inbus.Channel) -> None:
    a = ch.queue_declare("").queue
    b = ch.queue_declare("", exclusive=True).queue
    for n in (a, b):
        assert re.fullmatch(r"amq\.gen-[A-Za-z0-9_-]{22}", n), n
    assert a != b


def test_redeclare_same_flags_is_fine(ch: inbus.Channel) -> None:
    ch.queue_declare("q", durable=True, auto_delete=False, arguments={"x-message-ttl": 5})
    ch.queue_declare("q", durable=True, arguments={"x-message-ttl": 5})
    ch.exchange_declare("x", "topic", durable=True)
    ch.exchange_declare("x", "topic", durable=True)
    # known predeclared exchanges may be redeclared with their own flags
    ch.exchange_declare("amq.direct", "direct", durable=True)


@pytest.mark.parametrize("first, second, text", [
    ({}, {"durable": True}, "inequivalent arg 'durable' for queue 'q' in vhost '/': "
     "received 'true' but current is 'false'"),
    ({}, {"auto_delete": True}, "inequivalent arg 'auto_delete' for queue 'q' in vhost '/':"
     " received 'true' but current is 'false'"),
    ({"arguments": {"x-message-ttl": 1000}}, {"arguments": {"x-message-ttl": 2000}},
     "inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': received '2000' but "
     "current is '1000'"),
    ({"arguments": {"x-message-ttl": 1000}}, {},
     "inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': received none but "
     "current is the value '1000' of type 'signedint'"),
    ({}, {"arguments": {"x-message-ttl": 1000}},
     "inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': received the value "
     "'1000' of type 'signedint' but current is none"),
])
def test_queue_redeclare_inequivalent(bus: Bus, first: dict[str, Any],
                                      second: dict[str, Any], text: str) -> None:
    ch = bus.channel()
    ch.queue_declare("q", **first)
    with fail(PreconditionFailed, 406, "PRECONDITION_FAILED - " + text,
              method="queue.declare"):
        ch.queue_declare("q", **second)
    assert ch.is_closed


@pytest.mark.parametrize("second, field, got, cur", [
    ({"exchange_type": "fanout"}, "type", "fanout", "direct"),
    ({"durable": True}, "durable", "true", "false"),
    ({"auto_delete": True}, "auto_delete", "true", "false"),
    ({"internal": True}, "internal", "true", "false"),
])
def test_exchange_redeclare_inequivalent(bus: Bus, second: dict[str, Any], field: str,
                                         got: str, cur: str) -> None:
    ch = bus.channel()
    ch.exchange_declare("x", "direct")
    with fail(PreconditionFailed, 406,
              f"PRECONDITION_FAILED - inequivalent arg '{field}' for exchange 'x' in vhost "
              f"'/': received '{got}' but current is '{cur}'", method="exchange.declare"):
        ch.exchange_declare("x", **second)


def test_predeclared_exchange_redeclared_with_other_type(ch: inbus.Channel) -> None:
    with fail(PreconditionFailed, 406,
              "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'amq.direct' in "
              "vhost '/': received 'fanout' but current is 'direct'"):
        ch.exchange_declare("amq.direct", "fanout", durable=True)


def test_passive_declares(bus: Bus) -> None:
    ch = bus.channel()
    with fail(NotFound, 404, "NOT_FOUND - no queue 'nope' in vhost '/'",
              method="queue.declare"):
        ch.queue_declare("nope", passive=True)
    ch = bus.channel()
    with fail(NotFound, 404, "NOT_FOUND - no exchange 'nope' in vhost '/'",
              method="exchange.declare"):
        ch.exchange_declare("nope", passive=True)
    ch = bus.channel()
    ch.queue_declare("q")
    ch.basic_publish("", "q", b"x")
    assert ch.queue_declare("q", passive=True, durable=True) == ("q", 1, 0)  # flags ignored
    ch.exchange_declare("amq.topic", passive=True)
    assert "nope" not in bus.statistics().vhosts["/"].queues  # never auto-created


@pytest.mark.parametrize("call, text", [
    (lambda ch: ch.queue_declare("amq.foo"),
     "ACCESS_REFUSED - queue name 'amq.foo' contains reserved prefix 'amq.*'"),
    (lambda ch: ch.exchange_declare("amq.foo", "direct"),
     "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix 'amq.*'"),
    (lambda ch: ch.exchange_declare("", "direct"), DEFAULT_REFUSED),
    (lambda ch: ch.exchange_delete(""), DEFAULT_REFUSED),
    (lambda ch: ch.exchange_delete("amq.direct"),
     "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed"),
    (lambda ch: (ch.queue_declare("q"), ch.queue_bind("q", "", "k")), DEFAULT_REFUSED),
    (lambda ch: (ch.queue_declare("q"), ch.queue_unbind("q", "", "q")), DEFAULT_REFUSED),
    (lambda ch: ch.exchange_bind("", "amq.direct", "k"), DEFAULT_REFUSED),
    (lambda ch: ch.exchange_bind("amq.direct", "", "k"), DEFAULT_REFUSED),
])
def test_access_refused(ch: inbus.Channel, call: Any, text: str) -> None:
    with fail(AccessRefused, 403, text):
        call(ch)
    assert ch.is_closed


def test_predeclared_exchanges(bus: Bus) -> None:
    xs = bus.statistics().vhosts["/"].exchanges
    assert {n: x.type for n, x in xs.items()} == {
        "": "direct", "amq.direct": "direct", "amq.fanout": "fanout", "amq.topic": "topic",
        "amq.headers": "headers", "amq.match": "headers"}
    assert all(x.durable for x in xs.values())


# --- deletes ---------------------------------------------------------------------------


def test_delete_missing_is_fine(ch: inbus.Channel) -> None:
    assert ch.queue_delete("nope") == 0
    ch.exchange_delete("nope")
    assert ch.is_open


def test_queue_delete_returns_ready_count_and_if_empty(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    for b in (b"1", b"2", b"3"):
        ch.basic_publish("", "q", b)
    with fail(PreconditionFailed, 406, "PRECONDITION_FAILED - queue 'q' in vhost '/' not "
              "empty", method="queue.delete"):
        ch.queue_delete("q", if_empty=True)
    ch = bus.channel()
    ch.basic_get("q")  # one unacked: not counted
    assert ch.queue_delete("q", if_unused=True) == 2
    assert "q" not in bus.statistics().vhosts["/"].queues


def test_queue_delete_if_unused(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    tag = ch.basic_consume("q", lambda m: None)
    with fail(PreconditionFailed, 406, "PRECONDITION_FAILED - queue 'q' in vhost '/' in use"):
        ch.queue_delete("q", if_unused=True)
    ch = bus.channel()
    assert ch.queue_delete("q", if_empty=True) == 0
    assert isinstance(tag, str)


def test_exchange_delete_if_unused(bus: Bus) -> None:
    ch = bus.channel()
    ch.exchange_declare("x")
    ch.exchange_declare("src")
    ch.exchange_bind("x", "src", "k")  # x is only a destination: still "unused"
    ch.exchange_delete("x", if_unused=True)
    ch.exchange_declare("x")
    ch.queue_declare("q")
    ch.queue_bind("q", "x", "k")
    with fail(PreconditionFailed, 406, "PRECONDITION_FAILED - exchange 'x' in vhost '/' in "
              "use", method="exchange.delete"):
        ch.exchange_delete("x", if_unused=True)


def test_deleting_queue_or_exchange_deletes_bindings(bus: Bus) -> None:
    ch = bus.channel()
    ch.exchange_declare("x", "fanout")
    ch.queue_declare("q")
    ch.queue_bind("q", "x")
    ch.queue_delete("q")
    assert bus.statistics().exchange("x").bindings == 0
    ch.queue_declare("q")  # a new queue of the same name is not bound
    ch.basic_publish("x", "", b"lost")
    assert ready(bus, "q") == 0
    ch.queue_bind("q", "x")
    ch.exchange_delete("x")
    ch.exchange_declare("x", "fanout")
    ch.basic_publish("x", "", b"lost")
    assert ready(bus, "q") == 0
    # an exchange deleted as a destination loses its bindings too
    ch.exchange_declare("e2", "fanout")
    ch.exchange_bind("e2", "x")
    ch.exchange_delete("e2")
    assert bus.statistics().exchange("x").bindings == 0


# --- errors close the channel / connection -------------------------------------------------


def test_failed_op_closes_channel_and_later_use_names_reason(bus: Bus) -> None:
    conn = bus.connection()
    ch = conn.channel()
    other = conn.channel()
    with pytest.raises(NotFound):
        ch.queue_declare("nope", passive=True)
    assert ch.is_closed and other.is_open and conn.is_open
    for call in (lambda: ch.queue_declare("q"), lambda: ch.basic_publish("", "q", b"x"),
                 lambda: ch.basic_get("q"), lambda: ch.basic_ack(1)):
        with pytest.raises(ChannelClosed) as ei:
            call()
        e = ei.value
        assert e.reply_code == 404
        assert e.reply_text == "NOT_FOUND - no queue 'nope' in vhost '/'"
        assert isinstance(e.reason, NotFound)
        assert "NOT_FOUND - no queue 'nope'" in str(e)
    other.queue_declare("q")  # the connection still works


def test_channel_closed_by_user(ch: inbus.Channel) -> None:
    ch.close()
    with pytest.raises(ChannelClosed) as ei:
        ch.queue_declare("q")
    assert ei.value.reason is None and ei.value.reply_code == 200
    ch.close()  # idempotent


def test_publish_errors_close_channel(bus: Bus) -> None:
    ch = bus.channel()
    with fail(NotFound, 404, "NOT_FOUND - no exchange 'nox' in vhost '/'",
              method="basic.publish"):
        ch.basic_publish("nox", "k", b"x")
    assert ch.is_closed
    ch = bus.channel()
    ch.exchange_declare("ix", "fanout", internal=True)
    with fail(AccessRefused, 403,
              "ACCESS_REFUSED - cannot publish to internal exchange 'ix' in vhost '/'"):
        ch.basic_publish("ix", "", b"x")
    assert ch.is_closed


@pytest.mark.parametrize("props, why", [
    # RabbitMQ 3.10 (rabbit_basic:message/3): CC / BCC must be arrays, delivery_mode 1 or 2.
    ({"headers": {"CC": "k"}}, '{unacceptable_type_in_header,"CC",longstr}'),
    ({"headers": {"CC": ["k"], "BCC": 1}}, '{unacceptable_type_in_header,"BCC",signedint}'),
    ({"headers": {"CC": None}}, '{unacceptable_type_in_header,"CC",void}'),
    ({"headers": {"BCC": {"k": 1}}}, '{unacceptable_type_in_header,"BCC",table}'),
    ({"delivery_mode": 0}, "{delivery_mode_unknown,0}"),
    ({"delivery_mode": 3}, "{delivery_mode_unknown,3}"),
])
def test_invalid_message_is_406(bus: Bus, props: dict[str, Any], why: str) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    with fail(PreconditionFailed, 406, f"PRECONDITION_FAILED - invalid message: {why}",
              method="basic.publish"):
        ch.basic_publish("", "q", b"x", BasicProperties(**props))
    assert ch.is_closed
    assert ready(bus, "q") == 0


def test_cc_array_elements_that_are_not_strings_are_ignored(ch: inbus.Channel) -> None:
    ch.queue_declare("a")
    ch.queue_declare("b")
    ch.basic_publish("", "a", b"x", BasicProperties(headers={"CC": [1, b"b", "b"],
                                                             "BCC": []}))
    assert (drain(ch, "a"), drain(ch, "b")) == ([b"x"], [b"x"])


@pytest.mark.parametrize("call, text", [
    (lambda ch: ch.basic_get("noq"), "NOT_FOUND - no queue 'noq' in vhost '/'"),
    (lambda ch: ch.queue_purge("noq"), "NOT_FOUND - no queue 'noq' in vhost '/'"),
    (lambda ch: ch.queue_bind("noq", "amq.direct", "k"),
     "NOT_FOUND - no queue 'noq' in vhost '/'"),
    (lambda ch: (ch.queue_declare("q"), ch.queue_bind("q", "nox", "k")),
     "NOT_FOUND - no exchange 'nox' in vhost '/'"),
    (lambda ch: ch.queue_bind("noq", "nox", "k"),  # RabbitMQ names the exchange first
     "NOT_FOUND - no exchange 'nox' in vhost '/'"),
    (lambda ch: ch.exchange_bind("nox", "amq.direct", "k"),
     "NOT_FOUND - no exchange 'nox' in vhost '/'"),
    (lambda ch: ch.exchange_bind("amq.direct", "nox", "k"),
     "NOT_FOUND - no exchange 'nox' in vhost '/'"),
    (lambda ch: ch.basic_consume("noq", lambda m: None),
     "NOT_FOUND - no queue 'noq' in vhost '/'"),
])
def test_not_found(ch: inbus.Channel, call: Any, text: str) -> None:
    with fail(NotFound, 404, text):
        call(ch)
    assert ch.is_closed


def test_unbind_missing_is_fine(ch: inbus.Channel) -> None:
    ch.queue_unbind("noq", "amq.direct", "k")
    ch.exchange_unbind("nox", "amq.direct", "k")
    ch.queue_declare("q")
    ch.queue_unbind("q", "nox", "k")
    ch.queue_unbind("q", "amq.direct", "never-bound")
    assert ch.is_open


def test_unknown_exchange_type_closes_connection(bus: Bus) -> None:
    conn = bus.connection()
    ch, other = conn.channel(), conn.channel()
    with fail(CommandInvalid, 503, "COMMAND_INVALID - unknown exchange type 'nonsense'",
              scope="connection", method="exchange.declare"):
        ch.exchange_declare("bt", "nonsense")
    assert conn.is_closed and ch.is_closed and other.is_closed
    with pytest.raises(ChannelClosed) as ei:  # the channel names why it closed
        other.queue_declare("q")
    assert ei.value.reply_code == 503
    with pytest.raises(ConnectionClosed) as ci:
        conn.channel()
    assert ci.value.reply_code == 503
    bus.channel().queue_declare("q")  # other connections are unaffected


def test_prefetch_size_and_immediate_are_540(bus: Bus) -> None:
    conn = bus.connection()
    ch = conn.channel()
    with fail(NotImplementedByBus, 540, "NOT_IMPLEMENTED - prefetch_size!=0 (10)",
              scope="connection", method="basic.qos"):
        ch.basic_qos(prefetch_size=10)
    assert conn.is_closed
    conn = bus.connection()
    ch = conn.channel()
    with fail(NotImplementedByBus, 540, "NOT_IMPLEMENTED - immediate=true",
              scope="connection", method="basic.publish"):
        ch.basic_publish("", "q", b"x", immediate=True)
    assert conn.is_closed


def test_headers_bad_x_match(ch: inbus.Channel) -> None:
    ch.exchange_declare("h", "headers")
    ch.queue_declare("q")
    with fail(PreconditionFailed, 406, 'PRECONDITION_FAILED - Invalid x-match field value '
              '<<"bogus">>; expected all, any, all-with-x, or any-with-x'):
        ch.queue_bind("q", "h", "", arguments={"x-match": "bogus"})


@pytest.mark.parametrize("mode, text", [
    # RabbitMQ 3.10 wants a longstr: pika sends bytes as a byte array ('x').
    (b"any", 'Invalid x-match field type binary (value <<"any">>); expected longstr'),
    (1, "Invalid x-match field type signedint (value 1); expected longstr"),
    (True, "Invalid x-match field type bool (value true); expected longstr"),
])
def test_headers_x_match_must_be_a_string(bus: Bus, mode: Any, text: str) -> None:
    ch = bus.channel()
    ch.exchange_declare("h", "headers")
    ch.queue_declare("q")
    with fail(PreconditionFailed, 406, "PRECONDITION_FAILED - " + text):
        ch.queue_bind("q", "h", "", arguments={"x-match": mode})
    ch = bus.channel()
    with fail(PreconditionFailed, 406, "PRECONDITION_FAILED - " + text):
        ch.exchange_bind("amq.direct", "h", "", arguments={"x-match": mode})


def test_headers_binding_validated_before_exclusive_access(bus: Bus) -> None:
    # RabbitMQ checks the binding (406) before another connection's exclusive queue (405),
    # and a missing queue (404) before both.
    owner = bus.connection().channel()
    owner.queue_declare("ex", exclusive=True)
    owner.exchange_declare("h", "headers")
    with fail(PreconditionFailed, 406, 'PRECONDITION_FAILED - Invalid x-match field value '
              '<<"bogus">>; expected all, any, all-with-x, or any-with-x'):
        bus.channel().queue_bind("ex", "h", "", arguments={"x-match": "bogus"})
    with fail(ResourceLocked, 405, LOCKED.format("ex")):
        bus.channel().queue_bind("ex", "h", "", arguments={"x-match": "any"})
    with fail(NotFound, 404, "NOT_FOUND - no queue 'nope' in vhost '/'"):
        bus.channel().queue_bind("nope", "h", "", arguments={"x-match": "bogus"})


# --- routing ---------------------------------------------------------------------------


def test_default_exchange(ch: inbus.Channel, bus: Bus) -> None:
    ch.queue_declare("a")
    ch.queue_declare("b")
    ch.basic_publish("", "a", b"to a")
    ch.basic_publish("", "c", b"nowhere")
    assert drain(ch, "a") == [b"to a"] and drain(ch, "b") == []
    assert bus.statistics().unroutable == 1


def test_direct_routing(ch: inbus.Channel) -> None:
    ch.exchange_declare("d", "direct")
    for q in ("info", "err", "both"):
        ch.queue_declare(q)
    ch.queue_bind("info", "d", "info")
    ch.queue_bind("err", "d", "error")
    ch.queue_bind("both", "d", "info")
    ch.queue_bind("both", "d", "error")
    for rk in ("info", "error", "debug"):
        ch.basic_publish("d", rk, rk)
    assert drain(ch, "info") == [b"info"]
    assert drain(ch, "err") == [b"error"]
    assert drain(ch, "both") == [b"info", b"error"]


def test_queue_bind_routing_key_defaults_to_queue_name(ch: inbus.Channel) -> None:
    ch.queue_declare("q")
    ch.queue_bind("q", "amq.direct")
    ch.basic_publish("amq.direct", "q", b"x")
    assert drain(ch, "q") == [b"x"]


def test_fanout_routing(ch: inbus.Channel) -> None:
    ch.exchange_declare("f", "fanout")
    for q in ("a", "b"):
        ch.queue_declare(q)
        ch.queue_bind(q, "f", "ignored-" + q)
    ch.basic_publish("f", "anything", b"x")
    assert drain(ch, "a") == [b"x"] and drain(ch, "b") == [b"x"]


@pytest.mark.parametrize("pattern, key, hit", [
    ("audit.#", "audit.irs.corporate", True),
    ("audit.#", "audit.irs", True),
    ("audit.#", "audit", True),
    ("audit.*", "audit.irs", True),
    ("audit.*", "audit.irs.corporate", False),
    ("audit.*", "audit", False),
    ("#", "", True),
    ("a.#.b", "a.b", True),
    ("a.*", "a.b.c", False),
    ("*.b.*", "a.b.c", True),
    ("a.*.b", "a..b", True),
    ("", "", True),
    ("*", "", False),
])
def test_topic_routing(ch: inbus.Channel, pattern: str, key: str, hit: bool) -> None:
    ch.exchange_declare("t", "topic")
    ch.queue_declare("q")
    ch.queue_bind("q", "t", pattern)
    ch.basic_publish("t", key, b"x")
    assert drain(ch, "q") == ([b"x"] if hit else [])


def test_topic_one_copy_when_several_bindings_match(ch: inbus.Channel) -> None:
    ch.exchange_declare("t", "topic")
    ch.queue_declare("q")
    for p in ("audit.#", "audit.*", "#", "*.irs", "audit.irs"):
        ch.queue_bind("q", "t", p)
    ch.basic_publish("t", "audit.irs", b"once")
    assert drain(ch, "q") == [b"once"]
    ch.queue_unbind("q", "t", "#")
    ch.queue_unbind("q", "t", "audit.#")
    ch.basic_publish("t", "audit.irs.corporate", b"no")
    ch.basic_publish("t", "x.irs", b"yes")
    assert drain(ch, "q") == [b"yes"]


# (binding arguments, message headers, routed?) -- checked against RabbitMQ 3.10
HEADERS_CASES = [
    ({"x-match": "all", "a": 1}, {"a": 1}, True),
    ({"x-match": "all", "a": 1}, {"a": 1.0}, True),
    ({"x-match": "all", "a": 1.0}, {"a": 1}, True),
    ({"x-match": "all", "a": 1.5}, {"a": 1}, False),
    ({"x-match": "all", "a": 1}, {"a": "1"}, False),
    ({"x-match": "all", "a": 1}, {"a": True}, False),
    ({"x-match": "all", "a": True}, {"a": 1}, False),
    ({"x-match": "all", "a": True}, {"a": True}, True),
    ({"x-match": "all", "a": False}, {"a": 0}, False),
    ({"x-match": "all", "a": 0}, {"a": False}, False),
    ({"x-match": "all", "a": "1"}, {"a": "1"}, True),
    ({"x-match": "all", "a": b"1"}, {"a": "1"}, True),
    ({"x-match": "all", "a": 1}, {"a": 1, "b": 2}, True),
    ({"x-match": "all", "a": 1}, {"b": 2}, False),
    ({"x-match": "all", "a": 1}, None, False),
    # None in a binding = the key is present (any value, even None)
    ({"x-match": "all", "a": None}, {"a": 0}, True),
    ({"x-match": "all", "a": None}, {"a": None}, True),
    ({"x-match": "all", "a": None}, {"b": 1}, False),
    # no keys: all matches everything, any nothing
    ({"x-match": "all"}, None, True),
    ({"x-match": "all"}, {"z": 1}, True),
    ({}, {}, True),
    ({"x-match": "any"}, {"a": 1}, False),
    # default mode is all
    ({"a": 1, "b": 2}, {"a": 1, "b": 2}, True),
    ({"a": 1, "b": 2}, {"a": 1}, False),
    ({"x-match": "any", "a": 1, "b": 2}, {"b": 2}, True),
    ({"x-match": "any", "a": 1, "b": 2}, {"a": 2, "b": 3}, False),
    # x- keys are ignored unless -with-x
    ({"x-match": "all", "x-k": 1}, {}, True),
    ({"x-match": "all", "a": 1, "x-k": 1}, {"a": 1}, True),
    ({"x-match": "any", "x-k": 1}, {"x-k": 1}, False),
    ({"x-match": "any", "x-k": None}, {"x-k": 1}, False),
    ({"x-match": "all-with-x", "x-k": 1}, {"x-k": 1}, True),
    ({"x-match": "all-with-x", "x-k": 1}, {}, False),
    ({"x-match": "all-with-x", "x-k": None}, {"x-k": None}, True),
    ({"x-match": "all-with-x", "x-k": None}, {"x-k": "1"}, True),
    ({"x-match": "any-with-x", "x-k": 1}, {"x-k": 1, "a": 1}, True),
    ({"x-match": "any-with-x", "x-k": 1, "a": 5}, {"a": 5}, True),
    ({"x-match": "any-with-x", "x-k": 1, "a": 5}, {"x-k": "1"}, False),
    # as RabbitMQ 3.10 compares what pika sent: a Decimal is no number, a timestamp is
    # its seconds, and tables and arrays compare in order with their elements' types
    ({"a": 1}, {"a": Decimal("1")}, False),
    ({"a": Decimal("1")}, {"a": 1}, False),
    ({"a": Decimal("1.5")}, {"a": Decimal("1.50")}, True),
    ({"a": 5}, {"a": datetime.datetime(1970, 1, 1, 0, 0, 5)}, True),
    ({"a": [1]}, {"a": [True]}, False),
    ({"a": {"n": 1}}, {"a": {"n": True}}, False),
    ({"a": ["1"]}, {"a": [b"1"]}, False),
    ({"a": [Decimal("1")]}, {"a": [1]}, False),
    ({"a": {"x": 1, "y": 2}}, {"a": {"y": 2, "x": 1}}, False),
    ({"a": {"x": 1, "y": [2, "s"]}}, {"a": {"x": 1, "y": [2, "s"]}}, True),
]


@pytest.mark.parametrize("args, headers, hit", HEADERS_CASES)
def test_headers_routing(ch: inbus.Channel, args: dict[str, Any],
                         headers: dict[str, Any] | None, hit: bool) -> None:
    ch.exchange_declare("h", "headers")
    ch.queue_declare("q")
    ch.queue_bind("q", "h", "", arguments=args)
    ch.basic_publish("h", "ignored", b"x", BasicProperties(headers=headers))
    assert drain(ch, "q") == ([b"x"] if hit else [])


def test_headers_one_copy_and_amq_match(ch: inbus.Channel) -> None:
    ch.queue_declare("q")
    ch.queue_bind("q", "amq.match", "", {"x-match": "any", "a": 1})
    ch.queue_bind("q", "amq.match", "", {"x-match": "all", "b": 2})
    ch.basic_publish("amq.match", "", b"x", BasicProperties(headers={"a": 1, "b": 2}))
    assert drain(ch, "q") == [b"x"]


def test_binding_identity_includes_arguments(bus: Bus) -> None:
    ch = bus.channel()
    ch.exchange_declare("h", "headers")
    ch.queue_declare("q")
    ch.queue_bind("q", "h", "", {"a": 1})
    ch.queue_bind("q", "h", "", {"a": 1})  # identical: one binding
    ch.queue_bind("q", "h", "", {"b": 2})
    assert bus.statistics().exchange("h").bindings == 2
    ch.queue_unbind("q", "h", "", {"a": 1})
    ch.basic_publish("h", "", b"a", BasicProperties(headers={"a": 1}))
    ch.basic_publish("h", "", b"b", BasicProperties(headers={"b": 2}))
    assert drain(ch, "q") == [b"b"]
    ch.exchange_declare("d")
    ch.queue_bind("q", "d", "k")
    ch.queue_bind("q", "d", "k", {"x-any": 1})
    assert bus.statistics().exchange("d").bindings == 2
    ch.basic_publish("d", "k", b"once")
    ch.queue_unbind("q", "d", "k")
    ch.basic_publish("d", "k", b"still bound by the other")
    ch.queue_unbind("q", "d", "k", {"x-any": 1})
    ch.basic_publish("d", "k", b"gone")
    assert drain(ch, "q") == [b"once", b"still bound by the other"]


def test_binding_identity_keeps_argument_types(bus: Bus) -> None:
    # RabbitMQ 3.10: the arguments' AMQP types are part of a binding (1, True and
    # Decimal("1") make three bindings); nested tables keep their order.
    ch = bus.channel()
    ch.exchange_declare("h", "headers")
    ch.queue_declare("q")
    for v in (1, True, Decimal("1"), {"x": 1, "y": 2}, {"y": 2, "x": 1}):
        ch.queue_bind("q", "h", "", {"a": v})
    assert bus.statistics().exchange("h").bindings == 5
    ch.queue_unbind("q", "h", "", {"a": Decimal("1")})
    ch.queue_unbind("q", "h", "", {"a": {"y": 2, "x": 1}})
    ch.basic_publish("h", "", b"int", BasicProperties(headers={"a": 1}))
    ch.basic_publish("h", "", b"table", BasicProperties(headers={"a": {"x": 1, "y": 2}}))
    ch.basic_publish("h", "", b"decimal", BasicProperties(headers={"a": Decimal("1")}))
    assert drain(ch, "q") == [b"int", b"table"]


def test_exchange_to_exchange(ch: inbus.Channel) -> None:
    ch.exchange_declare("front", "topic")
    ch.exchange_declare("logs", "fanout")
    ch.exchange_declare("errs", "direct")
    ch.exchange_bind("logs", "front", "log.#")
    ch.exchange_bind("errs", "front", "log.error")
    ch.queue_declare("all")
    ch.queue_declare("err")
    ch.queue_bind("all", "logs")
    ch.queue_bind("err", "errs", "log.error")
    ch.queue_bind("all", "errs", "log.error")  # reached twice: one copy
    ch.basic_publish("front", "log.info", b"i")
    ch.basic_publish("front", "log.error", b"e")
    ch.basic_publish("front", "other", b"o")
    assert drain(ch, "all") == [b"i", b"e"]
    assert drain(ch, "err") == [b"e"]
    ch.exchange_unbind("logs", "front", "log.#")
    ch.basic_publish("front", "log.info", b"i2")
    assert drain(ch, "all") == []


def test_exchange_cycles_terminate_with_one_copy(bus: Bus) -> None:
    ch = bus.channel()
    ch.exchange_declare("a", "fanout")
    ch.exchange_declare("b", "fanout")
    ch.exchange_declare("c", "fanout")
    ch.exchange_bind("b", "a")
    ch.exchange_bind("c", "b")
    ch.exchange_bind("a", "c")
    ch.exchange_bind("a", "a")  # self loop
    ch.queue_declare("q")
    for x in ("a", "b", "c"):
        ch.queue_bind("q", x)
    ch.basic_publish("b", "", b"x")
    assert drain(ch, "q") == [b"x"]
    st = bus.statistics()
    assert st.exchange("b").published_in == 1 and st.exchange("b").routed_out == 1


# --- vhosts ----------------------------------------------------------------------------


def test_vhosts_are_isolated(bus: Bus) -> None:
    bus.vhost_declare("v2")
    bus.vhost_declare("v2")  # no-op
    assert bus.vhosts == ["/", "v2"]
    a, b = bus.channel(), bus.channel("v2")
    a.queue_declare("q")
    a.exchange_declare("x", "fanout")
    with fail(NotFound, 404, "NOT_FOUND - no queue 'q' in vhost 'v2'"):
        b.queue_declare("q", passive=True)
    b = bus.connection(vhost="v2").channel()
    with fail(NotFound, 404, "NOT_FOUND - no exchange 'x' in vhost 'v2'"):
        b.basic_publish("x", "", b"m")
    b = bus.channel("v2")
    b.queue_declare("q")
    b.basic_publish("", "q", b"v2 only")
    assert drain(a, "q") == [] and drain(b, "q") == [b"v2 only"]
    st = bus.statistics()
    assert set(st.vhosts) == {"/", "v2"} and "x" not in st.vhosts["v2"].exchanges


def test_missing_vhost_is_530_connection_error(bus: Bus) -> None:
    with fail(NotAllowed, 530, "NOT_ALLOWED - vhost nope not found", scope="connection",
              method="connection.open"):
        bus.connection(vhost="nope")
    with pytest.raises(NotAllowed):
        bus.channel("nope")


def test_vhost_delete_closes_its_connections(bus: Bus) -> None:
    bus.vhost_declare("v2")
    ch = bus.channel("v2")
    ch.queue_declare("q")
    keep = bus.channel()
    bus.vhost_delete("v2")
    assert ch.is_closed and keep.is_open
    with pytest.raises(NotAllowed):
        bus.connection("v2")
    with fail(NotFound, 404, "NOT_FOUND - no vhost 'nope'"):
        bus.vhost_delete("nope")


# --- exclusive queues ------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda ch: ch.queue_declare("ex", passive=True),
    lambda ch: ch.queue_declare("ex", exclusive=True),
    lambda ch: ch.queue_declare("ex"),
    lambda ch: ch.basic_get("ex"),
    lambda ch: ch.basic_consume("ex", lambda m: None),
    lambda ch: ch.queue_purge("ex"),
    lambda ch: ch.queue_delete("ex"),
    lambda ch: ch.queue_bind("ex", "amq.direct", "k"),
    lambda ch: ch.queue_unbind("ex", "amq.direct", "bound"),
])
def test_exclusive_queue_locked_for_other_connections(bus: Bus, call: Any) -> None:
    owner = bus.connection().channel()
    owner.queue_declare("ex", exclusive=True)
    owner.queue_bind("ex", "amq.direct", "bound")
    other = bus.connection().channel()
    with fail(ResourceLocked, 405, LOCKED.format("ex")):
        call(other)
    assert other.is_closed
    # another channel of the owning connection may use it
    same = owner.connection.channel()
    same.queue_declare("ex", passive=True)
    same.basic_get("ex")


def test_unbinding_a_missing_binding_of_another_connections_exclusive_queue(
        bus: Bus) -> None:
    """RabbitMQ 3.10: 405 only when the binding exists; a no-op unbind succeeds."""
    owner = bus.connection().channel()
    owner.queue_declare("ex", exclusive=True)
    other = bus.connection().channel()
    other.queue_unbind("ex", "amq.direct", "never-bound")
    assert other.is_open


def test_exclusive_queue_publish_from_other_connection(bus: Bus) -> None:
    owner = bus.connection().channel()
    owner.queue_declare("ex", exclusive=True)
    bus.channel().basic_publish("", "ex", b"x")  # publishing is allowed
    assert drain(owner, "ex") == [b"x"]


def test_exclusive_queue_is_never_durable(bus: Bus) -> None:
    # RabbitMQ 3.10: "Durable = DurableDeclare andalso not ExclusiveDeclare", so either
    # durable flag redeclares an exclusive queue.
    ch = bus.channel()
    ch.queue_declare("ex", durable=True, exclusive=True)
    assert bus.statistics().vhosts["/"].queues["ex"].durable is False
    ch.queue_declare("ex", durable=False, exclusive=True)
    ch.queue_declare("ex", durable=True, exclusive=True)
    ch.queue_declare("ex2", exclusive=True)
    ch.queue_declare("ex2", durable=True, exclusive=True)
    assert ch.is_open


def test_exclusive_flag_mismatch_same_connection(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("ex", exclusive=True)
    with fail(ResourceLocked, 405, LOCKED.format("ex")):
        ch.queue_declare("ex")
    ch = bus.channel()
    ch.queue_declare("ne")
    with fail(ResourceLocked, 405, LOCKED.format("ne")):
        ch.queue_declare("ne", exclusive=True)


def test_exclusive_mismatch_is_checked_before_other_flags(bus: Bus) -> None:
    """RabbitMQ 3.10 checks exclusive access first: 405 even when durable or auto_delete
    differ too."""
    ch = bus.channel()
    ch.queue_declare("x", exclusive=True)
    with fail(ResourceLocked, 405, LOCKED.format("x")):
        ch.queue_declare("x", exclusive=False, auto_delete=True)
    ch = bus.channel()
    ch.queue_declare("y")
    with fail(ResourceLocked, 405, LOCKED.format("y")):
        ch.queue_declare("y", exclusive=True, durable=True)


def test_exclusive_queue_dies_with_connection(bus: Bus) -> None:
    conn = bus.connection()
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).queue
    ch.queue_bind(q, "amq.fanout")
    ch.basic_publish("", q, b"x")
    ch.close()  # closing the channel is not enough
    assert q in bus.statistics().vhosts["/"].queues
    conn.close()
    assert q not in bus.statistics().vhosts["/"].queues
    assert bus.statistics().exchange("amq.fanout").bindings == 0
    with fail(NotFound, 404, f"NOT_FOUND - no queue '{q}' in vhost '/'"):
        bus.channel().queue_declare(q, passive=True)


# --- auto-delete -----------------------------------------------------------------------


def test_auto_delete_exchange(bus: Bus) -> None:
    ch = bus.channel()

    def exists(name: str) -> bool:
        return name in bus.statistics().vhosts["/"].exchanges

    ch.exchange_declare("ad", "direct", auto_delete=True)
    assert exists("ad")  # never bound: stays
    ch.queue_declare("q")
    ch.queue_bind("q", "ad", "a")
    ch.queue_bind("q", "ad", "b")
    ch.queue_unbind("q", "ad", "a")
    assert exists("ad")
    ch.queue_unbind("q", "ad", "b")
    assert not exists("ad")  # last binding gone
    ch.exchange_declare("ad", "direct", auto_delete=True)
    ch.queue_bind("q", "ad", "a")
    ch.queue_delete("q")
    assert not exists("ad")  # its queue went
    ch.exchange_declare("ad", "direct", auto_delete=True)
    ch.exchange_declare("d", "fanout")
    ch.exchange_bind("d", "ad", "k")
    ch.exchange_unbind("d", "ad", "k")
    assert not exists("ad")  # exchange-to-exchange bindings count as a source
    ch.exchange_declare("ad", "direct", auto_delete=True)
    ch.exchange_bind("ad", "d", "k")
    ch.exchange_unbind("ad", "d", "k")
    assert exists("ad")  # being a destination does not count
    ch.exchange_bind("d", "ad", "k")
    ch.exchange_delete("d")
    assert not exists("ad")  # its destination exchange went


def test_auto_delete_queue_not_before_first_consumer(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("adq", auto_delete=True)
    ch.basic_publish("", "adq", b"x")
    assert ch.basic_get("adq", auto_ack=True) is not None  # basic_get is not a consumer
    assert "adq" in bus.statistics().vhosts["/"].queues
    t1 = ch.basic_consume("adq", lambda m: None)
    t2 = ch.basic_consume("adq", lambda m: None)
    ch.basic_cancel(t1)
    assert ch.queue_declare("adq", passive=True).consumer_count == 1
    ch.basic_cancel(t2)
    assert "adq" not in bus.statistics().vhosts["/"].queues


# --- publishing: returns, confirms, bodies, names, properties ---------------------------------


def test_mandatory_return_via_callback(bus: Bus) -> None:
    ch = bus.channel()
    got: list[Any] = []
    ch.add_on_return_callback(got.append)
    props = BasicProperties(content_type="text/plain", headers={"h": 1})
    ch.basic_publish("amq.direct", "nowhere", b"x", props, mandatory=True)
    ch.basic_publish("amq.direct", "nowhere", b"dropped")  # not mandatory: dropped silently
    assert got == []  # delivered by the pump, not inside basic_publish
    assert bus.run_until_idle() == 1
    [r] = got
    assert (r.reply_code, r.reply_text, r.exchange, r.routing_key, r.body) == (
        312, "NO_ROUTE", "amq.direct", "nowhere", b"x")
    assert r.properties == props
    st = bus.statistics()
    assert (st.returned, st.unroutable, st.published) == (1, 2, 2)
    ch.queue_declare("q")
    ch.basic_publish("", "q", b"routable", mandatory=True)
    assert bus.run_until_idle() == 0 and len(got) == 1


def test_confirm_delivery_raises_unroutable(bus: Bus) -> None:
    ch = bus.channel()
    ch.confirm_delivery()
    with pytest.raises(UnroutableError) as ei:
        ch.basic_publish("amq.direct", "nowhere", b"x", mandatory=True)
    [r] = ei.value.messages
    assert (r.reply_code, r.reply_text, r.body) == (312, "NO_ROUTE", b"x")
    assert ch.is_open
    ch.basic_publish("amq.direct", "nowhere", b"x")  # not mandatory: no error
    ch.queue_declare("q")
    ch.basic_publish("", "q", b"ok", mandatory=True)
    assert drain(ch, "q") == [b"ok"]


@pytest.mark.parametrize("body, expect", [
    (b"bytes", b"bytes"), ("h\u00e9llo", "h\u00e9llo".encode()), (bytearray(b"ba"), b"ba"),
    (memoryview(b"mv"), b"mv"), (b"", b""),
])
def test_body_types(ch: inbus.Channel, body: Any, expect: bytes) -> None:
    ch.queue_declare("q")
    ch.basic_publish("", "q", body)
    m = ch.basic_get("q", auto_ack=True)
    assert m is not None and type(m.body) is bytes and m.body == expect


def test_body_is_copied(ch: inbus.Channel) -> None:
    ch.queue_declare("q")
    buf = bytearray(b"abc")
    ch.basic_publish("", "q", buf)
    buf[0] = ord("z")
    assert drain(ch, "q") == [b"abc"]


@pytest.mark.parametrize("body", [1, None, 1.5, ["a"], {"a": 1}, object()])
def test_bad_body_type(ch: inbus.Channel, body: Any) -> None:
    with pytest.raises(TypeError, match="body"):
        ch.basic_publish("", "q", body)
    assert ch.is_open  # argument misuse does not close the channel


@pytest.mark.parametrize("call, arg", [
    (lambda ch, n: ch.queue_declare(n), "queue"),
    (lambda ch, n: ch.exchange_declare(n), "exchange"),
    (lambda ch, n: ch.basic_publish("", n, b"x"), "routing_key"),
    (lambda ch, n: ch.basic_publish(n, "k", b"x"), "exchange"),
    (lambda ch, n: ch.basic_publish("amq.topic", n, b"x"), "routing_key"),
    (lambda ch, n: ch.basic_publish("amq.direct", n, b"x",
                                    BasicProperties(headers={"CC": ["q"]})), "routing_key"),
    (lambda ch, n: ch.queue_bind("q", "amq.direct", n), "routing_key"),
    (lambda ch, n: ch.exchange_bind("amq.direct", "amq.topic", n), "routing_key"),
    (lambda ch, n: ch.basic_consume("q", lambda m: None, consumer_tag=n), "consumer_tag"),
])
def test_names_over_255_bytes(bus: Bus, ch: inbus.Channel, call: Any, arg: str) -> None:
    ch.queue_declare("q")
    with pytest.raises(ValueError, match=arg):
        call(ch, "n" * 256)
    with pytest.raises(ValueError, match=arg):
        call(ch, "\u00e9" * 128)  # 128 characters, 256 bytes
    assert ch.is_open
    assert bus.statistics().published == 0  # (refused before it counts as published)


def test_over_long_names_are_refused_before_anything_else(bus: Bus) -> None:
    # Argument misuse raises first, whatever else is wrong with the call, and never
    # closes the channel; a CC header may carry a long routing key (a header value),
    # which must not make the same key acceptable as the routing key afterwards.
    ch = bus.channel()
    ch.queue_declare("q")
    ch.queue_bind("q", "amq.topic", "#")
    ch.basic_publish("amq.topic", "a", b"x", BasicProperties(headers={"CC": ["k" * 256]}))
    for exchange, kwargs in (("amq.topic", {}), ("nowhere", {}),
                             ("amq.direct", {"immediate": True}),
                             ("amq.direct", {"properties": BasicProperties(expiration="x")})):
        with pytest.raises(ValueError, match="routing_key"):
            ch.basic_publish(exchange, "k" * 256, b"x", **kwargs)
        assert ch.is_open
    with pytest.raises(ValueError, match="exchange"):
        ch.basic_publish("x" * 256, "k", b"x", immediate=True)
    assert ch.is_open and bus.statistics().published == 1
    ch.close()
    with pytest.raises(ValueError, match="routing_key"):
        ch.basic_publish("amq.direct", "k" * 256, b"x")


def test_names_of_255_bytes_are_fine(ch: inbus.Channel) -> None:
    n = "n" * 255
    ch.queue_declare(n)
    ch.exchange_declare(n, "fanout")
    ch.queue_bind(n, n, n)
    ch.basic_publish(n, n, b"x")
    assert drain(ch, n) == [b"x"]
    m = "\u00e9" * 127 + "n"  # 255 bytes
    ch.queue_declare(m)


def test_bad_name_types(ch: inbus.Channel) -> None:
    with pytest.raises(TypeError, match="queue"):
        ch.queue_declare(b"q")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="routing_key"):
        ch.basic_publish("", 5, b"x")  # type: ignore[arg-type]


def test_properties_none_when_not_published(ch: inbus.Channel) -> None:
    ch.queue_declare("q")
    ch.basic_publish("", "q", b"x")
    m = ch.basic_get("q", auto_ack=True)
    assert m is not None
    for f in ("content_type", "content_encoding", "headers", "delivery_mode", "priority",
              "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type",
              "user_id", "app_id", "cluster_id"):
        assert getattr(m.properties, f) is None, f
    full = BasicProperties(
        content_type="application/json", content_encoding="utf-8", headers={"k": [1, "v"]},
        delivery_mode=2, priority=3, correlation_id="c", reply_to="r", expiration="60000",
        message_id="m", timestamp=1700000000, type="t", user_id="guest", app_id="a",
        cluster_id="cl")
    ch.basic_publish("", "q", b"y", full)
    m = ch.basic_get("q", auto_ack=True)
    assert m is not None and m.properties == full
    assert (m.exchange, m.routing_key, m.redelivered, m.consumer_tag) == ("", "q", False, None)


def test_the_publisher_may_reuse_and_change_its_properties(ch: inbus.Channel) -> None:
    """As with pika (whose publish encodes them), changing a BasicProperties object (or its
    headers, nested values included) after basic_publish changes nothing published."""
    ch.queue_declare("q")
    props = BasicProperties(headers={"trail": ["start"], "meta": {"n": 0}})
    for i in range(3):
        props.correlation_id = str(i)
        props.headers["trail"].append(i)
        props.headers["meta"]["n"] = i
        ch.basic_publish("", "q", b"x", props)
    got = [ch.basic_get("q", auto_ack=True) for _ in range(3)]
    assert [(m.properties.correlation_id, m.properties.headers["trail"],
             m.properties.headers["meta"]) for m in got if m is not None] == [
        ("0", ["start", 0], {"n": 0}), ("1", ["start", 0, 1], {"n": 1}),
        ("2", ["start", 0, 1, 2], {"n": 2})]
    assert props.correlation_id == "2" and props.headers["meta"] == {"n": 2}  # untouched
    with pytest.raises(TypeError, match="inbus.BasicProperties, not dict"):
        ch.basic_publish("", "q", b"x", {"delivery_mode": 2})  # type: ignore[arg-type]
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(TypeError, match="reference cycle"):
        ch.basic_publish("", "q", b"x", BasicProperties(headers=cyclic))
    assert ch.queue_declare("q", passive=True).message_count == 0


def test_basic_get_message_count_and_empty(ch: inbus.Channel) -> None:
    ch.queue_declare("q")
    assert ch.basic_get("q") is None
    for i in range(3):
        ch.basic_publish("", "q", str(i))
    counts = []
    while (m := ch.basic_get("q")) is not None:
        counts.append((m.body, m.message_count, m.delivery_tag))
    assert counts == [(b"0", 2, 1), (b"1", 1, 2), (b"2", 0, 3)]


def test_queue_purge_returns_ready_count(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    for i in range(3):
        ch.basic_publish("", "q", str(i))
    m = ch.basic_get("q")
    assert m is not None
    n = ch.queue_purge("q")
    assert type(n) is int and n == 2
    assert ch.queue_purge("q") == 0
    ch.basic_reject(m.delivery_tag)  # the unacked one survived the purge
    assert drain(ch, "q") == [b"0"]


def test_get_ack_nack_reject_recover(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    for i in range(4):
        ch.basic_publish("", "q", str(i))
    ms = [ch.basic_get("q") for _ in range(4)]
    assert [m.delivery_tag for m in ms if m] == [1, 2, 3, 4]
    ch.basic_ack(1)
    ch.basic_reject(2, requeue=False)  # dropped (no dead-letter exchange)
    ch.basic_nack(3, requeue=True)
    st = bus.statistics().queue("q")
    assert (st.messages_ready, st.messages_unacknowledged) == (1, 1)
    ch.basic_recover(requeue=True)
    got = [ch.basic_get("q") for _ in range(2)]
    assert [(m.body, m.redelivered, m.delivery_tag) for m in got if m] == [
        (b"2", True, 5), (b"3", True, 6)]
    ch.basic_nack(0, multiple=True, requeue=False)
    assert ready(bus, "q") == 0


def test_unknown_ack_tags(bus: Bus) -> None:
    ch = bus.channel()
    with fail(PreconditionFailed, 406, "PRECONDITION_FAILED - unknown delivery tag 99",
              method="basic.ack"):
        ch.basic_ack(99)
    for call, tag, method in [
        (lambda c: c.basic_nack(7), 7, "basic.nack"),
        (lambda c: c.basic_reject(7), 7, "basic.reject"),
        (lambda c: c.basic_ack(0), 0, "basic.ack"),
        (lambda c: c.basic_ack(5, multiple=True), 5, "basic.ack"),
    ]:
        ch = bus.channel()
        with fail(PreconditionFailed, 406, f"PRECONDITION_FAILED - unknown delivery tag {tag}",
                  method=method):
            call(ch)
        assert ch.is_closed
    ch = bus.channel()
    ch.basic_ack(0, multiple=True)  # nothing outstanding: fine
    assert ch.is_open


def test_ack_multiple_needs_an_outstanding_tag(bus: Bus) -> None:
    """RabbitMQ 3.10: ack/nack with multiple=True and a tag that is not outstanding is
    406, even when it lies below other outstanding tags."""
    ch = bus.channel()
    ch.queue_declare("q")
    for i in range(3):
        ch.basic_publish("", "q", str(i))
    for _ in range(3):
        ch.basic_get("q")
    ch.basic_ack(2)
    with fail(PreconditionFailed, 406, "PRECONDITION_FAILED - unknown delivery tag 2"):
        ch.basic_ack(2, multiple=True)
    assert ready(bus, "q") == 2  # closing the channel requeued 1 and 3
    ch = bus.channel()
    for _ in range(2):
        ch.basic_get("q")
    ch.basic_ack(1)
    with fail(PreconditionFailed, 406, "PRECONDITION_FAILED - unknown delivery tag 1"):
        ch.basic_nack(1, multiple=True)


def test_ack_twice_is_406(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    ch.basic_publish("", "q", b"x")
    m = ch.basic_get("q")
    assert m is not None
    m.ack()
    with fail(PreconditionFailed, 406, "PRECONDITION_FAILED - unknown delivery tag 1"):
        m.ack()
    assert ch.is_closed


def test_ack_after_queue_deleted_is_fine(ch: inbus.Channel) -> None:
    ch.queue_declare("q")
    ch.basic_publish("", "q", b"x")
    m = ch.basic_get("q")
    assert m is not None
    ch.queue_delete("q")
    m.ack()
    assert ch.is_open


def test_queue_empty_name_means_last_declared(bus: Bus) -> None:
    ch = bus.channel()
    with fail(NotFound, 404, "NOT_FOUND - no previously declared queue"):
        ch.basic_get("")
    ch = bus.channel()
    q = ch.queue_declare("", exclusive=True).queue
    ch.queue_bind("", "amq.direct", "kk")
    ch.basic_publish("amq.direct", "kk", b"1")
    ch.basic_publish("amq.direct", "kk", b"2")
    ch.basic_publish("amq.direct", "kk", b"3")
    m = ch.basic_get("")
    assert m is not None and m.body == b"1"
    assert ch.queue_declare("", passive=True).queue == q
    assert ch.queue_purge("") == 2
    ch.queue_unbind("", "amq.direct", "kk")
    ch.basic_publish("amq.direct", "kk", b"lost")
    assert ch.queue_delete("") == 0
    assert q not in bus.statistics().vhosts["/"].queues
    other = bus.connection().channel()  # the last declared queue is per channel
    with fail(NotFound, 404, "NOT_FOUND - no previously declared queue"):
        other.queue_purge("")


# --- statistics and isolation ----------------------------------------------------------


def test_statistics_snapshots_are_immutable_and_count(bus: Bus) -> None:
    ch = bus.channel()
    ch.exchange_declare("x", "fanout")
    ch.queue_declare("q")
    ch.queue_bind("q", "x")
    before = bus.statistics()
    for i in range(3):
        ch.basic_publish("x", "", str(i))
    ch.basic_publish("", "missing", b"lost")
    m1 = ch.basic_get("q")
    m2 = ch.basic_get("q")
    assert m1 and m2
    m1.ack()
    m2.nack(requeue=True)
    again = ch.basic_get("q")
    assert again is not None and again.redelivered
    st = bus.statistics()
    q = st.queue("q")
    assert (q.messages_ready, q.messages_unacknowledged, q.messages, q.consumers) == (
        1, 1, 2, 0)
    assert (q.published, q.delivered, q.acked, q.redelivered, q.dropped) == (3, 3, 1, 1, 0)
    assert q.message_bytes_ready == 1
    x = st.exchange("x")
    assert (x.type, x.bindings, x.published_in, x.routed_out) == ("fanout", 1, 3, 3)
    assert st.exchange("").published_in == 1 and st.exchange("").routed_out == 0
    assert (st.published, st.unroutable, st.returned) == (4, 1, 0)
    assert (st.connections, st.channels) == (1, 1)
    # the old snapshot did not change, and snapshots are frozen
    assert before.queue("q").messages_ready == 0 and before.published == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.published = 0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.messages_ready = 0  # type: ignore[misc]
    ch.basic_reject(again.delivery_tag, requeue=False)
    assert bus.statistics().queue("q").dropped == 1


def test_published_count_outlives_deleted_exchanges_and_vhosts() -> None:
    # statistics().published is kept per exchange: deleting an exchange, or a vhost with
    # its exchanges, must not take back what they had counted.
    with Bus() as bus:
        ch = bus.channel()
        ch.exchange_declare("gone", "fanout")
        for _ in range(3):
            ch.basic_publish("gone", "", b"m")
        ch.basic_publish("", "nowhere", b"m")
        ch.exchange_delete("gone")
        bus.vhost_declare("v")
        cv = bus.connection(vhost="v").channel()
        cv.exchange_declare("xv", "direct")
        cv.basic_publish("xv", "k", b"m")
        cv.basic_publish("amq.topic", "k", b"m")
        assert bus.statistics().published == 6
        bus.vhost_delete("v")
        st = bus.statistics()
        assert st.published == 6 and "v" not in st.vhosts
        ch.basic_publish("", "nowhere", b"m")
        assert bus.statistics().published == 7


def test_two_buses_share_nothing() -> None:
    with Bus() as a, Bus() as b:
        ca, cb = a.channel(), b.channel()
        ca.queue_declare("q")
        ca.exchange_declare("x")
        ca.basic_publish("", "q", b"a")
        with pytest.raises(NotFound):
            cb.queue_declare("q", passive=True)
        cb = b.channel()
        cb.queue_declare("q")
        assert drain(cb, "q") == []
        a.vhost_declare("v")
        assert b.vhosts == ["/"]
        assert a.statistics().published == 1 and b.statistics().published == 0
        assert drain(ca, "q") == [b"a"]


def test_context_managers_close_what_they_own() -> None:
    with Bus() as bus:
        with bus.connection() as conn:
            with conn.channel() as ch:
                ch.queue_declare("q", exclusive=True)
            assert ch.is_closed and conn.is_open
            ch2 = conn.channel()
        assert conn.is_closed and ch2.is_closed
        assert "q" not in bus.statistics().vhosts["/"].queues
        ch3 = bus.channel()
    assert bus.is_closed and ch3.is_closed
    with pytest.raises(ConnectionClosed):
        bus.channel()
    bus.close()  # idempotent
