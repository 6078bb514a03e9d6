"""NATS subject patterns, written once: `*` matches one token, a trailing `>` one or more."""

from __future__ import annotations


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether the pattern matches the subject."""
    return subject_within(subject, pattern)


def subject_within(inner: str, outer: str) -> bool:
    """Whether every subject `inner` matches is also matched by `outer`."""
    a, b = inner.split("."), outer.split(".")
    for index, y in enumerate(b):
        if y == ">":
            return len(a) > index
        if index >= len(a) or a[index] == ">" or (y != "*" and (a[index] == "*" or a[index] != y)):
            return False
    return len(a) == len(b)


def subjects_overlap(left: str, right: str) -> bool:
    """Whether two NATS subject patterns can match a common subject (`*` one token, `>` the rest)."""
    a, b = left.split("."), right.split(".")
    for index in range(max(len(a), len(b))):
        x = a[index] if index < len(a) else None
        y = b[index] if index < len(b) else None
        if x == ">":
            return y is not None
        if y == ">":
            return x is not None
        if x is None or y is None:
            return False
        if x != y and "*" not in (x, y):
            return False
    return True
