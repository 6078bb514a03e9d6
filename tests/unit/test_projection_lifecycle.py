"""The lifecycle in the read models: story transitions, ingress's answers for a plan, cancels, retries, deadlines."""

import msgspec
from rich.console import Console

from contracts.events import LegacyStoryTransitioned
from contracts.queries import DeliberationList, DeliberationStatus, OperatorRequest, failed_status
from contracts.upcast import upcast
from services.cli.read_models import print_deliberation, print_deliberations, story_tree
from services.projection.graph_model import graph_writes
from services.projection.kv_model import (
    AddToIndex,
    CountOnce,
    SetFields,
    council_stats_key,
    deliberation_key,
    kv_writes,
    story_deliberations_key,
    story_key,
    story_transitions_key,
)
from services.projection.reads import deliberation_view, story_view, summary_of
from services.projection.vocabulary import Label, Rel, plan_key
from tests.support import T0, at
from tests.unit.test_projection_models import (
    RETRY_REF,
    cancel_requested,
    edges_of,
    envelope,
    failed,
    nodes_of,
    plan_accepted,
    plan_concluded,
    plan_rejected,
    requested,
    retried,
    retry_requested,
    started,
    story_row,
    transitioned,
)


def kv_hash(key: str, *events_at) -> dict[str, str]:
    """What the KV model leaves in one hash after these (event, moment) pairs, in order."""
    stored: dict[str, str] = {}
    for event, moment in events_at:
        for write in kv_writes(event, envelope(event, moment)):
            if isinstance(write, SetFields) and write.key == key:
                stored.update(write.fields)
    return stored


# --- statuses ---------------------------------------------------------------------------------------


def test_a_failure_someone_cancelled_is_cancelled_even_when_it_also_timed_out():
    assert failed_status(failed(cancelled_by="ops")) is DeliberationStatus.CANCELLED
    assert failed_status(failed(timed_out=True, cancelled_by="ops")) is DeliberationStatus.CANCELLED
    assert failed_status(failed(timed_out=True)) is DeliberationStatus.TIMED_OUT
    assert DeliberationStatus.CANCELLED.finished


def test_a_cancelled_deliberation_is_cancelled_by_someone_in_both_read_models_and_counted_as_cancelled():
    event = failed(cancelled_by="ops")
    writes = kv_writes(event, envelope(event))
    [fields] = [w for w in writes if isinstance(w, SetFields)]
    [counted] = [w for w in writes if isinstance(w, CountOnce)]
    node = nodes_of(graph_writes(event, envelope(event)))[(Label.DELIBERATION, "d-1")]

    assert (fields.fields["status"], fields.fields["cancelled_by"]) == ("CANCELLED", "ops")
    assert counted == CountOnce(council_stats_key("DEV", "2026-11-22"), {"cancelled": 1, "duration_ms_total": 300_000},
                                fact="result/d-1", marker="counted:deliberation:d-1", at=T0.timestamp())
    assert (node["status"], node["cancelled_by"]) == ("CANCELLED", "ops")


def test_a_failure_nobody_cancelled_names_no_one():
    event = failed()

    assert "cancelled_by" not in kv_hash(deliberation_key("d-1"), (event, at(1)))
    # A None property is never written (cypher.coalesce_writes leaves it out).
    assert nodes_of(graph_writes(event, envelope(event)))[(Label.DELIBERATION, "d-1")]["cancelled_by"] is None


# --- story transitions ------------------------------------------------------------------------------


def test_a_transition_sets_the_storys_state_and_adds_one_transition_node_named_by_its_event():
    event = transitioned()
    writes = graph_writes(event, envelope(event, at(7), event_id="e-7"))
    nodes = nodes_of(writes)

    assert nodes[(Label.STORY, "s-1")] == {"story_id": "s-1", "state": "BUILD",
                                           "state_since": "2026-11-22T12:00:07.000000Z"}
    assert nodes[(Label.TRANSITION, "e-7")] == {
        "story_id": "s-1", "from_state": "DESIGN", "to_state": "BUILD", "by": "po", "reason": "design signed off",
        "at": "2026-11-22T12:00:07.000000Z"}
    assert edges_of(writes) == {(Label.STORY, "s-1", Rel.TRANSITIONED, Label.TRANSITION, "e-7")}


