"""The pure round robin of inbus._queue.Queue against a plain model of RabbitMQ's
(rabbit_queue_consumers): the consumers whose turn may come are a FIFO per priority, the
highest priority first; the one served goes to the back; a new one joins the back; one
offered a message without credit leaves ("blocked") and rejoins the back when credit
comes back. Random sequences of consume / cancel / deliver / ack, compared step by step."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from inbus._queue import ChannelQos, Consumer, Queue


class Model:
    def __init__(self) -> None:
        self.active: dict[int, list[str]] = {}  # priority -> FIFO of tags
        self.blocked: list[str] = []  # in the order they left
        self.prefetch: dict[str, int] = {}
        self.unacked: dict[str, int] = {}
        self.priority: dict[str, int] = {}

    def credit(self, t: str) -> bool:
        return not self.prefetch[t] or self.unacked[t] < self.prefetch[t]

    def add(self, t: str, prefetch: int, priority: int) -> None:
        self.prefetch[t], self.unacked[t], self.priority[t] = prefetch, 0, priority
        self.active.setdefault(priority, []).append(t)

    def remove(self, t: str) -> None:
        for fifo in self.active.values():
            if t in fifo:
                fifo.remove(t)
        if t in self.blocked:
            self.blocked.remove(t)
        del self.prefetch[t]

    def deliver(self) -> str | None:
        for p in sorted(self.active, reverse=True):
            fifo = self.active[p]
            while fifo:
                t = fifo.pop(0)
                if self.credit(t):
                    fifo.append(t)
                    self.unacked[t] += 1
                    return t
                self.blocked.append(t)
        return None

    def ack(self, t: str) -> None:
        self.unacked[t] -= 1
        if t in self.blocked and self.credit(t):
            self.blocked.remove(t)
            self.active[self.priority[t]].append(t)


ops = st.lists(st.tuples(st.sampled_from(["add", "remove", "deliver", "deliver", "deliver",
                                          "ack", "ack"]),
                         st.integers(0, 5), st.integers(0, 2), st.integers(0, 1)),
               max_size=60)


def _run(steps: list[tuple[str, int, int, int]], priorities: bool) -> None:
    q = Queue("/", "q")
    model = Model()
    consumers: dict[str, Consumer] = {}
    n = 0
    for op, k, prefetch, prio in steps:
        prio = prio if priorities else 0
        if op == "add" and len(consumers) < 5:
            n += 1
            t = f"c{n}"
            qos = ChannelQos()
            qos.prefetch_count = prefetch
            c = consumers[t] = Consumer(t, q, None, None, False, False, qos, priority=prio)
            q.add_consumer(c)
            model.add(t, prefetch, prio)
        elif op == "remove" and consumers:
            t = sorted(consumers)[k % len(consumers)]
            q.remove_consumer(consumers.pop(t))
            model.remove(t)
        elif op == "deliver":
            got = q.next_consumer()
            if got is not None:
                got.unacked += 1
            assert (got.tag if got else None) == model.deliver(), steps
        elif op == "ack":
            held = sorted(t for t, c in consumers.items() if c.unacked)
            if held:
                t = held[k % len(held)]
                c = consumers[t]
                c.unacked -= 1
                if c.blocked and c.has_credit():
                    q.unblock(c)
                model.ack(t)
        q._check()


@settings(max_examples=400, deadline=None)
@given(ops)
def test_round_robin_matches_rabbitmq_model(steps: Any) -> None:
    _run(steps, priorities=False)


@settings(max_examples=400, deadline=None)
@given(ops)
def test_round_robin_with_consumer_priorities_matches_rabbitmq_model(steps: Any) -> None:
    _run(steps, priorities=True)
