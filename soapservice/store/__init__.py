"""The store: opening the database, creating and migrating the schema.

Query functions live beside this module, named for what the rest of the service asks
(``accounts.find``, ``webhooks.create``, ``outbox.claim_due``, ...). Everything here
blocks: callers on the reactor thread go through a thread pool.
"""

from __future__ import annotations

import secrets
import threading

from peewee import Database, SqliteDatabase
from playhouse.db_url import connect

from soapservice.models import ALL_MODELS, Setting, db

SCHEMA_VERSION = 1
# Later schema changes: append (version, function(database)) steps here; open_store
# applies the missing ones in order inside one transaction (playhouse.migrate).
MIGRATIONS: list = []

_SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    # WAL + NORMAL: a committed transaction survives a process crash (kill -9);
    # SOAPSERVICE_SQLITE_SYNCHRONOUS=full also survives power loss, at a cost.
    "synchronous": "normal",
    "foreign_keys": 1,
    "busy_timeout": 10000,
    "cache_size": -16000,
}

_lock = threading.Lock()


def open_store(url: str, *, synchronous: str | None = None) -> Database:
    """Connect the models to ``url`` and make sure the schema exists."""
    with _lock:
        if url.startswith("sqlite"):
            pragmas = dict(_SQLITE_PRAGMAS)
            if synchronous:
                pragmas["synchronous"] = synchronous
            database = connect(url, pragmas=pragmas, check_same_thread=False)
        else:
            database = connect(url)
        db.initialize(database)
        with database.connection_context():
            with database.atomic():
                database.create_tables(ALL_MODELS, safe=True)
                _migrate(database)
        return database


def _migrate(database: Database) -> None:
    row = Setting.get_or_none(Setting.key == "schema_version")
    current = int(row.value) if row else 0
    if current == 0:
        Setting.insert(key="schema_version", value=str(SCHEMA_VERSION)).on_conflict_ignore(
        ).execute()
        return
    for version, step in MIGRATIONS:
        if version > current:
            step(database)
            Setting.update(value=str(version)).where(
                Setting.key == "schema_version").execute()


def server_secret(name: str) -> bytes:
    """A random key created once and kept in the store (e.g. for signing links)."""
    row = Setting.get_or_none(Setting.key == name)
    if row is None:
        Setting.insert(key=name, value=secrets.token_hex(32)).on_conflict_ignore().execute()
        row = Setting.get(Setting.key == name)
    return bytes.fromhex(row.value)


def ping() -> bool:
    """True when the store answers a trivial query (for /healthz)."""
    db.execute_sql("SELECT 1").fetchone()
    return True


def write_transaction():
    """A transaction that will write. On SQLite it takes the write lock up front
    (``BEGIN IMMEDIATE``): a deferred transaction that reads first and then writes can
    fail at once with "database is locked" when another connection wrote meanwhile,
    whereas an immediate one waits its turn (``busy_timeout``)."""
    database = db.obj
    if isinstance(database, SqliteDatabase):
        return database.atomic("IMMEDIATE")
    return database.atomic()
