"""Claiming a deliberation and starting it. Pure: no I/O."""

from __future__ import annotations

import datetime as dt

import msgspec

from contracts.envelope import deterministic_id
from contracts.events import DeliberationRequested, DeliberationStarted
from services.mesh.messages import Outgoing


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """Which stored request started a deliberation, and when.

    The request is identified by its stream sequence, not its event id: a re-published approval
    yields a request with the same deterministic event id, but it is stored as a new message.
    """

    request_sequence: int
    started_at: dt.datetime


def start(request: DeliberationRequested, claim: Claim) -> Outgoing:
    """The event that starts a deliberation, identical on every redelivery of the same claim."""
    started = DeliberationStarted(
        deliberation=request.deliberation,
        brief=request.brief,
        council=request.council,
        architect=request.architect,
        started_at=claim.started_at,
        attempt=request.attempt,
    )
    return Outgoing(started, event_id=deterministic_id("deliberation.started", request.aggregate_id()))
