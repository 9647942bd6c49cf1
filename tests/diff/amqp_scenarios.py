"""AMQP scenarios for the differential suite (see tests/diff/amqp_support.py).

Each scenario is written against pika 1.x's BlockingConnection API, runs against a real
RabbitMQ 3.10 through the real pika and against inbus through ``inbus.compat.pika``, and
returns plain-data observations. ``expect=`` is what RabbitMQ 3.10 shows (with the
namespace replaced by ``NS``); the comment above each scenario says it in words.
"""

from __future__ import annotations

import datetime
import decimal
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from tests.diff.amqp_support import (
    OTHER_VHOST,
    Session,
    is_gen_name,
    props,
    pump,
    scenario,
    with_vhost,
)

OK = ("ok",)
V = "in vhost '/'"


def e406(text: str) -> tuple[str, int, str]:
    return ("channel-error", 406, "PRECONDITION_FAILED - " + text)


def e404(text: str) -> tuple[str, int, str]:
    return ("channel-error", 404, "NOT_FOUND - " + text)


def e403(text: str) -> tuple[str, int, str]:
    return ("channel-error", 403, "ACCESS_REFUSED - " + text)


def e405(queue: str) -> tuple[str, int, str]:
    return (
        "channel-error",
        405,
        f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{queue}' {V}. "
        "It could be originally declared on another connection or the exclusive property "
        "value does not match that of the original declaration.",
    )


def no_q(q: str) -> tuple[str, int, str]:
    return e404(f"no queue '{q}' {V}")


def no_x(x: str) -> tuple[str, int, str]:
    return e404(f"no exchange '{x}' {V}")


DEFAULT_X = e403("operation not permitted on the default exchange")


# ============================================================================ exchanges

# RabbitMQ: every built-in type declares; a passive redeclare of each is fine.

def wrong_state(pika: ModuleType, call: Callable[[], Any]) -> str:
    """``"ChannelWrongStateError"`` if ``call()`` raises it (pika refusing a closed
    channel), else ``"no error"``."""
    try:
        call()
    except pika.exceptions.ChannelWrongStateError as e:
        return type(e).__name__
    return "no error"

