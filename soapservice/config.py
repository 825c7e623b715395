"""One frozen settings object, read from ``SOAPSERVICE_*`` environment variables.

Units are in the field names. Bad values raise :class:`ConfigError` with the variable's
name, so ``soapservice serve`` refuses to start instead of misbehaving later.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

# About a day in all: 10 s, 1 min, 5 min, 30 min, 2 h, 6 h, 15 h.
DEFAULT_RETRY_SCHEDULE_SEC = (10.0, 60.0, 300.0, 1800.0, 7200.0, 21600.0, 54000.0)


class ConfigError(ValueError):
    """A configuration variable has a value we cannot use."""


@dataclasses.dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///soapservice.db"
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    retry_schedule_sec: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE_SEC
    buffer_days: float = 5.0
    delivery_timeout_sec: float = 10.0
    allow_private_targets: bool = False
    allowed_target_cidrs: tuple[str, ...] = ()
    ingest_token: str | None = None
    smtp_url: str | None = None
    mail_from: str = "soapservice@localhost"
    retention_days: float = 7.0
    max_webhooks_per_account: int = 100
    max_body_bytes: int = 1024 * 1024
    max_event_bytes: int = 256 * 1024
    per_webhook_concurrency: int = 8
    global_concurrency: int = 256
    token_ttl_days: float = 30.0
    auth_cache_sec: float = 60.0
    metrics_port: int | None = None
    delivery_enabled: bool = True
    # SQLite's fsync policy (WAL mode): "normal" survives a crash of the process, "full"
    # also a power loss or an OS crash (every commit waits for the disk).
    sqlite_synchronous: str = "normal"
    # The access log: "-" standard output, a file path to append to, or "off".
    access_log: str = "-"

    @property
    def base_url(self) -> str:
        """Base of links and of the WSDL address: the public URL, else host and port."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{self.port}"

    @property
    def buffer_window_sec(self) -> float:
        return self.buffer_days * 86400.0

    @property
    def retention_sec(self) -> float:
        return self.retention_days * 86400.0

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)


def _number(env, name, default, cast=float, minimum=None):
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = cast(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {cast.__name__}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
    return value


def _flag(env, name, default=False):
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} must be 0 or 1")


def _choice(env, name, default, choices):
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise ConfigError(f"{name}={raw!r} must be one of: {', '.join(choices)}")
    return value


def parse_schedule(raw: str, name: str = "SOAPSERVICE_RETRY_SCHEDULE") -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected comma-separated seconds") from None
    if not values or any(v < 0 for v in values):
        raise ConfigError(f"{name}={raw!r}: expected at least one non-negative number")
    return values


def parse_cidrs(raw: str, name: str = "SOAPSERVICE_ALLOWED_TARGET_CIDRS") -> tuple[str, ...]:
    import ipaddress
    cidrs = tuple(c.strip() for c in raw.split(",") if c.strip())
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ConfigError(f"{name}: {cidr!r} is not an IP address or CIDR range") from None
    return cidrs


def parse_smtp_url(raw: str, name: str = "SOAPSERVICE_SMTP_URL") -> str:
    from urllib.parse import urlsplit
    try:
        parts = urlsplit(raw.strip())
        ok = parts.scheme == "smtp" and bool(parts.hostname) and parts.path in ("", "/")
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"{name}={raw!r}: expected smtp://[user:password@]host[:port]")
    return raw.strip()


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: ``os.environ``)."""
    env = os.environ if env is None else env
    schedule_raw = env.get("SOAPSERVICE_RETRY_SCHEDULE")
    cidrs = env.get("SOAPSERVICE_ALLOWED_TARGET_CIDRS", "")
    metrics_port = _number(env, "SOAPSERVICE_METRICS_PORT", None, int, 0)
    return Settings(
        database_url=env.get("SOAPSERVICE_DATABASE_URL") or Settings.database_url,
        host=env.get("SOAPSERVICE_HOST") or Settings.host,
        port=_number(env, "SOAPSERVICE_PORT", Settings.port, int, 0),
        public_url=env.get("SOAPSERVICE_PUBLIC_URL", "").strip(),
        retry_schedule_sec=parse_schedule(schedule_raw) if schedule_raw
        else DEFAULT_RETRY_SCHEDULE_SEC,
        buffer_days=_number(env, "SOAPSERVICE_BUFFER_DAYS", Settings.buffer_days, float, 0),
        delivery_timeout_sec=_number(env, "SOAPSERVICE_DELIVERY_TIMEOUT",
                                     Settings.delivery_timeout_sec, float, 0.001),
        allow_private_targets=_flag(env, "SOAPSERVICE_ALLOW_PRIVATE_TARGETS"),
        allowed_target_cidrs=parse_cidrs(cidrs),
        ingest_token=env.get("SOAPSERVICE_INGEST_TOKEN") or None,
        smtp_url=parse_smtp_url(env["SOAPSERVICE_SMTP_URL"])
        if (env.get("SOAPSERVICE_SMTP_URL") or "").strip() else None,
        mail_from=env.get("SOAPSERVICE_MAIL_FROM") or Settings.mail_from,
        retention_days=_number(env, "SOAPSERVICE_RETENTION_DAYS",
                               Settings.retention_days, float, 0),
        max_webhooks_per_account=_number(env, "SOAPSERVICE_MAX_WEBHOOKS",
                                         Settings.max_webhooks_per_account, int, 1),
        max_body_bytes=_number(env, "SOAPSERVICE_MAX_BODY_BYTES", Settings.max_body_bytes,
                               int, 1024),
        per_webhook_concurrency=_number(env, "SOAPSERVICE_WEBHOOK_CONCURRENCY",
                                        Settings.per_webhook_concurrency, int, 1),
        global_concurrency=_number(env, "SOAPSERVICE_GLOBAL_CONCURRENCY",
                                   Settings.global_concurrency, int, 1),
        token_ttl_days=_number(env, "SOAPSERVICE_TOKEN_TTL_DAYS", Settings.token_ttl_days,
                               float, 0),
        metrics_port=metrics_port,
        delivery_enabled=_flag(env, "SOAPSERVICE_DELIVERY", True),
        sqlite_synchronous=_choice(env, "SOAPSERVICE_SQLITE_SYNCHRONOUS",
                                   Settings.sqlite_synchronous, ("normal", "full", "extra")),
        access_log=(env.get("SOAPSERVICE_ACCESS_LOG") or Settings.access_log).strip(),
    )
