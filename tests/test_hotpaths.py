"""The publish and delivery fast paths keep the general rules: the per-exchange route
cache follows every topology change, and the "solo consumer" shortcut of a queue follows
its consumers and features."""

from __future__ import annotations

import pytest

from inbus import BasicProperties, Bus, Channel, Message
from inbus.testing import ManualClock
from tests._support import checked_bus  # noqa: F401 - the bus fixture


def drain(bus: Bus, ch: Channel, *queues: str) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for q in queues:
        got = out.setdefault(q, [])
        while (m := ch.basic_get(q, auto_ack=True)) is not None:
            got.append(m.body)
    return out


def test_route_cache_follows_bind_unbind_and_queue_delete(bus: Bus) -> None:
    ch = bus.channel()
    ch.exchange_declare("f", "fanout")
    ch.exchange_declare("d", "direct")
    for q in ("a", "b"):
        ch.queue_declare(q)
    ch.queue_bind("a", "f")
    ch.queue_bind("a", "d", "k")
    ch.basic_publish("f", "", b"1")
    ch.basic_publish("d", "k", b"1")
    bus._check()  # the cached routes agree with a fresh routing
    ch.queue_bind("b", "f")
    ch.queue_bind("b", "d", "k")
    ch.basic_publish("f", "", b"2")
    ch.basic_publish("d", "k", b"2")
    bus._check()
    assert drain(bus, ch, "a", "b") == {"a": [b"1", b"1", b"2", b"2"], "b": [b"2", b"2"]}
    ch.queue_unbind("a", "f")
    ch.queue_unbind("a", "d", "k")
    ch.basic_publish("f", "", b"3")
    ch.basic_publish("d", "k", b"3")
    assert drain(bus, ch, "a", "b") == {"a": [], "b": [b"3", b"3"]}
    ch.queue_delete("b")
    ch.basic_publish("f", "", b"4")
    ch.basic_publish("d", "k", b"4")
    ch.queue_declare("b")  # same name, new queue: no bindings
    ch.basic_publish("f", "", b"5")
    assert drain(bus, ch, "a", "b") == {"a": [], "b": []}


def test_route_cache_follows_exchanges_and_alternates(bus: Bus) -> None:
    ch = bus.channel()
    ch.exchange_declare("src", "direct", arguments={"alternate-exchange": "ae"})
    ch.queue_declare("q")
    ch.basic_publish("src", "k", b"lost")  # the alternate exchange does not exist yet
    ch.exchange_declare("ae", "fanout")
    ch.queue_bind("q", "ae")
    ch.basic_publish("src", "k", b"alt")
    ch.exchange_declare("e2", "fanout")
    ch.exchange_bind("e2", "src", "k")  # now "k" is routed: no alternate any more
    ch.queue_declare("q2")
    ch.queue_bind("q2", "e2")
    ch.basic_publish("src", "k", b"e2e")
    assert drain(bus, ch, "q", "q2") == {"q": [b"alt"], "q2": [b"e2e"]}
    ch.exchange_delete("e2")
    ch.basic_publish("src", "k", b"alt again")
    assert drain(bus, ch, "q", "q2") == {"q": [b"alt again"], "q2": []}


def test_headers_routes_are_not_cached(bus: Bus) -> None:
    ch = bus.channel()
    ch.exchange_declare("h", "headers")
    ch.queue_declare("q")
    ch.queue_bind("q", "h", arguments={"x-match": "all", "a": 1})
    ch.basic_publish("h", "", b"no", BasicProperties(headers={"a": 2}))
    ch.basic_publish("h", "", b"yes", BasicProperties(headers={"a": 1}))
    ch.basic_publish("h", "", b"no")
    assert drain(bus, ch, "q") == {"q": [b"yes"]}


