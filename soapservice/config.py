"""One frozen settings object, read from ``SOAPSERVICE_*`` environment variables and
optionally a TOML file (``--config FILE`` or ``SOAPSERVICE_CONFIG``).

Units are in the field names. Bad values raise :class:`ConfigError` with the variable's
name, so ``soapservice serve`` refuses to start instead of misbehaving later. A file's
keys are the variables' names in lower case without the prefix (``database_url``); the
environment overrides the file; an unknown key is an error.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

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
    # Name lookups of webhook hosts: each waited for at most this long (at creation
    # and at delivery), on this many threads of their own (delivery).
    dns_timeout_sec: float = 5.0
    dns_threads: int = 32
    allow_private_targets: bool = False
    allowed_target_cidrs: tuple[str, ...] = ()
    ingest_token: str | None = None
    smtp_url: str | None = None
    mail_from: str = "soapservice@localhost"
    retention_days: float = 7.0
    # How often the purge of what the retention lets go runs (the first ~30 s after start).
    purge_interval_sec: float = 3600.0
    # A receiver's Retry-After (429/503) pauses its webhook at most this long.
    max_retry_after_sec: float = 3600.0
    max_webhooks_per_account: int = 100
    max_body_bytes: int = 1024 * 1024
    # Bodies parsed on the reactor thread: forms on every path, JSON at /json/<op>.
    max_form_bytes: int = 64 * 1024
    # Inbound connections (web/connections.py): a request's headers within this long of
    # the connection being ready, its body within this long of the headers; at most
    # max_connections open at once (0: half of the process's descriptor limit).
    header_timeout_sec: float = 10.0
    body_timeout_sec: float = 30.0
    max_connections: int = 0
    # Peers whose Forwarded / X-Forwarded-For headers name the client (web/clientaddr.py).
    trusted_proxies: tuple[str, ...] = ()
    # Password hashes (scrypt) computed at once; known clients get one more slot.
    login_concurrency: int = 2
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
    # The service log: the lowest level written, and "text" lines or "json" objects.
    log_level: str = "info"
    log_format: str = "text"
    # Buffered deliveries older than this after the deactivation are dropped (and
    # counted in droppedEvents), even while the webhook stays inactive.
    buffer_keep_days: float = 30.0
    # Operator events (webhook.failing, ...) go to this URL, signed with this secret
    # (a Standard Webhooks ``whsec_...`` secret); the audit trail keeps them this long.
    operator_webhook_url: str | None = None
    operator_webhook_secret: str | None = None
    audit_days: float = 365.0
    # Shape caps on XML requests (soap/limits.py), checked before the SOAP code walks them.
    xml_max_attributes: int = 500
    xml_max_elements: int = 10_000
    xml_max_depth: int = 100
    xml_max_namespaces: int = 100

    @property
    def base_url(self) -> str:
        """Base of links and of the WSDL address: the public URL, else host and port."""
        if self.public_url:
            return self.public_url.rstrip("/")
        from soapservice.addresses import bracket, is_wildcard
        host = self.host
        if is_wildcard(host):  # a link must name an address, not "every address"
            import socket
            host = socket.gethostname()
        return f"http://{bracket(host)}:{self.port}"

    @property
    def address_from_request(self) -> bool:
        """No public URL and a wildcard host: WSDLs name the address each request came
        in on (its Host header), since no single address is right for every client."""
        from soapservice.addresses import is_wildcard
        return not self.public_url and is_wildcard(self.host)

    @property
    def buffer_window_sec(self) -> float:
        return self.buffer_days * 86400.0

    @property
    def audit_sec(self) -> float:
        return self.audit_days * 86400.0

    @property
    def buffer_keep_sec(self) -> float:
        return self.buffer_keep_days * 86400.0

    @property
    def retention_sec(self) -> float:
        return self.retention_days * 86400.0

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _number(env: Mapping[str, str], name: str, default: Any,
            cast: Callable[[str], Any] = float, minimum: float | None = None) -> Any:
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


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} must be 0 or 1")


def _choice(env: Mapping[str, str], name: str, default: str,
            choices: tuple[str, ...]) -> str:
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


@dataclasses.dataclass(frozen=True)
class SmtpServer:
    """Where notification mail goes (``SOAPSERVICE_SMTP_URL``)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        """``smtp://[user:password@]host[:port]`` (port 25 by default); else ValueError."""
        from urllib.parse import unquote, urlsplit
        parts = urlsplit(url.strip())
        if parts.scheme != "smtp" or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError("expected smtp://host:port")
        port = parts.port or 25  # raises ValueError for a bad port
        return cls(parts.hostname, port, unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)


