"""The service log (``serve``, ``worker``, ``listen``): standard output, Twisted's log
through ``logging``, at ``SOAPSERVICE_LOG_LEVEL``, as text lines or one JSON object per
line (``SOAPSERVICE_LOG_FORMAT=json``, for log shippers)."""

from __future__ import annotations

import json
import logging
import sys
import time

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Twisted logs these for every connection factory it starts or stops: every outgoing
# HTTP connection of the delivery loop makes two lines. Shown at debug level only.
_FACTORY_NOISE = ("Starting factory ", "Stopping factory ")


class QuietFactories(logging.Filter):
    def __init__(self, level: int):
        super().__init__()
        self.show = level <= logging.DEBUG

    def filter(self, record):
        if record.name == "twisted" and not self.show:
            message = record.getMessage()
            return not message.startswith(_FACTORY_NOISE)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message and, when
    there is one, the exception's traceback."""

    def format(self, record):
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str = "info", fmt: str = "text", stream=None) -> logging.Handler:
    """Send the root logger (and Twisted's log) to ``stream`` (standard output)."""
    from twisted.python import log as twisted_log
    numeric = getattr(logging, level.upper())
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(QuietFactories(numeric))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    twisted_log.PythonLoggingObserver("twisted").start()
    return handler
