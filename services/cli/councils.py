"""`fleet council`: councils are events on the CONFIG stream; these commands read and append them."""

from __future__ import annotations

from nats.js.errors import NotFoundError

from contracts import catalog
from contracts.events import Council, Role
from services.councils.directory import CouncilDirectory, created, deleted, seed_default_councils
from services.mesh.publishing import EventPublisher
from services.mesh.runtime import connect
from services.mesh.settings import load_settings
from streams.definitions import CONFIG


class CouncilCommandError(RuntimeError):
    pass


async def _session():
    client = await connect(load_settings())
    js = client.jetstream()
    try:
        await js.stream_info(CONFIG.name)
    except NotFoundError:
        await client.close()
        raise CouncilCommandError(
            f"the {CONFIG.name} stream does not exist yet: run `fleet streams apply` first") from None
    return client, CouncilDirectory(js), EventPublisher(js, producer=catalog.OPERATOR)


async def list_councils() -> dict[Role, Council]:
    client, directory, _ = await _session()
    try:
        return await directory.councils()
    finally:
        await client.drain()


async def create_council(council: Council, by: str) -> None:
    client, directory, publisher = await _session()
    try:
        existing = (await directory.councils()).get(council.role)
        if existing is not None:
            raise CouncilCommandError(
                f"{council.role.value} already has a council of {len(existing.agents)}; "
                f"delete it first with `fleet council delete --role {council.role.value}`"
            )
        await publisher.publish(created(council, by, revision=await directory.revision()))
    finally:
        await client.drain()


async def delete_council(role: Role, by: str) -> None:
    client, directory, publisher = await _session()
    try:
        if role not in await directory.councils():
            raise CouncilCommandError(f"{role.value} has no council")
        await publisher.publish(deleted(role, by, revision=await directory.revision()))
    finally:
        await client.drain()


async def seed_councils(by: str) -> bool:
    """The default councils, if no council was ever configured; False when there was one."""
    client, directory, publisher = await _session()
    try:
        return await seed_default_councils(directory, publisher, by=by)
    finally:
        await client.drain()
