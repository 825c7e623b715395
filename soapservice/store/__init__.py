"""The store: opening the database, creating and migrating the schema.

Query functions live beside this module, named for what the rest of the service asks
(``accounts.find``, ``webhooks.create``, ``outbox.claim_due``, ...). Everything here
blocks: callers on the reactor thread go through a thread pool.
"""

from __future__ import annotations

import secrets
import threading

from peewee import (
    Database,
    InterfaceError,
    OperationalError,
    PostgresqlDatabase,
    SqliteDatabase,
)
from playhouse.db_url import connect
from playhouse.pool import PooledPostgresqlDatabase
from playhouse.shortcuts import ReconnectMixin

from soapservice.models import ALL_MODELS, Setting, db

SCHEMA_VERSION = 3


def _claim_index(database: Database) -> None:
    """2: the delivery claim reads each webhook's first due rows from an index on
    (webhook, state, next_at, seq), which also covers what (webhook, state, seq) did."""
    database.execute_sql("CREATE INDEX IF NOT EXISTS delivery_webhook_id_state_next_at_seq "
                         "ON delivery (webhook_id, state, next_at, seq)")
    database.execute_sql("DROP INDEX IF EXISTS delivery_webhook_id_state_seq")


def _double_precision_times(database: Database) -> None:
    """3: times and durations as 8-byte floats. On PostgreSQL peewee's FloatField is a
    4-byte REAL, which rounds a UNIX time to about two minutes (a lease set 40 s ahead
    could read as already expired). SQLite's REAL is 8 bytes already: nothing to do."""
    if not isinstance(database, PostgresqlDatabase):
        return
    from peewee import DoubleField
    for model in ALL_MODELS:
        for field in model._meta.sorted_fields:
            if isinstance(field, DoubleField):
                database.execute_sql(
                    f'ALTER TABLE "{model._meta.table_name}" ALTER COLUMN '
                    f'"{field.column_name}" TYPE DOUBLE PRECISION')


# Later schema changes: append (version, function(database)) steps here; open_store
# applies the missing ones in order inside one transaction (playhouse.migrate).
MIGRATIONS: list = [(2, _claim_index), (3, _double_precision_times)]

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

# pg_advisory_xact_lock keys (any two distinct 64-bit numbers; these spell "soapsvc").
SCHEMA_LOCK = 0x736F617073766301
INGEST_LOCK = 0x736F617073766302
CLAIM_LOCK = 0x736F617073766303
# The channel on which a PostgreSQL store announces due work to every worker.
CHANNEL = "soapservice_due"
# Connections a process may hold (one per thread that touches the store).
POOL_MAX_CONNECTIONS = 32


class _PostgresStore(ReconnectMixin, PooledPostgresqlDatabase):
    """A pool whose threads get a new connection after PostgreSQL dropped theirs (a
    server restart, a terminated backend, a network cut): a statement outside a
    transaction or a transaction's BEGIN is retried once on a fresh connection; a
    transaction cut midway fails (nothing of it was committed) and the next one starts
    on a fresh connection."""

    reconnect_errors = (
        (OperationalError, "server closed the connection"),
        (OperationalError, "terminating connection"),
        (OperationalError, "connection already closed"),
        (OperationalError, "could not receive data from server"),
        (OperationalError, "ssl syscall error"),
        (InterfaceError, "connection already closed"),
    )


def application_name() -> str:
    import os
    return f"soapservice[{os.getpid()}]"


def _postgres(url: str) -> Database:
    """``postgresql://...`` (or ``postgres://``) as a pooled, reconnecting store."""
    from playhouse.db_url import parse
    params = parse(url)
    # Names the process in pg_stat_activity (which process holds what, for operators).
    params.setdefault("application_name", application_name())
    return _PostgresStore(params.pop("database"), max_connections=POOL_MAX_CONNECTIONS,
                          stale_timeout=300, timeout=30, **params)


def open_store(url: str, *, synchronous: str | None = None) -> Database:
    """Connect the models to ``url`` and make sure the schema exists."""
    with _lock:
        if url.startswith("sqlite"):
            pragmas = dict(_SQLITE_PRAGMAS)
            if synchronous:
                pragmas["synchronous"] = synchronous
            database = connect(url, pragmas=pragmas, check_same_thread=False)
        elif url.startswith("postgres"):
            # Each thread keeps one pooled connection (peewee's connections are
            # per thread); a process has a few store threads, not hundreds.
            database = _postgres(url)
        else:
            database = connect(url)
        previous = db.obj
        db.initialize(database)
        if isinstance(previous, PostgresqlDatabase) and previous is not database:
            _close(previous)
        with database.connection_context():
            with database.atomic():
                if is_postgres(database):
                    # Several processes starting at once: one creates or migrates the
                    # schema, the others wait here and then find it done.
                    advisory_lock(SCHEMA_LOCK, database)
                database.create_tables(ALL_MODELS, safe=True)
                _migrate(database)
        return database


def _close(database: Database) -> None:
    """Release a replaced store's connections (tests open many stores)."""
    close_all = getattr(database, "close_all", None)
    if close_all is not None:
        close_all()
    else:
        database.close()


def close_store() -> None:
    """Close the current store's connections (all of them for a pool)."""
    if db.obj is not None:
        _close(db.obj)


def is_postgres(database: Database | None = None) -> bool:
    database = db.obj if database is None else database
    return isinstance(database, PostgresqlDatabase)


def advisory_lock(key: int, database: Database | None = None) -> None:
    """PostgreSQL: wait for the transaction-level advisory lock ``key`` (held until the
    transaction ends). Call inside a transaction."""
    database = db.obj if database is None else database
    database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (key,))


def notify_due() -> None:
    """Tell every listening worker that work is due (PostgreSQL only; sent when the
    current transaction commits). SQLite processes rely on the in-process wake-up and
    the sweep."""
    if is_postgres():
        db.obj.execute_sql(f"NOTIFY {CHANNEL}")


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


def data_version() -> int | None:
    """SQLite's ``PRAGMA data_version``: changes whenever another connection (another
    process, e.g. ``soapservice emit``) committed. None on PostgreSQL (LISTEN/NOTIFY
    serves there)."""
    if is_postgres():
        return None
    return db.obj.execute_sql("PRAGMA data_version").fetchone()[0]
