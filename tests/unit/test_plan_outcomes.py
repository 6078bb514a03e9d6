"""A plan concludes when every (task, role) slot's latest attempt has ended, whatever order its events come in."""

import itertools
import re

import msgspec
import pytest

from contracts import catalog
from contracts.events import (
    Attempt,
    DeliberationCompleted,
    DeliberationFailed,
    DeliberationRequested,
    Outcome,
    Phase,
    PlanApproved,
    PlannedTask,
    Role,
    Winner,
)
from services.councils.domain import default_councils
from services.planning.domain import plan_accepted, request_deliberations
from services.planning.plan_outcomes import (
    MAX_OUTCOME_REASON_CHARS,
    conclude,
    conclusion_id,
    evolve,
    plan_key,
)

COUNCILS = {council.role: council for council in default_councils()}
APPROVAL = PlanApproved(story_id="s-1", plan_id="p-1", approved_by="alice", roles=[Role.DEV, Role.QA],
                        tasks=[PlannedTask(task_id="t-1", title="One"), PlannedTask(task_id="t-2", title="Two")])
REQUESTS = request_deliberations(APPROVAL, COUNCILS)
ACCEPTED = plan_accepted(APPROVAL, "approval-1", REQUESTS)


def completed(request: DeliberationRequested, winner: str = "dev-1") -> DeliberationCompleted:
    ref = request.deliberation
    return DeliberationCompleted(
        deliberation_id=ref.deliberation_id, story_id=ref.story_id, plan_id=ref.plan_id, task_id=ref.task_id,
        role=ref.role, winner=Winner(agent_id=winner, content="the proposal", score=8.0, revisions=1), ranking=[],
        rationale="simplest", decided_by="architect-1", duration_ms=4200,
    )


def failed(request: DeliberationRequested, reason: str = "quorum not reached", **how) -> DeliberationFailed:
    ref = request.deliberation
    return DeliberationFailed(
        deliberation_id=ref.deliberation_id, story_id=ref.story_id, plan_id=ref.plan_id, task_id=ref.task_id,
        role=ref.role, phase=Phase.PROPOSE, reason=reason, duration_ms=300_000, **how,
    )


def retry_of(request: DeliberationRequested, new_id: str, number: int = 2) -> DeliberationRequested:
    return msgspec.structs.replace(
        request, deliberation=msgspec.structs.replace(request.deliberation, deliberation_id=new_id),
        attempt=Attempt(first_id=request.deliberation.deliberation_id, previous_id=request.deliberation.deliberation_id,
                        number=number, requested_by="ops", reason="the LLM was down"),
    )


def run(events, state=None):
    """Fold the events one by one, as the handler does; returns the last state and every conclusion."""
    conclusions = []
    for position, event in enumerate(events):
        state, concluded = conclude(evolve(state, event), cause=f"ORCHESTRATION:{position}")
        if concluded is not None:
            conclusions.append(concluded)
    return state, conclusions


COMPLETED, FAILED, TIMED_OUT, CANCELLED = Outcome.COMPLETED, Outcome.FAILED, Outcome.TIMED_OUT, Outcome.CANCELLED
EVERY_RESULT = [completed(REQUESTS[0]), failed(REQUESTS[1]), failed(REQUESTS[2], timed_out=True),
                failed(REQUESTS[3], cancelled_by="ops", reason="wrong brief")]


def test_a_plan_concludes_once_when_its_last_deliberation_ends_with_each_outcome():
    state, [concluded] = run([*REQUESTS, ACCEPTED, *EVERY_RESULT])
    assert (concluded.story_id, concluded.plan_id, concluded.revision) == ("s-1", "p-1", 1)
    assert [(o.deliberation_id, o.task_id, o.role, o.outcome) for o in concluded.outcomes] == [
        (r.deliberation.deliberation_id, r.deliberation.task_id, r.deliberation.role, outcome)
        for r, outcome in zip(REQUESTS, [COMPLETED, FAILED, TIMED_OUT, CANCELLED], strict=True)
    ]
    assert [(o.winner_id, o.reason) for o in concluded.outcomes] == [
        ("dev-1", None), (None, "quorum not reached"), (None, "quorum not reached"), (None, "wrong brief")]
    assert (concluded.completed, concluded.failed) == (1, 3)


def test_a_plan_with_a_deliberation_still_running_has_not_concluded():
    _, conclusions = run([*REQUESTS, ACCEPTED, *EVERY_RESULT[:3]])
    assert conclusions == []


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_the_order_its_events_come_in_does_not_change_the_conclusion(order):
    groups = [REQUESTS, [ACCEPTED], EVERY_RESULT]
    _, expected = run([*REQUESTS, ACCEPTED, *EVERY_RESULT])
    _, conclusions = run([event for index in order for event in groups[index]])
    assert [c.outcomes for c in conclusions] == [expected[0].outcomes]
    assert [c.revision for c in conclusions] == [1]


