"""`fleet council`: councils are events on the CONFIG stream; these commands read and append them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from nats.js.errors import NotFoundError

from contracts import catalog
from contracts.events import Council, Role
from services.cli.runner import CommandError, nats_connection
from services.councils.directory import CouncilDirectory, created, deleted, seed_default_councils
from services.mesh.publishing import EventPublisher
from streams.definitions import CONFIG


@contextlib.asynccontextmanager
async def _config() -> AsyncIterator[tuple[CouncilDirectory, EventPublisher]]:
    async with nats_connection() as client:
        js = client.jetstream()
        try:
            await js.stream_info(CONFIG.name)
        except NotFoundError:
            raise CommandError(
                f"the {CONFIG.name} stream does not exist yet: run `fleet streams apply` first") from None
        yield CouncilDirectory(js), EventPublisher(js, producer=catalog.OPERATOR)


async def list_councils() -> dict[Role, Council]:
    async with _config() as (directory, _):
        return await directory.councils()


async def create_council(council: Council, by: str) -> None:
    async with _config() as (directory, publisher):
        existing = (await directory.councils()).get(council.role)
        if existing is not None:
            raise CommandError(
                f"{council.role.value} already has a council of {len(existing.agents)}; "
                f"delete it first with `fleet council delete --role {council.role.value}`"
            )
        await publisher.publish(created(council, by, revision=await directory.revision()))


async def delete_council(role: Role, by: str) -> None:
    async with _config() as (directory, publisher):
        if role not in await directory.councils():
            raise CommandError(f"{role.value} has no council")
        await publisher.publish(deleted(role, by, revision=await directory.revision()))


async def seed_councils(by: str) -> bool:
    """The default councils, if no council was ever configured; False when there was one."""
    async with _config() as (directory, publisher):
        return await seed_default_councils(directory, publisher, by=by)
