"""pika's published asynchronous examples (SelectConnection and AsyncioConnection),
unchanged (tests/pika_examples/, BSD licensed,
see their headers), run against inbus with ``import pika`` giving inbus.compat.pika.

The only things added are what a user at a terminal does: Ctrl-C (a KeyboardInterrupt
raised from a callback once N messages went through, which the examples catch to shut
down cleanly) and a shorter publish interval.
"""

from __future__ import annotations

import importlib
import json
import sys
from types import ModuleType
from typing import Any

import pytest

URL = "amqp://guest:guest@localhost:5672/%2F"

pytestmark = pytest.mark.timeout(60)


def _load(name: str) -> ModuleType:
    """Import an example afresh, so that its ``import pika`` sees the fixture's."""
    full = f"tests.pika_examples.{name}"
    sys.modules.pop(full, None)
    return importlib.import_module(full)


def _prepare(pika: Any, n: int) -> None:
    """What the consumer example consumes: n messages in queue 'text' via 'message'."""
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    ch = conn.channel()
    ch.exchange_declare("message", "topic")
    ch.queue_declare("text")
    ch.queue_bind("text", "message", "example.text")
    for i in range(n):
        ch.basic_publish("message", "example.text", f"m{i}".encode(),
                         pika.BasicProperties(app_id="test"))
    conn.close()


def test_publisher_example_publishes_and_gets_every_confirm(inbus_pika: Any) -> None:
    from inbus.testing import queue_counts
    mod = _load("asynchronous_publisher_example")
    mod.ExamplePublisher.PUBLISH_INTERVAL = 0.002
    pub = mod.ExamplePublisher(URL + "?connection_attempts=3&heartbeat=3600")
    confirmed = pub.on_delivery_confirmation

    def ctrl_c_after_5(frame: Any) -> None:
        confirmed(frame)
        if pub._acked == 5:
            raise KeyboardInterrupt

    pub.on_delivery_confirmation = ctrl_c_after_5
    pub.run()
    assert (pub._message_number, pub._acked, pub._nacked, pub._deliveries) == (5, 5, 0, [])
    assert pub._connection.is_closed and pub._stopping
    bus = inbus_pika.get_bus(inbus_pika.URLParameters(URL))
    assert queue_counts(bus, "text") == (5, 0)
    ch = inbus_pika.BlockingConnection(inbus_pika.URLParameters(URL)).channel()
    method, props, body = ch.basic_get("text", auto_ack=True)
    assert json.loads(body) == "مفتاح قيمة 键 值 キー 値"
    assert (method.exchange, method.routing_key) == ("message", "example.text")
    assert (props.app_id, props.content_type) == ("example-publisher", "application/json")
    assert props.headers == {"مفتاح": " قيمة", "键": "值", "キー": "値"}


def test_consumer_example_consumes_acks_and_shuts_down(inbus_pika: Any) -> None:
    from inbus.testing import queue_counts
    _prepare(inbus_pika, 4)
    mod = _load("asynchronous_consumer_example")
    runner = mod.ReconnectingExampleConsumer(URL)
    consumer = runner._consumer
    seen: list[tuple[int, bytes, str]] = []
    on_message = consumer.on_message

    def ctrl_c_after_3(ch: Any, deliver: Any, props: Any, body: bytes) -> None:
        seen.append((deliver.delivery_tag, body, props.app_id))
        on_message(ch, deliver, props, body)
        if len(seen) == 3:
            raise KeyboardInterrupt

    consumer.on_message = ctrl_c_after_3
    runner.run()   # returns once Ctrl-C's clean shutdown completed
    assert seen == [(1, b"m0", "test"), (2, b"m1", "test"), (3, b"m2", "test")]
    assert consumer._closing and not consumer._consuming and not consumer.should_reconnect
    assert consumer._connection.is_closed and consumer._channel is None
    # three acked; the fourth, delivered (prefetch 1) but not acked, went back
    bus = inbus_pika.get_bus(inbus_pika.URLParameters(URL))
    assert queue_counts(bus, "text") == (1, 0)


def test_consumer_example_reads_what_the_publisher_example_sent(inbus_pika: Any) -> None:
    pmod = _load("asynchronous_publisher_example")
    pmod.ExamplePublisher.PUBLISH_INTERVAL = 0.002
    pub = pmod.ExamplePublisher(URL)
    confirmed = pub.on_delivery_confirmation

    def ctrl_c_after_2(frame: Any) -> None:
        confirmed(frame)
        if pub._acked == 2:
            raise KeyboardInterrupt

    pub.on_delivery_confirmation = ctrl_c_after_2
    pub.run()
    cmod = _load("asynchronous_consumer_example")
    consumer = cmod.ExampleConsumer(URL)
    got: list[Any] = []
    on_message = consumer.on_message

    def record(ch: Any, deliver: Any, props: Any, body: bytes) -> None:
        got.append((json.loads(body), props.headers["键"], deliver.redelivered))
        on_message(ch, deliver, props, body)
        if len(got) == 2:
            raise KeyboardInterrupt

    consumer.on_message = record
    with pytest.raises(KeyboardInterrupt):
        consumer.run()
    consumer.stop()   # what ReconnectingExampleConsumer does on Ctrl-C
    assert got == [("مفتاح قيمة 键 值 キー 値", "值", False)] * 2
    assert consumer._connection.is_closed


def test_asyncio_consumer_example_consumes_acks_and_shuts_down(inbus_pika: Any) -> None:
    import asyncio

    from inbus.testing import queue_counts
    _prepare(inbus_pika, 4)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)   # the example's AsyncioConnection takes the current loop
    try:
        mod = _load("asyncio_consumer_example")
        runner = mod.ReconnectingExampleConsumer(URL)
        consumer = runner._consumer
        seen: list[tuple[int, bytes]] = []
        on_message = consumer.on_message

        def ctrl_c_after_3(ch: Any, deliver: Any, props: Any, body: bytes) -> None:
            seen.append((deliver.delivery_tag, body))
            on_message(ch, deliver, props, body)
            if len(seen) == 3:
                raise KeyboardInterrupt

        consumer.on_message = ctrl_c_after_3
        runner.run()
        assert consumer._connection.ioloop is loop
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    assert seen == [(1, b"m0"), (2, b"m1"), (3, b"m2")]
    assert consumer._closing and not consumer._consuming and not consumer.should_reconnect
    assert consumer._connection.is_closed
    bus = inbus_pika.get_bus(inbus_pika.URLParameters(URL))
    assert queue_counts(bus, "text") == (1, 0)