def test_solo_consumer_follows_consumers_and_ttl(bus: Bus) -> None:
    ch = bus.channel()
    ch.queue_declare("q")
    q = ch._vh.queues["q"]
    got: list[Message] = []
    t1 = ch.basic_consume("q", got.append, auto_ack=True)
    assert q.solo is not None
    t2 = ch.basic_consume("q", got.append, auto_ack=True)
    assert q.solo is None  # two consumers: round-robin decides
    ch.basic_cancel(t1)
    assert q.solo is not None and q.solo.tag == t2
    ch.basic_cancel(t2)
    assert q.solo is None
    ch.basic_qos(prefetch_count=1)
    ch.basic_consume("q", got.append)
    ch.basic_publish("", "q", b"1")
    ch.basic_publish("", "q", b"2")  # no credit left: queued, not handed over
    bus.run_until_idle()
    assert [m.body for m in got] == [b"1"]
    assert q.ready_count == 1
    got[0].ack()
    bus.run_until_idle()
    assert [m.body for m in got] == [b"1", b"2"]
    got[1].ack()
    bus._check()


def test_solo_consumer_off_once_a_message_can_expire() -> None:
    clock = ManualClock()
    with Bus(clock=clock) as bus:
        ch = bus.channel()
        ch.queue_declare("q")
        got: list[bytes] = []
        ch.basic_consume("q", lambda m: got.append(m.body), auto_ack=True)
        q = ch._vh.queues["q"]
        assert q.solo is not None
        ch.basic_publish("", "q", b"x", BasicProperties(expiration="1000"))
        ch.basic_publish("", "q", b"y")
        bus.run_until_idle()
        assert got == [b"x", b"y"]
        assert q.solo is None and q.has_ttl  # sticky, as has_ttl
        bus._check()


def test_statistics_count_fast_and_queued_deliveries(bus: Bus) -> None:
    ch = bus.channel()
    for q in ("auto", "manual"):
        ch.queue_declare(q)
    for q in ("auto", "manual"):
        ch.basic_publish("", q, b"queued")  # through the lanes: nobody consumes yet
    got: list[Message] = []
    ch.basic_consume("auto", got.append, auto_ack=True)
    ch.basic_consume("manual", got.append)
    for q in ("auto", "manual"):
        ch.basic_publish("", q, b"direct")  # the fast path: straight to the consumer
    bus.run_until_idle()
    for m in got:
        if m.routing_key == "manual":
            m.ack()
    ch.basic_publish("", "manual", b"unacked")
    bus.run_until_idle()
    s = bus.statistics().vhosts["/"].queues
    a, m = s["auto"], s["manual"]
    assert (a.published, a.delivered, a.acked, a.messages) == (2, 2, 2, 0)
    assert (m.published, m.delivered, m.acked, m.messages) == (3, 3, 2, 1)


