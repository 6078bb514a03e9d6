"""What the dashboard shows, folded from events: only what the log says, and why anything is missing."""

import datetime as dt

import msgspec

from contracts.envelope import Envelope
from contracts.events import (
    AgentProfile,
    Attempt,
    Brief,
    CouncilCreated,
    CouncilDeleted,
    DecisionMade,
    DeliberationAdvanced,
    DeliberationCancelRequested,
    DeliberationCompleted,
    DeliberationFailed,
    DeliberationOutcome,
    DeliberationRef,
    DeliberationRequested,
    DeliberationRetryRequested,
    DeliberationStarted,
    Phase,
    PlanAccepted,
    PlanConcluded,
    PlannedDeliberation,
    PlannedTask,
    PlanRejected,
    RankedProposal,
    Role,
    Turn,
    TurnCompleted,
    TurnFailed,
    Winner,
)
from services.councils.domain import new_council
from services.monitor.domain import FINISHED_KEPT, RECENT_EVENTS, MonitorState
from tests.support import REF

T0 = dt.datetime(2026, 11, 23, 4, 0, tzinfo=dt.UTC)
AGENT = AgentProfile(agent_id="dev-1", role=Role.DEV, persona="p", temperature=0.2, seed=1)


class Log:
    """Feeds events to a state as the monitor's readers would, one stream sequence after another."""

    def __init__(self) -> None:
        self.state = MonitorState()
        self.sequence = 0

    def feed(self, payload, seconds: float, stream: str = "ORCHESTRATION", sequence: int | None = None) -> bool:
        self.sequence += 1
        envelope = Envelope(event_id=f"e-{self.sequence}", event_type="x", schema_version=1,
                            occurred_at=T0 + dt.timedelta(seconds=seconds), producer="test", correlation_id="c-1",
                            causation_id="c-1", aggregate_type="x", aggregate_id=payload.aggregate_id(),
                            traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
        return self.state.apply(payload, envelope, "subject", stream, sequence or self.sequence)


def requested(ref: DeliberationRef = REF) -> DeliberationRequested:
    return DeliberationRequested(deliberation=ref, brief=Brief(task=PlannedTask(task_id="t-1", title="Cache"),
                                                               rubric={}),
                                 approved_by="a", council=new_council(Role.DEV, 3), architect=AGENT)


def advanced(phase: Phase) -> DeliberationAdvanced:
    return DeliberationAdvanced(deliberation_id="d-1", phase=phase, round=0, turns=[], deadline_at=T0)


def completed(deliberation_id: str = "d-1") -> DeliberationCompleted:
    return DeliberationCompleted(
        deliberation_id=deliberation_id, story_id="s-1", plan_id="p-1", task_id="t-1", role=Role.DEV,
        winner=Winner(agent_id="dev-2", content="Cache reads.", score=8.0, revisions=1),
        ranking=[RankedProposal(rank=1, agent_id="dev-2", score=8.0, qualified=True)], rationale="Simplest.",
        decided_by="architect-1", duration_ms=12_000,
    )


def test_a_deliberation_in_flight_shows_its_phase_and_how_long_each_phase_took():
    log = Log()
    log.feed(requested(), 0)
    log.feed(advanced(Phase.PROPOSE), 1)
    log.feed(advanced(Phase.CRITIQUE), 6.5)

    [row] = log.state.snapshot(T0, True)["in_flight"]

    assert (row["status"], row["phase"], row["title"], row["role"]) == ("IN_PROGRESS", "critique", "Cache", "DEV")
    assert [(p["phase"], p["seconds"]) for p in row["phases"]] == [("propose", 5.5), ("critique", None)]


def test_a_finished_deliberation_moves_to_the_results_with_winner_and_rationale():
    log = Log()
    log.feed(requested(), 0)
    log.feed(advanced(Phase.SELECT), 1)
    log.feed(DecisionMade(deliberation_id="d-1", winner_id="dev-2", candidates=["dev-2"], ranking=[],
                          rationale="Simplest.", decided_by="architect-1"), 2)
    log.feed(completed(), 3)

    snapshot = log.state.snapshot(T0, True)

    assert snapshot["in_flight"] == []
    [row] = snapshot["results"]
    assert (row["status"], row["winner_id"], row["rationale"], row["duration_ms"]) == (
        "COMPLETED", "dev-2", "Simplest.", 12_000)
    assert row["phases"][-1]["seconds"] == 2.0


def test_a_timed_out_deliberation_says_so_with_its_reason():
    log = Log()
    log.feed(requested(), 0)
    log.feed(DeliberationFailed(deliberation_id="d-1", story_id="s-1", plan_id="p-1", task_id="t-1", role=Role.DEV,
                                phase=Phase.PROPOSE, reason="2 turns unanswered", duration_ms=300_000, timed_out=True),
             300)

    [row] = log.state.snapshot(T0, True)["results"]
    assert (row["status"], row["reason"]) == ("TIMED_OUT", "2 turns unanswered")


def test_councils_come_and_go_with_their_events():
    log = Log()
    log.feed(CouncilCreated(council=new_council(Role.QA, 2), created_by="alice"), 0, stream="CONFIG")
    log.feed(CouncilCreated(council=new_council(Role.DEV, 3), created_by="alice"), 0, stream="CONFIG")
    log.feed(CouncilDeleted(role=Role.QA, deleted_by="bob"), 1, stream="CONFIG")

    [council] = log.state.snapshot(T0, True)["councils"]
    assert council["role"] == "DEV" and [a["agent_id"] for a in council["agents"]] == ["dev-1", "dev-2", "dev-3"]


def test_llm_latency_is_summarised_per_role_from_the_turns_with_failures_counted():
    log = Log()
    turn = Turn(phase=Phase.PROPOSE, round=0, agent_id="dev-1", author_id="dev-1")
    for latency in (100, 200, 300, 400):
        log.feed(TurnCompleted(deliberation=REF, turn=turn, agent=AGENT, content="x", model="m", temperature=0.2,
                               seed=1, prompt_tokens=1, completion_tokens=1, latency_ms=latency), 0, stream="AGENT")
    log.feed(TurnFailed(deliberation=REF, turn=turn, agent=AGENT, error_class="LlmTimeout", message="slow"), 0,
             stream="AGENT")

    assert log.state.snapshot(T0, True)["llm"]["DEV"] == {"count": 4, "failures": 1, "p50_ms": 250, "p95_ms": 400,
                                                          "max_ms": 400}


def test_an_event_read_twice_is_folded_once():
    log = Log()
    assert log.feed(requested(), 0, sequence=7)
    assert not log.feed(requested(), 0, sequence=7)

    assert len(log.state.snapshot(T0, True)["events"]) == 1


def test_live_events_are_the_newest_by_when_they_happened_whatever_order_the_streams_are_read_in():
    log = Log()
    log.feed(requested(), 3600, stream="PLANNING", sequence=1)
    for second in range(RECENT_EVENTS + 5):  # another stream's older hour, delivered after
        log.feed(advanced(Phase.PROPOSE), second, stream="ORCHESTRATION", sequence=second + 1)

    shown = log.state.snapshot(T0, True)["events"]

    assert len(shown) == RECENT_EVENTS
    assert shown[0]["stream"] == "PLANNING", "the newest event comes first"
    assert [e["at"] for e in shown] == sorted((e["at"] for e in shown), reverse=True)
    assert shown[-1]["seq"] == 7, "the oldest were dropped"


def test_what_jetstream_could_not_tell_is_shown_as_unavailable_with_the_reason():
    state = MonitorState()
    state.consumers.unavailable = "TimeoutError: nats: timeout"

    snapshot = state.snapshot(T0, False)

    assert snapshot["consumers"] == {"value": None, "unavailable": "TimeoutError: nats: timeout", "read_at": None}
    assert snapshot["dead_letters"]["unavailable"] == "not read yet"
    assert snapshot["nats"] == "disconnected"


def test_only_the_newest_results_are_kept():
    log = Log()
    for index in range(FINISHED_KEPT + 5):
        ref = DeliberationRef(deliberation_id=f"d-{index}", story_id="s", plan_id="p", task_id="t", role=Role.DEV)
        log.feed(requested(ref), index)
        log.feed(completed(f"d-{index}"), index + 0.5)

    results = log.state.snapshot(T0, True)["results"]
    assert len(results) == FINISHED_KEPT and results[0]["deliberation_id"] == f"d-{FINISHED_KEPT + 4}"


def test_a_cancelled_deliberation_is_a_result_that_says_who_cancelled_it_and_who_asked():
    log = Log()
    log.feed(requested(), 0)
    log.feed(DeliberationStarted(deliberation=REF, brief=requested().brief, council=new_council(Role.DEV, 3),
                                 architect=AGENT, started_at=T0), 1)
    log.feed(DeliberationCancelRequested(deliberation_id="d-1", requested_by="ops", reason="wrong rubric"), 20)
    [in_flight] = log.state.snapshot(T0, True)["in_flight"]
    log.feed(DeliberationFailed(deliberation_id="d-1", story_id="s-1", plan_id="p-1", task_id="t-1", role=Role.DEV,
                                phase=Phase.PROPOSE, reason="cancelled: wrong rubric", duration_ms=21_000,
                                cancelled_by="ops"), 21)

    [row] = log.state.snapshot(T0, True)["results"]
    assert in_flight["cancel_requested"] == {"by": "ops", "reason": "wrong rubric", "at": "2026-11-23T04:00:20.000000Z"}
    assert in_flight["deadline_at"] == "2026-11-23T04:30:00.000000Z"
    assert (in_flight["cancel_fate"], in_flight["retry_fate"]) == ("pending", None)
    assert (row["status"], row["cancelled_by"], row["cancel_fate"]) == ("CANCELLED", "ops", "granted")


def test_a_cancel_that_arrived_after_the_deliberation_ended_is_not_shown_as_pending():
    log = Log()
    log.feed(requested(), 0)
    log.feed(completed(), 10)
    log.feed(DeliberationCancelRequested(deliberation_id="d-1", requested_by="ops", reason="too slow"), 11)

    [row] = log.state.snapshot(T0, True)["results"]
    assert (row["status"], row["cancelled_by"], row["cancel_fate"]) == ("COMPLETED", None, "came after it ended")


def test_a_retry_the_collector_refused_is_not_granted_and_one_it_granted_names_the_new_attempt():
    log = Log()
    log.feed(requested(), 0)
    # Asked while it ran: the collector refuses it, and no attempt follows.
    log.feed(DeliberationRetryRequested(deliberation_id="d-1", requested_by="ops", reason="too soon"), 1)
    log.feed(DeliberationFailed(deliberation_id="d-1", story_id="s-1", plan_id="p-1", task_id="t-1", role=Role.DEV,
                                phase=Phase.PROPOSE, reason="quorum", duration_ms=5_000), 5)
    [refused] = log.state.snapshot(T0, True)["results"]
    log.feed(DeliberationRetryRequested(deliberation_id="d-1", requested_by="ops", reason="llm back"), 60)
    retry_ref = DeliberationRef(deliberation_id="d-2", story_id="s-1", plan_id="p-1", task_id="t-1", role=Role.DEV)
    log.feed(msgspec.structs.replace(requested(retry_ref), attempt=Attempt(
        first_id="d-1", previous_id="d-1", number=2, requested_by="ops", reason="llm back")), 61)

    [granted] = log.state.snapshot(T0, True)["results"]
    assert (refused["retry_fate"], refused["cancel_fate"]) == ("not granted", None)
    assert (granted["retry_fate"], granted["retried_as"]) == ("granted", "d-2")


def test_a_retry_is_a_new_row_with_its_attempt_and_the_retried_row_points_to_it():
    log = Log()
    log.feed(requested(), 0)
    log.feed(DeliberationFailed(deliberation_id="d-1", story_id="s-1", plan_id="p-1", task_id="t-1", role=Role.DEV,
                                phase=Phase.PROPOSE, reason="quorum", duration_ms=5_000), 5)
    log.feed(DeliberationRetryRequested(deliberation_id="d-1", requested_by="ops", reason="llm back"), 60)
    retry_ref = DeliberationRef(deliberation_id="d-2", story_id="s-1", plan_id="p-1", task_id="t-1", role=Role.DEV)
    log.feed(msgspec.structs.replace(requested(retry_ref), attempt=Attempt(
        first_id="d-1", previous_id="d-1", number=2, requested_by="ops", reason="llm back")), 61)

    snapshot = log.state.snapshot(T0, True)
    [retry] = snapshot["in_flight"]
    [retried] = snapshot["results"]
    assert retry["attempt"] == {"first_id": "d-1", "previous_id": "d-1", "number": 2, "requested_by": "ops",
                                "reason": "llm back"}
    assert (retried["retried_as"], retried["retry_requested"]["by"]) == ("d-2", "ops")


def accepted(approval_id: str = "a-1") -> PlanAccepted:
    return PlanAccepted(story_id="s-1", plan_id="p-1", approved_by="alice", approval_id=approval_id, deliberations=[
        PlannedDeliberation(deliberation_id="d-1", task_id="t-1", role=Role.DEV)])


def rejected(approval_id: str = "a-2", plan_id: str = "p-1") -> PlanRejected:
    return PlanRejected(approval_id=approval_id, original_subject="planning.plan.approved.v1", reasons=["no tasks"],
                        story_id="s-1" if plan_id else "", plan_id=plan_id)


def concluded(failed: int = 0) -> PlanConcluded:
    return PlanConcluded(story_id="s-1", plan_id="p-1", completed=1 - failed, failed=failed, revision=2, outcomes=[
        DeliberationOutcome(deliberation_id="d-1", task_id="t-1", role=Role.DEV,
                            outcome="failed" if failed else "completed")])


def test_the_plans_show_what_ingress_answered_and_how_they_ended_newest_first():
    log = Log()
    log.feed(accepted(), 0)
    log.feed(rejected(plan_id=""), 1)
    log.feed(concluded(), 2)

    plan, unnamed = log.state.snapshot(T0, True)["plans"]
    assert (plan["answer"], plan["approval_id"], plan["reasons"], plan["deliberations"]) == (
        "accepted", "a-1", [], ["d-1"])
    assert (plan["concluded_at"], plan["revision"], plan["completed"]) == ("2026-11-23T04:00:02.000000Z", 2, 1)
    assert (unnamed["answer"], unnamed["reasons"], unnamed["approval_id"]) == ("rejected", ["no tasks"], "a-2")
    assert unnamed["concluded_at"] is None


def test_an_approval_of_a_concluded_plan_rejected_later_is_the_latest_answer_and_keeps_the_conclusion():
    log = Log()
    log.feed(accepted(), 0)
    log.feed(concluded(), 2)
    log.feed(rejected(), 3)

    [plan] = log.state.snapshot(T0, True)["plans"]
    assert (plan["answer"], plan["answered_at"], plan["approval_id"], plan["reasons"]) == (
        "rejected", "2026-11-23T04:00:03.000000Z", "a-2", ["no tasks"])
    assert (plan["concluded_at"], plan["revision"], plan["completed"], plan["deliberations"]) == (
        "2026-11-23T04:00:02.000000Z", 2, 1, ["d-1"])


def test_a_conclusion_after_a_rejected_then_accepted_approval_has_no_rejection_reasons():
    log = Log()
    log.feed(rejected(approval_id="a-0"), 0)
    log.feed(accepted(), 1)
    log.feed(concluded(failed=1), 2)

    [plan] = log.state.snapshot(T0, True)["plans"]
    assert (plan["answer"], plan["approval_id"], plan["reasons"]) == ("accepted", "a-1", [])
    assert (plan["completed"], plan["failed"]) == (0, 1)
