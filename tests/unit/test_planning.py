"""Planning turns an approval into one deliberation request per (task, role), each with its role's council."""

import msgspec
import pytest

from contracts.errors import ContractViolation, Rejected
from contracts.events import LegacyPlanApproved, PlanApproved, PlannedTask, Role
from contracts.upcast import upcast
from services.councils.domain import default_councils, new_council
from services.planning.domain import DEFAULT_RUBRIC, deliberation_id, missing_councils, request_deliberations

COUNCILS = {council.role: council for council in default_councils()}


def approval(**changes) -> PlanApproved:
    fields = {
        "story_id": "s-1", "plan_id": "p-1", "approved_by": "alice", "roles": [Role.DEV, Role.QA],
        "tasks": [PlannedTask(task_id="t-1", title="One"), PlannedTask(task_id="t-2", title="Two")],
    }
    return PlanApproved(**{**fields, **changes})


def without(*roles: Role) -> dict:
    return {role: council for role, council in COUNCILS.items() if role not in roles}


def test_an_approval_requests_one_deliberation_per_task_and_role():
    requests = request_deliberations(approval(), COUNCILS)
    keys = {(r.deliberation.task_id, r.deliberation.role) for r in requests}
    assert keys == {("t-1", Role.DEV), ("t-1", Role.QA), ("t-2", Role.DEV), ("t-2", Role.QA)}
    assert len(requests) == 4


def test_each_request_carries_its_roles_council_and_the_architect_as_they_are_at_approval():
    councils = {**COUNCILS, Role.DEV: new_council(Role.DEV, 5)}
    requests = request_deliberations(approval(), councils)
    assert len(requests) == 4
    assert all(r.council == councils[r.deliberation.role] for r in requests)
    assert {len(r.council.agents) for r in requests if r.deliberation.role == Role.DEV} == {5}
    assert all(r.architect == COUNCILS[Role.ARCHITECT].agents[0] for r in requests)


def test_the_same_approval_always_names_the_same_deliberations():
    first = [r.deliberation.deliberation_id for r in request_deliberations(approval(), COUNCILS)]
    again = [r.deliberation.deliberation_id for r in request_deliberations(approval(approved_by="bob"), COUNCILS)]
    assert first == again
    assert len(set(first)) == 4


def test_deliberation_ids_differ_by_story_plan_task_and_role():
    base = deliberation_id("s", "p", "t", Role.DEV)
    assert len({base, deliberation_id("s2", "p", "t", Role.DEV), deliberation_id("s", "p2", "t", Role.DEV),
                deliberation_id("s", "p", "t2", Role.DEV), deliberation_id("s", "p", "t", Role.QA)}) == 5


def test_a_plan_without_tasks_is_deliberated_as_a_whole():
    requests = request_deliberations(approval(tasks=[], roles=[Role.ARCHITECT]), COUNCILS)
    assert len(requests) == 1
    assert requests[0].brief.task.task_id == "p-1"
    assert "p-1" in requests[0].brief.task.title


def test_the_client_names_the_deliberations_of_a_plan_without_tasks_as_ingress_requests_them():
    from services.planning.client import deliberation_ids

    without_tasks = approval(tasks=[], roles=[Role.DEV, Role.QA])

    assert deliberation_ids(without_tasks) == [
        r.deliberation.deliberation_id for r in request_deliberations(without_tasks, COUNCILS)]


def test_the_legacy_format_is_upcast_to_v1_with_the_plan_as_its_topic():
    legacy = LegacyPlanApproved(story_id="s-1", plan_id="p-1", approved_by="alice", roles=[Role.DEV], timestamp=1)
    current = upcast(legacy)
    assert isinstance(current, PlanApproved)
    assert [t.task_id for t in current.tasks] == ["p-1"]
    assert current.roles == [Role.DEV]


def test_rubric_and_constraints_reach_every_request():
    requests = request_deliberations(approval(rubric={"clarity": "plain"}, constraints=["no downtime"]), COUNCILS)
    assert len(requests) == 4
    assert all(r.brief.rubric == {"clarity": "plain"} and r.brief.constraints == ["no downtime"] for r in requests)


def test_an_approval_without_a_rubric_is_judged_on_the_default_one():
    requests = request_deliberations(approval(), COUNCILS)
    assert len(requests) == 4
    assert all(r.brief.rubric == DEFAULT_RUBRIC for r in requests)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"roles": [Role.DEV, Role.DEV]}, "roles listed more than once: DEV"),
        ({"tasks": [PlannedTask(task_id="t", title="a"), PlannedTask(task_id="t", title="b")]},
         "task_id listed more than once: t"),
    ],
)
def test_an_approval_that_repeats_itself_is_a_contract_violation_with_the_reason(changes, reason):
    with pytest.raises(ContractViolation, match=reason):
        request_deliberations(approval(**changes), COUNCILS)


