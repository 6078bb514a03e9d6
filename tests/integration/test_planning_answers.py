"""The planning service answers upstream on a real JetStream: each approval accepted or rejected, each
accepted plan concluded when its deliberations are over, and any other ingress dead-lettered once."""

import msgspec
import pytest

from contracts import catalog
from contracts.envelope import MSG_ID
from contracts.events import (
    Attempt,
    CouncilCreated,
    CouncilDeleted,
    DeliberationCompleted,
    DeliberationFailed,
    Phase,
    PlanApproved,
    PlannedTask,
    Role,
    StoryTransitioned,
    Winner,
)
from services.councils.domain import new_council
from services.mesh.publishing import EventPublisher
from services.mesh.settings import Settings
from services.planning.app import SERVICE, wire
from services.projection.app import dead_letterer, projectors
from streams.definitions import PLANNING, PLANNING_APPROVALS, PLANNING_PLAN_OUTCOMES
from tests.support import body_of, decode, read_stream, running_service, wait_for, wait_until_idle

pytestmark = pytest.mark.integration

APPROVALS = PLANNING_APPROVALS.durable


def approval(unique: str, **changes) -> PlanApproved:
    fields = {"story_id": f"s-{unique}", "plan_id": f"p-{unique}", "approved_by": "alice",
              "roles": [Role.DEV, Role.DATA], "tasks": [PlannedTask(task_id="t-1", title="Model orders")]}
    return PlanApproved(**{**fields, **changes})


def answering(approval_id: str):
    return lambda message: decode(message).approval_id == approval_id


def of_plan(plan_id: str):
    return lambda message: decode(message).plan_id == plan_id


async def letters_for(js, message_id: str) -> list:
    return [m for m in await read_stream(js, catalog.MESSAGE_REJECTED.subject)
            if decode(m).original_headers.get(MSG_ID) == message_id]


async def test_a_good_approval_is_answered_accepted_after_its_requests_with_each_deliberation(js, nats_url, unique):
    plan = approval(unique)
    async with running_service(SERVICE, nats_url, wire):
        await js.publish(catalog.PLAN_APPROVED.subject, body_of(plan), headers={MSG_ID: f"approval-{unique}"})
        [accepted] = await wait_for(js, catalog.PLAN_ACCEPTED.subject, answering(f"approval-{unique}"), 1)
    requests = [m for m in await read_stream(js, catalog.DELIBERATION_REQUESTED.subject)
                if decode(m).deliberation.plan_id == plan.plan_id]
    answer = decode(accepted)
    assert (answer.story_id, answer.plan_id, answer.approved_by) == (plan.story_id, plan.plan_id, "alice")
    assert {(d.deliberation_id, d.task_id, d.role) for d in answer.deliberations} == {
        (decode(m).deliberation.deliberation_id, "t-1", decode(m).deliberation.role) for m in requests}
    assert len(requests) == 2
    assert all(m.metadata.sequence.stream < accepted.metadata.sequence.stream for m in requests)


BAD_APPROVALS = {
    "not JSON": (catalog.PLAN_APPROVED.subject, lambda u: b"{not json", ("", ""),
                 ["planning.plan.approved.v1 body is not valid JSON"]),
    "wrong types": (catalog.PLAN_APPROVED.subject,
                    lambda u: b'{"story_id": 42, "plan_id": "p-%s", "approved_by": "x", "roles": ["DEV"]}' % u.encode(),
                    ("", "p-{u}"), ["invalid planning.plan.approved.v1 payload: Expected `str`, got `int`"]),
    "a broken legacy approval": (catalog.LEGACY_PLAN_APPROVED.subject,
                                 lambda u: b'{"story_id": "s-%s", "plan_id": "p-%s"}' % (u.encode(), u.encode()),
                                 ("s-{u}", "p-{u}"), ["invalid planning.plan.approved payload: Object missing"]),
    "roles and tasks twice": (
        catalog.PLAN_APPROVED.subject,
        lambda u: body_of(approval(u, roles=[Role.DEV, Role.DEV],
                                   tasks=[PlannedTask(task_id="t", title="a"), PlannedTask(task_id="t", title="b")])),
        ("s-{u}", "p-{u}"), ["roles listed more than once: DEV", "task_id listed more than once: t"]),
    "a brief too large": (catalog.PLAN_APPROVED.subject,
                          lambda u: body_of(approval(u, rubric={f"c{i}": "x" * 60_000 for i in range(5)})),
                          ("s-{u}", "p-{u}"), ["the brief of task 't-1'"]),
}


