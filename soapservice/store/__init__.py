"""The store: opening the database, creating and migrating the schema.

Query functions live beside this module, named for what the rest of the service asks
(``accounts.find``, ``webhooks.create``, ``outbox.claim_due``, ...). Everything here
blocks: callers on the reactor thread go through a thread pool.
"""

from __future__ import annotations

import collections
import secrets
import threading
from dataclasses import dataclass

from peewee import (
    Database,
    InterfaceError,
    OperationalError,
    PostgresqlDatabase,
    SqliteDatabase,
    __exception_wrapper__,
)
from playhouse.db_url import connect
from playhouse.pool import PooledPostgresqlDatabase
from playhouse.shortcuts import ReconnectMixin

from soapservice.models import ALL_MODELS, Setting, db
from soapservice.store import health as _health  # noqa: F401 (SafeSqliteDatabase)

SCHEMA_VERSION = 14


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


def _rotation_and_snippets(database: Database) -> None:
    """4: the previous secret of a rotation with the end of its grace period, and the
    first 1 KiB of each attempt's answer body."""
    from playhouse.migrate import SchemaMigrator, migrate

    from soapservice.models import Attempt, Webhook
    migrator = SchemaMigrator.from_database(database)
    columns = {c.name for c in database.get_columns("webhook")}
    steps = [migrator.add_column("webhook", name, field) for name, field in (
        ("previous_secret", Webhook.previous_secret),
        ("previous_secret_until", Webhook.previous_secret_until)) if name not in columns]
    if "response_snippet" not in {c.name for c in database.get_columns("attempt")}:
        steps.append(migrator.add_column("attempt", "response_snippet",
                                         Attempt.response_snippet))
    migrate(*steps)


def _idempotency_keys(database: Database) -> None:
    """5: the idempotency keys of ingest (a new table, unique per account and key)."""
    from soapservice.models import IdempotencyKey
    database.create_tables([IdempotencyKey], safe=True)


def _mail_retries(database: Database) -> None:
    """6: a notification's mail attempts and next attempt are stored (a restart
    resumes the retries; they lived in the process's memory)."""
    from playhouse.migrate import SchemaMigrator, migrate

    from soapservice.models import Notification
    migrator = SchemaMigrator.from_database(database)
    columns = {c.name for c in database.get_columns("notification")}
    migrate(*[migrator.add_column("notification", name, field) for name, field in (
        ("mail_attempts", Notification.mail_attempts),
        ("mail_next_at", Notification.mail_next_at)) if name not in columns])


def _heads(database: Database) -> None:
    """7: the head of each ordering key as state (``delivery.blocked``, store.heads): the
    claim reads heads only; unexpired leases from their own index; notifications count
    the deliveries held behind a buffer."""
    # (the columns came first: _columns_before_indexes)
    database.execute_sql("DROP INDEX IF EXISTS delivery_webhook_id_state_next_at_seq")
    database.execute_sql("CREATE INDEX IF NOT EXISTS delivery_webhook_id_state_blocked_"
                         "next_at_seq ON delivery (webhook_id, state, blocked, next_at, seq)")
    database.execute_sql("CREATE INDEX IF NOT EXISTS delivery_lease_until "
                         "ON delivery (lease_until)")
    from soapservice.store import heads
    heads.recompute_all()


def _receiver_pause(database: Database) -> None:
    """8: a webhook's pause asked for by its receiver (429/503 + Retry-After)."""
    from playhouse.migrate import SchemaMigrator, migrate

    from soapservice.models import Webhook
    if "paused_until" not in {c.name for c in database.get_columns("webhook")}:
        migrate(SchemaMigrator.from_database(database).add_column(
            "webhook", "paused_until", Webhook.paused_until))


def _resent_message_ids(database: Database) -> None:
    """9: a resent delivery names the delivery whose webhook-id it repeats."""
    from playhouse.migrate import SchemaMigrator, migrate

    from soapservice.models import Delivery
    if "message_of" not in {c.name for c in database.get_columns("delivery")}:
        migrate(SchemaMigrator.from_database(database).add_column(
            "delivery", "message_of", Delivery.message_of))


