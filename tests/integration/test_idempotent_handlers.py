"""Dispatch and collector on real JetStream KV: a redelivery repeats the decision, a stored copy does not.

A re-published approval yields requests and outcomes with the same deterministic event ids, but they
are new messages in the stream. Once JetStream's duplicate window has passed, only the decision
records in KV stand between such a copy and a second deliberation or a second result.
"""

import asyncio
import datetime as dt

import pytest

from contracts import catalog
from contracts.envelope import MSG_ID, from_headers
from contracts.events import (
    DeliberationCompleted,
    DeliberationRef,
    DeliberationRequested,
    PlannedTask,
    ProposalCompleted,
    Role,
)
from services.collector.domain import Collected
from services.collector.handlers import CollectorHandlers
from services.dispatch.domain import Claim, CouncilPolicy
from services.dispatch.handlers import DispatchHandlers
from services.mesh.consuming import Incoming
from services.mesh.kv import VersionedStore
from services.mesh.publishing import utc_now
from streams.definitions import COLLECTOR_DELIBERATIONS, DISPATCH_CLAIMS

pytestmark = pytest.mark.integration
NOW = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)


def incoming(payload, sequence: int, event_id: str) -> Incoming:
    spec = catalog.spec_for_payload(payload)
    envelope = from_headers({MSG_ID: event_id}, event_type=spec.event_type, schema_version=spec.version,
                            aggregate_type=spec.aggregate_type, aggregate_id=payload.aggregate_id(), received_at=NOW)
    return Incoming(payload=payload, envelope=envelope, subject=spec.subject, stream_sequence=sequence, deliveries=1)


def ref(unique: str) -> DeliberationRef:
    return DeliberationRef(deliberation_id=f"d-{unique}", story_id="s", plan_id="p", task_id="t", role=Role.DEV)


def outcome(unique: str, agent_id: str) -> ProposalCompleted:
    return ProposalCompleted(
        deliberation=ref(unique), agent_id=agent_id, council=["dev-1", "dev-2", "dev-3"], started_at=NOW,
        content=f"plan of {agent_id}", model="m", temperature=0.7, prompt_tokens=1, completion_tokens=1, latency_ms=1,
    )


@pytest.fixture
def dispatch(js):
    return DispatchHandlers(claims=VersionedStore(js, DISPATCH_CLAIMS, Claim), policy=CouncilPolicy(), clock=utc_now)


@pytest.fixture
def collector(js):
    return CollectorHandlers(store=VersionedStore(js, COLLECTOR_DELIBERATIONS, Collected), clock=utc_now)


async def test_dispatch_repeats_the_start_for_a_redelivery_and_ignores_a_stored_copy(dispatch, unique):
    request = DeliberationRequested(deliberation=ref(unique), task=PlannedTask(task_id="t", title="x"), approved_by="a")
    first = await dispatch.on_deliberation_requested(incoming(request, 10, "req"))
    redelivered = await dispatch.on_deliberation_requested(incoming(request, 10, "req"))
    copy = await dispatch.on_deliberation_requested(incoming(request, 11, "req"))
    assert len(first) == 4 and redelivered == first
    assert copy == []


async def test_the_collector_republishes_for_a_redelivery_only(collector, unique):
    assert await collector.on_proposal_completed(incoming(outcome(unique, "dev-1"), 1, "o1")) == []
    assert await collector.on_proposal_completed(incoming(outcome(unique, "dev-2"), 2, "o2")) == []
    [result] = await collector.on_proposal_completed(incoming(outcome(unique, "dev-3"), 3, "o3"))
    assert isinstance(result.payload, DeliberationCompleted)
    assert await collector.on_proposal_completed(incoming(outcome(unique, "dev-3"), 3, "o3")) == [result]
    assert await collector.on_proposal_completed(incoming(outcome(unique, "dev-3"), 9, "o3")) == []
    assert await collector.on_proposal_completed(incoming(outcome(unique, "dev-1"), 10, "o1")) == []


async def test_concurrent_outcomes_of_one_deliberation_yield_exactly_one_result(collector, unique):
    answers = await asyncio.gather(*(
        collector.on_proposal_completed(incoming(outcome(unique, agent), seq, f"o{seq}"))
        for seq, agent in enumerate(["dev-1", "dev-2", "dev-3"], start=1)
    ))
    results = [event for answer in answers for event in answer]
    assert len(results) == 1
    assert {r.agent_id for r in results[0].payload.ranking} == {"dev-1", "dev-2", "dev-3"}
