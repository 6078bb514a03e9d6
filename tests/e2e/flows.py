"""What end-to-end tests do on the mesh: approve a plan, wait for a deliberation's result, read its events."""

from __future__ import annotations

import asyncio
import time
import uuid

from contracts import catalog
from contracts.events import Council, PlanApproved, PlannedTask, Role
from services.councils.directory import CouncilDirectory, replace_councils
from services.councils.domain import default_councils
from services.mesh.publishing import EventPublisher
from services.mesh.runtime import connect
from services.mesh.settings import load_settings
from services.planning.client import approve_plan
from services.planning.domain import deliberation_id
from streams.definitions import CONSUMERS
from tests.support import decode, fleet, read_stream, wait_for

RESULT_TIMEOUT_S = 300.0

# The producer and the author of what the end-to-end specs publish.
E2E = "e2e"


async def as_operator(stack):
    """A NATS client with the operator's credentials that `fleet up --auth` wrote, as the fleet CLI connects."""
    return await connect(load_settings({"FLEET_DATA_DIR": str(stack.data_dir)}))


def approval_for(role: Role) -> PlanApproved:
    suffix = uuid.uuid4().hex[:8]
    return PlanApproved(
        story_id=f"story-{suffix}", plan_id=f"plan-{suffix}", approved_by="e2e", roles=[role],
        tasks=[PlannedTask(task_id="login", title="Add login throttling", description="Lock out after 5 failures.")],
    )


def id_of(approval: PlanApproved) -> str:
    return deliberation_id(approval.story_id, approval.plan_id, "login", approval.roles[0])


def of(deliberation: str):
    return lambda message: decode(message).aggregate_id() == deliberation


async def approve(js, approval: PlanApproved) -> str:
    await approve_plan(js, approval, by=E2E)
    return id_of(approval)


async def result_of(js, deliberation: str):
    [message] = await wait_for(js, "orchestration.deliberation.*.v1",
                               lambda m: m.subject.endswith((".completed.v1", ".failed.v1")) and of(deliberation)(m),
                               1, timeout_s=RESULT_TIMEOUT_S)
    return decode(message)


async def conclusion_of(js, approval: PlanApproved):
    """The plan's conclusion: the last event an approval causes, so after it the read models have it all."""
    def of_plan(message) -> bool:
        event = decode(message)
        return (event.story_id, event.plan_id) == (approval.story_id, approval.plan_id)

    [message] = await wait_for(js, catalog.PLAN_CONCLUDED.subject, of_plan, 1, timeout_s=60)
    return decode(message)


async def events_of(js, subject: str, deliberation: str) -> list:
    return [decode(m) for m in await read_stream(js, subject) if of(deliberation)(m)]


async def with_default_councils(js, roles) -> None:
    """Give each role its default council again if an earlier spec deleted it (specs share one mesh)."""
    directory = CouncilDirectory(js)
    defaults = {council.role: council for council in default_councils()}
    missing = set(roles) - set(await directory.councils())
    await replace_councils(directory, EventPublisher(js, producer=E2E), E2E, put=[defaults[role] for role in missing])


async def put_back_councils(js, councils: dict[Role, Council], within_s: float = 60.0) -> None:
    """Make the mesh's councils `councils` again: re-create each one changed or deleted, delete any added."""
    directory = CouncilDirectory(js)
    await replace_councils(directory, EventPublisher(js, producer=E2E), E2E, put=councils.values(),
                           remove=(await directory.councils()).keys() - councils.keys())
    deadline = asyncio.get_running_loop().time() + within_s
    while await directory.councils() != councils:
        assert asyncio.get_running_loop().time() < deadline, "the councils were not put back"
        await asyncio.sleep(0.2)


async def a_finished_deliberation(js) -> str:
    """The id of a deliberation that completed on this mesh: an earlier test's, or a new one's."""
    for message in await read_stream(js, catalog.DELIBERATION_COMPLETED.subject):
        return decode(message).deliberation_id
    deliberation = await approve(js, approval_for(Role.DEV))
    await result_of(js, deliberation)
    return deliberation


async def fleet_on(stack, *args: str) -> str:
    """`fleet ARGS` against the running mesh, as an operator runs it; it must succeed. What it printed."""
    code, out = await fleet(stack.endpoints["nats_url"], stack.data_dir, *args, timeout_s=120)
    assert code == 0, out
    return out


async def wait_until_mesh_idle(js, timeout_s: float = 120.0) -> None:
    """Every durable of the mesh has consumed and acked all it was given, delayed redeliveries included: what
    a spec that compares read models with a rebuild waits for, as work another spec began may still be landing."""
    deadline = time.monotonic() + timeout_s
    while True:
        infos = [await js.consumer_info(c.stream, c.durable) for c in CONSUMERS]
        busy = [f"{i.name}: {i.num_pending} pending, {i.num_ack_pending} unacked" for i in infos
                if i.num_pending or i.num_ack_pending]
        if not busy:
            return
        assert time.monotonic() < deadline, f"the mesh is not idle after {timeout_s}s: {busy}"
        await asyncio.sleep(0.2)

