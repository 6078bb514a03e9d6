"""Generated traffic: every event survives its trip through body and headers, and every malformed approval
is rejected as a contract violation with a reason that names the flaw. Any other exception would be a
crash where the service reads it: a retry loop for a consumer, a halted fold for the projection."""

import datetime as dt
from types import SimpleNamespace

import msgspec
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from contracts import catalog
from contracts.envelope import (
    AGGREGATE_ID,
    AGGREGATE_TYPE,
    CAUSATION_ID,
    CORRELATION_ID,
    MSG_ID,
    PRODUCER,
    TRACEPARENT,
    to_headers,
)
from contracts.errors import ContractViolation
from contracts.events import PlanApproved, Role
from contracts.upcast import upcast
from services.councils.domain import new_council
from services.mesh.decoding import decode_incoming
from services.planning.domain import request_deliberations
from services.projection.fold import fold
from streams.definitions import PLANNING_APPROVALS
from tests.malformed import Ingress, malformed_approvals, unknown_subjects
from tests.strategies import approvals, envelopes, events, header_values

RECEIVED = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
COUNCILS = {role: new_council(role) for role in Role}
APPROVAL = PlanApproved(story_id="s-1", plan_id="p-1", approved_by="alice", roles=[Role.DEV], tasks=[])
APPROVED = catalog.PLAN_APPROVED.subject


def decoded(subject: str, headers: dict[str, str], body: bytes):
    return decode_incoming(subject, headers, body, received_at=RECEIVED, stream_sequence=7, deliveries=1)


def stored(subject: str, body: bytes) -> SimpleNamespace:
    """A message as the projection reads it from PLANNING, at sequence 7."""
    stored_ns = (RECEIVED - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1) * 1000
    return SimpleNamespace(subject=subject, headers={MSG_ID: "m-1"}, data=body,
                           reply=f"$JS.ACK.PLANNING.projection.1.7.7.{stored_ns}.0", metadata=SimpleNamespace(
                               stream="PLANNING", timestamp=RECEIVED, sequence=SimpleNamespace(stream=7)))


def planned(message: Ingress):
    """What the planning service makes of an approval, without the I/O: decode it, then request deliberations."""
    return request_deliberations(decoded(message.subject, message.headers, message.body).payload, COUNCILS)


@given(events.flatmap(lambda event: st.tuples(st.just(event), envelopes(*event))))
def test_every_event_survives_a_trip_through_its_body_and_envelope_headers(event_in_envelope):
    (spec, payload), envelope = event_in_envelope
    incoming = decoded(spec.subject, to_headers(envelope), catalog.encode(payload))
    assert incoming.payload == upcast(payload)
    assert incoming.envelope == envelope


@given(approvals, header_values)
def test_every_valid_approval_requests_one_deliberation_per_task_and_role(approval, message_id):
    requests = request_deliberations(decoded(APPROVED, {MSG_ID: message_id}, catalog.encode(approval)).payload,
                                     COUNCILS)
    assert len(requests) == max(len(approval.tasks), 1) * len(approval.roles)


@given(approvals, st.fixed_dictionaries({PRODUCER: header_values, CORRELATION_ID: header_values,
                                         CAUSATION_ID: header_values, TRACEPARENT: header_values}))
def test_headers_that_contradict_neither_subject_nor_payload_are_kept_as_sent(approval, claims):
    envelope = decoded(APPROVED, {MSG_ID: "m-1"} | claims, catalog.encode(approval)).envelope
    assert (envelope.producer, envelope.correlation_id, envelope.causation_id, envelope.traceparent) == (
        claims[PRODUCER], claims[CORRELATION_ID], claims[CAUSATION_ID], claims[TRACEPARENT])


@given(malformed_approvals)
def test_every_malformed_approval_is_rejected_with_a_reason_that_names_its_flaw(message):
    with pytest.raises(ContractViolation) as rejected:
        planned(message)
    reason = str(rejected.value)
    assert all(part in reason for part in message.says), f"{message.flaw}: {reason}"


