"""Secrets out of prompts and logs: passwords, bearer tokens, API keys, credentials in URLs."""

from __future__ import annotations

import logging
import re

MASK = "[REDACTED]"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # scheme://user:password@host -> the password only; a password may itself hold "@", the host may not
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*):([^\s/]+)@"), rf"\1:{MASK}@"),
    (re.compile(r"(?i)\b(bearer)\s+[a-z0-9._~+/=-]{8,}"), rf"\1 {MASK}"),
    # key=value, key: value and "key": "value" for names that mean a secret ("tokens" are counts, not secrets)
    (
        re.compile(
            r"(?i)\b([a-z0-9_.-]*(?:password|passwd|pwd|secret|token(?!s)|api[_-]?key|access[_-]?key)[a-z0-9_.-]*)"
            r"([\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"
        ),
        rf"\1\2{MASK}",
    ),
    # Well-known key shapes, wherever they appear.
    (re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{16,}"), MASK),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), MASK),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), MASK),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), MASK),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), MASK),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Renders each record's message and traceback, then redacts them, so no handler sees the secret.

    A formatter reuses `exc_text` when it is set, so the traceback is rendered here once, redacted.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_TRACEBACKS = logging.Formatter()
