"""redis-py look-alike, the command layer: ``execute_command`` of
:class:`inbus.compat.redis.Redis` and :class:`inbus.compat.redis.PubSub`.

Theory of operation
-------------------
redis-py packs ``execute_command(*args)`` by splitting a first argument that holds spaces
(``"PUBSUB NUMSUB"`` is the command ``PUBSUB`` with the subcommand ``NUMSUB``) and
encoding the rest as it encodes any value. :func:`argv` does the same; :func:`check`
then answers, in Redis 7.0's order, what the server answers before running a command:
an unknown ``PUBSUB`` subcommand, a wrong number of arguments (the texts are Redis's,
raised as redis-py's ``ResponseError``). A command inbus does not implement raises
``NotImplementedError`` naming it: only the pub/sub commands and ``PING`` are here.
:func:`run` computes the raw reply (ints, bytes, lists of bytes) from the in-process
server; :func:`reply_for_client` decodes it (``decode_responses=True``) and applies
redis-py's response callback, which redis-py looks up by the first argument, uppercased,
exactly as given: ``"PUBSUB NUMSUB"`` gives ``(channel, count)`` tuples, ``"PUBSUB",
"NUMSUB"`` the flat list, ``"PING"`` True when the reply is ``PONG``.
"""

from __future__ import annotations

from typing import Any

from inbus._pubsub import encode
from inbus.pubsub import PubSubHub

from .redis_exceptions import DataError, ResponseError

__all__ = ["argv", "check", "run", "reply_for_client", "decode_reply", "enc",
           "SUBSCRIPTION_COMMANDS"]

# Redis 7.0's arities (negative: at least that many) of what inbus implements.
_ARITY = {"publish": 3, "spublish": 3, "ping": -1, "pubsub": -2,
          "subscribe": -2, "psubscribe": -2, "ssubscribe": -2,
          "unsubscribe": -1, "punsubscribe": -1, "sunsubscribe": -1}
_PUBSUB_ARITY = {"channels": -2, "numpat": 2, "numsub": -2, "shardchannels": -2,
                 "shardnumsub": -2, "help": 2}
SUBSCRIPTION_COMMANDS = frozenset(("subscribe", "psubscribe", "ssubscribe", "unsubscribe",
                                   "punsubscribe", "sunsubscribe"))
PUBSUB_HELP = [
    b"PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"CHANNELS [<pattern>]",
    b"    Return the currently active channels matching a <pattern> (default: '*').",
    b"NUMPAT",
    b"    Return number of subscriptions to patterns.",
    b"NUMSUB [<channel> ...]",
    b"    Return the number of subscribers for the specified channels, excluding",
    b"    pattern subscriptions(default: no channels).",
    b"SHARDCHANNELS [<pattern>]",
    b"    Return the currently active shard level channels matching a <pattern> "
    b"(default: '*').",
    b"SHARDNUMSUB [<shardchannel> ...]",
    b"    Return the number of subscribers for the specified shard level channel(s)",
    b"HELP",
    b"    Prints this help.",
]
_SUPPORTED = ("PUBLISH, SPUBLISH, PUBSUB CHANNELS / NUMSUB / NUMPAT / SHARDCHANNELS / "
              "SHARDNUMSUB / HELP, PING, and on a PubSub (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE")


def enc(value: object) -> bytes:
    """A value as redis-py encodes it; what it refuses is its ``DataError``."""
    try:
        return encode(value)
    except TypeError:
        raise DataError(f"Invalid input of type: '{type(value).__name__}'. Convert to a "
                        "bytes, string, int or float first.") from None


def argv(args: tuple[Any, ...]) -> list[bytes]:
    """The command as redis-py packs it: a first argument with spaces is split.

    >>> argv(("PUBSUB NUMSUB", "a", 1))
    [b'PUBSUB', b'NUMSUB', b'a', b'1']
    """
    if not args:
        raise IndexError("execute_command needs a command name")  # as redis-py: args[0]
    first = args[0]
    if isinstance(first, str):
        head = first.encode().split()
    elif isinstance(first, bytes) and b" " in first:
        head = first.split()
    else:
        head = [enc(first)]
    return [*head, *map(enc, args[1:])]


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def _arity_error(fullname: str) -> ResponseError:
    return ResponseError(f"wrong number of arguments for '{fullname}' command")


def check(cmd: list[bytes]) -> str:
    """Redis's checks before running ``cmd``; returns the command's full name (``publish``,
    ``pubsub|numsub``), as Redis names it in errors.

    >>> check([b"PUBSUB", b"numpat"])
    'pubsub|numpat'
    """
    name = _text(cmd[0]).lower() if cmd else ""
    if name not in _ARITY:
        shown = _text(cmd[0]) if cmd else ""
        raise NotImplementedError(
            f"inbus.compat.redis does not implement the command {shown!r}: it implements "
            f"the pub/sub commands only ({_SUPPORTED})")
    if not _arity_ok(_ARITY[name], len(cmd)):
        raise _arity_error(name)
    if name != "pubsub":
        return name
    sub = _text(cmd[1]).lower()
    if sub not in _PUBSUB_ARITY:
        raise ResponseError(f"unknown subcommand '{_text(cmd[1])}'. Try PUBSUB HELP.")
    if not _arity_ok(_PUBSUB_ARITY[sub], len(cmd)):
        raise _arity_error(f"pubsub|{sub}")
    return f"pubsub|{sub}"


def _arity_ok(arity: int, n: int) -> bool:
    return n == arity if arity > 0 else n >= -arity


def run(hub: PubSubHub, cmd: list[bytes], fullname: str) -> Any:
    """The raw reply of a checked, non-subscription command (PING: its reply outside
    subscribed mode, or in RESP3)."""
    if fullname == "publish":
        return hub.publish(cmd[1], cmd[2])
    if fullname == "spublish":
        return hub.spublish(cmd[1], cmd[2])
    if fullname == "ping":
        if len(cmd) > 2:
            raise _arity_error("ping")
        return cmd[1] if len(cmd) == 2 else b"PONG"
    sub = fullname.partition("|")[2]
    if sub in ("channels", "shardchannels"):
        if len(cmd) > 3:
            raise ResponseError("unknown subcommand or wrong number of arguments for "
                                f"'{_text(cmd[1])}'. Try PUBSUB HELP.")
        pattern = cmd[2] if len(cmd) == 3 else None
        return (hub.pubsub_channels(pattern) if sub == "channels"
                else hub.pubsub_shardchannels(pattern))
    if sub in ("numsub", "shardnumsub"):
        pairs = (hub.pubsub_numsub(*cmd[2:]) if sub == "numsub"
                 else hub.pubsub_shardnumsub(*cmd[2:]))
        return [x for pair in pairs for x in pair]
    if sub == "numpat":
        return hub.pubsub_numpat()
    return list(PUBSUB_HELP)


def decode_reply(value: Any) -> Any:
    """``decode_responses=True``: every bulk string in the reply as ``str``."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, list):
        return [decode_reply(v) for v in value]
    return value


def reply_for_client(first: Any, reply: Any, decode: bool) -> Any:
    """What ``Redis.execute_command`` returns: decoded, then redis-py's callback for the
    command name as given (``str`` names only; redis-py's table is keyed by str)."""
    if decode:
        reply = decode_reply(reply)
    key = first.upper() if isinstance(first, str) else None
    if key == "PING":
        return (reply.decode() if isinstance(reply, bytes) else reply) == "PONG"
    if key in ("PUBSUB NUMSUB", "PUBSUB SHARDNUMSUB"):
        return list(zip(reply[0::2], reply[1::2], strict=True))
    return reply
