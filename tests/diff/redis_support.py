"""Shared helpers for the Redis differential tests and the compat tests.

* :func:`real_redis_module` -- the real ``redis`` module when a Redis 7 answers on
  127.0.0.1:6379; otherwise the test is skipped with a loud reason, or FAILS when
  ``CI=true`` or ``INBUS_REQUIRE_SERVERS=1`` (CI must not go green by skipping).
* :data:`SEED_HELPER_SOURCE` -- a small, realistic application helper class written
  against redis-py, and :func:`load_seed_helper` to run it with either import.
"""

from __future__ import annotations

import os
import socket
import types
from typing import Any

import pytest

HOST, PORT = "127.0.0.1", 6379


def servers_required() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("INBUS_REQUIRE_SERVERS") == "1"


def real_redis_module() -> Any:
    """The real redis-py module, after checking that Redis 7+ answers on loopback."""
    why = ""
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - redis-py is a test dependency
        why = f"redis-py is not installed ({exc})"
    else:
        try:
            socket.create_connection((HOST, PORT), timeout=2).close()
            client = redis.Redis(host=HOST, port=PORT, socket_timeout=5,
                                 socket_connect_timeout=2)
            version = str(client.info("server")["redis_version"])
            client.close()
            if int(version.split(".")[0]) < 7:
                why = f"Redis at {HOST}:{PORT} is {version}, the reference is Redis 7"
        except Exception as exc:
            why = f"no Redis answers on {HOST}:{PORT} ({type(exc).__name__}: {exc})"
    if why:
        message = (f"REDIS DIFFERENTIAL TESTS NOT RUN: {why}. "
                   "Start the reference servers with `bash .ci/servers.sh start`.")
        if servers_required():
            pytest.fail(message + " (CI=true / INBUS_REQUIRE_SERVERS=1: unreachable fails)")
        pytest.skip(message)
    return redis


SEED_HELPER_SOURCE = '''
import time

import redis


class RedisHelper:
    """Publish to and subscribe on one channel (the seed's helper, as users write it)."""

    def __init__(self, host="127.0.0.1", port=6379, channel="fm104.5"):
        self.__conn = redis.Redis(host=host, port=port)
        self.chan_sub = channel
        self.chan_pub = channel

    def public(self, msg):
        self.__conn.publish(self.chan_pub, msg)
        return True

    def subscribe(self):
        pub = self.__conn.pubsub()
        pub.subscribe(self.chan_sub)
        pub.parse_response()
        return pub

    def receive(self, pub, count, timeout=2.0):
        got = []
        deadline = time.time() + timeout
        while len(got) < count and time.time() < deadline:
            message = pub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message and message["type"] == "message":
                got.append(message["data"].decode())
        return got
'''


def load_seed_helper(use_inbus: bool) -> types.ModuleType:
    """Run the helper's source unchanged, except ``import redis`` when ``use_inbus``."""
    source = SEED_HELPER_SOURCE
    if use_inbus:
        source = source.replace("\nimport redis\n", "\nfrom inbus.compat import redis\n")
    module = types.ModuleType("seed_redis_helper_inbus" if use_inbus else "seed_redis_helper")
    exec(compile(source, f"<{module.__name__}>", "exec"), module.__dict__)
    return module