def test_results_before_the_acceptance_wait_for_it():
    state, conclusions = run(EVERY_RESULT)
    assert conclusions == [] and not state.accepted
    _, [concluded] = run([ACCEPTED], state)
    assert len(concluded.outcomes) == 4


def test_every_event_seen_again_changes_nothing_and_concludes_nothing_new():
    state, _ = run([*REQUESTS, ACCEPTED, *EVERY_RESULT])
    for event in [*REQUESTS, ACCEPTED, *EVERY_RESULT, completed(REQUESTS[1])]:
        again, concluded = conclude(evolve(state, event), cause="ORCHESTRATION:99")
        assert (again, concluded) == (state, None)


def test_a_retried_slot_reopens_the_plan_which_concludes_again_as_revision_2_with_the_new_attempt():
    retry = retry_of(REQUESTS[1], "d-retry")
    state, [first] = run([*REQUESTS, ACCEPTED, *EVERY_RESULT])
    state, none_yet = run([retry], state)
    assert none_yet == []
    _, [second] = run([completed(retry, winner="qa-2")], state)
    assert (first.revision, second.revision) == (1, 2)
    assert [o.outcome for o in second.outcomes] == [COMPLETED, COMPLETED, TIMED_OUT, CANCELLED]
    assert (second.outcomes[1].deliberation_id, second.outcomes[1].winner_id) == ("d-retry", "qa-2")
    assert (second.completed, second.failed) == (2, 2)
    assert conclusion_id(first) != conclusion_id(second)


def test_an_older_attempt_never_replaces_a_newer_one():
    third, second = retry_of(REQUESTS[0], "d-3", number=3), retry_of(REQUESTS[0], "d-2", number=2)
    state, _ = run([*REQUESTS, ACCEPTED, third, second, REQUESTS[0]])
    assert state.latest[state.slots[0]].deliberation_id == "d-3"


def test_a_retry_that_ends_before_the_plan_concluded_is_reported_in_the_first_conclusion():
    retry = retry_of(REQUESTS[1], "d-retry")
    results = [EVERY_RESULT[0], EVERY_RESULT[1], retry, completed(retry), *EVERY_RESULT[2:]]
    _, [concluded] = run([*REQUESTS, ACCEPTED, *results])
    assert concluded.revision == 1 and concluded.outcomes[1].deliberation_id == "d-retry"


def test_a_long_failure_reason_is_cut_so_a_large_plan_still_fits_in_a_message():
    _, [concluded] = run([*REQUESTS, ACCEPTED, *EVERY_RESULT[:3], failed(REQUESTS[3], reason="x" * 10_000)])
    assert len(concluded.outcomes[3].reason) == MAX_OUTCOME_REASON_CHARS + len("...")


def test_the_conclusion_id_and_the_key_name_the_plan_and_revision_alone():
    _, [concluded] = run([*REQUESTS, ACCEPTED, *EVERY_RESULT])
    _, [again] = run([ACCEPTED, *reversed(EVERY_RESULT)])
    assert conclusion_id(concluded) == conclusion_id(again)
    assert plan_key("s-1", "p-1") != plan_key("s-1", "p-2")
    assert re.fullmatch(r"[-0-9a-f]+", plan_key("s/1", "p 1.*"))  # a KV key, whatever upstream's ids hold


def test_the_acceptance_never_replaces_a_retry_folded_before_it():
    state, _ = run([retry_of(REQUESTS[0], "d-2"), ACCEPTED])
    assert state.latest[state.slots[0]].deliberation_id == "d-2"


def test_the_largest_plan_retried_in_every_slot_still_fits_its_state_and_conclusion_in_a_message():
    largest = PlanApproved(story_id="s" * 256, plan_id="p" * 256, approved_by="alice", roles=list(Role),
                           tasks=[PlannedTask(task_id=f"{n:0>256}", title="t") for n in range(100)])
    requests = request_deliberations(largest, COUNCILS)
    retries = [retry_of(request, f"retry-{n:0>30}") for n, request in enumerate(requests)]
    events = [*requests, plan_accepted(largest, "approval-1", requests),
              *(failed(request, reason="x" * 64_000) for request in [*requests, *retries]), *retries]
    state, conclusions = run(events)
    assert state.revision == 1 + len(retries) and len(state.ended) == 2 * len(requests) == 1000
    assert len(msgspec.json.encode(state)) < 1024 * 1024 - 64 * 1024
    assert len(catalog.encode(conclusions[-1])) < 1024 * 1024 - 64 * 1024
