"""Structured logs: one JSON object a line, each with the service and the correlation id in scope.

The correlation id is set for the time a message is handled (`correlated`), so every line a handler,
an adapter or a library logs meanwhile carries it, without passing it around.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
from collections.abc import Iterator

from pythonjsonlogger.json import JsonFormatter

from services.mesh.redaction import RedactingFilter, redact

# What is being handled now: the correlation id of the message, "" outside any message.
_correlation: contextvars.ContextVar[str] = contextvars.ContextVar("fleet_correlation_id", default="")

LOG_FORMATS = ("json", "text")


@contextlib.contextmanager
def correlated(correlation_id: str) -> Iterator[None]:
    token = _correlation.set(correlation_id)
    try:
        yield
    finally:
        _correlation.reset(token)


def current_correlation_id() -> str:
    return _correlation.get()


class CorrelationFilter(logging.Filter):
    """Stamps each record with the correlation id in scope, unless the caller gave one (`extra=`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "correlation_id", None):
            record.correlation_id = _correlation.get() or None
        return True


class StoppedHandlerIsNotAnError(logging.Filter):
    """FastStream logs a handler cancelled by the service's own stop (a rollout's SIGTERM) as an ERROR. The
    consumer has handed its message back to be redelivered (services/mesh/consuming.py): nothing for anyone
    to do, so the line becomes an INFO without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        stopped = record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError)
        if record.levelno >= logging.ERROR and stopped:
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
            record.msg, record.args = "a handler was stopped with the service; its message was handed back", None
            record.exc_info = record.exc_text = None
        return True


class _RedactedTracebacks:
    """Some formatters render the traceback themselves, past `exc_text`: redact what they render."""

    def formatException(self, ei) -> str:  # noqa: N802 - logging's name
        return redact(super().formatException(ei))


class TextFormatter(_RedactedTracebacks, logging.Formatter):
    pass


class JsonLineFormatter(_RedactedTracebacks, JsonFormatter):
    pass


def formatter(service: str, log_format: str) -> logging.Formatter:
    if log_format == "text":
        return TextFormatter(f"%(asctime)s {service} %(levelname)s %(name)s [%(correlation_id)s]: %(message)s")
    return JsonLineFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        static_fields={"service": service},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def configure_logging(service: str, log_format: str | None = None) -> None:
    """JSON lines on stderr (FLEET_LOG_FORMAT=text for people), redacted, with the correlation id."""
    log_format = log_format or os.environ.get("FLEET_LOG_FORMAT", "json")
    if log_format not in LOG_FORMATS:
        raise ValueError(f"FLEET_LOG_FORMAT={log_format!r} must be one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler()
    # Filters on the handler run for records from every logger, children included.
    handler.addFilter(RedactingFilter())
    handler.addFilter(CorrelationFilter())
    handler.addFilter(StoppedHandlerIsNotAnError())
    handler.setFormatter(formatter(service, log_format))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(os.environ.get("FLEET_LOG_LEVEL", "INFO"))
