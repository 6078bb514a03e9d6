"""Dispatch starts each deliberation once, with what was fixed at the request, the same way on every redelivery."""

import datetime as dt

import msgspec

from contracts import catalog
from contracts.events import Brief, DeliberationRef, DeliberationRequested, DeliberationStarted, PlannedTask, Role
from services.councils.domain import new_council
from services.dispatch.domain import Claim, start
from services.mesh.publishing import Outgoing
from tests.support import ARCHITECT

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
REQUEST = DeliberationRequested(
    deliberation=DeliberationRef(deliberation_id="d-1", story_id="s", plan_id="p", task_id="t", role=Role.DEVOPS),
    brief=Brief(task=PlannedTask(task_id="t", title="Ship it"), rubric={"safety": "no downtime"}),
    approved_by="alice",
    council=new_council(Role.DEVOPS, 5, critique_rounds=2),
    architect=ARCHITECT,
)


def test_starting_carries_the_brief_council_and_architect_of_the_request_and_the_claims_time():
    started = start(REQUEST, Claim(request_sequence=7, started_at=NOW)).payload
    assert catalog.spec_for_payload(started) is catalog.DELIBERATION_STARTED
    assert started == DeliberationStarted(
        deliberation=REQUEST.deliberation, brief=REQUEST.brief, council=REQUEST.council,
        architect=REQUEST.architect, started_at=NOW,
    )


# uuid5 of "deliberation.started/d-1" in the fleet's namespace: the same in every process, so JetStream
# de-duplicates the start a redelivery publishes again.
STARTED_D1 = "541c4aca-e4e4-5f88-bf86-cc2598abcc3a"


def test_a_redelivery_of_the_claiming_request_starts_it_identically():
    claim = Claim(request_sequence=7, started_at=NOW)
    expected = Outgoing(DeliberationStarted(deliberation=REQUEST.deliberation, brief=REQUEST.brief,
                                            council=REQUEST.council, architect=REQUEST.architect, started_at=NOW),
                        event_id=STARTED_D1)

    assert [start(REQUEST, claim) for _delivery in range(2)] == [expected, expected]


def test_the_start_event_id_names_the_deliberation_never_when_or_by_which_message_it_started():
    early = start(REQUEST, Claim(request_sequence=7, started_at=NOW))
    late = start(REQUEST, Claim(request_sequence=9, started_at=NOW + dt.timedelta(hours=2)))
    other = msgspec.structs.replace(
        REQUEST, deliberation=msgspec.structs.replace(REQUEST.deliberation, deliberation_id="d-2")
    )
    assert early.event_id == late.event_id == STARTED_D1
    assert start(other, Claim(request_sequence=7, started_at=NOW)).event_id != STARTED_D1
