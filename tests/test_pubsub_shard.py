"""Sharded pub/sub (Redis 7 SSUBSCRIBE / SPUBLISH) on the native API and in the registry.

What a non-cluster Redis 7.0 does (asked of 7.0.15 through redis-py 8.1; the
differential scenarios in tests/diff/test_redis_diff.py keep asking): shard channels are
a namespace of their own, and the confirmation counts of the two kinds are separate."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inbus import Bus, SubscriberClosed
from inbus._errors import PubSubError
from inbus._pubsub import Registry
from inbus.pubsub import PubSubHub
from tests.reference import redis_glob_match
from tests.test_pubsub import brief, drain


@pytest.fixture
def hub() -> Any:
    h = PubSubHub()
    yield h
    h.close()


def test_shard_confirmations_count_shard_channels_only(hub: PubSubHub) -> None:
    p = hub.pubsub()
    p.subscribe("a", "b")
    p.psubscribe("x*")
    p.ssubscribe("a", "s")
    p.ssubscribe("s")        # held already: confirmed again, count unchanged
    assert brief(drain(p)) == [
        ("subscribe", None, b"a", 1), ("subscribe", None, b"b", 2),
        ("psubscribe", None, b"x*", 3),
        ("ssubscribe", None, b"a", 1), ("ssubscribe", None, b"s", 2),
        ("ssubscribe", None, b"s", 2)]
    p.sunsubscribe("a", "zz")
    p.unsubscribe()
    p.punsubscribe()
    assert brief(drain(p)) == [
        ("sunsubscribe", None, b"a", 1), ("sunsubscribe", None, b"zz", 1),
        ("unsubscribe", None, b"a", 2), ("unsubscribe", None, b"b", 1),
        ("punsubscribe", None, b"x*", 0)]
    assert p.subscribed and p.shard_channels == {b"s": None}   # a shard channel is left
    p.sunsubscribe()
    p.sunsubscribe()         # none held: one confirmation with channel None
    assert brief(drain(p)) == [("sunsubscribe", None, b"s", 0),
                               ("sunsubscribe", None, None, 0)]
    assert not p.subscribed


def test_spublish_and_publish_do_not_cross(hub: PubSubHub) -> None:
    p = hub.pubsub(ignore_subscribe_messages=True)
    p.subscribe("a")
    p.psubscribe("*")
    q = hub.pubsub(ignore_subscribe_messages=True)
    q.ssubscribe("a", "s")
    assert hub.spublish("a", "shard") == 1       # not p's channel nor its pattern
    assert hub.publish("a", "classic") == 2      # p's channel and pattern, not q
    assert hub.publish("s", "classic") == 1      # only p's pattern
    assert hub.spublish("none", "x") == 0
    assert [m for m in (p.get_message() for _ in range(5)) if m] == [
        {"type": "message", "pattern": None, "channel": b"a", "data": b"classic"},
        {"type": "pmessage", "pattern": b"*", "channel": b"a", "data": b"classic"},
        {"type": "pmessage", "pattern": b"*", "channel": b"s", "data": b"classic"}]
    assert [m for m in (q.get_sharded_message() for _ in range(4)) if m] == [
        {"type": "smessage", "pattern": None, "channel": b"a", "data": b"shard"}]


def test_introspection_sees_each_kind_apart(hub: PubSubHub) -> None:
    p, q = hub.pubsub(), hub.pubsub()
    p.subscribe("c")
    p.ssubscribe("s1", "c")
    q.ssubscribe("s1", "s2")
    assert sorted(hub.pubsub_shardchannels()) == [b"c", b"s1", b"s2"]
    assert hub.pubsub_shardchannels("s?") == [b"s1", b"s2"]
    assert hub.pubsub_channels() == [b"c"]
    assert hub.pubsub_shardnumsub("s1", b"s2", "c", "none") == [
        (b"s1", 2), (b"s2", 1), (b"c", 1), (b"none", 0)]
    assert hub.pubsub_shardnumsub(["s1", "s2"]) == [(b"s1", 2), (b"s2", 1)]
    assert hub.pubsub_numsub("s1", "c") == [(b"s1", 0), (b"c", 1)]
    assert hub.pubsub_shardnumsub() == []
    p.close()
    assert hub.pubsub_shardnumsub("s1", "c") == [(b"s1", 1), (b"c", 0)]


def test_shard_handlers_decode_and_pending_unsubscribe(hub: PubSubHub) -> None:
    seen: list[Any] = []
    p = hub.pubsub(decode=True)
    p.ssubscribe("plain", h=seen.append)
    hub.spublish("h", "é")
    hub.spublish("plain", 1)
    p.sunsubscribe("h")
    hub.spublish("h", "late")                    # not held any more: nobody gets it
    got = [m for m in (p.get_message() for _ in range(5)) if m]
    assert [(m["type"], m["channel"], m["data"]) for m in got] == [
        ("ssubscribe", "plain", 1), ("ssubscribe", "h", 2), ("smessage", "plain", "1"),
        ("sunsubscribe", "h", 1)]
    assert seen == [{"type": "smessage", "pattern": None, "channel": "h", "data": "é"}]
    assert p.shard_channels == {b"plain": None}
    with pytest.raises(TypeError, match="at least one name"):
        p.ssubscribe()


def test_run_in_thread_needs_shard_handlers(hub: PubSubHub) -> None:
    p = hub.pubsub()
    p.ssubscribe("nohandler")
    with pytest.raises(PubSubError, match="Shard Channel: b'nohandler' has no handler"):
        p.run_in_thread()
    got = threading.Event()
    q = hub.pubsub()
    q.ssubscribe(s=lambda m: got.set())
    t = q.run_in_thread(sleep_time=0.01)
    assert hub.spublish("s", "x") == 1 and got.wait(5)
    t.stop()
    t.join(5)
    assert not t.is_alive() and hub.pubsub_shardnumsub("s") == [(b"s", 0)]


def test_listen_while_only_shard_channels_are_held(hub: PubSubHub) -> None:
    p = hub.pubsub()
    p.ssubscribe("l")
    hub.spublish("l", "1")
    p.sunsubscribe()
    assert [(m["type"], m["data"]) for m in p.listen()] == [
        ("ssubscribe", 1), ("smessage", b"1"), ("sunsubscribe", 0)]


def test_a_slow_shard_subscriber_is_disconnected(hub: PubSubHub) -> None:
    p = hub.pubsub(max_pending=3)
    p.ssubscribe("s")
    # the confirmation + 2 fill it; the 3rd overflows (still counted, as Redis), then gone
    assert [hub.spublish("s", i) for i in range(4)] == [1, 1, 1, 0]
    with pytest.raises(SubscriberClosed, match="overflowed"):
        p.get_message()
    assert hub.pubsub_shardnumsub("s") == [(b"s", 0)]
    hub.close()
    with pytest.raises(PubSubError, match="closed bus"):
        hub.spublish("s", "x")


def test_through_the_bus() -> None:
    with Bus() as bus:
        p = bus.pubsub(ignore_subscribe_messages=True)
        p.ssubscribe("orders")
        assert bus.spublish("orders", b"o-1") == 1 and bus.publish("orders", b"o-2") == 0
        assert bus.pubsub_shardchannels() == [b"orders"]
        assert bus.pubsub_shardnumsub("orders") == [(b"orders", 1)]
        assert p.get_message() is None and p.get_message()["data"] == b"o-1"  # type: ignore[index]


# -- the registry, shard channels included, against a naive model ------------------------

NAMES = [b"", b"a", b"b", b"a*", b"*", b"?", b"[ab]"]
KINDS = ["sub", "psub", "ssub", "unsub", "punsub", "sunsub", "pub", "spub"]
ops = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 2),
                         st.lists(st.sampled_from(NAMES), max_size=3)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_registry_with_shards_matches_model(steps: list[tuple[str, int, list[bytes]]]) -> None:
    reg: Registry[int] = Registry()
    held: dict[str, dict[int, set[bytes]]] = {
        k: {0: set(), 1: set(), 2: set()} for k in ("sub", "psub", "ssub")}
    for op, who, names in steps:
        if op in ("pub", "spub"):
            for ch in names:
                got = (reg.publish if op == "pub" else reg.spublish)(ch, b"d")
                if op == "pub":
                    want = sum(ch in held["sub"][s] for s in range(3)) + sum(
                        redis_glob_match(p, ch) for s in range(3) for p in held["psub"][s])
                else:
                    want = sum(ch in held["ssub"][s] for s in range(3))
                    assert all(m["type"] == "smessage" for _, m in got)
                assert len(got) == want
            continue
        kind = op.replace("un", "") if "un" in op else op
        if not op.endswith("unsub") and not names:
            continue  # the shell refuses an empty (p|s)subscribe
        mine = held[kind][who]
        before = len(mine)
        confirmations = getattr(reg, op.replace("sub", "subscribe"))(who, names)
        assert len(confirmations) == (len(names) or max(before, 1))
        if "un" not in op:
            mine.update(names)
        elif names:
            mine.difference_update(names)
        else:
            mine.clear()
        shard = len(held["ssub"][who])
        classic = len(held["sub"][who]) + len(held["psub"][who])
        assert confirmations[-1]["data"] == (shard if kind == "ssub" else classic)
        assert reg.count(who) == shard + classic
        reg._check()
        assert sorted(reg.shardchannels()) == sorted(set().union(*held["ssub"].values()))
        assert sorted(reg.channels()) == sorted(set().union(*held["sub"].values()))
