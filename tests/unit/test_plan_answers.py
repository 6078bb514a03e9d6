"""Every approval gets an answer: the deliberations it started, or every reason it was refused, however broken."""

import datetime as dt

import msgspec
import pytest

from contracts import catalog
from contracts.envelope import MSG_ID
from contracts.errors import ContractViolation, Rejected
from contracts.events import PlanApproved, PlannedTask, Role
from services.councils.domain import default_councils
from services.mesh.decoding import decode_incoming
from services.mesh.messages import Refusal
from services.planning.domain import MAX_ID_CHARS, plan_accepted, plan_rejected, request_deliberations

COUNCILS = {council.role: council for council in default_councils()}
APPROVAL = PlanApproved(story_id="s-1", plan_id="p-1", approved_by="alice", roles=[Role.DEV, Role.QA],
                        tasks=[PlannedTask(task_id="t-1", title="One")])
RECEIVED = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)


def refused(body: bytes, reasons=("bad",), subject=catalog.PLAN_APPROVED.subject, headers=None, decoded=False):
    headers = {MSG_ID: "approval-1"} if headers is None else headers
    incoming = decode_incoming(subject, headers, body, received_at=RECEIVED, stream_sequence=3, deliveries=1) \
        if decoded else None
    return Refusal(subject, headers, body, tuple(reasons), incoming)


def test_an_accepted_plan_names_each_deliberation_it_started_and_the_approval_it_answers():
    requests = request_deliberations(APPROVAL, COUNCILS)
    accepted = plan_accepted(APPROVAL, "approval-1", requests)
    assert (accepted.story_id, accepted.plan_id, accepted.approved_by, accepted.approval_id) == (
        "s-1", "p-1", "alice", "approval-1")
    assert [(d.deliberation_id, d.task_id, d.role) for d in accepted.deliberations] == [
        (r.deliberation.deliberation_id, "t-1", r.deliberation.role) for r in requests]


def test_an_approval_wrong_in_several_ways_is_refused_with_each_reason_on_its_own():
    twice = msgspec.structs.replace(APPROVAL, roles=[Role.DEV, Role.DEV, Role.DEVOPS],
                                    tasks=[PlannedTask(task_id="t", title="a"), PlannedTask(task_id="t", title="b")])
    councils = {role: council for role, council in COUNCILS.items() if role != Role.DEVOPS}
    with pytest.raises(ContractViolation) as refusal:
        request_deliberations(twice, councils)
    assert refusal.value.reasons == (
        "roles listed more than once: DEV", "task_id listed more than once: t",
        "no council for role DEVOPS; create one with `fleet council create --role DEVOPS`")
    assert str(refusal.value) == "invalid plan approval: " + "; ".join(refusal.value.reasons)


def test_a_rejection_of_a_decoded_approval_answers_its_event_id_with_its_story_and_plan():
    rejected = plan_rejected(refused(catalog.encode(APPROVAL), ["no council for role QA"], decoded=True))
    assert (rejected.approval_id, rejected.story_id, rejected.plan_id) == ("approval-1", "s-1", "p-1")
    assert (rejected.original_subject, rejected.reasons) == (catalog.PLAN_APPROVED.subject, ["no council for role QA"])


@pytest.mark.parametrize(("body", "ids"), [
    (b'{"story_id": "s-9", "plan_id": "p-9", "roles": "DEV"}', ("s-9", "p-9")),
    (b'{"story_id": 42, "plan_id": "p-9"}', ("", "p-9")),
    (b'{"story_id": "s-9", "plan_id": "' + b"p" * (MAX_ID_CHARS + 1) + b'"}', ("s-9", "")),
    (b'["s-9", "p-9"]', ("", "")),
    (b"not json \xff", ("", "")),
    (b"[" * 100_000, ("", "")),
])
def test_a_rejection_of_an_undecodable_approval_still_says_what_could_be_read_of_it(body, ids):
    rejected = plan_rejected(refused(body, ["undecodable"]))
    assert (rejected.story_id, rejected.plan_id) == ids
    assert (rejected.approval_id, rejected.reasons) == ("approval-1", ["undecodable"])


def test_an_approval_without_an_id_is_answered_by_the_id_its_body_gives_it_as_a_legacy_approval_would_be():
    legacy = b'{"story_id": "s", "plan_id": "p", "approved_by": "bob", "roles": ["QA"]}'
    subject = catalog.LEGACY_PLAN_APPROVED.subject
    read = plan_rejected(refused(legacy, subject=subject, headers={}, decoded=True))
    unread = plan_rejected(refused(legacy, subject=subject, headers={}))
    assert read.approval_id == unread.approval_id != ""


def test_a_rejected_error_without_reasons_has_its_text_as_its_one_reason():
    assert Rejected("no council for role QA").reasons == ("no council for role QA",)
