"""A scratch PostgreSQL database per scenario (created and dropped at
``SOAPSERVICE_BENCH_DATABASE_URL``, default the local server), copies of a seeded one
(``CREATE DATABASE ... TEMPLATE``: every round starts from the same rows), and the pids
of its backends (their CPU counts as the system's)."""

from __future__ import annotations

import contextlib
import os

DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    return os.environ.get("SOAPSERVICE_BENCH_DATABASE_URL", DEFAULT)


def _with_name(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


def available() -> str | None:
    """None when PostgreSQL answers, else why not."""
    import psycopg2
    try:
        psycopg2.connect(server_url(), connect_timeout=5).close()
    except psycopg2.Error as exc:
        return f"no PostgreSQL at {server_url()} ({str(exc).strip()})"
    return None


@contextlib.contextmanager
def _admin():
    import psycopg2
    con = psycopg2.connect(server_url(), connect_timeout=5)
    con.autocommit = True
    try:
        yield con.cursor()
    finally:
        con.close()


def create(name: str, template: str | None = None) -> str:
    """A fresh database (a copy of ``template`` if given); its URL."""
    name = f"soapservice_bench_{os.getpid()}_{name}"
    with _admin() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if template:
            cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template.rsplit("/", 1)[1]}"')
        else:
            cur.execute(f'CREATE DATABASE "{name}"')
    return _with_name(server_url(), name)


def drop(url: str) -> None:
    with _admin() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def analyze(url: str) -> None:
    """ANALYZE every table of the database at ``url`` (fresh statistics)."""
    import psycopg2
    con = psycopg2.connect(url, connect_timeout=5)
    con.autocommit = True
    try:
        con.cursor().execute("ANALYZE")
    finally:
        con.close()


def backend_pids(url: str) -> list[int]:
    """The server processes serving connections to ``url``'s database."""
    with _admin() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> "
                    "pg_backend_pid()", (url.rsplit("/", 1)[1],))
        return [pid for (pid,) in cur.fetchall()]


def copy_from_sqlite(sqlite_path, url: str) -> None:
    """Every table of the models, rows as they are, from a SQLite store into the (fresh,
    schema-created) PostgreSQL database at ``url`` with COPY: a 1 M-row store in
    seconds, where ingest's statements take minutes over a connection. The column lists
    come from the models, so whatever the store of the day keeps is copied."""
    import csv
    import io
    import sqlite3

    import psycopg2

    from soapservice.models import ALL_MODELS

    source = sqlite3.connect(sqlite_path)
    target = psycopg2.connect(url)
    try:
        with target, target.cursor() as cur:
            tables = [m._meta.table_name for m in ALL_MODELS]
            cur.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
            # the rows come whole from the SQLite store, derived tables (the webhooks'
            # fronts) included: the store's triggers would write those a second time
            cur.execute("SET LOCAL session_replication_role = replica")
            for model in ALL_MODELS:
                table = model._meta.table_name
                columns = [f.column_name for f in model._meta.sorted_fields]
                names = ", ".join(f'"{c}"' for c in columns)
                rows = source.execute(f'SELECT {names} FROM "{table}"')
                while True:
                    chunk = rows.fetchmany(100_000)
                    if not chunk:
                        break
                    buffer = io.StringIO()
                    writer = csv.writer(buffer)
                    for row in chunk:
                        writer.writerow(["" if v is None else v for v in row])
                    buffer.seek(0)
                    cur.copy_expert(f'COPY "{table}" ({names}) FROM STDIN WITH (FORMAT csv)',
                                    buffer)
                key = model._meta.primary_key
                if getattr(key, "sequence", None) or key.field_type == "AUTO":
                    cur.execute(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', "
                                f"'{key.column_name}'), COALESCE(MAX(\"{key.column_name}\"), "
                                f"0) + 1, false) FROM \"{table}\"")
            cur.execute("ANALYZE")
    finally:
        source.close()
        target.close()