def test_a_role_without_a_council_is_rejected_with_how_to_create_one():
    reason = "no council for role QA; create one with `fleet council create --role QA`"
    with pytest.raises(Rejected, match=reason) as rejected:
        request_deliberations(approval(), without(Role.QA))
    assert not isinstance(rejected.value, ContractViolation)


def test_without_an_architect_council_no_deliberation_can_be_judged():
    reason = missing_councils([Role.DEV], without(Role.ARCHITECT))
    assert reason is not None and reason.startswith("no ARCHITECT council to judge proposals")
    with pytest.raises(Rejected, match="no ARCHITECT council"):
        request_deliberations(approval(roles=[Role.DEV]), without(Role.ARCHITECT))


def test_roles_with_councils_and_an_architect_are_not_missing_anything():
    assert missing_councils(list(Role), COUNCILS) is None


def test_every_answer_upstream_follows_is_in_one_stream_so_one_start_position_serves_every_reader():
    from contracts import catalog
    from services.planning.client import ANSWER_SUBJECTS
    from streams.definitions import stream_for_subject

    assert set(ANSWER_SUBJECTS) == {
        catalog.PLAN_ACCEPTED.subject, catalog.PLAN_REJECTED.subject, catalog.PLAN_CONCLUDED.subject,
        catalog.DELIBERATION_COMPLETED.subject, catalog.DELIBERATION_FAILED.subject}
    assert {stream_for_subject(subject).name for subject in ANSWER_SUBJECTS} == {"ORCHESTRATION"}


def answer_order_case():
    from contracts.events import (
        DeliberationCompleted,
        DeliberationOutcome,
        PlanAccepted,
        PlanApproved,
        PlanConcluded,
        PlannedTask,
        PlanRejected,
        Role,
        Winner,
    )
    from services.mesh.log_reader import FIRST
    from services.planning.client import AnswerOrder, Approval, deliberation_ids

    approval = PlanApproved(story_id="s", plan_id="p", approved_by="a", roles=[Role.DEV, Role.QA],
                            tasks=[PlannedTask(task_id="t", title="T")])
    ids = deliberation_ids(approval)
    sent = Approval(approval, "p-approved", ids, FIRST)

    def result(deliberation, plan_id="p"):
        return DeliberationCompleted(deliberation_id=deliberation, story_id="s", plan_id=plan_id, task_id="t",
                                     role=Role.DEV, winner=Winner(agent_id="dev-1", content="x", score=1.0,
                                                                  revisions=0),
                                     ranking=[], rationale="r", decided_by="architect-1", duration_ms=1)

    accepted = PlanAccepted(story_id="s", plan_id="p", approved_by="a", approval_id="p-approved", deliberations=[])
    concluded = PlanConcluded(story_id="s", plan_id="p", completed=2, failed=0, outcomes=[
        DeliberationOutcome(deliberation_id=d, task_id="t", role=Role.DEV, outcome="completed") for d in ids])
    rejected = PlanRejected(approval_id="p-approved", original_subject="planning.plan.approved.v1", reasons=["r"])
    return AnswerOrder(sent), ids, result, accepted, concluded, rejected


def test_answers_brought_by_separate_readers_come_out_in_the_plans_order():
    order, (dev, qa), result, accepted, concluded, _ = answer_order_case()

    another_approvals = msgspec.structs.replace(accepted, approval_id="p-approved-again")
    given = [order.take(concluded), order.take(result(qa)), order.take(result(dev, plan_id="another plan")),
             order.take(another_approvals), order.take(accepted), order.take(result(dev))]

    assert given == [[], [], [], [], [accepted, result(qa)], [result(dev), concluded]]
    assert order.ended and order.take(result(dev)) == []


def test_a_rejection_of_this_approval_ends_the_answers_at_once():
    order, (dev, _), result, _, _, rejected = answer_order_case()
    someone_elses = msgspec.structs.replace(rejected, approval_id="other-approved")

    assert order.take(someone_elses) == [] and not order.ended
    assert order.take(rejected) == [rejected] and order.ended


def test_plan_approve_wait_counts_each_deliberation_of_the_approval_once_and_shows_a_retry_apart():
    from contracts.events import DeliberationFailed, Phase
    from services.cli.commands.plan import WaitTally

    order, (dev, qa), result, accepted, concluded, _ = answer_order_case()
    failed_qa = DeliberationFailed(deliberation_id=qa, story_id="s", plan_id="p", task_id="t", role=Role.QA,
                                   phase=Phase.PROPOSE, reason="quorum not met", duration_ms=1)
    tally = WaitTally([dev, qa])

    lines = [tally.line_for(update) for update in
             (accepted, result(dev), failed_qa, result("the retry of qa"), concluded)]

    assert [line.split()[0] for line in lines[1:4]] == ["[1/2]", "[2/2]", "[retry]"]
    assert tally.waiting == 0 and tally.verdict() is None
