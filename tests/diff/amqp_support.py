"""Shared helpers for the AMQP differential suite (tests/diff/test_amqp_diff.py).

A *scenario* is a function ``f(pika, params, ns) -> list`` written against pika 1.x's
BlockingConnection API. It runs once with the real ``pika`` module against a real
RabbitMQ and once with ``inbus.compat.pika``; both runs return a list of plain-data
observations that must be equal.

- ``pika``: the module to use (real pika or inbus.compat.pika); everything, exceptions
  included, must be reached through it.
- ``params``: connection parameters built by the runner (vhost "/").
- ``ns``: a unique prefix; every entity name is derived from it. The runner replaces it
  by ``"NS"`` in the observations, so reply texts that quote names compare equal.

Scenarios are registered with ``@scenario(group, expect=...)``: ``group`` lets the inbus
side be enabled feature group by feature group; ``expect`` is what RabbitMQ 3.10 is
expected to show (after the ``NS`` substitution), asserted on the real side so that a
scenario cannot silently observe nothing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

RABBIT_HOST = os.environ.get("INBUS_RABBITMQ_HOST", "127.0.0.1")
RABBIT_PORT = int(os.environ.get("INBUS_RABBITMQ_PORT", "5672"))
#: A second vhost that exists on both sides (created with rabbitmqctl on the real side,
#: with Bus.vhost_declare on the inbus side).
OTHER_VHOST = "inbus-diff"

ScenarioFn = Callable[[ModuleType, Any, str], list[Any]]


@dataclass
class Scenario:
    name: str
    group: str
    fn: ScenarioFn
    expect: Any = None
    #: when set: a documented deliberate difference; the inbus comparison is a strict xfail
    inbus_xfail: str | None = None
    needs_other_vhost: bool = False
    doc: str = field(default="")


SCENARIOS: dict[str, Scenario] = {}


class InbusDisagreement(AssertionError):
    """inbus's observations differ from RabbitMQ's (what a scenario's xfail expects)."""


def scenario(
    group: str,
    *,
    expect: Any = None,
    inbus_xfail: str | None = None,
    needs_other_vhost: bool = False,
) -> Callable[[ScenarioFn], ScenarioFn]:
    """Register a scenario under its function name, tagged with a feature group."""

    def register(fn: ScenarioFn) -> ScenarioFn:
        name = fn.__name__
        assert name not in SCENARIOS, f"duplicate scenario {name}"
        SCENARIOS[name] = Scenario(
            name, group, fn, expect, inbus_xfail, needs_other_vhost, fn.__doc__ or ""
        )
        return fn

    return register


# --------------------------------------------------------------------------- servers


def rabbit_reachable(timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((RABBIT_HOST, RABBIT_PORT), timeout=timeout):
            return True
    except OSError:
        return False


def servers_required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get(
        "INBUS_REQUIRE_SERVERS"
    ) == "1"


def new_ns() -> str:
    return "d" + uuid.uuid4().hex[:10]


def make_params(pika: ModuleType, vhost: str = "/") -> Any:
    return pika.ConnectionParameters(
        host=RABBIT_HOST,
        port=RABBIT_PORT,
        virtual_host=vhost,
        credentials=pika.PlainCredentials("guest", "guest"),
    )


def with_vhost(pika: ModuleType, params: Any, vhost: str) -> Any:
    """The same server and credentials as ``params``, another virtual host."""
    return pika.ConnectionParameters(
        host=params.host,
        port=params.port,
        virtual_host=vhost,
        credentials=params.credentials,
    )


_other_vhost_ready: bool | None = None


def ensure_rabbit_vhost(vhost: str = OTHER_VHOST) -> bool:
    """Create ``vhost`` on the real RabbitMQ (once per session) with rabbitmqctl."""
    global _other_vhost_ready
    if _other_vhost_ready is not None:
        return _other_vhost_ready
    env = dict(os.environ)
    env.setdefault("RABBITMQ_NODENAME", "rabbit@localhost")
    env["HOME"] = os.environ.get("INBUS_RABBIT_HOME", "/tmp/inbus-servers/rabbit")
    ok = True
    for cmd in (
        ["rabbitmqctl", "add_vhost", vhost],
        ["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
    ):
        try:
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            ok = False
            break
        if r.returncode != 0 and "already_exists" not in (r.stdout + r.stderr):
            ok = False
            break
    _other_vhost_ready = ok
    return ok


# --------------------------------------------------------------------------- observing


def normalise(obj: Any, ns: str) -> Any:
    """Replace the namespace by ``NS`` in every string of an observation tree."""
    if isinstance(obj, str):
        return obj.replace(ns, "NS")
    if isinstance(obj, bytes):
        return obj.replace(ns.encode(), b"NS")
    if isinstance(obj, list):
        return [normalise(x, ns) for x in obj]
    if isinstance(obj, tuple):
        return tuple(normalise(x, ns) for x in obj)
    if isinstance(obj, dict):
        return {normalise(k, ns): normalise(v, ns) for k, v in obj.items()}
    return obj


def is_gen_name(name: str, prefix: str = "amq.gen-") -> bool:
    return name.startswith(prefix) and len(name) == len(prefix) + 22


PROP_FIELDS = (
    "content_type",
    "content_encoding",
    "headers",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
)


def props(p: Any) -> dict[str, Any]:
    """A BasicProperties as a dict of its 14 fields (None when absent)."""
    return {f: getattr(p, f, None) for f in PROP_FIELDS}


def pump(
    conn: Any,
    until: Callable[[], bool] | None = None,
    timeout: float = 2.0,
    settle: float = 0.0,
) -> None:
    """Process I/O until ``until()`` holds (or ``timeout``), then for ``settle`` more."""
    deadline = time.monotonic() + timeout
    while until is not None and not until() and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.02)
    if until is None and settle == 0.0:
        settle = 0.05
    if settle:
        conn.process_data_events(time_limit=settle)


class Session:
    """One connection and a current channel; records outcomes of operations.

    ``attempt(fn)`` runs ``fn(channel)`` and returns ``("ok", result)`` or
    ``("channel-error", code, text)`` / ``("connection-error", code, text)``; after an
    error it opens a fresh channel (and connection) so the scenario can go on.
    """

    def __init__(self, pika: ModuleType, params: Any, ns: str) -> None:
        self.pika = pika
        self.params = params
        self.ns = ns
        self.conn = pika.BlockingConnection(params)
        self.ch = self.conn.channel()
        self.exchanges: list[str] = []
        self.queues: list[str] = []

    def n(self, suffix: str) -> str:
        return f"{self.ns}.{suffix}"

    def x(self, suffix: str, type_: str = "direct", **kw: Any) -> str:
        """Declare an exchange named ns.suffix (deleted at the end)."""
        name = self.n(suffix)
        self.ch.exchange_declare(name, type_, **kw)
        self.exchanges.append(name)
        return name

    def q(self, suffix: str, exclusive: bool = True, **kw: Any) -> str:
        """Declare a queue named ns.suffix (exclusive by default; deleted at the end)."""
        name = self.n(suffix)
        self.ch.queue_declare(name, exclusive=exclusive, **kw)
        self.queues.append(name)
        return name

    def reopen(self) -> None:
        if not self.conn.is_open:
            self.conn = self.pika.BlockingConnection(self.params)
        self.ch = self.conn.channel()

    def attempt(self, fn: Callable[[Any], Any]) -> Any:
        ex = self.pika.exceptions
        try:
            return ("ok", fn(self.ch))
        except ex.ChannelClosedByBroker as e:
            self.reopen()
            return ("channel-error", e.reply_code, e.reply_text)
        except ex.ConnectionClosedByBroker as e:
            self.reopen()
            return ("connection-error", e.reply_code, e.reply_text)

    def ok(self, fn: Callable[[Any], Any]) -> Any:
        """attempt() without the result value: ("ok",) or the error tuple."""
        r = self.attempt(fn)
        return ("ok",) if r[0] == "ok" else r

    def get(self, queue: str, auto_ack: bool = True) -> Any:
        """basic_get as plain data: None or (body, redelivered, message_count)."""
        m, _p, body = self.ch.basic_get(queue, auto_ack=auto_ack)
        if m is None:
            return None
        return (body, m.redelivered, m.message_count)

    def get_wait(self, queue: str, timeout: float = 2.0,
                 auto_ack: bool = True) -> tuple[Any, Any, Any]:
        """basic_get polled until a message comes, for what RabbitMQ does
        asynchronously (dead-lettering); (None, None, None) after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.ch.basic_get(queue, auto_ack=auto_ack)
            if got[0] is not None or time.monotonic() >= deadline:
                return tuple(got)  # type: ignore[return-value]
            time.sleep(0.01)

    def drain(self, queue: str) -> list[bytes]:
        """Bodies of every ready message of ``queue`` (auto-acked)."""
        out: list[bytes] = []
        while True:
            m, _p, body = self.ch.basic_get(queue, auto_ack=True)
            if m is None:
                return out
            out.append(body)

    def count(self, queue: str) -> int:
        """Ready messages. RabbitMQ answers the passive declare's stat ahead of queued
        deliveries (a prioritised call), so give in-flight publishes a moment first."""
        time.sleep(0.03)
        return int(self.ch.queue_declare(queue, passive=True).method.message_count)

    def sync(self) -> None:
        """A synchronous round trip on the current channel (flushes returns/errors)."""
        self.ch.exchange_declare("amq.direct", "direct", passive=True)

    def close(self) -> None:
        try:
            if not self.conn.is_open:
                self.conn = self.pika.BlockingConnection(self.params)
            ch = self.conn.channel()
            for kind, name in [("q", n) for n in self.queues] + [
                ("x", n) for n in self.exchanges
            ]:
                try:
                    if kind == "q":
                        ch.queue_delete(name)
                    else:
                        ch.exchange_delete(name)
                except self.pika.exceptions.AMQPChannelError:
                    ch = self.conn.channel()
        except Exception:
            pass
        finally:
            if self.conn.is_open:
                self.conn.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
