"""nats-py's header parse, the same result faster: installed in every process that talks to NATS.

nats-py 2.16 parses each message's headers as it arrives (`Client._parse_header_lines`) and checks each
header name for whitespace one character at a time, through a generator. With the envelope's ten
headers per event that check alone was an eighth of a projection rebuild's CPU time, and the whole
parse a quarter (py-spy; bench/README.md, "rebuild"). This is the same parse with the check made by one
regular expression. tests/unit/test_nats_headers.py compares the two on generated header blocks; it
replaces nats-py's only in the version it was written against.
"""

from __future__ import annotations

import re

from nats.aio import client as nats_client

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


def install() -> bool:
    """Use it in this process's nats-py clients, if nats-py is the version it matches; says whether it did."""
    if nats_client.__version__ != MATCHING_VERSION:
        return False
    nats_client.Client._parse_header_lines = staticmethod(parse_header_lines)
    return True
