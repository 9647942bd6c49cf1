"""The store file's format: its tables, its schema versions and the migrations between
them (data only; :mod:`inbus._sqlite` runs them).

Table ``meta`` holds the rows ``schema_version`` and ``clean``. ``MIGRATIONS[i]`` takes a
file from version ``i`` to ``i + 1`` (version 0 = an empty file); the store runs the ones a
file needs inside its opening transaction, so an upgrade is all-or-nothing, and refuses a
file of a version newer than ``SCHEMA_VERSION``. A new version appends a tuple of
statements here and never edits an old one: a file written by any earlier inbus must
upgrade to exactly the tables a new file gets.

Tables: ``vhosts``; ``exchanges``, ``queues`` and ``bindings`` with their arguments as tagged
JSON (binding arguments canonical, so a delete can match them); ``messages``, one row per
persistent message in a durable queue, ordered by ``seq`` within its queue.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "V1", "V2"]

V1 = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE vhosts (name TEXT NOT NULL UNIQUE)",
    "CREATE TABLE exchanges (vhost TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,"
    " durable INTEGER NOT NULL, auto_delete INTEGER NOT NULL, internal INTEGER NOT NULL,"
    " arguments TEXT NOT NULL, UNIQUE (vhost, name))",
    "CREATE TABLE queues (vhost TEXT NOT NULL, name TEXT NOT NULL, durable INTEGER NOT NULL,"
    " auto_delete INTEGER NOT NULL, arguments TEXT NOT NULL, UNIQUE (vhost, name))",
    "CREATE TABLE bindings (vhost TEXT NOT NULL, source TEXT NOT NULL,"
    " destination TEXT NOT NULL, destination_kind TEXT NOT NULL,"
    " routing_key TEXT NOT NULL, arguments TEXT NOT NULL,"
    " UNIQUE (vhost, source, destination, destination_kind, routing_key, arguments))",
    "CREATE INDEX bindings_by_destination ON bindings (vhost, destination)",
    "CREATE TABLE messages (vhost TEXT NOT NULL, queue TEXT NOT NULL, seq INTEGER NOT NULL,"
    " exchange TEXT NOT NULL, routing_key TEXT NOT NULL, body BLOB NOT NULL,"
    " properties TEXT NOT NULL, redelivered INTEGER NOT NULL, expires_at REAL,"
    " death_count INTEGER NOT NULL, UNIQUE (vhost, queue, seq))",
    "INSERT INTO meta VALUES ('clean', '1')",
)

# Version 2: a message's x-delivery-limit count ("returns": times it went back to its
# queue) and the routing keys it was published with when CC / BCC headers added some (JSON
# list; NULL = its routing_key only), so both survive a restart.
V2 = (
    "ALTER TABLE messages ADD COLUMN returns INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE messages ADD COLUMN routing_keys TEXT",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (V1, V2)
SCHEMA_VERSION = len(MIGRATIONS)
