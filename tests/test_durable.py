"""Bus-level durability: what comes back after close/reopen, as RabbitMQ keeps it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from inbus import BasicProperties, Bus, PersistenceError, UnroutableError

P = BasicProperties(delivery_mode=2)


def drain(ch, queue: str) -> list[tuple[bytes, bool]]:
    out = []
    while (m := ch.basic_get(queue, auto_ack=True)) is not None:
        out.append((m.body, m.redelivered))
    return out


def test_durable_entities_and_persistent_messages_come_back(tmp_path: Path) -> None:
    db = str(tmp_path / "app.db")
    with Bus(db) as bus:
        ch = bus.channel()
        ch.exchange_declare("dx", "topic", durable=True)
        ch.exchange_declare("tx", "fanout")  # transient
        ch.queue_declare("dq", durable=True, arguments={"x-max-length": 100})
        ch.queue_declare("tq")  # transient queue
        ch.queue_bind("dq", "dx", "a.#")
        ch.queue_bind("dq", "tx")  # durable queue, transient exchange: memory only
        ch.queue_bind("tq", "dx", "a.#")
        for i in range(3):
            ch.basic_publish("dx", "a.b", f"p{i}", P)
        ch.basic_publish("dx", "a.b", "transient")  # transient message in a durable queue
    with Bus(db) as bus:
        ch = bus.channel()
        st = bus.statistics()
        assert "dx" in st.vhosts["/"].exchanges
        assert "tx" not in st.vhosts["/"].exchanges
        assert "dq" in st.vhosts["/"].queues and "tq" not in st.vhosts["/"].queues
        assert st.queue("dq").arguments == {"x-max-length": 100}
        assert st.exchange("dx").bindings == 1
        assert drain(ch, "dq") == [(b"p0", False), (b"p1", False), (b"p2", False)]
        ch.basic_publish("dx", "a.c", "again")  # the binding was rebuilt
        assert drain(ch, "dq") == [(b"again", False)]


def test_unacked_come_back_redelivered_and_acked_never(tmp_path: Path) -> None:
    db = str(tmp_path / "app.db")
    with Bus(db) as bus:
        ch = bus.channel()
        ch.queue_declare("q", durable=True)
        for i in range(4):
            ch.basic_publish("", "q", f"m{i}", P)
        a = ch.basic_get("q")
        b = ch.basic_get("q")
        assert a is not None and b is not None
        a.ack()  # m0 acked; m1 delivered, not acked
    with Bus(db) as bus:
        ch = bus.channel()
        assert drain(ch, "q") == [(b"m1", True), (b"m2", False), (b"m3", False)]
    with Bus(db) as bus:  # consumed with auto_ack: gone for good
        assert drain(bus.channel(), "q") == []


def test_order_preserved_after_requeue(tmp_path: Path) -> None:
    db = str(tmp_path / "app.db")
    with Bus(db) as bus:
        ch = bus.channel()
        ch.queue_declare("q", durable=True)
        for i in range(5):
            ch.basic_publish("", "q", f"m{i}", P)
        got = [ch.basic_get("q") for _ in range(3)]
        assert all(g is not None for g in got)
        ch.basic_nack(got[1].delivery_tag, requeue=True)  # type: ignore[union-attr]
    with Bus(db) as bus:
        bodies = [b for b, _ in drain(bus.channel(), "q")]
        assert bodies == [b"m0", b"m1", b"m2", b"m3", b"m4"]


def test_deletes_and_vhosts_persist(tmp_path: Path) -> None:
    db = str(tmp_path / "app.db")
    with Bus(db) as bus:
        bus.vhost_declare("v2")
        ch = bus.channel("v2")
        ch.queue_declare("keep", durable=True)
        ch.queue_declare("gone", durable=True)
        ch.basic_publish("", "gone", "x", P)
        ch.queue_delete("gone")
        ch.exchange_declare("x", "direct", durable=True)
        ch.queue_bind("keep", "x", "k")
        ch.queue_unbind("keep", "x", "k")
    with Bus(db) as bus:
        assert "v2" in bus.vhosts
        st = bus.statistics().vhosts["v2"]
        assert set(st.queues) == {"keep"}
        assert st.exchanges["x"].bindings == 0


def test_exclusive_durable_queue_does_not_come_back(tmp_path: Path) -> None:
    db = str(tmp_path / "app.db")
    with Bus(db) as bus:
        ch = bus.channel()
        ch.queue_declare("ex", durable=True, exclusive=True)
        ch.basic_publish("", "ex", "x", P)
    with Bus(db) as bus:
        assert "ex" not in bus.statistics().vhosts["/"].queues


def test_confirmed_persistent_publish_is_committed(tmp_path: Path) -> None:
    db = str(tmp_path / "app.db")
    bus = Bus(db)
    ch = bus.channel()
    ch.queue_declare("q", durable=True)
    ch.confirm_delivery()
    for i in range(20):
        ch.basic_publish("", "q", f"confirmed {i}", P)
        # The confirm returned, so nothing submitted so far may still be pending.
        stats = bus._committer.statistics()
        assert stats.pending == 0 and stats.batches >= 1
    bus.close()
    from inbus._sqlite import read_summary
    assert read_summary(db).ready[("/", "q")][0] == 20


def test_blocking_confirms_leave_no_announced_flusher_behind(tmp_path: Path) -> None:
    from inbus import ChannelClosed, NotFound
    with Bus(str(tmp_path / "app.db")) as bus:
        ch = bus.channel()
        ch.queue_declare("q", durable=True)
        ch.confirm_delivery()
        ch.basic_publish("", "q", "persistent", P)  # committed by this thread
        ch.basic_publish("", "q", "transient")  # nothing to commit: announcement withdrawn
        with pytest.raises(UnroutableError):
            ch.basic_publish("", "nowhere", "x", P, mandatory=True)
        with pytest.raises(NotFound):
            ch.basic_publish("no-such-exchange", "q", "x", P)
        with pytest.raises(ChannelClosed):
            ch.basic_publish("", "q", "x", P)
        assert bus._committer._flushers == 0
        # ...so a plain persistent publish is committed by the writer, unprompted.
        plain = bus.channel()
        plain.basic_publish("", "q", "later", P)
        assert bus.flush(timeout=5)
        assert bus.channel().queue_declare("q", passive=True).message_count == 3


def test_async_confirms_fire_after_commit(tmp_path: Path) -> None:
    db = str(tmp_path / "app.db")
    with Bus(db) as bus:
        ch = bus.channel()
        ch.queue_declare("q", durable=True)
        acks: list[tuple[int, bool]] = []
        ch.confirm_delivery(lambda seq, ok: acks.append((seq, ok)))
        for i in range(50):
            ch.basic_publish("", "q", str(i), P)
        bus._committer.flush()
        assert acks == [(i + 1, True) for i in range(50)]


def test_two_buses_on_one_file_refused(tmp_path: Path) -> None:
    db = str(tmp_path / "app.db")
    with Bus(db):
        with pytest.raises(PersistenceError) as ei:
            Bus(db)
        assert db in str(ei.value) or "app.db" in str(ei.value)


def test_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(PersistenceError) as ei:
        Bus(str(bad))
    assert "bad.db" in str(ei.value)


def test_new_file_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    with Bus(str(db)):
        pass
    mode = stat.S_IMODE(os.stat(db).st_mode)
    assert mode & 0o077 == 0, oct(mode)


def test_ttl_survives_restart_on_wall_clock(tmp_path: Path) -> None:
    from inbus.testing import ManualClock
    db = str(tmp_path / "app.db")
    clock = ManualClock()
    with Bus(db, clock=clock) as bus:
        ch = bus.channel()
        ch.queue_declare("q", durable=True, arguments={"x-message-ttl": 10_000})
        ch.basic_publish("", "q", "x", P)
    clock2 = ManualClock(start_time=clock.time() + 5)  # 5 s later, new process
    with Bus(db, clock=clock2) as bus:
        ch = bus.channel()
        assert ch.queue_declare("q", passive=True).message_count == 1
        clock2.advance(6)
        assert ch.queue_declare("q", passive=True).message_count == 0


def test_a_publisher_faster_than_the_disk_is_held_back(tmp_path: Path) -> None:
    import time

    with Bus(str(tmp_path / "app.db")) as bus:
        ch = bus.channel()
        ch.queue_declare("q", durable=True)
        committer = bus._committer
        committer.max_pending = 20
        store_apply = committer.store.apply

        def slow_apply(ops: object) -> None:
            time.sleep(0.002)
            store_apply(ops)

        committer.store.apply = slow_apply
        most = 0
        for i in range(300):
            ch.basic_publish("", "q", str(i), P)  # no confirms: nothing waits for the disk
            most = max(most, committer.pending_ops)
        assert most <= 21, most  # without backpressure the backlog grows to hundreds
        assert bus.flush(10)
        assert ch.queue_declare("q", passive=True).message_count == 300


def test_closing_the_bus_from_a_confirm_callback_loses_nothing(tmp_path: Path) -> None:
    import threading

    db = str(tmp_path / "app.db")
    bus = Bus(db)
    ch = bus.channel()
    ch.queue_declare("q", durable=True)
    in_callback = threading.Event()
    rest_published = threading.Event()
    closed = threading.Event()
    confirmed: list[int] = []

    def on_confirm(seq: int, ok: bool) -> None:
        confirmed.append(seq)
        if seq == 1:  # on the committer's own thread, with messages 2..10 still queued
            in_callback.set()
            assert rest_published.wait(10)
            bus.close()
            closed.set()

    ch.confirm_delivery(on_confirm)
    ch.basic_publish("", "q", "0", P)
    assert in_callback.wait(10)  # the writer is busy: what follows stays queued
    for i in range(1, 10):
        ch.basic_publish("", "q", str(i), P)
    assert bus._committer.statistics().pending >= 9
    rest_published.set()
    assert closed.wait(10)
    thread = bus._committer._thread
    thread.join(10)
    assert not thread.is_alive()  # it drained its queue, closed the store and ended
    with Bus(db) as again:  # everything queued before the close was committed
        assert again.channel().queue_declare("q", passive=True).message_count == 10
    assert confirmed == list(range(1, 11))


@pytest.mark.timeout(60)
def test_mixed_confirm_styles_from_many_threads_lose_nothing(tmp_path: Path) -> None:
    """Blocking confirms (the leader/gatherer path), confirm callbacks (the writer path)
    and plain persistent publishes race on one bus: every confirmed message is in the
    file after reopen, in publish order per queue, and nothing waits on afterwards."""
    import random
    import threading
    db = str(tmp_path / "app.db")
    n = 150
    confirmed: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    bus = Bus(db, synchronous="NORMAL")
    setup = bus.channel()
    styles = ["blocking"] * 4 + ["callback"] * 2 + ["plain"]
    for i in range(len(styles)):
        setup.queue_declare(f"q{i}", durable=True)

    def publisher(i: int, style: str) -> None:
        rnd = random.Random(i)
        q = f"q{i}"
        got = confirmed[q] = []
        try:
            ch = bus.channel()
            if style == "blocking":
                ch.confirm_delivery()
            elif style == "callback":
                ch.confirm_delivery(lambda seq, ok: got.append(seq - 1) if ok else None)
            for k in range(n):
                ch.basic_publish("", q, str(k), P)
                if style == "blocking":
                    got.append(k)  # returned: committed
                if rnd.random() < 0.05:
                    threading.Event().wait(rnd.random() / 1000)  # publishers come and go
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=publisher, args=(i, s)) for i, s in enumerate(styles)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(50)
    assert not errors and not any(t.is_alive() for t in ts)
    assert bus.flush(timeout=10)
    committer = bus._committer
    assert committer._flushers == 0 and committer._gatherer is None
    assert committer.statistics().pending == 0
    bus.close()
    with Bus(db) as bus:
        ch = bus.channel()
        for i, style in enumerate(styles):
            q = f"q{i}"
            bodies = [int(b) for b, _ in drain(ch, q)]
            assert bodies == list(range(n)), (q, style)  # all of them, in order
            if style != "plain":
                assert sorted(confirmed[q]) == list(range(n)), (q, style)


def test_an_x_delivery_limit_count_survives_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "app.db")
    args = {"x-delivery-limit": 2, "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "poison"}
    with Bus(db) as bus:
        ch = bus.channel()
        ch.queue_declare("poison", durable=True)
        ch.queue_declare("work", durable=True, arguments=args)
        ch.basic_publish("", "work", "bad", P)
        for _ in range(2):  # returned twice: at the limit, not over it
            m = ch.basic_get("work")
            assert m is not None
            m.nack(requeue=True)
    with Bus(db) as bus:
        ch = bus.channel()
        m = ch.basic_get("work")
        assert m is not None and m.body == b"bad" and m.redelivered
        m.nack(requeue=True)  # the third return: over the limit, dead-lettered
        assert ch.basic_get("work") is None
        dead = ch.basic_get("poison", auto_ack=True)
        assert dead is not None and dead.body == b"bad"
        assert dead.properties.headers["x-death"][0]["reason"] == "delivery_limit"


def test_bcc_routing_keys_of_a_stored_message_survive_a_restart(tmp_path: Path) -> None:
    """A dead-lettered message is routed with every key it was published with, BCC ones
    included (the BCC header itself is stripped at publish), after a restart too."""
    db = str(tmp_path / "app.db")
    with Bus(db) as bus:
        ch = bus.channel()
        ch.exchange_declare("in", "direct", durable=True)
        ch.exchange_declare("dlx", "direct", durable=True)
        ch.queue_declare("q", durable=True, arguments={"x-dead-letter-exchange": "dlx"})
        ch.queue_bind("q", "in", "a")
        ch.queue_bind("q", "in", "b")
        for name in ("dead-a", "dead-b"):
            ch.queue_declare(name, durable=True)
            ch.queue_bind(name, "dlx", name[-1])
        ch.basic_publish("in", "a", "m", BasicProperties(delivery_mode=2,
                                                         headers={"BCC": ["b"]}))
        # (routed to q once, though both keys match: a queue gets one copy)
    with Bus(db) as bus:
        ch = bus.channel()
        m = ch.basic_get("q")
        assert m is not None and "BCC" not in (m.properties.headers or {})
        m.reject(requeue=False)
        assert drain(ch, "dead-a") == drain(ch, "dead-b") == [(b"m", False)]


def test_a_server_named_durable_queue_cannot_be_redeclared_by_name(tmp_path: Path) -> None:
    """RabbitMQ refuses every active declare of an amq.* queue name (403), an existing
    server-named queue's included: an application that stored the generated name gets
    the 403 after a restart too; a passive declare finds the queue."""
    from inbus import AccessRefused
    db = str(tmp_path / "app.db")
    with Bus(db) as bus:
        ch = bus.channel()
        name = ch.queue_declare("", durable=True).queue
        ch.basic_publish("", name, "kept", P)
        with pytest.raises(AccessRefused, match="reserved prefix"):
            ch.queue_declare(name, durable=True)
    with Bus(db) as bus:
        ch = bus.channel()
        with pytest.raises(AccessRefused) as err:
            ch.queue_declare(name, durable=True)
        assert err.value.reply_text == (
            f"ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'")
        ch = bus.channel()
        assert ch.queue_declare(name, passive=True).message_count == 1
        assert drain(ch, name) == [(b"kept", False)]


@pytest.mark.parametrize("overflow", ["drop-head", "reject-publish", "reject-publish-dlx"])
def test_a_queue_over_its_max_length_after_a_restart_drops_from_the_head(
        tmp_path: Path, overflow: str) -> None:
    """Unacked messages come back as ready, so a recovered queue may hold more than its
    x-max-length. RabbitMQ 3.10 trims it when the queue starts, from the head (dead-
    lettering, reason maxlen, with a DLX), whatever the x-overflow; a requeue without a
    restart trims drop-head queues only."""
    db = str(tmp_path / "app.db")
    with Bus(db) as bus:
        ch = bus.channel()
        ch.exchange_declare("dlx", "fanout", durable=True)
        ch.queue_declare("dlq", durable=True)
        ch.queue_bind("dlq", "dlx")
        ch.queue_declare("q", durable=True, arguments={
            "x-max-length": 2, "x-overflow": overflow, "x-dead-letter-exchange": "dlx"})
        ch.queue_declare("b", durable=True, arguments={
            "x-max-length-bytes": 4, "x-overflow": overflow})
        for q in ("q", "b"):
            for i in range(2):
                ch.basic_publish("", q, f"m{i}", P)
            assert ch.basic_get(q) is not None and ch.basic_get(q) is not None
            for i in range(2, 4):
                ch.basic_publish("", q, f"m{i}", P)
        # closing the bus puts m0 and m1 back: four ready messages in each queue
    with Bus(db) as bus:
        ch = bus.channel()
        assert drain(ch, "q") == [(b"m2", False), (b"m3", False)]
        assert drain(ch, "b") == [(b"m2", False), (b"m3", False)]
        dead = []
        while (m := ch.basic_get("dlq", auto_ack=True)) is not None:
            dead.append((m.body, m.properties.headers["x-death"][0]["reason"]))
        assert dead == [(b"m0", "maxlen"), (b"m1", "maxlen")]
    with Bus(db) as bus:  # the trimming was stored
        assert bus.statistics().queue("q").messages_ready == 0
        assert bus.statistics().queue("dlq").messages_ready == 0


def test_bytearray_header_and_argument_values_come_back_as_bytearray(tmp_path: Path) -> None:
    """A header value published as a bytearray comes back as one after a restart (it
    came back as bytes, where the same message read before the restart had the
    bytearray); binding arguments equal as bindings (bytearray or bytes) stay one
    binding in the file too: an unbind with the other type removes it."""
    db = str(tmp_path / "app.db")
    with Bus(db) as bus:
        ch = bus.channel()
        ch.queue_declare("q", durable=True)
        ch.basic_publish("", "q", "m", BasicProperties(
            delivery_mode=2, headers={"ba": bytearray(b"ab"), "b": b"cd"}))
        ch.exchange_declare("h", "headers", durable=True)
        ch.queue_bind("q", "h", "", arguments={"x-match": "any", "k": bytearray(b"v")})
        ch.queue_unbind("q", "h", "", arguments={"x-match": "any", "k": b"v"})
    with Bus(db) as bus:
        ch = bus.channel()
        m = ch.basic_get("q", auto_ack=True)
        assert m is not None
        headers = m.properties.headers
        assert type(headers["ba"]) is bytearray and headers["ba"] == b"ab"
        assert type(headers["b"]) is bytes
        assert bus.statistics().exchange("h").bindings == 0
