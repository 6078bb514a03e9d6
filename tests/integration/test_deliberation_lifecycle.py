"""A deliberation's lifecycle through the real collector on a real nats-server: cancel, retry, outboxes
that go once published, and answers too large to store together."""

import msgspec
import pytest

from contracts import catalog
from contracts.envelope import MSG_ID
from contracts.events import (
    DeliberationCancelRequested,
    DeliberationRetryRequested,
    DeliberationStarted,
    Phase,
    Role,
    TurnCompleted,
)
from services.collector.app import SERVICE, wire
from services.collector.domain import attempt_id
from services.collector.handlers import RECORD_MAX_BYTES, Record
from services.councils.domain import new_council
from streams.definitions import AGENT as AGENT_STREAM
from streams.definitions import COLLECTOR_DELIBERATIONS, COLLECTOR_DELIBERATIONS_IN, COLLECTOR_TURNS, ORCHESTRATION
from tests.integration.test_deadlines import of
from tests.integration.test_deadlines import started as deadlines_started
from tests.support import body_of, decode, read_stream, running_service, wait_for, wait_until_idle

pytestmark = pytest.mark.integration


def started(unique: str) -> DeliberationStarted:
    """The deadlines spec's start, with phases long enough that no deadline comes before the cancel."""
    return msgspec.structs.replace(deadlines_started(unique), council=new_council(Role.QA, 3, phase_deadline_s=600))


async def publish(js, subject: str, payload, event_id: str) -> None:
    await js.publish(subject, body_of(payload), headers={MSG_ID: event_id})


async def idle(js) -> None:
    await wait_until_idle(js, ORCHESTRATION.name, [COLLECTOR_DELIBERATIONS_IN.durable])
    await wait_until_idle(js, AGENT_STREAM.name, [COLLECTOR_TURNS.durable])


async def test_a_cancelled_deliberation_fails_once_as_cancelled_and_a_retry_starts_a_new_attempt_once(
        js, nats_url, unique):
    deliberation = f"d-{unique}"
    async with running_service(SERVICE, nats_url, wire):
        await publish(js, catalog.DELIBERATION_STARTED.subject, started(unique), f"start-{unique}")
        await wait_for(js, catalog.TURN_REQUESTED.subject, of(deliberation), 3)
        cancel = DeliberationCancelRequested(deliberation_id=deliberation, requested_by="alice", reason="wrong brief")
        await publish(js, catalog.DELIBERATION_CANCEL_REQUESTED.subject, cancel, f"cancel-{unique}")
        await publish(js, catalog.DELIBERATION_CANCEL_REQUESTED.subject, cancel, f"cancel-again-{unique}")
        [failed] = await wait_for(js, catalog.DELIBERATION_FAILED.subject, of(deliberation), 1, timeout_s=20)

        retry = DeliberationRetryRequested(deliberation_id=deliberation, requested_by="bob", reason="brief fixed")
        await publish(js, catalog.DELIBERATION_RETRY_REQUESTED.subject, retry, f"retry-{unique}")
        [requested] = await wait_for(js, catalog.DELIBERATION_REQUESTED.subject,
                                     lambda m: decode(m).attempt and decode(m).attempt.previous_id == deliberation, 1)
        second = DeliberationRetryRequested(deliberation_id=deliberation, requested_by="carol", reason="again")
        await publish(js, catalog.DELIBERATION_RETRY_REQUESTED.subject, second, f"retry-2-{unique}")
        [letter] = await wait_for(js, catalog.MESSAGE_REJECTED.subject,
                                  lambda m: deliberation in decode(m).reason, 1, timeout_s=20)
        await idle(js)

    failure = decode(failed)
    assert (failure.phase, failure.cancelled_by, failure.reason) == (Phase.PROPOSE, "alice",
                                                                      "cancelled by alice: wrong brief")
    results = [m.data for m in await read_stream(js, catalog.DELIBERATION_FAILED.subject) if of(deliberation)(m)]
    assert results == [failed.data]  # the second cancel changed nothing
    assert await read_stream(js, f"orchestration.schedule.{deliberation}") == []  # no deadline left behind
    new_attempt = decode(requested)
    assert new_attempt.deliberation.deliberation_id == attempt_id(deliberation, 2)
    assert (new_attempt.approved_by, new_attempt.attempt.number) == ("bob", 2)
    assert decode(letter).reason == (f"deliberation {deliberation} was already retried as "
                                     f"{attempt_id(deliberation, 2)}; retry that one")
    # Every message was published and acked: no outbox is left in the stored record.
    entry = await (await js.key_value(COLLECTOR_DELIBERATIONS.bucket)).get(deliberation)
    record = msgspec.json.decode(entry.value, type=Record)
    assert record.outboxes == {} and record.deliberation.retried_as == attempt_id(deliberation, 2)


async def test_answers_too_large_to_store_together_fail_the_deliberation_once_instead_of_being_dead_lettered(
        js, nats_url, unique):
    """Three proposals of 64,000 control characters (6 bytes each as JSON): each message fits in NATS's 1 MiB,
    but the record that would hold all three does not. The deliberation fails, saying so; no answer is
    retried until dead-lettered."""
    deliberation = f"d-{unique}"
    async with running_service(SERVICE, nats_url, wire):
        await publish(js, catalog.DELIBERATION_STARTED.subject, started(unique), f"start-{unique}")
        asked = [decode(m) for m in await wait_for(js, catalog.TURN_REQUESTED.subject, of(deliberation), 3)]
        for request in asked:
            answer = TurnCompleted(
                deliberation=request.deliberation, turn=request.turn, agent=request.agent, content="\x01" * 64_000,
                model="m", temperature=0.3, seed=1, prompt_tokens=1, completion_tokens=1, latency_ms=1)
            await publish(js, catalog.TURN_COMPLETED.subject, answer, f"answer-{request.turn.key}-{unique}")
        [failed] = await wait_for(js, catalog.DELIBERATION_FAILED.subject, of(deliberation), 1, timeout_s=20)
        await idle(js)

    failure = decode(failed)
    assert failure.phase == Phase.PROPOSE and not failure.timed_out
    assert "its stored record would be " in failure.reason
    assert f"over the store's limit of {RECORD_MAX_BYTES:,} bytes" in failure.reason
    letters = [m for m in await read_stream(js, catalog.MESSAGE_REJECTED.subject) if deliberation in m.data.decode()]
    assert letters == []
    entry = await (await js.key_value(COLLECTOR_DELIBERATIONS.bucket)).get(deliberation)
    assert msgspec.json.decode(entry.value, type=Record).deliberation.failed == failure
