"""A throw-away PostgreSQL database per test run, when SOAPSERVICE_TEST_DATABASE_URL
names a server (e.g. ``postgresql://postgres@127.0.0.1:5432/postgres``): created at the
start of the run, dropped at its end, emptied between tests."""

from __future__ import annotations

import os
import secrets
import urllib.parse

ENV = "SOAPSERVICE_TEST_DATABASE_URL"


def server_url() -> str | None:
    return os.environ.get(ENV) or None


def _with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def _admin(url: str):
    import psycopg2
    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


def create_database(url: str) -> str:
    """A new empty database on the server of ``url``; returns its URL."""
    name = f"soapservice_test_{os.getpid()}_{secrets.token_hex(4)}"
    conn = _admin(url)
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
            # Tests kill soapservice processes, never PostgreSQL: a commit need not
            # wait for the disk (twice the ingest rate on a slow disk).
            cur.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    finally:
        conn.close()
    return _with_database(url, name)


def drop_database(server: str, url: str) -> None:
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    conn = _admin(server)
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


def empty(url: str) -> None:
    """Remove every row (and restart the ids) so a test starts from a fresh store."""
    conn = _admin(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            tables = [row[0] for row in cur.fetchall()]
            if tables:
                cur.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables)
                            + " RESTART IDENTITY CASCADE")
    finally:
        conn.close()