def _portal_links(database: Database) -> None:
    """10: each notification's link to the customer portal (soapservice.portal_links)."""
    from playhouse.migrate import SchemaMigrator, migrate

    from soapservice.models import Notification
    if "portal_link" not in {c.name for c in database.get_columns("notification")}:
        migrate(SchemaMigrator.from_database(database).add_column(
            "notification", "portal_link", Notification.portal_link))


def _portal_rollup(database: Database) -> None:
    """11: the portal's attempts per webhook and hour (``attempt_hours``, one row per
    hour; created with the other tables), filled from the attempt log of the last days.
    Step 10's first shape of it (``attempt_hour``, a row per duration bucket) is gone."""
    import time

    from soapservice.store import portal
    database.execute_sql("DROP TABLE IF EXISTS attempt_hour")
    portal.backfill(time.time() - portal.KEEP_HOURS * portal.HOUR)


def _delivery_log_indexes(database: Database) -> None:
    """12: the delivery log reads a webhook's deliveries newest first from (webhook, id)
    and (webhook, state, id) (created with the model's indexes); (webhook, id) replaces
    the foreign key's own index. Without them PostgreSQL walked the primary key
    backwards through every other webhook's rows (58 ms at 100,000 deliveries), and a
    filter that matched few rows read the whole webhook on either store."""
    database.execute_sql("DROP INDEX IF EXISTS delivery_webhook_id")


def _fronts(database: Database) -> None:
    """13: each webhook's front (when its earliest ready head may be due; store.heads)
    so that a claim visits only webhooks with due work, and the workers' heartbeats
    (the live workers share each webhook's slots)."""
    from soapservice.models import WebhookFront, WorkerBeat
    from soapservice.store import heads
    database.create_tables([WebhookFront, WorkerBeat], safe=True)
    heads.create_front_triggers(database)
    heads.recompute_fronts(database)


def _leases_apart(database: Database) -> None:
    """14: a claim leaves ``next_at`` where it is (store.claims): the lease index holds
    leased rows only (delivery_leases, made after the steps), and the front trigger
    also looks at ``lease_until`` (SQLite keeps a trigger it has: drop it first). Rows
    leased before keep ``next_at`` at their lease's expiry, which is still right."""
    database.execute_sql("DROP INDEX IF EXISTS delivery_lease_until")
    if not is_postgres(database):
        database.execute_sql("DROP TRIGGER IF EXISTS delivery_front_update")


# Columns that the model's indexes name: added before create_tables creates those
# indexes on an existing table (PostgreSQL refuses an index on a missing column;
# SQLite takes a double-quoted unknown name for a string and indexes a constant).
_NEW_COLUMNS = (("delivery", "blocked", "SMALLINT NOT NULL DEFAULT 0"),
                ("notification", "held_events", "INTEGER NOT NULL DEFAULT 0"))


def _columns_before_indexes(database: Database) -> None:
    for table, column, ddl in _NEW_COLUMNS:
        if database.table_exists(table) and column not in {
                c.name for c in database.get_columns(table)}:
            database.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {ddl}')


def _partial_indexes(database: Database) -> None:
    """Indexes Peewee's model cannot declare: the retrying heads a probing webhook's
    claim reads (a few rows, however long the webhook's queue), and the leased rows
    (the requests running per webhook, the leases' expiries). Their WHERE is written
    with literals, as the claim's query is: SQLite uses a partial index only then.
    And the triggers that keep the webhooks' fronts (store.heads)."""
    database.execute_sql(
        "CREATE INDEX IF NOT EXISTS delivery_retry_heads ON delivery "
        "(webhook_id, next_at, seq) WHERE state = 0 AND blocked = 0 AND attempts > 0")
    database.execute_sql(
        "CREATE INDEX IF NOT EXISTS delivery_leases ON delivery (webhook_id, lease_until) "
        "WHERE lease_until IS NOT NULL")
    from soapservice.store import heads
    heads.create_front_triggers(database)