def test_a_transition_in_the_kv_model_is_the_storys_state_and_one_member_of_its_history_however_often_stored():
    event = transitioned()
    first = kv_writes(event, envelope(event, at(7), event_id="e-7"))
    again = kv_writes(event, envelope(event, at(7), event_id="e-7"))
    [state] = [w for w in first if isinstance(w, SetFields)]
    [history] = [w for w in first if isinstance(w, AddToIndex) and w.key == story_transitions_key("s-1")]

    assert state == SetFields(story_key("s-1"), {"state": "BUILD", "state_since": "2026-11-22T12:00:07.000000Z"},
                              at=at(7).timestamp())
    assert msgspec.json.decode(history.member) == {
        "event_id": "e-7", "from_state": "DESIGN", "to_state": "BUILD", "by": "po", "reason": "design signed off",
        "at": "2026-11-22T12:00:07.000000Z"}
    assert history.score == at(7).timestamp()
    assert history in again


def test_no_key_of_one_story_is_a_key_of_another_whatever_their_ids():
    # A story id may hold ":" (ids are any non-empty string): a hash at another story's set is WRONGTYPE.
    ids = ["x", "x:deliberations", "x:transitions", "x:state", "x:state:state"]
    keys = [make(story_id) for story_id in ids for make in (story_key, story_deliberations_key, story_transitions_key)]

    assert len(set(keys)) == len(keys)


def test_a_legacy_transition_is_projected_as_a_v1_transition_without_a_reason():
    legacy = LegacyStoryTransitioned(story_id="s-1", from_state="TODO", to_state="DESIGN", transitioned_by="po",
                                     timestamp=1_700_000_000)
    event = upcast(legacy)
    nodes = nodes_of(graph_writes(event, envelope(event, at(2), event_id="legacy-1")))

    assert nodes[(Label.TRANSITION, "legacy-1")]["to_state"] == "DESIGN"
    assert nodes[(Label.TRANSITION, "legacy-1")]["reason"] == ""


# --- the plan's answers -----------------------------------------------------------------------------


def test_an_accepted_plan_records_the_answer_its_approval_and_how_many_deliberations_it_requested():
    event = plan_accepted()
    nodes = nodes_of(graph_writes(event, envelope(event, at(3))))

    assert nodes == {(Label.PLAN_VERSION, plan_key("s-1", "p-1")): {
        "answer": "accepted", "answered_at": "2026-11-22T12:00:03.000000Z", "approval_id": "approval-1",
        "answer_reasons": [], "deliberation_count": 1}}


def test_a_rejected_plan_is_a_plan_of_its_story_with_the_reasons():
    event = plan_rejected()
    writes = graph_writes(event, envelope(event, at(3)))
    plan = nodes_of(writes)[(Label.PLAN_VERSION, "s-1/p-9")]

    assert (plan["answer"], plan["approval_id"], plan["answer_reasons"], plan["deliberation_count"]) == (
        "rejected", "approval-9", ["no council for role DATA"], 0)
    assert edges_of(writes) == {(Label.STORY, "s-1", Rel.HAS_PLAN, Label.PLAN_VERSION, "s-1/p-9")}


def plan_answered(*events_at) -> dict:
    """The plan node's properties after these (event, moment) pairs, applied in order as the projector does."""
    props: dict = {}
    for event, moment in events_at:
        for (label, key), values in nodes_of(graph_writes(event, envelope(event, moment))).items():
            if (label, key) == (Label.PLAN_VERSION, "s-1/p-1"):
                props.update(values)
    return props


