"""``inbus inspect FILE``: what a store file holds, printed like rabbitmqctl.

Theory of operation
-------------------
:func:`inspect` asks :func:`inbus._sqlite.read_summary` for the file's contents (read-only:
the file is never created, written or migrated) and formats them the way ``rabbitmqctl
list_vhosts``, ``list_exchanges``, ``list_queues`` and ``list_bindings`` print: a
``Listing ...`` line, a header row, then tab-separated rows, per virtual host. Queues show
their stored (ready after a restart) message count and body bytes. Arguments print in
rabbitmqctl's style, ``[{"x-message-ttl",1000}]``.

Only what a file can hold is shown: durable entities, their bindings and persistent
messages. The default exchange's implicit bindings are not stored, so not listed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from ._sqlite import FileSummary, read_summary

__all__ = ["format_summary", "inspect"]


def inspect(path: str | os.PathLike[str]) -> str:
    """The contents of the store file ``path`` as rabbitmqctl-style text.

    Raises PersistenceError when the file is absent, in use by a running Bus, not an inbus
    store, of another schema version, or damaged. O(entities + queues) plus one pass over
    the messages table to count them.
    """
    return format_summary(read_summary(path))


def format_summary(s: FileSummary) -> str:
    """Format a :class:`~inbus._sqlite.FileSummary` (see :func:`inspect`)."""
    vhosts = list(s.vhosts)
    for v in [e.vhost for e in s.exchanges] + [q.vhost for q in s.queues] + [
            b.vhost for b in s.bindings] + [v for v, _ in s.ready]:
        if v not in vhosts:
            vhosts.append(v)
    out = [f"File {s.path}: inbus store, schema version {s.schema_version}, "
           f"closed cleanly: {'yes' if s.clean else 'no (recovered at next open)'}", ""]
    out += ["Listing vhosts ...", "name", *s.vhosts, ""]
    for v in vhosts:
        out.append(f"Listing exchanges for vhost {v} ...")
        out.append(_row(["name", "type", "durable", "auto_delete", "internal", "arguments"]))
        out += [_row([e.name, e.type, e.durable, e.auto_delete, e.internal, e.arguments])
                for e in s.exchanges if e.vhost == v]
        out.append("")
        out.append(f"Listing queues for vhost {v} ...")
        out.append(_row(["name", "durable", "auto_delete", "messages_ready",
                         "message_bytes_ready", "arguments"]))
        named = set()
        for q in s.queues:
            if q.vhost == v:
                named.add(q.name)
                n, size = s.ready.get((v, q.name), (0, 0))
                out.append(_row([q.name, q.durable, q.auto_delete, n, size, q.arguments]))
        for (qv, qname), (n, size) in sorted(s.ready.items()):
            if qv == v and qname not in named:  # never hide stored messages
                out.append(_row([qname, "?", "?", n, size, "(no queue record)"]))
        out.append("")
        out.append(f"Listing bindings for vhost {v} ...")
        out.append(_row(["source_name", "source_kind", "destination_name",
                         "destination_kind", "routing_key", "arguments"]))
        out += [_row([b.source, "exchange", b.destination, b.destination_kind, b.routing_key,
                      b.arguments]) for b in s.bindings if b.vhost == v]
        out.append("")
    return "\n".join(out)


def _row(cells: Iterable[Any]) -> str:
    return "\t".join(_cell(c) for c in cells)


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "[" + ",".join(f'{{"{k}",{_value(x)}}}' for k, x in v.items()) + "]"
    return str(v)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, bytes):
        return '"' + v.decode("utf-8", "backslashreplace") + '"'
    if isinstance(v, dict):
        return _cell(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_value(x) for x in v) + "]"
    return str(v)
