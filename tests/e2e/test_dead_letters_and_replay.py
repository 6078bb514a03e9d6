"""Repairing and explaining on the running mesh: a dead letter redriven after its fix, a decision replayed."""

import json
import uuid

import pytest

from contracts import catalog
from contracts.envelope import CORRELATION_ID, MSG_ID
from contracts.events import CouncilCreated, CouncilDeleted, DeliberationCompleted, Role
from services.cli.dead_letters import REDRIVE_OF
from services.councils.domain import new_council
from services.planning.client import approval_event_id
from tests.e2e.flows import a_finished_deliberation, approval_for, approve, events_of, of, result_of
from tests.e2e.flows import fleet_on as fleet
from tests.support import body_of, decode, read_stream, wait_for

pytestmark = pytest.mark.e2e


@pytest.mark.usefixtures("councils_put_back")
async def test_an_approval_dead_lettered_for_want_of_a_council_is_redriven_after_the_fix_and_runs_once(js, mesh):
    stack, _ = mesh
    await js.publish(catalog.COUNCIL_DELETED.subject, body_of(CouncilDeleted(role=Role.DEVOPS, deleted_by="e2e")),
                     headers={MSG_ID: f"e2e-redrive-delete-devops-{uuid.uuid4()}"})
    approval = approval_for(Role.DEVOPS)
    deliberation = await approve(js, approval)
    [letter] = await wait_for(js, catalog.MESSAGE_REJECTED.subject,
                              lambda m: decode(m).original_headers.get(MSG_ID) == approval_event_id(approval), 1)
    await js.publish(catalog.COUNCIL_CREATED.subject,
                     body_of(CouncilCreated(council=new_council(Role.DEVOPS, 3), created_by="e2e")),
                     headers={MSG_ID: f"e2e-redrive-create-devops-{uuid.uuid4()}"})

    first = await fleet(stack, "dlq", "redrive", str(letter.metadata.sequence.stream), "--yes")
    second = await fleet(stack, "dlq", "redrive", str(letter.metadata.sequence.stream), "--yes")
    forced = await fleet(stack, "dlq", "redrive", str(letter.metadata.sequence.stream), "--yes", "--force")
    result = await result_of(js, deliberation)

    assert "redriven letter" in first and "already redriven" in second and "a duplicate" in forced
    assert isinstance(result, DeliberationCompleted), result
    republished = [m for m in await read_stream(js, catalog.PLAN_APPROVED.subject)
                   if (m.headers or {}).get(REDRIVE_OF) == letter.headers[MSG_ID]]
    assert len(republished) == 1
    assert len(await events_of(js, catalog.DELIBERATION_STARTED.subject, deliberation)) == 1
    [completed] = [m for m in await read_stream(js, catalog.DELIBERATION_COMPLETED.subject) if of(deliberation)(m)]
    # The redriven work stays in the chain of the approval that was first rejected.
    assert completed.headers[CORRELATION_ID] == approval_event_id(approval)
    listed = json.loads(await fleet(stack, "dlq", "list", "--service", "planning", "--json", "--limit", "1000"))
    assert [x["redriven"] for x in listed if x["seq"] == letter.metadata.sequence.stream] == [True]


async def test_a_finished_deliberation_replayed_without_the_llm_reaches_the_same_winner(js, mesh):
    stack, _ = mesh
    deliberation = await a_finished_deliberation(js)

    replayed = json.loads(await fleet(stack, "deliberation", "replay", deliberation, "--dry-run", "--json"))

    assert replayed["verdict"] == "same winner", replayed["differences"]
    assert replayed["recorded"]["winner"] == replayed["recomputed"]["winner"] is not None
    assert replayed["recomputed"]["scores"] == replayed["recorded"]["scores"]
