"""The planning service on a real JetStream: requests, de-duplication, and dead letters."""

import msgspec
import pytest

from contracts import catalog
from contracts.envelope import CAUSATION_ID, CORRELATION_ID, MSG_ID, PRODUCER
from contracts.events import CouncilCreated, CouncilDeleted, PlanApproved, PlannedTask, Role
from services.councils.directory import CouncilDirectory
from services.councils.domain import new_council
from services.planning.app import SERVICE, wire
from tests.support import body_of, decode, read_stream, running_service, wait_for, wait_until_idle

pytestmark = pytest.mark.integration


def approval(unique: str) -> PlanApproved:
    return PlanApproved(
        story_id=f"s-{unique}", plan_id=f"p-{unique}", approved_by="alice", roles=[Role.DEV, Role.DATA],
        tasks=[PlannedTask(task_id="t-1", title="Model orders"), PlannedTask(task_id="t-2", title="Backfill")],
    )


def of_plan(plan_id: str):
    return lambda message: decode(message).deliberation.plan_id == plan_id


async def test_an_approval_becomes_one_request_per_task_and_role_in_its_causal_chain(js, nats_url, unique):
    plan = approval(unique)
    async with running_service(SERVICE, nats_url, wire):
        await js.publish(catalog.PLAN_APPROVED.subject, body_of(plan), headers={MSG_ID: f"approval-{unique}"})
        requests = await wait_for(js, catalog.DELIBERATION_REQUESTED.subject, of_plan(plan.plan_id), 4)
    assert len(requests) == 4
    assert {(decode(m).deliberation.task_id, decode(m).deliberation.role) for m in requests} == {
        ("t-1", Role.DEV), ("t-1", Role.DATA), ("t-2", Role.DEV), ("t-2", Role.DATA)
    }
    for message in requests:
        assert message.headers[CORRELATION_ID] == message.headers[CAUSATION_ID] == f"approval-{unique}"


async def test_republishing_an_approval_requests_nothing_new(js, nats_url, unique):
    plan = approval(unique)
    async with running_service(SERVICE, nats_url, wire):
        first = await js.publish(catalog.PLAN_APPROVED.subject, body_of(plan), headers={MSG_ID: f"a-{unique}"})
        again = await js.publish(catalog.PLAN_APPROVED.subject, body_of(plan), headers={MSG_ID: f"a-{unique}"})
        assert again.duplicate and again.seq == first.seq
        # A different message id gets past JetStream; the deterministic request ids do not.
        await js.publish(catalog.PLAN_APPROVED.subject, body_of(plan), headers={MSG_ID: f"b-{unique}"})
        await wait_until_idle(js, "PLANNING", ["planning-plan-approvals"])
    requests = await wait_for(js, catalog.DELIBERATION_REQUESTED.subject, of_plan(plan.plan_id), 4)
    assert len(requests) == 4


async def test_a_legacy_approval_is_accepted_and_deliberates_the_plan_itself(js, nats_url, unique):
    legacy = {"story_id": f"s-{unique}", "plan_id": f"p-{unique}", "approved_by": "bob", "roles": ["QA"],
              "timestamp": "2025-06-01T10:00:00Z"}
    async with running_service(SERVICE, nats_url, wire):
        await js.publish(catalog.LEGACY_PLAN_APPROVED.subject, msgspec.json.encode(legacy))
        [request] = await wait_for(js, catalog.DELIBERATION_REQUESTED.subject, of_plan(f"p-{unique}"), 1)
    assert decode(request).brief.task.task_id == f"p-{unique}"
    assert decode(request).deliberation.role == Role.QA


