"""Turning an approved plan into deliberation requests. Pure: no I/O."""

from __future__ import annotations

from collections import Counter

from contracts.envelope import deterministic_id
from contracts.errors import ContractViolation
from contracts.events import DeliberationRef, DeliberationRequested, PlanApproved, Role
from contracts.upcast import plan_as_task


def deliberation_id(story_id: str, plan_id: str, task_id: str, role: Role) -> str:
    """Deterministic: the same (plan, task, role) always names the same deliberation."""
    return deterministic_id("deliberation", story_id, plan_id, task_id, role.value)


def problems_with(approval: PlanApproved) -> list[str]:
    """What the types alone cannot say is wrong with an approval."""
    problems = []
    repeated_roles = [role.value for role, n in Counter(approval.roles).items() if n > 1]
    if repeated_roles:
        problems.append(f"roles listed more than once: {', '.join(sorted(repeated_roles))}")
    repeated_tasks = [task_id for task_id, n in Counter(t.task_id for t in approval.tasks).items() if n > 1]
    if repeated_tasks:
        problems.append(f"task_id listed more than once: {', '.join(sorted(repeated_tasks))}")
    return problems


def request_deliberations(approval: PlanApproved) -> list[DeliberationRequested]:
    """One request per (task, role); a plan with no tasks is deliberated as a whole."""
    if problems := problems_with(approval):
        raise ContractViolation("invalid plan approval: " + "; ".join(problems))
    tasks = approval.tasks or [plan_as_task(approval.story_id, approval.plan_id)]
    return [
        DeliberationRequested(
            deliberation=DeliberationRef(
                deliberation_id=deliberation_id(approval.story_id, approval.plan_id, task.task_id, role),
                story_id=approval.story_id,
                plan_id=approval.plan_id,
                task_id=task.task_id,
                role=role,
            ),
            task=task,
            approved_by=approval.approved_by,
            rubric=dict(approval.rubric),
            constraints=list(approval.constraints),
        )
        for task in tasks
        for role in approval.roles
    ]
