"""The fault runs' invariants, on hand-made events: each holds for a clean run and fails for the flaw it names."""

import datetime as dt

import msgspec

from contracts.events import (
    Brief,
    DeliberationCompleted,
    DeliberationFailed,
    DeliberationRef,
    DeliberationRequested,
    DeliberationStarted,
    MessageRejected,
    Phase,
    PlanApproved,
    PlannedTask,
    Role,
    Winner,
)
from services.councils.domain import new_council
from tests.chaos.invariants import (
    Comparison,
    availability,
    every_dead_letter_has_a_reason,
    expected_deliberations,
    no_deliberation_duplicated_or_lost,
    one_result_per_task_and_role,
    outcomes,
    read_models_equal_rebuild,
)

APPROVAL = PlanApproved(story_id="s", plan_id="p", approved_by="t", roles=[Role.DEV, Role.QA],
                        tasks=[PlannedTask(task_id="a", title="A"), PlannedTask(task_id="b", title="B")])
EXPECTED = expected_deliberations([APPROVAL])
BRIEF = Brief(task=APPROVAL.tasks[0], rubric={"correctness": "It works."}, constraints=[])
NOW = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)


def ref(expected) -> DeliberationRef:
    return DeliberationRef(deliberation_id=expected.deliberation_id, story_id="s", plan_id=expected.plan_id,
                           task_id=expected.task_id, role=Role(expected.role))


def requested(expected) -> DeliberationRequested:
    council = new_council(Role(expected.role), 2)
    return DeliberationRequested(deliberation=ref(expected), brief=BRIEF, approved_by="t",
                                 council=council, architect=council.agents[0])


def started(expected) -> DeliberationStarted:
    council = new_council(Role(expected.role), 2)
    return DeliberationStarted(deliberation=ref(expected), brief=BRIEF, council=council,
                               architect=council.agents[0], started_at=NOW)


def completed(expected) -> DeliberationCompleted:
    return DeliberationCompleted(
        deliberation_id=expected.deliberation_id, story_id="s", plan_id=expected.plan_id, task_id=expected.task_id,
        role=Role(expected.role), winner=Winner(agent_id="dev-1", content="x", score=5.0, revisions=0),
        ranking=[], rationale="r", decided_by="ranking", duration_ms=1)


def failed(expected, timed_out: bool = False) -> DeliberationFailed:
    return DeliberationFailed(
        deliberation_id=expected.deliberation_id, story_id="s", plan_id=expected.plan_id, task_id=expected.task_id,
        role=Role(expected.role), phase=Phase.PROPOSE, reason="quorum not met", duration_ms=1, timed_out=timed_out)


def letter(reason: str) -> MessageRejected:
    return MessageRejected(service="planning", consumer="c", reason=reason, original_subject="x",
                           original_headers={}, original_body=b"", stream="PLANNING", stream_sequence=1, deliveries=1)


def test_an_approval_expects_one_deliberation_per_task_and_role():
    assert {(e.task_id, e.role) for e in EXPECTED} == {("a", "DEV"), ("a", "QA"), ("b", "DEV"), ("b", "QA")}
    assert len({e.deliberation_id for e in EXPECTED}) == 4


def test_one_result_per_task_and_role_counts_a_failure_as_a_result_and_catches_a_missing_or_second_one():
    clean = [completed(EXPECTED[0]), failed(EXPECTED[1]), completed(EXPECTED[2]), completed(EXPECTED[3])]
    assert one_result_per_task_and_role(EXPECTED, clean).held

    missing = one_result_per_task_and_role(EXPECTED, clean[:3])
    assert not missing.held and missing.evidence["without_result"] == 1

    twice = one_result_per_task_and_role(EXPECTED, [*clean, failed(EXPECTED[0])])
    assert not twice.held and twice.evidence["with_several"] == 1


