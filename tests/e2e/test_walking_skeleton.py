"""The whole embedded mesh, each service its own process: plan approval in, one result per (task, role) out."""

import uuid

import msgspec
import nats
import pytest

from contracts import catalog
from contracts.envelope import MSG_ID
from contracts.events import DeliberationCompleted, PlanApproved, PlannedTask, Role
from services.embedded.stack import EmbeddedStack
from tests.support import body_of, decode, wait_for, wait_until_idle

pytestmark = pytest.mark.e2e

RESULT_TIMEOUT_S = 240.0


@pytest.fixture(scope="module")
async def mesh(tmp_path_factory):
    stack = EmbeddedStack(
        tmp_path_factory.mktemp("fleet"),
        report=lambda line: print(line),
        # Short answers keep the suite quick on 2 cores; the model and the path are the real ones.
        service_env={"FLEET_LLM_MAX_TOKENS": "48"},
    )
    endpoints = await stack.start()
    yield stack, endpoints
    await stack.stop()


@pytest.fixture
async def js(mesh):
    _, endpoints = mesh
    client = await nats.connect(endpoints["nats_url"])
    yield client.jetstream()
    await client.drain()


@pytest.fixture(scope="module")
def approval() -> PlanApproved:
    suffix = uuid.uuid4().hex[:8]
    return PlanApproved(
        story_id=f"story-{suffix}", plan_id=f"plan-{suffix}", approved_by="e2e", roles=[Role.DEV, Role.QA],
        tasks=[PlannedTask(task_id="login", title="Add login throttling", description="Lock out after 5 failures.")],
    )


def for_plan(plan_id: str):
    return lambda message: decode(message).plan_id == plan_id


async def results_of(js, plan_id: str, count: int) -> list:
    completed = await wait_for(js, "orchestration.deliberation.*.v1",
                               lambda m: m.subject.endswith((".completed.v1", ".failed.v1"))
                               and decode(m).plan_id == plan_id, count, timeout_s=RESULT_TIMEOUT_S)
    return [decode(m) for m in completed]


async def test_an_approval_gets_exactly_one_result_per_task_and_role_with_a_real_proposal(js, approval):
    await js.publish(catalog.PLAN_APPROVED.subject, body_of(approval), headers={MSG_ID: f"{approval.plan_id}-1"})
    results = await results_of(js, approval.plan_id, 2)
    assert sorted((r.task_id, r.role) for r in results) == [("login", Role.DEV), ("login", Role.QA)]
    for result in results:
        assert isinstance(result, DeliberationCompleted), result
        assert result.winner.content.strip()
        assert result.winner.agent_id in {f"{result.role.value.lower()}-{i}" for i in (1, 2, 3)}
        assert result.winner.agent_id in [r.agent_id for r in result.ranking]
    proposals = [decode(m) for m in await wait_for(
        js, catalog.PROPOSAL_COMPLETED.subject, lambda m: decode(m).deliberation.plan_id == approval.plan_id, 6)]
    assert {p.model for p in proposals} == {"SmolLM2-135M-Instruct"}
    assert all(p.completion_tokens > 0 for p in proposals)
    winners = {r.winner.content for r in results}
    assert winners <= {p.content for p in proposals}


async def test_a_duplicate_approval_starts_no_second_deliberation(js, approval):
    await results_of(js, approval.plan_id, 2)
    # The same approval again under a new message id: it is stored and planned again, and what makes it
    # start nothing is the deterministic deliberation ids. (After the duplicate window, the dispatch
    # claim and the collector record do that job: tests/integration/test_idempotent_handlers.py.)
    await js.publish(catalog.PLAN_APPROVED.subject, body_of(approval), headers={MSG_ID: f"{approval.plan_id}-2"})
    await wait_until_idle(js, "PLANNING", ["planning-plan-approvals"])
    await wait_until_idle(js, "ORCHESTRATION", ["dispatch-deliberation-requests"])
    await wait_until_idle(js, "AGENT", ["agents-proposal-requests", "collector-proposal-outcomes"], timeout_s=120)
    started = await wait_for(js, catalog.DELIBERATION_STARTED.subject,
                             lambda m: decode(m).deliberation.plan_id == approval.plan_id, 2)
    asked = await wait_for(js, catalog.PROPOSAL_REQUESTED.subject,
                           lambda m: decode(m).deliberation.plan_id == approval.plan_id, 6)
    assert len(started) == 2 and len(asked) == 6
    assert len(await results_of(js, approval.plan_id, 2)) == 2


async def test_a_malformed_approval_is_dead_lettered_with_its_reason_and_the_mesh_keeps_working(js):
    suffix = uuid.uuid4().hex[:8]
    malformed = msgspec.json.encode({"story_id": "s", "plan_id": "p", "approved_by": "x", "roles": ["CHEF"]})
    await js.publish(catalog.PLAN_APPROVED.subject, malformed, headers={MSG_ID: f"malformed-{suffix}"})
    [letter] = await wait_for(js, catalog.MESSAGE_REJECTED.subject,
                              lambda m: decode(m).original_headers.get(MSG_ID) == f"malformed-{suffix}", 1)
    assert "Invalid enum value 'CHEF' - at `$.roles[0]`" in decode(letter).reason
    assert decode(letter).original_body == malformed


async def test_a_legacy_approval_is_deliberated_with_the_plan_as_its_topic(js):
    suffix = uuid.uuid4().hex[:8]
    legacy = {"story_id": f"s-{suffix}", "plan_id": f"legacy-{suffix}", "approved_by": "old-planner",
              "roles": ["ARCHITECT"], "timestamp": 1767225600}
    await js.publish(catalog.LEGACY_PLAN_APPROVED.subject, msgspec.json.encode(legacy))
    [result] = await results_of(js, f"legacy-{suffix}", 1)
    assert isinstance(result, DeliberationCompleted)
    assert result.task_id == f"legacy-{suffix}" and result.role == Role.ARCHITECT
    assert result.winner.content.strip()
