"""Failing, hanging and oversized messages: retried with backoff, then dead-lettered with the reason."""

import asyncio
import contextlib

import pytest
from nats.js.api import DeliverPolicy

from contracts import catalog
from contracts.envelope import MSG_ID
from contracts.events import (
    Brief,
    DeliberationRef,
    Phase,
    PlanApproved,
    PlannedTask,
    PlanRejected,
    Role,
    Turn,
    TurnRequested,
)
from services.agents.handlers import on_turn_request_given_up
from services.councils.domain import agent_profiles
from services.mesh.consuming import DurableConsumer
from services.mesh.messages import Outgoing
from services.mesh.runtime import Binding
from services.planning.app import wire as planning_wire
from services.planning.handlers import on_approval_refused
from streams.apply import consumer_config
from streams.definitions import AGENT, PLANNING, ConsumerSpec
from tests.support import body_of, decode, read_stream, running_service, wait_for, wait_until_idle

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def scratch_durable(js, name: str, stream: str, subject: str, service: str, **policy):
    """A durable of this test's own, with a policy small enough to exhaust in seconds.

    It starts at new messages, so it never sees what earlier tests left in the shared stream.
    """
    policy = {"ack_wait_s": 5.0, **policy}
    spec = ConsumerSpec(durable=name, stream=stream, filter_subjects=(subject,), service=service, **policy)
    config = consumer_config(spec)
    config.deliver_policy = DeliverPolicy.NEW
    await js.add_consumer(stream, config)
    try:
        yield spec
    finally:
        await js.delete_consumer(stream, name)


async def dead_letter_after(js, nats_url, unique, handler, give_up=None, **policy):
    """Feed one plan approval to `handler` through a scratch durable; return the dead letter it ends in."""
    plan = PlanApproved(story_id="s", plan_id=f"p-{unique}", approved_by="a", roles=[Role.DEV], tasks=[])
    subject = catalog.PLAN_APPROVED.subject
    async with scratch_durable(js, f"test-{unique}", PLANNING.name, subject, "planning", **policy) as spec:

        async def wire(mesh):
            return [Binding(DurableConsumer(spec, {subject: handler}, mesh.publisher,
                                            give_up={subject: give_up} if give_up else None))]

        async with running_service("planning", nats_url, wire):
            await js.publish(subject, body_of(plan), headers={MSG_ID: f"approval-{unique}"})
            [letter] = await wait_for(
                js, catalog.MESSAGE_REJECTED.subject, lambda m: decode(m).consumer == spec.durable, 1, timeout_s=30
            )
    return decode(letter)


async def test_a_failing_handler_is_retried_then_dead_lettered_never_dropped(js, nats_url, unique):
    attempts = []

    async def on_plan_approved(incoming):
        attempts.append(incoming.deliveries)
        raise RuntimeError("graph store unreachable")

    letter = await dead_letter_after(js, nats_url, unique, on_plan_approved, max_deliveries=3)
    assert attempts == [1, 2, 3]
    assert letter.reason == "failed 3 times; last error: RuntimeError: graph store unreachable"
    assert letter.deliveries == 3


async def test_an_approval_given_up_on_after_its_retries_is_answered_rejected_with_the_last_error(
        js, nats_url, unique):
    async def on_plan_approved(incoming):
        raise RuntimeError("council directory unreachable")

    letter = await dead_letter_after(js, nats_url, unique, on_plan_approved, give_up=on_approval_refused,
                                     max_deliveries=2)
    [rejected] = await wait_for(js, catalog.PLAN_REJECTED.subject,
                                lambda m: decode(m).approval_id == f"approval-{unique}", 1)
    assert decode(rejected).reasons == [letter.reason] == [
        "failed 2 times; last error: RuntimeError: council directory unreachable"]
    assert decode(rejected).plan_id == f"p-{unique}"


async def test_a_handler_that_hangs_is_cut_off_at_its_deadline_then_dead_lettered(js, nats_url, unique):
    async def on_plan_approved(incoming):
        await asyncio.sleep(60)

    letter = await dead_letter_after(js, nats_url, unique, on_plan_approved, max_deliveries=2, handler_timeout_s=0.5)
    assert letter.reason == "failed 2 times; last error: handler did not finish within 0.5s"