def test_a_deliberation_requested_started_and_ended_once_each_is_neither_duplicated_nor_lost():
    every = {"requested": [requested(e) for e in EXPECTED], "started": [started(e) for e in EXPECTED],
             "results": [completed(e) for e in EXPECTED]}
    assert no_deliberation_duplicated_or_lost(EXPECTED, **every, plan_ids={"p"}).held

    never_started = no_deliberation_duplicated_or_lost(
        EXPECTED, every["requested"], every["started"][1:], every["results"][1:], {"p"})
    assert not never_started.held and never_started.evidence["never_started"]["count"] == 1

    started_twice = no_deliberation_duplicated_or_lost(
        EXPECTED, every["requested"], [*every["started"], started(EXPECTED[2])], every["results"], {"p"})
    assert not started_twice.held
    assert started_twice.evidence["started_twice"]["examples"] == [EXPECTED[2].deliberation_id]

    never_ended = no_deliberation_duplicated_or_lost(EXPECTED, every["requested"], every["started"], [], {"p"})
    assert not never_ended.held and never_ended.evidence["never_ended"]["count"] == 4


def test_a_deliberation_no_approval_asked_for_is_unexpected():
    stray = msgspec.structs.replace(requested(EXPECTED[0]), deliberation=DeliberationRef(
        deliberation_id="other", story_id="s", plan_id="p", task_id="c", role=Role.DEV))
    check = no_deliberation_duplicated_or_lost(
        EXPECTED, [*map(requested, EXPECTED), stray], list(map(started, EXPECTED)), list(map(completed, EXPECTED)),
        {"p"})
    assert not check.held and check.evidence["unexpected"]["examples"] == ["other"]


def test_read_models_equal_a_rebuild_only_when_caught_up_and_every_hash_matches():
    same = Comparison("kv", caught_up=True, live_hash="h", rebuilt_hash="h", replaced_hash="h")
    assert read_models_equal_rebuild([same]).held
    assert not read_models_equal_rebuild([]).held
    assert not read_models_equal_rebuild([Comparison("kv", True, "h", "other", "h")]).held
    assert not read_models_equal_rebuild([Comparison("kv", True, "h", "h", "stale")]).held
    assert not read_models_equal_rebuild([Comparison("graph", False, "h", "h", "h")]).held


def test_a_dead_letter_without_a_reason_fails_and_reasons_are_counted_by_their_first_line():
    letters = [(1, letter("no council for role DEVOPS\nmore")), (2, letter("no council for role DEVOPS\nother"))]
    check = every_dead_letter_has_a_reason(letters)
    assert check.held and check.evidence["reasons"] == {"planning: no council for role DEVOPS": 2}
    blank = every_dead_letter_has_a_reason([*letters, (7, letter("  "))])
    assert not blank.held and blank.evidence["without_reason"] == [7]


def test_outcomes_count_completed_failed_and_timed_out():
    counted = outcomes([completed(EXPECTED[0]), failed(EXPECTED[1]), failed(EXPECTED[2], timed_out=True)])
    assert (counted.completed, counted.failed, counted.timed_out) == (1, 2, 1)
    assert counted.failure_reasons == {"propose: quorum not met": 2}


def test_availability_is_the_longest_wait_for_a_result_from_the_fault_on():
    # Results every second, then nothing for 7 s after a fault at t=10, then every second again.
    times = [*range(0, 11), *range(17, 21)]
    measured = availability(times, injected_at=10.5, completed=14, expected=15)
    assert measured.resumed_after_s == 6.5
    assert measured.longest_gap_s == 6.5
    assert measured.share_completed == 0.933
    steady = availability(range(0, 21), injected_at=10.5, completed=20, expected=20)
    assert (steady.resumed_after_s, steady.longest_gap_s, steady.share_completed) == (0.5, 1.0, 1.0)


def test_no_result_after_the_fault_is_no_resumption():
    measured = availability([1.0, 2.0], injected_at=5.0, completed=2, expected=4)
    assert (measured.resumed_after_s, measured.longest_gap_s, measured.share_completed) == (None, None, 0.5)
