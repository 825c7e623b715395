"""Peewee tables. Times are UNIX seconds (floats): cheap to compare and index, and free
of time-zone ambiguity; the protocol layers turn them into ``xs:dateTime``.

The schema is created on first start (:func:`soapservice.store.open_store`); later
changes are numbered steps in ``store.MIGRATIONS``.
"""

from peewee import (
    SQL,
    AutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    DatabaseProxy,
    DoubleField,
    ForeignKeyField,
    IntegerField,
    Model,
    NodeList,
    SmallIntegerField,
    SqliteDatabase,
    TextField,
)

db = DatabaseProxy()

# Delivery states.
PENDING = 0  # due (or scheduled for a retry), possibly leased by a worker
BUFFERED = 1  # held for an inactive webhook until ActivateWebHook
DELIVERED = 2  # answered 2xx; kept for the retention period


class BaseModel(Model):
    class Meta:
        database = db


class Account(BaseModel):
    username = CharField(max_length=255, unique=True)
    password_hash = CharField(max_length=255)
    email = CharField(max_length=320, null=True)
    created_at = DoubleField()


class NeverReusedAutoField(AutoField):
    """SQLite reuses the highest id after that row is deleted; AUTOINCREMENT stops it.
    (PostgreSQL's sequences never reuse one.)"""

    def ddl(self, ctx):
        node = super().ddl(ctx)
        database = getattr(self.model._meta.database, "obj", self.model._meta.database)
        return NodeList((node, SQL("AUTOINCREMENT"))) if isinstance(
            database, SqliteDatabase) else node


class Webhook(BaseModel):
    # A deleted webhook's id is never handed out again, so a client (or a link) holding
    # an old id cannot reach a newer webhook with it.
    id = NeverReusedAutoField()
    account = ForeignKeyField(Account, backref="webhooks", on_delete="CASCADE")
    app = CharField(max_length=255)
    event = CharField(max_length=64)
    url = CharField(max_length=2048)
    secret = CharField(max_length=128)
    active = BooleanField(default=True)
    created_at = DoubleField()
    deactivated_at = DoubleField(null=True)
    # Increments on each deactivation: a reactivation link names one deactivation.
    deactivations = IntegerField(default=0)
    failure_count = IntegerField(default=0)
    dropped_events = IntegerField(default=0)
    last_success_at = DoubleField(null=True)
    last_failure_at = DoubleField(null=True)
    last_error = TextField(null=True)

    class Meta:
        indexes = ((("account", "event"), False),)


class Event(BaseModel):
    account = ForeignKeyField(Account, on_delete="CASCADE")
    name = CharField(max_length=64)
    # The data exactly as it will be POSTed (compact JSON): never re-encoded.
    body = TextField()
    subscriber = CharField(max_length=64, null=True)
    created_at = DoubleField()


class Delivery(BaseModel):
    event = ForeignKeyField(Event, on_delete="CASCADE")
    webhook = ForeignKeyField(Webhook, on_delete="CASCADE")
    # Ordering: deliveries sharing an order_key (account + URL + subscriber) go out in
    # seq order (the event id), one at a time. NULL: the event stands alone.
    order_key = CharField(max_length=64, null=True)
    seq = BigIntegerField()
    state = SmallIntegerField(default=PENDING)
    attempts = IntegerField(default=0)
    next_at = DoubleField()
    lease_owner = CharField(max_length=64, null=True)
    lease_token = CharField(max_length=32, null=True)
    lease_until = DoubleField(null=True)
    created_at = DoubleField()
    delivered_at = DoubleField(null=True)

    class Meta:
        indexes = (
            (("state", "next_at"), False),
            (("order_key", "state", "seq"), False),
            # The claim's per-webhook heads (outbox._due_candidates); its prefix serves
            # the per-webhook state lookups (buffer counts, replay, deactivation).
            (("webhook", "state", "next_at", "seq"), False),
            (("state", "delivered_at"), False),
        )


class Attempt(BaseModel):
    """The attempt log: one row per HTTP attempt, for operators (``soapservice
    deliveries``). Not a foreign key, so purging deliveries never waits on it."""

    delivery_id = BigIntegerField(index=True)
    webhook_id = BigIntegerField()
    at = DoubleField(index=True)
    status = IntegerField(null=True)
    error = TextField(null=True)
    duration_ms = DoubleField()

    class Meta:
        indexes = ((("webhook_id", "at"), False),)


class Notification(BaseModel):
    account = ForeignKeyField(Account, on_delete="CASCADE")
    webhook_id = BigIntegerField()
    reason = TextField()
    last_error = TextField(null=True)
    failure_count = IntegerField()
    buffered_events = IntegerField()
    link = TextField()
    created_at = DoubleField()
    mailed_at = DoubleField(null=True)


class Setting(BaseModel):
    """Server-wide values kept in the store (the token signing key, schema version)."""

    key = CharField(max_length=64, primary_key=True)
    value = TextField()


ALL_MODELS = (Account, Webhook, Event, Delivery, Attempt, Notification, Setting)
