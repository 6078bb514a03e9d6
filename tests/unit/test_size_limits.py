"""Size limits: whatever NATS accepts from upstream, what the services publish because of it fits too.

NATS takes a message whose headers and body are at most 1 MiB together, headers at most 64 KiB.
"""

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import catalog
from contracts.envelope import CORRELATION_ID, MSG_ID, TRACEPARENT, to_headers
from contracts.errors import ContractViolation
from contracts.events import Brief, PlanApproved, PlannedTask, Role
from services.councils.domain import new_council
from services.mesh.deadletters import MAX_REASON_CHARS, DeadLetter, dead_letter_event
from services.mesh.messages import utc_now
from services.mesh.publishing import envelope_for
from services.planning.domain import MAX_BRIEF_BYTES, request_deliberations
from tests.strategies import MiB, approvals

HEADERS_MAX = 64 * 1024
COUNCILS = {role: new_council(role) for role in Role}


def wire_size(headers: dict[str, str], body: bytes) -> int:
    """What NATS counts against its payload limit: the header block and the body."""
    return len(body) + len("NATS/1.0\r\n\r\n") + sum(len(k.encode()) + len(v.encode()) + 4 for k, v in headers.items())


def brief_size(approval: PlanApproved, task: PlannedTask) -> int:
    return len(msgspec.json.encode(Brief(task=task, rubric=approval.rubric, constraints=approval.constraints)))


def with_brief_of(size: int, approval: PlanApproved) -> PlanApproved:
    """`approval` with one task whose brief is `size` bytes as JSON, padded in its first constraint."""
    approval = msgspec.structs.replace(approval, tasks=[PlannedTask(task_id="t-1", title="Ship it")],
                                       rubric=approval.rubric or {"works": "It works."}, constraints=["x"])
    padding = size - brief_size(approval, approval.tasks[0])
    # Constraints hold at most 64,000 characters each: spread the padding over as many as it takes,
    # then make up in the last one for the quotes and commas between them.
    chunks = [60_000] * (padding // 60_000 - 1) + [59_000, padding % 60_000 + 1_000]
    padded = msgspec.structs.replace(approval, constraints=["x" * n for n in chunks])
    chunks[-1] += size - brief_size(padded, padded.tasks[0])
    return msgspec.structs.replace(approval, constraints=["x" * n for n in chunks])


def test_an_approval_whose_brief_would_crowd_out_a_deliberation_is_rejected_at_once_with_its_size():
    big = with_brief_of(900 * 1024, PlanApproved(story_id="s-1", plan_id="p-1", approved_by="alice",
                                                 roles=[Role.DEV, Role.QA], tasks=[]))
    assert len(catalog.encode(big)) < MiB - 1024  # NATS stores it: it is the planning service's to refuse
    with pytest.raises(ContractViolation, match=r"the brief of task 't-1' \(its description, the rubric and the "
                                                r"constraints\) is 921,600 bytes as JSON, over the 262,144"):
        request_deliberations(big, COUNCILS)


@given(approvals, st.integers(-64, 64))
def test_a_brief_is_accepted_up_to_the_limit_to_the_byte(approval, over_by):
    approval = with_brief_of(MAX_BRIEF_BYTES + over_by, approval)
    assert brief_size(approval, approval.tasks[0]) == MAX_BRIEF_BYTES + over_by
    if over_by > 0:
        with pytest.raises(ContractViolation, match="over the 262,144 a deliberation carries"):
            request_deliberations(approval, COUNCILS)
    else:
        assert len(request_deliberations(approval, COUNCILS)) == len(approval.roles)


def test_a_request_with_the_largest_brief_leaves_room_for_a_turns_proposals_and_full_headers():
    approval = with_brief_of(MAX_BRIEF_BYTES, PlanApproved(story_id="s-1", plan_id="p-1", approved_by="alice",
                                                           roles=[Role.DEV], tasks=[]))
    [request] = request_deliberations(approval, COUNCILS)
    assert len(catalog.encode(request)) + HEADERS_MAX < MiB / 2


def test_a_dead_letter_fits_in_nats_whatever_stored_message_it_keeps():
    # Control characters in a header value take 6 bytes each in the letter's JSON ("\u0001").
    headers = {MSG_ID: "m-1", CORRELATION_ID: "c-1", TRACEPARENT: "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
               "X-Note": "a" + "\x01" * 60_000 + "b"}
    body = b"x" * (512 * 1024)
    assert wire_size(headers, body) <= MiB and wire_size(headers, b"") <= HEADERS_MAX  # NATS stores it
    letter = DeadLetter(service="planning", consumer="planning-plan-approvals", stream="PLANNING",
                        stream_sequence=1, deliveries=1, subject=catalog.PLAN_APPROVED.subject, headers=headers,
                        body=body)
    outgoing, cause = dead_letter_event(letter, "planning.plan.approved.v1 body is not valid JSON")
    envelope = envelope_for(outgoing, producer="planning", cause=cause, now=utc_now())
    assert wire_size(to_headers(envelope), catalog.encode(outgoing.payload)) <= MiB
    assert outgoing.payload.original_body_omitted, "the body gave way; it stays in its stream"


def test_a_reason_quoting_a_huge_input_is_cut_and_says_how_much_was_left_out():
    letter = DeadLetter(service="planning", consumer="planning-plan-approvals", stream="PLANNING",
                        stream_sequence=2, deliveries=1, subject=catalog.PLAN_APPROVED.subject,
                        headers={MSG_ID: "m-2"}, body=b"{}")
    outgoing, _ = dead_letter_event(letter, "Expected `str`, got " + "x" * 100_000)
    reason = outgoing.payload.reason
    assert reason.startswith("Expected `str`, got xxx") and len(reason) < MAX_REASON_CHARS + 50
    assert reason.endswith(f"({100_000 + 20 - MAX_REASON_CHARS} more characters)")
