"""Events a state change implies, stored with the state, so a redelivery publishes exactly those again."""

from __future__ import annotations

import datetime as dt

import msgspec

from contracts import catalog
from services.mesh.publishing import Outgoing


class Parcel(msgspec.Struct, frozen=True, kw_only=True):
    subject: str
    event_id: str
    body: bytes
    deliver_at: dt.datetime | None = None


def pack(outgoing: Outgoing) -> Parcel:
    spec = catalog.spec_for_payload(outgoing.payload)
    return Parcel(
        subject=spec.subject,
        event_id=outgoing.event_id,
        body=catalog.encode(outgoing.payload),
        deliver_at=outgoing.deliver_at,
    )


def unpack(parcel: Parcel) -> Outgoing:
    payload = catalog.spec_for_subject(parcel.subject).decoder.decode(parcel.body)
    return Outgoing(payload, event_id=parcel.event_id, deliver_at=parcel.deliver_at)
