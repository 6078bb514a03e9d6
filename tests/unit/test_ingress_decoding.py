"""Every raw message is decoded into a typed event in its envelope, or rejected with a precise reason."""

import datetime as dt
import json

import pytest

from contracts import catalog
from contracts.envelope import CORRELATION_ID, EVENT_TYPE, MSG_ID, OCCURRED_AT, SCHEDULER, SCHEMA_VERSION
from contracts.errors import ContractViolation, Rejected
from contracts.events import DeadlinePassed, Phase, PlanApproved, Role
from services.mesh.decoding import decode_incoming

RECEIVED = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)
VALID = {"story_id": "s-1", "plan_id": "p-1", "approved_by": "alice", "roles": ["DEV"], "tasks": []}


def decode(subject, body, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return decode_incoming(subject, headers if headers is not None else {MSG_ID: "m-1"}, data,
                           received_at=RECEIVED, stream_sequence=3, deliveries=1)


def test_an_approval_with_only_a_message_id_gets_every_other_header_defaulted():
    incoming = decode(catalog.PLAN_APPROVED.subject, VALID)
    envelope = incoming.envelope
    assert envelope.event_id == "m-1"
    assert (envelope.event_type, envelope.schema_version) == ("plan.approved", 1)
    assert envelope.correlation_id == envelope.causation_id == "m-1"
    assert envelope.aggregate_id == "p-1" and envelope.occurred_at == RECEIVED
    assert envelope.traceparent.startswith("00-")


def test_headers_that_are_sent_are_kept():
    headers = {MSG_ID: "m-1", CORRELATION_ID: "c-9", OCCURRED_AT: "2026-01-02T03:04:05Z"}
    envelope = decode(catalog.PLAN_APPROVED.subject, VALID, headers).envelope
    assert envelope.correlation_id == "c-9"
    assert envelope.occurred_at == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_a_legacy_approval_without_any_header_is_accepted_upcast_and_given_a_stable_id():
    body = {"story_id": "s-1", "plan_id": "p-1", "approved_by": "alice", "roles": ["QA"], "timestamp": "2025-01-01"}
    first = decode(catalog.LEGACY_PLAN_APPROVED.subject, body, headers={})
    again = decode(catalog.LEGACY_PLAN_APPROVED.subject, body, headers={})
    assert isinstance(first.payload, PlanApproved)
    assert first.payload.roles == [Role.QA] and first.payload.tasks[0].task_id == "p-1"
    assert first.envelope.schema_version == 0
    assert first.envelope.event_id == again.envelope.event_id


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        ({**VALID, "story_id": 5}, None, r"Expected `str`, got `int` - at `\$.story_id`"),
        ({k: v for k, v in VALID.items() if k != "plan_id"}, None, "missing required field `plan_id`"),
        ({**VALID, "roles": ["JANITOR"]}, None, r"Invalid enum value 'JANITOR' - at `\$.roles\[0\]`"),
        ({**VALID, "roles": []}, None, r"Expected `array` of length >= 1 - at `\$.roles`"),
        ({**VALID, "story_id": ""}, None, r"Expected `str` of length >= 1 - at `\$.story_id`"),
        (b"\xff\xfe not json", None, "body is not valid JSON"),
        (VALID, {}, "missing required header Nats-Msg-Id"),
        (VALID, {MSG_ID: "m", SCHEMA_VERSION: "7"}, "Fleet-Schema-Version='7' is not supported"),
        (VALID, {MSG_ID: "m", EVENT_TYPE: "plan.rejected"}, "does not match 'plan.approved'"),
        (VALID, {MSG_ID: "m", OCCURRED_AT: "yesterday"}, "not a valid ISO-8601 time"),
    ],
)
def test_a_malformed_approval_is_rejected_with_a_precise_reason(body, headers, reason):
    with pytest.raises(ContractViolation, match=reason):
        decode(catalog.PLAN_APPROVED.subject, body, headers)


def test_a_subject_without_a_contract_is_rejected():
    with pytest.raises(ContractViolation, match="no event is published on subject 'planning.plan.exploded.v1'"):
        decode("planning.plan.exploded.v1", VALID)


def test_a_contract_violation_is_a_rejection_so_it_is_dead_lettered_at_once():
    with pytest.raises(Rejected):
        decode(catalog.PLAN_APPROVED.subject, b"not json")


def deadline(in_round: int) -> bytes:
    passed = DeadlinePassed(deliberation_id="d-1", phase=Phase.CRITIQUE, round=in_round, deadline_at=RECEIVED)
    return catalog.encode(passed)


def test_a_deadline_fired_by_the_scheduler_without_a_message_id_is_identified_by_its_body():
    fired = {SCHEDULER: "orchestration.schedule.d-1"}
    first = decode(catalog.DEADLINE_PASSED.subject, deadline(0), fired)
    assert first.envelope.event_id == decode(catalog.DEADLINE_PASSED.subject, deadline(0), fired).envelope.event_id
    assert first.envelope.event_id != decode(catalog.DEADLINE_PASSED.subject, deadline(1), fired).envelope.event_id
    assert first.envelope.aggregate_id == "d-1"


def test_only_a_legacy_or_scheduled_message_may_come_without_a_message_id():
    with pytest.raises(ContractViolation, match="missing required header Nats-Msg-Id"):
        decode(catalog.DEADLINE_PASSED.subject, deadline(0), {})