async def test_a_malformed_approval_is_dead_lettered_whole_and_the_service_keeps_going(js, nats_url, unique):
    bad_body = b'{"story_id": 42, "plan_id": "p", "approved_by": "x", "roles": ["DEV"], "tasks": []}'
    headers = {MSG_ID: f"bad-{unique}", "X-Upstream": "planner-7"}
    good = approval(unique)
    async with running_service(SERVICE, nats_url, wire):
        await js.publish(catalog.PLAN_APPROVED.subject, bad_body, headers=headers)
        await js.publish(catalog.PLAN_APPROVED.subject, body_of(good), headers={MSG_ID: f"good-{unique}"})
        [letter] = await wait_for(
            js, catalog.MESSAGE_REJECTED.subject,
            lambda m: decode(m).original_headers.get(MSG_ID) == f"bad-{unique}", 1,
        )
        await wait_for(js, catalog.DELIBERATION_REQUESTED.subject, of_plan(good.plan_id), 4)
    rejected = decode(letter)
    assert rejected.reason == "invalid planning.plan.approved.v1 payload: Expected `str`, got `int` - at `$.story_id`"
    assert rejected.original_body == bad_body
    assert rejected.original_subject == catalog.PLAN_APPROVED.subject
    assert rejected.original_headers["X-Upstream"] == "planner-7"
    assert (rejected.service, rejected.consumer, rejected.stream) == ("planning", "planning-plan-approvals", "PLANNING")
    assert letter.headers[CAUSATION_ID] == f"bad-{unique}"


async def test_default_councils_are_seeded_once_and_requests_carry_the_council_of_their_role(empty_log, unique):
    nats_url, js = empty_log
    async with running_service(SERVICE, nats_url, wire):
        pass
    async with running_service(SERVICE, nats_url, wire):
        plan = approval(unique)
        await js.publish(catalog.PLAN_APPROVED.subject, body_of(plan), headers={MSG_ID: f"approval-{unique}"})
        requests = [decode(m) for m in await wait_for(js, catalog.DELIBERATION_REQUESTED.subject,
                                                      of_plan(plan.plan_id), 4)]
    seeded = [decode(m) for m in await read_stream(js, catalog.COUNCIL_CREATED.subject)
              if m.headers.get(PRODUCER) == SERVICE]
    assert sorted(c.council.role for c in seeded) == sorted(Role)
    for request in requests:
        assert [a.agent_id for a in request.council.agents] == [
            f"{request.deliberation.role.value.lower()}-{i}" for i in (1, 2, 3)
        ]
        assert request.architect.agent_id == "architect-1"


async def test_an_approval_naming_a_role_without_a_council_is_dead_lettered_with_that_reason(js, nats_url, unique):
    directory = CouncilDirectory(js)
    revision = await directory.revision()
    await js.publish(catalog.COUNCIL_DELETED.subject, body_of(CouncilDeleted(role=Role.DEVOPS, deleted_by="test")),
                     headers={MSG_ID: f"delete-devops-{unique}"})
    try:
        plan = PlanApproved(story_id=f"s-{unique}", plan_id=f"p-{unique}", approved_by="alice",
                            roles=[Role.DEV, Role.DEVOPS], tasks=[PlannedTask(task_id="t", title="Ship it")])
        async with running_service(SERVICE, nats_url, wire):
            await js.publish(catalog.PLAN_APPROVED.subject, body_of(plan), headers={MSG_ID: f"approval-{unique}"})
            [letter] = await wait_for(js, catalog.MESSAGE_REJECTED.subject,
                                      lambda m: decode(m).original_headers.get(MSG_ID) == f"approval-{unique}", 1)
        assert decode(letter).reason.startswith("no council for role DEVOPS; create one with `fleet council create")
        requested = await read_stream(js, catalog.DELIBERATION_REQUESTED.subject)
        assert [m for m in requested if of_plan(plan.plan_id)(m)] == []
    finally:
        restored = CouncilCreated(council=new_council(Role.DEVOPS), created_by="test")
        await js.publish(catalog.COUNCIL_CREATED.subject, body_of(restored), headers={MSG_ID: f"restore-{unique}"})
    assert await directory.revision() == revision + 2
