"""inbus.compat.redis: sharded pub/sub, execute_command, PING replies and health checks,
as redis-py 8.1 against Redis 7.0 gives them (the differential scenarios in
tests/diff/test_redis_diff.py compare the same things with the real server)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from inbus.compat import redis


@pytest.fixture(autouse=True)
def fresh_servers() -> Iterator[None]:
    redis.reset()
    yield
    redis.reset()


def msgs(p: Any, n: int) -> list[Any]:
    return [p.get_message(timeout=1) for _ in range(n)]


def test_shard_channels_are_their_own_namespace() -> None:
    r = redis.Redis()
    p = r.pubsub()
    p.subscribe("a")
    p.psubscribe("*")
    p.ssubscribe("a", "s")
    assert [(m["type"], m["data"]) for m in msgs(p, 4)] == [
        ("subscribe", 1), ("psubscribe", 2), ("ssubscribe", 1), ("ssubscribe", 2)]
    assert r.spublish("a", "x") == 1 and r.publish("a", "y") == 2 and r.publish("s", "z") == 1
    assert [(m["type"], m["channel"], m["data"]) for m in msgs(p, 4)] == [
        ("smessage", b"a", b"x"), ("message", b"a", b"y"), ("pmessage", b"a", b"y"),
        ("pmessage", b"s", b"z")]
    assert r.pubsub_shardchannels() == [b"a", b"s"] and r.pubsub_channels() == [b"a"]
    assert r.pubsub_shardnumsub("a", "zz") == [(b"a", 1), (b"zz", 0)]
    assert r.pubsub_numsub("s") == [(b"s", 0)]


def test_client_bookkeeping_for_shard_channels() -> None:
    r = redis.Redis(decode_responses=True)
    p = r.pubsub()
    seen: list[Any] = []
    p.ssubscribe("n", target_node=None, h=seen.append)
    assert p.subscribed and p.shard_channels == {"n": None, "h": seen.append}
    with pytest.raises(redis.PubSubError, match="Shard Channel: 'n' has no handler"):
        p.run_in_thread()
    r.spublish("h", "é")
    assert [m["type"] for m in msgs(p, 2)] == ["ssubscribe"] * 2
    assert p.get_sharded_message(timeout=1) is None       # handled
    assert seen == [{"type": "smessage", "pattern": None, "channel": "h", "data": "é"}]
    p.sunsubscribe("h")
    assert p.shard_channels["h"] is not None               # until the confirmation is read
    assert p.get_message(timeout=1)["channel"] == "h" and "h" not in p.shard_channels
    p.sunsubscribe()
    assert p.get_message(timeout=1) == {"type": "sunsubscribe", "pattern": None,
                                        "channel": "n", "data": 0}
    assert not p.subscribed
    p.sunsubscribe()                                       # nothing held: hidden
    assert p.get_message(timeout=0.05) is None
    assert p.parse_response(block=False, timeout=1) == ["sunsubscribe", None, 0]


def test_shard_run_in_thread_and_reconnect() -> None:
    r = redis.Redis()
    p = r.pubsub()
    done = threading.Event()
    p.ssubscribe(t=lambda m: done.set())
    t = p.run_in_thread(sleep_time=0.01, sharded_pubsub=True)
    assert r.spublish("t", "x") == 1 and done.wait(5)
    t.stop()
    t.join(5)
    assert r.pubsub_shardnumsub("t") == [(b"t", 0)]
    q = r.pubsub()
    q.ssubscribe("s")
    for _ in range(100_001):   # over the pending bound: dropped, then re-subscribed
        r.spublish("s", "x")
    assert q.get_message(timeout=1)["type"] == "ssubscribe"  # type: ignore[index]
    assert r.spublish("s", "y") == 1 and q.get_message(timeout=1)["data"] == b"y"  # type: ignore[index]


def test_execute_command_on_the_client() -> None:
    r = redis.Redis()
    p = r.pubsub()
    p.subscribe("c")
    p.ssubscribe("c")
    assert r.execute_command("PUBLISH", "c", 1) == 1
    assert r.execute_command("spublish", "c", b"m") == 1
    assert r.execute_command("PUBSUB NUMSUB", "c", "z") == [(b"c", 1), (b"z", 0)]
    assert r.execute_command("PUBSUB", "NUMSUB", "c") == [b"c", 1]
    assert r.execute_command(b"PUBSUB SHARDNUMSUB", "c") == [b"c", 1]   # bytes: no callback
    assert r.execute_command("pubsub shardchannels", "*") == [b"c"]
    assert r.execute_command("PUBSUB", "NUMPAT") == 0
    assert r.execute_command("PING") is True and r.execute_command("PING", "hi") is False
    assert r.execute_command(b"PING") == b"PONG"
    assert r.execute_command("PUBSUB", "HELP")[0].startswith(b"PUBSUB <subcommand>")
    with pytest.raises(redis.ResponseError, match="^wrong number of arguments for 'publish'"):
        r.execute_command("PUBLISH", "c")
    with pytest.raises(redis.ResponseError, match=r"^unknown subcommand 'Foo'\. Try PUBSUB"):
        r.execute_command("PUBSUB", "Foo")
    with pytest.raises(redis.ResponseError, match="'pubsub|numpat' command"):
        r.execute_command("PUBSUB NUMPAT", "x")
    with pytest.raises(redis.ResponseError, match="arguments for 'channels'"):
        r.execute_command("pubsub", "channels", "a", "b")
    with pytest.raises(NotImplementedError, match="'GET'"):
        r.execute_command("GET", "k")
    with pytest.raises(NotImplementedError, match="SUBSCRIBE.*pubsub()"):
        r.execute_command("SUBSCRIBE", "k")
    with pytest.raises(redis.DataError):
        r.execute_command("PUBLISH", "c", True)
    d = redis.Redis(decode_responses=True)
    assert d.execute_command("PUBSUB SHARDNUMSUB", "c") == [("c", 1)]
    assert d.execute_command("PUBSUB", "CHANNELS") == ["c"]


def test_execute_command_on_a_pubsub_leaves_the_bookkeeping_alone() -> None:
    r = redis.Redis()
    p = r.pubsub()
    assert p.execute_command("SUBSCRIBE", "a") is None
    assert not p.subscribed and p.channels == {} and p.get_message(timeout=0.05) is None
    p.execute_command("PUBLISH", "a", "x")      # RESP3: allowed while subscribed
    p.execute_command("PUBSUB NUMSUB", "a")     # a raw reply: no callback here
    p.execute_command("SSUBSCRIBE", "q", "q")
    p.execute_command("SUBSCRIBE")
    with pytest.raises(NotImplementedError, match="'GET'"):
        p.execute_command("GET", "a")
    replies = [p.parse_response(block=False, timeout=1) for _ in range(6)]
    assert replies == [[b"subscribe", b"a", 1], [b"message", b"a", b"x"], 1, [b"a", 1],
                       [b"ssubscribe", b"q", 1], [b"ssubscribe", b"q", 1]]
    with pytest.raises(redis.ResponseError, match="for 'subscribe' command"):
        p.parse_response(block=False, timeout=1)


def test_ping_replies_resp3_and_resp2() -> None:
    p = redis.Redis().pubsub()
    p.ping()
    assert p.get_message(timeout=0.05) is None        # the client is not subscribed
    assert p.parse_response(block=False, timeout=1) == b"PONG"
    p.subscribe("a")
    p.ping("hi")
    assert [m["type"] for m in msgs(p, 2)] == ["subscribe", "pong"]
    d = redis.Redis(decode_responses=True).pubsub()
    d.subscribe("a")
    d.ping()
    # redis-py indexes the decoded "PONG" as a list, as it does against Redis
    assert msgs(d, 2)[1] == {"type": "P", "pattern": None, "channel": "O", "data": "N"}
    two = redis.Redis(protocol=2).pubsub()
    two.ssubscribe("s")
    two.ping()
    two.execute_command("PUBLISH", "s", "x")
    assert [two.parse_response(block=False, timeout=1) for _ in range(2)] == [
        [b"ssubscribe", b"s", 1], [b"pong", b""]]
    with pytest.raises(redis.ResponseError, match="^Can't execute 'publish': only"):
        two.parse_response(block=False, timeout=1)


def test_health_checks() -> None:
    with pytest.raises(RuntimeError, match="pubsub connection not set"):
        redis.Redis().pubsub().check_health()
    r = redis.Redis(health_check_interval=0.05)
    p = r.pubsub()
    p.subscribe("a")
    assert p.get_message(timeout=1)["type"] == "subscribe"  # type: ignore[index]
    p.check_health()
    assert p.health_check_response_counter == 0      # a reply was just read
    time.sleep(0.1)
    t0 = time.monotonic()
    assert p.get_message(timeout=5) is None and time.monotonic() - t0 < 1  # pong, hidden
    assert p.health_check_response_counter == 0
    time.sleep(0.1)
    p.check_health()
    assert p.health_check_response_counter == 1
    r.publish("a", "x")
    assert p.get_message(timeout=1) is None           # the health check's reply
    assert p.get_message(timeout=1)["data"] == b"x"   # type: ignore[index]
    q = r.pubsub()
    q.execute_command("PING", "not a health check")
    time.sleep(0.1)
    q.check_health()
    with pytest.raises(redis.PubSubError, match="non health check response was cleaned"):
        q.execute_command("PING")
