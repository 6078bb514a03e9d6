"""Events a state change implies, stored with the state, so a redelivery publishes exactly those again."""

from __future__ import annotations

import datetime as dt

import msgspec

from contracts import catalog
from contracts.events import Brief, PlannedTask
from services.mesh.messages import Outgoing


class Parcel(msgspec.Struct, frozen=True, kw_only=True):
    subject: str
    event_id: str
    body: bytes
    deliver_at: dt.datetime | None = None
    # The event's `brief` was left out, to be put back from the aggregate's state: a brief may be 256 KiB,
    # and a phase asks three or more turns, each carrying it.
    brief_elided: bool = False


# What stands in for an elided brief in a stored parcel.
_NO_BRIEF = Brief(task=PlannedTask(task_id="-", title="-"), rubric={})


def pack(outgoing: Outgoing, brief: Brief | None = None) -> Parcel:
    """The event as stored bytes; an event carrying `brief` is stored without it."""
    spec = catalog.spec_for_payload(outgoing.payload)
    payload, elided = outgoing.payload, False
    if brief is not None and getattr(payload, "brief", None) == brief:
        payload, elided = msgspec.structs.replace(payload, brief=_NO_BRIEF), True
    return Parcel(
        subject=spec.subject,
        event_id=outgoing.event_id,
        body=catalog.encode(payload),
        deliver_at=outgoing.deliver_at,
        brief_elided=elided,
    )


def unpack(parcel: Parcel, brief: Brief | None = None) -> Outgoing:
    payload = catalog.spec_for_subject(parcel.subject).decoder.decode(parcel.body)
    if parcel.brief_elided:
        if brief is None:
            raise ValueError(f"parcel {parcel.event_id} was stored without its brief, and none was given back")
        payload = msgspec.structs.replace(payload, brief=brief)
    return Outgoing(payload, event_id=parcel.event_id, deliver_at=parcel.deliver_at)
