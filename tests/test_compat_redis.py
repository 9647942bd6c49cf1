"""inbus.compat.redis: redis-py's pub/sub surface and client bookkeeping, in process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from inbus import SubscriberClosed
from inbus._errors import PubSubError as InbusPubSubError
from inbus.compat import redis
from tests.diff.redis_support import load_seed_helper


@pytest.fixture(autouse=True)
def fresh_servers() -> Iterator[None]:
    redis.reset()
    yield
    redis.reset()


def test_same_host_and_port_share_a_server() -> None:
    a = redis.Redis(host="localhost", port=6379)
    b = redis.StrictRedis(host="127.0.0.1", port=6379, db=3)
    c = redis.from_url("redis://localhost:6379/1")
    other = redis.Redis(port=6380)
    p = a.pubsub()
    p.subscribe("news")
    assert b.publish("news", "x") == 1 and c.pubsub_numsub("news") == [(b"news", 1)]
    assert other.publish("news", "x") == 0
    redis.reset()
    assert redis.Redis().publish("news", "x") == 0


def test_from_url_and_client_basics() -> None:
    r = redis.from_url("redis://:secret@example.com:7000/2", decode_responses=True)
    assert (r.host, r.port, r.db, r.decode_responses) == ("example.com", 7000, 2, True)
    assert redis.Redis.from_url("rediss://h").port == 6379
    with pytest.raises(ValueError, match="scheme"):
        redis.from_url("http://x")
    with redis.Redis() as client:
        assert client.ping() is True
    with pytest.raises(redis.DataError, match="bool"):
        redis.Redis().publish("c", True)
    with pytest.raises(ValueError, match="encoding"):
        redis.Redis(encoding="latin-1")


def test_redis_py_dedupes_a_repeated_name() -> None:
    r = redis.Redis()
    p = r.pubsub()
    p.subscribe("a", "a")
    assert p.get_message()["data"] == 1  # type: ignore[index]
    assert p.get_message() is None


def test_get_message_none_while_unsubscribed() -> None:
    r = redis.Redis()
    p = r.pubsub()
    assert p.get_message(timeout=0.01) is None
    p.unsubscribe()
    assert p.get_message() is None  # redis-py hides the unsubscribe-all confirmation
    p.subscribe("a")
    p.unsubscribe("a")
    # the stale unsubscribe-all reply comes first, as with redis-py and a real server
    assert [p.get_message()["channel"] for _ in range(3)] == [  # type: ignore[index]
        None, b"a", b"a"]
    assert not p.subscribed and p.get_message() is None


def test_messages_counts_and_introspection() -> None:
    r = redis.Redis()
    p = r.pubsub(ignore_subscribe_messages=True)
    p.subscribe("news", "")
    p.psubscribe("n*", "*s")
    assert r.publish("news", 1.5) == 3
    assert r.pubsub_numpat() == 2
    assert r.pubsub_channels() == [b"news"]  # redis-py's default pattern is '*'
    assert sorted(r.pubsub_channels("")) == [b""]
    msgs = [p.get_message() for _ in range(7)]
    assert [m for m in msgs if m] == [
        {"type": "message", "pattern": None, "channel": b"news", "data": b"1.5"},
        {"type": "pmessage", "pattern": b"n*", "channel": b"news", "data": b"1.5"},
        {"type": "pmessage", "pattern": b"*s", "channel": b"news", "data": b"1.5"}]


def test_decode_responses() -> None:
    r = redis.Redis(decode_responses=True)
    p = r.pubsub()
    seen: list[Any] = []
    p.subscribe("plain", **{"é": seen.append})
    r.publish("é", "x")
    r.publish("plain", "y")
    assert [p.get_message() for _ in range(4)][2:] == [
        None, {"type": "message", "pattern": None, "channel": "plain", "data": "y"}]
    assert seen == [{"type": "message", "pattern": None, "channel": "é", "data": "x"}]
    assert r.pubsub_numsub("é") == [("é", 1)]
    assert p.channels == {"plain": None, "é": seen.append}


def test_handlers_and_pending_unsubscribe() -> None:
    r = redis.Redis()
    p = r.pubsub()
    seen: list[Any] = []
    p.psubscribe(**{"a*": seen.append})
    r.publish("ab", "1")
    p.punsubscribe("a*")
    assert p.patterns == {b"a*": seen.append}  # until the confirmation is read
    while p.subscribed:
        p.get_message()
    assert p.patterns == {} and [m["data"] for m in seen] == [b"1"]


def test_listen_and_parse_response() -> None:
    r = redis.Redis()
    p = r.pubsub()
    with pytest.raises(RuntimeError, match="subscribe"):
        p.parse_response()
    p.subscribe("a")
    assert p.parse_response() == [b"subscribe", b"a", 1]
    r.publish("a", "x")
    p.unsubscribe()
    assert [m["type"] for m in p.listen()] == ["message", "unsubscribe"]
    assert p.parse_response(block=False, timeout=0.01) is None


def test_close_and_reuse() -> None:
    r = redis.Redis()
    with r.pubsub() as p:
        p.subscribe("a")
    assert r.pubsub_numsub("a") == [(b"a", 0)] and not p.subscribed
    p.subscribe("a")  # reusable after reset, as in redis-py
    assert r.publish("a", "x") == 1
    p.close()


def test_run_in_thread() -> None:
    r = redis.Redis()
    p = r.pubsub()
    p.subscribe("nohandler")
    with pytest.raises(redis.PubSubError) as info:
        p.run_in_thread()
    assert isinstance(info.value, InbusPubSubError)
    p.reset()
    got: list[Any] = []
    done = threading.Event()
    p.subscribe(a=lambda m: (got.append(m["data"]), done.set()))
    t = p.run_in_thread(sleep_time=0.001)
    r.publish("a", "x")
    assert done.wait(5)
    t0 = time.monotonic()
    t.stop()
    t.join(5)
    assert not t.is_alive() and time.monotonic() - t0 < 1
    assert got == [b"x"] and r.pubsub_numsub("a") == [(b"a", 0)]


def test_reset_joins_worker_threads() -> None:
    p = redis.Redis().pubsub()
    p.subscribe(a=lambda m: None)
    t = p.run_in_thread()
    redis.reset()
    assert not t.is_alive()


def test_seed_helper_runs_with_the_import_swapped() -> None:
    helper_module = load_seed_helper(use_inbus=True)
    helper = helper_module.RedisHelper(channel="fm104.5")
    sub = helper.subscribe()
    assert helper.public("hello") is True
    assert sub.parse_response() == [b"message", b"fm104.5", b"hello"]
    helper.public("one")
    helper.public("two")
    assert helper.receive(sub, 2) == ["one", "two"]


def test_pubsub_ping_reads_as_a_pong_message() -> None:
    r = redis.Redis()
    p = r.pubsub(ignore_subscribe_messages=True)
    p.subscribe("a")
    assert p.ping() is None and p.ping("hi") is None
    assert p.get_message(timeout=1) is None            # the subscribe confirmation
    assert p.get_message(timeout=1) == {"type": "pong", "pattern": None, "channel": None,
                                        "data": b""}   # not hidden by ignore_subscribe
    assert p.get_message(timeout=1)["data"] == b"hi"   # type: ignore[index]
    p.close()


def test_handle_message_takes_parse_responses_reply() -> None:
    r = redis.Redis()
    got: list[Any] = []
    p = r.pubsub()
    p.subscribe("plain", h=got.append)
    r.publish("plain", "x")
    r.publish("h", "y")
    replies = [p.parse_response(block=False, timeout=1) for _ in range(4)]
    msgs = [p.handle_message(reply) for reply in replies]
    assert [m and m["type"] for m in msgs] == ["subscribe", "subscribe", "message", None]
    assert msgs[2] == {"type": "message", "pattern": None, "channel": b"plain", "data": b"x"}
    assert [m["data"] for m in got] == [b"y"]
    assert p.handle_message(None) is None
    p.close()


def test_run_in_thread_accepts_redis_pys_cluster_arguments() -> None:
    p = redis.Redis().pubsub()
    p.subscribe(a=lambda m: None)
    t = p.run_in_thread(sleep_time=0.01, daemon=True, pubsub=None, sharded_pubsub=False)
    t.stop()
    t.join(5)
    assert not t.is_alive()


def test_exceptions_module_has_redis_pys_tree() -> None:
    real = pytest.importorskip("redis.exceptions")
    for name in redis.exceptions.__all__:
        mine = [c.__name__ for c in getattr(redis.exceptions, name).__mro__]
        theirs = [c.__name__ for c in getattr(real, name).__mro__]
        assert mine[:len(theirs) - 3] == theirs[:-3], name   # inbus bases may follow
    for name in ("RedisError", "ConnectionError", "TimeoutError", "ResponseError",
                 "DataError", "PubSubError"):
        assert getattr(redis, name) is getattr(redis.exceptions, name)


def test_redis_exceptions_import_under_the_fixture(inbus_redis: Any) -> None:
    import redis.exceptions as exc
    from redis.exceptions import ConnectionError as RedisConnectionError

    assert exc is inbus_redis.exceptions and RedisConnectionError is exc.ConnectionError


def test_subscribe_without_names_fails_on_the_next_read() -> None:
    p = redis.Redis().pubsub()
    assert p.connection is None
    p.subscribe()               # redis-py sends it; Redis's error reply comes later
    assert p.subscribed and p.connection is not None
    with pytest.raises(redis.ResponseError,
                       match="^wrong number of arguments for 'subscribe' command$"):
        p.get_message(timeout=1)
    p.psubscribe()
    with pytest.raises(redis.exceptions.ResponseError, match="'psubscribe' command"):
        p.parse_response(block=False, timeout=1)
    p.close()
    assert p.connection is None


def test_a_dropped_subscriber_reconnects_and_subscribes_again() -> None:
    r = redis.Redis()
    p = r.pubsub()
    p.subscribe("a", b=lambda m: None)
    p.psubscribe("p*")
    assert [p.get_message()["type"] for _ in range(3)] == ["subscribe"] * 2 + ["psubscribe"]  # type: ignore[index]
    for _ in range(100_001):    # over the pending bound: the "server" drops the client
        r.publish("a", "x")
    # redis-py reconnects at the next read and subscribes again (what was pending is lost)
    assert [p.get_message(timeout=1)["channel"] for _ in range(3)] == [b"a", b"b", b"p*"]  # type: ignore[index]
    assert r.publish("a", "y") == 1 and p.get_message(timeout=1)["data"] == b"y"  # type: ignore[index]
    p.close()
    with pytest.raises(InbusPubSubError):
        p._conn().close()
        p._read(0)              # closed by the client: no reconnection


def test_reset_closes_the_servers_for_clients_made_before_it() -> None:
    r = redis.Redis()
    p = r.pubsub()
    p.subscribe("c")
    redis.reset()
    with pytest.raises(InbusPubSubError, match="closed bus"):
        r.publish("c", "x")
    with pytest.raises(SubscriberClosed, match="bus was closed"):
        p.get_message()
    fresh = redis.Redis()
    assert fresh.publish("c", "x") == 0  # a new server: the old subscriber is not on it
    q = fresh.pubsub(ignore_subscribe_messages=True)
    q.subscribe("c")
    assert q.get_message() is None and fresh.publish("c", "y") == 1
    assert q.get_message()["data"] == b"y"