@given(unknown_subjects())
def test_an_approval_on_a_subject_no_contract_names_is_rejected(message):
    with pytest.raises(ContractViolation, match="no event is published on subject"):
        planned(message)


def test_an_approval_of_an_unknown_version_is_left_by_the_projection_to_planning_which_takes_all_ingress():
    folded = fold([stored("planning.plan.approved.v2", catalog.encode(APPROVAL))], lambda p, e: [p], "graph")
    assert (folded.rejected, folded.writes, folded.last_sequence) == ([], [], 7)
    assert PLANNING_APPROVALS.filter_subjects == ("planning.>",)


def test_an_unknown_subject_outside_ingress_is_dead_lettered_by_the_projection_which_reads_the_whole_stream():
    folded = fold([stored("orchestration.plan.approved.v2", catalog.encode(APPROVAL))], lambda p, e: [p], "graph")
    [(letter, reason)] = folded.rejected
    assert (letter.subject, letter.stream_sequence) == ("orchestration.plan.approved.v2", 7)
    assert reason == "no event is published on subject 'orchestration.plan.approved.v2'"


# Found by the properties above: msgspec checks UTF-8 only in the strings it keeps, and recurses.


@pytest.mark.parametrize("bad", [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80"])
def test_bytes_that_are_not_utf8_are_rejected_even_in_a_field_the_contract_ignores(bad):
    body = catalog.encode(APPROVAL)[:-1] + b',"note":"' + bad + b'"}'
    at = len(body) - len(bad) - 2
    with pytest.raises(ContractViolation, match=rf"not valid JSON: JSON is malformed: invalid UTF-8 \(byte {at}\)"):
        decoded(APPROVED, {MSG_ID: "m-1"}, body)


def test_bytes_that_are_not_utf8_in_a_field_the_contract_reads_are_a_contract_violation():
    body = catalog.encode(APPROVAL).replace(b'"alice"', b'"ali\xffce"')
    with pytest.raises(ContractViolation, match="invalid UTF-8"):
        decoded(APPROVED, {MSG_ID: "m-1"}, body)


def test_json_nested_deeper_than_a_decoder_can_follow_is_a_contract_violation():
    body = catalog.encode(APPROVAL)[:-1] + b',"note":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    with pytest.raises(ContractViolation, match="nested too deeply"):
        decoded(APPROVED, {MSG_ID: "m-1"}, body)


def test_the_projection_skips_a_stored_approval_that_is_not_utf8_instead_of_failing_its_batch():
    folded = fold([stored(APPROVED, catalog.encode(APPROVAL).replace(b"alice", b"al\xffce"))],
                  lambda payload, envelope: [payload], "graph")
    assert (folded.writes, folded.applied_events, folded.last_sequence) == ([], 0, 7)


@given(header=st.sampled_from([AGGREGATE_TYPE, AGGREGATE_ID]), value=header_values)
@example(header=AGGREGATE_ID, value="d-another-deliberation")
def test_an_aggregate_header_that_contradicts_the_subject_or_payload_is_rejected(header, value):
    assume(value not in ("plan", "p-1"))
    with pytest.raises(ContractViolation, match=f"header {header}="):
        decoded(APPROVED, {MSG_ID: "m-1", header: value}, catalog.encode(APPROVAL))


def test_a_huge_forged_header_is_quoted_short_in_the_reason():
    with pytest.raises(ContractViolation) as rejected:
        decoded(APPROVED, {MSG_ID: "m-1", AGGREGATE_ID: "x" * 500_000}, catalog.encode(APPROVAL))
    assert len(str(rejected.value)) < 200 and "(500000 characters)" in str(rejected.value)


def test_headers_that_agree_with_the_subject_and_payload_are_accepted():
    envelope = decoded(APPROVED, {MSG_ID: "m-1", AGGREGATE_TYPE: "plan", AGGREGATE_ID: "p-1"},
                       msgspec.json.encode(APPROVAL)).envelope
    assert (envelope.aggregate_type, envelope.aggregate_id) == ("plan", "p-1")
