"""Planning turns an approval into one deliberation request per (task, role)."""

import pytest

from contracts.errors import ContractViolation
from contracts.events import LegacyPlanApproved, PlanApproved, PlannedTask, Role
from contracts.upcast import upcast
from services.planning.domain import deliberation_id, request_deliberations


def approval(**changes) -> PlanApproved:
    fields = {
        "story_id": "s-1", "plan_id": "p-1", "approved_by": "alice", "roles": [Role.DEV, Role.QA],
        "tasks": [PlannedTask(task_id="t-1", title="One"), PlannedTask(task_id="t-2", title="Two")],
    }
    return PlanApproved(**{**fields, **changes})


def test_an_approval_requests_one_deliberation_per_task_and_role():
    requests = request_deliberations(approval())
    keys = {(r.deliberation.task_id, r.deliberation.role) for r in requests}
    assert keys == {("t-1", Role.DEV), ("t-1", Role.QA), ("t-2", Role.DEV), ("t-2", Role.QA)}
    assert len(requests) == 4


def test_the_same_approval_always_names_the_same_deliberations():
    first = [r.deliberation.deliberation_id for r in request_deliberations(approval())]
    again = [r.deliberation.deliberation_id for r in request_deliberations(approval(approved_by="bob"))]
    assert first == again
    assert len(set(first)) == 4


def test_deliberation_ids_differ_by_story_plan_task_and_role():
    base = deliberation_id("s", "p", "t", Role.DEV)
    assert len({base, deliberation_id("s2", "p", "t", Role.DEV), deliberation_id("s", "p2", "t", Role.DEV),
                deliberation_id("s", "p", "t2", Role.DEV), deliberation_id("s", "p", "t", Role.QA)}) == 5


def test_a_plan_without_tasks_is_deliberated_as_a_whole():
    requests = request_deliberations(approval(tasks=[], roles=[Role.ARCHITECT]))
    assert len(requests) == 1
    assert requests[0].task.task_id == "p-1"
    assert "p-1" in requests[0].task.title


def test_the_legacy_format_is_upcast_to_v1_with_the_plan_as_its_topic():
    legacy = LegacyPlanApproved(story_id="s-1", plan_id="p-1", approved_by="alice", roles=[Role.DEV], timestamp=1)
    current = upcast(legacy)
    assert isinstance(current, PlanApproved)
    assert [t.task_id for t in current.tasks] == ["p-1"]
    assert current.roles == [Role.DEV]


def test_rubric_and_constraints_reach_every_request():
    requests = request_deliberations(approval(rubric={"clarity": "plain"}, constraints=["no downtime"]))
    assert all(r.rubric == {"clarity": "plain"} and r.constraints == ["no downtime"] for r in requests)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"roles": [Role.DEV, Role.DEV]}, "roles listed more than once: DEV"),
        ({"tasks": [PlannedTask(task_id="t", title="a"), PlannedTask(task_id="t", title="b")]},
         "task_id listed more than once: t"),
    ],
)
def test_an_approval_that_repeats_itself_is_rejected_with_the_reason(changes, reason):
    with pytest.raises(ContractViolation, match=reason):
        request_deliberations(approval(**changes))