def parse_smtp_url(raw: str, name: str = "SOAPSERVICE_SMTP_URL") -> str:
    """The URL as given, once :class:`SmtpServer` can read it (the one parser)."""
    try:
        SmtpServer.from_url(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected smtp://[user:password@]host[:port]"
                          ) from None
    return raw.strip()


PREFIX = "SOAPSERVICE_"
CONFIG_VARIABLE = "SOAPSERVICE_CONFIG"


def parse_http_url(raw: str | None, name: str) -> str | None:
    from urllib.parse import urlsplit
    if raw is None or not raw.strip():
        return None
    try:
        parts = urlsplit(raw.strip())
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"{name}={raw!r}: expected an http:// or https:// URL")
    return raw.strip()


def parse_secret(raw: str | None, name: str) -> str | None:
    """A Standard Webhooks secret: ``whsec_`` and base64 of at least 16 bytes."""
    import base64
    import binascii
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    try:
        key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not value.startswith("whsec_") or len(key) < 16:
        raise ConfigError(f"{name}: expected whsec_ followed by base64 of at least 16 "
                          "random bytes (e.g. whsec_$(head -c 24 /dev/urandom | base64))")
    return value


def load_settings(env: Mapping[str, str] | None = None,
                  config_file: str | None = None) -> Settings:
    """Read the settings from ``env`` (default: ``os.environ``) over those of the TOML
    file ``config_file`` (default: ``env["SOAPSERVICE_CONFIG"]``, else no file)."""
    env = os.environ if env is None else env
    path = config_file or (env.get(CONFIG_VARIABLE) or "").strip() or None
    if path is not None:
        merged = read_config_file(path)
        # An empty variable counts as unset: it does not blank out the file's value.
        merged.update({k: v for k, v in env.items()
                       if k.startswith(PREFIX) and v.strip() != ""})
        env = merged
    return _from_variables(env)


