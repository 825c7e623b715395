"""The customer portal's store reads (store.portal): the overview's health and counts,
the charts' buckets counted from the recorded attempts (the hourly rollup kept by the
outcome batch), the schema step that fills the rollup from an older store's attempts,
and the portal link checked against the store."""

from __future__ import annotations

import sqlite3

import pytest

from soapservice import portal_links
from soapservice.ingest import emit
from soapservice.models import Attempt, AttemptHour, Webhook
from soapservice.store import (
    SCHEMA_VERSION,
    deliveries,
    open_store,
    outbox,
    portal,
    retention,
    webhooks,
)

DAY = 86400.0
HOUR = 3600.0
NOW = 2_000_000_000.0  # 2033-05-18 03:33:20 UTC
SCHEDULE = (60.0, 60.0)


def _hook(account_id, url="http://r/", event="optin_finalized"):
    return webhooks.create(account_id, "crm", event, url, "whsec_" + "A" * 32, 100)


def _deliver(hook, statuses, now, duration_ms=40.0):
    """One event per status, claimed and answered with it at ``now``."""
    for status in statuses:
        emit("alice", hook.event, {}, window_sec=DAY, now=now)
        claims = [c for c in outbox.claim_due("w", now, 30, 10, {}, 8)
                  if c.webhook_id == hook.id]
        assert claims, "nothing claimed"
        outbox.record_outcomes([outbox.Outcome(c.delivery_id, c.token, hook.id, status,
                                               None if status else "refused", duration_ms)
                                for c in claims], now, SCHEDULE, lambda: 0.5)