@scenario("exchange", expect=[OK] * 8)
def exchange_declare_each_type(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        obs = []
        for t in ("direct", "fanout", "topic", "headers"):
            name = s.n("x-" + t)
            s.exchanges.append(name)
            obs.append(s.ok(lambda ch, n=name, t=t: ch.exchange_declare(n, t)))
        for t in ("direct", "fanout", "topic", "headers"):
            obs.append(s.ok(lambda ch, t=t: ch.exchange_declare(s.n("x-" + t), t, passive=True)))
        return obs


# RabbitMQ: an equal redeclare is ok; a passive declare ignores type and flags.
@scenario("exchange", expect=[OK, OK, OK])
def exchange_redeclare_equal(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x = s.x("x", "topic")
        return [
            s.ok(lambda ch: ch.exchange_declare(x, "topic")),
            s.ok(lambda ch: ch.exchange_declare(x, "fanout", passive=True)),
            s.ok(lambda ch: ch.exchange_declare(x, "topic", passive=True, durable=True)),
        ]


# RabbitMQ: 406 inequivalent arg 'type' / 'durable' / 'auto_delete' / 'internal', each
# closing the channel; quoted 'true'/'false' and type names.
@scenario(
    "exchange",
    expect=[
        e406(f"inequivalent arg 'type' for exchange 'NS.x' {V}: received 'fanout' but current is 'direct'"),
        e406(f"inequivalent arg 'durable' for exchange 'NS.x' {V}: received 'true' but current is 'false'"),
        e406(f"inequivalent arg 'auto_delete' for exchange 'NS.x' {V}: received 'true' but current is 'false'"),
        e406(f"inequivalent arg 'internal' for exchange 'NS.x' {V}: received 'true' but current is 'false'"),
        OK,
    ],
)
def exchange_redeclare_inequivalent_flags(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x = s.x("x", "direct")
        return [
            s.ok(lambda ch: ch.exchange_declare(x, "fanout")),
            s.ok(lambda ch: ch.exchange_declare(x, "direct", durable=True)),
            s.ok(lambda ch: ch.exchange_declare(x, "direct", auto_delete=True)),
            s.ok(lambda ch: ch.exchange_declare(x, "direct", internal=True)),
            s.ok(lambda ch: ch.exchange_declare(x, "direct")),
        ]


# RabbitMQ: among exchange arguments only 'alternate-exchange' is checked for
# equivalence; other arguments may differ freely.
@scenario(
    "exchange",
    expect=[
        OK,
        e406(
            f"inequivalent arg 'alternate-exchange' for exchange 'NS.x' {V}: "
            "received none but current is the value 'NS.ae' of type 'longstr'"
        ),
        OK,
    ],
)
def exchange_redeclare_inequivalent_arguments(
    pika: ModuleType, params: Any, ns: str
) -> list[Any]:
    with Session(pika, params, ns) as s:
        x = s.x("x", "direct", arguments={"alternate-exchange": s.n("ae"), "x-foo": 1})
        return [
            s.ok(lambda ch: ch.exchange_declare(x, "direct", arguments={"alternate-exchange": s.n("ae")})),
            s.ok(lambda ch: ch.exchange_declare(x, "direct")),
            s.ok(lambda ch: ch.exchange_declare(x, "direct", arguments={"alternate-exchange": s.n("ae"), "x-bar": "z"})),
        ]


# RabbitMQ: passive declare of a missing exchange -> 404, channel closed.
@scenario("exchange", expect=[no_x("NS.nope"), OK])
def exchange_passive_missing(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        return [
            s.ok(lambda ch: ch.exchange_declare(s.n("nope"), "direct", passive=True)),
            s.ok(lambda ch: ch.exchange_declare("amq.topic", "topic", passive=True)),
        ]


# RabbitMQ: an unknown exchange type is a connection error 503 COMMAND_INVALID.
@scenario(
    "exchange",
    expect=[("connection-error", 503, "COMMAND_INVALID - unknown exchange type 'NS-type'"), no_x("NS.x")],
)
def exchange_unknown_type(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        return [
            s.ok(lambda ch: ch.exchange_declare(s.n("x"), ns + "-type")),
            s.ok(lambda ch: ch.exchange_declare(s.n("x"), "direct", passive=True)),
        ]


# RabbitMQ: 'amq.' names are reserved (403) for active declares of new exchanges; an
# existing amq.* exchange is checked for equivalence first (406 on durable=False, ok when
# equal); passive is fine.
@scenario(
    "exchange",
    expect=[
        e403("exchange name 'amq.NS' contains reserved prefix 'amq.*'"),
        e406(f"inequivalent arg 'durable' for exchange 'amq.direct' {V}: received 'false' but current is 'true'"),
        OK,
        OK,
        e404(f"no exchange 'amq.NS' {V}"),
    ],
)
def exchange_amq_prefix(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        return [
            s.ok(lambda ch: ch.exchange_declare("amq." + ns, "direct")),
            s.ok(lambda ch: ch.exchange_declare("amq.direct", "direct")),
            s.ok(lambda ch: ch.exchange_declare("amq.direct", "direct", durable=True)),
            s.ok(lambda ch: ch.exchange_declare("amq.direct", "direct", passive=True)),
            s.ok(lambda ch: ch.exchange_declare("amq." + ns, "direct", passive=True)),
        ]


# RabbitMQ: the default exchange can't be declared (even passively), deleted, bound or
# unbound: 403 each time.
@scenario("exchange", expect=[DEFAULT_X] * 5)
def exchange_default_ops(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        return [
            s.ok(lambda ch: ch.exchange_declare("", "direct")),
            s.ok(lambda ch: ch.exchange_declare("", "direct", passive=True)),
            s.ok(lambda ch: ch.exchange_delete("")),
            s.ok(lambda ch: ch.queue_bind(q, "", routing_key=q)),
            s.ok(lambda ch: ch.queue_unbind(q, "", routing_key=q)),
        ]


# RabbitMQ 3.10: deleting a missing exchange is ok (idempotent); deleting a built-in
# amq.* exchange is refused (403).
@scenario(
    "exchange",
    expect=[OK, e403(f"deletion of system exchange 'amq.direct' {V} not allowed")],
)
def exchange_delete_missing_and_system(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        return [
            s.ok(lambda ch: ch.exchange_delete(s.n("nope"))),
            s.ok(lambda ch: ch.exchange_delete("amq.direct")),
        ]


# RabbitMQ: if_unused refuses (406 "in use") while the exchange is a binding source;
# being only a destination does not count; after unbinding it deletes.
@scenario(
    "exchange",
    expect=[
        e406(f"exchange 'NS.x' {V} in use"),
        OK,
        OK,
        no_x("NS.x"),
        OK,
    ],
)
def exchange_delete_if_unused(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x = s.x("x")
        src = s.x("src", "fanout")
        dst = s.x("dst", "fanout")
        q = s.q("q")
        s.ch.queue_bind(q, x, routing_key="k")
        s.ch.exchange_bind(dst, src)
        out = [s.ok(lambda ch: ch.exchange_delete(x, if_unused=True))]
        s.ch.queue_unbind(q, x, routing_key="k")
        out.append(s.ok(lambda ch: ch.exchange_delete(x, if_unused=True)))
        out.append(s.ok(lambda ch: ch.exchange_delete(dst, if_unused=True)))
        out.append(s.ok(lambda ch: ch.exchange_declare(x, passive=True)))
        out.append(s.ok(lambda ch: ch.exchange_delete(src)))
        return out


# RabbitMQ: deleting an exchange deletes its bindings: a redeclared exchange of the same
# name routes nowhere.
@scenario("exchange", expect=[[b"1"], []])
def exchange_delete_removes_bindings(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x = s.x("x", "fanout")
        q = s.q("q")
        s.ch.queue_bind(q, x)
        s.ch.basic_publish(x, "", b"1")
        first = s.drain(q)
        s.ch.exchange_delete(x)
        s.ch.exchange_declare(x, "fanout")
        s.ch.basic_publish(x, "", b"2")
        return [first, s.drain(q)]


# RabbitMQ: an auto-delete exchange is deleted when its last binding goes, not before
# it had one.
@scenario("exchange", expect=[OK, OK, no_x("NS.ad")])
def exchange_auto_delete(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x = s.x("ad", "fanout", auto_delete=True)
        q = s.q("q")
        out = [s.ok(lambda ch: ch.exchange_declare(x, "fanout", passive=True))]
        s.ch.queue_bind(q, x)
        out.append(s.ok(lambda ch: ch.exchange_declare(x, "fanout", passive=True)))
        s.ch.queue_unbind(q, x)
        out.append(s.ok(lambda ch: ch.exchange_declare(x, "fanout", passive=True)))
        return out


# RabbitMQ: publishing to an internal exchange is 403; it still works as an e2e target.
@scenario(
    "exchange",
    expect=[e403(f"cannot publish to internal exchange 'NS.int' {V}"), [b"via"]],
)
def exchange_internal(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        i = s.x("int", "fanout", internal=True)
        front = s.x("front", "fanout")
        q = s.q("q")
        s.ch.queue_bind(q, i)
        s.ch.exchange_bind(i, front)
        out = [s.ok(lambda ch: (ch.basic_publish(i, "", b"direct"), s.sync()))]
        s.ch.basic_publish(front, "", b"via")
        out.append(s.drain(q))
        return out


# ============================================================================ queues

# RabbitMQ: "" gives a server-named "amq.gen-" + 22 chars queue; "" in later queue
# operations means the channel's last declared queue.
@scenario("queue", expect=[True, 0, 0, [b"m"], True])
def queue_server_named(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        r = s.ch.queue_declare("", exclusive=True).method
        x = s.x("x", "fanout")
        s.ch.queue_bind("", x)
        s.ch.basic_publish(x, "", b"m")
        got = s.drain(r.queue)
        r2 = s.ch.queue_declare("", exclusive=True).method
        return [is_gen_name(r.queue), r.message_count, r.consumer_count, got,
                is_gen_name(r2.queue) and r2.queue != r.queue]


# RabbitMQ: passive declare reports ready messages (unacked excluded) and consumers.
@scenario("queue", expect=[("NS.q", 3, 0), ("NS.q", 2, 0), ("NS.q", 2, 1), no_q("NS.nope")])
def queue_passive_counts(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        for i in range(3):
            s.ch.basic_publish("", q, str(i).encode())

        def qd() -> Any:
            time.sleep(0.03)  # see Session.count
            m = s.ch.queue_declare(q, passive=True).method
            return (m.queue, m.message_count, m.consumer_count)

        out = [qd()]
        s.ch.basic_get(q, auto_ack=False)
        out.append(qd())
        ch2 = s.conn.channel()
        ch2.basic_qos(prefetch_count=1)
        ch2.basic_consume(s.n("q"), lambda *a: None)
        pump(s.conn, settle=0.05)
        # prefetch 1: the consumer holds one more unacked message
        m = s.ch.queue_declare(q, passive=True).method
        out.append((m.queue, m.message_count + 1, m.consumer_count))
        out.append(s.ok(lambda ch: ch.queue_declare(s.n("nope"), passive=True)))
        return out


# RabbitMQ: redeclaring a queue with other durable / auto_delete is 406; with another
# exclusive flag it is 405 RESOURCE_LOCKED.
@scenario(
    "queue",
    expect=[
        OK,
        e406(f"inequivalent arg 'durable' for queue 'NS.q' {V}: received 'true' but current is 'false'"),
        e406(f"inequivalent arg 'auto_delete' for queue 'NS.q' {V}: received 'true' but current is 'false'"),
        e405("NS.q"),
        OK,
    ],
)
def queue_redeclare_inequivalent_flags(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", exclusive=False)
        return [
            s.ok(lambda ch: ch.queue_declare(q)),
            s.ok(lambda ch: ch.queue_declare(q, durable=True)),
            s.ok(lambda ch: ch.queue_declare(q, auto_delete=True)),
            s.ok(lambda ch: ch.queue_declare(q, exclusive=True)),
            s.ok(lambda ch: ch.queue_declare(q, durable=True, passive=True)),
        ]


# RabbitMQ 3.10: an exclusive queue is never durable ("Durable = DurableDeclare andalso
# not ExclusiveDeclare"), so it redeclares with either durable flag.
@scenario("queue", expect=[OK, OK, OK, OK])
def queue_exclusive_is_never_durable(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", durable=True)
        q2 = s.q("q2")
        return [
            s.ok(lambda ch: ch.queue_declare(q, exclusive=True)),
            s.ok(lambda ch: ch.queue_declare(q, durable=True, exclusive=True)),
            s.ok(lambda ch: ch.queue_declare(q2, durable=True, exclusive=True)),
            s.ok(lambda ch: ch.queue_declare(q2, exclusive=True)),
        ]


# RabbitMQ: x-arguments with meaning are checked for equivalence (406 naming the arg);
# unknown arguments are not.
@scenario(
    "queue",
    expect=[
        OK,
        e406(
            f"inequivalent arg 'x-message-ttl' for queue 'NS.q' {V}: "
            "received none but current is the value '100' of type 'signedint'"
        ),
        e406(f"inequivalent arg 'x-message-ttl' for queue 'NS.q' {V}: received '200' but current is '100'"),
        OK,
    ],
)
def queue_redeclare_inequivalent_arguments(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-message-ttl": 100, "foo": 1})
        return [
            s.ok(lambda ch: ch.queue_declare(q, exclusive=True, arguments={"x-message-ttl": 100})),
            s.ok(lambda ch: ch.queue_declare(q, exclusive=True)),
            s.ok(lambda ch: ch.queue_declare(q, exclusive=True, arguments={"x-message-ttl": 200})),
            s.ok(lambda ch: ch.queue_declare(q, exclusive=True, arguments={"x-message-ttl": 100, "bar": 2})),
        ]


# RabbitMQ: another connection's exclusive queue is locked (405) for declare, passive
# declare, get, consume, bind, purge and delete; it dies with its connection.
@scenario("queue", expect=[e405("NS.q")] * 7 + [no_q("NS.q")])
def queue_exclusive_other_connection(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as owner, Session(pika, params, ns) as other:
        q = owner.q("q")
        out = [
            other.ok(lambda ch: ch.queue_declare(q, exclusive=True)),
            other.ok(lambda ch: ch.queue_declare(q, passive=True)),
            other.ok(lambda ch: ch.basic_get(q)),
            other.ok(lambda ch: ch.basic_consume(q, lambda *a: None)),
            other.ok(lambda ch: ch.queue_bind(q, "amq.fanout")),
            other.ok(lambda ch: ch.queue_purge(q)),
            other.ok(lambda ch: ch.queue_delete(q)),
        ]
        owner.conn.close()
        out.append(other.ok(lambda ch: ch.queue_declare(q, passive=True)))
        return out


# RabbitMQ: if_unused with a consumer -> 406 "in use"; if_empty with messages -> 406
# "not empty"; a delete returns the number of (ready) messages; a missing queue is ok
# (idempotent delete, message_count 0).
@scenario(
    "queue",
    expect=[
        e406(f"queue 'NS.q' {V} in use"),
        e406(f"queue 'NS.q' {V} not empty"),
        ("ok", 2),
        no_q("NS.q"),
        ("ok", 0),
    ],
)
def queue_delete_conditions(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", exclusive=False)
        s.ch.basic_publish("", q, b"a")
        s.ch.basic_publish("", q, b"b")
        ch2 = s.conn.channel()
        tag = ch2.basic_consume(q, lambda *a: None)
        pump(s.conn, settle=0.05)
        out = [s.ok(lambda ch: ch.queue_delete(q, if_unused=True))]
        ch2.close()  # unacked messages go back
        out.append(s.ok(lambda ch: ch.queue_delete(q, if_empty=True)))
        out.append(s.attempt(lambda ch: ch.queue_delete(q, if_unused=True, if_empty=False).method.message_count))
        del tag
        out.append(s.ok(lambda ch: ch.queue_declare(q, passive=True)))
        out.append(s.attempt(lambda ch: ch.queue_delete(s.n("nope")).method.message_count))
        return out


# RabbitMQ: queue_delete's message_count counts ready messages only (unacked ones are
# discarded but not counted).
@scenario("queue", expect=[("ok", 3)])
def queue_delete_count_excludes_unacked(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        for b in (b"1", b"2", b"3", b"4"):
            s.ch.basic_publish("", q, b)
        s.ch.basic_get(q, auto_ack=False)
        return [s.attempt(lambda ch: ch.queue_delete(q).method.message_count)]


# RabbitMQ: purge returns the number of ready messages removed; unacked survive and
# come back on recover; purge of a missing queue is 404.
@scenario("queue", expect=[("ok", 2), [(b"1", True, 0)], no_q("NS.nope")])
def queue_purge(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        for b in (b"1", b"2", b"3"):
            s.ch.basic_publish("", q, b)
        s.ch.basic_get(q, auto_ack=False)
        out = [s.attempt(lambda ch: ch.queue_purge(q).method.message_count)]
        s.ch.basic_recover(requeue=True)
        out.append([s.get(q)])
        out.append(s.ok(lambda ch: ch.queue_purge(s.n("nope"))))
        return out


# RabbitMQ: an auto-delete queue lives until its last consumer is cancelled, not before
# it had one.
@scenario("queue", expect=[OK, OK, OK, no_q("NS.ad")])
def queue_auto_delete_last_cancel(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("ad", exclusive=False, auto_delete=True)
        chk = s.conn.channel()
        out = [s.ok(lambda ch: ch.queue_declare(q, passive=True))]
        t1 = chk.basic_consume(q, lambda *a: None)
        t2 = chk.basic_consume(q, lambda *a: None)
        out.append(s.ok(lambda ch: ch.queue_declare(q, passive=True)))
        chk.basic_cancel(t1)
        out.append(s.ok(lambda ch: ch.queue_declare(q, passive=True)))
        chk.basic_cancel(t2)
        out.append(s.ok(lambda ch: ch.queue_declare(q, passive=True)))
        return out


# RabbitMQ: queue names and routing keys are short strings: 255 UTF-8 bytes work, 256
# bytes is refused by pika before anything is sent (ShortStringTooLong).
@scenario("queue", expect=[("ok", 255), "ShortStringTooLong", "ShortStringTooLong", [b"k"]])
def queue_long_names(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        name255 = (s.n("q") + "é" * 200).encode()[:255].decode("utf-8", "ignore")
        name255 = name255 + "z" * (255 - len(name255.encode()))
        out: list[Any] = [s.attempt(lambda ch: len(ch.queue_declare(name255, exclusive=True).method.queue.encode()))]
        too_long = s.n("q") + "é" * 130
        for fn in (
            lambda ch: ch.queue_declare(too_long, exclusive=True),
            lambda ch: ch.basic_publish("", "k" * 256, b"x"),
        ):
            try:
                fn(s.conn.channel())
                out.append("accepted")
            except Exception as e:  # pika.exceptions.ShortStringTooLong (or a ValueError)
                out.append(type(e).__name__)
        x = s.x("x", "topic")
        s.ch.queue_bind(name255, x, routing_key="#")
        s.ch.basic_publish(x, "a" * 255, b"k")
        out.append(s.drain(name255))
        return out


# ============================================================================ bindings

# RabbitMQ: binding with a missing exchange or queue is 404 (exchange checked first);
# unbinding is idempotent in 3.10: a binding that does not exist, a missing queue or a
# missing exchange are all ok.
@scenario(
    "bind",
    expect=[
        no_x("NS.nope"),
        no_q("NS.nope"),
        no_x("NS.nope"),
        OK,
        OK,
        OK,
    ],
)
def bind_missing_entities(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        x = s.x("x")
        nope = s.n("nope")
        return [
            s.ok(lambda ch: ch.queue_bind(q, nope, routing_key="k")),
            s.ok(lambda ch: ch.queue_bind(nope, x, routing_key="k")),
            s.ok(lambda ch: ch.queue_bind(nope, nope, routing_key="k")),
            s.ok(lambda ch: ch.queue_unbind(q, x, routing_key="never-bound")),
            s.ok(lambda ch: ch.queue_unbind(nope, x, routing_key="k")),
            s.ok(lambda ch: ch.queue_unbind(q, nope, routing_key="k")),
        ]


# RabbitMQ: binding twice with the same key/args is one binding; a queue bound with two
# keys that both match gets one copy; unbinding one key leaves the other.
@scenario("bind", expect=[[b"1"], [b"2"], [b"3"], []])
def bind_idempotent_and_one_copy(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x = s.x("x", "topic")
        q = s.q("q")
        s.ch.queue_bind(q, x, routing_key="a.*")
        s.ch.queue_bind(q, x, routing_key="a.*")
        s.ch.queue_bind(q, x, routing_key="a.b")
        s.ch.queue_bind(q, x, routing_key="#")
        s.ch.basic_publish(x, "a.b", b"1")
        out = [s.drain(q)]
        s.ch.queue_unbind(q, x, routing_key="#")
        s.ch.queue_unbind(q, x, routing_key="a.*")
        s.ch.basic_publish(x, "a.b", b"2")
        out.append(s.drain(q))
        s.ch.queue_unbind(q, x, routing_key="a.b")
        s.ch.queue_bind(q, x, routing_key="a.*")
        s.ch.basic_publish(x, "a.c", b"3")
        out.append(s.drain(q))
        s.ch.queue_unbind(q, x, routing_key="a.*")
        s.ch.basic_publish(x, "a.c", b"4")
        out.append(s.drain(q))
        return out


# RabbitMQ: deleting a queue removes its bindings (a re-created queue of the same name
# receives nothing through the old binding).
@scenario("bind", expect=[[b"1"], []])
def bind_removed_with_queue(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x = s.x("x", "fanout")
        q = s.q("q")
        s.ch.queue_bind(q, x)
        s.ch.basic_publish(x, "", b"1")
        out = [s.drain(q)]
        s.ch.queue_delete(q)
        s.ch.queue_declare(q, exclusive=True)
        s.ch.basic_publish(x, "", b"2")
        out.append(s.drain(q))
        return out


# ============================================================================ routing


# RabbitMQ: the default exchange routes to the queue named by the key; an unknown name is
# dropped; the delivered message reports exchange "" and the key.
@scenario("routing", expect=[(b"m", "", "NS.q"), None])
def routing_default_exchange(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        s.ch.basic_publish("", q, b"m")
        s.ch.basic_publish("", s.n("nope"), b"lost")
        m, _p, body = s.ch.basic_get(q, auto_ack=True)
        m2 = s.ch.basic_get(q, auto_ack=True)[0]
        return [(body, m.exchange, m.routing_key), m2]


# RabbitMQ: direct routing is exact and case-sensitive; several queues may share a key;
# one queue may have several keys.
@scenario(
    "routing",
    expect=[[b"k1", b"k1b"], [b"k1", b"k1b", b"k2"], [b"empty"]],
)
def routing_direct(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x = s.x("x", "direct")
        q1, q2, q3 = s.q("q1"), s.q("q2"), s.q("q3")
        s.ch.queue_bind(q1, x, routing_key="k1")
        s.ch.queue_bind(q2, x, routing_key="k1")
        s.ch.queue_bind(q2, x, routing_key="k2")
        s.ch.queue_bind(q3, x, routing_key="")
        for key, body in (("k1", b"k1"), ("K1", b"upper"), ("k2", b"k2"), ("", b"empty"),
                          ("k1 ", b"space"), ("k1", b"k1b")):
            s.ch.basic_publish(x, key, body)
        return [s.drain(q1), sorted(s.drain(q2)), s.drain(q3)]


# RabbitMQ: fanout ignores routing keys and binding keys.
@scenario("routing", expect=[[b"1", b"2"], [b"1", b"2"]])
def routing_fanout(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x = s.x("x", "fanout")
        q1, q2 = s.q("q1"), s.q("q2")
        s.ch.queue_bind(q1, x, routing_key="whatever")
        s.ch.queue_bind(q2, x)
        s.ch.basic_publish(x, "", b"1")
        s.ch.basic_publish(x, "some.key", b"2")
        return [s.drain(q1), s.drain(q2)]


# RabbitMQ: the predeclared amq.direct / amq.fanout / amq.topic / amq.headers / amq.match
# exchanges route like their types.
@scenario("routing", expect=[[b"direct", b"fanout", b"topic", b"headers", b"match"]])
def routing_predeclared_exchanges(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        s.ch.queue_bind(q, "amq.direct", routing_key=q)
        s.ch.queue_bind(q, "amq.fanout")
        s.ch.queue_bind(q, "amq.topic", routing_key=ns + ".#")
        s.ch.queue_bind(q, "amq.headers", arguments={"x-match": "all", "ns": ns, "k": "h"})
        s.ch.queue_bind(q, "amq.match", arguments={"x-match": "all", "ns": ns, "k": "m"})
        s.ch.basic_publish("amq.direct", q, b"direct")
        s.ch.basic_publish("amq.fanout", "", b"fanout")
        s.ch.basic_publish("amq.topic", ns + ".a.b", b"topic")
        s.ch.basic_publish("amq.headers", "", b"headers", pika.BasicProperties(headers={"ns": ns, "k": "h"}))
        s.ch.basic_publish("amq.match", "", b"match", pika.BasicProperties(headers={"ns": ns, "k": "m"}))
        # amq.fanout is shared with other users of the broker: keep our messages only
        return [[b for b in s.drain(q) if b in (b"direct", b"fanout", b"topic", b"headers", b"match")]]


def _topic_table(pika: ModuleType, params: Any, ns: str, patterns: list[str],
                 keys: list[str]) -> list[Any]:
    """Bind one queue per pattern, publish every key, report the keys each queue got."""
    with Session(pika, params, ns) as s:
        x = s.x("x", "topic")
        qs = []
        for i, pat in enumerate(patterns):
            q = s.q(f"q{i}")
            s.ch.queue_bind(q, x, routing_key=pat)
            qs.append(q)
        for key in keys:
            s.ch.basic_publish(x, key, key.encode())
        return [[pat, [b.decode() for b in s.drain(q)]] for pat, q in zip(patterns, qs, strict=True)]


TOPIC_KEYS = ["", "a", "a.b", "a.b.c", "a..b", ".", "..", "a.", ".a", "b.a", "a.b.b", "ab"]


# RabbitMQ: '*' is exactly one word (which may be empty), '#' zero or more; "" is zero
# words, "." two empty words; "a.#" matches "a" and "a."; no regex semantics.
@scenario(
    "topic",
    expect=[
        ["#", TOPIC_KEYS],
        ["*", ["a", "ab"]],
        ["a.#", ["a", "a.b", "a.b.c", "a..b", "a.", "a.b.b"]],
        ["a.*", ["a.b", "a."]],
        ["*.*", ["a.b", ".", "a.", ".a", "b.a"]],
        ["a.*.b", ["a..b", "a.b.b"]],
        ["a.#.b", ["a.b", "a..b", "a.b.b"]],
        ["#.b", ["a.b", "a..b", "a.b.b"]],
        ["", [""]],
        [".", ["."]],
        ["a..b", ["a..b"]],
        ["#.#", TOPIC_KEYS],
    ],
)
def topic_edge_keys(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    patterns = ["#", "*", "a.#", "a.*", "*.*", "a.*.b", "a.#.b", "#.b", "", ".", "a..b", "#.#"]
    return _topic_table(pika, params, ns, patterns, TOPIC_KEYS)


# RabbitMQ: more '#' combinations: "#.a.#" finds "a" anywhere; "*.#" needs >= 1 word;
# "#.*" too; "a.#.#.b" like "a.#.b"; "*.*.*" exactly three words.
@scenario(
    "topic",
    expect=[
        ["#.a.#", ["a", "a.b", "a.b.c", "a..b", "a.", ".a", "b.a", "a.b.b"]],
        ["*.#", TOPIC_KEYS[1:]],
        ["#.*", ["a", "a.b", "a.b.c", "a..b", ".", "..", "a.", ".a", "b.a", "a.b.b", "ab"]],
        ["a.#.#.b", ["a.b", "a..b", "a.b.b"]],
        ["*.*.*", ["a.b.c", "a..b", "..", "a.b.b"]],
        ["#.b.#", ["a.b", "a.b.c", "a..b", "b.a", "a.b.b"]],
        ["A", []],
        ["a.b.c", ["a.b.c"]],
    ],
)
def topic_hash_combinations(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    patterns = ["#.a.#", "*.#", "#.*", "a.#.#.b", "*.*.*", "#.b.#", "A", "a.b.c"]
    return _topic_table(pika, params, ns, patterns, TOPIC_KEYS)


# RabbitMQ: words are compared literally: regex metacharacters, '*'/'#' inside a word,
# and unicode are ordinary text.
@scenario(
    "topic",
    expect=[
        ["a+", ["a+"]],
        ["x*", ["x*"]],
        ["a#.b", ["a#.b"]],
        ["é.*", ["é.ü"]],
        ["[a].b", ["[a].b"]],
        ["*", ["a+", "aa", "x*", "xy"]],
    ],
)
def topic_literal_words(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    patterns = ["a+", "x*", "a#.b", "é.*", "[a].b", "*"]
    keys = ["a+", "aa", "x*", "xy", "a#.b", "ab.b", "é.ü", "e.u", "[a].b", "a.b"]
    return _topic_table(pika, params, ns, patterns, keys)


# RabbitMQ: many overlapping bindings on one queue still deliver one copy per publish.
@scenario("topic", expect=[[b"a.b.c"], [b"x"]])
def topic_one_copy_many_matches(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x = s.x("x", "topic")
        q = s.q("q")
        for pat in ("#", "a.#", "*.b.*", "a.b.c", "#.c", "a.*.c", "#.#"):
            s.ch.queue_bind(q, x, routing_key=pat)
        s.ch.basic_publish(x, "a.b.c", b"a.b.c")
        out = [s.drain(q)]
        s.ch.basic_publish(x, "x", b"x")
        out.append(s.drain(q))
        return out


# ============================================================================ headers


def _headers_table(pika: ModuleType, params: Any, ns: str, bindings: list[dict[str, Any]],
                   messages: list[tuple[str, dict[str, Any] | None]]) -> list[Any]:
    with Session(pika, params, ns) as s:
        x = s.x("x", "headers")
        qs = []
        for i, args in enumerate(bindings):
            q = s.q(f"q{i}")
            s.ch.queue_bind(q, x, arguments=args)
            qs.append(q)
        for name, headers in messages:
            s.ch.basic_publish(x, "", name.encode(), pika.BasicProperties(headers=headers))
        return [[i, [b.decode() for b in s.drain(q)]] for i, q in enumerate(qs)]


# RabbitMQ: x-match all (default) needs every key with an equal value; any needs one;
# x- keys (in the message and in the binding) are ignored by all/any.
@scenario(
    "headers",
    expect=[
        [0, ["ab", "abc", "ab-x"]],
        [1, ["ab", "abc", "a", "b", "ab-x", "a-wrong-b"]],
        [2, ["ab", "abc", "ab-x"]],
        [3, ["ab", "abc", "a", "ab-x", "a-wrong-b"]],
    ],
)
def headers_all_any(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    return _headers_table(
        pika, params, ns,
        [{"x-match": "all", "a": 1, "b": "2"}, {"x-match": "any", "a": 1, "b": "2"},
         {"a": 1, "b": "2"}, {"x-match": "all", "a": 1, "x-k": "v"}],
        [("ab", {"a": 1, "b": "2"}), ("abc", {"a": 1, "b": "2", "c": 3}), ("a", {"a": 1}),
         ("b", {"b": "2"}), ("none", None), ("empty", {}), ("ab-x", {"a": 1, "b": "2", "x-k": "v"}),
         ("a-wrong-b", {"a": 1, "b": "3"})],
    )


# RabbitMQ 3.10: all-with-x / any-with-x also compare the x- keys.
@scenario(
    "headers",
    expect=[
        [0, ["ax"]],
        [1, ["ax", "a", "x"]],
        [2, ["ax", "a"]],
    ],
)
def headers_with_x(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    return _headers_table(
        pika, params, ns,
        [{"x-match": "all-with-x", "a": 1, "x-k": "v"}, {"x-match": "any-with-x", "a": 1, "x-k": "v"},
         {"x-match": "all", "a": 1, "x-k": "v"}],
        [("ax", {"a": 1, "x-k": "v"}), ("a", {"a": 1}), ("x", {"x-k": "v"}), ("none", None)],
    )


# RabbitMQ: value comparison: int 1 is not "1", True or b"1"; a str and the same bytes
# are equal (both are binaries on the wire). pika cannot send floats.
@scenario(
    "headers",
    expect=[
        [0, ["int"]],
        [1, ["str", "bytes"]],
        [2, ["bool"]],
        [3, ["str", "bytes"]],
        [4, ["big"]],
    ],
)
def headers_value_types(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    return _headers_table(
        pika, params, ns,
        [{"v": 1}, {"v": "1"}, {"v": True}, {"v": b"1"}, {"v": 2**40}],
        [("int", {"v": 1}), ("str", {"v": "1"}), ("bool", {"v": True}), ("bytes", {"v": b"1"}),
         ("zero", {"v": 0}), ("big", {"v": 2**40})],
    )


# RabbitMQ: a void (None) binding value means "key present, any value"; x-match any
# with no keys matches nothing; all with no keys (or empty args) matches everything.
@scenario(
    "headers",
    expect=[
        [0, ["k1", "kvoid", "kstr"]],
        [1, []],
        [2, ["k1", "kvoid", "kstr", "other", "none"]],
        [3, ["k1", "kvoid", "kstr", "other", "none"]],
    ],
)
def headers_void_and_empty(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    return _headers_table(
        pika, params, ns,
        [{"k": None}, {"x-match": "any"}, {"x-match": "all"}, {}],
        [("k1", {"k": 1}), ("kvoid", {"k": None}), ("kstr", {"k": "s"}), ("other", {"j": 1}),
         ("none", None)],
    )


# RabbitMQ: a headers binding's identity includes its arguments: two bindings differing
# only in arguments both exist; unbinding needs the same arguments.
@scenario("headers", expect=[[b"a", b"b"], [b"b2"], []])
def headers_binding_identity(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x = s.x("x", "headers")
        q = s.q("q")
        s.ch.queue_bind(q, x, arguments={"k": "a"})
        s.ch.queue_bind(q, x, arguments={"k": "b"})
        s.ch.basic_publish(x, "", b"a", pika.BasicProperties(headers={"k": "a"}))
        s.ch.basic_publish(x, "", b"b", pika.BasicProperties(headers={"k": "b"}))
        out = [s.drain(q)]
        s.ch.queue_unbind(q, x, arguments={"k": "a"})
        s.ch.basic_publish(x, "", b"a2", pika.BasicProperties(headers={"k": "a"}))
        s.ch.basic_publish(x, "", b"b2", pika.BasicProperties(headers={"k": "b"}))
        out.append(s.drain(q))
        s.ch.queue_unbind(q, x, arguments={"k": "b"})
        s.ch.basic_publish(x, "", b"b3", pika.BasicProperties(headers={"k": "b"}))
        out.append(s.drain(q))
        return out


# ============================================================================ exchange-to-exchange


# RabbitMQ: e2e chains route through; a cycle terminates; a queue reached by two paths
# (or through the cycle) gets one copy.
@scenario("e2e", expect=[[b"1"], [b"1"], [b"2"], [b"2"]])
def e2e_chain_cycle_one_copy(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x1 = s.x("x1", "topic")
        x2 = s.x("x2", "fanout")
        x3 = s.x("x3", "direct")
        qa, qb = s.q("qa"), s.q("qb")
        s.ch.exchange_bind(x2, x1, routing_key="a.#")
        s.ch.exchange_bind(x1, x2)              # cycle x1 <-> x2
        s.ch.exchange_bind(x3, x1, routing_key="a.b")
        s.ch.queue_bind(qa, x2)
        s.ch.queue_bind(qa, x3, routing_key="a.b")  # second path to qa
        s.ch.queue_bind(qb, x1, routing_key="#")    # reached directly and via the cycle
        s.ch.basic_publish(x1, "a.b", b"1")
        out = [s.drain(qa), s.drain(qb)]
        s.ch.basic_publish(x2, "zzz", b"2")
        out += [s.drain(qa), s.drain(qb)]
        return out


# RabbitMQ: exchange_bind/unbind with a missing source or destination is 404; unbinding
# stops the flow.
@scenario(
    "e2e",
    expect=[no_x("NS.nope"), no_x("NS.nope"), [b"1"], []],
)
def e2e_bind_errors_and_unbind(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x1 = s.x("x1", "fanout")
        x2 = s.x("x2", "fanout")
        q = s.q("q")
        out = [
            s.ok(lambda ch: ch.exchange_bind(x2, s.n("nope"))),
            s.ok(lambda ch: ch.exchange_bind(s.n("nope"), x1)),
        ]
        s.ch.exchange_bind(x2, x1)
        s.ch.queue_bind(q, x2)
        s.ch.basic_publish(x1, "", b"1")
        out.append(s.drain(q))
        s.ch.exchange_unbind(x2, x1)
        s.ch.basic_publish(x1, "", b"2")
        out.append(s.drain(q))
        return out


# RabbitMQ: the delivered message keeps the exchange it was published to.
@scenario("e2e", expect=[("NS.x1", "k")])
def e2e_delivery_reports_original_exchange(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x1 = s.x("x1", "direct")
        x2 = s.x("x2", "fanout")
        q = s.q("q")
        s.ch.exchange_bind(x2, x1, routing_key="k")
        s.ch.queue_bind(q, x2)
        s.ch.basic_publish(x1, "k", b"m")
        m, _p, _b = s.ch.basic_get(q, auto_ack=True)
        return [(m.exchange, m.routing_key)]


# ============================================================================ get / ack


# RabbitMQ: basic_get on an empty queue gives (None, None, None); GetOk carries
# message_count (ready messages left), redelivered False, tags 1, 2, 3 per channel.
@scenario("get_ack", expect=[None, (b"a", False, 2, 1), (b"b", False, 1, 2), (b"c", False, 0, 3), None])
def get_counts_and_tags(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        m = s.ch.basic_get(q)
        out: list[Any] = [None if m == (None, None, None) else m]
        for b in (b"a", b"b", b"c"):
            s.ch.basic_publish("", q, b)
        for _ in range(3):
            mm, _p, body = s.ch.basic_get(q, auto_ack=False)
            out.append((body, mm.redelivered, mm.message_count, mm.delivery_tag))
        out.append(s.get(q))
        return out


# RabbitMQ: requeued messages (nack/reject requeue=True) go back to their original
# positions (in publish order regardless of requeue order), redelivered=True, new tags.
@scenario(
    "get_ack",
    expect=[(b"a", True, 3, 4), (b"b", True, 2, 5), (b"d", False, 1, 6), (b"e", False, 0, 7)],
)
def get_requeue_original_position(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        for b in (b"a", b"b", b"c", b"d", b"e"):
            s.ch.basic_publish("", q, b)
        s.ch.basic_get(q, auto_ack=False)  # a tag 1
        s.ch.basic_get(q, auto_ack=False)  # b tag 2
        s.ch.basic_get(q, auto_ack=False)  # c tag 3
        s.ch.basic_reject(2, requeue=True)  # b first
        s.ch.basic_nack(1, requeue=True)    # then a
        s.ch.basic_ack(3)
        out = []
        for _ in range(3):
            mm, _p, body = s.ch.basic_get(q, auto_ack=False)
            out.append((body, mm.redelivered, mm.message_count, mm.delivery_tag))
        # after the requeues the queue is a, b, d, e (c was acked)
        mm, _p, body = s.ch.basic_get(q, auto_ack=False)
        out.append((body, mm.redelivered, mm.message_count, mm.delivery_tag))
        return out


# RabbitMQ: ack multiple=True acks every unacked tag up to and including the given one;
# recover then brings back only the rest.
@scenario("get_ack", expect=[[(b"c", True, 1), (b"d", True, 0)]])
def get_ack_multiple(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        for b in (b"a", b"b", b"c", b"d"):
            s.ch.basic_publish("", q, b)
        for _ in range(4):
            s.ch.basic_get(q, auto_ack=False)
        s.ch.basic_ack(2, multiple=True)
        s.ch.basic_recover(requeue=True)
        return [[s.get(q), s.get(q)]]


# RabbitMQ: nack multiple=True requeue=False drops every tag up to the given one;
# nack(0, multiple=True) covers everything outstanding.
@scenario("get_ack", expect=[0, [(b"c", True, 1), (b"d", True, 0)], 0])
def get_nack_multiple(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        for b in (b"a", b"b", b"c", b"d"):
            s.ch.basic_publish("", q, b)
        for _ in range(4):
            s.ch.basic_get(q, auto_ack=False)
        s.ch.basic_nack(2, multiple=True, requeue=False)
        out: list[Any] = [s.count(q)]
        s.ch.basic_nack(0, multiple=True, requeue=True)
        out.append([s.get(q, auto_ack=False), s.get(q, auto_ack=False)])
        s.ch.basic_ack(0, multiple=True)
        out.append(s.count(q))
        return out


# RabbitMQ: reject/nack with requeue=False drops the message (no DLX).
@scenario("get_ack", expect=[0, None])
def get_reject_drop(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        s.ch.basic_publish("", q, b"a")
        s.ch.basic_publish("", q, b"b")
        s.ch.basic_get(q, auto_ack=False)
        s.ch.basic_get(q, auto_ack=False)
        s.ch.basic_reject(1, requeue=False)
        s.ch.basic_nack(2, requeue=False)
        return [s.count(q), s.get(q)]


# RabbitMQ: acking an unknown tag is 406 "unknown delivery tag N" and closes the channel;
# the closed channel then refuses use (ChannelWrongStateError) and is_closed is True.
@scenario(
    "get_ack",
    expect=[e406("unknown delivery tag 99"), True, "ChannelWrongStateError"],
)
def ack_unknown_tag(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        ch = s.ch
        out: list[Any] = [s.ok(lambda c: (c.basic_ack(99), c.queue_declare(q, passive=True)))]
        out.append(ch.is_closed)
        out.append(wrong_state(pika, lambda: ch.basic_get(q)))
        return out


# pika: the broker's Channel.Close for an asynchronous method's error (an unknown tag) is
# read by the channel's next call, whatever it is: a basic_publish raises it; after it,
# the channel refuses use with ChannelWrongStateError.
@scenario(
    "get_ack",
    expect=[e406("unknown delivery tag 99"), True, "ChannelWrongStateError"],
)
def ack_unknown_tag_raised_by_next_publish(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        ch = s.ch
        ch.basic_ack(99)
        time.sleep(0.05)                # (RabbitMQ: time for its Channel.Close to arrive)
        out: list[Any] = [s.ok(lambda c: c.basic_publish("", q, b"x"))]
        out.append(ch.is_closed)
        out.append(wrong_state(pika, lambda: ch.queue_declare(q, passive=True)))
        return out


# pika: process_data_events reads the broker's Channel.Close for an asynchronous error
# quietly (no exception); the channel is closed and its next call is ChannelWrongStateError.
@scenario("get_ack", expect=[OK, True, "ChannelWrongStateError", True])
def ack_unknown_tag_read_by_process_data_events(
        pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        ch = s.ch
        ch.basic_ack(99)
        out: list[Any] = [s.ok(lambda c: s.conn.process_data_events(time_limit=0.3))]
        out.append(ch.is_closed)
        out.append(wrong_state(pika, lambda: ch.basic_publish("", s.n("q"), b"x")))
        out.append(s.conn.is_open)
        s.reopen()
        return out


# pika: an unknown tag acked by a consumer callback closes the channel; start_consuming
# raises the ChannelClosedByBroker and forgets the channel's consumers.
@scenario("consume", expect=[e406("unknown delivery tag 11"), [], True])
def ack_unknown_tag_in_callback_raised_by_start_consuming(
        pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        ch = s.ch
        ch.basic_publish("", q, b"x")
        ch.basic_consume(q, lambda c, m, p, b: c.basic_ack(m.delivery_tag + 10))
        out: list[Any] = [s.ok(lambda c: c.start_consuming())]
        out.append(ch.consumer_tags)
        out.append(ch.is_closed)
        return out


# pika encodes header values on publish and decodes them on delivery: a Decimal comes
# back normalised, a datetime as an aware UTC datetime in whole seconds; a float is
# refused by pika's encoder (UnsupportedAMQPFieldException) before anything is sent.
@scenario("body_props", expect=["UnsupportedAMQPFieldException", (
    b"x", "1.5", "2020-01-02T03:04:05+00:00", 2**40, b"\x00", [1, "a", None])])
def headers_through_pikas_encoder(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    import datetime
    import decimal

    with Session(pika, params, ns) as s:
        q = s.q("q")
        out: list[Any] = []
        try:
            s.ch.basic_publish("", q, b"f", pika.BasicProperties(headers={"f": 1.5}))
            out.append("no error")
        except pika.exceptions.UnsupportedAMQPFieldException as e:
            out.append(type(e).__name__)
        dt = datetime.datetime(2020, 1, 2, 3, 4, 5, 678)
        s.ch.basic_publish("", q, b"x", pika.BasicProperties(headers={
            "dec": decimal.Decimal("1.50"), "dt": dt, "big": 2**40, "by": b"\x00",
            "l": [1, "a", None]}))
        m, p, body = s.get_wait(q)
        h = p.headers
        out.append((body, str(h["dec"]), h["dt"].isoformat(), h["big"], h["by"], h["l"]))
        return out


# RabbitMQ: a double ack is 406 unknown delivery tag; so is acking a tag of an auto-ack
# get; and acking on another channel.
@scenario(
    "get_ack",
    expect=[e406("unknown delivery tag 1"), e406("unknown delivery tag 1"), e406("unknown delivery tag 1")],
)
def ack_double_autoack_otherchannel(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        for b in (b"a", b"b", b"c"):
            s.ch.basic_publish("", q, b)
        s.ch.basic_get(q, auto_ack=False)
        out = [s.ok(lambda c: (c.basic_ack(1), c.basic_ack(1), c.queue_declare(q, passive=True)))]
        s.ch.basic_get(q, auto_ack=True)
        out.append(s.ok(lambda c: (c.basic_nack(1), c.queue_declare(q, passive=True))))
        s.ch.basic_get(q, auto_ack=False)
        other = s.conn.channel()
        s.ch = other
        out.append(s.ok(lambda c: (c.basic_reject(1), c.queue_declare(q, passive=True))))
        return out


# RabbitMQ: basic_recover(requeue=True) requeues every unacked message at its position;
# delivery tags keep increasing on the channel.
@scenario("get_ack", expect=[[(b"a", True, 2, 3), (b"b", True, 1, 4), (b"c", False, 0, 5)]])
def get_recover_requeue(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        for b in (b"a", b"b", b"c"):
            s.ch.basic_publish("", q, b)
        s.ch.basic_get(q, auto_ack=False)
        s.ch.basic_get(q, auto_ack=False)
        s.ch.basic_recover(requeue=True)
        out = []
        for _ in range(3):
            mm, _p, body = s.ch.basic_get(q, auto_ack=False)
            out.append((body, mm.redelivered, mm.message_count, mm.delivery_tag))
        return [out]


# RabbitMQ: closing a channel requeues its unacked messages at their positions with
# redelivered=True; auto-acked ones are gone.
@scenario("get_ack", expect=[[(b"b", True, 2), (b"c", True, 1), (b"d", False, 0)]])
def get_channel_close_requeues(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        for b in (b"a", b"b", b"c", b"d"):
            s.ch.basic_publish("", q, b)
        ch2 = s.conn.channel()
        ch2.basic_get(q, auto_ack=True)
        ch2.basic_get(q, auto_ack=False)
        ch2.basic_get(q, auto_ack=False)
        ch2.close()
        return [[s.get(q), s.get(q), s.get(q)]]


# RabbitMQ: delivery tags are per channel, each starting at 1.
@scenario("get_ack", expect=[[1, 1, 2, 2]])
def get_tags_per_channel(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        for i in range(4):
            s.ch.basic_publish("", q, str(i).encode())
        c1, c2 = s.conn.channel(), s.conn.channel()
        tags = []
        for c in (c1, c2, c1, c2):
            tags.append(c.basic_get(q, auto_ack=False)[0].delivery_tag)
        return [tags]


# ============================================================================ returns


def _returns(s: Session) -> list[Any]:
    got: list[Any] = []
    s.ch.add_on_return_callback(
        lambda ch, m, p, b: got.append((m.reply_code, m.reply_text, m.exchange, m.routing_key, b, p.message_id))
    )
    return got


# RabbitMQ: mandatory + unroutable -> basic.return 312 NO_ROUTE with exchange, key,
# body and properties; routable or non-mandatory -> nothing returned.
@scenario(
    "returns",
    expect=[[(312, "NO_ROUTE", "NS.x", "nowhere", b"r1", "m1"), (312, "NO_ROUTE", "", "NS.nope", b"r2", "m2")]],
)
def returns_mandatory(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x = s.x("x", "direct")
        q = s.q("q")
        s.ch.queue_bind(q, x, routing_key="k")
        got = _returns(s)
        s.ch.basic_publish(x, "nowhere", b"r1", pika.BasicProperties(message_id="m1"), mandatory=True)
        s.ch.basic_publish(x, "k", b"ok", mandatory=True)
        s.ch.basic_publish(x, "nowhere", b"dropped")
        s.ch.basic_publish("", s.n("nope"), b"r2", pika.BasicProperties(message_id="m2"), mandatory=True)
        s.sync()
        pump(s.conn, until=lambda: len(got) >= 2, settle=0.05)
        return [got]


# RabbitMQ: publishing to a missing exchange closes the channel with 404 (seen on the
# next synchronous call), mandatory or not.
@scenario("returns", expect=[no_x("NS.nope"), no_x("NS.nope")])
def publish_missing_exchange(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        return [
            s.ok(lambda ch: (ch.basic_publish(s.n("nope"), "k", b"m"), s.sync())),
            s.ok(lambda ch: (ch.basic_publish(s.n("nope"), "k", b"m", mandatory=True), s.sync())),
        ]


# RabbitMQ/pika: in confirm mode a returned mandatory message raises UnroutableError and
# is also given to the return callback (on the next process_data_events); a routed one
# and an unroutable non-mandatory one are simply confirmed.
@scenario(
    "confirms",
    expect=[("ok",), ("UnroutableError", [(312, "NO_ROUTE", b"u")]), ("ok",),
            [(312, "NO_ROUTE", "", "NS.nope", b"u", None)], [b"ok"]],
)
def confirms_unroutable(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        got = _returns(s)
        s.ch.confirm_delivery()
        out: list[Any] = []
        for key, body, mandatory in ((q, b"ok", True), (s.n("nope"), b"u", True), (s.n("nope"), b"n", False)):
            try:
                s.ch.basic_publish("", key, body, mandatory=mandatory)
                out.append(("ok",))
            except pika.exceptions.UnroutableError as e:
                out.append((type(e).__name__, [(m.method.reply_code, m.method.reply_text, m.body) for m in e.messages]))
        pump(s.conn, settle=0.05)
        out.append(got)
        out.append(s.drain(q))
        return out


# RabbitMQ: confirm mode + publish to a missing exchange -> the channel closes with 404.
@scenario("confirms", expect=[no_x("NS.nope")])
def confirms_missing_exchange(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        s.ch.confirm_delivery()
        return [s.ok(lambda ch: ch.basic_publish(s.n("nope"), "k", b"m"))]


# ============================================================================ bodies / properties


# RabbitMQ: a str body is sent as UTF-8 bytes; bodies come back as bytes; empty bodies
# and large binary bodies survive.
@scenario("body_props", expect=[[b"h\xc3\xa9llo", b"", b"\x00\xff" * 50000]])
def body_types(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        s.ch.basic_publish("", q, "héllo")
        s.ch.basic_publish("", q, b"")
        s.ch.basic_publish("", q, b"\x00\xff" * 50000)
        return [s.drain(q)]


# RabbitMQ: every BasicProperties field round-trips (header values of many types);
# str header values come back as str, bytes as bytes.
@scenario(
    "body_props",
    expect=[
        {
            "content_type": "application/json",
            "content_encoding": "utf-8",
            "headers": {"s": "str", "i": 7, "big": 2**40, "neg": -5, "t": True,
                        "f0": False, "n": None, "l": [1, "a", [2]], "d": {"k": "v", "n": {"m": 1}},
                        "b": b"raw"},
            "delivery_mode": 2,
            "priority": 3,
            "correlation_id": "corr",
            "reply_to": "reply.q",
            "expiration": "60000",
            "message_id": "mid",
            "timestamp": 1700000000,
            "type": "kind",
            "user_id": "guest",
            "app_id": "app",
            "cluster_id": "cluster",
        }
    ],
)
def properties_round_trip(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        p = pika.BasicProperties(
            content_type="application/json", content_encoding="utf-8",
            headers={"s": "str", "i": 7, "big": 2**40, "neg": -5, "t": True,
                     "f0": False, "n": None, "l": [1, "a", [2]], "d": {"k": "v", "n": {"m": 1}},
                     "b": b"raw"},
            delivery_mode=2, priority=3, correlation_id="corr", reply_to="reply.q",
            expiration="60000", message_id="mid", timestamp=1700000000, type="kind",
            user_id="guest", app_id="app", cluster_id="cluster",
        )
        s.ch.basic_publish("", q, b"m", p)
        _m, got, _b = s.ch.basic_get(q, auto_ack=True)
        return [props(got)]


# RabbitMQ: unpublished properties are None (headers None, not {}); headers={} stays {}.
@scenario(
    "body_props",
    expect=[None, {}, None, {"a": 1}],
)
def properties_headers_none_vs_empty(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        s.ch.basic_publish("", q, b"1")
        s.ch.basic_publish("", q, b"2", pika.BasicProperties(headers={}))
        s.ch.basic_publish("", q, b"3", pika.BasicProperties(content_type="t"))
        s.ch.basic_publish("", q, b"4", pika.BasicProperties(headers={"a": 1}))
        out = []
        for _ in range(4):
            _m, p, _b = s.ch.basic_get(q, auto_ack=True)
            out.append(p.headers)
        return out


# RabbitMQ: an unpublished-properties message has every field None.
@scenario("body_props", expect=[{f: None for f in (
    "content_type", "content_encoding", "headers", "delivery_mode", "priority", "correlation_id",
    "reply_to", "expiration", "message_id", "timestamp", "type", "user_id", "app_id", "cluster_id")}])
def properties_all_none(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        s.ch.basic_publish("", q, b"1")
        _m, p, _b = s.ch.basic_get(q, auto_ack=True)
        return [props(p)]


# RabbitMQ: a user_id that is not the connection's user is refused: 406 PRECONDITION_FAILED.
@scenario("body_props", expect=[e406("user_id property set to 'someone' but authenticated user was 'guest'")])
def properties_wrong_user_id(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        return [s.ok(lambda ch: (ch.basic_publish("", q, b"m", pika.BasicProperties(user_id="someone")), s.sync()))]


# RabbitMQ 3.10: a CC / BCC header that is not an array, or a delivery_mode other than 1
# or 2, makes an invalid message (406); non-string elements of a CC array are ignored.
@scenario(
    "body_props",
    expect=[
        e406('invalid message: {unacceptable_type_in_header,"CC",longstr}'),
        e406('invalid message: {unacceptable_type_in_header,"BCC",signedint}'),
        e406('invalid message: {unacceptable_type_in_header,"CC",void}'),
        e406("invalid message: {delivery_mode_unknown,3}"),
        [b"ok"],
    ],
)
def properties_invalid_message(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        out = [s.ok(lambda ch, p=p: (ch.basic_publish("", q, b"m", pika.BasicProperties(**p)),
                                     s.sync()))
               for p in ({"headers": {"CC": "k"}}, {"headers": {"BCC": 1}},
                         {"headers": {"CC": None}}, {"delivery_mode": 3})]
        s.ch.basic_publish("", "nowhere", b"ok", pika.BasicProperties(headers={"CC": [1, q]}))
        return [*out, s.drain(q)]


# ============================================================================ consumers


def _collector(got: list[Any], ack: bool = False) -> Any:
    def on_message(ch: Any, m: Any, p: Any, body: bytes) -> None:
        got.append((m.consumer_tag, body, m.redelivered, m.delivery_tag))
        if ack:
            ch.basic_ack(m.delivery_tag)
    return on_message


# RabbitMQ: a consumer receives messages in publish order, with its consumer tag,
# increasing delivery tags, exchange and routing key; queued ones first.
@scenario(
    "consume",
    expect=[("ctag-1", [(b"0", 1), (b"1", 2), (b"2", 3), (b"3", 4), (b"4", 5)], [("", "NS.q")] * 5)],
)
def consume_order(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        for i in range(3):
            s.ch.basic_publish("", q, str(i).encode())
        got: list[Any] = []
        where: list[Any] = []

        def on_message(ch: Any, m: Any, p: Any, body: bytes) -> None:
            got.append((m.consumer_tag, body, m.redelivered, m.delivery_tag))
            where.append((m.exchange, m.routing_key))
        tag = s.ch.basic_consume(q, on_message, auto_ack=True, consumer_tag=ns + "-ctag-1")
        for i in range(3, 5):
            s.ch.basic_publish("", q, str(i).encode())
        pump(s.conn, until=lambda: len(got) >= 5, settle=0.05)
        assert all(g[0] == tag for g in got)
        return [(tag.replace(ns + "-", ""), [(g[1], g[3]) for g in got], where)]


# RabbitMQ: a generated consumer tag looks like "ctag1.<32 hex>" with pika (pika invents
# it client-side); we only check that it is a non-empty str reported back in deliveries.
@scenario("consume", expect=[True, True])
def consume_generated_tag(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        got: list[Any] = []
        tag = s.ch.basic_consume(q, _collector(got), auto_ack=True)
        s.ch.basic_publish("", q, b"m")
        pump(s.conn, until=lambda: len(got) >= 1)
        return [isinstance(tag, str) and len(tag) > 0, got[0][0] == tag]


# RabbitMQ: with no prefetch, two consumers on a queue get messages alternately.
@scenario("consume", expect=[[b"0", b"2", b"4"], [b"1", b"3", b"5"]])
def consume_round_robin(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        g1: list[Any] = []
        g2: list[Any] = []
        s.ch.basic_consume(q, _collector(g1), auto_ack=True)
        s.ch.basic_consume(q, _collector(g2), auto_ack=True)
        for i in range(6):
            s.ch.basic_publish("", q, str(i).encode())
        pump(s.conn, until=lambda: len(g1) + len(g2) >= 6, settle=0.05)
        return [[g[1] for g in g1], [g[1] for g in g2]]


# RabbitMQ: prefetch 1 per consumer: each holds one unacked message; acking frees the
# consumer for the next one (fair dispatch).
@scenario("qos", expect=[[b"0"], [b"1"], 2, [b"0", b"2"], [b"1"], [b"0", b"2", b"3"], [b"1"]])
def qos_prefetch_one_two_consumers(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        s.ch.basic_qos(prefetch_count=1)
        g1: list[Any] = []
        g2: list[Any] = []
        s.ch.basic_consume(q, _collector(g1))
        s.ch.basic_consume(q, _collector(g2))
        for i in range(4):
            s.ch.basic_publish("", q, str(i).encode())
        pump(s.conn, until=lambda: len(g1) + len(g2) >= 2, settle=0.1)
        out: list[Any] = [[g[1] for g in g1], [g[1] for g in g2]]
        out.append(s.count(q))
        s.ch.basic_ack(g1[0][3])
        pump(s.conn, until=lambda: len(g1) + len(g2) >= 3, settle=0.1)
        out += [[g[1] for g in g1], [g[1] for g in g2]]
        s.ch.basic_ack(g1[1][3])
        pump(s.conn, until=lambda: len(g1) + len(g2) >= 4, settle=0.1)
        out += [[g[1] for g in g1], [g[1] for g in g2]]
        return out


# RabbitMQ: prefetch N caps unacked deliveries per consumer; a consumer that acks in its
# callback takes the rest.
@scenario("qos", expect=[[b"0", b"2"], [b"1", b"3", b"4", b"5", b"6", b"7"], 0])
def qos_prefetch_slow_and_fast(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        s.ch.basic_qos(prefetch_count=2)
        slow: list[Any] = []
        fast: list[Any] = []
        s.ch.basic_consume(q, _collector(slow))
        s.ch.basic_consume(q, _collector(fast, ack=True))
        for i in range(8):
            s.ch.basic_publish("", q, str(i).encode())
        pump(s.conn, until=lambda: len(slow) + len(fast) >= 8, settle=0.1)
        # RabbitMQ alternates while both have credit (0, 1, 2, 3), then only fast has
        return [[g[1] for g in slow], [g[1] for g in fast], s.count(q)]


# RabbitMQ: global_qos=True limits the whole channel: two consumers share 3 credits.
@scenario("qos", expect=[3, 3, 2])
def qos_global(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        s.ch.basic_qos(prefetch_count=3, global_qos=True)
        g1: list[Any] = []
        g2: list[Any] = []
        s.ch.basic_consume(q, _collector(g1))
        s.ch.basic_consume(q, _collector(g2))
        for i in range(5):
            s.ch.basic_publish("", q, str(i).encode())
        pump(s.conn, until=lambda: len(g1) + len(g2) >= 3, settle=0.15)
        out = [len(g1) + len(g2)]
        s.ch.basic_ack(0, multiple=True)
        pump(s.conn, until=lambda: len(g1) + len(g2) >= 5, settle=0.1)
        out.append(len(g1) + len(g2) - 2)
        out.append(s.count(q) + 2)
        return out


# RabbitMQ: prefetch_size > 0 is not implemented: connection error 540.
@scenario("qos", expect=[("connection-error", 540, "NOT_IMPLEMENTED - prefetch_size!=0 (1)"), OK])
def qos_prefetch_size(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        return [
            s.ok(lambda ch: ch.basic_qos(prefetch_size=1, prefetch_count=1)),
            s.ok(lambda ch: ch.basic_qos(prefetch_count=1)),
        ]


# RabbitMQ: a cancelled consumer's delivered messages stay unacked and ackable; closing
# the channel without acking requeues them.
@scenario("consume", expect=[3, 0, OK, 1, [(b"2", True, 0)]])
def consume_cancel_with_unacked(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        ch2 = s.conn.channel()
        got: list[Any] = []
        tag = ch2.basic_consume(q, _collector(got))
        for i in range(3):
            s.ch.basic_publish("", q, str(i).encode())
        pump(s.conn, until=lambda: len(got) >= 3, settle=0.05)
        ch2.basic_cancel(tag)
        out: list[Any] = [len(got), s.count(q)]
        ch2.basic_ack(got[0][3])
        ch2.basic_ack(got[1][3])
        out.append(s.ok(lambda ch: ch.queue_declare(q, passive=True)))
        ch2.close()
        out.append(s.count(q))
        out.append([s.get(q)])
        return out


# RabbitMQ: closing a consumer's channel with unacked messages requeues them at their
# original positions; the other consumer gets them with redelivered=True.
@scenario("consume", expect=[[b"0", b"1", b"2"], [(b"0", True), (b"1", True), (b"2", True), (b"3", True)]])
def consume_close_redelivers_to_other(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        for i in range(3):
            s.ch.basic_publish("", q, str(i).encode())
        ch1 = s.conn.channel()
        g1: list[Any] = []
        ch1.basic_consume(q, _collector(g1))
        pump(s.conn, until=lambda: len(g1) >= 3, settle=0.05)
        s.ch.basic_publish("", q, b"3")
        pump(s.conn, until=lambda: len(g1) >= 4, settle=0.05)
        ch1.basic_nack(4, requeue=True)  # 3 goes back; it's after 0..2 in the queue
        ch1.basic_cancel(ch1.consumer_tags[0]) if ch1.consumer_tags else None
        ch1.close()
        ch2 = s.conn.channel()
        g2: list[Any] = []
        ch2.basic_consume(q, _collector(g2, ack=True))
        pump(s.conn, until=lambda: len(g2) >= 4, settle=0.05)
        return [[g[1] for g in g1[:3]], [(g[1], g[2]) for g in g2]]


# RabbitMQ: nack with requeue inside the callback redelivers to a consumer with
# redelivered=True.
@scenario("consume", expect=[[(b"a", False), (b"a", True), (b"b", False)]])
def consume_nack_requeue_redelivered(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        got: list[Any] = []

        def on_message(ch: Any, m: Any, p: Any, body: bytes) -> None:
            got.append((body, m.redelivered))
            if body == b"a" and not m.redelivered:
                ch.basic_nack(m.delivery_tag, requeue=True)
            else:
                ch.basic_ack(m.delivery_tag)
        s.ch.basic_qos(prefetch_count=1)
        s.ch.basic_publish("", q, b"a")
        s.ch.basic_publish("", q, b"b")
        s.ch.basic_consume(q, on_message)
        pump(s.conn, until=lambda: len(got) >= 3, settle=0.05)
        return [got]


# RabbitMQ: basic_recover(requeue=True) with a consumer: unacked messages come back to
# the consumer in their order, redelivered=True.
@scenario("consume", expect=[[(b"0", False), (b"1", False), (b"0", True), (b"1", True)]])
def consume_recover(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        got: list[Any] = []
        s.ch.basic_consume(q, _collector(got))
        s.ch.basic_publish("", q, b"0")
        s.ch.basic_publish("", q, b"1")
        pump(s.conn, until=lambda: len(got) >= 2, settle=0.05)
        s.ch.basic_recover(requeue=True)
        pump(s.conn, until=lambda: len(got) >= 4, settle=0.05)
        return [[(g[1], g[2]) for g in got]]


# RabbitMQ: an exclusive consumer locks the queue for other consumers (403), and an
# exclusive consume on a queue that has consumers is refused too.
@scenario(
    "consume",
    expect=[
        e403(f"queue 'NS.q' {V} in exclusive use"),
        e403(f"queue 'NS.q2' {V} in exclusive use"),
        OK,
    ],
)
def consume_exclusive(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        q2 = s.q("q2")
        holder = s.conn.channel()
        tag = holder.basic_consume(q, lambda *a: None, exclusive=True)
        holder.basic_consume(q2, lambda *a: None)
        out = [
            s.ok(lambda ch: ch.basic_consume(q, lambda *a: None)),
            s.ok(lambda ch: ch.basic_consume(q2, lambda *a: None, exclusive=True)),
        ]
        holder.basic_cancel(tag)
        out.append(s.ok(lambda ch: ch.basic_consume(q, lambda *a: None)))
        return out


# RabbitMQ: consuming from a missing queue is 404.
@scenario("consume", expect=[no_q("NS.nope")])
def consume_missing_queue(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        return [s.ok(lambda ch: ch.basic_consume(s.n("nope"), lambda *a: None))]


# pika (client side): a duplicate consumer tag on one channel raises
# DuplicateConsumerTag before the server sees it.
@scenario("consume", expect=["DuplicateConsumerTag", OK])
def consume_duplicate_tag(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        s.ch.basic_consume(q, lambda *a: None, consumer_tag=ns + "-t")
        out: list[Any] = []
        try:
            s.ch.basic_consume(q, lambda *a: None, consumer_tag=ns + "-t")
            out.append("accepted")
        except pika.exceptions.DuplicateConsumerTag as e:
            out.append(type(e).__name__)
        out.append(s.ok(lambda ch: ch.queue_declare(q, passive=True)))
        return out


# RabbitMQ: consumer_count in queue_declare follows consume/cancel.
@scenario("consume", expect=[0, 2, 1, 0])
def consume_consumer_count(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")

        def cc() -> int:
            return int(s.ch.queue_declare(q, passive=True).method.consumer_count)
        ch2 = s.conn.channel()
        out = [cc()]
        t1 = ch2.basic_consume(q, lambda *a: None)
        ch2.basic_consume(q, lambda *a: None)
        out.append(cc())
        ch2.basic_cancel(t1)
        out.append(cc())
        ch2.close()
        out.append(cc())
        return out


# RabbitMQ: the consume() generator yields (method, properties, body) and
# (None, None, None) after inactivity_timeout; cancel() requeues what was not acked.
@scenario("consume", expect=[[b"0", b"1", None], 0, [(b"2", False, 0)]])
def consume_generator(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        s.ch.basic_publish("", q, b"0")
        s.ch.basic_publish("", q, b"1")
        ch2 = s.conn.channel()
        ch2.basic_qos(prefetch_count=1)
        seen: list[Any] = []
        for m, _p, body in ch2.consume(q, inactivity_timeout=0.3):
            if m is None:
                seen.append(None)
                break
            seen.append(body)
            ch2.basic_ack(m.delivery_tag)
        requeued = ch2.cancel()
        s.ch.basic_publish("", q, b"2")
        return [seen, requeued, [s.get(q)]]


# pika 1.x: cancel() rejects (requeues) what the generator received and did not yield,
# yet returns 0 ("for compatibility with legacy implementation"); they come back in
# order, flagged redelivered.
@scenario("consume", expect=[b"a", 2, 0, [(b"b", True, 1), (b"c", True, 0)]])
def consume_generator_cancel_with_pending(pika: ModuleType, params: Any, ns: str
                                          ) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        for b in (b"a", b"b", b"c"):
            s.ch.basic_publish("", q, b)
        ch2 = s.conn.channel()
        ch2.basic_qos(prefetch_count=10)
        gen = ch2.consume(q)
        method, _p, body = next(gen)
        deadline = time.monotonic() + 2
        while ch2.get_waiting_message_count() < 2 and time.monotonic() < deadline:
            s.conn.process_data_events(0.05)
        waiting = ch2.get_waiting_message_count()
        returned = ch2.cancel()
        ch2.basic_ack(method.delivery_tag)
        s.ch.queue_declare(q, passive=True)  # (a round trip: the rejects arrived)
        return [body, waiting, returned, [s.get(q), s.get(q)]]


# RabbitMQ (rabbit_queue_consumers): the active consumers are a FIFO; the one served goes
# to the back; one found without credit leaves it ("blocked") and, once an ack gives it
# credit again, rejoins at the back. Here c1 (prefetch 1) is passed over for m3, then
# acks m1: it rejoins behind c2, so m4 goes to c2 and m5 to c1. (inbus does the same
# with Consumer.blocked; before, its round robin kept a passed-over consumer's turn.)
@scenario(
    "qos",
    expect=[["m1"], ["m2", "m3"], ["m5"], ["m4"]],  # (c1's, c2's; then c1's, c2's)
)
def qos_unblocked_consumer_rejoins_at_the_back(pika: ModuleType, params: Any, ns: str
                                               ) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        ch1, ch2 = s.conn.channel(), s.conn.channel()
        ch1.basic_qos(prefetch_count=1)
        g1: list[Any] = []
        g2: list[Any] = []
        ch1.basic_consume(q, _collector(g1))
        ch2.basic_consume(q, _collector(g2), auto_ack=True)
        s.sync()
        out: list[Any] = []
        for body, want in ((b"m1", 1), (b"m2", 2), (b"m3", 3)):
            s.ch.basic_publish("", q, body)
            pump(s.conn, until=lambda n=want: len(g1) + len(g2) >= n, settle=0.05)
        out += [[g[1].decode() for g in g1], [g[1].decode() for g in g2]]
        ch1.basic_ack(g1[0][3])
        ch1.queue_declare(q, passive=True)  # (the ack reached the queue)
        pump(s.conn, settle=0.05)
        n1, n2 = len(g1), len(g2)
        for body, want in ((b"m4", 4), (b"m5", 5)):
            s.ch.basic_publish("", q, body)
            pump(s.conn, until=lambda n=want: len(g1) + len(g2) >= n, settle=0.05)
        out += [[g[1].decode() for g in g1[n1:]], [g[1].decode() for g in g2[n2:]]]
        return out


def _queue_and_collector(s: Any) -> tuple[str, list[Any], Any]:
    """Queue "q" of the session, a list of deliveries and a callback that fills it."""
    got: list[Any] = []
    return s.q("q"), got, _collector(got)


# The same for a multiple ack: RabbitMQ 3.10 settles it per consumer tag, in tag order,
# delivering after each group, so "a" (the smaller tag) takes m2 and "z" m3, though z's
# m0 came first. inbus settles in delivery-tag order: z takes m2 (README).
_MULTIPLE_ACK = ("deliberate: a multiple ack settles in delivery-tag order; RabbitMQ "
                 "settles and delivers per consumer tag, in tag order")


@scenario("qos", expect=[("a", "m2"), ("z", "m3")], inbus_xfail=_MULTIPLE_ACK)
def qos_multiple_ack_settles_per_consumer_tag(pika: ModuleType, params: Any,
                                              ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q, got, cb = _queue_and_collector(s)
        s.ch.basic_qos(prefetch_count=1)
        s.ch.basic_consume(q, cb, consumer_tag=ns + "-z")
        s.ch.basic_consume(q, cb, consumer_tag=ns + "-a")
        for body in (b"m0", b"m1", b"m2", b"m3"):
            s.ch.basic_publish("", q, body)
        pump(s.conn, until=lambda: len(got) >= 2, settle=0.05)
        s.ch.basic_ack(next(d for _, b, _, d in got if b == b"m1"), multiple=True)
        pump(s.conn, until=lambda: len(got) >= 4, settle=0.1)
        return sorted((t.replace(ns + "-", ""), b.decode()) for t, b, _, _ in got[2:])


# RabbitMQ 3.10 requeues a basic.recover (and a multiple nack) per (queue, consumer
# tag), in tag order, and delivers after each group: here consumer "b" was cancelled
# holding m2 and consumer "a" (prefetch 1) holds m3; "a"'s group goes back first and m3,
# alone at the head, is redelivered to "a" before m2 is back. inbus puts everything back,
# then delivers from the head (m2): a deliberate difference (README).
@scenario(
    "qos",
    expect=[("a", "m3", False), ("a", "m3", True)],
    inbus_xfail="deliberate: a recover puts back every message before delivering from "
                "the head; RabbitMQ requeues and delivers per consumer tag, in tag order",
)
def qos_recover_requeues_per_consumer_tag(pika: ModuleType, params: Any, ns: str
                                          ) -> list[Any]:
    with Session(pika, params, ns) as s:
        q, got, cb = _queue_and_collector(s)
        s.ch.basic_publish("", q, b"m1")
        s.ch.basic_publish("", q, b"m2")
        s.ch.basic_consume(q, cb, consumer_tag=ns + "-b")
        pump(s.conn, until=lambda: len(got) >= 2, settle=0.05)
        s.ch.basic_ack(got[0][3])
        s.ch.basic_cancel(ns + "-b")  # m2 stays unacked
        s.ch.basic_qos(prefetch_count=1)
        s.ch.basic_publish("", q, b"m3")
        s.ch.basic_consume(q, cb, consumer_tag=ns + "-a")
        pump(s.conn, until=lambda: len(got) >= 3, settle=0.05)
        s.ch.basic_recover(requeue=True)
        pump(s.conn, until=lambda: len(got) >= 4, settle=0.1)
        return [(t.replace(ns + "-", ""), b.decode(), r) for t, b, r, _ in got[2:]]


# RabbitMQ: start_consuming runs callbacks until stop_consuming is called from one.
@scenario("consume", expect=[[b"0", b"1", b"2"], 2])
def consume_start_stop(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        for i in range(5):
            s.ch.basic_publish("", q, str(i).encode())
        got: list[bytes] = []

        def on_message(ch: Any, m: Any, p: Any, body: bytes) -> None:
            got.append(body)
            ch.basic_ack(m.delivery_tag)
            if len(got) == 3:
                ch.stop_consuming()
        s.ch.basic_qos(prefetch_count=1)
        tag = s.ch.basic_consume(q, on_message)
        s.ch.start_consuming()
        # pika's basic_cancel rejects (requeues) what was delivered but not dispatched
        s.ch.basic_cancel(tag)
        return [got, s.count(q)]


# RabbitMQ: deleting a queue cancels its consumers (server basic.cancel), reported to
# add_on_cancel_callback with the consumer tag.
@scenario("consume", expect=[["NS-c"], no_q("NS.q")])
def consume_queue_deleted_cancels(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        ch2 = s.conn.channel()
        cancelled: list[str] = []
        ch2.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
        ch2.basic_consume(q, lambda *a: None, consumer_tag=ns + "-c")
        s.ch.queue_delete(q)
        pump(s.conn, until=lambda: len(cancelled) >= 1, settle=0.05)
        return [cancelled, s.ok(lambda ch: ch.queue_declare(q, passive=True))]


# RabbitMQ: auto_ack consumer: closing the channel loses nothing that was not delivered
# and requeues nothing that was.
@scenario("consume", expect=[[b"0", b"1"], 0])
def consume_auto_ack_close(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        ch2 = s.conn.channel()
        got: list[Any] = []
        ch2.basic_consume(q, _collector(got), auto_ack=True)
        s.ch.basic_publish("", q, b"0")
        s.ch.basic_publish("", q, b"1")
        pump(s.conn, until=lambda: len(got) >= 2, settle=0.05)
        ch2.close()
        return [[g[1] for g in got], s.count(q)]


# ============================================================================ connections / vhosts


# RabbitMQ: connecting to a missing vhost fails with connection error 530, which pika's
# BlockingConnection reports as ProbableAccessDeniedError (an AMQPConnectionError) whose
# message quotes the ConnectionClosedByBroker.
@scenario(
    "connection",
    expect=[("ProbableAccessDeniedError", True,
             "ConnectionClosedByBroker: (530) 'NOT_ALLOWED - vhost NS-missing not found'")],
)
def connection_missing_vhost(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    try:
        conn = pika.BlockingConnection(with_vhost(pika, params, ns + "-missing"))
        conn.close()
        return ["connected"]
    except pika.exceptions.AMQPConnectionError as e:
        return [(type(e).__name__, isinstance(e, pika.exceptions.AMQPConnectionError), str(e.args[0]))]


# RabbitMQ: entities of one vhost are invisible from another.
@scenario(
    "connection",
    expect=[("channel-error", 404, f"NOT_FOUND - no queue 'NS.q' in vhost '{OTHER_VHOST}'"), [b"m"]],
    needs_other_vhost=True,
)
def connection_vhost_isolation(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s, Session(pika, with_vhost(pika, params, OTHER_VHOST), ns) as o:
        q = s.q("q")
        out = [o.ok(lambda ch: ch.queue_declare(q, passive=True))]
        o.q("q")
        o.ch.basic_publish("", q, b"m")
        s.ch.basic_publish("", q, b"n")
        out.append(o.drain(q))
        return out


# RabbitMQ/pika: closed channels and connections refuse use with *WrongStateError;
# is_open/is_closed reflect state; a connection error closes every channel.
@scenario("connection", expect=[(False, True), "ChannelWrongStateError", (False, True, False), "ConnectionWrongStateError"])
def connection_close_states(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.close()
    out: list[Any] = [(ch.is_open, ch.is_closed)]
    out.append(wrong_state(pika, lambda: ch.queue_declare("", exclusive=True)))
    ch2 = conn.channel()
    conn.close()
    out.append((conn.is_open, conn.is_closed, ch2.is_open))
    try:
        conn.channel()
        out.append("no error")
    except pika.exceptions.ConnectionWrongStateError as e:
        out.append(type(e).__name__)
    return out


# RabbitMQ: a connection error (503) closes all the connection's channels; other
# connections are unaffected.
@scenario("connection", expect=[("connection-error", 503, "COMMAND_INVALID - unknown exchange type 'bogus'"), False, True])
def connection_error_closes_channels(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s, Session(pika, params, ns) as other:
        sibling = s.conn.channel()
        first_conn = s.conn
        out = [s.ok(lambda ch: ch.exchange_declare(s.n("x"), "bogus"))]
        out.append(sibling.is_open or first_conn.is_open)
        out.append(other.ch.is_open)
        return out


# pika's basic_get sends its frame whatever the channel's state. On an open connection
# the channel number is free at the broker: RabbitMQ's connection error 504, read by the
# connection's next I/O (the call itself raises ChannelWrongStateError); the connection's
# unacked deliveries go back (redelivered). On a closed connection the send raises
# ConnectionWrongStateError.
@scenario("connection", expect=["ChannelWrongStateError", True,
                                (504, "CHANNEL_ERROR - expected 'channel.open'"),
                                (False, False), (b"m", True),
                                "Attempted to send a frame on closed connection."])
def basic_get_on_a_closed_channel(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as other:
        q = other.q("q", exclusive=False)
        other.ch.basic_publish("", q, b"m")
        conn = pika.BlockingConnection(params)
        ch, holder = conn.channel(), conn.channel()
        assert holder.basic_get(q)[0] is not None          # unacked on holder
        ch.close()
        out: list[Any] = [wrong_state(pika, lambda: ch.basic_get(q))]
        out.append(conn.is_open)                            # the 504 is not read yet
        try:
            conn.channel()
            out.append("no error")
        except pika.exceptions.ConnectionClosedByBroker as e:
            out.append((e.reply_code, e.reply_text))
        out.append((conn.is_open, holder.is_open))
        m, _p, body = other.get_wait(q)
        out.append((body, m.redelivered) if m is not None else None)
        try:
            holder.basic_get(q)
            out.append("no error")
        except pika.exceptions.ConnectionWrongStateError as e:
            out.append(str(e))
        return out


# pika waits for a basic_get's reply until it comes: after one that raised (a missing
# queue's 404, an earlier asynchronous error read by it, a closed channel), the channel
# refuses any basic_get (DuplicateGetOkCallback) without sending it, so no 504 follows.
@scenario("connection", expect=[("channel-error", 404, "NOT_FOUND - no queue 'NS.nope' in vhost '/'"),
                                "DuplicateGetOkCallback",
                                ("channel-error", 406, "PRECONDITION_FAILED - unknown delivery tag 999"),
                                "DuplicateGetOkCallback", True])
def basic_get_after_a_basic_get_that_raised(pika: ModuleType, params: Any,
                                            ns: str) -> list[Any]:
    conn = pika.BlockingConnection(params)

    def get(ch: Any) -> Any:
        try:
            ch.basic_get(ns + ".nope")
            return "no error"
        except pika.exceptions.ChannelClosedByBroker as e:
            return ("channel-error", e.reply_code, e.reply_text.replace(ns, "NS"))
        except pika.exceptions.DuplicateGetOkCallback as e:
            return type(e).__name__
    try:
        ch = conn.channel()
        out = [get(ch), get(ch)]
        ch2 = conn.channel()
        ch2.basic_ack(999)
        out += [get(ch2), get(ch2)]
        conn.channel().queue_declare("", exclusive=True)
        out.append(conn.is_open)
        return out
    finally:
        if conn.is_open:
            conn.close()


# RabbitMQ accepts channel.flow active=true (pika's BlockingChannel.flow returns it) and
# answers active=false with its connection error 540.
@scenario("connection", expect=[("ok", True),
                                ("connection-error", 540, "NOT_IMPLEMENTED - active=false")])
def channel_flow(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        return [s.attempt(lambda ch: ch.flow(True)), s.attempt(lambda ch: ch.flow(False))]


# RabbitMQ: with-statement closes the connection; a channel as context manager closes it.
@scenario("connection", expect=[True, True, True])
def connection_context_managers(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with pika.BlockingConnection(params) as conn:
        with conn.channel() as ch:
            ch.queue_declare("", exclusive=True)
        closed_ch = ch.is_closed
        alive = conn.is_open
    return [closed_ch, alive and not conn.is_open, conn.is_closed]


# ============================================================================ ttl / expiry


# RabbitMQ: x-message-ttl drops messages that waited longer than the TTL.
@scenario("ttl", expect=[2, 0, None, [b"fresh"]])
def ttl_queue(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-message-ttl": 100})
        s.ch.basic_publish("", q, b"1")
        s.ch.basic_publish("", q, b"2")
        out: list[Any] = [s.count(q)]
        time.sleep(0.3)
        out.append(s.count(q))
        out.append(s.get(q))
        s.ch.basic_publish("", q, b"fresh")
        out.append(s.drain(q))
        return out


# RabbitMQ: the lower of queue TTL and per-message expiration applies.
@scenario("ttl", expect=[[b"q-short"], []])
def ttl_lower_applies(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        qa = s.q("qa", arguments={"x-message-ttl": 10000})
        qb = s.q("qb", arguments={"x-message-ttl": 100})
        s.ch.basic_publish("", qa, b"msg-short", pika.BasicProperties(expiration="100"))
        s.ch.basic_publish("", qb, b"q-short", pika.BasicProperties(expiration="10000"))
        out_b = s.drain(qb)
        s.ch.basic_publish("", qb, b"q-short-2", pika.BasicProperties(expiration="10000"))
        time.sleep(0.3)
        return [out_b, s.drain(qa) + s.drain(qb)]


# RabbitMQ: per-message expiration is only enforced at the head of the queue: an expired
# message behind a live one is still counted until it reaches the head; a basic_get that
# uncovers it drops it at once (its message_count is already 0).
@scenario("ttl", expect=[2, (b"live", False, 0), None, 0])
def ttl_per_message_head_only(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        s.ch.basic_publish("", q, b"live")
        s.ch.basic_publish("", q, b"short", pika.BasicProperties(expiration="50"))
        time.sleep(0.2)
        out: list[Any] = [s.count(q)]
        out.append(s.get(q))
        out.append(s.get(q))
        out.append(s.count(q))
        return out


# RabbitMQ: unacked messages do not expire; when requeued after their TTL passed they
# are dropped.
@scenario("ttl", expect=[(b"m", False, 0), 0, None])
def ttl_unacked_then_requeued(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-message-ttl": 100})
        s.ch.basic_publish("", q, b"m")
        out: list[Any] = [s.get(q, auto_ack=False)]
        time.sleep(0.25)
        out.append(s.count(q))
        s.ch.basic_nack(1, requeue=True)
        time.sleep(0.05)
        out.append(s.get(q))
        return out


# RabbitMQ: x-message-ttl 0 drops messages that cannot be delivered at once; a waiting
# consumer still gets them.
@scenario("ttl", expect=[None, [b"2"]])
def ttl_zero(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-message-ttl": 0})
        s.ch.basic_publish("", q, b"1")
        time.sleep(0.05)
        out: list[Any] = [s.get(q)]
        got: list[Any] = []
        s.ch.basic_consume(q, _collector(got), auto_ack=True)
        s.ch.basic_publish("", q, b"2")
        pump(s.conn, until=lambda: len(got) >= 1, settle=0.05)
        out.append([g[1] for g in got])
        return out


# RabbitMQ: x-expires deletes a queue unused for that long; a consumer keeps it alive.
@scenario("ttl", expect=[OK, no_q("NS.unused"), OK])
def ttl_queue_expires(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q1 = s.q("unused", exclusive=False, arguments={"x-expires": 150})
        q2 = s.q("used", exclusive=False, arguments={"x-expires": 150})
        ch2 = s.conn.channel()
        ch2.basic_consume(q2, lambda *a: None)
        out = [s.ok(lambda ch: ch.queue_declare(q1, passive=True))]
        time.sleep(0.5)
        pump(s.conn, settle=0.01)
        out.append(s.ok(lambda ch: ch.queue_declare(q1, passive=True)))
        out.append(s.ok(lambda ch: ch.queue_declare(q2, passive=True)))
        return out


# ============================================================================ max-length


# RabbitMQ: x-max-length with the default overflow drops from the head.
@scenario("maxlen", expect=[2, [b"3", b"4"]])
def maxlen_drop_head(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-max-length": 2})
        for b in (b"1", b"2", b"3", b"4"):
            s.ch.basic_publish("", q, b)
        return [s.count(q), s.drain(q)]


# RabbitMQ: only ready messages count towards x-max-length; requeueing makes them count
# again, and the limit is enforced then (drop-head drops the requeued head).
@scenario("maxlen", expect=[[b"2", b"3"], (b"2", True, 1)])
def maxlen_unacked_not_counted(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-max-length": 2})
        s.ch.basic_publish("", q, b"1")
        s.ch.basic_get(q, auto_ack=False)
        s.ch.basic_publish("", q, b"2")
        s.ch.basic_publish("", q, b"3")
        ch2 = s.conn.channel()
        ready = []
        for _ in range(2):
            m, _p, b = ch2.basic_get(q, auto_ack=False)
            ready.append(b)
        ch2.close()
        s.ch.basic_recover(requeue=True)
        return [ready, s.get(q)]


# RabbitMQ: x-overflow reject-publish refuses new messages when full; in confirm mode
# the publisher gets a nack (NackError).
@scenario("maxlen", expect=[["ok", "ok", "NackError"], [b"1", b"2"]])
def maxlen_reject_publish_confirm(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
        s.ch.confirm_delivery()
        res = []
        for b in (b"1", b"2", b"3"):
            try:
                s.ch.basic_publish("", q, b)
                res.append("ok")
            except pika.exceptions.NackError as e:
                res.append(type(e).__name__)
        return [res, s.drain(q)]


# RabbitMQ: x-max-length-bytes counts body bytes; drop-head.
@scenario("maxlen", expect=[[b"bbbbb", b"ccccc"]])
def maxlen_bytes(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-max-length-bytes": 10})
        for b in (b"aaaaa", b"bbbbb", b"ccccc"):
            s.ch.basic_publish("", q, b)
        return [s.drain(q)]


# RabbitMQ: x-max-length 0 keeps nothing.
@scenario("maxlen", expect=[0, None])
def maxlen_zero(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-max-length": 0})
        s.ch.basic_publish("", q, b"1")
        return [s.count(q), s.get(q)]


# ============================================================================ dead-lettering


def _x_death(p: Any) -> Any:
    h = p.headers or {}
    deaths = [
        {k: d.get(k) for k in ("count", "reason", "queue", "exchange", "routing-keys", "original-expiration")}
        for d in h.get("x-death", [])
    ]
    firsts = {k: v for k, v in h.items() if k.startswith("x-first-death") or k.startswith("x-last-death")}
    return {"x-death": deaths, "first": firsts, "expiration": p.expiration}


def _dlx_setup(s: Session, qargs: dict[str, Any]) -> tuple[str, str, str]:
    dlx = s.x("dlx", "fanout")
    dlq = s.q("dlq")
    s.ch.queue_bind(dlq, dlx)
    q = s.q("q", arguments={"x-dead-letter-exchange": dlx, **qargs})
    return dlx, dlq, q


# RabbitMQ: reject(requeue=False) dead-letters with x-death reason 'rejected', the queue,
# the original exchange and routing keys; x-first-death-* headers are set.
@scenario(
    "dlx",
    expect=[
        (b"m", "NS.dlx", "NS.q", {
            "x-death": [{"count": 1, "reason": "rejected", "queue": "NS.q", "exchange": "",
                         "routing-keys": ["NS.q"], "original-expiration": None}],
            "first": {"x-first-death-exchange": "", "x-first-death-queue": "NS.q",
                      "x-first-death-reason": "rejected"},
            "expiration": None}),
    ],
)
def dlx_rejected(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        _dlx, dlq, q = _dlx_setup(s, {})
        s.ch.basic_publish("", q, b"m")
        s.ch.basic_get(q, auto_ack=False)
        s.ch.basic_reject(1, requeue=False)
        m, p, body = s.get_wait(dlq)
        return [(body, m.exchange, m.routing_key, _x_death(p))]


# RabbitMQ: nack(requeue=False) of a message that came through an exchange: x-death's
# exchange and routing-keys are the original ones; x-dead-letter-routing-key replaces the
# routing key used to republish.
@scenario(
    "dlx",
    expect=[
        (b"m", "NS.dlx", "new-key", {
            "x-death": [{"count": 1, "reason": "rejected", "queue": "NS.q", "exchange": "NS.src",
                         "routing-keys": ["orig"], "original-expiration": None}],
            "first": {"x-first-death-exchange": "NS.src", "x-first-death-queue": "NS.q",
                      "x-first-death-reason": "rejected"},
            "expiration": None}),
    ],
)
def dlx_routing_key_override(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        dlx = s.x("dlx", "direct")
        dlq = s.q("dlq")
        s.ch.queue_bind(dlq, dlx, routing_key="new-key")
        src = s.x("src", "direct")
        q = s.q("q", arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "new-key"})
        s.ch.queue_bind(q, src, routing_key="orig")
        s.ch.basic_publish(src, "orig", b"m")
        s.ch.basic_get(q, auto_ack=False)
        s.ch.basic_nack(1, requeue=False)
        m, p, body = s.get_wait(dlq)
        return [(body, m.exchange, m.routing_key, _x_death(p))]


# RabbitMQ: expired messages are dead-lettered with reason 'expired'; per-message
# expiration is removed from the properties and recorded as original-expiration.
@scenario(
    "dlx",
    expect=[
        [(b"qttl", {"x-death": [{"count": 1, "reason": "expired", "queue": "NS.q", "exchange": "",
                                 "routing-keys": ["NS.q"], "original-expiration": None}],
                    "first": {"x-first-death-exchange": "", "x-first-death-queue": "NS.q",
                              "x-first-death-reason": "expired"},
                    "expiration": None}),
         (b"msgttl", {"x-death": [{"count": 1, "reason": "expired", "queue": "NS.q", "exchange": "",
                                   "routing-keys": ["NS.q"], "original-expiration": "50"}],
                      "first": {"x-first-death-exchange": "", "x-first-death-queue": "NS.q",
                                "x-first-death-reason": "expired"},
                      "expiration": None})],
    ],
)
def dlx_expired(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        _dlx, dlq, q = _dlx_setup(s, {"x-message-ttl": 100})
        s.ch.basic_publish("", q, b"qttl")
        s.ch.basic_publish("", q, b"msgttl", pika.BasicProperties(expiration="50"))
        time.sleep(0.35)
        out = []
        for _ in range(2):
            m, p, body = s.ch.basic_get(dlq, auto_ack=True)
            out.append((body, _x_death(p)) if m else None)
        return [out]


# RabbitMQ: messages dropped by x-max-length are dead-lettered with reason 'maxlen'.
@scenario("dlx", expect=[[(b"1", "maxlen", 1)], [b"2"]])
def dlx_maxlen(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        _dlx, dlq, q = _dlx_setup(s, {"x-max-length": 1})
        s.ch.basic_publish("", q, b"1")
        s.ch.basic_publish("", q, b"2")
        out = []
        m, p, body = s.get_wait(dlq)
        while m is not None:
            d = p.headers["x-death"][0]
            out.append((body, d["reason"], d["count"]))
            m, p, body = s.ch.basic_get(dlq, auto_ack=True)
        return [out, s.drain(q)]


# RabbitMQ: a message dead-lettered twice from the same queue for the same reason keeps
# one x-death entry whose count is 2 (exchange and routing-keys stay those of the first
# death).
@scenario("dlx", expect=[[{"count": 2, "reason": "rejected", "queue": "NS.q", "exchange": "",
                           "routing-keys": ["NS.q"], "original-expiration": None}]])
def dlx_count_increments(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        dlx = s.x("dlx", "fanout")
        q = s.q("q", arguments={"x-dead-letter-exchange": dlx})
        s.ch.queue_bind(q, dlx)  # rejected messages come back to q
        s.ch.basic_publish("", q, b"m")
        for _ in range(2):
            m, _p, _b = s.get_wait(q, auto_ack=False)
            s.ch.basic_reject(m.delivery_tag, requeue=False)
        _m, p, _body = s.get_wait(q)
        return [_x_death(p)["x-death"]]


# RabbitMQ: with reject-publish-dlx a refused publish is dead-lettered (reason maxlen)
# and nacked to a confirming publisher.
@scenario("dlx", expect=[["ok", "NackError"], [(b"2", "maxlen")], [b"1"]])
def dlx_reject_publish_dlx(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        _dlx, dlq, q = _dlx_setup(s, {"x-max-length": 1, "x-overflow": "reject-publish-dlx"})
        s.ch.confirm_delivery()
        res = []
        for b in (b"1", b"2"):
            try:
                s.ch.basic_publish("", q, b)
                res.append("ok")
            except pika.exceptions.NackError as e:
                res.append(type(e).__name__)
        dead = []
        m, p, body = s.get_wait(dlq)
        while m is not None:
            dead.append((body, p.headers["x-death"][0]["reason"]))
            m, p, body = s.ch.basic_get(dlq, auto_ack=True)
        return [res, dead, s.drain(q)]


# RabbitMQ: a dead-letter exchange that does not exist drops the message silently.
@scenario("dlx", expect=[0, None])
def dlx_missing_exchange(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-dead-letter-exchange": s.n("nope")})
        s.ch.basic_publish("", q, b"m")
        s.ch.basic_get(q, auto_ack=False)
        s.ch.basic_reject(1, requeue=False)
        return [s.count(q), s.get(q)]


# ============================================================================ priority


# RabbitMQ: x-max-priority: higher priority first, FIFO within a priority; no priority
# counts as 0; above the max counts as the max.
@scenario("priority", expect=[[b"p5", b"p9", b"p5b", b"p3", b"p1", b"none", b"p0"]])
def priority_order(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-max-priority": 5})
        for body, prio in ((b"p1", 1), (b"p5", 5), (b"none", None), (b"p9", 9), (b"p3", 3),
                           (b"p0", 0), (b"p5b", 5)):
            s.ch.basic_publish("", q, body, pika.BasicProperties(priority=prio))
        return [s.drain(q)]


# RabbitMQ: without x-max-priority the priority property is ignored (FIFO).
@scenario("priority", expect=[[b"p1", b"p9"]])
def priority_ignored_without_max(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        s.ch.basic_publish("", q, b"p1", pika.BasicProperties(priority=1))
        s.ch.basic_publish("", q, b"p9", pika.BasicProperties(priority=9))
        return [s.drain(q)]


# RabbitMQ: a requeued message returns to its place within its priority.
@scenario("priority", expect=[[(b"hi", True), (b"lo1", False), (b"lo2", False)]])
def priority_requeue(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-max-priority": 2})
        s.ch.basic_publish("", q, b"lo1", pika.BasicProperties(priority=0))
        s.ch.basic_publish("", q, b"hi", pika.BasicProperties(priority=2))
        s.ch.basic_publish("", q, b"lo2", pika.BasicProperties(priority=0))
        s.ch.basic_get(q, auto_ack=False)
        s.ch.basic_nack(1, requeue=True)
        out = []
        for _ in range(3):
            g = s.get(q)
            out.append((g[0], g[1]))
        return [out]


# ============================================================================ alternate exchange


# RabbitMQ: unroutable messages go to the alternate exchange (no return even when
# mandatory); routable ones do not.
@scenario("ae", expect=[[b"lost", b"lost-mandatory"], [b"routed"], []])
def ae_basic(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        ae = s.x("ae", "fanout")
        aeq = s.q("aeq")
        s.ch.queue_bind(aeq, ae)
        x = s.x("x", "direct", arguments={"alternate-exchange": ae})
        q = s.q("q")
        s.ch.queue_bind(q, x, routing_key="k")
        got = _returns(s)
        s.ch.basic_publish(x, "nowhere", b"lost")
        s.ch.basic_publish(x, "nowhere", b"lost-mandatory", mandatory=True)
        s.ch.basic_publish(x, "k", b"routed")
        s.sync()
        pump(s.conn, settle=0.05)
        return [s.drain(aeq), s.drain(q), got]


# RabbitMQ: an alternate exchange that does not exist (or routes nowhere): the message is
# unroutable and returned when mandatory.
@scenario("ae", expect=[[(312, "NO_ROUTE", "NS.x", "k", b"m", None)], [(312, "NO_ROUTE", "NS.y", "k", b"n", None)]])
def ae_missing_or_empty(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x = s.x("x", "direct", arguments={"alternate-exchange": s.n("nope")})
        empty = s.x("empty", "fanout")
        y = s.x("y", "direct", arguments={"alternate-exchange": empty})
        got = _returns(s)
        s.ch.basic_publish(x, "k", b"m", mandatory=True)
        s.sync()
        pump(s.conn, until=lambda: len(got) >= 1, settle=0.05)
        first = list(got)
        s.ch.basic_publish(y, "k", b"n", mandatory=True)
        s.sync()
        pump(s.conn, until=lambda: len(got) >= 2, settle=0.05)
        return [first, got[1:]]


# RabbitMQ: an alternate exchange's own alternate exchange is followed; a queue reached
# both ways still gets one copy.
@scenario("ae", expect=[[b"m"]])
def ae_chain(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        ae2 = s.x("ae2", "fanout")
        ae1 = s.x("ae1", "direct", arguments={"alternate-exchange": ae2})
        x = s.x("x", "direct", arguments={"alternate-exchange": ae1})
        q = s.q("q")
        s.ch.queue_bind(q, ae2)
        s.ch.basic_publish(x, "k", b"m")
        return [s.drain(q)]


# RabbitMQ: an exchange routes a message with all its keys (routing key, CC, BCC) at once:
# the alternate exchange takes it only when none matched, not once per unmatched key;
# dead-lettering with several keys likewise.
@scenario("ae", expect=[[b"cc", b"bcc", b"dead"], [b"none"]])
def ae_only_when_no_key_matched(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        ae = s.x("ae", "fanout")
        aeq = s.q("aeq")
        s.ch.queue_bind(aeq, ae)
        x = s.x("x", "direct", arguments={"alternate-exchange": ae})
        q = s.q("q")
        s.ch.queue_bind(q, x, routing_key="k")
        s.ch.basic_publish(x, "k", b"cc", pika.BasicProperties(headers={"CC": ["other"]}))
        s.ch.basic_publish(x, "other", b"bcc", pika.BasicProperties(headers={"BCC": ["k"]}))
        s.ch.basic_publish(x, "y", b"none", pika.BasicProperties(headers={"CC": ["z"]}))
        work = s.q("work", arguments={"x-dead-letter-exchange": x})
        s.ch.basic_publish("", work, b"dead", pika.BasicProperties(headers={"CC": ["k"]}))
        m, _p, _b = s.get_wait(work, auto_ack=False)
        s.ch.basic_nack(m.delivery_tag, requeue=False)
        s.sync()
        time.sleep(0.05)
        return [s.drain(q), s.drain(aeq)]


# ============================================================================ invalid arguments


# RabbitMQ: invalid queue argument values and types are 406 naming the argument, with an
# Erlang-ish reason ({value_negative,-1}, {max_value_exceeded,256}, invalid_overflow...).
@scenario(
    "args",
    expect=[
        e406(f"invalid arg 'x-max-length' for queue 'NS.q' {V}: \"expected integer, got longstr\""),
        e406(f"invalid arg 'x-message-ttl' for queue 'NS.q' {V}: {{value_negative,-1}}"),
        e406(f"invalid arg 'x-max-priority' for queue 'NS.q' {V}: {{max_value_exceeded,256}}"),
        e406(f"invalid arg 'x-expires' for queue 'NS.q' {V}: {{value_zero,0}}"),
        e406(f"invalid arg 'x-overflow' for queue 'NS.q' {V}: invalid_overflow"),
        e406(f"invalid arg 'x-max-length' for queue 'NS.q' {V}: {{value_negative,-1}}"),
    ],
)
def args_invalid_queue_arguments(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.n("q")
        return [
            s.ok(lambda ch, a=a: ch.queue_declare(q, exclusive=True, arguments=a))
            for a in ({"x-max-length": "abc"}, {"x-message-ttl": -1}, {"x-max-priority": 256},
                      {"x-expires": 0}, {"x-overflow": "bogus"}, {"x-max-length": -1})
        ]


# RabbitMQ: basic_recover(requeue=False) is not implemented: connection error 540, which
# closes the connection and its channels.
@scenario(
    "get_ack",
    expect=[("connection-error", 540, "NOT_IMPLEMENTED - requeue=false"), (False, False)],
)
def get_recover_requeue_false(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        conn, ch = s.conn, s.ch
        out: list[Any] = [s.ok(lambda c: c.basic_recover(requeue=False))]
        out.append((conn.is_open, ch.is_open))
        return out


# ============================================================================ more: consumers


# pika + RabbitMQ: cancelling an ackable consumer from its callback makes pika reject
# (requeue) the deliveries it had received but not dispatched yet; RabbitMQ then flags
# them redelivered.
@scenario(
    "consume",
    expect=[[b"0"], [(b"1", True, 1), (b"2", True, 0)]],
)
def consume_cancel_in_callback_putback(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        for i in range(3):
            s.ch.basic_publish("", q, str(i).encode())
        got: list[bytes] = []
        ch2 = s.conn.channel()

        def on_message(ch: Any, m: Any, p: Any, body: bytes) -> None:
            got.append(body)
            ch.basic_ack(m.delivery_tag)
            ch.basic_cancel(m.consumer_tag)
        ch2.basic_consume(q, on_message)
        time.sleep(0.1)  # all three deliveries reach the client before dispatch
        pump(s.conn, until=lambda: len(got) >= 1, settle=0.1)
        return [got, [s.get(q), s.get(q)]]


# RabbitMQ: x-single-active-consumer: only the first consumer gets messages; when it is
# cancelled the next one takes over (with what the first left unacked, redelivered).
@scenario("consume", expect=[[b"0", b"1", b"2"], [], [(b"1", True), (b"2", True), (b"3", False)]])
def consume_single_active(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-single-active-consumer": True})
        ch1, ch2 = s.conn.channel(), s.conn.channel()
        g1: list[Any] = []
        g2: list[Any] = []

        def first(ch: Any, m: Any, p: Any, body: bytes) -> None:
            g1.append(body)
            if body == b"0":
                ch.basic_ack(m.delivery_tag)
        ch1.basic_consume(q, first)
        ch2.basic_consume(q, _collector(g2, ack=True))
        for i in range(3):
            s.ch.basic_publish("", q, str(i).encode())
        pump(s.conn, until=lambda: len(g1) >= 3, settle=0.1)
        out: list[Any] = [list(g1), [g[1] for g in g2]]
        ch1.close()
        s.ch.basic_publish("", q, b"3")
        pump(s.conn, until=lambda: len(g2) >= 3, settle=0.1)
        out.append([(g[1], g[2]) for g in g2])
        return out


# RabbitMQ: consumer priorities (x-priority): the higher-priority consumer gets messages
# while it has credit; the lower one gets them only when it is full.
@scenario("consume", expect=[[b"0", b"1"], [b"2", b"3"]])
def consume_priority(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        s.ch.basic_qos(prefetch_count=2)
        lo: list[Any] = []
        hi: list[Any] = []
        s.ch.basic_consume(q, _collector(lo), arguments={"x-priority": 0})
        s.ch.basic_consume(q, _collector(hi), arguments={"x-priority": 10})
        for i in range(4):
            s.ch.basic_publish("", q, str(i).encode())
        pump(s.conn, until=lambda: len(lo) + len(hi) >= 4, settle=0.1)
        return [[g[1] for g in hi], [g[1] for g in lo]]


# RabbitMQ: basic_qos (per consumer) applies to consumers started after it; an existing
# consumer keeps the prefetch it started with.
@scenario("qos", expect=[1, 3])
def qos_applies_to_new_consumers(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q1, q2 = s.q("q1"), s.q("q2")
        s.ch.basic_qos(prefetch_count=1)
        g1: list[Any] = []
        g2: list[Any] = []
        s.ch.basic_consume(q1, _collector(g1))
        s.ch.basic_qos(prefetch_count=3)
        s.ch.basic_consume(q2, _collector(g2))
        for i in range(5):
            s.ch.basic_publish("", q1, str(i).encode())
            s.ch.basic_publish("", q2, str(i).encode())
        pump(s.conn, until=lambda: len(g1) + len(g2) >= 4, settle=0.15)
        return [len(g1), len(g2)]


# RabbitMQ: acking a message whose queue was deleted meanwhile is fine; the channel
# stays open.
@scenario("get_ack", expect=[OK, True])
def ack_after_queue_deleted(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        s.ch.basic_publish("", q, b"m")
        s.ch.basic_get(q, auto_ack=False)
        other = s.conn.channel()
        other.queue_delete(q)
        out = [s.ok(lambda ch: (ch.basic_ack(1), ch.queue_declare("", exclusive=True)))]
        out.append(s.ch.is_open)
        return out


# RabbitMQ: ack multiple with a tag never delivered is 406 unknown delivery tag.
@scenario("get_ack", expect=[e406("unknown delivery tag 5")])
def ack_multiple_unknown_tag(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        s.ch.basic_publish("", q, b"m")
        s.ch.basic_get(q, auto_ack=False)
        return [s.ok(lambda ch: (ch.basic_ack(5, multiple=True), ch.queue_declare(q, passive=True)))]


# RabbitMQ: closing a connection requeues the unacked messages of all its channels.
@scenario("get_ack", expect=[[(b"a", True, 2), (b"b", True, 1), (b"c", False, 0)]])
def connection_close_requeues_all_channels(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", exclusive=False)
        for b in (b"a", b"b", b"c"):
            s.ch.basic_publish("", q, b)
        c2 = pika.BlockingConnection(params)
        c2.channel().basic_get(q, auto_ack=False)
        c2.channel().basic_get(q, auto_ack=False)
        c2.close()
        time.sleep(0.1)
        return [[s.get(q), s.get(q), s.get(q)]]


# ============================================================================ more: routing


# RabbitMQ: CC and BCC headers add routing keys; BCC is removed from the delivered
# headers, CC is kept.
@scenario("routing", expect=[[(b"m", {"CC": ["k2"]})], [(b"m", {"CC": ["k2"]})], [(b"m", {"CC": ["k2"]})]])
def routing_cc_bcc(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x = s.x("x", "direct")
        qs = [s.q(f"q{i}") for i in (1, 2, 3)]
        for i, q in enumerate(qs, 1):
            s.ch.queue_bind(q, x, routing_key=f"k{i}")
        s.ch.basic_publish(x, "k1", b"m", pika.BasicProperties(headers={"CC": ["k2"], "BCC": ["k3"]}))
        out = []
        for q in qs:
            m, p, body = s.ch.basic_get(q, auto_ack=True)
            out.append([(body, p.headers)] if m else [])
        return out


# RabbitMQ: a mandatory message to a fanout exchange without queues is returned; a
# headers exchange ignores the routing key.
@scenario("returns", expect=[[(312, "NO_ROUTE", "NS.f", "k", b"f", None)], [b"h"]])
def returns_fanout_empty_headers_key(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        f = s.x("f", "fanout")
        h = s.x("h", "headers")
        q = s.q("q")
        s.ch.queue_bind(q, h, routing_key="ignored", arguments={"a": "1"})
        got = _returns(s)
        s.ch.basic_publish(f, "k", b"f", mandatory=True)
        s.ch.basic_publish(h, "other", b"h", pika.BasicProperties(headers={"a": "1"}))
        s.sync()
        pump(s.conn, until=lambda: len(got) >= 1, settle=0.05)
        return [got, s.drain(q)]


# RabbitMQ: deleting an exchange that is the destination of e2e bindings removes them;
# the source then routes nowhere.
@scenario("e2e", expect=[[b"1"], (312, "NO_ROUTE")])
def e2e_destination_deleted(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        src = s.x("src", "fanout")
        dst = s.x("dst", "fanout")
        q = s.q("q")
        s.ch.exchange_bind(dst, src)
        s.ch.queue_bind(q, dst)
        s.ch.basic_publish(src, "", b"1")
        out: list[Any] = [s.drain(q)]
        s.ch.exchange_delete(dst)
        got = _returns(s)
        s.ch.basic_publish(src, "", b"2", mandatory=True)
        s.sync()
        pump(s.conn, until=lambda: len(got) >= 1, settle=0.05)
        out.append(got[0][:2] if got else None)
        return out


# ============================================================================ more: features


# RabbitMQ: an invalid per-message expiration is a 406 channel error.
@scenario(
    "ttl",
    expect=[
        e406("invalid expiration 'abc': no_integer"),
        e406("invalid expiration '-1': {value_negative,-1}"),
    ],
)
def ttl_invalid_expiration(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        return [
            s.ok(lambda ch, e=e: (ch.basic_publish("", q, b"m", pika.BasicProperties(expiration=e)), s.sync()))
            for e in ("abc", "-1")
        ]


# RabbitMQ: a basic_get resets x-expires (the queue was used); after the full period of
# no use it goes.
@scenario("ttl", expect=[OK, OK, no_q("NS.q")])
def ttl_expires_reset_by_get(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", exclusive=False, arguments={"x-expires": 300})
        time.sleep(0.2)
        s.ch.basic_get(q)
        time.sleep(0.2)
        out = [s.ok(lambda ch: ch.queue_declare(q, passive=True))]
        out.append(OK)
        time.sleep(0.45)
        out.append(s.ok(lambda ch: ch.queue_declare(q, passive=True)))
        return out


# RabbitMQ: x-overflow reject-publish without confirms drops the new message silently.
@scenario("maxlen", expect=[[b"1"]])
def maxlen_reject_publish_no_confirm(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        s.ch.basic_publish("", q, b"1")
        s.ch.basic_publish("", q, b"2")
        return [s.drain(q)]


# RabbitMQ: x-max-length-bytes with reject-publish and confirms: a message that would
# exceed the byte limit is nacked.
@scenario("maxlen", expect=[["ok", "ok", "NackError"], [b"aaaa", b"bbbb"]])
def maxlen_bytes_reject_publish(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-max-length-bytes": 8, "x-overflow": "reject-publish"})
        s.ch.confirm_delivery()
        res = []
        for b in (b"aaaa", b"bbbb", b"c"):
            try:
                s.ch.basic_publish("", q, b)
                res.append("ok")
            except pika.exceptions.NackError as e:
                res.append(type(e).__name__)
        return [res, s.drain(q)]


# RabbitMQ: x-max-length on a priority queue: drop-head drops the head of the queue as
# it would be delivered, i.e. the highest-priority message.
@scenario("maxlen", expect=[[b"lo1", b"lo2"]])
def maxlen_priority_queue(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-max-length": 2, "x-max-priority": 5})
        s.ch.basic_publish("", q, b"lo1", pika.BasicProperties(priority=0))
        s.ch.basic_publish("", q, b"hi", pika.BasicProperties(priority=5))
        s.ch.basic_publish("", q, b"lo2", pika.BasicProperties(priority=0))
        return [s.drain(q)]


# RabbitMQ: a fully automatic dead-letter cycle (expiry -> dlx -> expiry back to the first
# queue) is dropped, not looped forever.
@scenario("dlx", expect=[0, 0])
def dlx_automatic_cycle_dropped(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q1, q2 = s.n("q1"), s.n("q2")
        s.q("q1", arguments={"x-message-ttl": 30, "x-dead-letter-exchange": "",
                            "x-dead-letter-routing-key": q2})
        s.q("q2", arguments={"x-message-ttl": 30, "x-dead-letter-exchange": "",
                            "x-dead-letter-routing-key": q1})
        s.ch.basic_publish("", q1, b"m")
        time.sleep(0.4)
        return [s.count(q1), s.count(q2)]


# RabbitMQ: a message dead-lettered from two queues carries two x-death entries, the most
# recent first; x-first-death-* keep the first.
@scenario(
    "dlx",
    expect=[
        [("NS.q2", "rejected", 1), ("NS.q1", "expired", 1)],
        {"x-first-death-exchange": "", "x-first-death-queue": "NS.q1", "x-first-death-reason": "expired"},
        [b"m"],
    ],
)
def dlx_two_queues(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q1, q2, q3 = s.n("q1"), s.n("q2"), s.n("q3")
        s.q("q3")
        s.q("q2", arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": q3})
        s.q("q1", arguments={"x-message-ttl": 30, "x-dead-letter-exchange": "",
                            "x-dead-letter-routing-key": q2})
        s.ch.basic_publish("", q1, b"m")
        time.sleep(0.25)
        m, _p, _b = s.ch.basic_get(q2, auto_ack=False)
        s.ch.basic_reject(m.delivery_tag, requeue=False)
        m, p, body = s.get_wait(q3)
        d = _x_death(p)
        return [[(e["queue"], e["reason"], e["count"]) for e in d["x-death"]], d["first"], [body]]


# RabbitMQ: the channel hands a message to all its queues before any of them reacts, so
# what one queue dead-letters on its arrival (overflow, TTL 0) reaches another queue of
# the same publish after the message itself; likewise for a dead letter's own queues.
@scenario("dlx", expect=[[b"m3"], [b"big"], [b"a"], [b"old"]])
def dlx_after_the_publish_reached_every_queue(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x = s.x("x", "headers")
        q3 = s.q("q3", arguments={"x-max-length": 1, "x-dead-letter-exchange": x})
        q2 = s.q("q2", arguments={"x-max-length-bytes": 3})
        s.ch.queue_bind(q3, x)
        s.ch.queue_bind(q2, x)
        s.ch.basic_publish(x, "", b"m3")
        s.ch.basic_publish(x, "", b"big")  # overflows q3 (m3 dead-lettered) and q2
        dlx, dlx2 = s.x("dlx", "fanout"), s.x("dlx2", "fanout")
        d1 = s.q("d1", arguments={"x-max-length": 1, "x-dead-letter-exchange": dlx2})
        d2 = s.q("d2", arguments={"x-max-length": 1})
        s.ch.queue_bind(d1, dlx)
        s.ch.queue_bind(d2, dlx)
        s.ch.queue_bind(d2, dlx2)
        w = s.q("w", arguments={"x-message-ttl": 0, "x-dead-letter-exchange": dlx})
        s.ch.basic_publish("", d1, b"old")
        s.sync()
        s.ch.basic_publish("", w, b"a")  # expires into d1 and d2; d1 drops old into d2
        time.sleep(0.1)
        return [s.drain(q2), s.drain(q3), s.drain(d1), s.drain(d2)]


# RabbitMQ: x-dead-letter-routing-key without x-dead-letter-exchange is refused (406).
@scenario(
    "args",
    expect=[e406(f"invalid arg 'x-dead-letter-routing-key' for queue 'NS.q' {V}: "
                 "routing_key_but_no_dlx_defined")],
)
def args_dlrk_without_dlx(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        return [s.ok(lambda ch: ch.queue_declare(s.n("q"), exclusive=True,
                                                 arguments={"x-dead-letter-routing-key": "k"}))]


# RabbitMQ: more invalid arguments: x-max-length-bytes negative, x-message-ttl a string,
# x-single-active-consumer not a bool, x-max-priority negative.
@scenario(
    "args",
    expect=[
        e406(f"invalid arg 'x-max-length-bytes' for queue 'NS.q' {V}: {{value_negative,-5}}"),
        e406(f"invalid arg 'x-message-ttl' for queue 'NS.q' {V}: \"expected integer, got longstr\""),
        e406(f"invalid arg 'x-single-active-consumer' for queue 'NS.q' {V}: {{unacceptable_type,longstr}}"),
        e406(f"invalid arg 'x-max-priority' for queue 'NS.q' {V}: {{value_negative,-1}}"),
    ],
)
def args_invalid_more(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.n("q")
        return [
            s.ok(lambda ch, a=a: ch.queue_declare(q, exclusive=True, arguments=a))
            for a in ({"x-max-length-bytes": -5}, {"x-message-ttl": "100"},
                      {"x-single-active-consumer": "yes"}, {"x-max-priority": -1})
        ]


# pika + RabbitMQ: cancelling an ackable consumer before its deliveries were dispatched:
# pika rejects them (requeue), so RabbitMQ has them back flagged redelivered=True.
@scenario(
    "consume",
    expect=[[], [(b"0", True, 2), (b"1", True, 1), (b"2", True, 0)]],
)
def consume_cancel_before_dispatch(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        for i in range(3):
            s.ch.basic_publish("", q, str(i).encode())
        got: list[Any] = []
        ch2 = s.conn.channel()
        tag = ch2.basic_consume(q, _collector(got))
        time.sleep(0.1)
        ch2.basic_cancel(tag)
        pump(s.conn, settle=0.05)
        return [got, [s.get(q), s.get(q), s.get(q)]]


# ============================================================================ more: names and edge cases


# RabbitMQ: 'amq.' queue names are reserved (403) for active declares; a passive declare
# of a missing one is 404.
@scenario(
    "queue",
    expect=[e403("queue name 'amq.NS' contains reserved prefix 'amq.*'"), no_q("amq.NS")],
)
def queue_amq_prefix(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        return [
            s.ok(lambda ch: ch.queue_declare("amq." + ns, exclusive=True)),
            s.ok(lambda ch: ch.queue_declare("amq." + ns, passive=True)),
        ]


# RabbitMQ: an active declare of an existing server-named queue by its amq.gen- name is
# refused too (403, the name is reserved whether or not the queue exists); a passive
# declare finds it. (An application that stored the name meets this after a restart.)
@scenario(
    "queue",
    expect=[e403("queue name 'GEN' contains reserved prefix 'amq.*'"), OK],
)
def queue_server_named_redeclared_by_name(pika: ModuleType, params: Any,
                                          ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.ch.queue_declare("", exclusive=True).method.queue
        refused = s.ok(lambda ch: ch.queue_declare(q, exclusive=True))
        return [tuple(x.replace(q, "GEN") if isinstance(x, str) else x for x in refused),
                s.ok(lambda ch: ch.queue_declare(q, passive=True))]


# RabbitMQ: "" as a queue name on a channel that declared no queue yet: basic_get, bind
# and purge fail with 404 "no previously declared queue".
@scenario(
    "queue",
    expect=[e404("no previously declared queue")] * 3,
)
def queue_empty_name_without_previous(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        return [
            s.ok(lambda ch: ch.basic_get("")),
            s.ok(lambda ch: ch.queue_bind("", "amq.fanout")),
            s.ok(lambda ch: ch.queue_purge("")),
        ]


# RabbitMQ: the owner may use its exclusive queue from any of its channels; redeclaring
# it exclusive from another channel of the same connection is fine.
@scenario("queue", expect=[OK, OK, [b"m"]])
def queue_exclusive_same_connection(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        ch2 = s.conn.channel()
        s.ch = ch2
        out = [s.ok(lambda ch: ch.queue_declare(q, exclusive=True)),
               s.ok(lambda ch: ch.basic_publish("", q, b"m"))]
        out.append(s.drain(q))
        return out


# RabbitMQ: an exclusive queue dies with its connection, cancelling the consumers other
# channels of that connection had on it.
@scenario("queue", expect=[no_q("NS.q")])
def queue_exclusive_dies_with_connection(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        c2 = pika.BlockingConnection(params)
        c2.channel().queue_declare(s.n("q"), exclusive=True)
        c2.close()
        return [s.ok(lambda ch: ch.queue_declare(s.n("q"), passive=True))]


# RabbitMQ: a non-empty headers x-match value other than all/any/all-with-x/any-with-x
# is refused (406) at bind time.
@scenario(
    "headers",
    expect=[e406("Invalid x-match field value <<\"bogus\">>; expected all, any, all-with-x, or any-with-x")],
)
def headers_invalid_x_match(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x = s.x("x", "headers")
        q = s.q("q")
        return [s.ok(lambda ch: ch.queue_bind(q, x, arguments={"x-match": "bogus", "a": 1}))]


# RabbitMQ 3.10: x-match must be a longstr (pika sends bytes as a byte array, 'x'); the
# binding is validated before another connection's exclusive queue is refused (405).
@scenario(
    "headers",
    expect=[
        e406('Invalid x-match field type binary (value <<"any">>); expected longstr'),
        e406("Invalid x-match field type signedint (value 1); expected longstr"),
        e406('Invalid x-match field type binary (value <<"all">>); expected longstr'),
        e406("Invalid x-match field value <<\"bogus\">>; expected all, any, all-with-x, or any-with-x"),
        e405("NS.ex"),
    ],
)
def headers_x_match_type_and_check_order(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s, Session(pika, params, ns) as owner:
        x = s.x("x", "headers")
        q = s.q("q")
        ex = owner.q("ex")
        return [
            s.ok(lambda ch: ch.queue_bind(q, x, arguments={"x-match": b"any", "a": 1})),
            s.ok(lambda ch: ch.queue_bind(q, x, arguments={"x-match": 1})),
            s.ok(lambda ch: ch.exchange_bind("amq.direct", x, arguments={"x-match": b"all"})),
            s.ok(lambda ch: ch.queue_bind(ex, x, arguments={"x-match": "bogus"})),
            s.ok(lambda ch: ch.queue_bind(ex, x, arguments={"x-match": "any"})),
        ]


# RabbitMQ: an exchange bound to itself is harmless: one copy per queue.
@scenario("e2e", expect=[[b"m"]])
def e2e_self_binding(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x = s.x("x", "fanout")
        q = s.q("q")
        s.ch.exchange_bind(x, x)
        s.ch.queue_bind(q, x)
        s.ch.basic_publish(x, "", b"m")
        return [s.drain(q)]


# RabbitMQ: the alternate exchange of an exchange reached through an e2e binding is used
# too when that exchange routes nowhere (so a mandatory message is not returned).
@scenario("ae", expect=[[b"m"], []])
def ae_on_inner_exchange(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        ae = s.x("ae", "fanout")
        aeq = s.q("aeq")
        s.ch.queue_bind(aeq, ae)
        inner = s.x("inner", "direct", arguments={"alternate-exchange": ae})
        outer = s.x("outer", "fanout")
        s.ch.exchange_bind(inner, outer)
        got = _returns(s)
        s.ch.basic_publish(outer, "k", b"m", mandatory=True)
        s.sync()
        pump(s.conn, settle=0.05)
        return [s.drain(aeq), [g[:2] for g in got]]


# RabbitMQ: nack / reject of an auto-ack consumer's delivery tag is 406.
@scenario("consume", expect=[e406("unknown delivery tag 1")])
def consume_auto_ack_then_nack(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        got: list[Any] = []
        s.ch.basic_consume(q, _collector(got), auto_ack=True)
        s.ch.basic_publish("", q, b"m")
        pump(s.conn, until=lambda: len(got) >= 1, settle=0.02)
        return [s.ok(lambda ch: (ch.basic_nack(got[0][3]), ch.queue_declare(q, passive=True)))]


# RabbitMQ: purge removes ready messages only; a consumer's unacked ones survive and
# come back when its channel closes.
@scenario("consume", expect=[("ok", 2), 0, 2])
def consume_purge_keeps_unacked(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        ch2 = s.conn.channel()
        ch2.basic_qos(prefetch_count=2)
        got: list[Any] = []
        ch2.basic_consume(q, _collector(got))
        for i in range(4):
            s.ch.basic_publish("", q, str(i).encode())
        pump(s.conn, until=lambda: len(got) >= 2, settle=0.05)
        out: list[Any] = [s.attempt(lambda ch: ch.queue_purge(q).method.message_count)]
        out.append(s.count(q))
        ch2.close()
        out.append(s.count(q))
        return out


def _one_of_three_under_a_global_limit(s: Any) -> tuple[str, list[Any]]:
    """Queue "q" with three messages and one consumer on ``s.ch`` under a channel-wide
    prefetch of 1: the consumer got the first."""
    q = s.q("q")
    s.ch.basic_qos(prefetch_count=1, global_qos=True)
    got: list[Any] = []
    s.ch.basic_consume(q, _collector(got))
    for i in range(3):
        s.ch.basic_publish("", q, str(i).encode())
    pump(s.conn, until=lambda: len(got) >= 1, settle=0.1)
    return q, got


# RabbitMQ: raising prefetch with global_qos wakes up a channel that was at its limit.
@scenario("qos", expect=[1, 3])
def qos_global_raise_limit(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q, got = _one_of_three_under_a_global_limit(s)
        out = [len(got)]
        s.ch.basic_qos(prefetch_count=5, global_qos=True)
        pump(s.conn, until=lambda: len(got) >= 3, settle=0.1)
        out.append(len(got))
        return out


# RabbitMQ: a message whose queue TTL passed while a consumer was busy (prefetch 1) is
# dropped before it reaches the consumer.
@scenario("ttl", expect=[[b"0"], [b"0", b"2"]])
def ttl_expires_while_consumer_busy(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-message-ttl": 100})
        s.ch.basic_qos(prefetch_count=1)
        got: list[Any] = []
        s.ch.basic_consume(q, _collector(got))
        s.ch.basic_publish("", q, b"0")
        s.ch.basic_publish("", q, b"1")
        pump(s.conn, until=lambda: len(got) >= 1, settle=0.05)
        out: list[Any] = [[g[1] for g in got]]
        time.sleep(0.25)
        s.ch.basic_publish("", q, b"2")
        s.ch.basic_ack(got[0][3])
        pump(s.conn, until=lambda: len(got) >= 2, settle=0.1)
        out.append([g[1] for g in got])
        return out


# RabbitMQ: dead-lettered messages keep their properties (except expiration) and body;
# the routing key of the dead-lettering is the original one without
# x-dead-letter-routing-key.
@scenario(
    "dlx",
    expect=[(b"body", "orig.key", {"content_type": "text/plain", "message_id": "m1", "priority": 3,
                                   "correlation_id": "c", "app": "yes"})],
)
def dlx_keeps_properties(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        dlx = s.x("dlx", "topic")
        dlq = s.q("dlq")
        s.ch.queue_bind(dlq, dlx, routing_key="#")
        src = s.x("src", "topic")
        q = s.q("q", arguments={"x-dead-letter-exchange": dlx})
        s.ch.queue_bind(q, src, routing_key="orig.*")
        s.ch.basic_publish(src, "orig.key", b"body", pika.BasicProperties(
            content_type="text/plain", message_id="m1", priority=3, correlation_id="c",
            headers={"app": "yes"}, expiration="60000"))
        m, _p, _b = s.ch.basic_get(q, auto_ack=False)
        s.ch.basic_reject(m.delivery_tag, requeue=False)
        m, p, body = s.get_wait(dlq)
        return [(body, m.routing_key, {"content_type": p.content_type, "message_id": p.message_id,
                                       "priority": p.priority, "correlation_id": p.correlation_id,
                                       "app": p.headers.get("app")})]


# RabbitMQ: x-death routing-keys include the CC keys of the original publish.
@scenario("dlx", expect=[["k1", "k2"]])
def dlx_routing_keys_include_cc(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        _dlx, dlq, q = _dlx_setup(s, {})
        x = s.x("x", "direct")
        s.ch.queue_bind(q, x, routing_key="k1")
        s.ch.basic_publish(x, "k1", b"m", pika.BasicProperties(headers={"CC": ["k2"]}))
        m, _p, _b = s.ch.basic_get(q, auto_ack=False)
        s.ch.basic_reject(m.delivery_tag, requeue=False)
        _m, p, _body = s.get_wait(dlq)
        return [p.headers["x-death"][0]["routing-keys"]]


# RabbitMQ: a priority queue requeues a message into its priority's original place and
# a nack(requeue=False) of a prioritised message with a DLX keeps its priority property.
@scenario("priority", expect=[[(b"a5", True), (b"b5", False), (b"c1", False)]])
def priority_requeue_within_level(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-max-priority": 9})
        for body, prio in ((b"c1", 1), (b"a5", 5), (b"b5", 5)):
            s.ch.basic_publish("", q, body, pika.BasicProperties(priority=prio))
        s.ch.basic_get(q, auto_ack=False)      # a5
        s.ch.basic_recover(requeue=True)
        return [[(g[0], g[1]) for g in (s.get(q), s.get(q), s.get(q))]]


# ============================================================================ more: lifecycles


# RabbitMQ: an auto-delete queue whose only consumer's channel (or connection) closes is
# deleted.
@scenario("queue", expect=[no_q("NS.ad1"), no_q("NS.ad2")])
def queue_auto_delete_on_close(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q1 = s.q("ad1", exclusive=False, auto_delete=True)
        q2 = s.q("ad2", exclusive=False, auto_delete=True)
        ch = s.conn.channel()
        ch.basic_consume(q1, lambda *a: None)
        ch.close()
        c2 = pika.BlockingConnection(params)
        c2.channel().basic_consume(q2, lambda *a: None)
        c2.close()
        time.sleep(0.05)
        return [s.ok(lambda c: c.queue_declare(q1, passive=True)),
                s.ok(lambda c: c.queue_declare(q2, passive=True))]


# RabbitMQ: queue_delete(if_unused=True) only looks at consumers: unacked messages from
# basic_get do not make the queue "in use".
@scenario("queue", expect=[("ok", 1)])
def queue_delete_if_unused_with_unacked(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        s.ch.basic_publish("", q, b"1")
        s.ch.basic_publish("", q, b"2")
        s.ch.basic_get(q, auto_ack=False)
        return [s.attempt(lambda ch: ch.queue_delete(q, if_unused=True).method.message_count)]


# RabbitMQ: an auto-delete exchange goes when its last binding goes, whether the binding
# was removed by unbind, by deleting the bound queue, or by deleting a destination
# exchange.
@scenario("exchange", expect=[no_x("NS.ad1"), no_x("NS.ad2"), OK])
def exchange_auto_delete_paths(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        ad1 = s.x("ad1", "fanout", auto_delete=True)
        ad2 = s.x("ad2", "fanout", auto_delete=True)
        dst = s.x("dst", "fanout")
        q = s.q("q")
        s.ch.queue_bind(q, ad1)
        s.ch.exchange_bind(dst, ad2)
        s.ch.queue_delete(q)
        s.ch.exchange_delete(dst)
        return [s.ok(lambda ch: ch.exchange_declare(ad1, "fanout", passive=True)),
                s.ok(lambda ch: ch.exchange_declare(ad2, "fanout", passive=True)),
                s.ok(lambda ch: ch.exchange_declare(dst, "fanout"))]


# RabbitMQ: x-queue-type "classic" is equivalent to no x-queue-type (3.10 fills the
# default in); another type is not.
@scenario(
    "args",
    expect=[OK, e406(f"inequivalent arg 'x-queue-type' for queue 'NS.q' {V}: "
                     "received the value 'quorum' of type 'longstr' but current is none")],
)
def args_queue_type_equivalence(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        return [s.ok(lambda ch: ch.queue_declare(q, exclusive=True, arguments={"x-queue-type": "classic"})),
                s.ok(lambda ch: ch.queue_declare(q, exclusive=True, arguments={"x-queue-type": "quorum"}))]


# RabbitMQ: a requeued message keeps its original expiry (TTL counts from publish, not
# from requeue).
@scenario("ttl", expect=[(b"m", False, 0), None])
def ttl_requeue_keeps_original_expiry(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-message-ttl": 250})
        s.ch.basic_publish("", q, b"m")
        out: list[Any] = [s.get(q, auto_ack=False)]
        time.sleep(0.15)
        s.ch.basic_nack(1, requeue=True)
        time.sleep(0.2)
        out.append(s.get(q))
        return out


# RabbitMQ: x-expires counts from the last consumer's cancel, not from the declare.
@scenario("ttl", expect=[OK, no_q("NS.q")])
def ttl_expires_after_last_consumer(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", exclusive=False, arguments={"x-expires": 200})
        ch2 = s.conn.channel()
        tag = ch2.basic_consume(q, lambda *a: None)
        time.sleep(0.3)
        ch2.basic_cancel(tag)
        time.sleep(0.1)
        out = [s.ok(lambda ch: ch.queue_declare(q, passive=True))]
        time.sleep(0.35)
        out.append(s.ok(lambda ch: ch.queue_declare(q, passive=True)))
        return out


# RabbitMQ 3.10: a message dead-lettered from a lazy queue (read back from disk, its
# properties not decoded) has no original-expiration in its x-death entry; from a default
# queue it has. inbus accepts x-queue-mode but keeps every queue in memory.
@scenario(
    "dlx",
    expect=[["count", "exchange", "original-expiration", "queue", "reason", "routing-keys", "time"],
            ["count", "exchange", "queue", "reason", "routing-keys", "time"]],
    inbus_xfail="deliberate: x-queue-mode lazy is accepted and changes nothing; RabbitMQ "
    "3.10 leaves original-expiration out of x-death for a message from a lazy queue",
)
def dlx_lazy_queue_original_expiration(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        dlx = s.x("dlx", "fanout")
        dead = s.q("dead")
        s.ch.queue_bind(dead, dlx)
        out = []
        for mode in ("default", "lazy"):
            q = s.q(mode, arguments={"x-dead-letter-exchange": dlx, "x-queue-mode": mode})
            s.ch.basic_publish("", q, b"m", pika.BasicProperties(expiration="0"))
            m, p, _b = s.get_wait(dead)
            out.append(sorted(p.headers["x-death"][0]))
        return out


# RabbitMQ 3.10: each death prepends its x-death entry, but once a message has two or
# more entries, its older ones come back in reverse order at each further death
# (rabbit_dead_letter's group_by_queue_and_reason folds them into a reversed list).
# inbus keeps the documented order (newest first, the others as they were).
@scenario(
    "dlx",
    expect=[["NS.q1"], ["NS.q2", "NS.q1"], ["NS.q3", "NS.q1", "NS.q2"],
            ["NS.q4", "NS.q2", "NS.q1", "NS.q3"]],
    inbus_xfail="deliberate: x-death keeps RabbitMQ's documented order (newest first, the "
    "older entries as they were); RabbitMQ 3.10 reverses the older entries at each death "
    "once there are two or more",
)
def dlx_x_death_order_after_three_deaths(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        qs = [s.n(f"q{i}") for i in range(1, 6)]
        for a, b in zip(qs, qs[1:], strict=False):
            s.q(a[len(ns) + 1:], arguments={"x-dead-letter-exchange": "",
                                            "x-dead-letter-routing-key": b})
        s.q("q5")
        s.ch.basic_publish("", qs[0], b"m")
        out = []
        for q in qs:
            m, p, _b = s.get_wait(q, auto_ack=False)
            if q != qs[0]:
                out.append([d["queue"] for d in p.headers["x-death"]])
            s.ch.basic_reject(m.delivery_tag, requeue=False)
        return out


# RabbitMQ: a non-automatic DLX cycle (expire in q1 -> q2, rejected in q2 -> back to q1)
# keeps going and counts per (queue, reason); the entry of the latest death moves first.
@scenario("dlx", expect=[[("NS.q1", "expired", 2), ("NS.q2", "rejected", 1)]])
def dlx_cycle_with_rejection_counts(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q1, q2 = s.n("q1"), s.n("q2")
        s.q("q1", arguments={"x-message-ttl": 30, "x-dead-letter-exchange": "",
                            "x-dead-letter-routing-key": q2})
        s.q("q2", arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": q1})
        s.ch.basic_publish("", q1, b"m")
        time.sleep(0.2)
        m, _p, _b = s.ch.basic_get(q2, auto_ack=False)   # expired once from q1
        s.ch.basic_reject(m.delivery_tag, requeue=False)  # back to q1, expires again
        time.sleep(0.2)
        m, p, _b = s.ch.basic_get(q2, auto_ack=True)
        return [[(e["queue"], e["reason"], e["count"]) for e in _x_death(p)["x-death"]]]


# RabbitMQ: headers values that are tables and arrays compare by value.
@scenario("headers", expect=[[0, ["same"]], [1, ["list"]]])
def headers_nested_values(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    return _headers_table(
        pika, params, ns,
        [{"t": {"a": 1, "b": "x"}}, {"l": [1, "two"]}],
        [("same", {"t": {"a": 1, "b": "x"}}), ("other", {"t": {"a": 2, "b": "x"}}),
         ("list", {"l": [1, "two"]}), ("list2", {"l": ["two", 1]})],
    )


# RabbitMQ 3.10 compares header values as Erlang terms: a Decimal is a (scale, digits)
# pair, never the number; a timestamp is its seconds; tables and arrays compare element by
# element, in order, with the elements' types (so [1] is not [True]).
@scenario("headers", expect=[[0, []], [1, ["dec"]], [2, ["ts"]], [3, []], [4, []], [5, ["same-order"]]])
def headers_values_as_wire_terms(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    return _headers_table(
        pika, params, ns,
        [{"v": 1}, {"v": decimal.Decimal("1")}, {"v": 5}, {"v": [1]}, {"v": {"n": 1}},
         {"v": {"a": 1, "b": 2}}],
        [("dec", {"v": decimal.Decimal("1")}), ("ts", {"v": datetime.datetime(1970, 1, 1, 0, 0, 5)}),
         ("bool-list", {"v": [True]}), ("bool-table", {"v": {"n": True}}),
         ("other-order", {"v": {"b": 2, "a": 1}}), ("same-order", {"v": {"a": 1, "b": 2}})],
    )


# RabbitMQ 3.10: a priority queue expires messages from its head only, highest priority
# first: an expired (TTL 0) low-priority message waits, and counts, behind a live
# higher-priority one, and goes once the head moves past the lanes above it.
@scenario("priority", expect=[2, 4, (b"A", 2), (b"D", 0), None])
def priority_expiry_at_the_head_only(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-max-priority": 5})
        s.ch.basic_publish("", q, b"A", pika.BasicProperties(priority=5))
        s.ch.basic_publish("", q, b"B", pika.BasicProperties(priority=0, expiration="0"))
        out: list[Any] = [s.count(q)]
        s.ch.basic_publish("", q, b"C", pika.BasicProperties(priority=5, expiration="0"))
        s.ch.basic_publish("", q, b"D", pika.BasicProperties(priority=1))
        out.append(s.count(q))
        for _ in range(3):
            m, _p, body = s.ch.basic_get(q, auto_ack=True)
            out.append(None if m is None else (body, m.message_count))
        return out


# RabbitMQ 3.10 looks at a queue's head for expired messages only when it handles the
# queue (a publish into an empty queue, a fetch, a requeue, its TTL timer), so a TTL 0
# message that its priority puts ahead of others stays, is counted and can be fetched.
# inbus expires such a head when due.
@scenario(
    "priority",
    expect=[3, (b"F", 2), 2, [b"G", b"E"]],
    inbus_xfail="deliberate: a priority queue's head is expired when due; RabbitMQ 3.10 "
    "leaves a TTL 0 message that its priority put ahead of others until it next handles "
    "the queue (a fetch takes it as it is)",
)
def priority_ttl_zero_put_ahead(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-max-priority": 5})
        s.ch.basic_publish("", q, b"E", pika.BasicProperties(priority=1))
        s.ch.basic_publish("", q, b"F", pika.BasicProperties(priority=4, expiration="0"))
        s.ch.basic_publish("", q, b"G", pika.BasicProperties(priority=3))
        out: list[Any] = [s.count(q)]
        m, _p, body = s.ch.basic_get(q, auto_ack=False)
        out.append((body, m.message_count))
        s.ch.basic_nack(m.delivery_tag, requeue=True)  # back at the head: it goes now
        out.append(s.count(q))
        out.append(s.drain(q))
        return out


# RabbitMQ: in a priority queue, a consumer gets the highest priority message first even
# when it was published last.
@scenario("priority", expect=[[b"hi", b"lo1", b"lo2"]])
def priority_consumer_order(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-max-priority": 3})
        for body, prio in ((b"lo1", 0), (b"lo2", 0), (b"hi", 3)):
            s.ch.basic_publish("", q, body, pika.BasicProperties(priority=prio))
        got: list[Any] = []
        s.ch.basic_consume(q, _collector(got), auto_ack=True)
        pump(s.conn, until=lambda: len(got) >= 3, settle=0.05)
        return [[g[1] for g in got]]


# RabbitMQ: a topic routing key made only of dots, and one of 255 bytes with 128 words.
@scenario("topic", expect=[["#", [".....", "a." * 127 + "b"]], ["*.*.*.*.*.*", ["....."]], ["a.#.b", ["a." * 127 + "b"]]])
def topic_long_keys(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    return _topic_table(pika, params, ns, ["#", "*.*.*.*.*.*", "a.#.b"], [".....", "a." * 127 + "b"])


# pika + RabbitMQ: cancelling an auto-ack consumer returns the deliveries that reached
# the client but were not dispatched yet (instead of calling the callback).
@scenario("consume", expect=[[b"0", b"1"], [], 0])
def consume_cancel_auto_ack_returns_pending(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        ch2 = s.conn.channel()
        got: list[Any] = []
        tag = ch2.basic_consume(q, _collector(got), auto_ack=True)
        s.ch.basic_publish("", q, b"0")
        s.ch.basic_publish("", q, b"1")
        time.sleep(0.1)
        s.sync()
        pending = ch2.basic_cancel(tag)
        pump(s.conn, settle=0.05)
        return [[body for _m, _p, body in pending], got, s.count(q)]


# pika + RabbitMQ: the consume() generator ends when the broker cancels its consumer
# (the queue was deleted).
@scenario("consume", expect=[[b"0", b"1", "end"], 0])
def consume_generator_ends_on_broker_cancel(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        s.ch.basic_publish("", q, b"0")
        s.ch.basic_publish("", q, b"1")
        ch2 = s.conn.channel()
        seen: list[Any] = []
        for m, _p, body in ch2.consume(q, inactivity_timeout=1.0):
            if m is None:
                seen.append(None)
                break
            seen.append(body)
            ch2.basic_ack(m.delivery_tag)
            if body == b"1":
                s.ch.queue_delete(q)
        else:
            seen.append("end")
        return [seen, ch2.get_waiting_message_count()]


# pika + RabbitMQ: closing a channel whose consumer has deliveries not dispatched yet:
# pika rejects them, the broker requeues everything, all flagged redelivered=True.
@scenario(
    "consume",
    expect=[[], [(b"0", True, 2), (b"1", True, 1), (b"2", True, 0)]],
)
def consume_close_before_dispatch(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        for i in range(3):
            s.ch.basic_publish("", q, str(i).encode())
        got: list[Any] = []
        ch2 = s.conn.channel()
        ch2.basic_consume(q, _collector(got))
        time.sleep(0.1)
        ch2.close()
        return [got, [s.get(q), s.get(q), s.get(q)]]


# pika: start_consuming with no consumer returns at once.
@scenario("consume", expect=["returned"])
def consume_start_without_consumers(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        s.ch.start_consuming()
        return ["returned"]


# ============================================================================ more: mixed features


# RabbitMQ: a re-declare (not passive) of an existing queue reports its counts.
@scenario("queue", expect=[(2, 1)])
def queue_redeclare_reports_counts(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        ch2 = s.conn.channel()
        ch2.basic_qos(prefetch_count=1)
        ch2.basic_consume(q, lambda *a: None)
        for i in range(3):
            s.ch.basic_publish("", q, str(i).encode())
        time.sleep(0.05)
        m = s.ch.queue_declare(q, exclusive=True).method
        return [(m.message_count, m.consumer_count)]


# RabbitMQ: dead-lettering to the default exchange without x-dead-letter-routing-key
# uses the message's original routing key (here: the name of another queue).
@scenario("dlx", expect=[[b"m"]])
def dlx_default_exchange_original_key(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        target = s.q("target")
        x = s.x("x", "fanout")
        q = s.q("q", arguments={"x-dead-letter-exchange": ""})
        s.ch.queue_bind(q, x)
        s.ch.basic_publish(x, target, b"m")       # routing key = the target queue's name
        m, _p, _b = s.ch.basic_get(q, auto_ack=False)
        s.ch.basic_reject(m.delivery_tag, requeue=False)
        _m, _p, body = s.get_wait(target)
        return [[body]]


# RabbitMQ: x-message-ttl 0 with a DLX dead-letters at once when no consumer is there.
@scenario("dlx", expect=[[(b"m", "expired")], 0])
def dlx_ttl_zero(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        _dlx, dlq, q = _dlx_setup(s, {"x-message-ttl": 0})
        s.ch.basic_publish("", q, b"m")
        m, p, body = s.get_wait(dlq)
        return [[(body, p.headers["x-death"][0]["reason"])] if m else [], s.count(q)]


# RabbitMQ: per-message expiration "0" on a queue without a consumer drops the message.
@scenario("ttl", expect=[None, [b"keep"]])
def ttl_expiration_zero(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        s.ch.basic_publish("", q, b"gone", pika.BasicProperties(expiration="0"))
        time.sleep(0.05)
        out: list[Any] = [s.get(q)]
        s.ch.basic_publish("", q, b"keep")
        out.append(s.drain(q))
        return out


# RabbitMQ: messages being consumed do not expire: a consumer that holds a message past
# the TTL can still ack it; only queued ones expire.
@scenario("ttl", expect=[[b"0"], 0, OK])
def ttl_delivered_not_expired(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-message-ttl": 100})
        s.ch.basic_qos(prefetch_count=1)
        got: list[Any] = []
        s.ch.basic_consume(q, _collector(got))
        s.ch.basic_publish("", q, b"0")
        s.ch.basic_publish("", q, b"1")
        pump(s.conn, until=lambda: len(got) >= 1, settle=0.02)
        time.sleep(0.25)
        out: list[Any] = [[g[1] for g in got], s.count(q)]
        out.append(s.ok(lambda ch: (ch.basic_ack(got[0][3]), ch.queue_declare(q, passive=True))))
        return out


# RabbitMQ: a headers exchange can be the source of an e2e binding (matching on
# headers), and a topic exchange its destination (matching on the routing key).
@scenario("e2e", expect=[[b"match"], []])
def e2e_headers_to_topic(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        h = s.x("h", "headers")
        t = s.x("t", "topic")
        q = s.q("q")
        s.ch.exchange_bind(t, h, arguments={"x-match": "all", "k": "v"})
        s.ch.queue_bind(q, t, routing_key="a.*")
        s.ch.basic_publish(h, "a.b", b"match", pika.BasicProperties(headers={"k": "v"}))
        s.ch.basic_publish(h, "a.b.c", b"key-miss", pika.BasicProperties(headers={"k": "v"}))
        s.ch.basic_publish(h, "a.b", b"hdr-miss", pika.BasicProperties(headers={"k": "w"}))
        out = [s.drain(q)]
        s.ch.exchange_unbind(t, h, arguments={"x-match": "all", "k": "v"})
        s.ch.basic_publish(h, "a.b", b"unbound", pika.BasicProperties(headers={"k": "v"}))
        out.append(s.drain(q))
        return out


# RabbitMQ: per-consumer and global prefetch apply together: with qos(2) per consumer and
# qos(3, global) one consumer holds 2 and the other 1.
@scenario("qos", expect=[[2, 1], 2])
def qos_per_consumer_and_global(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        s.ch.basic_qos(prefetch_count=2)
        s.ch.basic_qos(prefetch_count=3, global_qos=True)
        g1: list[Any] = []
        g2: list[Any] = []
        s.ch.basic_consume(q, _collector(g1))
        s.ch.basic_consume(q, _collector(g2))
        for i in range(5):
            s.ch.basic_publish("", q, str(i).encode())
        pump(s.conn, until=lambda: len(g1) + len(g2) >= 3, settle=0.15)
        return [sorted([len(g1), len(g2)], reverse=True), s.count(q)]


# RabbitMQ 3.10: basic.qos with global=false also drops the channel's global limit
# (rabbit_channel: "ensures that if default was set, it's overridden": unlimit_prefetch),
# so per-consumer and global prefetch apply together only when the global one is set
# last. Here the consumer (per-consumer prefetch 0) held 1 under qos(1, global); qos(2)
# lifts that limit and it gets the other 2 at once.
@scenario("qos", expect=[1, 3, 0])
def qos_per_consumer_after_global_drops_global(pika: ModuleType, params: Any, ns: str
                                               ) -> list[Any]:
    with Session(pika, params, ns) as s:
        q, got = _one_of_three_under_a_global_limit(s)
        out = [len(got)]
        s.ch.basic_qos(prefetch_count=2)
        pump(s.conn, until=lambda: len(got) >= 3, settle=0.1)
        return out + [len(got), s.count(q)]


# RabbitMQ: nack(multiple=True, requeue=True) covers deliveries to several consumers of
# the channel; all come back redelivered in queue order.
@scenario("consume", expect=[[(b"0", True), (b"1", True), (b"2", True), (b"3", True)]])
def consume_nack_multiple_across_consumers(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        ch2 = s.conn.channel()
        g1: list[Any] = []
        g2: list[Any] = []
        t1 = ch2.basic_consume(q, _collector(g1))
        t2 = ch2.basic_consume(q, _collector(g2))
        for i in range(4):
            s.ch.basic_publish("", q, str(i).encode())
        pump(s.conn, until=lambda: len(g1) + len(g2) >= 4, settle=0.05)
        ch2.basic_cancel(t1)
        ch2.basic_cancel(t2)
        ch2.basic_nack(0, multiple=True, requeue=True)
        ch2.queue_declare(q, passive=True)
        return [[(g[0], g[1]) for g in (s.get(q), s.get(q), s.get(q), s.get(q))]]


# RabbitMQ: another connection's exclusive queue can't be deleted even with if_unused,
# nor unbound (405).
@scenario("queue", expect=[e405("NS.q"), e405("NS.q")])
def queue_exclusive_other_connection_delete_unbind(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as owner, Session(pika, params, ns) as other:
        q = owner.q("q")
        owner.ch.queue_bind(q, "amq.direct", routing_key=q)
        return [other.ok(lambda ch: ch.queue_delete(q, if_unused=True)),
                other.ok(lambda ch: ch.queue_unbind(q, "amq.direct", routing_key=q))]


# RabbitMQ: a queue with x-max-length hands messages straight to a waiting consumer (they
# do not count against the limit).
@scenario("maxlen", expect=[[b"0", b"1", b"2", b"3"]])
def maxlen_with_consumer(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q", arguments={"x-max-length": 1})
        got: list[Any] = []
        s.ch.basic_consume(q, _collector(got))
        for i in range(4):
            s.ch.basic_publish("", q, str(i).encode())
        pump(s.conn, until=lambda: len(got) >= 4, settle=0.05)
        return [[g[1] for g in got]]


# RabbitMQ (through the wire): each delivery has properties of its own: changing the
# headers of one delivery does not change another queue's copy.
@scenario("body_props", expect=[{"k": [1]}])
def properties_per_delivery_copies(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        x = s.x("x", "fanout")
        q1, q2 = s.q("q1"), s.q("q2")
        s.ch.queue_bind(q1, x)
        s.ch.queue_bind(q2, x)
        s.ch.basic_publish(x, "", b"m", pika.BasicProperties(headers={"k": [1]}))
        _m, p1, _b = s.ch.basic_get(q1, auto_ack=True)
        p1.headers["k"].append(2)
        p1.headers["new"] = True
        _m, p2, _b = s.ch.basic_get(q2, auto_ack=True)
        return [p2.headers]


# RabbitMQ: the same consumer tag may be used on two channels; consumers on different
# channels share a queue round-robin.
@scenario("consume", expect=[["NS-t", "NS-t"], [b"0", b"2"], [b"1", b"3"]])
def consume_round_robin_across_channels(pika: ModuleType, params: Any, ns: str) -> list[Any]:
    with Session(pika, params, ns) as s:
        q = s.q("q")
        ch1, ch2 = s.conn.channel(), s.conn.channel()
        g1: list[Any] = []
        g2: list[Any] = []
        tags = [ch1.basic_consume(q, _collector(g1), auto_ack=True, consumer_tag=ns + "-t"),
                ch2.basic_consume(q, _collector(g2), auto_ack=True, consumer_tag=ns + "-t")]
        for i in range(4):
            s.ch.basic_publish("", q, str(i).encode())
        pump(s.conn, until=lambda: len(g1) + len(g2) >= 4, settle=0.05)
        return [tags, [g[1] for g in g1], [g[1] for g in g2]]
