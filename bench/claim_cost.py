"""The cost of one claim at a large queue, store-level (no server, no HTTP).

    python -m bench.claim_cost [--rows 1000000] [--database-url URL]

Fills a fresh store (a temp SQLite file, or a fresh PostgreSQL database made on the
server of ``--database-url``) with ``--rows`` pending deliveries in the shapes of the
scheduler's issue, then times ``claim_due`` (the median and the worst of 20 claims, each
claim's leases given back so every claim sees the same queue):

- ``failing``: the rows on 10 webhooks whose receivers look down (probing), 1,000
  subscribers each (so most rows wait behind a head), and one healthy webhook of another
  account with 8 due rows: the claim must find those;
- ``hanging``: the rows on 50 webhooks at their per-webhook limit (hanging receivers)
  and 10 healthy ones, every row its own head (no subscriber);
- ``restarted``: one webhook, 200,000 subscribers, every subscriber's head due last (the
  order a restart left them in);
- ``webhooks``: 10,000 webhooks (1,000 accounts x 10), the rows spread over them.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

NOW = 2_000_000_000.0
PER_WEBHOOK = 8
CAPACITY = 256


def _store(url: str | None, tmp: str):
    from soapservice import store
    if url:
        from tests import pgstore
        url = pgstore.create_database(url)
    else:
        url = f"sqlite:///{tmp}/claim.db"
    store.open_store(url)
    return url


def _fill(rows: int, shape: str) -> dict[int, int]:
    """Insert the shape's rows in the database itself (a recursive CTE / generate_series);
    returns the in-flight requests per webhook the claim is told about."""
    from soapservice import policy
    from soapservice.models import Account, Event, Webhook, db
    from soapservice.store import is_postgres
    accounts = 1000 if shape == "webhooks" else 2
    Account.insert_many([{"username": f"a{n}", "password_hash": "x", "created_at": NOW}
                         for n in range(accounts)]).execute()
    account_ids = [a.id for a in Account.select(Account.id).order_by(Account.id)]
    hooks = {"failing": 10, "hanging": 60, "restarted": 1, "webhooks": 10_000}[shape]
    Webhook.insert_many([{
        "account": account_ids[0 if shape != "webhooks" else n // 10], "app": "bench",
        "event": f"e{n}", "url": f"http://r/{n}", "secret": "whsec_x", "active": True,
        "created_at": NOW,
        "failure_count": policy.PROBE_AFTER_FAILURES if shape == "failing" else 0}
        for n in range(hooks)]).execute()
    hook_ids = [h.id for h in Webhook.select(Webhook.id).order_by(Webhook.id)]
    event_id = Event.insert(account=account_ids[0], name="e", body="{}", subscriber=None,
                            created_at=NOW).execute()
    first, h = hook_ids[0], len(hook_ids)
    # Per shape: webhook of row i, its order key, blocked, next_at.
    if shape == "failing":
        subs = 10 * 1000
        spec = (f"{first} + i % {h}", f"'k' || (i % {subs})",
                f"CASE WHEN i < {subs} THEN 0 ELSE 1 END",
                # half the heads retrying (not due yet), half fresh: a probing webhook
                # probes retried ones only, and none is due
                f"CASE WHEN i < {subs} AND i % 2 = 1 THEN {NOW} + 30 ELSE {NOW} - 1000 END",
                f"CASE WHEN i < {subs} THEN i % 2 ELSE 0 END")
    elif shape == "hanging":
        spec = (f"{first} + i % {h}", "NULL", "0", f"{NOW} - 1000 + i * 0.0001", "0")
    elif shape == "restarted":
        subs = 200_000
        spec = (str(first), f"'k' || (i % {subs})",
                f"CASE WHEN i >= {rows - subs} THEN 0 ELSE 1 END",
                f"{NOW} - 1000 + i * 0.0001", "0")
    else:
        spec = (f"{first} + i % {h}", "'k' || (i % 100000)",
                "CASE WHEN i < 100000 THEN 0 ELSE 1 END", f"{NOW} - 1000 + i * 0.0001", "0")
    hook, key, blocked, next_at, attempts = spec
    select = (f"SELECT {event_id}, {hook}, {key}, i, 0, {blocked}, {attempts}, {next_at}, "
              f"{NOW}")
    columns = ("event_id, webhook_id, order_key, seq, state, blocked, attempts, next_at, "
               "created_at")
    if is_postgres():
        sql = (f"INSERT INTO delivery ({columns}) {select} "
               f"FROM generate_series(0, {rows - 1}) AS i")
        db.execute_sql(sql.replace("%", "%%"))  # (no parameters: % is psycopg2's mark)
        db.execute_sql("ANALYZE")
    else:
        db.execute_sql(f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n "
                       f"WHERE i < {rows - 1}) INSERT INTO delivery ({columns}) "
                       f"{select} FROM n")
        db.execute_sql("ANALYZE")
    if shape == "failing":  # the other account's healthy webhook with 8 due rows
        healthy = Webhook.insert(account=account_ids[1], app="bench", event="ok",
                                 url="http://ok/", secret="whsec_x", active=True,
                                 created_at=NOW).execute()
        from soapservice.store.events import insert_deliveries
        insert_deliveries([(event_id, healthy, None, rows + n, 0, 0, 0, NOW, NOW)
                           for n in range(8)])
    if shape == "hanging":
        return {hook_id: PER_WEBHOOK for hook_id in hook_ids[:50]}
    return {}


def measure(rows: int, shape: str, url: str | None, claims: int = 20) -> dict:
    from soapservice import store
    from soapservice.models import Delivery
    from soapservice.store import claims as claim_room
    with tempfile.TemporaryDirectory() as tmp:
        made = _store(url, tmp)
        try:
            t0 = time.perf_counter()
            in_flight = _fill(rows, shape)
            fill_sec = time.perf_counter() - t0
            times, handed = [], 0
            for _ in range(claims):
                t0 = time.perf_counter()
                got = claim_room.claim_due("bench", NOW, 60, CAPACITY, in_flight, PER_WEBHOOK)
                times.append((time.perf_counter() - t0) * 1000)
                handed = len(got)
                Delivery.update(lease_owner=None, lease_token=None, lease_until=None,
                                next_at=NOW - 1).where(
                    Delivery.id.in_([c.delivery_id for c in got])).execute()
            return {"shape": shape, "rows": rows, "fill_sec": round(fill_sec, 1),
                    "claimed": handed, "median_ms": round(statistics.median(times), 2),
                    "max_ms": round(max(times), 2)}
        finally:
            store.close_store()
            if url:
                from tests import pgstore
                pgstore.drop_database(url, made)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="a PostgreSQL server (default: SQLite)")
    parser.add_argument("--shapes", default="failing,hanging,restarted,webhooks")
    args = parser.parse_args(argv)
    for shape in args.shapes.split(","):
        print(measure(args.rows, shape, args.database_url), flush=True)


if __name__ == "__main__":
    main()
