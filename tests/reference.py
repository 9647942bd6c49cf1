"""Naive reference models that the real implementation is checked against.

Each section is short and obviously right (slow is fine): hypothesis compares inbus with
them. Sections: topic matching, Redis glob matching, the broker model.
"""

from __future__ import annotations

# --- topic matching (owned by the topic-router tests) --------------------------------------


def topic_matches(pattern: str, key: str) -> bool:
    """RabbitMQ topic matching by recursion on word lists (exponential in ``#``; fine here).

    Both strings split on "."; "" is zero words; ``*`` is one word, ``#`` zero or more;
    any other pattern word, however it looks, matches only the identical key word.
    """

    def m(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(m(p[1:], k[i:]) for i in range(len(k) + 1))
        if not k:
            return False
        return (p[0] == "*" or p[0] == k[0]) and m(p[1:], k[1:])

    return m(pattern.split(".") if pattern else [], key.split(".") if key else [])


# --- Redis glob matching (owned by the pub/sub tests) --------------------------------------

def _signed_char(b: int) -> int:
    return b - 256 if b >= 128 else b


def redis_glob_match(pattern: bytes, string: bytes) -> bool:
    """Redis 7 ``stringmatchlen`` (util.c), walked byte by byte as the C code does."""
    p, s, plen, slen = 0, 0, len(pattern), len(string)
    while p < plen and s < slen:
        c = pattern[p]
        if c == 42:  # '*': try the rest of the pattern at every non-empty suffix
            while p + 1 < plen and pattern[p + 1] == 42:
                p += 1
            if p + 1 == plen:
                return True
            return any(redis_glob_match(pattern[p + 1:], string[i:]) for i in range(s, slen))
        if c == 91:  # '['
            p += 1
            negate = p < plen and pattern[p] == 94
            p += negate
            hit = False
            while True:
                if p + 1 < plen and pattern[p] == 92:
                    p += 1
                    hit |= pattern[p] == string[s]
                elif p < plen and pattern[p] == 93:
                    break
                elif p >= plen:
                    p -= 1
                    break
                elif p + 2 < plen and pattern[p + 1] == 45:
                    lo, hi = sorted((_signed_char(pattern[p]), _signed_char(pattern[p + 2])))
                    hit |= lo <= _signed_char(string[s]) <= hi
                    p += 2
                else:
                    hit |= pattern[p] == string[s]
                p += 1
            if hit == negate:
                return False
        elif c != 63:  # not '?': a literal byte, maybe escaped
            if c == 92 and p + 1 < plen:
                p += 1
            if pattern[p] != string[s]:
                return False
        s += 1
        p += 1
        if s == slen:
            while p < plen and pattern[p] == 42:
                p += 1
    return p == plen and s == slen


# --- broker model (owned by the stateful broker tests) -------------------------------------


class ModelMsg:
    """One message in one queue incarnation: identified by its body (unique per publish)."""

    def __init__(self, body: bytes, seq: int) -> None:
        self.body = body
        self.seq = seq
        self.redelivered = False


class ModelQueue:
    def __init__(self, name: str, auto_delete: bool, owner: int | None = None) -> None:
        self.name = name
        self.auto_delete = auto_delete
        self.owner = owner  # the connection of an exclusive queue
        self.ready: list[ModelMsg] = []  # always sorted by seq: requeue restores position
        self.next_seq = 1
        self.consumers: list[ModelConsumer] = []
        self.had_consumer = False
        self.unacked = 0

    def requeue(self, m: ModelMsg) -> None:
        m.redelivered = True
        self.ready.append(m)
        self.ready.sort(key=lambda x: x.seq)


class ModelConsumer:
    def __init__(self, channel: ModelChannel, tag: str, queue: ModelQueue, auto_ack: bool,
                 prefetch: int) -> None:
        self.channel = channel
        self.tag = tag
        self.queue = queue
        self.auto_ack = auto_ack
        self.prefetch = prefetch  # fixed when the consumer starts
        self.unacked = 0

    def has_credit(self) -> bool:
        if self.auto_ack:
            return True
        if self.prefetch and self.unacked >= self.prefetch:
            return False
        ch = self.channel
        return not ch.global_prefetch or ch.held() < ch.global_prefetch


Unacked = tuple[ModelQueue, ModelMsg, "ModelConsumer | None"]


class ModelChannel:
    def __init__(self, cid: int, conn: int) -> None:
        self.id = cid
        self.conn = conn
        self.open = True
        self.unacked: dict[int, Unacked] = {}  # delivery tag -> entry, in tag order
        self.consumers: dict[str, ModelConsumer] = {}
        self.prefetch = 0
        self.global_prefetch = 0
        # basic_get messages unacked when the global limit was set: RabbitMQ 3.10 counts
        # them against it for good (their settles give nothing back)
        self.skew = 0
        self.last_tag = 0

    def held(self) -> int:
        """Unacked deliveries made to consumers (basic_get ones do not use credit), and
        the skew."""
        return self.skew + sum(1 for _q, _m, c in self.unacked.values() if c is not None)

    def set_global(self, prefetch: int) -> None:
        if prefetch and not self.global_prefetch:
            self.skew = sum(1 for _q, _m, c in self.unacked.values() if c is None)
        self.global_prefetch = prefetch


class BrokerModel:
    """A plain model of one vhost: what RabbitMQ's rules say the state must be.

    It does not choose which consumer gets a message (round-robin details are the broker's);
    ``check_deliveries`` validates the deliveries the broker made instead: every delivery
    takes the head of its queue, goes to a consumer with credit, and afterwards no queue has
    ready messages while one of its consumers has credit.
    """

    def __init__(self) -> None:
        self.queues: dict[str, ModelQueue] = {}
        self.exchanges: dict[str, str] = {"amq.direct": "direct", "amq.fanout": "fanout",
                                          "amq.topic": "topic"}
        self.bindings: set[tuple[str, str, str, str]] = set()  # (source, kind, dest, key)
        self.channels: dict[int, ModelChannel] = {}

    # --- entities ------------------------------------------------------------------------

    def declare_queue(self, name: str, auto_delete: bool, exclusive: bool = False,
                      conn: int = 0) -> str | None:
        """None on success, else the error code: 405 (another connection's exclusive
        queue, or the exclusive flag differs: checked first), 406 (auto_delete differs)."""
        q = self.queues.get(name)
        if q is None:
            self.queues[name] = ModelQueue(name, auto_delete, conn if exclusive else None)
            return None
        if (q.owner is not None and q.owner != conn) or exclusive != (q.owner is not None):
            return "405"
        return None if q.auto_delete == auto_delete else "406"

    def access(self, name: str, conn: int) -> str | None:
        """Using a queue: 404 when missing, 405 when another connection's exclusive one."""
        q = self.queues.get(name)
        if q is None:
            return "404"
        return "405" if q.owner is not None and q.owner != conn else None

    def delete_queue(self, name: str) -> int:
        q = self.queues.pop(name, None)
        if q is None:
            return 0
        for c in list(q.consumers):
            del c.channel.consumers[c.tag]
        q.consumers.clear()
        self.bindings = {b for b in self.bindings if (b[1], b[2]) != ("queue", name)}
        return len(q.ready)

    def declare_exchange(self, name: str, type_: str) -> str | None:
        cur = self.exchanges.get(name)
        if cur is None:
            self.exchanges[name] = type_
            return None
        return None if cur == type_ else "406"

    def delete_exchange(self, name: str) -> None:
        if self.exchanges.pop(name, None) is not None:
            self.bindings = {b for b in self.bindings
                             if b[0] != name and (b[1], b[2]) != ("exchange", name)}

    def bind(self, source: str, kind: str, dest: str, key: str, conn: int = 0) -> str | None:
        if source not in self.exchanges:
            return "404"  # a missing source is reported first
        if kind == "queue":
            err = self.access(dest, conn)
            if err is not None:
                return err
        elif dest not in self.exchanges:
            return "404"
        self.bindings.add((source, kind, dest, key))
        return None

    def unbind(self, source: str, kind: str, dest: str, key: str, conn: int = 0
               ) -> str | None:
        b = (source, kind, dest, key)
        if b not in self.bindings:
            return None  # unbinding what does not exist succeeds
        if kind == "queue" and self.access(dest, conn) == "405":
            return "405"
        self.bindings.discard(b)
        return None

    # --- routing and publishing ------------------------------------------------------------

    def _matches(self, type_: str, pattern: str, key: str) -> bool:
        if type_ == "fanout":
            return True
        if type_ == "direct":
            return pattern == key
        return topic_matches(pattern, key)

    def route(self, exchange: str, key: str) -> list[str]:
        """Queue names reached, each once (exchange-to-exchange bindings followed)."""
        if exchange == "":
            return [key] if key in self.queues else []
        out: list[str] = []
        seen = {exchange}
        work = [exchange]
        while work:
            x = work.pop(0)
            t = self.exchanges[x]
            for src, kind, dest, pattern in sorted(self.bindings):
                if src != x or not self._matches(t, pattern, key):
                    continue
                if kind == "queue":
                    if dest not in out:
                        out.append(dest)
                elif dest not in seen:
                    seen.add(dest)
                    work.append(dest)
        return out

    def publish(self, exchange: str, key: str, body: bytes) -> str | None:
        if exchange != "" and exchange not in self.exchanges:
            return "404"
        for name in self.route(exchange, key):
            q = self.queues[name]
            q.ready.append(ModelMsg(body, q.next_seq))
            q.next_seq += 1
        return None

    # --- channels, getting, settling ------------------------------------------------------------

    def open_channel(self, cid: int, conn: int) -> None:
        self.channels[cid] = ModelChannel(cid, conn)

    def get(self, cid: int, name: str, auto_ack: bool, tag: int) -> ModelMsg | None:
        q = self.queues[name]
        if not q.ready:
            return None
        m = q.ready.pop(0)
        ch = self.channels[cid]
        ch.last_tag = tag
        if not auto_ack:
            ch.unacked[tag] = (q, m, None)
            q.unacked += 1
        return m

    def _release(self, entry: Unacked) -> None:
        q, _m, c = entry
        q.unacked -= 1
        if c is not None:
            c.unacked -= 1

    def _live(self, q: ModelQueue) -> bool:
        return self.queues.get(q.name) is q

    def settle(self, cid: int, tag: int, multiple: bool, how: str) -> str | None:
        """how: "ack", "requeue" or "drop". None on success, "406" for an unknown tag."""
        ch = self.channels[cid]
        if multiple and tag == 0:
            tags = list(ch.unacked)
        elif tag not in ch.unacked:
            return "406"
        else:
            tags = [t for t in ch.unacked if t <= tag] if multiple else [tag]
        for t in tags:
            entry = ch.unacked.pop(t)
            self._release(entry)
            if how == "requeue" and self._live(entry[0]):
                entry[0].requeue(entry[1])
        return None

    def recover(self, cid: int) -> None:
        self.settle(cid, 0, True, "requeue")

    # --- consumers ----------------------------------------------------------------------

    def consume(self, cid: int, name: str, tag: str, auto_ack: bool) -> None:
        ch = self.channels[cid]
        q = self.queues[name]
        c = ModelConsumer(ch, tag, q, auto_ack, ch.prefetch)
        ch.consumers[tag] = c
        q.consumers.append(c)
        q.had_consumer = True

    def cancel(self, cid: int, tag: str) -> None:
        c = self.channels[cid].consumers.pop(tag, None)
        if c is not None:
            self._drop_consumer(c)

    def _drop_consumer(self, c: ModelConsumer) -> None:
        q = c.queue
        if c in q.consumers:
            q.consumers.remove(c)
        if q.auto_delete and q.had_consumer and not q.consumers and self._live(q):
            self.delete_queue(q.name)

    def close_channel(self, cid: int) -> None:
        """Consumers go first (an auto-delete queue may go with them), then every unacked
        message returns to its (live) queue, flagged redelivered."""
        ch = self.channels[cid]
        if not ch.open:
            return
        ch.open = False
        for c in list(ch.consumers.values()):
            self._drop_consumer(c)
        ch.consumers.clear()
        self.recover(cid)

    def close_connection(self, conn: int) -> None:
        """Its channels close (requeueing), then its exclusive queues are deleted."""
        for ch in list(self.channels.values()):
            if ch.conn == conn:
                self.close_channel(ch.id)
        for q in list(self.queues.values()):
            if q.owner == conn:
                self.delete_queue(q.name)

    # --- checking what the broker delivered ------------------------------------------------

    def check_deliveries(self, deliveries: list[tuple[int, str, bytes, int, bool]]) -> None:
        """``deliveries``: (channel id, consumer tag, body, delivery tag, redelivered) made
        by the broker since the last check, in the order the callbacks ran. Raises
        AssertionError when one breaks a rule; applies them otherwise."""
        for d in deliveries:  # callbacks of one channel run in delivery-tag order
            ch = self.channels[d[0]]
            assert d[3] > ch.last_tag, "delivery tags must increase per channel"
            ch.last_tag = d[3]
        by_queue: dict[int, list[tuple[int, str, bytes, int, bool]]] = {}
        for d in deliveries:
            c = self.channels[d[0]].consumers.get(d[1])
            assert c is not None, f"delivery to unknown or cancelled consumer {d[1]}"
            by_queue.setdefault(id(c.queue), []).append(d)
        msgs: dict[tuple[int, bytes], ModelMsg] = {}
        for ds in by_queue.values():
            q = self.channels[ds[0][0]].consumers[ds[0][1]].queue
            head = q.ready[:len(ds)]
            assert sorted(m.body for m in head) == sorted(d[2] for d in ds), \
                f"queue {q.name}: delivered {[d[2] for d in ds]}, head is " \
                f"{[m.body for m in q.ready]}"
            for m in head:
                msgs[(id(q), m.body)] = m
            del q.ready[:len(ds)]
        for d in sorted(deliveries, key=lambda d: (d[0], d[3])):
            ch = self.channels[d[0]]
            c = ch.consumers[d[1]]
            q = c.queue
            m = msgs[(id(q), d[2])]
            assert d[4] == m.redelivered, f"{d[2]!r}: redelivered {d[4]}"
            assert c.has_credit(), f"consumer {c.tag} got a message without credit"
            if not c.auto_ack:
                ch.unacked[d[3]] = (q, m, c)
                c.unacked += 1
                q.unacked += 1
        for q in self.queues.values():
            if q.ready:
                assert not any(c.has_credit() for c in q.consumers), \
                    f"queue {q.name}: ready messages left while a consumer has credit"
