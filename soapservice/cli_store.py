"""What every ``soapservice`` command shares: the settings of this invocation
(``--config FILE``, the environment) and opening the store they name, with one-line
failures. Apart from :mod:`soapservice.cli` so that the operator commands
(:mod:`soapservice.cli_operator`) take it without importing the command line back."""

from __future__ import annotations

import os
import sys

from soapservice.config import ConfigError, load_settings

# The --config FILE of this invocation (set by main; else SOAPSERVICE_CONFIG).
_config_file: list[str | None] = [None]


def _settings():
    try:
        return load_settings(config_file=_config_file[0])
    except ConfigError as exc:
        raise SystemExit(f"soapservice: configuration error: {exc}") from None


def _open_store(settings, *, create: bool = True) -> str:
    """Open the store of ``settings``; the store's name as messages show it (see
    :func:`open_checked`)."""
    return open_checked(settings, create=create)[0]


def open_checked(settings, *, create: bool = True):
    """Open the store of ``settings``: (its name as messages show it, the ``Store``).

    A command that only reads (``create=False``) never creates an SQLite file: run from
    another folder, ``sqlite:///soapservice.db`` names another (absent) file, and an
    empty new store would only answer "unknown account". A new file made by a command
    that writes is said on standard error. Store failures are one line."""
    from soapservice import store
    url = settings.database_url
    name = store_name(url)
    if not url.startswith(("sqlite:", "postgres:", "postgresql:")):
        raise SystemExit(f"soapservice: cannot open the store {name}: SOAPSERVICE_DATABASE_URL "
                         "must be sqlite:///path or postgresql://... (no other store is "
                         "supported)")
    path = sqlite_path(url)
    if path is not None and path != ":memory:" and not os.path.exists(path):
        if not create:
            raise SystemExit(f"soapservice: no store at {name}: start `soapservice serve` "
                             "here first, or set SOAPSERVICE_DATABASE_URL to the store "
                             "that serve uses")
        print(f"soapservice: creating a new store at {name}", file=sys.stderr)
    try:
        opened = store.Store.open(url, synchronous=settings.sqlite_synchronous)
    except Exception as exc:
        raise SystemExit(f"soapservice: {store_failure(exc, name)}") from None
    return name, opened


def sqlite_path(url: str) -> str | None:
    """The file of an ``sqlite:///path`` URL (None for other stores)."""
    if not url.startswith("sqlite:"):
        return None
    from urllib.parse import urlsplit
    path = urlsplit(url).path
    return path[1:] if path.startswith("/") else path


def store_name(url: str) -> str:
    """The store as people recognize it: the SQLite file's absolute path, or the URL
    without its password."""
    path = sqlite_path(url)
    if path is not None and path not in ("", ":memory:"):
        return f"{os.path.abspath(path)} (SQLite)"
    return _redacted(url)


def store_failure(exc: Exception, name: str) -> str:
    """One line for a store that cannot be opened (no traceback: the cause is outside)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"cannot open the store {name}: {text[:300]}"


def _redacted(url: str) -> str:
    """The store URL without a password."""
    import urllib.parse
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url
