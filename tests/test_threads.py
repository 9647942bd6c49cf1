"""Threaded stress, bounded in time: producers and background consumers, acks from a
thread pool, random nacks with requeue and random channel closes. Nothing lost, nothing
duplicated except flagged redeliveries, ``bus._check()`` holds, no thread left after
``close()``. Plus re-entrant callbacks on worker threads (publish / declare / consume /
ack from inside a callback) without deadlock."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import inbus
from inbus import Bus, Message

N_PRODUCERS = 4
N_CONSUMERS = 4
N_MESSAGES = 50_000


def inbus_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("inbus")]


def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.mark.timeout(120)
def test_stress_producers_background_consumers_pool_acks() -> None:
    assert inbus_threads() == []
    bus = Bus()
    setup = bus.channel()
    setup.queue_declare("work")
    lock = threading.Lock()
    deliveries: dict[bytes, list[bool]] = defaultdict(list)  # body -> redelivered flags
    acked: dict[bytes, int] = defaultdict(int)
    failed_settles = [0]
    nacks = [0]
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="acker")
    rng_lock = threading.Lock()
    rng = random.Random(1234)

    def settle(m: Message, nack: bool) -> None:
        try:
            if nack:
                m.nack(requeue=True)
            else:
                m.ack()
        except inbus.ChannelClosed:
            with lock:
                failed_settles[0] += 1  # its channel closed: the message was requeued
            return
        with lock:
            if nack:
                nacks[0] += 1
            else:
                acked[m.body] += 1

    def on_message(m: Message) -> None:
        with lock:
            deliveries[m.body].append(m.redelivered)
        with rng_lock:
            nack = rng.random() < 0.02
        pool.submit(settle, m, nack)

    def start_consumer() -> inbus.Channel:
        ch = bus.channel(background=True)
        ch.basic_qos(prefetch_count=50)
        ch.basic_consume("work", on_message)
        return ch

    consumers = [start_consumer() for _ in range(N_CONSUMERS)]

    def producer(p: int) -> None:
        ch = bus.channel()
        for i in range(N_MESSAGES // N_PRODUCERS):
            ch.basic_publish("", "work", b"%d:%d" % (p, i))
        ch.close()

    producers = [threading.Thread(target=producer, args=(p,)) for p in range(N_PRODUCERS)]
    t0 = time.monotonic()
    for t in producers:
        t.start()

    closes = 0
    crng = random.Random(99)
    while closes < 12 and len(acked) < N_MESSAGES * 0.9:
        time.sleep(0.05)
        k = crng.randrange(len(consumers))
        consumers[k].close()  # its unacked and pending messages go back, redelivered
        consumers[k] = start_consumer()
        closes += 1
    for t in producers:
        t.join()
    wait_for(lambda: len(acked) == N_MESSAGES, 90, "every message acked")
    pool.shutdown(wait=True)
    elapsed = time.monotonic() - t0

    expected = {b"%d:%d" % (p, i) for p in range(N_PRODUCERS)
                for i in range(N_MESSAGES // N_PRODUCERS)}
    assert set(acked) == expected  # nothing lost
    assert all(n == 1 for n in acked.values())  # each acked exactly once
    assert set(deliveries) == expected
    redelivered = 0
    for body, flags in deliveries.items():
        # a message seen again is always flagged redelivered
        assert all(flags[1:]), (body, flags)
        redelivered += len(flags) - 1
    assert redelivered > nacks[0] > 0  # nacks and channel closes both redelivered
    assert closes > 0
    stats = bus.statistics().queue("work")
    assert (stats.messages_ready, stats.messages_unacknowledged) == (0, 0)
    assert stats.acked == N_MESSAGES
    bus._check()
    bus.close()
    assert inbus_threads() == []
    assert not bus.errors
    assert elapsed < 100


@pytest.mark.timeout(60)
def test_reentrant_callbacks_on_worker_threads() -> None:
    """A pipeline of background channels whose callbacks declare queues, start consumers,
    publish and ack from their worker threads; meanwhile other threads publish and read
    statistics. No deadlock, nothing lost."""
    bus = Bus(background=True)
    n = 3000
    a, b, c = bus.channel(), bus.channel(), bus.channel()
    a.queue_declare("stage0")
    done: list[bytes] = []
    started = threading.Event()

    def final(m: Message) -> None:
        done.append(m.body)
        m.ack()

    def stage1(m: Message) -> None:
        if not started.is_set():
            started.set()
            b.queue_declare("stage2")
            c.basic_consume("stage2", final)  # consume on another channel, from a callback
        b.basic_publish("", "stage2", m.body)
        m.ack()

    consumed_stage1 = threading.Event()

    def stage0(m: Message) -> None:
        a.queue_declare("stage1")  # idempotent redeclare from a worker thread
        if not consumed_stage1.is_set():
            consumed_stage1.set()
            b.basic_consume("stage1", stage1)
        a.basic_publish("", "stage1", m.body)
        m.ack()

    a.basic_consume("stage0", stage0)

    def producer(p: int) -> None:
        ch = bus.channel(background=False)
        for i in range(n // 3):
            ch.basic_publish("", "stage0", b"%d:%d" % (p, i))

    def observer() -> None:
        while len(done) < n:
            bus.statistics()
            bus._check()
            time.sleep(0.01)

    threads = [threading.Thread(target=producer, args=(p,)) for p in range(3)]
    threads.append(threading.Thread(target=observer))
    for t in threads:
        t.start()
    wait_for(lambda: len(done) == n, 45, "the pipeline to finish")
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert sorted(done) == sorted(b"%d:%d" % (p, i) for p in range(3) for i in range(n // 3))
    for q in ("stage0", "stage1", "stage2"):
        s = bus.statistics().queue(q)
        assert (s.messages_ready, s.messages_unacknowledged) == (0, 0)
    bus._check()
    bus.close()
    assert inbus_threads() == []
    assert not bus.errors


@pytest.mark.timeout(60)
def test_close_bus_while_busy_from_many_threads() -> None:
    """Closing the bus while producers publish and background consumers run: no
    deadlock, every thread joined; producers see ConnectionClosed / ChannelClosed."""
    bus = Bus(background=True)
    ch = bus.channel()
    ch.queue_declare("q")
    for _ in range(3):
        bus.channel().basic_consume("q", lambda m: m.ack())
    stop = threading.Event()
    errors: list[BaseException] = []

    def producer() -> None:
        try:
            p = bus.channel()
            while not stop.is_set():
                p.basic_publish("", "q", b"x")
        except (inbus.ConnectionClosed, inbus.ChannelClosed) as e:
            errors.append(e)

    threads = [threading.Thread(target=producer) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    bus.close()
    stop.set()
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert inbus_threads() == []
    assert len(errors) == 3


def test_background_worker_threads_have_distinct_names() -> None:
    """Every channel of Bus.channel() is channel 1 of its own connection: the worker
    threads' names carry the connection's number too, so a thread dump tells them apart."""
    import re

    bus = Bus(background=True)
    try:
        chans = [bus.channel() for _ in range(3)]
        chans.append(chans[0].connection.channel())  # channel 2 of connection 1
        workers = [ch._worker.thread for ch in chans if ch._worker is not None]
        names = [t.name for t in workers]
        assert len(set(names)) == 4, names
        assert all(re.fullmatch(r"inbus-c\d+-ch\d+", n) for n in names), names
    finally:
        bus.close()
    assert not [t for t in workers if t.is_alive()]