def test_sink_notifies_each_waiter_once_and_none_is_left_asleep() -> None:
    import threading
    import time

    with Bus() as bus:
        conn = bus.connection()
        ch = conn.channel()
        ch.queue_declare("q")
        got: list[bytes] = []
        ch.basic_consume("q", lambda m: got.append(m.body), auto_ack=True)
        ran: list[int] = []

        def pump() -> None:
            ran.append(conn.process_data_events(time_limit=None))

        threads = [threading.Thread(target=pump) for _ in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5
        while conn._sink.waiting < 2 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert conn._sink.waiting == 2 and conn._sink.wanted
        for i in range(50):  # one notify wakes one pumper; the rest needs no notify
            ch.basic_publish("", "q", b"%d" % i)
        assert not conn._sink.wanted
        while len(ran) < 1 and time.monotonic() < deadline:
            time.sleep(0.001)
        ch.basic_publish("", "q", b"last")  # a pumper still waiting is notified in turn
        for t in threads:
            t.join(5)
        assert not any(t.is_alive() for t in threads)  # nobody left asleep
        conn.process_data_events(0)  # what came when nobody waited any more
        assert all(ran) and conn._sink.waiting == 0
        assert sorted(got) == sorted([b"%d" % i for i in range(50)] + [b"last"])


def test_acquire_barging_waits_for_the_holder_and_is_reentrant() -> None:
    import threading
    import time

    from inbus._dispatch import acquire_barging, new_lock

    lock = new_lock()
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with lock:
            held.set()
            release.wait(5)
            time.sleep(0.05)  # longer than the barging tries: the waiter ends up blocking

    t = threading.Thread(target=holder)
    t.start()
    assert held.wait(5)
    assert lock.acquire(False) is False
    release.set()
    t0 = time.monotonic()
    assert acquire_barging(lock) is True  # returns only once it holds the lock
    assert time.monotonic() - t0 >= 0.04
    assert acquire_barging(lock) is True  # re-entrant, like the bus lock itself
    lock.release()
    lock.release()
    t.join(5)
    assert lock.acquire(False) is True  # nothing left held
    lock.release()


def test_background_publisher_and_acking_workers_lose_nothing() -> None:
    import threading

    with Bus(background=True) as bus:
        pub = bus.channel()
        pub.queue_declare("q")
        got: list[bytes] = []
        done = threading.Event()
        n = 20_000

        def on_message(m: Message) -> None:
            m.ack()
            got.append(m.body)
            if len(got) == n:
                done.set()

        for _ in range(2):
            c = bus.channel()
            c.basic_qos(prefetch_count=50)
            c.basic_consume("q", on_message)
        for i in range(n):
            pub.basic_publish("", "q", b"%d" % i)
        assert done.wait(30), len(got)
        assert sorted(got) == sorted(b"%d" % i for i in range(n))
        pub.close()  # waits for nothing: every ack was taken before the last callback
        q = bus.statistics().vhosts["/"].queues["q"]
        assert q.messages_unacknowledged == 0 and q.messages_ready == 0
        assert q.acked == n and q.redelivered == 0


def test_cache_routes_false_routes_every_publish_afresh(bus: Bus) -> None:
    ch = bus.channel()
    ch.exchange_declare("t", "topic")
    ch.queue_declare("q")
    ch.queue_bind("q", "t", "a.*")
    x = bus._vhosts["/"].exchanges["t"]
    ch.basic_publish("t", "a.b", b"1")
    assert "a.b" in x.routes  # cached by default
    ch.queue_purge("q")
    x.cache_routes = False
    x.routes.clear()
    for _ in range(3):
        ch.basic_publish("t", "a.b", b"2")
    assert x.routes == {}
    assert drain(bus, ch, "q") == {"q": [b"2", b"2", b"2"]}


def test_direct_deliveries_keep_their_place_when_they_go_back(bus: Bus) -> None:
    """A message handed straight to a manual-ack consumer is kept unacked without its
    queue entry (made only if it goes back): nack, recover and close still return it
    to its original position, flagged redelivered."""
    ch = bus.channel()
    ch.queue_declare("q")
    got: list[Message] = []
    tag = ch.basic_consume("q", got.append)
    for b in (b"a", b"b", b"c"):
        ch.basic_publish("", "q", b)  # each goes straight to the consumer
    bus.run_until_idle()
    assert [m.body for m in got] == [b"a", b"b", b"c"]
    # (the unacked records are the delivered messages themselves, with no queue entry)
    assert list(ch._unacked.values()) == got
    assert all(e._qmsg is None for e in got)
    ch.basic_cancel(tag)
    got[1].nack(requeue=True)  # b back first...
    ch.basic_publish("", "q", b"d")  # ...no consumer now: d is queued behind it
    ch.basic_recover()  # a and c back to their places
    order = []
    while (m := ch.basic_get("q", auto_ack=True)) is not None:
        order.append((m.body, m.redelivered))
    assert order == [(b"a", True), (b"b", True), (b"c", True), (b"d", False)]


def test_cc_bcc_delivery_to_a_waiting_consumer_keeps_its_routing_keys(bus: Bus) -> None:
    """A CC / BCC message is not handed straight to a consumer (a direct delivery keeps
    no Content): rejected later, its dead letter is still routed with every key."""
    ch = bus.channel()
    ch.exchange_declare("src", "direct")
    ch.exchange_declare("dlx", "direct")
    ch.queue_declare("w", arguments={"x-dead-letter-exchange": "dlx"})
    ch.queue_bind("w", "src", "rk")
    for q, k in (("dead", "rk"), ("ccq", "cc1"), ("bccq", "bcc1")):
        ch.queue_declare(q)
        ch.queue_bind(q, "dlx", k)
    got: list[Message] = []
    ch.basic_consume("w", got.append)
    ch.basic_publish("src", "rk", b"m",
                     BasicProperties(headers={"CC": ["cc1"], "BCC": ["bcc1"]}))
    bus.run_until_idle()
    assert [m.body for m in got] == [b"m"] and "BCC" not in got[0].properties.headers
    got[0].nack(requeue=True)  # back to its place, then delivered again
    bus.run_until_idle()
    assert [m.redelivered for m in got] == [False, True]
    got[1].reject(requeue=False)
    for q in ("dead", "ccq", "bccq"):
        d = ch.basic_get(q, auto_ack=True)
        assert d is not None and d.routing_key == "rk", q
        assert d.properties.headers["x-death"][0]["routing-keys"] == ["rk", "cc1"]


def test_a_delivered_message_is_read_only_and_comes_back_as_it_was(bus: Bus) -> None:
    """The delivered Message is also the channel's unacked record of it: its attributes
    cannot be rebound (a callback that tried to change what it got would otherwise change
    what a nack puts back), and the redelivery is the message as published."""
    ch = bus.channel()
    ch.queue_declare("q")
    got: list[Message] = []
    refused: list[str] = []

    def on_message(m: Message) -> None:
        got.append(m)
        if not m.redelivered:
            for name, value in (("body", b"changed"), ("routing_key", "changed"),
                                ("exchange", "changed"), ("redelivered", True),
                                ("delivery_tag", 99),
                                ("properties", BasicProperties(app_id="changed"))):
                try:
                    setattr(m, name, value)
                except AttributeError as e:
                    assert "read-only" in str(e) and f"'{name}'" in str(e), e
                    refused.append(name)
            m.nack(requeue=True)
    ch.basic_consume("q", on_message)
    ch.basic_publish("", "q", b"original", BasicProperties(app_id="me"))
    bus.run_until_idle()
    assert refused == ["body", "routing_key", "exchange", "redelivered", "delivery_tag",
                       "properties"]
    again = got[-1]
    assert again.redelivered and again.body == b"original"
    assert (again.exchange, again.routing_key, again.properties.app_id) == ("", "q", "me")


def test_acks_freeing_credit_keep_round_robin_order(bus: Bus) -> None:
    """With a backlog, the consumer whose ack freed a credit is served at once (nobody
    else has credit). A consumer found without credit leaves the round robin and rejoins
    at the back when an ack gives it credit, so once everyone has credit again the next
    messages follow the order of those acks (the same steps on RabbitMQ 3.10 with pika
    give the same deliveries, the last three included)."""
    pub = bus.channel()
    pub.queue_declare("q")
    held: dict[str, list[Message]] = {}
    order: list[tuple[str, bytes]] = []
    for name in ("a", "b", "c"):
        ch = bus.channel()
        ch.basic_qos(prefetch_count=1)
        ch.basic_consume("q", lambda m, n=name: (order.append((n, m.body)),
                                                 held.setdefault(n, []).append(m)),
                         consumer_tag=name)
    for i in range(9):
        pub.basic_publish("", "q", b"%d" % i)
    bus.run_until_idle()
    assert order == [("a", b"0"), ("b", b"1"), ("c", b"2")]
    for n in ("c", "a", "b", "b", "c"):  # ack the oldest held message of n
        held[n].pop(0).ack()
        bus.run_until_idle()
    assert [n for n, _ in order[3:]] == ["c", "a", "b", "b", "c"]
    assert [b for _, b in order] == [b"%d" % i for i in range(8)]
    held["a"].pop(0).ack()  # a takes the last one: the round robin goes on after a
    bus.run_until_idle()
    assert order[-1] == ("a", b"8")
    for n in ("a", "b", "c"):
        while held[n]:
            held[n].pop(0).ack()  # nothing ready: every consumer has credit again
    for body in (b"x", b"y", b"z"):
        pub.basic_publish("", "q", body)
    bus.run_until_idle()
    # (the pump runs connections in creation order: compare who got what)
    assert sorted(order[-3:], key=lambda o: o[1]) == [("a", b"x"), ("b", b"y"), ("c", b"z")]
    bus._check()


def _priority_queue_consumer(bus: Bus) -> tuple[Channel, list[Message], str]:
    """A channel consuming "pq" (x-max-priority 10) with prefetch 1, collecting into a
    list: (channel, the list, the consumer tag)."""
    ch = bus.channel()
    ch.queue_declare("pq", arguments={"x-max-priority": 10})
    ch.basic_qos(prefetch_count=1)
    got: list[Message] = []
    tag = ch.basic_consume("pq", got.append)
    return ch, got, tag


def test_priority_queue_direct_deliveries_go_back_to_their_lane(bus: Bus) -> None:
    """With nothing ready, a priority queue hands a message straight to a consumer with
    credit (it would be the head anyway); requeued, it goes back to its priority's lane
    at its original position."""
    ch, got, tag = _priority_queue_consumer(bus)
    P = BasicProperties
    ch.basic_publish("", "pq", b"p1", P(priority=1))  # straight to the consumer
    for body, p in ((b"p9", 9), (b"p5", 5), (b"p1-later", 1)):
        ch.basic_publish("", "pq", body, P(priority=p))  # no credit: queued
    bus.run_until_idle()
    assert [m.body for m in got] == [b"p1"]
    ch.basic_cancel(tag)
    got[0].nack(requeue=True)
    order = []
    while (m := ch.basic_get("pq", auto_ack=True)) is not None:
        order.append((m.body, m.redelivered))
    assert order == [(b"p9", False), (b"p5", False), (b"p1", True), (b"p1-later", False)]
    s = bus.statistics().queue("pq")
    assert (s.published, s.delivered, s.acked) == (4, 5, 4)


def test_properties_changed_in_place_do_not_move_a_direct_delivery(bus: Bus) -> None:
    """A message handed straight to a consumer of a priority queue goes back to the lane
    of the priority it was published with, whatever the consumer did to the properties
    object in place (as a queued one does, below)."""
    ch, got, tag = _priority_queue_consumer(bus)
    P = BasicProperties
    ch.basic_publish("", "pq", b"d", P(priority=1))  # straight to the consumer
    ch.basic_publish("", "pq", b"q", P(priority=5))  # no credit: queued
    bus.run_until_idle()
    assert _raise_priority_and_requeue(ch, tag, got[0]) == [(b"q", False), (b"d", True)]


def _raise_priority_and_requeue(ch: Channel, tag: str, m: Message) -> list[tuple[bytes, bool]]:
    """Cancel ``tag``, set ``m``'s priority to 9 in place, nack it back to "pq", and
    return the queue's (body, redelivered) in delivery order, drained."""
    ch.basic_cancel(tag)
    m.properties.priority = 9
    m.nack(requeue=True)
    order = []
    while (g := ch.basic_get("pq", auto_ack=True)) is not None:
        order.append((g.body, g.redelivered))
    return order


def test_an_ack_hands_the_backlog_head_to_the_acker(bus: Bus) -> None:
    """basic_ack's hot path serves the acking consumer the head of a backlog: a requeued
    message first (flagged redelivered), then the tail; on a priority queue, the highest
    priority; a cancelled consumer's ack frees no credit for anyone else."""
    pub = bus.channel()
    pub.queue_declare("q")
    pub.queue_declare("pq", arguments={"x-max-priority": 5})
    got: dict[str, list[Message]] = {}
    chans = {}
    for name, queue in (("a", "q"), ("b", "q"), ("p", "pq")):
        ch = chans[name] = bus.channel()
        ch.basic_qos(prefetch_count=1)
        ch.basic_consume(queue, lambda m, n=name: got.setdefault(n, []).append(m),
                         consumer_tag=name)
    for i in range(4):
        pub.basic_publish("", "q", b"%d" % i)
    bus.run_until_idle()
    assert [m.body for m in got["a"] + got["b"]] == [b"0", b"1"]
    chans["b"].close()  # b's message goes back to the head; a has no credit
    bus.run_until_idle()
    seen = []
    for _ in range(3):
        got["a"][-1].ack()
        bus.run_until_idle()
        seen.append((got["a"][-1].body, got["a"][-1].redelivered))
    assert seen == [(b"1", True), (b"2", False), (b"3", False)]
    s = bus.statistics().queue("q")
    assert (s.published, s.delivered, s.acked, s.redelivered, s.messages) == (4, 5, 3, 1, 1)

    pub.basic_publish("", "pq", b"first")  # straight to p
    for body, prio in ((b"low", 1), (b"high", 5), (b"mid", 3)):
        pub.basic_publish("", "pq", body, BasicProperties(priority=prio))
    bus.run_until_idle()
    for _ in range(3):
        got["p"][-1].ack()
        bus.run_until_idle()
    assert [m.body for m in got["p"]] == [b"first", b"high", b"mid", b"low"]

    c = bus.channel()
    c.basic_qos(prefetch_count=1)
    c.basic_consume("q", lambda m: got.setdefault("c", []).append(m), consumer_tag="c")
    got["a"][-1].ack()  # a gets nothing (empty queue) and keeps one credit
    pub.basic_publish("", "q", b"4")  # to a (round robin: a, then c)
    pub.basic_publish("", "q", b"5")
    pub.basic_publish("", "q", b"6")  # queued: nobody has credit
    bus.run_until_idle()
    chans["a"].basic_cancel("a")  # a's message stays unacked, and ackable
    held = got["a"][-1]
    held.ack()  # a cancelled consumer: its freed credit is nobody's
    assert bus.statistics().queue("q").messages_ready == 1
    got["c"][-1].ack()
    bus.run_until_idle()
    assert [m.body for m in got["a"]][-1:] + [m.body for m in got["c"]] == [b"4", b"5", b"6"]
    bus._check()


def test_properties_changed_in_place_do_not_move_a_queued_message(bus: Bus) -> None:
    """A queued message's priority (and persistence) is decided as it enters the queue: a
    consumer changing the delivered properties in place does not move it to another
    lane when it goes back."""
    ch, got, tag = _priority_queue_consumer(bus)
    P = BasicProperties
    ch.basic_publish("", "pq", b"a", P(priority=0))  # straight to the consumer
    ch.basic_publish("", "pq", b"y", P(priority=1))  # queued
    bus.run_until_idle()
    got[0].ack()
    bus.run_until_idle()
    y = got[-1]
    assert y.body == b"y"
    ch.basic_publish("", "pq", b"z", P(priority=5))
    ch.basic_publish("", "pq", b"w", P(priority=3))
    assert _raise_priority_and_requeue(ch, tag, y) == [(b"z", False), (b"w", False),
                                                       (b"y", True)]


def test_fresh_backlog_messages_behave_as_queued_ones() -> None:
    """What the publisher appends to a plain queue's backlog is kept as a bare tuple
    (inbus._queue.Fresh): handed off by an ack, fetched by basic_get, put back by a nack,
    dead-lettered by a reject, counted by a purge, and passed over by expiry in front of
    a message that expires, all as a QMsg would be."""
    clock = ManualClock()
    bus = Bus(clock=clock)
    ch = bus.channel()
    ch.exchange_declare("dlx", "fanout")
    ch.queue_declare("dead")
    ch.queue_bind("dead", "dlx")
    ch.queue_declare("q", arguments={"x-dead-letter-exchange": "dlx"})
    got: list[Message] = []
    ch.basic_qos(prefetch_count=1)
    tag = ch.basic_consume("q", got.append)
    for body in (b"0", b"1", b"2"):
        ch.basic_publish("", "q", body)  # 0 to the consumer, 1 and 2 queued
    ch.basic_publish("", "q", b"ttl", BasicProperties(expiration="1000"))
    ch.basic_publish("", "q", b"3")
    bus.run_until_idle()
    tail = bus._vhosts["/"].queues["q"].lanes[0].tail
    assert [type(m).__name__ for m in tail] == ["tuple", "tuple", "QMsg", "tuple"]
    clock.advance(2)
    with bus._lock:
        bus._expire_due_locked()
    assert bus.statistics().queue("q").messages_ready == 4  # "ttl" is not the head yet
    got[-1].ack()  # hands "1" to the consumer
    bus.run_until_idle()
    assert got[-1].body == b"1" and not got[-1].redelivered
    got[-1].nack(requeue=True)  # back to the head, then handed out again by dispatch
    bus.run_until_idle()
    assert (got[-1].body, got[-1].redelivered) == (b"1", True)
    ch.basic_cancel(tag)
    got[-1].reject(requeue=False)  # dead-lettered
    m = ch.basic_get("q")  # "ttl" becomes the head, expired: dead-lettered at once
    assert m is not None and (m.body, m.redelivered, m.message_count) == (b"2", False, 1)
    m.nack(requeue=True)
    bus._check()
    m = ch.basic_get("q", auto_ack=True)
    assert m is not None and (m.body, m.redelivered) == (b"2", True)
    assert [x.body for x in bus._vhosts["/"].queues["q"].ready_messages()] == [b"3"]
    dead = []
    while (d := ch.basic_get("dead", auto_ack=True)) is not None:
        dead.append((d.body, d.properties.headers["x-death"][0]["reason"]))
    assert dead == [(b"1", "rejected"), (b"ttl", "expired")]
    ch.basic_publish("", "q", b"4")
    assert ch.queue_purge("q") == 2
    bus._check()
    bus.close()


@pytest.mark.parametrize("change, expected", [
    (None, {"A": "8", "B": "6", "C": "7"}),
    ("add D", {"A": "6", "B": "7", "C": "8", "D": "9"}),
    ("cancel B", {"A": "7", "B": "", "C": "6"}),
    ("cancel C", {"A": "7", "B": "6", "C": ""}),
    ("cancel A", {"A": "", "B": "7", "C": "6"}),
    ("C acks", {"A": "6", "B": "7", "C": "8"}),
])
def test_round_robin_continues_after_the_consumer_an_ack_handed_off_to(
        change: str | None, expected: dict[str, str]) -> None:
    # An ack that frees the only credit takes the queue's head at once (Queue.served
    # remembers whose turn passed); consumers found without credit leave the round robin
    # and rejoin at its back when an ack gives them credit; a new consumer joins at the
    # back. The same steps on RabbitMQ 3.10 with pika give the same deliveries in all six
    # cases (the version before Consumer.blocked differed in all six).
    bus = Bus()
    ch = bus.channel()
    ch.queue_declare("q")
    chans: dict[str, Channel] = {}
    got: dict[str, list[Message]] = {}

    def consume(name: str) -> None:
        chans[name] = c = bus.channel()
        c.basic_qos(prefetch_count=1)
        got[name] = []
        c.basic_consume("q", got[name].append, consumer_tag=name)

    for name in "ABC":
        consume(name)
    for i in range(6):
        ch.basic_publish("", "q", str(i).encode())
    bus.run_until_idle()
    got["B"].pop(0).ack()  # B takes the head (3) at once
    bus.run_until_idle()
    bus._check()
    if change == "add D":
        consume("D")
    elif change == "C acks":
        got["C"].pop(0).ack()
    elif change is not None:
        name = change.split()[1]
        chans[name].basic_cancel(name)
    bus.run_until_idle()
    bus._check()
    for _ in range(3):  # everyone acks until the backlog is gone
        for ms in got.values():
            while ms:
                ms.pop(0).ack()
        bus.run_until_idle()
    for i in range(6, 12):  # straight to the consumers, in round-robin order
        ch.basic_publish("", "q", str(i).encode())
    bus.run_until_idle()
    assert {n: "".join(m.body.decode() for m in ms) for n, ms in got.items()} == expected
    bus._check()
    bus.close()