@pytest.mark.parametrize("kind", BAD_APPROVALS)
async def test_a_bad_approval_is_answered_rejected_with_every_reason_and_dead_lettered_once(js, nats_url, unique, kind):
    subject, body, (story_id, plan_id), reasons = BAD_APPROVALS[kind]
    async with running_service(SERVICE, nats_url, wire):
        await js.publish(subject, body(unique), headers={MSG_ID: f"bad-{unique}"})
        [rejected] = await wait_for(js, catalog.PLAN_REJECTED.subject, answering(f"bad-{unique}"), 1)
        await wait_until_idle(js, PLANNING.name, [APPROVALS])
    answer = decode(rejected)
    assert (answer.story_id, answer.plan_id) == (story_id.format(u=unique), plan_id.format(u=unique))
    assert answer.original_subject == subject
    assert len(answer.reasons) == len(reasons)
    assert all(reason.startswith(start) for reason, start in zip(answer.reasons, reasons, strict=True)), answer.reasons
    [letter] = await letters_for(js, f"bad-{unique}")
    assert all(reason in decode(letter).reason for reason in answer.reasons)
    assert [m for m in await read_stream(js, catalog.PLAN_ACCEPTED.subject) if answering(f"bad-{unique}")(m)] == []


async def test_an_approval_for_a_role_without_a_council_is_rejected_with_how_to_create_one(js, nats_url, unique):
    await js.publish(catalog.COUNCIL_DELETED.subject, body_of(CouncilDeleted(role=Role.DEVOPS, deleted_by="test")),
                     headers={MSG_ID: f"delete-devops-{unique}"})
    try:
        plan = approval(unique, roles=[Role.DEVOPS])
        async with running_service(SERVICE, nats_url, wire):
            await js.publish(catalog.PLAN_APPROVED.subject, body_of(plan), headers={MSG_ID: f"approval-{unique}"})
            [rejected] = await wait_for(js, catalog.PLAN_REJECTED.subject, answering(f"approval-{unique}"), 1)
            await wait_until_idle(js, PLANNING.name, [APPROVALS])
    finally:
        restored = CouncilCreated(council=new_council(Role.DEVOPS), created_by="test")
        await js.publish(catalog.COUNCIL_CREATED.subject, body_of(restored), headers={MSG_ID: f"restore-{unique}"})
    assert decode(rejected).reasons == ["no council for role DEVOPS; create one with "
                                        "`fleet council create --role DEVOPS`"]
    assert (decode(rejected).story_id, decode(rejected).plan_id) == (plan.story_id, plan.plan_id)
    assert len(await letters_for(js, f"approval-{unique}")) == 1


async def projected_past(js, nats_url, redis_endpoints, unique) -> None:
    """Both projections, with their real dead-lettering, caught up with the PLANNING stream."""
    settings = Settings(data_dir=".", nats_url=nats_url, valkey_url=redis_endpoints["valkey_url"],
                        graph_uri=redis_endpoints["graph_uri"], graph_name=f"t{unique}", kv_prefix=f"t{unique}")
    for projector in projectors(settings, dead_letterer(EventPublisher(js, producer=catalog.PROJECTION))):
        namespace = await projector.store.active_namespace()
        await projector.store.prepare(namespace)
        try:
            await projector.catch_up(js, namespace, PLANNING, lambda progress: None)
        finally:
            await projector.store.drop(namespace)
            await projector.store.close()


async def test_an_unknown_ingress_subject_is_dead_lettered_once_and_a_story_transition_not_at_all(
        js, nats_url, redis_endpoints, unique):
    legacy = b'{"story_id": "s-%s", "from_state": "DESIGN", "to_state": "BUILD", "transitioned_by": "po", ' \
             b'"timestamp": 1764000000}' % unique.encode()
    transition = StoryTransitioned(story_id=f"s-{unique}", from_state="BUILD", to_state="DONE", transitioned_by="po")
    async with running_service(SERVICE, nats_url, wire):
        unknown = await js.publish("planning.story.renamed.v1", b'{"story_id": "s"}', headers={MSG_ID: f"u-{unique}"})
        old = await js.publish(catalog.LEGACY_STORY_TRANSITIONED.subject, legacy)
        new = await js.publish(catalog.STORY_TRANSITIONED.subject, body_of(transition), headers={MSG_ID: f"t-{unique}"})
        await wait_until_idle(js, PLANNING.name, [APPROVALS])
    await projected_past(js, nats_url, redis_endpoints, unique)

    positions = {unknown.seq, old.seq, new.seq}
    letters = [decode(m) for m in await read_stream(js, catalog.MESSAGE_REJECTED.subject)
               if decode(m).stream == PLANNING.name and decode(m).stream_sequence in positions]
    assert [(x.stream_sequence, x.service, x.consumer) for x in letters] == [(unknown.seq, SERVICE, APPROVALS)]
    assert letters[0].reason == (
        f"{APPROVALS} takes no message on subject 'planning.story.renamed.v1'; it takes planning.plan.approved, "
        "planning.plan.approved.v1, planning.story.transitioned, planning.story.transitioned.v1")