def test_overview_health_counts_and_last_24_hours(alice):
    good = _hook(alice.id, "http://good/")
    bad = _hook(alice.id, "http://bad/", "optout_finalized")
    idle = _hook(alice.id, "http://idle/", "profilemanager_finalized")
    _deliver(good, [200, 200], NOW - 2 * HOUR)
    _deliver(good, [200], NOW)
    _deliver(bad, [200], NOW - 30 * HOUR)  # outside the 24 hours
    _deliver(bad, [500], NOW - HOUR)
    Webhook.update(active=False, deactivated_at=NOW).where(Webhook.id == idle.id).execute()
    rows = {r.id: r for r in portal.overview(alice.id, NOW)}
    assert [rows[h.id].health for h in (good, bad, idle)] == ["healthy", "failing",
                                                              "inactive"]
    g, b = rows[good.id], rows[bad.id]
    assert len(g.hours) == 24 and g.hours[-1].start == (NOW // HOUR) * HOUR
    assert [(x.succeeded, x.failed) for x in g.hours[-3:]] == [(2, 0), (0, 0), (1, 0)]
    assert sum(x.succeeded for x in b.hours) == 0
    assert [(x.succeeded, x.failed) for x in b.hours[-2:]] == [(0, 1), (0, 0)]
    assert b.failure_count == 1 and b.last_error and b.last_failure_at == NOW - HOUR
    assert b.last_success_at == NOW - 30 * HOUR and g.last_failure_at is None
    assert (b.url, b.event, b.app) == ("http://bad/", "optout_finalized", "crm")
    # Another account sees none of them; a subset is still the account's only.
    assert portal.overview(alice.id + 1, NOW) == []
    assert [r.id for r in portal.overview(alice.id, NOW, [bad.id])] == [bad.id]


def test_overview_counts_buffered_held_and_dropped(alice):
    first = _hook(alice.id, "http://same/")
    second = _hook(alice.id, "http://same/", "optout_finalized")
    emit("alice", "optin_finalized", {"subscriber_id": 7}, window_sec=DAY, now=NOW)
    emit("alice", "optout_finalized", {"subscriber_id": 7}, window_sec=DAY, now=NOW + 1)
    # The first webhook fails through its schedule: deactivated, its event buffered;
    # the second's delivery to the same URL for the same subscriber is held behind it.
    for step in range(len(SCHEDULE) + 1):
        at = NOW + 2 + step * 61
        claims = [c for c in outbox.claim_due("w", at, 30, 10, {}, 8)
                  if c.webhook_id == first.id]
        outbox.record_outcomes([outbox.Outcome(c.delivery_id, c.token, first.id, 500, None,
                                               5.0) for c in claims], at, SCHEDULE,
                               lambda: 0.0)
    Webhook.update(dropped_events=4).where(Webhook.id == first.id).execute()
    rows = {r.id: r for r in portal.overview(alice.id, NOW + 400)}
    assert rows[first.id].health == "inactive" and rows[first.id].buffered == 1
    assert rows[first.id].dropped == 4 and rows[first.id].failure_count == 3
    assert rows[second.id].held == 1 and rows[second.id].buffered == 0
    assert sum(x.failed for x in rows[first.id].hours) == 3


def test_chart_hours_days_and_percentiles_match_the_attempts(alice):
    hook = _hook(alice.id)
    other = _hook(alice.id, "http://other/")
    _deliver(hook, [200] * 3, NOW, duration_ms=20.0)
    _deliver(hook, [500], NOW, duration_ms=800.0)
    _deliver(hook, [200], NOW - 3 * DAY, duration_ms=20.0)
    _deliver(hook, [200], NOW - 9 * DAY)  # older than the week
    _deliver(other, [500], NOW)
    chart = portal.chart(alice.id, hook.id, NOW)
    assert [(b.succeeded, b.failed) for b in chart.hours[-1:]] == [(3, 1)]
    assert sum(b.succeeded + b.failed for b in chart.hours) == 4
    assert [(b.succeeded, b.failed) for b in chart.days] == [
        (0, 0), (0, 0), (0, 0), (1, 0), (0, 0), (0, 0), (3, 1)]
    assert chart.days[-1].start == (NOW // DAY) * DAY
    assert chart.days[0].start == (NOW // DAY) * DAY - 6 * DAY
    # What the attempt log holds for the same spans.
    in_24h = Attempt.select().where((Attempt.webhook_id == hook.id)
                                    & (Attempt.at > NOW - DAY)).count()
    assert in_24h == sum(b.succeeded + b.failed for b in chart.hours)
    # 3 attempts of 20 ms, one of 800 ms: p50 in the 10-25 ms bucket, p95 in 500-1000.
    assert 10 < chart.p50_ms_24h <= 25 and 500 < chart.p95_ms_24h <= 1000
    assert chart.hours[0].p50_ms is None and chart.hours[-1].p50_ms == chart.p50_ms_24h
    assert portal.chart(alice.id + 1, hook.id, NOW) is None


def test_percentile_estimates():
    histogram = [0] * (len(portal.DURATION_BOUNDS_MS) + 1)
    assert portal._percentile(histogram, 0.5) is None
    histogram[portal.bucket_of(30.0)] = 10  # 25-50 ms
    assert portal._percentile(histogram, 0.5) == 37.5
    histogram[-1] = 90  # above the top bound
    assert portal._percentile(histogram, 0.95) == portal.DURATION_BOUNDS_MS[-1]
    assert portal.bucket_of(10) == 0 and portal.bucket_of(10.1) == 1


def test_rollup_adds_up_across_batches_and_purges(alice):
    hook = _hook(alice.id)
    rows = [(1, hook.id, NOW, 200, None, 12.0), (2, hook.id, NOW + 1, 200, None, 12.0),
            (3, hook.id, NOW + 2, None, "timeout", 30000.0)]
    portal.count_attempts(rows)
    portal.count_attempts(rows[:1])
    [row] = AttemptHour.select()
    assert (row.hour, row.succeeded, row.failed) == (NOW // HOUR, 3, 1)
    assert (row.d1, row.d10, row.d0 + row.d2 + row.d11) == (3, 1, 0)  # 10-25, 10-30 s
    portal.count_attempts([(4, hook.id + 99, NOW - 9 * DAY, 200, None, 1.0)])  # deleted
    portal.count_attempts([(5, hook.id, NOW - 9 * DAY, 200, None, 1.0),
                           (6, hook.id, NOW - 10 * DAY, 200, None, 1.0)])
    assert portal.purge_rollup(NOW, chunk=2) == 2  # in chunks
    # The retention purge's steps take the rest (the deliveries, attempts and events
    # first: none here).
    progress = retention.Progress()
    assert retention.purge_step(NOW, 30 * DAY, progress) == 1
    assert progress.done
    assert [(r.succeeded, r.failed) for r in AttemptHour.select()] == [(3, 1)]


def test_schema_steps_10_and_11_add_the_link_and_fill_the_rollup(tmp_path):
    import time
    url = f"sqlite:///{tmp_path / 'old.db'}"
    open_store(url)
    now = time.time()
    Attempt.insert_many([{"delivery_id": i, "webhook_id": 7, "at": now - i * 600,
                          "status": 200 if i % 2 else 503, "duration_ms": 15.0}
                         for i in range(10)]).execute()
    with sqlite3.connect(tmp_path / "old.db") as db:
        db.execute("DROP TABLE attempt_hours")
        db.execute("CREATE TABLE attempt_hour (webhook_id INTEGER)")  # step 10's shape
        db.execute("ALTER TABLE notification DROP COLUMN portal_link")
        db.execute("UPDATE setting SET value = '9' WHERE key = 'schema_version'")
    open_store(url)
    assert sum(r.succeeded + r.failed for r in AttemptHour.select()) == 10
    assert sum(r.succeeded for r in AttemptHour.select()) == 5
    assert sum(r.d1 for r in AttemptHour.select()) == 10
    with sqlite3.connect(tmp_path / "old.db") as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'attempt_hour'"
                          ).fetchall() == []
        assert "portal_link" in {r[1] for r in db.execute("PRAGMA table_info(notification)")}
        assert db.execute("SELECT value FROM setting WHERE key = 'schema_version'"
                          ).fetchone() == (str(SCHEMA_VERSION),)


def test_portal_link_opens_only_the_accounts_existing_webhook(alice):
    hook = _hook(alice.id)
    link = portal.make_link("https://hooks.example", alice.id, hook.id, NOW + DAY)
    assert link.startswith("https://hooks.example/portal/link/")
    token = portal_links.token_of(link)
    opened = portal.open_link(token, NOW)
    assert (opened.account_id, opened.webhook_id) == (alice.id, hook.id)
    with pytest.raises(portal_links.LinkError) as expired:
        portal.open_link(token, NOW + DAY + 1)
    assert expired.value.expired
    forged = portal_links.make_token(b"another key" * 3, alice.id, hook.id, NOW + DAY)
    with pytest.raises(portal_links.LinkError):
        portal.open_link(forged, NOW)
    webhooks.delete(alice.id, hook.id)
    with pytest.raises(portal_links.LinkError) as gone:
        portal.open_link(token, NOW)
    assert not gone.value.expired


def test_server_key_is_the_reactivation_key():
    from soapservice import notify
    assert portal.SERVER_KEY_NAME == notify.KEY_NAME


@pytest.mark.parametrize("state", [None, *deliveries.STATES])
@pytest.mark.parametrize("before", [None, 1000])
def test_delivery_log_pages_are_read_in_id_order_from_an_index(tmp_path, state, before):
    """Every filter of GetWebHookDeliveries walks an index in id order: no sort of the
    webhook's whole log, no scan of other webhooks' rows (SQLite's plan; PostgreSQL's
    depends on its statistics: bench scenario portal)."""
    from soapservice.models import db
    open_store(f"sqlite:///{tmp_path / 'plan.db'}")
    sql, params = deliveries.page_query(7, state, 50, before).sql()
    plan = " | ".join(row[3] for row in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params))
    index = "delivery_webhook_id_id" if state is None else "delivery_webhook_id_state_id"
    assert f"USING INDEX {index} (webhook_id=? AND" in plan or (
        state is None and f"USING INDEX {index} (webhook_id=?)" in plan), plan
    assert "TEMP B-TREE" not in plan, plan
