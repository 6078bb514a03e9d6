"""Phase deadlines are JetStream message schedules: they fire on time, survive the service, and are cancelled."""

import asyncio
import datetime as dt

import pytest

from contracts import catalog
from contracts.envelope import MSG_ID, SCHEDULER
from contracts.events import (
    Brief,
    DeliberationRef,
    DeliberationStarted,
    Phase,
    PlannedTask,
    Role,
    TurnFailed,
)
from services.collector.app import SERVICE, wire
from services.councils.domain import new_council
from tests.support import body_of, decode, read_stream, running_service, wait_for

pytestmark = pytest.mark.integration
DEADLINE_S = 2.0


def started(unique: str) -> DeliberationStarted:
    return DeliberationStarted(
        deliberation=DeliberationRef(deliberation_id=f"d-{unique}", story_id="s", plan_id=f"p-{unique}",
                                     task_id="t", role=Role.QA),
        brief=Brief(task=PlannedTask(task_id="t", title="Test the importer"), rubric={"coverage": "edge cases"}),
        council=new_council(Role.QA, 3, phase_deadline_s=DEADLINE_S),
        architect=new_council(Role.ARCHITECT, 1).agents[0],
        started_at=dt.datetime.now(dt.UTC),
    )


def of(deliberation_id: str):
    return lambda message: decode(message).aggregate_id() == deliberation_id


async def test_unanswered_turns_fail_at_the_phase_deadline_even_with_no_agent_running(js, nats_url, unique):
    event = started(unique)
    async with running_service(SERVICE, nats_url, wire):
        await js.publish(catalog.DELIBERATION_STARTED.subject, body_of(event), headers={MSG_ID: f"start-{unique}"})
        [result] = await wait_for(js, catalog.DELIBERATION_FAILED.subject, of(f"d-{unique}"), 1, timeout_s=20)
    failed = decode(result)
    assert failed.phase == Phase.PROPOSE
    assert "0 of 3 agents proposed" in failed.reason
    assert f"DeadlinePassed: no answer within {DEADLINE_S:g}s" in failed.reason
    assert DEADLINE_S * 1000 <= failed.duration_ms < (DEADLINE_S + 5) * 1000
    [deadline] = await wait_for(js, catalog.DEADLINE_PASSED.subject, of(f"d-{unique}"), 1)
    assert deadline.headers[SCHEDULER] == f"orchestration.schedule.d-{unique}"


async def test_a_deliberation_that_ends_early_leaves_no_deadline_behind(js, nats_url, unique):
    event = started(unique)
    async with running_service(SERVICE, nats_url, wire):
        await js.publish(catalog.DELIBERATION_STARTED.subject, body_of(event), headers={MSG_ID: f"start-{unique}"})
        asked = await wait_for(js, catalog.TURN_REQUESTED.subject, of(f"d-{unique}"), 3)
        for message in asked:
            request = decode(message)
            failure = TurnFailed(deliberation=request.deliberation, turn=request.turn, agent=request.agent,
                                 error_class="LlmConnectionRefused", message="no server")
            await js.publish(catalog.TURN_FAILED.subject, body_of(failure), headers={MSG_ID: f"f-{request.turn.key}"})
        await wait_for(js, catalog.DELIBERATION_FAILED.subject, of(f"d-{unique}"), 1, timeout_s=10)
        await asyncio.sleep(DEADLINE_S + 1.5)
    assert [m for m in await read_stream(js, catalog.DEADLINE_PASSED.subject) if of(f"d-{unique}")(m)] == []
