"""A deliberation's lifecycle in the collector's pure domain: its overall deadline, a cancel, a retry."""

import msgspec
import pytest

from contracts.envelope import deterministic_id
from contracts.errors import Rejected
from contracts.events import (
    Attempt,
    DeadlinePassed,
    DeliberationCancelRequested,
    DeliberationFailed,
    DeliberationRequested,
    DeliberationRetryRequested,
    Phase,
    Role,
)
from services.collector.domain import attempt_id, outcome_of, step
from services.councils.domain import new_council
from tests.support import REF, T0, at
from tests.unit.test_collector import answer, answer_proposals, failure, of_type, requests, run, started


def council(deadline_s: float = 100.0):
    return new_council(Role.DEV, 3, phase_deadline_s=60, deliberation_deadline_s=deadline_s)


def propose(state, out, now):
    """Every agent proposes, at `now`."""
    return run(state, [answer(r) for r in requests(out)], now)


def deadline_of(state) -> DeadlinePassed:
    return DeadlinePassed(deliberation_id=REF.deliberation_id, phase=state.phase, round=state.round,
                          deadline_at=state.deadline_at)


def cancel(by: str = "alice", reason: str = "wrong brief") -> DeliberationCancelRequested:
    return DeliberationCancelRequested(deliberation_id=REF.deliberation_id, requested_by=by, reason=reason)


def retry(by: str = "bob", reason: str = "the LLM was down") -> DeliberationRetryRequested:
    return DeliberationRetryRequested(deliberation_id=REF.deliberation_id, requested_by=by, reason=reason)


def failed_at_proposals():
    state, out = step(None, started(), T0)
    return run(state, [failure(r) for r in requests(out)])


def test_no_phase_deadline_falls_after_the_deliberations_overall_deadline():
    state, out = step(None, started(council(100.0)), T0)
    assert state.deadline_at == at(60)
    state, out = propose(state, out, at(50))
    (scheduled,) = [o for o in out if isinstance(o.payload, DeadlinePassed)]
    assert state.phase == Phase.CRITIQUE and state.deadline_at == scheduled.deliver_at == at(100)


def test_the_deadline_at_the_overall_deadline_fails_the_deliberation_as_timed_out_naming_it_and_the_phase():
    state, out = step(None, started(council(100.0)), T0)
    state, out = propose(state, out, at(50))
    state, _ = step(state, answer(requests(out)[0], "a critique"), at(70))

    state, out = step(state, deadline_of(state), at(100))

    (failed,) = of_type(out, DeliberationFailed)
    assert failed.timed_out and failed.phase == Phase.CRITIQUE and failed.cancelled_by is None
    assert failed.reason == ("the deliberation's overall deadline of 100s passed in the critique phase (round 1) "
                             "with 2 of 3 turns unanswered")
    assert outcome_of(state) == "timed_out"


def test_turns_still_out_at_the_overall_deadline_say_it_passed_not_that_they_had_all_of_it():
    state, out = step(None, started(council(100.0)), T0)
    state, out = propose(state, out, at(50))  # the critiques were asked 50 s in: they never had 100 s

    state, _ = step(state, deadline_of(state), at(100))

    errors = {t.error for t in state.current_turns()}
    assert errors == {"DeadlinePassed: the deliberation's overall deadline of 100s passed"}


def test_a_phase_that_opens_after_the_overall_deadline_fails_at_its_deadline_already_past():
    state, out = step(None, started(council(100.0)), T0)
    state, out = propose(state, out, at(130))

    (scheduled,) = [o for o in out if isinstance(o.payload, DeadlinePassed)]
    assert state.phase == Phase.CRITIQUE and scheduled.deliver_at == scheduled.payload.deadline_at == at(100)
    state, out = step(state, scheduled.payload, at(130))
    (failed,) = of_type(out, DeliberationFailed)
    assert failed.timed_out and failed.phase == Phase.CRITIQUE
    assert failed.reason == ("the deliberation's overall deadline of 100s passed in the critique phase (round 1) "
                             "with 3 of 3 turns unanswered")


