"""The pytest plugin (entry point ``inbus``) and the helpers of inbus.testing."""

from __future__ import annotations

import sys
import threading
from typing import Any

import pytest

from inbus import Bus
from inbus.testing import ManualClock, capture, explain, queue_counts

pytest_plugins = ["pytester"]


def test_bus_fixture_gives_a_fresh_bus(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    ch.basic_publish("", "q", b"x")
    assert queue_counts(bus, "q") == (1, 0)


def test_manual_clock_fixture(manual_clock: ManualClock) -> None:
    b = Bus(clock=manual_clock)
    ch = b.channel()
    ch.queue_declare("q", arguments={"x-message-ttl": 1000})
    ch.basic_publish("", "q", b"x")
    manual_clock.advance(0.999)
    assert queue_counts(b, "q") == (1, 0)
    manual_clock.advance(0.001)
    assert queue_counts(b, "q") == (0, 0)
    b.close()


def application_code() -> int:
    """Code under test that imports pika itself."""
    import pika
    conn = pika.BlockingConnection(pika.ConnectionParameters("localhost"))
    ch = conn.channel()
    ch.queue_declare("work")
    for i in range(3):
        ch.basic_publish("", "work", str(i).encode())
    n = ch.queue_declare("work", passive=True).method.message_count
    conn.close()
    return int(n)


def test_inbus_pika_patches_the_module(inbus_pika: Any) -> None:
    assert sys.modules["pika"] is inbus_pika
    assert application_code() == 3
    bus = inbus_pika.get_bus(inbus_pika.ConnectionParameters("localhost"))
    assert queue_counts(bus, "work") == (3, 0)


def test_inbus_pika_gives_the_submodules_code_imports_from(inbus_pika: Any) -> None:
    """Application code imports names from pika's submodules too; under the fixture each
    such import gives inbus's look-alike (it used to fail for all but pika.exceptions)."""
    import pika.adapters.blocking_connection
    import pika.spec
    from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
    from pika.connection import ConnectionParameters, URLParameters
    from pika.credentials import PlainCredentials
    from pika.delivery_mode import DeliveryMode
    from pika.exceptions import ChannelClosedByBroker
    from pika.exchange_type import ExchangeType
    from pika.frame import Method
    from pika.spec import Basic, BasicProperties

    assert pika.spec.BasicProperties is BasicProperties is inbus_pika.BasicProperties
    assert pika.adapters.blocking_connection.BlockingChannel is BlockingChannel
    assert BlockingConnection is inbus_pika.BlockingConnection
    assert ExchangeType.topic.value == "topic" and DeliveryMode.Persistent.value == 2
    assert ConnectionParameters is inbus_pika.ConnectionParameters
    assert URLParameters and PlainCredentials and Method and Basic.Deliver
    assert ChannelClosedByBroker is inbus_pika.exceptions.ChannelClosedByBroker
    conn = BlockingConnection(ConnectionParameters(
        credentials=PlainCredentials("guest", "guest")))
    ch = conn.channel()
    assert isinstance(ch, BlockingChannel)
    ch.exchange_declare("logs", ExchangeType.fanout)
    conn.close()


def test_inbus_pika_is_undone_after_the_test() -> None:
    mod = sys.modules.get("pika")
    assert mod is None or not mod.__name__.startswith("inbus")
    for name in ("pika.spec", "pika.adapters", "pika.adapters.blocking_connection"):
        sub = sys.modules.get(name)  # absent, or the real pika's (a file)
        assert sub is None or getattr(sub, "__file__", None), name


def test_inbus_redis_patches_the_module(inbus_redis: Any) -> None:
    import redis
    r = redis.Redis()
    p = r.pubsub()
    p.subscribe("news")
    assert r.publish("news", "hi") == 1
    msgs = [p.get_message(timeout=1.0) for _ in range(2)]
    assert msgs[1] == {"type": "message", "pattern": None, "channel": b"news", "data": b"hi"}


def test_capture_records_routed_and_unroutable(bus: Bus) -> None:
    ch = bus.channel()
    ch.exchange_declare("logs", "topic")
    ch.queue_declare("q")
    ch.queue_bind("q", "logs", "audit.#")
    with capture(bus, "logs") as published:
        ch.basic_publish("logs", "audit.irs", b"a")
        ch.basic_publish("logs", "other", b"b")
    ch.basic_publish("logs", "audit.x", b"after")
    assert [(m.routing_key, m.body) for m in published] == [("audit.irs", b"a"),
                                                            ("other", b"b")]
    assert queue_counts(bus, "q") == (2, 0)


def test_explain_says_which_bindings_match(bus: Bus) -> None:
    ch = bus.channel()
    ch.exchange_declare("t", "topic")
    for q, key in (("a", "audit.#"), ("b", "audit.*"), ("c", "*.irs.corporate")):
        ch.queue_declare(q)
        ch.queue_bind(q, "t", key)
    lines = explain(bus, "t", "audit.irs.corporate")
    assert lines[0].startswith("MATCH queue 'a'")
    assert lines[1].startswith("no    queue 'b'")
    assert lines[2].startswith("MATCH queue 'c'")
    assert lines[-1] == "reaches queues: 'a', 'c'"
    assert explain(bus, "nope", "k") == ["no exchange 'nope' in vhost '/'"]


def test_bus_fixture_fails_on_background_callback_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_it(bus):
            ch = bus.channel(background=True)
            ch.queue_declare("q")
            ch.basic_consume("q", lambda m: 1 / 0)
            ch.basic_publish("", "q", b"x")
            import time
            deadline = time.time() + 5
            while not bus.errors and time.time() < deadline:
                time.sleep(0.01)
    """)
    result = pytester.runpytest("-q")  # the plugin comes through its entry point
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*a callback raised on a background thread*"])


def test_no_thread_left_by_fixtures() -> None:
    assert not [t for t in threading.enumerate() if t.name.startswith("inbus")]


def test_statistics_lookups_name_what_is_missing() -> None:
    bus = Bus()
    with pytest.raises(KeyError, match="no queue 'nope' in vhost '/'"):
        queue_counts(bus, "nope")
    with pytest.raises(KeyError, match="no exchange 'zz' in vhost '/'"):
        bus.statistics().exchange("zz")
    with pytest.raises(KeyError, match=r"no vhost '/v' \(vhosts: \['/'\]\)"):
        bus.statistics().queue("q", "/v")
    assert bus.statistics().exchange("amq.direct").name == "amq.direct"
