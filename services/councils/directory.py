"""Reading and writing councils on the CONFIG stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts import catalog
from contracts.envelope import deterministic_id
from contracts.events import Council, CouncilCreated, CouncilDeleted, Role
from services.councils.domain import CouncilEvent, current_councils, default_councils
from services.mesh.messages import Outgoing
from services.mesh.publishing import EventPublisher
from streams.definitions import CONFIG

COUNCIL_SUBJECTS = "config.council.>"

log = logging.getLogger("fleet.councils")


class CouncilDirectory:
    """The council log, folded on demand. Councils change rarely; reads fetch only what is new."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._events: list[CouncilEvent] = []
        self._next_sequence = 1
        self._reading = asyncio.Lock()

    async def _catch_up(self) -> None:
        async with self._reading:
            await self._read_new()

    async def _read_new(self) -> None:
        while True:
            try:
                message = await self._js.get_msg(
                    CONFIG.name, seq=self._next_sequence, subject=COUNCIL_SUBJECTS, next=True
                )
            except NotFoundError:
                return
            self._next_sequence = message.seq + 1
            try:
                spec = catalog.spec_for_subject(message.subject)
                self._events.append(spec.decoder.decode(message.data or b""))
            except (KeyError, msgspec.ValidationError, msgspec.DecodeError) as exc:
                # One bad event must not stop every approval; it is skipped, loudly.
                log.error("council event at CONFIG sequence %s is skipped: %s", message.seq, exc)

    async def councils(self) -> dict[Role, Council]:
        await self._catch_up()
        return current_councils(self._events)

    async def ever_configured(self) -> bool:
        return await self.revision() > 0

    async def revision(self) -> int:
        """How many council events were ever published."""
        await self._catch_up()
        return len(self._events)


def created(council: Council, by: str, *, revision: int) -> Outgoing:
    """`revision` counts the council events so far, so re-creating a role is a new fact."""
    event = CouncilCreated(council=council, created_by=by)
    return Outgoing(event, event_id=deterministic_id("council.created", council.role.value, str(revision)))


def deleted(role: Role, by: str, *, revision: int) -> Outgoing:
    event = CouncilDeleted(role=role, deleted_by=by)
    return Outgoing(event, event_id=deterministic_id("council.deleted", role.value, str(revision)))


async def replace_councils(
    directory: CouncilDirectory, publisher: EventPublisher, by: str, *, put: Iterable[Council] = (),
    remove: Iterable[Role] = (),
) -> None:
    """Give each council's role that council (a different one it had is deleted first), and delete the
    councils of `remove`; as `fleet council delete` and `create` would, one after the other."""
    for council in put:
        existing = (await directory.councils()).get(council.role)
        if existing == council:
            continue
        if existing is not None:
            await publisher.publish(deleted(council.role, by, revision=await directory.revision()))
        await publisher.publish(created(council, by, revision=await directory.revision()))
    for role in remove:
        if role in await directory.councils():
            await publisher.publish(deleted(role, by, revision=await directory.revision()))


async def seed_default_councils(directory: CouncilDirectory, publisher: EventPublisher, by: str) -> bool:
    """Publish the default councils if no council was ever configured. Safe to race: ids are fixed."""
    if await directory.ever_configured():
        return False
    for council in default_councils():
        await publisher.publish(created(council, by, revision=0))
    return True
