"""RabbitMQ's six tutorials for pika 1.x, run against inbus with only the import swapped.

Each tutorial's programs are written as in the tutorials (``send.py`` / ``receive.py``,
``new_task.py`` / ``worker.py``, ``emit_log.py`` / ``receive_logs.py``,
``emit_log_direct.py`` / ``receive_logs_direct.py``, ``emit_log_topic.py`` /
``receive_logs_topic.py``, ``rpc_server.py`` / ``rpc_client.py``). Producer and consumer
run in one process; consumers that would block forever are bounded with
``process_data_events(time_limit=...)`` or stopped from their callback, so nothing hangs.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from inbus.compat import pika  # the only change: instead of ``import pika``


@pytest.fixture(autouse=True)
def fresh_buses() -> Iterator[None]:
    pika.reset()
    yield
    pika.reset()


def drain(connection: Any, until: Any, timeout: float = 5.0) -> None:
    """Pump ``connection`` until ``until()`` holds (bounded in time)."""
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.05)


# --------------------------------------------------------------------------- 1. hello world


def send_hello() -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters(host="localhost"))
    channel = connection.channel()
    channel.queue_declare(queue="hello")
    channel.basic_publish(exchange="", routing_key="hello", body="Hello World!")
    print(" [x] Sent 'Hello World!'")
    connection.close()


def receive_hello(received: list[bytes], expected: int) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters(host="localhost"))
    channel = connection.channel()
    channel.queue_declare(queue="hello")

    def callback(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        print(f" [x] Received {body!r}")
        received.append(body)
        if len(received) == expected:
            ch.stop_consuming()

    channel.basic_consume(queue="hello", on_message_callback=callback, auto_ack=True)
    print(" [*] Waiting for messages. To exit press CTRL+C")
    channel.start_consuming()
    connection.close()


def test_tutorial_1_hello_world() -> None:
    send_hello()
    received: list[bytes] = []
    receive_hello(received, 1)
    assert received == [b"Hello World!"]


# --------------------------------------------------------------------------- 2. work queues


def new_task(message: str) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters(host="localhost"))
    channel = connection.channel()
    channel.queue_declare(queue="task_queue", durable=True)
    channel.basic_publish(
        exchange="",
        routing_key="task_queue",
        body=message,
        properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
    )
    print(f" [x] Sent {message}")
    connection.close()


class Worker:
    """worker.py: fair dispatch with prefetch_count=1 and manual acks."""

    def __init__(self, name: str, log: list[tuple[str, bytes]]) -> None:
        self.connection = pika.BlockingConnection(pika.ConnectionParameters(host="localhost"))
        self.channel = self.connection.channel()
        self.channel.queue_declare(queue="task_queue", durable=True)
        self.name = name
        self.log = log

        def callback(ch: Any, method: Any, properties: Any, body: bytes) -> None:
            print(f" [x] Received {body.decode()}")
            time.sleep(body.count(b".") * 0.001)
            print(" [x] Done")
            self.log.append((self.name, body))
            ch.basic_ack(delivery_tag=method.delivery_tag)

        self.channel.basic_qos(prefetch_count=1)
        self.channel.basic_consume(queue="task_queue", on_message_callback=callback)


def test_tutorial_2_work_queues() -> None:
    log: list[tuple[str, bytes]] = []
    w1, w2 = Worker("w1", log), Worker("w2", log)
    tasks = [f"task {i} " + "." * (i % 3) for i in range(10)]
    for t in tasks:
        new_task(t)
    deadline = time.monotonic() + 5
    while len(log) < len(tasks) and time.monotonic() < deadline:
        w1.connection.process_data_events(time_limit=0.01)
        w2.connection.process_data_events(time_limit=0.01)
    assert sorted(b for _, b in log) == sorted(t.encode() for t in tasks)
    assert {n for n, _ in log} == {"w1", "w2"}          # both workers took tasks
    w1.connection.close()
    w2.connection.close()
    # a worker that dies before acking: its task goes to the next worker, redelivered
    dying = pika.BlockingConnection(pika.ConnectionParameters(host="localhost"))
    got: list[bytes] = []
    ch = dying.channel()
    ch.basic_qos(prefetch_count=1)
    ch.basic_consume(queue="task_queue", on_message_callback=lambda c, m, p, b: got.append(b))
    new_task("doomed")
    drain(dying, lambda: got == [b"doomed"])
    assert got == [b"doomed"]
    dying.close()                                         # dies without acking
    w3 = Worker("w3", log)
    drain(w3.connection, lambda: ("w3", b"doomed") in log)
    assert ("w3", b"doomed") in log
    w3.connection.close()


# --------------------------------------------------------------------------- 3. publish/subscribe


def emit_log(message: str) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters(host="localhost"))
    channel = connection.channel()
    channel.exchange_declare(exchange="logs", exchange_type="fanout")
    channel.basic_publish(exchange="logs", routing_key="", body=message)
    print(f" [x] Sent {message}")
    connection.close()


class LogReceiver:
    """receive_logs.py: an exclusive server-named queue bound to the fanout exchange."""

    def __init__(self) -> None:
        self.connection = pika.BlockingConnection(pika.ConnectionParameters(host="localhost"))
        channel = self.connection.channel()
        channel.exchange_declare(exchange="logs", exchange_type="fanout")
        result = channel.queue_declare(queue="", exclusive=True)
        self.queue_name = result.method.queue
        channel.queue_bind(exchange="logs", queue=self.queue_name)
        print(" [*] Waiting for logs. To exit press CTRL+C")
        self.received: list[bytes] = []

        def callback(ch: Any, method: Any, properties: Any, body: bytes) -> None:
            print(f" [x] {body!r}")
            self.received.append(body)

        channel.basic_consume(queue=self.queue_name, on_message_callback=callback,
                              auto_ack=True)


def test_tutorial_3_publish_subscribe() -> None:
    r1, r2 = LogReceiver(), LogReceiver()
    assert r1.queue_name.startswith("amq.gen-") and r1.queue_name != r2.queue_name
    emit_log("info: Hello World!")
    for r in (r1, r2):
        drain(r.connection, lambda r=r: len(r.received) == 1)
        assert r.received == [b"info: Hello World!"]
        r.connection.close()
    # exclusive queues died with their connections: a new log reaches nobody
    emit_log("lost")


# --------------------------------------------------------------------------- 4. routing


def emit_log_direct(severity: str, message: str) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters(host="localhost"))
    channel = connection.channel()
    channel.exchange_declare(exchange="direct_logs", exchange_type="direct")
    channel.basic_publish(exchange="direct_logs", routing_key=severity, body=message)
    print(f" [x] Sent {severity}:{message}")
    connection.close()


class DirectReceiver:
    def __init__(self, severities: list[str]) -> None:
        self.connection = pika.BlockingConnection(pika.ConnectionParameters(host="localhost"))
        channel = self.connection.channel()
        channel.exchange_declare(exchange="direct_logs", exchange_type="direct")
        result = channel.queue_declare(queue="", exclusive=True)
        queue_name = result.method.queue
        for severity in severities:
            channel.queue_bind(exchange="direct_logs", queue=queue_name, routing_key=severity)
        self.received: list[tuple[str, bytes]] = []

        def callback(ch: Any, method: Any, properties: Any, body: bytes) -> None:
            print(f" [x] {method.routing_key}:{body!r}")
            self.received.append((method.routing_key, body))

        channel.basic_consume(queue=queue_name, on_message_callback=callback, auto_ack=True)


def test_tutorial_4_routing() -> None:
    errors = DirectReceiver(["error"])
    everything = DirectReceiver(["info", "warning", "error"])
    for severity, msg in (("info", "i"), ("warning", "w"), ("error", "e"), ("debug", "d")):
        emit_log_direct(severity, msg)
    drain(everything.connection, lambda: len(everything.received) == 3)
    errors.connection.process_data_events(time_limit=0.05)
    assert errors.received == [("error", b"e")]
    assert everything.received == [("info", b"i"), ("warning", b"w"), ("error", b"e")]


# --------------------------------------------------------------------------- 5. topics


def emit_log_topic(routing_key: str, message: str) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters(host="localhost"))
    channel = connection.channel()
    channel.exchange_declare(exchange="topic_logs", exchange_type="topic")
    channel.basic_publish(exchange="topic_logs", routing_key=routing_key, body=message)
    print(f" [x] Sent {routing_key}:{message}")
    connection.close()


class TopicReceiver:
    def __init__(self, binding_keys: list[str]) -> None:
        self.connection = pika.BlockingConnection(pika.ConnectionParameters(host="localhost"))
        channel = self.connection.channel()
        channel.exchange_declare(exchange="topic_logs", exchange_type="topic")
        result = channel.queue_declare("", exclusive=True)
        queue_name = result.method.queue
        for binding_key in binding_keys:
            channel.queue_bind(exchange="topic_logs", queue=queue_name, routing_key=binding_key)
        self.keys: list[str] = []

        def callback(ch: Any, method: Any, properties: Any, body: bytes) -> None:
            print(f" [x] {method.routing_key}:{body!r}")
            self.keys.append(method.routing_key)

        channel.basic_consume(queue=queue_name, on_message_callback=callback, auto_ack=True)


def test_tutorial_5_topics() -> None:
    receivers = {
        "#": TopicReceiver(["#"]),
        "kern.*": TopicReceiver(["kern.*"]),
        "*.critical": TopicReceiver(["*.critical"]),
        "kern.* + *.critical": TopicReceiver(["kern.*", "*.critical"]),
        "lazy.#": TopicReceiver(["lazy.#"]),
    }
    keys = ["kern.critical", "kern.info", "cron.critical", "anonymous.info",
            "lazy", "lazy.orange.rabbit", "kern.critical.extra"]
    for k in keys:
        emit_log_topic(k, "A critical kernel error")
    expected = {
        "#": keys,
        "kern.*": ["kern.critical", "kern.info"],
        "*.critical": ["kern.critical", "cron.critical"],
        "kern.* + *.critical": ["kern.critical", "kern.info", "cron.critical"],
        "lazy.#": ["lazy", "lazy.orange.rabbit"],
    }
    for name, r in receivers.items():
        drain(r.connection, lambda r=r, name=name: len(r.keys) >= len(expected[name]))
        r.connection.process_data_events(time_limit=0.02)
    assert {name: r.keys for name, r in receivers.items()} == expected


# --------------------------------------------------------------------------- 6. RPC


def fib(n: int) -> int:
    if n == 0:
        return 0
    if n == 1:
        return 1
    return fib(n - 1) + fib(n - 2)


def rpc_server(ready: threading.Event, stop: list[Any]) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters(host="localhost"))
    channel = connection.channel()
    channel.queue_declare(queue="rpc_queue")

    def on_request(ch: Any, method: Any, props: Any, body: bytes) -> None:
        n = int(body)
        print(f" [.] fib({n})")
        response = fib(n)
        ch.basic_publish(exchange="",
                         routing_key=props.reply_to,
                         properties=pika.BasicProperties(correlation_id=props.correlation_id),
                         body=str(response))
        ch.basic_ack(delivery_tag=method.delivery_tag)

    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue="rpc_queue", on_message_callback=on_request)
    print(" [x] Awaiting RPC requests")
    stop.append(lambda: connection.add_callback_threadsafe(channel.stop_consuming))
    ready.set()
    channel.start_consuming()
    connection.close()


class FibonacciRpcClient:
    def __init__(self) -> None:
        self.connection = pika.BlockingConnection(pika.ConnectionParameters(host="localhost"))
        self.channel = self.connection.channel()
        result = self.channel.queue_declare(queue="", exclusive=True)
        self.callback_queue = result.method.queue
        self.channel.basic_consume(queue=self.callback_queue,
                                   on_message_callback=self.on_response, auto_ack=True)
        self.response: int | None = None
        self.corr_id: str | None = None

    def on_response(self, ch: Any, method: Any, props: Any, body: bytes) -> None:
        if self.corr_id == props.correlation_id:
            self.response = int(body)

    def call(self, n: int) -> int:
        self.response = None
        self.corr_id = str(uuid.uuid4())
        self.channel.basic_publish(
            exchange="",
            routing_key="rpc_queue",
            properties=pika.BasicProperties(reply_to=self.callback_queue,
                                            correlation_id=self.corr_id),
            body=str(n))
        deadline = time.monotonic() + 10          # bounded, unlike the tutorial
        while self.response is None and time.monotonic() < deadline:
            self.connection.process_data_events(time_limit=None)
        assert self.response is not None
        return self.response


@pytest.mark.timeout(30)
def test_tutorial_6_rpc() -> None:
    ready = threading.Event()
    stop: list[Any] = []
    server = threading.Thread(target=rpc_server, args=(ready, stop), daemon=True)
    server.start()
    assert ready.wait(5)
    fibonacci_rpc = FibonacciRpcClient()
    print(" [x] Requesting fib(30)")
    answers = [fibonacci_rpc.call(n) for n in (0, 1, 10, 20)]
    assert answers == [0, 1, 55, 6765]
    fibonacci_rpc.connection.close()
    stop[0]()
    server.join(5)
    assert not server.is_alive()
