"""Redis-style pub/sub: the registry's rules, the PubSub shell, threads, slow subscribers."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inbus._errors import PubSubError, SubscriberClosed
from inbus._pubsub import Registry
from inbus.pubsub import PubSub, PubSubHub, encode
from tests.reference import redis_glob_match


@pytest.fixture
def hub() -> Any:
    h = PubSubHub()
    yield h
    h.close()


def drain(p: PubSub) -> list[dict[str, Any]]:
    out = []
    while p._queue:  # get_message returns None for handled or ignored messages
        m = p.get_message(timeout=0)
        if m is not None:
            out.append(m)
    return out


def brief(msgs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(m["type"], m["pattern"], m["channel"], m["data"]) for m in msgs]


# -- confirmations and counts -------------------------------------------------------------

def test_subscribe_confirmations_running_counts(hub: PubSubHub) -> None:
    p = hub.pubsub()
    p.subscribe("a", "b", "a")  # the server confirms a repeated name twice
    p.psubscribe("x*")
    assert brief(drain(p)) == [("subscribe", None, b"a", 1), ("subscribe", None, b"b", 2),
                               ("subscribe", None, b"a", 2), ("psubscribe", None, b"x*", 3)]
    p.subscribe("a")  # subscribing twice still confirms
    p.unsubscribe("zz")  # unsubscribing what is not held still confirms
    assert brief(drain(p)) == [("subscribe", None, b"a", 3), ("unsubscribe", None, b"zz", 3)]


def test_unsubscribe_all(hub: PubSubHub) -> None:
    p = hub.pubsub()
    p.unsubscribe()
    p.punsubscribe()
    assert brief(drain(p)) == [("unsubscribe", None, None, 0), ("punsubscribe", None, None, 0)]
    p.subscribe("a", "b")
    p.psubscribe("p*")
    drain(p)
    p.unsubscribe()
    assert brief(drain(p)) == [("unsubscribe", None, b"a", 2), ("unsubscribe", None, b"b", 1)]
    p.unsubscribe()  # no channels left, one pattern: one confirmation, count 1
    assert brief(drain(p)) == [("unsubscribe", None, None, 1)]
    p.punsubscribe()
    assert brief(drain(p)) == [("punsubscribe", None, b"p*", 0)]
    assert not p.subscribed


def test_punsubscribe_is_literal(hub: PubSubHub) -> None:
    p = hub.pubsub()
    p.psubscribe("a*", "a?")
    p.punsubscribe("a[*]", "a*")
    assert brief(drain(p))[2:] == [("punsubscribe", None, b"a[*]", 2),
                                   ("punsubscribe", None, b"a*", 1)]
    assert p.patterns == {b"a?": None}
    assert hub.pubsub_numpat() == 1


def test_subscribe_needs_a_name(hub: PubSubHub) -> None:
    p = hub.pubsub()
    with pytest.raises(TypeError, match="subscribe"):
        p.subscribe()
    with pytest.raises(TypeError, match="psubscribe"):
        p.psubscribe()


# -- publish counting and introspection -----------------------------------------------------

def test_publish_counts_deliveries(hub: PubSubHub) -> None:
    a, b = hub.pubsub(), hub.pubsub()
    a.subscribe("news")
    a.psubscribe("n*", "*s", "x*")
    b.psubscribe("n*")
    assert hub.publish("news", "hi") == 4  # a: message + 2 pmessages; b: pmessage
    assert hub.publish("other", "hi") == 0
    drain(b)
    got = drain(a)[4:]
    assert [(m["type"], m["pattern"]) for m in got] == [
        ("message", None), ("pmessage", b"n*"), ("pmessage", b"*s")]
    assert got[1] == {"type": "pmessage", "pattern": b"n*", "channel": b"news", "data": b"hi"}


def test_patterns_with_the_same_literal(hub: PubSubHub) -> None:
    p = hub.pubsub(True)
    p.psubscribe("!", "[!]", "\\!", "a*", "[a]*", "*b", "*[b]")
    assert hub.publish("!", "x") == 3 and hub.publish("ab", "x") == 4
    p.punsubscribe("[!]", "a*", "*[b]")
    assert hub.publish("!", "x") == 2 and hub.publish("ab", "x") == 2
    p.close()
    assert hub.pubsub_numpat() == 0


def test_introspection(hub: PubSubHub) -> None:
    a, b = hub.pubsub(), hub.pubsub()
    a.subscribe("x", "", "y")
    b.subscribe("x")
    a.psubscribe("p*", "q*")
    b.psubscribe("p*")
    assert hub.pubsub_numpat() == 2  # distinct patterns
    assert hub.pubsub_numsub("x", "y", "p*", "nope") == [(b"x", 2), (b"y", 1), (b"p*", 0),
                                                         (b"nope", 0)]
    assert sorted(hub.pubsub_channels()) == [b"", b"x", b"y"]  # "" included
    assert sorted(hub.pubsub_channels("*")) == [b"x", b"y"]  # '*' does not match ""
    assert hub.pubsub_channels("[x]") == [b"x"]
    a.close()
    assert hub.pubsub_numsub("x", "y") == [(b"x", 1), (b"y", 0)]
    assert hub.pubsub_numpat() == 1


def test_empty_channel(hub: PubSubHub) -> None:
    p = hub.pubsub(ignore_subscribe_messages=True)
    p.subscribe("")
    p.psubscribe("*")
    assert hub.publish("", "x") == 1  # '*' does not match the empty channel
    assert hub.publish("a", "x") == 1


def test_encoding_and_decode(hub: PubSubHub) -> None:
    assert [encode(v) for v in ("é", 42, -1, 1.5, 1e20, b"\xff", bytearray(b"a"))] == [
        b"\xc3\xa9", b"42", b"-1", b"1.5", b"1e+20", b"\xff", b"a"]
    for bad in (True, None, object(), [1]):
        with pytest.raises(TypeError, match="must be bytes, str, int or float"):
            hub.publish("c", bad)
    raw, text = hub.pubsub(), hub.pubsub(decode=True)
    for p in (raw, text):
        p.psubscribe("c*")
    hub.publish("cé", 7)
    assert drain(raw)[-1] == {"type": "pmessage", "pattern": b"c*", "channel": "cé".encode(),
                              "data": b"7"}
    assert drain(text) == [{"type": "psubscribe", "pattern": None, "channel": "c*", "data": 1},
                           {"type": "pmessage", "pattern": "c*", "channel": "cé",
                            "data": "7"}]


def test_subscribers_get_their_own_dicts(hub: PubSubHub) -> None:
    a, b = hub.pubsub(), hub.pubsub()
    a.subscribe("c")
    b.subscribe("c")
    hub.publish("c", "x")
    ma, mb = drain(a)[-1], drain(b)[-1]
    assert ma == mb and ma is not mb


# -- reading --------------------------------------------------------------------------------

def test_handlers_take_messages(hub: PubSubHub) -> None:
    seen: list[Any] = []
    p = hub.pubsub()
    p.subscribe(a=seen.append)
    p.psubscribe(**{"b*": seen.append})
    p.subscribe("plain")
    hub.publish("a", "1")
    hub.publish("bb", "2")
    hub.publish("plain", "3")
    msgs = drain(p)
    assert [m["type"] for m in msgs] == ["subscribe", "psubscribe", "subscribe", "message"]
    assert [m["data"] for m in seen] == [b"1", b"2"]
    # the handler stays until the unsubscribe confirmation is read (as redis-py)
    hub.publish("a", "4")
    p.unsubscribe("a")
    hub.publish("a", "5")
    drain(p)
    assert [m["data"] for m in seen] == [b"1", b"2", b"4"]
    p.subscribe("a")
    hub.publish("a", "6")
    assert drain(p)[-1]["data"] == b"6"  # no handler any more


def test_ignore_subscribe_messages(hub: PubSubHub) -> None:
    p = hub.pubsub()
    p.subscribe("a")
    assert p.get_message(ignore_subscribe_messages=True) is None
    q = hub.pubsub(ignore_subscribe_messages=True)
    q.subscribe("a")
    hub.publish("a", "x")
    assert q.get_message() is None and q.get_message()["data"] == b"x"  # type: ignore[index]


def test_get_message_timeout_and_wakeup(hub: PubSubHub) -> None:
    p = hub.pubsub(True)
    p.subscribe("a")
    p.get_message()
    t0 = time.monotonic()
    assert p.get_message(timeout=0.05) is None
    assert 0.04 <= time.monotonic() - t0 < 1
    timer = threading.Timer(0.05, hub.publish, ("a", "late"))
    timer.start()
    msg = p.get_message(timeout=5)
    timer.join()
    assert msg is not None and msg["data"] == b"late"


def test_listen_ends_after_unsubscribe_all(hub: PubSubHub) -> None:
    p = hub.pubsub()
    p.subscribe("a")
    hub.publish("a", "x")
    p.unsubscribe()
    assert [m["type"] for m in p.listen()] == ["subscribe", "message", "unsubscribe"]


def test_listen_from_another_thread(hub: PubSubHub) -> None:
    p = hub.pubsub(True)
    p.subscribe("a")
    got: list[Any] = []

    def reader() -> None:
        for m in p.listen():
            got.append(m["data"])
            if len(got) == 3:
                p.unsubscribe()

    t = threading.Thread(target=reader)
    t.start()
    for i in range(3):
        hub.publish("a", i)
    t.join(5)
    assert not t.is_alive() and got == [b"0", b"1", b"2"]


def test_close_wakes_a_blocked_listener(hub: PubSubHub) -> None:
    p = hub.pubsub(True)
    p.subscribe("a")
    t = threading.Thread(target=lambda: list(p.listen()))
    t.start()
    time.sleep(0.02)
    p.close()
    t.join(5)
    assert not t.is_alive()


def test_run_in_thread(hub: PubSubHub) -> None:
    got: list[Any] = []
    done = threading.Event()

    def handler(m: dict[str, Any]) -> None:
        got.append(m["data"])
        if len(got) == 2:
            done.set()

    p = hub.pubsub()
    p.subscribe(a=handler)
    t = p.run_in_thread(sleep_time=0.01)
    hub.publish("a", "1")
    hub.publish("a", "2")
    assert done.wait(5)
    t.stop()
    t.join(5)
    assert not t.is_alive() and p.closed and got == [b"1", b"2"]


def test_run_in_thread_needs_handlers_and_reports_errors(hub: PubSubHub) -> None:
    p = hub.pubsub()
    p.subscribe("a")
    with pytest.raises(PubSubError, match="has no handler"):
        p.run_in_thread()
    errors: list[BaseException] = []

    def boom(m: Any) -> None:
        raise ValueError("boom")

    q = hub.pubsub()
    q.subscribe(b=boom)
    t = q.run_in_thread(exception_handler=lambda e, ps, th: errors.append(e))
    hub.publish("b", "x")
    deadline = time.monotonic() + 5
    while not errors and time.monotonic() < deadline:
        time.sleep(0.005)
    t.stop()
    t.join(5)
    assert isinstance(errors[0], ValueError)


def test_hub_close_joins_threads_and_closes_subscribers() -> None:
    hub = PubSubHub()
    p = hub.pubsub()
    p.subscribe(a=lambda m: None)
    t = p.run_in_thread()  # sleep_time 0: blocks until woken, no busy loop
    q = hub.pubsub()
    hub.close()
    assert not t.is_alive() and p.closed and q.closed
    with pytest.raises(PubSubError, match="closed"):
        hub.publish("a", "x")
    with pytest.raises(PubSubError):
        hub.pubsub()
    with pytest.raises(SubscriberClosed):
        q.get_message()
    hub.close()  # idempotent


# -- closing and slow subscribers -------------------------------------------------------

def test_close_drops_subscriptions_at_once(hub: PubSubHub) -> None:
    with hub.pubsub() as p:
        p.subscribe("a")
        p.psubscribe("a*")
        hub.publish("a", "x")
    assert hub.publish("a", "x") == 0 and hub.pubsub_numpat() == 0
    assert p.closed and not p.subscribed
    with pytest.raises(SubscriberClosed):
        p.get_message()
    with pytest.raises(SubscriberClosed):
        p.subscribe("b")
    p.close()


def test_overflow_disconnects_only_the_slow_subscriber(hub: PubSubHub) -> None:
    slow = hub.pubsub(True, max_pending=3)
    fast = hub.pubsub(True)
    slow.subscribe("a")
    fast.subscribe("a")
    drain(fast)
    drain(slow)
    assert [hub.publish("a", i) for i in range(4)] == [2, 2, 2, 2]  # the 4th still counts
    assert fast.get_message()["data"] == b"0"  # type: ignore[index]
    assert slow.closed and hub.pubsub_numsub("a") == [(b"a", 1)]
    with pytest.raises(SubscriberClosed, match="overflowed"):
        slow.get_message()
    with pytest.raises(SubscriberClosed):
        list(slow.listen())
    assert hub.publish("a", "x") == 1


def test_overflow_by_bytes(hub: PubSubHub) -> None:
    p = hub.pubsub(True, max_pending_bytes=10)
    p.subscribe("a")
    p.get_message()
    hub.publish("a", b"x" * 6)
    assert p.get_message()["data"] == b"x" * 6  # type: ignore[index]  # reading frees room
    hub.publish("a", b"x" * 6)
    hub.publish("a", b"x" * 4)
    assert not p.closed
    hub.publish("a", b"x")
    assert p.closed
    with pytest.raises(ValueError, match="max_pending"):
        hub.pubsub(max_pending=0)


def test_worker_reports_overflow_once(hub: PubSubHub) -> None:
    errors: list[BaseException] = []
    gate = threading.Event()
    p = hub.pubsub(max_pending=2)
    p.subscribe(a=lambda m: gate.wait(5))
    t = p.run_in_thread(exception_handler=lambda e, ps, th: errors.append(e))
    for i in range(10):
        hub.publish("a", i)
    gate.set()
    t.join(5)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], SubscriberClosed)


# -- threads ---------------------------------------------------------------------------------

def test_many_publishers_many_subscribers(hub: PubSubHub) -> None:
    subs = [hub.pubsub(True) for _ in range(4)]
    for s in subs:
        s.subscribe("c")
        s.psubscribe("c*")
        drain(s)
    per, producers = 500, 4
    counts: list[int] = []

    def produce(k: int) -> None:
        counts.extend(hub.publish("c", f"{k}:{i}") for i in range(per))

    received: dict[int, list[Any]] = {i: [] for i in range(len(subs))}

    def consume(i: int) -> None:
        while len(received[i]) < 2 * per * producers:
            m = subs[i].get_message(timeout=5)
            if m is None:
                return
            received[i].append((m["type"], m["data"]))

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(len(subs))]
    threads += [threading.Thread(target=produce, args=(k,)) for k in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads)
    assert counts == [8] * (per * producers)
    first = received[0]
    assert len(first) == 2 * per * producers
    for i in range(1, len(subs)):
        assert received[i] == first  # every subscriber sees the same order
    for k in range(producers):  # each producer's messages stay in order
        mine = [d for kind, d in first if kind == "message" and d.startswith(b"%d:" % k)]
        assert mine == [f"{k}:{i}".encode() for i in range(per)]


# -- the registry against a naive model -------------------------------------------------

NAMES = [b"", b"a", b"b", b"ab", b"a*", b"*", b"?", b"[ab]", b"a?", b"*b", b"[a]", b"\\a", b"[a]*",
         b"*[b]"]
ops = st.lists(st.tuples(st.sampled_from(["sub", "psub", "unsub", "punsub", "pub"]),
                         st.integers(0, 2), st.lists(st.sampled_from(NAMES), max_size=3)),
               max_size=40)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_registry_matches_model(steps: list[tuple[str, int, list[bytes]]]) -> None:
    reg: Registry[int] = Registry()
    chans: dict[int, set[bytes]] = {0: set(), 1: set(), 2: set()}
    pats: dict[int, set[bytes]] = {0: set(), 1: set(), 2: set()}
    for op, who, names in steps:
        if op == "pub":
            for ch in names:
                got = reg.publish(ch, b"d")
                want = sum(ch in chans[s] for s in chans) + sum(
                    redis_glob_match(p, ch) for s in pats for p in pats[s])
                assert len(got) == want
            continue
        held = chans[who] if op in ("sub", "unsub") else pats[who]
        fn = {"sub": reg.subscribe, "psub": reg.psubscribe, "unsub": reg.unsubscribe,
              "punsub": reg.punsubscribe}[op]
        if op in ("sub", "psub") and not names:
            continue  # the shell refuses an empty (p)subscribe
        before = len(held)
        confirmations = fn(who, names)
        assert len(confirmations) == (len(names) or max(before, 1))
        if op in ("sub", "psub"):
            held.update(names)
        elif names:
            held.difference_update(names)
        else:
            held.clear()
        assert confirmations[-1]["data"] == len(chans[who]) + len(pats[who])
        reg._check()
        assert reg.numpat() == len(set().union(*pats.values()))
        assert sorted(reg.channels()) == sorted(set().union(*chans.values()))


def test_through_bus_when_available() -> None:
    inbus = pytest.importorskip("inbus")
    bus_cls = getattr(inbus, "Bus", None)
    if bus_cls is None or not hasattr(bus_cls, "publish"):
        pytest.skip("inbus.Bus has no publish yet (the Bus integration is another file)")
    bus = bus_cls()
    try:
        p = bus.pubsub(ignore_subscribe_messages=True)
        p.subscribe("news")
        p.psubscribe("n*")
        assert bus.publish("news", b"hi") == 2
        assert bus.pubsub_numsub("news") == [(b"news", 1)] and bus.pubsub_numpat() == 1
        assert bus.pubsub_channels() == [b"news"]
        assert p.get_message() is None  # the subscribe confirmation
        assert p.get_message() is None  # the psubscribe confirmation
        assert p.get_message(timeout=1)["data"] == b"hi"
    finally:
        bus.close()
    assert p.closed