class _Recorder(dict[str, str]):
    """An empty mapping that notes every name looked up in it."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.names.add(key)
        return default

    def __contains__(self, key: object) -> bool:
        self.names.add(str(key))
        return False


def variable_names() -> frozenset[str]:
    """Every ``SOAPSERVICE_*`` variable the settings read (the file's known keys)."""
    recorder = _Recorder()
    _from_variables(recorder)
    return frozenset(n for n in recorder.names if n.startswith(PREFIX))


def _as_variable(key: str, value: object, path: str) -> str:
    """A TOML value as the text its environment variable would hold."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, int | float | str) and
                                       not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value)
    raise ConfigError(f"{path}: {key} = {value!r}: expected a string, number, boolean or "
                      "a list of numbers or strings")


def read_config_file(path: str) -> dict[str, str]:
    """The TOML file ``path`` as {SOAPSERVICE_NAME: text}. Keys are the variables'
    names in lower case without the ``SOAPSERVICE_`` prefix; any other key (a typo, a
    table, ``config`` itself) is an error naming it."""
    import tomllib
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file {path}: "
                          f"{exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    known = variable_names() - {CONFIG_VARIABLE}
    variables = {}
    for key, value in data.items():
        name = PREFIX + key.upper()
        if key != key.lower() or name not in known:
            allowed = ", ".join(sorted(n[len(PREFIX):].lower() for n in known))
            raise ConfigError(f"{path}: unknown key {key!r} (known keys: {allowed})")
        variables[name] = _as_variable(key, value, path)
    return variables


def _from_variables(env: Mapping[str, str]) -> Settings:
    settings = _read_variables(env)
    if settings.operator_webhook_url and not settings.operator_webhook_secret:
        raise ConfigError("SOAPSERVICE_OPERATOR_WEBHOOK_URL needs "
                          "SOAPSERVICE_OPERATOR_WEBHOOK_SECRET (a whsec_... secret)")
    if settings.buffer_keep_days < settings.buffer_days:
        raise ConfigError(f"SOAPSERVICE_BUFFER_KEEP_DAYS={settings.buffer_keep_days:g} "
                          f"must be at least SOAPSERVICE_BUFFER_DAYS="
                          f"{settings.buffer_days:g}")
    return settings


def _read_variables(env: Mapping[str, str]) -> Settings:
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
        dns_timeout_sec=_number(env, "SOAPSERVICE_DNS_TIMEOUT", Settings.dns_timeout_sec,
                                float, 0.001),
        dns_threads=_number(env, "SOAPSERVICE_DNS_THREADS", Settings.dns_threads, int, 1),
        allow_private_targets=_flag(env, "SOAPSERVICE_ALLOW_PRIVATE_TARGETS"),
        allowed_target_cidrs=parse_cidrs(cidrs),
        ingest_token=env.get("SOAPSERVICE_INGEST_TOKEN") or None,
        smtp_url=parse_smtp_url(env.get("SOAPSERVICE_SMTP_URL") or "")
        if (env.get("SOAPSERVICE_SMTP_URL") or "").strip() else None,
        mail_from=env.get("SOAPSERVICE_MAIL_FROM") or Settings.mail_from,
        retention_days=_number(env, "SOAPSERVICE_RETENTION_DAYS",
                               Settings.retention_days, float, 0),
        purge_interval_sec=_number(env, "SOAPSERVICE_PURGE_INTERVAL_SEC",
                                   Settings.purge_interval_sec, float, 1),
        max_retry_after_sec=_number(env, "SOAPSERVICE_MAX_RETRY_AFTER",
                                    Settings.max_retry_after_sec, float, 0),
        max_webhooks_per_account=_number(env, "SOAPSERVICE_MAX_WEBHOOKS",
                                         Settings.max_webhooks_per_account, int, 1),
        max_body_bytes=_number(env, "SOAPSERVICE_MAX_BODY_BYTES", Settings.max_body_bytes,
                               int, 1024),
        max_form_bytes=_number(env, "SOAPSERVICE_MAX_FORM_BYTES", Settings.max_form_bytes,
                               int, 1024),
        header_timeout_sec=_number(env, "SOAPSERVICE_HEADER_TIMEOUT",
                                   Settings.header_timeout_sec, float, 0.1),
        body_timeout_sec=_number(env, "SOAPSERVICE_BODY_TIMEOUT", Settings.body_timeout_sec,
                                 float, 0.1),
        max_connections=_number(env, "SOAPSERVICE_MAX_CONNECTIONS", Settings.max_connections,
                                int, 0),
        trusted_proxies=parse_cidrs(env.get("SOAPSERVICE_TRUSTED_PROXIES", ""),
                                    "SOAPSERVICE_TRUSTED_PROXIES"),
        login_concurrency=_number(env, "SOAPSERVICE_LOGIN_CONCURRENCY",
                                  Settings.login_concurrency, int, 1),
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
        log_level=_choice(env, "SOAPSERVICE_LOG_LEVEL", Settings.log_level,
                          ("debug", "info", "warning", "error")),
        log_format=_choice(env, "SOAPSERVICE_LOG_FORMAT", Settings.log_format,
                           ("text", "json")),
        buffer_keep_days=_number(env, "SOAPSERVICE_BUFFER_KEEP_DAYS",
                                 Settings.buffer_keep_days, float, 0),
        xml_max_attributes=_number(env, "SOAPSERVICE_XML_MAX_ATTRIBUTES",
                                   Settings.xml_max_attributes, int, 1),
        xml_max_elements=_number(env, "SOAPSERVICE_XML_MAX_ELEMENTS",
                                 Settings.xml_max_elements, int, 16),
        xml_max_depth=_number(env, "SOAPSERVICE_XML_MAX_DEPTH", Settings.xml_max_depth,
                              int, 8),
        xml_max_namespaces=_number(env, "SOAPSERVICE_XML_MAX_NAMESPACES",
                                   Settings.xml_max_namespaces, int, 4),
        operator_webhook_url=parse_http_url(env.get("SOAPSERVICE_OPERATOR_WEBHOOK_URL"),
                                            "SOAPSERVICE_OPERATOR_WEBHOOK_URL"),
        operator_webhook_secret=parse_secret(env.get("SOAPSERVICE_OPERATOR_WEBHOOK_SECRET"),
                                             "SOAPSERVICE_OPERATOR_WEBHOOK_SECRET"),
        audit_days=_number(env, "SOAPSERVICE_AUDIT_DAYS", Settings.audit_days, float, 0),
    )
