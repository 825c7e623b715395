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
    CompositeKey,
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

# Where a pending delivery stands in its ordering key (``Delivery.blocked``; see
# soapservice.store.heads).
READY = 0  # a head: may be claimed once due
WAITING = 1  # behind an earlier pending delivery of its key
HELD = 2  # behind an earlier buffered delivery of its key (SPEC §7)


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
    # RotateWebHookSecret: the secret before the last rotation signs beside the new one
    # until previous_secret_until (Standard Webhooks multi-signature), then it is unused.
    previous_secret = CharField(max_length=128, null=True)
    previous_secret_until = DoubleField(null=True)
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
    # A receiver's 429/503 with Retry-After: no request to this webhook before this time
    # (store.claims skips it; soapservice.steering).
    paused_until = DoubleField(null=True)

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
    # (indexed by (webhook, id) below, which serves what an index of its own would)
    webhook = ForeignKeyField(Webhook, on_delete="CASCADE", index=False)
    # Ordering: deliveries sharing an order_key (account + URL + subscriber) go out in
    # seq order (the event id), one at a time. NULL: the event stands alone.
    order_key = CharField(max_length=64, null=True)
    seq = BigIntegerField()
    state = SmallIntegerField(default=PENDING)
    # (a default in the schema too: rows inserted by plain SQL are heads)
    blocked = SmallIntegerField(default=READY, constraints=[SQL("DEFAULT 0")])
    attempts = IntegerField(default=0)
    next_at = DoubleField()
    lease_owner = CharField(max_length=64, null=True)
    lease_token = CharField(max_length=32, null=True)
    lease_until = DoubleField(null=True)
    created_at = DoubleField()
    delivered_at = DoubleField(null=True)
    # A resend (store.resend): the delivery whose webhook-id (``msg_<id>``) it repeats.
    message_of = BigIntegerField(null=True)

    class Meta:
        indexes = (
            (("state", "next_at"), False),
            (("order_key", "state", "seq"), False),
            # The claim's per-webhook heads (store.claims); its prefix serves the
            # per-webhook state lookups (buffer and held counts, replay, deactivation).
            (("webhook", "state", "blocked", "next_at", "seq"), False),
            # (Leases: the partial index delivery_leases of leased rows only, made by
            # the store: a claim writes one index entry per leased row.)
            (("state", "delivered_at"), False),
            # The delivery log (GetWebHookDeliveries, the portal): a webhook's newest
            # first, of every state or of one, read in id order from an index.
            (("webhook", "id"), False),
            (("webhook", "state", "id"), False),
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
    # The first 1 KiB of the receiver's answer body, as text (GetWebHookDeliveries).
    response_snippet = TextField(null=True)

    class Meta:
        indexes = ((("webhook_id", "at"), False),)


class IdempotencyKey(BaseModel):
    """An ``Idempotency-Key`` of POST /events (and emit): unique per account, so two
    processes racing with one key store one event. ``fingerprint`` is a hash of the
    event name and body: the same key with other data is a conflict."""

    account = ForeignKeyField(Account, on_delete="CASCADE")
    key = CharField(max_length=255)
    fingerprint = CharField(max_length=64)
    event_id = BigIntegerField()
    queued = IntegerField()
    created_at = DoubleField(index=True)

    class Meta:
        indexes = ((("account", "key"), True),)


class Notification(BaseModel):
    account = ForeignKeyField(Account, on_delete="CASCADE")
    webhook_id = BigIntegerField()
    reason = TextField()
    last_error = TextField(null=True)
    failure_count = IntegerField()
    buffered_events = IntegerField()
    # Deliveries of other webhooks at the same URL waiting behind this buffer.
    held_events = IntegerField(default=0, constraints=[SQL("DEFAULT 0")])
    link = TextField()
    # The signed link that opens the customer portal on this webhook (soapservice.portal_links).
    portal_link = TextField(null=True)
    created_at = DoubleField()
    mailed_at = DoubleField(null=True)
    # The notification mail: attempts made, and when the next is due (None: nothing
    # pending: mailed, given up, or no mail wanted), so a restart resumes the retries.
    mail_attempts = IntegerField(default=0)
    mail_next_at = DoubleField(null=True)


class Setting(BaseModel):
    """Server-wide values kept in the store (the token signing key, schema version)."""

    key = CharField(max_length=64, primary_key=True)
    value = TextField()


class OperatorEvent(BaseModel):
    """The audit trail: one row per operator event (``webhook.failing``, ...), written
    in the transaction of the transition it reports (``soapservice audit``). ``data`` is
    the JSON sent to SOAPSERVICE_OPERATOR_WEBHOOK_URL, byte for byte. Account and URL
    are copied: the trail outlives a deleted webhook."""

    kind = CharField(max_length=64)
    account_id = BigIntegerField()
    account_name = CharField(max_length=255)
    webhook_id = BigIntegerField()
    url = CharField(max_length=2048)
    at = DoubleField(index=True)
    data = TextField()

    class Meta:
        table_name = "operator_event"
        indexes = ((("webhook_id", "kind", "at"), False), (("account_id", "at"), False))


class AttemptHour(BaseModel):
    """Attempts per webhook per hour for the portal's charts (store.portal): how many
    succeeded (2xx) and failed, and how many took each duration (``d0``..``d11``, the
    buckets of store.portal.DURATION_BOUNDS_MS), added to in the outcome batch: a
    day's chart reads 24 rows however many attempts the webhook had."""

    webhook_id = BigIntegerField()
    hour = BigIntegerField()  # UNIX time // 3600
    succeeded = IntegerField(default=0)
    failed = IntegerField(default=0)
    d0 = IntegerField(default=0)
    d1 = IntegerField(default=0)
    d2 = IntegerField(default=0)
    d3 = IntegerField(default=0)
    d4 = IntegerField(default=0)
    d5 = IntegerField(default=0)
    d6 = IntegerField(default=0)
    d7 = IntegerField(default=0)
    d8 = IntegerField(default=0)
    d9 = IntegerField(default=0)
    d10 = IntegerField(default=0)
    d11 = IntegerField(default=0)

    class Meta:
        table_name = "attempt_hours"
        primary_key = CompositeKey("webhook_id", "hour")
        indexes = ((("hour",), False),)



class WebhookFront(BaseModel):
    """When a webhook's earliest ready head may be due: a lower bound (NULL: no ready
    head), kept by triggers wherever a head becomes ready or earlier and raised by the
    claim (store.heads, store.claims), so a claim visits only webhooks with due work."""

    webhook = ForeignKeyField(Webhook, primary_key=True, on_delete="CASCADE")
    front_at = DoubleField(null=True)

    class Meta:
        table_name = "webhook_front"
        indexes = ((("front_at", "webhook"), False),)


class WorkerBeat(BaseModel):
    """A delivery worker's last claim (store.claims): the live workers share each
    webhook's slots."""

    owner = CharField(max_length=64, primary_key=True)
    seen_at = DoubleField()

    class Meta:
        table_name = "worker_beat"


ALL_MODELS = (Account, Webhook, Event, Delivery, Attempt, IdempotencyKey, Notification, Setting,
              OperatorEvent, AttemptHour, WebhookFront, WorkerBeat)