def turn_request(unique: str, role: Role, agent_index: int) -> TurnRequested:
    agent = agent_profiles(role, 3)[agent_index]
    return TurnRequested(
        deliberation=DeliberationRef(deliberation_id=f"d-{unique}", story_id="s", plan_id="p", task_id="t", role=role),
        turn=Turn(phase=Phase.PROPOSE, round=0, agent_id=agent.agent_id, author_id=agent.agent_id),
        agent=agent,
        brief=Brief(task=PlannedTask(task_id="t", title="x"), rubric={"correctness": "works"}),
    )


async def test_an_agent_request_given_up_on_still_gets_a_typed_failure_so_no_deliberation_waits(js, nats_url, unique):
    request = turn_request(unique, Role.QA, agent_index=1)

    async def on_turn_requested(incoming):
        raise RuntimeError("actor died")

    subject = catalog.TURN_REQUESTED.subject
    async with scratch_durable(js, f"test-agents-{unique}", AGENT.name, subject, "agents", max_deliveries=2) as spec:

        async def wire(mesh):
            consumer = DurableConsumer(spec, {subject: on_turn_requested}, mesh.publisher,
                                       give_up={subject: on_turn_request_given_up})
            return [Binding(consumer)]

        async with running_service("agents", nats_url, wire):
            await js.publish(subject, body_of(request), headers={MSG_ID: f"ask-{unique}"})
            [failed] = await wait_for(js, catalog.TURN_FAILED.subject,
                                      lambda m: decode(m).deliberation.deliberation_id == f"d-{unique}", 1,
                                      timeout_s=30)
            await wait_for(js, catalog.MESSAGE_REJECTED.subject, lambda m: decode(m).consumer == spec.durable, 1)
    assert decode(failed).turn.agent_id == "qa-2" and decode(failed).error_class == "AgentGaveUp"
    assert decode(failed).message == "failed 2 times; last error: RuntimeError: actor died"


async def test_a_message_too_large_to_inline_is_dead_lettered_with_a_pointer_to_the_original(js, nats_url, unique):
    huge = b"not json " * 90_000
    async with running_service("planning", nats_url, planning_wire):
        ack = await js.publish(catalog.PLAN_APPROVED.subject, huge, headers={MSG_ID: f"huge-{unique}"})
        [letter] = await wait_for(js, catalog.MESSAGE_REJECTED.subject,
                                  lambda m: decode(m).original_headers.get(MSG_ID) == f"huge-{unique}", 1)
    rejected = decode(letter)
    assert rejected.original_body_omitted and rejected.original_body == b""
    assert (rejected.stream, rejected.stream_sequence) == (PLANNING.name, ack.seq)
    assert "not valid JSON" in rejected.reason
    original = await js.get_msg(PLANNING.name, ack.seq)
    assert original.data == huge


async def test_a_message_whose_service_keeps_dying_is_given_up_once_it_exceeds_its_deliveries(js, nats_url, unique):
    request = turn_request(unique, Role.DEV, agent_index=0)
    handled = []

    async def on_turn_requested(incoming):
        handled.append(incoming)
        return []

    subject = catalog.TURN_REQUESTED.subject
    async with scratch_durable(js, f"test-dying-{unique}", AGENT.name, subject, "agents",
                               max_deliveries=2, ack_wait_s=1.0) as spec:
        await js.publish(subject, body_of(request), headers={MSG_ID: f"dying-{unique}"})
        # Two services take the message and die before acknowledging it.
        dying = await js.pull_subscribe_bind(spec.durable, spec.stream)
        for _ in range(2):
            [taken] = await dying.fetch(1, timeout=5)
            await asyncio.sleep(spec.ack_wait_s + 0.5)
        await dying.unsubscribe()

        async def wire(mesh):
            consumer = DurableConsumer(spec, {subject: on_turn_requested}, mesh.publisher,
                                       give_up={subject: on_turn_request_given_up})
            return [Binding(consumer)]

        async with running_service("agents", nats_url, wire):
            [letter] = await wait_for(js, catalog.MESSAGE_REJECTED.subject,
                                      lambda m: decode(m).consumer == spec.durable, 1, timeout_s=30)
            [failed] = await wait_for(js, catalog.TURN_FAILED.subject,
                                      lambda m: decode(m).deliberation.deliberation_id == f"d-{unique}", 1)
    assert handled == [], "a message past its delivery limit must not be handled again"
    assert decode(letter).deliveries == 3
    assert decode(letter).reason.startswith("gave up after 2 deliveries that ended without an acknowledgement")
    assert decode(failed).error_class == "AgentGaveUp"