def result(deliberation, outcome: str, winner: str = "dev-1"):
    common = {"deliberation_id": deliberation.deliberation_id, "story_id": deliberation.story_id,
              "plan_id": deliberation.plan_id, "task_id": deliberation.task_id, "role": deliberation.role}
    if outcome == "completed":
        return catalog.DELIBERATION_COMPLETED.subject, DeliberationCompleted(
            **common, winner=Winner(agent_id=winner, content="c", score=8.0, revisions=0), ranking=[],
            rationale="r", decided_by="architect-1", duration_ms=10)
    return catalog.DELIBERATION_FAILED.subject, DeliberationFailed(
        **common, phase=Phase.PROPOSE, reason="quorum not reached", duration_ms=10, timed_out=outcome == "timed_out")


async def accepted_plan(js, unique: str) -> list:
    """An approval accepted by the running service: its requests, in order."""
    plan = approval(unique, tasks=[PlannedTask(task_id="t-1", title="One"), PlannedTask(task_id="t-2", title="Two")])
    await js.publish(catalog.PLAN_APPROVED.subject, body_of(plan), headers={MSG_ID: f"approval-{unique}"})
    [accepted] = await wait_for(js, catalog.PLAN_ACCEPTED.subject, answering(f"approval-{unique}"), 1)
    return [m for m in await read_stream(js, catalog.DELIBERATION_REQUESTED.subject)
            if decode(m).deliberation.plan_id == decode(accepted).plan_id]


async def publish_results(js, requests, outcomes, tag: str) -> None:
    for message, outcome in zip(requests, outcomes, strict=True):
        subject, event = result(decode(message).deliberation, outcome)
        await js.publish(subject, body_of(event), headers={MSG_ID: f"{tag}-{event.deliberation_id}"})


async def test_a_plan_concludes_once_with_each_outcome_when_its_last_deliberation_ends(js, nats_url, unique):
    outcomes = ["completed", "failed", "timed_out", "completed"]
    async with running_service(SERVICE, nats_url, wire):
        requests = await accepted_plan(js, unique)
        await publish_results(js, requests[:3], outcomes[:3], "result")
        await wait_until_idle(js, "ORCHESTRATION", [PLANNING_PLAN_OUTCOMES.durable])
        assert [m for m in await read_stream(js, catalog.PLAN_CONCLUDED.subject) if of_plan(f"p-{unique}")(m)] == []
        await publish_results(js, requests[3:], outcomes[3:], "result")
        [concluded] = await wait_for(js, catalog.PLAN_CONCLUDED.subject, of_plan(f"p-{unique}"), 1)
        # The same results stored again (another publisher's ids) are the same facts: nothing new concludes.
        await publish_results(js, requests, outcomes, "again")
        await wait_until_idle(js, "ORCHESTRATION", [PLANNING_PLAN_OUTCOMES.durable])
    async with running_service(SERVICE, nats_url, wire):
        await wait_until_idle(js, "ORCHESTRATION", [PLANNING_PLAN_OUTCOMES.durable])
    answer = decode(concluded)
    assert [(o.deliberation_id, o.outcome) for o in answer.outcomes] == [
        (decode(m).deliberation.deliberation_id, outcome) for m, outcome in zip(requests, outcomes, strict=True)]
    assert (answer.completed, answer.failed, answer.revision) == (2, 2, 1)
    assert len([m for m in await read_stream(js, catalog.PLAN_CONCLUDED.subject) if of_plan(f"p-{unique}")(m)]) == 1


async def test_a_retried_deliberation_that_ends_concludes_its_plan_again_as_revision_2(js, nats_url, unique):
    async with running_service(SERVICE, nats_url, wire):
        requests = await accepted_plan(js, unique)
        await publish_results(js, requests, ["completed", "failed", "completed", "completed"], "result")
        await wait_for(js, catalog.PLAN_CONCLUDED.subject, of_plan(f"p-{unique}"), 1)
        first = decode(requests[1])
        retry = msgspec.structs.replace(
            first, deliberation=msgspec.structs.replace(first.deliberation, deliberation_id=f"retry-{unique}"),
            attempt=Attempt(first_id=first.deliberation.deliberation_id, previous_id=first.deliberation.deliberation_id,
                            number=2, requested_by="ops", reason="the LLM was down"),
        )
        # As the collector requests a retry's new attempt, then its result.
        await js.publish(catalog.DELIBERATION_REQUESTED.subject, body_of(retry), headers={MSG_ID: f"retry-{unique}"})
        subject, completed = result(retry.deliberation, "completed", winner="data-2")
        await js.publish(subject, body_of(completed), headers={MSG_ID: f"retry-result-{unique}"})
        concluded = await wait_for(js, catalog.PLAN_CONCLUDED.subject, of_plan(f"p-{unique}"), 2)
    first_answer, second_answer = sorted((decode(m) for m in concluded), key=lambda c: c.revision)
    assert (first_answer.revision, second_answer.revision) == (1, 2)
    assert [o.outcome for o in first_answer.outcomes] == ["completed", "failed", "completed", "completed"]
    assert [o.outcome for o in second_answer.outcomes] == ["completed"] * 4
    assert (second_answer.outcomes[1].deliberation_id, second_answer.outcomes[1].winner_id) == (
        f"retry-{unique}", "data-2")
