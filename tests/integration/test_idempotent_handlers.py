"""Dispatch and collector on real JetStream KV: a redelivery repeats the decision, a stored copy does not.

A re-published approval yields requests and outcomes with the same deterministic event ids, but they
are new messages in the stream. Once JetStream's duplicate window has passed, only the state in KV
stands between such a copy and a second deliberation, a second phase or a second result.
"""

import asyncio
from functools import partial

import pytest

from contracts import catalog
from contracts.envelope import MSG_ID, from_headers
from contracts.events import (
    Brief,
    DeliberationAdvanced,
    DeliberationRef,
    DeliberationRequested,
    DeliberationStarted,
    Phase,
    PlannedTask,
    Role,
    TurnCompleted,
    TurnRequested,
)
from services.collector.handlers import CollectorHandlers, Record
from services.councils.domain import new_council
from services.dispatch.domain import Claim
from services.dispatch.handlers import DispatchHandlers
from services.mesh.kv import VersionedStore
from services.mesh.messages import Incoming, utc_now
from services.mesh.publishing import cancel_schedule
from streams.definitions import COLLECTOR_DELIBERATIONS, DISPATCH_CLAIMS

pytestmark = pytest.mark.integration
# Recent: a deliberation that started longer ago than its overall deadline fails at once.
NOW = utc_now()
COUNCIL = new_council(Role.DEV, 3)
ARCHITECT = new_council(Role.ARCHITECT, 1).agents[0]
BRIEF = Brief(task=PlannedTask(task_id="t", title="x"), rubric={"correctness": "works"})


def incoming(payload, sequence: int, event_id: str) -> Incoming:
    spec = catalog.spec_for_payload(payload)
    envelope = from_headers({MSG_ID: event_id}, event_type=spec.event_type, schema_version=spec.version,
                            aggregate_type=spec.aggregate_type, aggregate_id=payload.aggregate_id(), received_at=NOW)
    return Incoming(payload=payload, envelope=envelope, subject=spec.subject, stream_sequence=sequence, deliveries=1)


def ref(unique: str) -> DeliberationRef:
    return DeliberationRef(deliberation_id=f"d-{unique}", story_id="s", plan_id="p", task_id="t", role=Role.DEV)


def started(unique: str) -> DeliberationStarted:
    return DeliberationStarted(deliberation=ref(unique), brief=BRIEF, council=COUNCIL, architect=ARCHITECT,
                               started_at=NOW)


def proposal(request: TurnRequested) -> TurnCompleted:
    return TurnCompleted(
        deliberation=request.deliberation, turn=request.turn, agent=request.agent,
        content=f"plan of {request.turn.agent_id}", model="m", temperature=request.agent.temperature,
        seed=request.agent.seed, prompt_tokens=1, completion_tokens=1, latency_ms=1,
    )


@pytest.fixture
def dispatch(js):
    return DispatchHandlers(claims=VersionedStore(js, DISPATCH_CLAIMS, Claim), clock=utc_now)


@pytest.fixture
def collector(js):
    return CollectorHandlers(
        store=VersionedStore(js, COLLECTOR_DELIBERATIONS, Record),
        cancel_schedule=partial(cancel_schedule, js, catalog.DEADLINE_PASSED.subject),
        clock=utc_now,
    )


async def start(collector, unique: str) -> list[TurnRequested]:
    out = await collector.on_deliberation_started(incoming(started(unique), 1, f"start-{unique}"))
    return [o.payload for o in out if isinstance(o.payload, TurnRequested)]


def phases(outgoing) -> list[Phase]:
    return [o.payload.phase for o in outgoing if isinstance(o.payload, DeliberationAdvanced)]


async def test_dispatch_repeats_the_start_for_a_redelivery_and_ignores_a_stored_copy(dispatch, unique):
    request = DeliberationRequested(deliberation=ref(unique), brief=BRIEF, approved_by="a", council=COUNCIL,
                                    architect=ARCHITECT)
    first = await dispatch.on_deliberation_requested(incoming(request, 10, "req"))
    redelivered = await dispatch.on_deliberation_requested(incoming(request, 10, "req"))
    copy = await dispatch.on_deliberation_requested(incoming(request, 11, "req"))
    assert len(first) == 1 and redelivered == first
    assert copy == []


async def test_the_collector_republishes_for_a_redelivery_only(collector, unique):
    asked = await start(collector, unique)
    assert await collector.on_turn_completed(incoming(proposal(asked[0]), 1, "o1")) == []
    assert await collector.on_turn_completed(incoming(proposal(asked[1]), 2, "o2")) == []
    closing = await collector.on_turn_completed(incoming(proposal(asked[2]), 3, "o3"))
    assert phases(closing) == [Phase.CRITIQUE]
    assert await collector.on_turn_completed(incoming(proposal(asked[2]), 3, "o3")) == closing
    assert await collector.on_turn_completed(incoming(proposal(asked[2]), 9, "o3")) == []
    assert await collector.on_turn_completed(incoming(proposal(asked[0]), 10, "o1")) == []


async def test_a_redelivery_finds_its_own_events_after_later_messages_changed_the_deliberation(collector, unique):
    asked = await start(collector, unique)
    redelivered_start = await collector.on_deliberation_started(incoming(started(unique), 1, f"start-{unique}"))
    for seq, request in enumerate(asked, start=1):
        await collector.on_turn_completed(incoming(proposal(request), seq, f"o{seq}"))
    again = await collector.on_deliberation_started(incoming(started(unique), 1, f"start-{unique}"))
    assert phases(again) == phases(redelivered_start) == [Phase.PROPOSE]
    assert [o.event_id for o in again] == [o.event_id for o in redelivered_start]


async def test_concurrent_outcomes_of_one_deliberation_close_the_phase_exactly_once(collector, unique):
    asked = await start(collector, unique)
    answers = await asyncio.gather(*(
        collector.on_turn_completed(incoming(proposal(request), seq, f"o{seq}"))
        for seq, request in enumerate(asked, start=1)
    ))
    assert [phase for answer in answers for phase in phases(answer)] == [Phase.CRITIQUE]


async def test_once_its_events_are_published_a_messages_outbox_goes_and_a_later_redelivery_publishes_nothing(
        collector, unique):
    asked = await start(collector, unique)
    for seq, request in enumerate(asked[:2], start=1):
        await collector.on_turn_completed(incoming(proposal(request), seq, f"o{seq}"))
    last = incoming(proposal(asked[2]), 3, "o3")
    closing = await collector.on_turn_completed(last)

    # Died after publishing, before the outbox went: the redelivery publishes the same events again.
    assert await collector.on_turn_completed(last) == closing
    await collector.forget_outbox(last)

    record, _ = await collector.store.load(f"d-{unique}")
    assert "AGENT:3" not in record.outboxes and "ORCHESTRATION:1" in record.outboxes
    assert await collector.on_turn_completed(last) == []
