"""A store that cannot write (SQLite's SQLITE_FULL, made here with max_page_count, the
same error a full disk gives): the real cause reaches the caller (not peewee's "cannot
rollback"), one log line opens and one closes the episode, and the health check says the
store cannot write until it can again."""

import logging

import peewee
import pytest

from soapservice import outage, store
from soapservice.store import health, outbox

WINDOW = 5 * 86400.0


@pytest.fixture
def full_store(tmp_path):
    """A SQLite store and a switch that fills it (no page may be added)."""
    database = store.open_store(f"sqlite:///{tmp_path / 'full.db'}")
    def fill(full=True):
        pages = database.execute_sql("PRAGMA page_count").fetchone()[0]
        database.execute_sql(f"PRAGMA max_page_count = {pages if full else 2**30}")

    yield database, fill
    store.close_store()


def big_write(database):
    with store.write_transaction():
        database.execute_sql("CREATE TABLE IF NOT EXISTS filler (x BLOB)")
        database.execute_sql("INSERT INTO filler VALUES (randomblob(200000))")


def test_the_real_cause_propagates_not_cannot_rollback(full_store):
    database, fill = full_store
    assert isinstance(database, health.SafeSqliteDatabase)
    fill()
    with pytest.raises(peewee.OperationalError) as caught:
        big_write(database)
    assert "database or disk is full" in str(caught.value)
    assert outage.real_cause(caught.value) == "database or disk is full"
    fill(False)
    big_write(database)  # the connection is usable again


def test_real_cause_reads_through_a_masking_rollback_error():
    try:
        try:
            raise peewee.OperationalError("database or disk is full")
        except peewee.OperationalError:
            raise peewee.OperationalError(
                "cannot rollback - no transaction is active") from None
    except peewee.OperationalError as masked:
        masked.__context__ = peewee.OperationalError("database or disk is full")
        assert outage.real_cause(masked) == "database or disk is full"
    assert outage.is_store_error(peewee.InterfaceError("x"))
    assert outage.is_store_error(peewee.OperationalError("database or disk is full"))
    assert not outage.is_store_error(peewee.OperationalError("no such table: webhook"))
    assert not outage.is_store_error(ValueError("x"))


def test_one_line_per_episode(caplog):
    now = [0.0]
    tracker = outage.Outage(clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="soapservice.outage")
    for _ in range(1000):
        tracker.failed(peewee.OperationalError("database or disk is full"), "POST /events")
        now[0] += 0.01
    tracker.recovered()
    tracker.recovered()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "store: database or disk is full (POST /events); answering 503 until it works again",
        "store: works again after 10.0 s (1000 requests or store calls refused meanwhile)"]
    assert not tracker.failing


def test_health_says_the_store_cannot_write_until_it_can(full_store):
    database, fill = full_store
    now = [0.0]
    tracker = outage.Outage(clock=lambda: now[0])
    check = health.WriteCheck(interval_sec=10.0, quiet_sec=30.0, clock=lambda: now[0],
                              tracker=tracker)
    assert check.check() == (True, "ok")
    fill()
    assert store.ping()  # reads still answer: why a SELECT 1 was not enough
    with pytest.raises(peewee.OperationalError) as caught:
        big_write(database)  # an event that cannot be stored, as ingest meets it
    tracker.failed(caught.value, "POST /events")
    assert check.check() == (False, "store cannot write: database or disk is full")
    now[0] += 29.0
    assert check.check()[0] is False  # the probe's small write fits; events still do not
    fill(False)
    now[0] += 1.0
    assert check.check() == (True, "ok")  # quiet for 30 s and the probe wrote
    assert not tracker.failing


def test_the_probe_itself_fails_when_no_page_is_free(full_store):
    database, fill = full_store
    database.execute_sql("VACUUM")  # no free page left in the file
    now = [0.0]
    tracker = outage.Outage(clock=lambda: now[0])
    check = health.WriteCheck(clock=lambda: now[0], tracker=tracker)
    fill()
    assert check.check() == (False, "store cannot write: database or disk is full")
    fill(False)
    now[0] += 30.0
    assert check.check() == (True, "ok")


def test_store_event_on_a_full_store_names_the_cause(full_store):
    database, fill = full_store
    fill()
    with pytest.raises(Exception) as caught:
        outbox.store_event("alice", "optin_finalized", "{}", None, 1.0, WINDOW)
    # Unknown account or full: either way never the masking rollback error.
    assert "cannot rollback" not in outage.real_cause(caught.value)
