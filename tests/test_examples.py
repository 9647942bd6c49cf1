"""Every example in examples/ runs as a script (``python examples/NAME.py``) within a
timeout and prints what the seed's flow promises; each also exposes ``main()``."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
MINE = ["hello_world", "work_queues", "fair_dispatch", "durable", "publish_subscribe",
        "routing_direct", "routing_topic", "rpc", "pubsub"]


def run(name: str, *args: str) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return r.stdout


@pytest.mark.parametrize("name", MINE)
def test_example_has_main(name: str) -> None:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # importing runs nothing
    assert callable(mod.main)


def test_hello_world() -> None:
    out = run("hello_world")
    assert " [x] Sent 'Hello World!'" in out
    assert " [x] Received 'Hello World!' (0 left in the queue)" in out
    assert "basic_get returns None" in out


def test_work_queues_dead_worker_message_goes_to_the_other() -> None:
    out = run("work_queues").splitlines()
    assert " [worker 1] received 'task 1', and dies before acking" in out
    lost = out.index(" [worker 1] connection lost")
    assert " [worker 2] received 'task 1' (redelivered), done, ack" in out[lost:]
    assert " [worker 2] received 'task 2', done, ack" in out[:lost]
    assert out[-1] == " [x] Queue: 0 ready, 0 unacked, 3 acked, 1 redelivered"


def test_fair_dispatch() -> None:
    out = run("fair_dispatch")
    assert "the fast one did 4 tasks" in out
    assert " [x] slow: ['task 1'], fast: ['task 2', 'task 3', 'task 4', 'task 5']" in out


def test_durable_in_memory() -> None:
    out = run("durable")
    assert "durable queue 'orders' (in memory); ready: 1" in out


def test_durable_in_sqlite(tmp_path: Path) -> None:
    out = run("durable", "--db", str(tmp_path / "app.db"))
    assert " [x] After the restart: 'order #1', delivery_mode=2" in out


def test_publish_subscribe() -> None:
    out = run("publish_subscribe")
    assert out.count("listening on its own queue amq.gen-") == 2
    for who in ("A", "B"):
        assert f" [subscriber {who}] 'info: hello'" in out
        assert f" [subscriber {who}] 'warning: disk almost full'" in out
    assert " [x] 4 deliveries" in out


def test_routing_direct() -> None:
    out = run("routing_direct").splitlines()
    assert " [console] info: 'starting'" in out
    assert " [errors-to-disk] error: 'disk failed'" in out
    assert " [console] error: 'disk failed'" in out
    assert not [line for line in out if "errors-to-disk] info" in line]
    assert not [line for line in out if "] debug:" in line]
    assert " [x] unroutable messages dropped: 1" in out


def test_routing_topic() -> None:
    out = run("routing_topic")
    assert " [audit.#] got ['audit.irs.corporate', 'audit.irs', 'audit']" in out
    assert " [audit.*] got ['audit.irs']" in out


def test_rpc() -> None:
    out = run("rpc")
    for n, r in ((10, 55), (20, 6765), (15, 610)):
        assert f" [server] computing fib({n})" in out
        assert f" [client] got {r} (correlation_id matches)" in out


def test_python_m_inbus_demo_runs_every_example_and_writes_nothing(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-m", "inbus", "demo"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for name in MINE:
        assert f"=== examples/{name}.py " in r.stdout
    assert "example flows ran" in r.stdout
    assert list(tmp_path.iterdir()) == []  # durable.py stays in memory under the demo


def test_pubsub() -> None:
    out = run("pubsub").splitlines()
    assert " [x] 'news' before anyone listens: 0 receivers" in out
    assert " [x] 'news' -> 2 receivers (a channel and a pattern subscriber)" in out
    assert " [x] 'notes' -> 1 receiver" in out
    assert " [alice] news: inbus 0.1 released" in out
    assert " [bob] news: inbus 0.1 released via pattern n*" in out
    assert " [bob] notes: pattern only via pattern n*" in out
    assert not any("early" in line for line in out[1:])  # published before subscribing
