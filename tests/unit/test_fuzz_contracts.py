"""Malformed ingress is rejected as a contract violation with a reason. Any other exception would be a
crash where the service reads it: a retry loop for a consumer, a halted fold for the projection."""

import datetime as dt
from types import SimpleNamespace

import msgspec
import pytest

from contracts import catalog
from contracts.envelope import AGGREGATE_ID, AGGREGATE_TYPE, MSG_ID
from contracts.errors import ContractViolation
from contracts.events import PlanApproved, Role
from services.mesh.consuming import decode_incoming
from services.projection.projector import fold

RECEIVED = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
APPROVAL = PlanApproved(story_id="s-1", plan_id="p-1", approved_by="alice", roles=[Role.DEV], tasks=[])
APPROVED = catalog.PLAN_APPROVED.subject


def decoded(subject: str, headers: dict[str, str], body: bytes):
    return decode_incoming(subject, headers, body, received_at=RECEIVED, stream_sequence=7, deliveries=1)


# msgspec checks UTF-8 only in the strings it keeps, and recurses.


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
    stored = SimpleNamespace(
        subject=APPROVED, headers={MSG_ID: "m-1"}, data=catalog.encode(APPROVAL).replace(b"alice", b"al\xffce"),
        metadata=SimpleNamespace(stream="PLANNING", timestamp=RECEIVED, sequence=SimpleNamespace(stream=7)),
    )
    folded = fold([stored], lambda payload, envelope: [payload], "graph")
    assert (folded.writes, folded.applied_events, folded.last_sequence) == ([], 0, 7)


@pytest.mark.parametrize(("header", "value"), [(AGGREGATE_ID, "d-another-deliberation"), (AGGREGATE_TYPE, "Plan")])
def test_an_aggregate_header_that_contradicts_the_subject_or_payload_is_rejected(header, value):
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