def test_an_approval_rejected_after_an_earlier_one_was_accepted_leaves_only_the_rejection():
    rejected = msgspec.structs.replace(plan_rejected(plan_id="p-1"), approval_id="approval-2")

    plan = plan_answered((plan_accepted(), at(3)), (plan_concluded(outcome="completed"), at(9)), (rejected, at(20)))

    assert (plan["answer"], plan["answered_at"], plan["approval_id"], plan["answer_reasons"],
            plan["deliberation_count"]) == ("rejected", "2026-11-22T12:00:20.000000Z", "approval-2",
                                            ["no council for role DATA"], 0)
    # The deliberations the accepted approval started still concluded.
    assert (plan["conclusion_revision"], plan["completed"]) == (1, 1)


def test_an_approval_accepted_after_an_earlier_one_was_rejected_leaves_only_the_acceptance():
    rejected = plan_rejected(plan_id="p-1")

    plan = plan_answered((rejected, at(3)), (plan_accepted(), at(20)))

    assert (plan["answer"], plan["answered_at"], plan["approval_id"], plan["answer_reasons"],
            plan["deliberation_count"]) == ("accepted", "2026-11-22T12:00:20.000000Z", "approval-1", [], 1)


def test_a_rejected_approval_that_names_no_plan_writes_nothing_to_the_graph():
    event = plan_rejected(story_id="", plan_id="")

    assert graph_writes(event, envelope(event)) == []


def test_a_concluded_plan_records_its_revision_and_counts_and_leaves_the_outcomes_on_the_deliberations():
    event = plan_concluded(revision=2, outcome="cancelled")
    props = nodes_of(graph_writes(event, envelope(event, at(9))))[(Label.PLAN_VERSION, "s-1/p-1")]

    # Not the outcomes: every row of a story's query repeats its plan's properties.
    assert props == {"concluded_at": "2026-11-22T12:00:09.000000Z", "conclusion_revision": 2, "completed": 0,
                     "failed": 1}


# --- deliberations: deadline, cancel and retry ------------------------------------------------------


def test_a_deliberation_shows_its_deadline_the_cancel_request_and_who_cancelled_it():
    stored = kv_hash(deliberation_key("d-1"), (requested(), at(0)), (started(), at(1)),
                     (cancel_requested(), at(30)), (failed(cancelled_by="ops"), at(31)))

    view = deliberation_view(stored)

    assert view.status is DeliberationStatus.CANCELLED and view.cancelled_by == "ops"
    assert view.cancel_requested == OperatorRequest(by="ops", reason="wrong rubric", at="2026-11-22T12:00:30.000000Z")
    assert (view.deadline_s, view.deadline_at) == (1800.0, "2026-11-22T12:30:01.000000Z")
    assert view.attempt is None and view.retried_as is None
    summary = summary_of(view)
    assert (summary.status, summary.cancelled_by, summary.attempt_number) == ("CANCELLED", "ops", 1)


def test_a_retried_deliberation_points_to_its_new_attempt_which_points_back_to_the_first():
    events = [(requested(), at(0)), (failed(), at(5)), (retry_requested(), at(60)), (retried(), at(61))]
    first, second = deliberation_view(kv_hash("deliberation:d-1", *events)), deliberation_view(
        kv_hash("deliberation:d-2", *events))

    assert first.retried_as == "d-2" and first.status is DeliberationStatus.FAILED
    assert first.retry_requested == OperatorRequest(by="ops", reason="rubric fixed", at="2026-11-22T12:01:00.000000Z")
    assert second.status is DeliberationStatus.PENDING
    assert (second.attempt.number, second.attempt.first_id, second.attempt.previous_id) == (2, "d-1", "d-1")
    assert (second.attempt.requested_by, second.attempt.reason) == ("ops", "rubric fixed")
    assert summary_of(second).attempt_number == 2 and summary_of(first).retried_as == "d-2"


