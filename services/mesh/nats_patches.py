"""Two changes to nats-py, installed in every process that talks to NATS, each only in the nats-py
version it was written against (`pyproject.toml` pins its minor); one that does not apply says so once.

**The header parse, the same result faster.** nats-py 2.16 parses each message's headers as it arrives
(`Client._parse_header_lines`) and checks each header name for whitespace one character at a time,
through a generator. With the envelope's ten headers per event that check alone was an eighth of a
projection rebuild's CPU time, and the whole parse a quarter (py-spy; bench/README.md, "rebuild"). This
is the same parse with the check made by one regular expression. tests/unit/test_nats_patches.py
compares the two on generated header blocks; it replaces nats-py's only in the version it was written
against.

**A pull fetch that times out says so as nats-py's own timeout.** In a race on a busy loop, nats-py's
`PullSubscription.fetch` raises a bare `TimeoutError` instead of `nats.errors.TimeoutError`. FastStream's
fetch loop expects only the latter: it logged the former as an ERROR with a traceback, then restarted
the loop, so a healthy service logged errors. Re-raised as nats-py's own, the loop simply fetches again.
"""

from __future__ import annotations

import logging
import re

import nats.errors
from nats.aio import client as nats_client
from nats.js.client import JetStreamContext

log = logging.getLogger("fleet.nats")

MATCHING_VERSION = "2.16.0"
# nats-py's own, kept to compare against.
ORIGINAL = nats_client.Client._parse_header_lines
# For a str pattern, \s is what str.isspace() calls whitespace.
_WHITESPACE = re.compile(r"\s")
_CRLF = b"\r\n"


def parse_header_lines(raw: bytes) -> dict[str, str]:
    """`Name: Value` lines into a dict, as nats-py's parse: names ASCII without whitespace, values UTF-8."""
    headers: dict[str, str] = {}
    for line in raw.split(_CRLF):
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        try:
            key = name.strip().decode("ascii")
        except UnicodeDecodeError:
            continue
        if _WHITESPACE.search(key) is not None:
            continue
        headers[key] = value.strip().decode("utf-8", "replace")
    return headers


ORIGINAL_FETCH = JetStreamContext.PullSubscription.fetch


async def fetch_timing_out_as_nats_does(self, *args, **kwargs):
    try:
        return await ORIGINAL_FETCH(self, *args, **kwargs)
    except TimeoutError as exc:
        if isinstance(exc, nats.errors.TimeoutError):
            raise
        raise nats.errors.TimeoutError from exc

_said: set[str] = set()


def install() -> bool:
    """Install both in this process, if nats-py is the version they match; says whether it did."""
    if nats_client.__version__ != MATCHING_VERSION:
        if nats_client.__version__ not in _said:
            _said.add(nats_client.__version__)
            log.warning("nats-py %s is not %s: its own header parse and fetch are used, unchanged (slower header "
                        "parsing; a fetch that races its timeout may log an error)", nats_client.__version__,
                        MATCHING_VERSION)
        return False
    nats_client.Client._parse_header_lines = staticmethod(parse_header_lines)
    JetStreamContext.PullSubscription.fetch = fetch_timing_out_as_nats_does
    return True
