"""RPC: the client publishes a request with reply_to and correlation_id; a server on a
background thread answers to the reply queue.

    python examples/rpc.py
"""

from __future__ import annotations

import uuid

from inbus import BasicProperties, Bus, Message


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def main() -> None:
    with Bus() as bus:
        server = bus.channel(background=True)  # callbacks run on a worker thread
        server.queue_declare("rpc_queue")
        server.basic_qos(prefetch_count=1)

        def on_request(m: Message) -> None:
            n = int(m.body)
            print(f" [server] computing fib({n})", flush=True)
            server.basic_publish("", m.properties.reply_to or "", str(fib(n)),
                                 BasicProperties(correlation_id=m.properties.correlation_id))
            m.ack()

        server.basic_consume("rpc_queue", on_request)

        conn = bus.connection()
        client = conn.channel()
        callback_queue = client.queue_declare("", exclusive=True).queue
        answers: dict[str, int] = {}
        client.basic_consume(callback_queue, lambda m: answers.__setitem__(
            m.properties.correlation_id or "", int(m.body)), auto_ack=True)

        for n in (10, 20, 15):
            corr = str(uuid.uuid4())
            print(f" [client] requesting fib({n})", flush=True)
            client.basic_publish("", "rpc_queue", str(n), BasicProperties(
                reply_to=callback_queue, correlation_id=corr))
            while corr not in answers:
                conn.process_data_events(time_limit=1)
            print(f" [client] got {answers[corr]} (correlation_id matches)")


if __name__ == "__main__":
    main()