def test_a_retry_in_the_graph_is_a_deliberation_of_the_same_task_linked_from_the_one_it_retries():
    event = retried()
    writes = graph_writes(event, envelope(event))
    node = nodes_of(writes)[(Label.DELIBERATION, RETRY_REF.deliberation_id)]

    assert (node["attempt_number"], node["first_id"], node["previous_id"]) == (2, "d-1", "d-1")
    assert (Label.DELIBERATION, "d-1", Rel.RETRIED_AS, Label.DELIBERATION, "d-2") in edges_of(writes)
    assert (Label.TASK, "s-1/p-1/t-1", Rel.DELIBERATED_IN, Label.DELIBERATION, "d-2") in edges_of(writes)
    first = nodes_of(graph_writes(requested(), envelope(requested())))[(Label.DELIBERATION, "d-1")]
    assert first["attempt_number"] == 1


# --- story.show: transitions and the plan's answers -------------------------------------------------


def transition_row(event_id, from_state, to_state, at_, state="REVIEW") -> list:
    return [state, event_id, from_state, to_state, "po", "", at_]


def test_a_story_shows_its_state_and_its_transitions_in_time_order():
    view = story_view("s-1", [story_row("p-1", "2026-11-22T09:00:00.000000Z")], [
        transition_row("e-2", "BUILD", "REVIEW", "2026-11-22T11:00:00.000000Z"),
        transition_row("e-1", "DESIGN", "BUILD", "2026-11-22T10:00:00.000000Z"),
    ])

    assert view.state == "REVIEW"
    assert [(t.event_id, t.from_state, t.to_state) for t in view.transitions] == [
        ("e-1", "DESIGN", "BUILD"), ("e-2", "BUILD", "REVIEW")]


def test_a_story_with_transitions_and_no_plan_yet_is_shown():
    view = story_view("s-1", [], [transition_row("e-1", "TODO", "DESIGN", "2026-11-22T10:00:00.000000Z",
                                                 state="DESIGN")])

    assert view is not None and view.plans == [] and view.state == "DESIGN"


def test_a_story_without_transitions_has_no_state():
    view = story_view("s-1", [story_row("p-1", "2026-11-22T09:00:00.000000Z")], [[None] * 7])

    assert view.state is None and view.transitions == []


def test_a_plan_in_a_story_shows_what_ingress_answered_and_how_it_ended():
    answers = ("accepted", "2026-11-22T09:00:01.000000Z", "approval-1", [], 1, "2026-11-22T09:10:00.000000Z", 1, 1, 0)
    rejected = ("rejected", "2026-11-22T09:00:02.000000Z", "approval-9", ["no council for role DATA"], 0, None, None,
                None, None)
    rejected_row = story_row("p-9", None, answers=rejected)
    rejected_row[1] = None  # never approved: ingress refused the approval before reading it
    view = story_view("s-1", [
        story_row("p-1", "2026-11-22T09:00:00.000000Z", "t-1", "One", 0, "d-1", "DEV", "COMPLETED", answers=answers),
        rejected_row,
    ])

    accepted, refused = view.plans
    assert (accepted.answer, accepted.approval_id, accepted.deliberation_count) == ("accepted", "approval-1", 1)
    assert (accepted.conclusion_revision, accepted.completed, accepted.answer_reasons) == (1, 1, [])
    assert [d.status for d in accepted.tasks[0].deliberations] == ["COMPLETED"]
    assert (refused.plan_id, refused.approved_by, refused.answer, refused.answer_reasons) == (
        "p-9", None, "rejected", ["no council for role DATA"])


def test_a_tasks_attempts_are_listed_in_order_with_who_cancelled_and_what_retried_them():
    approved = "2026-11-22T09:00:00.000000Z"
    view = story_view("s-1", [
        story_row("p-1", approved, "t-1", "One", 0, "d-2", "DEV", "COMPLETED", attempt_number=2),
        story_row("p-1", approved, "t-1", "One", 0, "d-1", "DEV", "CANCELLED", attempt_number=None, cancelled_by="ops",
                  retried_as="d-2"),
    ])

    first, second = view.plans[0].tasks[0].deliberations
    assert (first.deliberation_id, first.attempt_number, first.cancelled_by, first.retried_as) == (
        "d-1", 1, "ops", "d-2")
    assert (second.deliberation_id, second.attempt_number) == ("d-2", 2)


