"""A handler that keeps failing is retried with backoff, then dead-lettered with its last error."""

import pytest

from contracts import catalog
from contracts.envelope import MSG_ID
from contracts.events import PlanApproved, Role
from services.mesh.consuming import DurableConsumer
from services.mesh.runtime import Binding
from streams.apply import apply_consumer
from streams.definitions import PLANNING, ConsumerSpec
from tests.support import body_of, decode, running_service, wait_for

pytestmark = pytest.mark.integration


async def test_a_failing_handler_is_retried_then_dead_lettered_never_dropped(js, nats_url, unique):
    attempts = []
    spec = ConsumerSpec(
        durable=f"test-flaky-{unique}", stream=PLANNING.name, filter_subjects=(catalog.PLAN_APPROVED.subject,),
        service="planning", ack_wait_s=5.0, max_deliveries=3,
    )
    await apply_consumer(js, spec)
    plan = PlanApproved(story_id="s", plan_id=f"p-{unique}", approved_by="a", roles=[Role.DEV], tasks=[])

    async def on_plan_approved(incoming):
        if incoming.payload.plan_id == plan.plan_id:
            attempts.append(incoming.deliveries)
            raise RuntimeError("graph store unreachable")
        return []

    async def wire(mesh):
        return [Binding(DurableConsumer(spec, {catalog.PLAN_APPROVED.subject: on_plan_approved}, mesh.publisher))]

    async with running_service("planning", nats_url, wire):
        await js.publish(catalog.PLAN_APPROVED.subject, body_of(plan), headers={MSG_ID: f"flaky-{unique}"})
        [letter] = await wait_for(
            js, catalog.MESSAGE_REJECTED.subject, lambda m: decode(m).consumer == spec.durable, 1, timeout_s=30
        )
    assert attempts == [1, 2, 3]
    assert decode(letter).reason == "failed 3 times; last error: RuntimeError: graph store unreachable"
    assert decode(letter).deliveries == 3
    await js.delete_consumer(PLANNING.name, spec.durable)