@pytest.mark.parametrize("opened_at", [99, 100, 101])
def test_whether_a_phase_fails_for_the_overall_deadline_does_not_hang_on_the_clock_that_opened_it(opened_at):
    """A replay folds the log with its stored times, not the handler's clock: near the overall deadline
    both must decide the same, so the outcome follows the deadline event alone."""
    state, out = step(None, started(council(100.0)), T0)
    state, out = propose(state, out, at(opened_at))
    assert state.phase == Phase.CRITIQUE and state.deadline_at == at(100)

    state, out = step(state, deadline_of(state), at(100))

    (failed,) = of_type(out, DeliberationFailed)
    assert failed.phase == Phase.CRITIQUE and failed.timed_out


def test_a_cancel_ends_a_deliberation_in_progress_once_in_its_phase_saying_who_and_why():
    state, out = step(None, started(), T0)
    state, out = answer_proposals(state, out)

    state, out = step(state, cancel(), at(5))

    (failed,) = of_type(out, DeliberationFailed)
    assert (failed.phase, failed.cancelled_by, failed.timed_out) == (Phase.CRITIQUE, "alice", False)
    assert failed.reason == "cancelled by alice: wrong brief"
    assert outcome_of(state) == "cancelled"
    assert step(state, cancel(), at(6)) == (state, [])
    assert step(state, cancel("carol", "again"), at(6)) == (state, [])


def test_a_cancel_of_a_finished_deliberation_leaves_it_as_it_is():
    state, _ = failed_at_proposals()
    assert step(state, cancel(), at(9)) == (state, [])


def test_a_cancel_before_the_start_is_an_error_to_retry_like_any_event_before_the_start():
    with pytest.raises(LookupError, match="no deliberation d-1 has started"):
        step(None, cancel(), T0)


def test_a_retry_of_an_ended_deliberation_requests_a_new_attempt_of_the_same_work_with_its_own_id():
    state, _ = failed_at_proposals()

    state, out = step(state, retry(), at(10))

    (requested,) = of_type(out, DeliberationRequested)
    new_id = attempt_id(REF.deliberation_id, 2)
    assert new_id == deterministic_id("deliberation.attempt", REF.deliberation_id, "2") != REF.deliberation_id
    assert out[0].event_id == deterministic_id("deliberation.requested", new_id)  # a repeat is deduplicated
    assert requested.deliberation == msgspec.structs.replace(REF, deliberation_id=new_id)
    assert (requested.brief, requested.council, requested.architect) == (state.brief, state.council, state.architect)
    assert requested.approved_by == "bob"
    assert requested.attempt == Attempt(first_id=REF.deliberation_id, previous_id=REF.deliberation_id, number=2,
                                        requested_by="bob", reason="the LLM was down")
    assert state.retried_as == new_id
    assert step(state, retry(), at(11)) == (state, [])  # the same request again was answered


def test_a_second_retry_of_the_same_attempt_is_refused_and_names_the_attempt_to_retry():
    state, _ = failed_at_proposals()
    state, _ = step(state, retry(), at(10))
    with pytest.raises(Rejected, match=f"already retried as {attempt_id(REF.deliberation_id, 2)}; retry that one"):
        step(state, retry("carol", "once more"), at(11))


def test_a_retry_of_a_deliberation_in_progress_is_refused():
    state, _ = step(None, started(), T0)
    with pytest.raises(Rejected, match="d-1 is in progress; cancel it first"):
        step(state, retry(), at(1))


def test_a_retry_of_a_retry_counts_on_from_the_first_attempt():
    second = attempt_id("d-0", 2)
    attempt = Attempt(first_id="d-0", previous_id="d-0", number=2, requested_by="bob", reason="down")
    ref = msgspec.structs.replace(REF, deliberation_id=second)
    state, out = step(None, msgspec.structs.replace(started(), deliberation=ref, attempt=attempt), T0)
    state, _ = run(state, [failure(r) for r in requests(out)])

    _, out = step(state, msgspec.structs.replace(retry(), deliberation_id=second), at(10))

    (requested,) = of_type(out, DeliberationRequested)
    assert requested.attempt.number == 3 and requested.attempt.first_id == "d-0"
    assert requested.attempt.previous_id == second
    assert requested.deliberation.deliberation_id == attempt_id("d-0", 3)
