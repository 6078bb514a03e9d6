"""Turning an approved plan into deliberation requests. Pure: no I/O."""

from __future__ import annotations

from collections import Counter

import msgspec

from contracts import catalog
from contracts.envelope import MSG_ID, deterministic_id
from contracts.errors import ContractViolation, Rejected
from contracts.events import (
    Brief,
    Council,
    DeliberationRef,
    DeliberationRequested,
    PlanAccepted,
    PlanApproved,
    PlannedDeliberation,
    PlannedTask,
    PlanRejected,
    Role,
)
from contracts.upcast import plan_as_task
from services.councils.domain import architect_of
from services.mesh.deadletters import bounded_reason
from services.mesh.decoding import body_event_id
from services.mesh.messages import Refusal

# Used when an approval brings no rubric: every proposal is still judged against something explicit.
DEFAULT_RUBRIC = {
    "correctness": "The proposal solves the task as stated, without errors.",
    "completeness": "It covers the key steps, the risks and how to verify the result.",
    "clarity": "It is concrete and easy to act on.",
}


# Every event of a deliberation carries its brief (the request, the start, each turn request), next to the
# council or one of its agents, the proposals under critique or judgement, and up to 64 KiB of headers, in
# NATS's 1 MiB payload. Ingress could fill a brief up to that payload; a request that no longer fits fails
# to publish (a request a few hundred bytes under 1 MiB, with its headers over, makes the server drop
# the service's connection). A brief this size leaves room for everything else.
MAX_BRIEF_BYTES = 256 * 1024


# The longest story or plan id the ingress contract allows (contracts/events.py, NonEmpty).
MAX_ID_CHARS = 256


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
    if oversized := oversized_briefs(approval):
        size, task_id = max(oversized)
        problems.append(
            f"the brief of task {task_id!r} (its description, the rubric and the constraints) is {size:,} bytes "
            f"as JSON, over the {MAX_BRIEF_BYTES:,} a deliberation carries"
            + (f"; {len(oversized) - 1} more task(s) too" if len(oversized) > 1 else "")
        )
    return problems


def planned_tasks(approval: PlanApproved) -> list[PlannedTask]:
    """The tasks deliberated: the approval's, or the plan itself as one task when it lists none."""
    return approval.tasks or [plan_as_task(approval.story_id, approval.plan_id)]


def read_approval(body: bytes) -> PlanApproved:
    """An approval as ingress will read it: what `fleet plan approve` checks before it publishes anything.

    The types are checked first (msgspec names the first field that breaks them, with its path, such as
    `$.tasks[0].title`), then everything the types cannot say, each problem a reason of its own.
    """
    try:
        approval = catalog.PLAN_APPROVED.decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ContractViolation(f"invalid {catalog.PLAN_APPROVED.subject} payload: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ContractViolation(f"{catalog.PLAN_APPROVED.subject} body is not valid JSON: {exc}") from None
    if problems := problems_with(approval):
        raise ContractViolation("invalid plan approval: " + "; ".join(problems), reasons=problems)
    return approval


def oversized_briefs(approval: PlanApproved) -> list[tuple[int, str]]:
    """(size, task id) of every brief over MAX_BRIEF_BYTES, as JSON; one encoding of what the briefs share."""
    rubric, constraints = approval.rubric or DEFAULT_RUBRIC, approval.constraints
    shared = len(msgspec.json.encode(rubric)) + len(msgspec.json.encode(constraints))
    empty = len(b"{}") + len(b"[]")
    sizes = [
        (shared - empty + len(msgspec.json.encode(Brief(task=task, rubric={}, constraints=[]))), task.task_id)
        for task in planned_tasks(approval)
    ]
    return [(size, task_id) for size, task_id in sizes if size > MAX_BRIEF_BYTES]


def missing_councils(roles: list[Role], councils: dict[Role, Council]) -> str | None:
    """Why these roles cannot deliberate now, or None when they can."""
    missing = [role.value for role in roles if role not in councils]
    if missing:
        return (
            f"no council for role {', '.join(missing)}; create one with "
            f"`fleet council create --role {missing[0]}`"
        )
    if architect_of(councils) is None:
        return "no ARCHITECT council to judge proposals and select winners; create one with " \
            "`fleet council create --role ARCHITECT`"
    return None


def request_deliberations(approval: PlanApproved, councils: dict[Role, Council]) -> list[DeliberationRequested]:
    """One request per (task, role), with the council of that role; a plan with no tasks is deliberated whole.

    Raises with every reason the approval is refused for, the missing councils with what is wrong with it.
    """
    problems = problems_with(approval)
    missing = missing_councils(approval.roles, councils)
    if problems:
        reasons = [*problems, *([missing] if missing else [])]
        raise ContractViolation("invalid plan approval: " + "; ".join(reasons), reasons=reasons)
    if missing:
        raise Rejected(missing)
    architect = architect_of(councils)
    assert architect is not None
    tasks = planned_tasks(approval)
    rubric = dict(approval.rubric or DEFAULT_RUBRIC)
    return [
        DeliberationRequested(
            deliberation=DeliberationRef(
                deliberation_id=deliberation_id(approval.story_id, approval.plan_id, task.task_id, role),
                story_id=approval.story_id,
                plan_id=approval.plan_id,
                task_id=task.task_id,
                role=role,
            ),
            brief=Brief(task=task, rubric=rubric, constraints=list(approval.constraints)),
            approved_by=approval.approved_by,
            council=councils[role],
            architect=architect,
        )
        for task in tasks
        for role in approval.roles
    ]


def plan_accepted(approval: PlanApproved, approval_id: str, requests: list[DeliberationRequested]) -> PlanAccepted:
    """The answer to an approval that started deliberations: which ones, so upstream can follow each."""
    return PlanAccepted(
        story_id=approval.story_id,
        plan_id=approval.plan_id,
        approved_by=approval.approved_by,
        approval_id=approval_id,
        deliberations=[
            PlannedDeliberation(
                deliberation_id=request.deliberation.deliberation_id,
                task_id=request.deliberation.task_id,
                role=request.deliberation.role,
            )
            for request in requests
        ],
    )


def plan_rejected(refusal: Refusal) -> PlanRejected:
    """The answer to an approval given up on, with what could be read of it, however broken it is."""
    if refusal.incoming is not None:
        approval: PlanApproved = refusal.incoming.payload
        approval_id, story_id, plan_id = refusal.incoming.envelope.event_id, approval.story_id, approval.plan_id
    else:
        approval_id = refusal.headers.get(MSG_ID) or _id_of_unreadable(refusal)
        story_id, plan_id = _ids_in(refusal.body)
    return PlanRejected(
        approval_id=approval_id,
        original_subject=refusal.subject,
        reasons=[bounded_reason(reason) for reason in refusal.reasons],
        story_id=story_id,
        plan_id=plan_id,
    )


def _id_of_unreadable(refusal: Refusal) -> str:
    # The id a legacy approval gets when it can be read (services/mesh/decoding.py), so both agree.
    return body_event_id("legacy", refusal.subject, refusal.body)


def _ids_in(body: bytes) -> tuple[str, str]:
    """story_id and plan_id, when the body is a JSON object that has them as strings; else empty."""
    try:
        document = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return "", ""
    if not isinstance(document, dict):
        return "", ""
    return _readable_id(document.get("story_id")), _readable_id(document.get("plan_id"))


def _readable_id(value: object) -> str:
    # As long as the contract allows an id to be (NonEmpty), so a hostile body cannot swell the answer.
    return value if isinstance(value, str) and len(value) <= MAX_ID_CHARS else ""