async def test_what_follows_publishing_runs_before_the_ack_and_its_failure_publishes_the_same_events_again(
        js, nats_url, unique):
    """The collector removes an outbox there: if that fails, the redelivery publishes again, and JetStream
    keeps one copy."""
    answer = PlanRejected(approval_id=f"approval-{unique}", original_subject=catalog.PLAN_APPROVED.subject,
                          reasons=["a test"], plan_id=f"p-{unique}")
    followed = []

    async def on_plan_approved(incoming):
        return [Outgoing(answer, event_id=f"rejected-{unique}")]

    async def after_published(incoming):
        stored = [m for m in await read_stream(js, catalog.PLAN_REJECTED.subject) if decode(m) == answer]
        followed.append((incoming.deliveries, len(stored)))
        if incoming.deliveries == 1:
            raise RuntimeError("KV unreachable")

    subject = catalog.PLAN_APPROVED.subject
    async with scratch_durable(js, f"test-after-{unique}", PLANNING.name, subject, "planning") as spec:

        async def wire(mesh):
            return [Binding(DurableConsumer(spec, {subject: on_plan_approved}, mesh.publisher,
                                            after_published={subject: after_published}))]

        async with running_service("planning", nats_url, wire):
            plan = PlanApproved(story_id="s", plan_id=f"p-{unique}", approved_by="a", roles=[Role.DEV], tasks=[])
            await js.publish(subject, body_of(plan), headers={MSG_ID: f"approval-{unique}"})
            async with asyncio.timeout(30):
                while len(followed) < 2:
                    await asyncio.sleep(0.2)
            await wait_until_idle(js, PLANNING.name, [spec.durable], timeout_s=30)

    # Each time, the events were stored before it ran; the second time, no second copy.
    assert followed == [(1, 1), (2, 1)]


async def test_a_message_in_hand_when_its_replica_stops_goes_to_another_replica_without_waiting_out_the_ack_wait(
        js, nats_url, unique):
    # A rollout stops a replica (SIGTERM) while a handler runs longer than the stop waits for it (an LLM
    # call): the message is handed back, and the replica left takes it at once, not after the ack wait.
    plan = PlanApproved(story_id="s", plan_id=f"p-{unique}", approved_by="a", roles=[Role.DEV], tasks=[])
    subject = catalog.PLAN_APPROVED.subject
    started, taken_over = asyncio.Event(), []

    async def on_plan_approved_slowly(incoming):
        started.set()
        await asyncio.sleep(600)

    async def on_plan_approved(incoming):
        taken_over.append(incoming.deliveries)
        return []

    async with scratch_durable(js, f"test-{unique}", PLANNING.name, subject, "planning", ack_wait_s=600.0) as spec:

        def wiring(handler):
            async def wire(mesh):
                return [Binding(DurableConsumer(spec, {subject: handler}, mesh.publisher))]
            return wire

        async with contextlib.AsyncExitStack() as replicas:
            stopping = contextlib.AsyncExitStack()
            await stopping.enter_async_context(running_service("planning", nats_url, wiring(on_plan_approved_slowly)))
            await js.publish(subject, body_of(plan), headers={MSG_ID: f"approval-{unique}"})
            await asyncio.wait_for(started.wait(), 30)
            await replicas.enter_async_context(running_service("planning", nats_url, wiring(on_plan_approved)))
            await stopping.aclose()
            await wait_until_idle(js, PLANNING.name, [spec.durable], timeout_s=60)
    assert taken_over == [2]