# Later schema changes: append (version, function(database)) steps here; open_store
# applies the missing ones in order inside one transaction (playhouse.migrate).
MIGRATIONS: list = [(2, _claim_index), (3, _double_precision_times),
                    (4, _rotation_and_snippets), (5, _idempotency_keys), (6, _mail_retries),
                    (7, _heads), (8, _receiver_pause),
                    (9, _resent_message_ids), (10, _portal_links),
                    (11, _portal_rollup), (12, _delivery_log_indexes),
                    (13, _fronts), (14, _leases_apart)]

_SQLITE_PRAGMAS = {
    # Freed pages go back to the file system after a purge (store.retention); a file
    # made before this setting keeps auto_vacuum=NONE until one VACUUM (docs). First: it
    # takes effect only on a file without tables, before WAL mode writes the header.
    "auto_vacuum": "incremental",
    "journal_mode": "wal",
    # WAL + NORMAL: a committed transaction survives a process crash (kill -9);
    # SOAPSERVICE_SQLITE_SYNCHRONOUS=full also survives power loss, at a cost.
    "synchronous": "normal",
    "foreign_keys": 1,
    "busy_timeout": 10000,
    "cache_size": -16000,
    # The WAL is truncated to this after checkpoints (it grew to 83 MB in a purge).
    "journal_size_limit": 64 * 1024 * 1024,
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


# Set while the thread opens a transaction whose loss in a PostgreSQL crash only means a
# redelivery (write_transaction(relaxed=True)).
_relaxed = threading.local()


class _RelaxedBegin:
    """``BEGIN`` of a relaxed transaction sends ``SET LOCAL synchronous_commit = off``
    with it, in the same round trip: its COMMIT returns without waiting for the WAL
    flush (docs/delivery.rst, "Commits that may be lost")."""

    def begin(self, isolation_level=None):
        if getattr(_relaxed, "on", False) and not (isolation_level
                                                   or self._isolation_level):
            with __exception_wrapper__:
                self.cursor().execute("BEGIN; SET LOCAL synchronous_commit = off")
            return
        super().begin(isolation_level)


class _PostgresStore(ReconnectMixin, _RelaxedBegin, PooledPostgresqlDatabase):
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
                if not _schema_current(database):
                    _columns_before_indexes(database)
                    database.create_tables(ALL_MODELS, safe=True)
                    _migrate(database)
                    _partial_indexes(database)
        return database


@dataclass(frozen=True)
class Store:
    """An opened store, carried explicitly by the wiring (``server.make_app`` takes one;
    the ``App`` names it). The models are bound to its database by opening it: Peewee
    models reach their database through one process-wide proxy (``models.db``), so a
    process has one store open at a time; opening is the caller's explicit act."""

    url: str
    database: Database

    @classmethod
    def open(cls, url: str, *, synchronous: str | None = None) -> Store:
        return cls(url, open_store(url, synchronous=synchronous))

    @property
    def postgres(self) -> bool:
        return is_postgres(self.database)


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


def _schema_current(database: Database) -> bool:
    """True when the schema is at SCHEMA_VERSION: then no DDL runs at all. On
    PostgreSQL even ``CREATE INDEX IF NOT EXISTS`` of an existing index takes a SHARE
    lock on its table, which deadlocked a starting process (``soapservice emit``, a
    worker) with another one's ingest transaction."""
    if not database.table_exists(Setting._meta.table_name):
        return False
    row = Setting.get_or_none(Setting.key == "schema_version")
    return row is not None and row.value == str(SCHEMA_VERSION)


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


def existing_secret(name: str) -> bytes | None:
    """The key :func:`server_secret` made, read only (None: not made yet)."""
    row = Setting.get_or_none(Setting.key == name)
    return bytes.fromhex(row.value) if row else None


def ping() -> bool:
    """True when the store answers a trivial query (for /healthz)."""
    db.execute_sql("SELECT 1").fetchone()
    return True


# SQLite: the process's threads take turns at the write lock here, in the order they
# asked, before ``BEGIN IMMEDIATE``. SQLite's own wait (``busy_timeout``) polls with
# growing sleeps (up to 100 ms): a thread that writes again right after committing (a
# purge step, a run of outcome batches) takes the lock again before a polling ingest
# wakes up, which kept one ``POST /events`` waiting 5.8 s behind a purge.
class _Turns:
    """A lock handed to its waiters first come, first served (``threading.Lock`` lets
    the releasing thread take it straight back)."""

    def __init__(self):
        self._guard = threading.Lock()
        self._waiting: collections.deque[threading.Lock] = collections.deque()
        self._held = False

    def acquire(self) -> None:
        with self._guard:
            if not self._held:
                self._held = True
                return
            mine = threading.Lock()
            mine.acquire()
            self._waiting.append(mine)
        mine.acquire()  # released by the holder handing over

    def release(self) -> None:
        with self._guard:
            if self._waiting:
                self._waiting.popleft().release()  # still held: now by that waiter
            else:
                self._held = False


_write_turn = _Turns()


class _Turn:
    """The process's write turn, then ``BEGIN IMMEDIATE`` (a class, not a generator:
    contextlib sets ``__traceback__`` on what passes through, which a frozen dataclass
    exception refuses)."""

    def __init__(self, database: Database):
        self.txn = database.atomic("IMMEDIATE")

    def __enter__(self):
        _write_turn.acquire()
        try:
            return self.txn.__enter__()
        except BaseException:
            _write_turn.release()
            raise

    def __exit__(self, *exc):
        try:
            return self.txn.__exit__(*exc)
        finally:
            _write_turn.release()


class _RelaxedTxn:
    """A PostgreSQL transaction begun by :class:`_RelaxedBegin`."""

    def __init__(self, database: Database):
        self.txn = database.atomic()

    def __enter__(self):
        _relaxed.on = True
        try:
            return self.txn.__enter__()
        finally:
            _relaxed.on = False

    def __exit__(self, *exc):
        return self.txn.__exit__(*exc)


def write_transaction(*, relaxed: bool = False):
    """A transaction that will write. On SQLite it takes the write lock up front
    (``BEGIN IMMEDIATE``): a deferred transaction that reads first and then writes can
    fail at once with "database is locked" when another connection wrote meanwhile,
    whereas an immediate one waits its turn (``busy_timeout``). The outermost one also
    waits for the process's write turn first (:data:`_write_turn`); nested ones are
    savepoints inside it.

    ``relaxed``: on PostgreSQL the outermost transaction commits without waiting for
    its WAL to reach the disk (``synchronous_commit = off``): for the outcomes and
    claims of the delivery loop only, whose loss in a PostgreSQL crash means a
    redelivery, which the at-least-once contract allows; never for ingest or anything
    acknowledged to a client (docs/delivery.rst). :func:`durable_commit` takes it back
    for one transaction. No effect on SQLite (WAL + ``synchronous=normal``: its commits
    do not wait for the disk either) nor inside another transaction."""
    database = db.obj
    if isinstance(database, SqliteDatabase):
        if database.in_transaction():
            return database.atomic("IMMEDIATE")
        return _Turn(database)
    if relaxed and not database.in_transaction():
        return _RelaxedTxn(database)
    return database.atomic()


def durable_commit() -> None:
    """PostgreSQL: the current transaction, even a relaxed one, commits only once its
    WAL is on disk (e.g. an outcome batch that deactivates a webhook and stores the
    notification mail about it)."""
    if is_postgres():
        db.obj.execute_sql("SET LOCAL synchronous_commit = on")


def data_version() -> int | None:
    """SQLite's ``PRAGMA data_version``: changes whenever another connection (another
    process, e.g. ``soapservice emit``) committed. None on PostgreSQL (LISTEN/NOTIFY
    serves there)."""
    if is_postgres():
        return None
    return db.obj.execute_sql("PRAGMA data_version").fetchone()[0]
