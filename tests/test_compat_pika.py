"""Tests of inbus.compat.pika, the pika 1.x BlockingConnection look-alike (no broker needed).

The differential suite (tests/diff/test_amqp_diff.py) compares it with real pika against
a real RabbitMQ; these tests pin the client-side shapes and behaviours on their own.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import inbus
from inbus.compat import pika


@pytest.fixture(autouse=True)
def fresh_buses() -> Iterator[None]:
    pika.reset()
    yield
    pika.reset()


@pytest.fixture
def conn() -> Iterator[pika.BlockingConnection]:
    c = pika.BlockingConnection(pika.ConnectionParameters("localhost"))
    yield c
    if c.is_open:
        c.close()


# --------------------------------------------------------------------------- parameters / buses


def test_same_host_and_port_share_a_bus() -> None:
    a = pika.BlockingConnection(pika.ConnectionParameters("localhost", 5672))
    b = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@localhost:5672/%2F"))
    c = pika.BlockingConnection(pika.ConnectionParameters("localhost", 5673))
    a.channel().queue_declare("shared")
    assert b.channel().queue_declare("shared", passive=True).method.queue == "shared"
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        c.channel().queue_declare("shared", passive=True)
    assert e.value.reply_code == 404
    assert pika.get_bus(pika.ConnectionParameters("localhost")) is a.bus
    assert isinstance(a.bus, inbus.Bus)
    for x in (a, b, c):
        x.close()


def test_reset_forgets_buses() -> None:
    bus = pika.get_bus()
    pika.reset()
    assert bus.is_closed
    assert pika.get_bus() is not bus


def test_missing_vhost_is_access_denied_like_pika() -> None:
    params = pika.ConnectionParameters("localhost", virtual_host="nope")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        pika.BlockingConnection(params)
    assert isinstance(e.value, pika.exceptions.AMQPConnectionError)
    assert "530" in str(e.value) and "vhost nope not found" in str(e.value)
    pika.get_bus(params).vhost_declare("nope")
    with pika.BlockingConnection(params) as c:
        assert c.is_open


def test_url_parameters() -> None:
    p = pika.URLParameters("amqp://u%40x:p%3Aw@example.org:1234/my%2Fvhost?heartbeat=5")
    assert (p.host, p.port, p.virtual_host) == ("example.org", 1234, "my/vhost")
    assert (p.credentials.username, p.credentials.password) == ("u@x", "p:w")
    d = pika.URLParameters("amqp://localhost")
    assert (d.host, d.port, d.virtual_host) == ("localhost", 5672, "/")
    assert pika.URLParameters("amqps://h/").port == 5671
    with pytest.raises(ValueError):
        pika.URLParameters("http://localhost/")


def test_connection_parameters_defaults_and_extra_options() -> None:
    p = pika.ConnectionParameters(heartbeat=30, blocked_connection_timeout=5)
    assert (p.host, p.port, p.virtual_host) == ("localhost", 5672, "/")
    assert p.credentials == pika.PlainCredentials("guest", "guest")
    assert p.heartbeat == 30


def test_list_of_parameters_uses_the_first() -> None:
    c = pika.BlockingConnection([pika.ConnectionParameters("h1"), pika.ConnectionParameters("h2")])
    assert c.bus is pika.get_bus(pika.ConnectionParameters("h1"))
    c.close()


# --------------------------------------------------------------------------- frames and shapes


def test_frames_have_pikas_shape(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    r = ch.queue_declare("", exclusive=True)
    assert isinstance(r, pika.frame.Method) and r.channel_number == ch.channel_number
    assert isinstance(r.method, pika.spec.Queue.DeclareOk)
    assert r.method.queue.startswith("amq.gen-") and len(r.method.queue) == 30
    assert (r.method.message_count, r.method.consumer_count) == (0, 0)
    assert isinstance(ch.exchange_declare("x", "topic").method, pika.spec.Exchange.DeclareOk)
    assert isinstance(ch.queue_bind(r.method.queue, "x", "a.#").method, pika.spec.Queue.BindOk)
    ch.basic_publish("x", "a.b", "hi")
    assert ch.queue_purge(r.method.queue).method.message_count == 1
    assert ch.queue_delete(r.method.queue).method.message_count == 0


def test_basic_get_shape(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    ch.queue_declare("q")
    assert ch.basic_get("q") == (None, None, None)
    ch.basic_publish("", "q", b"one", pika.BasicProperties(content_type="text/plain"))
    ch.basic_publish("", "q", b"two")
    method, props, body = ch.basic_get("q")
    assert isinstance(method, pika.spec.Basic.GetOk)
    assert (method.delivery_tag, method.redelivered, method.exchange, method.routing_key,
            method.message_count) == (1, False, "", "q", 1)
    assert body == b"one" and props.content_type == "text/plain" and props.headers is None
    ch.basic_nack(method.delivery_tag)
    method, _p, body = ch.basic_get("q", auto_ack=True)
    assert (body, method.redelivered, method.delivery_tag) == (b"one", True, 2)


def test_consumer_callback_gets_channel_method_properties_body(
        conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    ch.queue_declare("q")
    got: list[Any] = []

    def on_message(channel: Any, method: Any, properties: Any, body: bytes) -> None:
        got.append((channel, method, properties.message_id, body))
        channel.basic_ack(method.delivery_tag)

    tag = ch.basic_consume("q", on_message)
    assert tag.startswith(f"ctag{ch.channel_number}.") and tag in ch.consumer_tags
    ch.basic_publish("", "q", b"m", pika.BasicProperties(message_id="id1"))
    conn.process_data_events(time_limit=0)
    [(channel, method, mid, body)] = got
    assert channel is ch and mid == "id1" and body == b"m"
    assert method == pika.spec.Basic.Deliver(tag, 1, False, "", "q")
    assert ch.queue_declare("q", passive=True).method.message_count == 0


def test_spec_and_enums() -> None:
    assert pika.spec.PERSISTENT_DELIVERY_MODE == 2
    assert pika.spec.BasicProperties is inbus.BasicProperties is pika.BasicProperties
    p = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
    assert p.delivery_mode == 2
    ret = pika.spec.Basic.Return(312, "NO_ROUTE", "x", "k")
    assert (ret.reply_code, ret.reply_text, ret.exchange, ret.routing_key) == (312, "NO_ROUTE", "x", "k")
    assert "Basic.Return" in repr(ret)
    with pika.BlockingConnection() as c:
        c.channel().exchange_declare("e", pika.ExchangeType.fanout)


def test_spec_methods_and_frames_match_pikas() -> None:
    real = pytest.importorskip("pika")
    checked = 0
    for cname in ("Basic", "Queue", "Exchange", "Confirm"):
        ours, theirs = getattr(pika.spec, cname), getattr(real.spec, cname)
        for name in [n for n in dir(ours) if not n.startswith("_")]:
            for args in ((), ("a",), ("a", 1), ("a", 1, True, "x", "k")):
                try:
                    t = getattr(theirs, name)(*args)
                except Exception:
                    continue
                m = getattr(ours, name)(*args)
                assert (m.NAME, vars(m), repr(m)) == (t.NAME, vars(t), repr(t)), (name, args)
                checked += 1
    assert checked > 20
    f = real.frame.Method(1, real.spec.Queue.DeclareOk("q", 0, 0))
    g = pika.frame.Method(1, pika.spec.Queue.DeclareOk("q", 0, 0))
    assert (repr(g), vars(g).keys()) == (repr(f), vars(f).keys())


def test_properties_are_copied_on_publish(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    ch.queue_declare("q")
    headers: dict[str, Any] = {"k": [1]}
    props = pika.BasicProperties(headers=headers)
    ch.basic_publish("", "q", b"m", props)
    headers["k"].append(2)
    props.message_id = "changed"
    _m, got, _b = ch.basic_get("q")
    assert got.headers == {"k": [1]} and got.message_id is None


# --------------------------------------------------------------------------- errors


def test_exception_tree_matches_pikas() -> None:
    real = pytest.importorskip("pika.exceptions")
    ours = pika.exceptions
    for name in dir(real):
        cls = getattr(real, name)
        if isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == real.__name__:
            mine = getattr(ours, name)
            assert [b.__name__ for b in mine.__mro__] == [b.__name__ for b in cls.__mro__], name


def test_exception_str_and_repr_match_pikas() -> None:
    real = pytest.importorskip("pika.exceptions")
    ours = pika.exceptions
    checked = 0
    for name in dir(real):
        cls = getattr(real, name)
        if not (isinstance(cls, type) and issubclass(cls, Exception)
                and cls.__module__ == real.__name__):
            continue
        for args in ((), ("x",), (404, "NOT_FOUND - x"), ([],), (b"q" * 300,)):
            try:
                theirs = cls(*args)
                expected = (str(theirs), repr(theirs))
            except (TypeError, IndexError):
                continue
            mine = getattr(ours, name)(*args)
            assert (str(mine), repr(mine)) == expected, (name, args)
            checked += 1
    assert checked > 50


def test_channel_error_closes_channel(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("missing", passive=True)
    assert (e.value.reply_code, e.value.reply_text) == (404, "NOT_FOUND - no queue 'missing' in vhost '/'")
    assert ch.is_closed and conn.is_open
    with pytest.raises(pika.exceptions.ChannelWrongStateError):
        ch.queue_declare("q")       # (basic_get: test_basic_get_on_a_closed_channel...)
    with pytest.raises(pika.exceptions.ChannelWrongStateError):
        ch.close()


def test_async_errors_surface_on_the_channels_next_call(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    ch.basic_ack(42)            # no exception here, as with pika
    assert ch.is_open           # pika has not read the broker's Channel.Close yet
    time.sleep(0.05)            # (with RabbitMQ: time for it to arrive)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_publish("", "k", b"x")     # pika reads it while flushing any next call
    assert (e.value.reply_code, e.value.reply_text) == (406, "PRECONDITION_FAILED - unknown delivery tag 42")
    assert ch.is_closed
    with pytest.raises(pika.exceptions.ChannelWrongStateError):
        ch.queue_declare("", exclusive=True)
    ch = conn.channel()
    ch.basic_publish("nope", "k", b"lost")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("", exclusive=True)
    assert e.value.reply_code == 404


def test_process_data_events_reads_an_async_error_quietly(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    ch.basic_ack(42)
    conn.process_data_events(0.1)   # the broker's Channel.Close is read: no exception
    assert ch.is_closed
    with pytest.raises(pika.exceptions.ChannelWrongStateError):
        ch.queue_declare("", exclusive=True)
    ch2 = conn.channel()
    ch2.basic_publish("nope", "k", b"lost")
    conn.sleep(0.1)
    assert ch2.is_closed
    with pytest.raises(pika.exceptions.ChannelWrongStateError):
        ch2.basic_publish("", "k", b"x")


def test_async_error_in_a_callback_is_raised_by_start_consuming(
        conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    ch.queue_declare("q")
    ch.basic_publish("", "q", b"x")
    ch.basic_consume("q", lambda c, m, p, b: c.basic_ack(m.delivery_tag + 10))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.start_consuming()
    assert (e.value.reply_code, e.value.reply_text) == (406, "PRECONDITION_FAILED - unknown delivery tag 11")
    assert ch.is_closed and ch.consumer_tags == []
    with pytest.raises(pika.exceptions.ChannelWrongStateError):
        ch.queue_declare("q")
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        for method, _p, _b in ch.consume("q", inactivity_timeout=1):
            ch.basic_ack(method.delivery_tag + 10)
    assert ch.is_closed and ch.get_waiting_message_count() == 0


def test_async_error_is_raised_by_close_and_suppressed_by_connection_close(
        conn: pika.BlockingConnection) -> None:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        with conn.channel() as ch:
            ch.basic_ack(9)
    with pytest.raises(pika.exceptions.ChannelWrongStateError):
        ch.close()
    ch2 = conn.channel()
    ch2.basic_ack(9)
    conn.close()                # pika's close() suppresses its channels' ChannelClosed
    assert conn.is_closed


def test_connection_error(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    other = conn.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        ch.exchange_declare("x", "bogus")
    assert e.value.reply_code == 503
    assert conn.is_closed and other.is_closed
    with pytest.raises(pika.exceptions.ConnectionWrongStateError):
        conn.channel()
    with pytest.raises(pika.exceptions.ConnectionWrongStateError):
        conn.close()


def test_closed_connection_refuses_use_as_pika_does(conn: pika.BlockingConnection) -> None:
    conn.close()
    with pytest.raises(pika.exceptions.ConnectionWrongStateError,
                       match="^Channel allocation requires an open connection: "
                             "<SelectConnection CLOSED transport=None params="
                             "<ConnectionParameters host=localhost port=5672 "
                             "virtual_host=/ ssl=False>>$"):
        conn.channel()
    for call in (lambda: conn.process_data_events(), lambda: conn.process_data_events(1),
                 lambda: conn.sleep(0.01), lambda: conn.call_later(1, print)):
        with pytest.raises(ValueError, match="Timeout closed before call"):
            call()              # pika's I/O loop is closed with the connection
    with pytest.raises(pika.exceptions.ConnectionWrongStateError):
        conn.process_data_events(time_limit=None)
    with pytest.raises(TypeError, match="callback callback must be callable"):
        pika.BlockingConnection().call_later(1, None)  # type: ignore[arg-type]


# What pika 1.4.4 raised against a RabbitMQ 3.10.8 node that was stopped under it
# (rabbitmqctl stop; checked by hand on a private node, as CI cannot stop the shared
# one): the first call that does I/O reads the broker's Connection.Close and raises
# ConnectionClosedByBroker 320 (StreamLostError instead when the socket was already gone:
# timing); a consumer in start_consuming() or consume() gets the same; later calls find
# everything closed. A Bus closing under compat connections is that shutdown.
SHUTDOWN_320 = (320, "CONNECTION_FORCED - broker forced connection closure with reason "
                     "'shutdown'")


@pytest.mark.parametrize("first", ["basic_publish", "queue_declare", "basic_get",
                                   "channel.close", "connection.close", "channel()",
                                   "process_data_events", "sleep"])
def test_bus_shutdown_is_connection_forced_once(first: str) -> None:
    params = pika.ConnectionParameters("localhost")
    conn = pika.BlockingConnection(params)
    ch, other = conn.channel(), conn.channel()
    ch.queue_declare("q")
    pika.get_bus(params).close()
    assert (conn.is_open, ch.is_open, other.is_open) == (True, True, True)  # not read yet
    calls = {"basic_publish": lambda: ch.basic_publish("", "q", b"x"),
             "queue_declare": lambda: ch.queue_declare("q2"),
             "basic_get": lambda: ch.basic_get("q"),
             "channel.close": ch.close, "connection.close": conn.close,
             "channel()": conn.channel,
             "process_data_events": conn.process_data_events,
             "sleep": lambda: conn.sleep(0.01)}
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        calls[first]()
    assert (e.value.reply_code, e.value.reply_text) == SHUTDOWN_320
    # read once: from now on everything is closed, as pika says after the 320
    assert (conn.is_open, ch.is_open, other.is_open) == (False, False, False)
    with pytest.raises(pika.exceptions.ChannelWrongStateError, match="Channel is closed"):
        ch.basic_publish("", "q", b"x")
    with pytest.raises(pika.exceptions.ChannelWrongStateError, match="Channel is closed"):
        other.start_consuming()
    with pytest.raises(ValueError, match="Timeout closed before call"):
        conn.process_data_events(0)
    if first == "basic_get":         # pika still waits for that one's reply
        with pytest.raises(pika.exceptions.DuplicateGetOkCallback):
            ch.basic_get("q")
    else:                            # pika sends basic_get's frame whatever the state
        with pytest.raises(pika.exceptions.ConnectionWrongStateError,
                           match="Attempted to send a frame on closed connection"):
            ch.basic_get("q")
    with pytest.raises(pika.exceptions.ConnectionWrongStateError,
                       match="called on closed connection"):
        conn.close()


@pytest.mark.timeout(20)
@pytest.mark.parametrize("how", ["start_consuming", "consume"])
def test_bus_shutdown_ends_a_waiting_consumer_with_320(how: str) -> None:
    params = pika.ConnectionParameters("localhost")
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.queue_declare("q")
    got: list[bytes] = []
    stopper = threading.Timer(0.2, pika.get_bus(params).close)
    stopper.start()
    try:
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
            if how == "start_consuming":
                ch.basic_consume("q", lambda c, m, p, b: got.append(b))
                ch.basic_publish("", "q", b"before")
                ch.start_consuming()
            else:
                ch.basic_publish("", "q", b"before")
                for _m, _p, body in ch.consume("q", inactivity_timeout=5):
                    assert body is not None, "the shutdown did not end the wait"
                    got.append(body)
    finally:
        stopper.join()
    assert (e.value.reply_code, e.value.reply_text) == SHUTDOWN_320
    assert got == [b"before"]
    assert conn.is_closed


@pytest.mark.parametrize("closed_by", ["client", "broker"])
def test_basic_get_on_a_closed_channel_is_rabbitmqs_504(conn: pika.BlockingConnection,
                                                        closed_by: str) -> None:
    # pika's basic_get sends its frame whatever the channel's state; RabbitMQ answers a
    # frame on a free channel number with connection error 504, which the connection's
    # next I/O reads (checked against RabbitMQ 3.10.8 by the differential scenario
    # basic_get_on_a_closed_channel)
    ch, holder = conn.channel(), conn.channel()
    ch.queue_declare("q")
    ch.basic_publish("", "q", b"m")
    assert holder.basic_get("q")[0] is not None           # unacked on holder
    if closed_by == "client":
        ch.close()
    else:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            ch.queue_declare("missing", passive=True)
    with pytest.raises(pika.exceptions.ChannelWrongStateError, match="Channel is closed"):
        ch.basic_get("q")
    assert conn.is_open and not conn.is_closed             # not read yet
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        conn.process_data_events(0)
    assert (e.value.reply_code, e.value.reply_text) == (
        504, "CHANNEL_ERROR - expected 'channel.open'")
    assert (conn.is_open, holder.is_open) == (False, False)
    other = pika.BlockingConnection(pika.ConnectionParameters("localhost")).channel()
    m, _p, body = other.basic_get("q", auto_ack=True)
    assert m is not None and (body, m.redelivered) == (b"m", True)
    with pytest.raises(pika.exceptions.ConnectionWrongStateError,
                       match="called on closed connection"):
        conn.close()


def test_a_basic_get_that_raised_refuses_the_next_as_pika(conn: pika.BlockingConnection
                                                          ) -> None:
    # pika waits for a basic_get's reply until it comes; one that raised never gets it
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        ch.basic_get("missing")
    with pytest.raises(pika.exceptions.DuplicateGetOkCallback):
        ch.basic_get("missing")                    # no frame: the connection lives on
    ch2 = conn.channel()
    ch2.basic_ack(999)                               # an asynchronous error, not read yet
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch2.basic_get("missing")
    assert e.value.reply_code == 406
    with pytest.raises(pika.exceptions.DuplicateGetOkCallback):
        ch2.basic_get("missing")
    assert conn.is_open
    conn.channel().queue_declare("q")                # a get that returns resets it
    ch3 = conn.channel()
    assert ch3.basic_get("q") == (None, None, None)
    assert ch3.basic_get("q") == (None, None, None)


def test_basic_get_on_a_closed_channel_whose_number_is_reused(
        conn: pika.BlockingConnection) -> None:
    # the frame reaches the new channel with that number: no 504 (pika's handling of the
    # reply there is its own; RabbitMQ 3.10 + pika 1.4.4 left the message in the queue)
    ch = conn.channel()
    ch.close()
    new = conn.channel()
    assert new.channel_number == ch.channel_number
    with pytest.raises(pika.exceptions.ChannelWrongStateError):
        ch.basic_get("q")
    new.queue_declare("q")
    assert conn.is_open and new.is_open


def test_client_close_then_bus_close_is_no_shutdown_error(conn: pika.BlockingConnection
                                                          ) -> None:
    ch = conn.channel()
    conn.close()
    pika.get_bus(pika.ConnectionParameters("localhost")).close()
    with pytest.raises(pika.exceptions.ChannelWrongStateError):
        ch.basic_publish("", "q", b"x")      # closed by the client first: no 320


def test_channel_numbers_as_pika_allocates_them(conn: pika.BlockingConnection) -> None:
    a, b = conn.channel(), conn.channel()
    assert (a.channel_number, b.channel_number) == (1, 2)
    a.close()
    assert conn.channel().channel_number == 1          # the lowest free number
    assert conn.channel(7).channel_number == 7
    assert conn.channel().channel_number == 3
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        conn.channel(7)
    assert (e.value.reply_code, e.value.reply_text) == (
        504, "CHANNEL_ERROR - second 'channel.open' seen")
    assert conn.is_closed


def test_short_string_too_long(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ShortStringTooLong):
        ch.queue_declare("q" * 256)
    with pytest.raises(pika.exceptions.ShortStringTooLong):
        ch.basic_publish("", "é" * 128, b"x")
    assert ch.is_open
    assert ch.queue_declare("q" * 255).method.queue == "q" * 255


def test_user_id_must_match_the_connection_user(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    ch.queue_declare("q")
    ch.basic_publish("", "q", b"ok", pika.BasicProperties(user_id="guest"))
    ch.basic_publish("", "q", b"bad", pika.BasicProperties(user_id="mallory"))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("q", passive=True)
    assert e.value.reply_code == 406 and "mallory" in e.value.reply_text
    assert conn.channel().queue_declare("q", passive=True).method.message_count == 1


def test_duplicate_consumer_tag_is_refused_client_side(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    ch.queue_declare("q")
    ch.basic_consume("q", lambda *a: None, consumer_tag="t")
    with pytest.raises(pika.exceptions.DuplicateConsumerTag):
        ch.basic_consume("q", lambda *a: None, consumer_tag="t")
    assert ch.is_open


def test_basic_consume_argument_errors(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    with pytest.raises(TypeError, match="on_message_callback must be callable, but got"):
        ch.basic_consume("q", "not callable")       # pika's validators: a TypeError
    with pytest.raises(TypeError):
        ch.basic_consume("q", lambda *a: None, bogus=1)


def test_names_pika_requires_must_be_str(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    calls = [lambda: ch.queue_declare(None), lambda: ch.basic_get(None),
             lambda: ch.queue_bind(None, "amq.direct"), lambda: ch.queue_bind("q", None),
             lambda: ch.queue_unbind(None, "amq.direct"), lambda: ch.queue_purge(None),
             lambda: ch.queue_delete(None), lambda: ch.exchange_declare(None),
             lambda: ch.exchange_bind(None, "amq.direct"),
             lambda: ch.exchange_bind("amq.direct", None),
             lambda: ch.basic_consume(None, lambda *a: None),
             lambda: next(ch.consume(None))]
    for call in calls:
        with pytest.raises(TypeError, match="must be a str or unicode str, but got None"):
            call()
    with pytest.raises(TypeError, match="queue must be a str or unicode str, but got 5"):
        ch.queue_declare(5)  # type: ignore[arg-type]
    assert ch.is_open


# --------------------------------------------------------------------------- returns / confirms


def test_returns_dispatched_by_process_data_events(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    got: list[Any] = []
    ch.add_on_return_callback(lambda c, m, p, b: got.append((c, m, p.app_id, b)))
    ch.basic_publish("amq.direct", "nowhere", b"r", pika.BasicProperties(app_id="a"),
                     mandatory=True)
    assert got == []
    conn.process_data_events()
    [(c, m, app_id, body)] = got
    assert c is ch and app_id == "a" and body == b"r"
    assert m == pika.spec.Basic.Return(312, "NO_ROUTE", "amq.direct", "nowhere")
    seen: list[Any] = []
    ch.add_on_return_callback(lambda c, m, p, b: seen.append(p))
    ch.basic_publish("amq.direct", "nowhere", b"r", mandatory=True)
    conn.process_data_events()
    assert type(seen[0]) is pika.BasicProperties and seen[0] == pika.BasicProperties()


def test_confirms(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    ch.queue_declare("q", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    ch.confirm_delivery()
    ch.basic_publish("", "q", b"1")
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", "q", b"2")
    with pytest.raises(pika.exceptions.UnroutableError) as e:
        ch.basic_publish("", "nowhere", b"u", mandatory=True)
    [r] = e.value.messages
    assert (r.method.reply_code, r.method.routing_key, r.body) == (312, "nowhere", b"u")
    ch.basic_publish("", "nowhere", b"dropped")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        ch.basic_publish("missing", "k", b"m")


# --------------------------------------------------------------------------- consuming


def test_consume_generator_and_cancel(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    ch.queue_declare("q")
    for i in range(3):
        ch.basic_publish("", "q", str(i).encode())
    seen = []
    for method, _props, body in ch.consume("q", inactivity_timeout=0.05):
        if method is None:
            break
        seen.append(body)
        if body == b"0":
            ch.basic_ack(method.delivery_tag)
    assert seen == [b"0", b"1", b"2"]
    assert ch.get_waiting_message_count() == 0
    assert ch.cancel() == 0
    ch.close()           # unacked 1 and 2 go back
    ch = conn.channel()
    assert ch.queue_declare("q", passive=True).method.message_count == 2


def test_consume_cancel_requeues_unyielded(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    ch.queue_declare("q")
    for i in range(3):
        ch.basic_publish("", "q", str(i).encode())
    gen = ch.consume("q")
    method, _p, body = next(gen)
    assert body == b"0" and ch.get_waiting_message_count() == 2
    assert ch.cancel() == 0  # (pika 1.x returns 0 though it requeued 2: see the diff suite)
    ch.basic_ack(method.delivery_tag)
    assert [ch.basic_get("q", auto_ack=True)[2] for _ in range(2)] == [b"1", b"2"]
    assert list(gen) == []


def test_consume_with_other_params_is_refused(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    ch.queue_declare("q")
    next(ch.consume("q", inactivity_timeout=0.01))
    with pytest.raises(ValueError, match=r"previous params: \('q', False, False\); "
                                         r"new params: \('q', True, False\)"):
        next(ch.consume("q", auto_ack=True, inactivity_timeout=0.01))
    # pika compares (queue, auto_ack, exclusive) only: other arguments resume it
    ch.basic_publish("", "q", b"x")
    gen = ch.consume("q", inactivity_timeout=0.5, consumer_tag="other", arguments={"a": 1})
    assert next(gen)[2] == b"x" and len(ch.consumer_tags) == 1


def test_start_and_stop_consuming(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    ch.queue_declare("q")
    for i in range(5):
        ch.basic_publish("", "q", str(i).encode())
    got = []

    def on_message(c: Any, m: Any, p: Any, body: bytes) -> None:
        got.append(body)
        c.basic_ack(m.delivery_tag)
        if len(got) == 3:
            c.stop_consuming()

    ch.basic_qos(prefetch_count=1)
    ch.basic_consume("q", on_message)
    ch.start_consuming()
    assert got == [b"0", b"1", b"2"] and ch.consumer_tags == []
    assert ch.queue_declare("q", passive=True).method.message_count == 2


def test_stop_consuming_from_another_thread(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    ch.queue_declare("q")
    ch.basic_consume("q", lambda *a: None)
    t = threading.Timer(0.1, lambda: conn.add_callback_threadsafe(ch.stop_consuming))
    t.start()
    start = time.monotonic()
    ch.start_consuming()
    t.join()
    assert time.monotonic() - start < 5


def test_publish_from_another_thread_wakes_process_data_events(
        conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    ch.queue_declare("q")
    got: list[bytes] = []
    ch.basic_consume("q", lambda c, m, p, b: got.append(b), auto_ack=True)

    def publish() -> None:
        with pika.BlockingConnection() as other:
            other.channel().basic_publish("", "q", b"from thread")

    threading.Timer(0.05, publish).start()
    conn.process_data_events(time_limit=None)
    assert got == [b"from thread"]


def test_process_data_events_time_limit_and_sleep(conn: pika.BlockingConnection) -> None:
    start = time.monotonic()
    conn.process_data_events(time_limit=0.1)
    conn.sleep(0.1)
    took = time.monotonic() - start
    assert 0.18 <= took < 2


def test_call_later(conn: pika.BlockingConnection) -> None:
    fired: list[str] = []
    conn.call_later(0.05, lambda: fired.append("a"))
    tid = conn.call_later(0.05, lambda: fired.append("b"))
    conn.remove_timeout(tid)
    conn.sleep(0.15)
    assert fired == ["a"]


def test_cancel_callback_on_queue_delete(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    ch.queue_declare("q")
    frames: list[Any] = []
    ch.add_on_cancel_callback(frames.append)
    ch.basic_consume("q", lambda *a: None, consumer_tag="c1")
    conn.channel().queue_delete("q")
    conn.process_data_events()
    [f] = frames
    assert isinstance(f.method, pika.spec.Basic.Cancel) and f.method.consumer_tag == "c1"
    assert f.method.nowait is True            # as RabbitMQ sends it
    assert ch.consumer_tags == []


def test_callback_exception_propagates(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    ch.queue_declare("q")

    def boom(*a: Any) -> None:
        raise RuntimeError("boom")

    ch.basic_consume("q", boom)
    ch.basic_publish("", "q", b"m")
    with pytest.raises(RuntimeError):
        conn.process_data_events()


def test_context_managers() -> None:
    with pika.BlockingConnection() as c:
        with c.channel() as ch:
            ch.queue_declare("q", exclusive=True)
        assert ch.is_closed and c.is_open
    assert c.is_closed


def test_close_requeues_unacked() -> None:
    c1 = pika.BlockingConnection()
    ch = c1.channel()
    ch.queue_declare("q")
    ch.basic_publish("", "q", b"m")
    ch.basic_get("q")
    c1.close()
    with pika.BlockingConnection() as c2:
        m, _p, body = c2.channel().basic_get("q", auto_ack=True)
        assert body == b"m" and m.redelivered


# --------------------------------------------------------------------------- pika 0.x signatures


def test_pika_0x_signatures_warn_and_work(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    got: list[bytes] = []
    with pytest.warns(DeprecationWarning):
        ch.exchange_declare(exchange="logs", type="fanout")
    ch.queue_declare(queue="hello")
    ch.queue_bind(exchange="logs", queue="hello")
    with pytest.warns(DeprecationWarning):
        ch.basic_consume(lambda c, m, p, b: got.append(b), queue="hello", no_ack=True)
    ch.basic_publish(exchange="logs", routing_key="", body="Hello World!")
    conn.process_data_events()
    assert got == [b"Hello World!"]
    ch.basic_publish(exchange="", routing_key="hello", body="again")
    ch2 = conn.channel()
    ch2.queue_declare(queue="other")
    ch2.basic_publish(exchange="", routing_key="other", body="x")
    with pytest.warns(DeprecationWarning):
        m, _p, body = ch2.basic_get("other", no_ack=True)
    assert body == b"x"
    with pytest.warns(DeprecationWarning):
        ch2.basic_consume(lambda *a: None, "other")


def test_pika_1x_signatures_do_not_warn(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ch.exchange_declare(exchange="logs", exchange_type="fanout")
        ch.queue_declare(queue="hello")
        ch.basic_consume(queue="hello", on_message_callback=lambda *a: None, auto_ack=True)
        ch.basic_consume("hello", lambda *a: None, True)
        ch.basic_get(queue="hello", auto_ack=True)


def test_each_delivery_has_its_own_properties(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    ch.exchange_declare("x", "fanout")
    for q in ("q1", "q2"):
        ch.queue_declare(q)
        ch.queue_bind(q, "x")
    seen: list[Any] = []

    def mutate(c: Any, m: Any, p: Any, body: bytes) -> None:
        seen.append(dict(p.headers))
        p.headers["mutated"] = True

    ch.basic_consume("q1", mutate, auto_ack=True)
    ch.basic_consume("q2", mutate, auto_ack=True)
    ch.basic_publish("x", "", b"m", pika.BasicProperties(headers={"k": 1}))
    conn.process_data_events()
    assert seen == [{"k": 1}, {"k": 1}]


def test_headers_go_through_pikas_encoder(conn: pika.BlockingConnection) -> None:
    import datetime
    import decimal

    ch = conn.channel()
    ch.queue_declare("q")
    headers = {"s": "x", "i": 1, "b": True, "n": None, "by": b"\x00", "l": [1, "a"],
               "d": {"x": {"y": 1}}, b"bk": 1, "dec": decimal.Decimal("1.50"),
               "dt": datetime.datetime(2020, 1, 2, 3, 4, 5, 678)}
    ch.basic_publish("", "q", b"x", pika.BasicProperties(headers=headers))
    _m, props, _b = ch.basic_get("q", auto_ack=True)
    utc = datetime.timezone.utc
    expected = {k: v for k, v in headers.items() if k != b"bk"}
    expected.update(bk=1, dec=decimal.Decimal("1.5"),
                    dt=datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=utc))
    assert props.headers == expected and str(props.headers["dec"]) == "1.5"
    for bad in ({"f": 1.5}, {"t": (1, 2)}, {"ba": bytearray(b"x")}, {"l": [1.5]}):
        with pytest.raises(pika.exceptions.UnsupportedAMQPFieldException):
            ch.basic_publish("", "q", b"x", pika.BasicProperties(headers=bad))
    with pytest.raises(pika.exceptions.ShortStringTooLong):
        ch.basic_publish("", "q", b"x", pika.BasicProperties(headers={"k" * 256: 1}))
    assert ch.is_open and ch.queue_declare("q", passive=True).method.message_count == 0


def test_publish_refuses_what_pikas_encoder_refuses(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    ch.queue_declare("q")
    for args in (("", "q", bytearray(b"x")), ("", "q", memoryview(b"x")), ("", "q", None),
                 (None, "q", b"x"), ("", None, b"x")):
        with pytest.raises(TypeError):      # pika: AttributeError / AssertionError
            ch.basic_publish(*args)         # type: ignore[arg-type]
    assert ch.is_open and ch.queue_declare("q", passive=True).method.message_count == 0


def test_ssl_options_and_blocked_callbacks_are_accepted() -> None:
    import ssl

    opts = pika.SSLOptions(ssl.create_default_context(), "broker")
    params = pika.ConnectionParameters("localhost", ssl_options=opts)
    assert repr(params).endswith("ssl=True>") and params.ssl_options.server_hostname == "broker"
    with pytest.raises(TypeError, match="context must be of ssl.SSLContext type"):
        pika.SSLOptions(None)  # type: ignore[arg-type]
    conn = pika.BlockingConnection(params)
    conn.add_on_connection_blocked_callback(lambda c, f: None)
    conn.add_on_connection_unblocked_callback(lambda c, f: None)
    conn.close()


@pytest.mark.parametrize("value, exc", [
    (1.5, pika.exceptions.UnsupportedAMQPFieldException),
    ((1, 2), pika.exceptions.UnsupportedAMQPFieldException),
    (bytearray(b"x"), pika.exceptions.UnsupportedAMQPFieldException),
    ({"nested": [1, 2.5]}, pika.exceptions.UnsupportedAMQPFieldException),
    (2**64, __import__("struct").error),
])
def test_values_pika_cannot_encode_raise_client_side(conn: pika.BlockingConnection,
                                                     value: Any, exc: type) -> None:
    # Real pika refuses these while encoding the frame, before anything reaches the
    # broker: the channel stays open and nothing is declared, bound or published.
    ch = conn.channel()
    ch.exchange_declare("h", "headers")
    with pytest.raises(exc):
        ch.queue_declare("q", arguments={"x-v": value})
    with pytest.raises(exc):
        ch.exchange_declare("x", arguments={"x-v": value})
    ch.queue_declare("q")
    with pytest.raises(exc):
        ch.queue_bind("q", "h", arguments={"v": value})
    with pytest.raises(exc):
        ch.exchange_bind("amq.direct", "h", arguments={"v": value})
    with pytest.raises(exc):
        ch.basic_consume("q", lambda *a: None, arguments={"x-v": value})
    with pytest.raises(exc):
        ch.basic_publish("", "q", b"m", pika.BasicProperties(headers={"v": value}))
    assert ch.is_open and ch.consumer_tags == []
    assert ch.queue_declare("q", passive=True).method.message_count == 0
    assert conn.bus.statistics().exchange("h").bindings == 0
    ok = {"s": "x", "b": b"x", "t": True, "i": 2**40, "d": __import__("decimal").Decimal("1.5"),
          "n": None, "l": [1, "x", {"k": []}], "f": {"a": 1}}
    ch.basic_publish("", "q", b"m", pika.BasicProperties(headers=ok))
    assert ch.basic_get("q", auto_ack=True)[1].headers == ok


def test_returns_not_dispatched_before_the_channel_closes_are_dropped(
        conn: pika.BlockingConnection) -> None:
    # pika's BlockingChannel clears its pending events when it closes (_cleanup): a
    # return that arrived but was not dispatched yet never reaches the callback.
    got: list[bytes] = []
    ch = conn.channel()
    ch.add_on_return_callback(lambda c, m, p, body: got.append(body))
    ch.basic_publish("amq.direct", "nowhere", b"lost", mandatory=True)
    ch.basic_publish("amq.direct", "nowhere", b"x", pika.BasicProperties(delivery_mode=3))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        ch.queue_declare("q")  # the 406 of the invalid message closed the channel
    conn.process_data_events(0)
    ch2 = conn.channel()
    ch2.add_on_return_callback(lambda c, m, p, body: got.append(body))
    ch2.basic_publish("amq.direct", "nowhere", b"also lost", mandatory=True)
    ch2.close()
    conn.process_data_events(0)
    ch3 = conn.channel()
    ch3.add_on_return_callback(lambda c, m, p, body: got.append(body))
    ch3.basic_publish("amq.direct", "nowhere", b"seen", mandatory=True)
    conn.process_data_events(0)
    assert got == [b"seen"]