# --- the CLI's views ---------------------------------------------------------------------------------


def printed(render) -> str:
    console = Console(record=True, width=200)
    render(console)
    return console.export_text()


def test_fleet_deliberation_show_says_the_attempt_the_requests_who_cancelled_and_the_deadline():
    events = [(requested(), at(0)), (started(), at(1)), (cancel_requested(), at(30)),
              (failed(cancelled_by="ops"), at(31)), (retry_requested(), at(60)), (retried(), at(61))]
    first = deliberation_view(kv_hash("deliberation:d-1", *events))
    second = deliberation_view(kv_hash("deliberation:d-2", *events))

    shown = printed(lambda console: print_deliberation(first, console))
    retry = printed(lambda console: print_deliberation(second, console))

    assert "CANCELLED" in shown and "cancelled by ops" in shown
    assert "cancel requested by ops at 2026-11-22T12:00:30.000000Z: wrong rubric" in shown
    assert "retry requested by ops" in shown and "retried as d-2" in shown
    assert "overall deadline" in shown and "2026-11-22T12:30:01.000000Z (1800s after the start)" in shown
    assert "attempt 2, retry of d-1 (first d-1), requested by ops: rubric fixed" in retry
    assert "pending" not in shown and "not granted" not in shown and "came after it ended" not in shown


def test_fleet_deliberation_show_says_a_request_is_pending_only_while_the_deliberation_runs():
    running = [(requested(), at(0)), (started(), at(1)), (cancel_requested(), at(30))]
    # The cancel came after the deliberation ended, and the collector refused the retry while it ran.
    late = [*running[:2], (retry_requested(), at(2)), (failed(), at(20)), (cancel_requested(), at(30))]

    pending = printed(lambda console: print_deliberation(deliberation_view(kv_hash("deliberation:d-1", *running)),
                                                         console))
    ended = printed(lambda console: print_deliberation(deliberation_view(kv_hash("deliberation:d-1", *late)),
                                                       console))

    assert "cancel requested by ops at 2026-11-22T12:00:30.000000Z: wrong rubric (pending)" in pending
    assert "cancel requested by ops at 2026-11-22T12:00:30.000000Z: wrong rubric (came after it ended)" in ended
    assert "retry requested by ops at 2026-11-22T12:00:02.000000Z: rubric fixed (not granted)" in ended
    assert "pending" not in ended


def test_fleet_deliberation_list_shows_the_attempt_and_who_cancelled():
    events = [(requested(), at(0)), (failed(cancelled_by="ops"), at(5)), (retried(), at(61))]
    listed = DeliberationList(deliberations=[
        summary_of(deliberation_view(kv_hash(f"deliberation:{d}", *events))) for d in ("d-2", "d-1")])

    shown = printed(lambda console: print_deliberations(listed, console))

    assert "CANCELLED by ops, retried as d-2" in shown


def test_fleet_story_show_shows_the_state_the_transitions_and_the_plans_answers():
    answers = ("accepted", "2026-11-22T09:00:01.000000Z", "approval-1", [], 1, "2026-11-22T09:10:00.000000Z", 2, 1, 0)
    view = story_view("s-1", [
        story_row("p-1", "2026-11-22T09:00:00.000000Z", "t-1", "One", 0, "d-1", "DEV", "CANCELLED",
                  cancelled_by="ops", retried_as="d-2", answers=answers),
    ], [["BUILD", "e-1", "DESIGN", "BUILD", "po", "signed off", "2026-11-22T10:00:00.000000Z"]])

    shown = printed(lambda console: console.print(story_tree(view)))

    assert "story s-1, now BUILD" in shown
    assert "2026-11-22T10:00:00.000000Z DESIGN → BUILD by po: signed off" in shown
    assert "accepted at 2026-11-22T09:00:01.000000Z: 1 deliberation(s)" in shown
    assert "concluded at 2026-11-22T09:10:00.000000Z (revision 2): 1 completed, 0 failed" in shown
    assert "d-1 by ops, retried as d-2" in shown
