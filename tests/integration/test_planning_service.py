"""The planning service on a real JetStream: requests, de-duplication, and dead letters."""

import msgspec
import pytest

from contracts import catalog
from contracts.envelope import CAUSATION_ID, CORRELATION_ID, MSG_ID
from contracts.events import PlanApproved, PlannedTask, Role
from services.planning.app import SERVICE, wire
from tests.support import body_of, decode, running_service, wait_for, wait_until_idle

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
    assert decode(request).task.task_id == f"p-{unique}"
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
