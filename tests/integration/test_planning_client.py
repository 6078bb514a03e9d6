"""Upstream's client on a real nats-server: an approval is stored once, and its answers are followed in the plan's
order (accepted, results, conclusion), this plan's only, to the rejection or the conclusion. The spec plays the
mesh's part, publishing the answers as planning and the collector would."""

from __future__ import annotations

import asyncio
import contextlib

from contracts import catalog
from contracts.events import (
    DeliberationCompleted,
    DeliberationFailed,
    DeliberationOutcome,
    Phase,
    PlanAccepted,
    PlanApproved,
    PlanConcluded,
    PlannedDeliberation,
    PlannedTask,
    PlanRejected,
    Role,
    Winner,
)
from services.mesh.messages import Outgoing
from services.mesh.publishing import EventPublisher
from services.planning.client import Approval, approve_plan, follow_plan

WINNER = Winner(agent_id="dev-1", content="Use a token bucket.", score=7.0, revisions=1)


def approval_of(unique: str, roles=(Role.DEV, Role.QA)) -> PlanApproved:
    return PlanApproved(story_id=f"s-{unique}", plan_id=f"p-{unique}", approved_by="alice", roles=list(roles),
                        tasks=[PlannedTask(task_id="t", title="Throttle logins")])


def completed(approval: PlanApproved, deliberation: str, role: Role) -> DeliberationCompleted:
    return DeliberationCompleted(
        deliberation_id=deliberation, story_id=approval.story_id, plan_id=approval.plan_id, task_id="t", role=role,
        winner=WINNER, ranking=[], rationale="simplest", decided_by="architect-1", duration_ms=1200)


def failed(approval: PlanApproved, deliberation: str, role: Role) -> DeliberationFailed:
    return DeliberationFailed(deliberation_id=deliberation, story_id=approval.story_id, plan_id=approval.plan_id,
                              task_id="t", role=role, phase=Phase.PROPOSE, reason="quorum not met", duration_ms=900)


def accepted(approval: PlanApproved, sent: Approval) -> PlanAccepted:
    return PlanAccepted(
        story_id=approval.story_id, plan_id=approval.plan_id, approved_by="alice", approval_id=sent.approval_id,
        deliberations=[PlannedDeliberation(deliberation_id=d, task_id="t", role=r)
                       for d, r in zip(sent.deliberation_ids, approval.roles, strict=True)])


def concluded(approval: PlanApproved, sent: Approval) -> PlanConcluded:
    return PlanConcluded(
        story_id=approval.story_id, plan_id=approval.plan_id, completed=1, failed=1,
        outcomes=[DeliberationOutcome(deliberation_id=sent.deliberation_ids[0], task_id="t", role=Role.DEV,
                                      outcome="completed", winner_id="dev-1"),
                  DeliberationOutcome(deliberation_id=sent.deliberation_ids[1], task_id="t", role=Role.QA,
                                      outcome="failed", reason="quorum not met")])


async def answer(js, *events) -> None:
    mesh = EventPublisher(js, producer="planning")
    for index, event in enumerate(events):
        await mesh.publish(Outgoing(event, event_id=f"{type(event).__name__}-{event.aggregate_id()}-{index}"))


async def followed(js, sent: Approval) -> list:
    async with asyncio.timeout(20):
        return [update async for update in follow_plan(js, sent)]


async def test_the_answers_come_in_the_plans_order_for_this_plan_only_and_end_at_its_conclusion(js, unique):
    approval, other = approval_of(unique), approval_of(f"{unique}-other", roles=[Role.DEV])
    sent = await approve_plan(js, approval, by="upstream-spec")
    [elsewhere] = (await approve_plan(js, other, by="upstream-spec")).deliberation_ids
    dev, qa = sent.deliberation_ids

    await answer(js, accepted(approval, sent), completed(other, elsewhere, Role.DEV),
                 completed(approval, dev, Role.DEV), failed(approval, qa, Role.QA), concluded(approval, sent),
                 completed(approval, dev, Role.DEV))

    updates = await followed(js, sent)
    assert isinstance(updates[0], PlanAccepted) and isinstance(updates[-1], PlanConcluded)
    assert sorted((type(u).__name__, u.deliberation_id) for u in updates[1:-1]) == sorted(
        [("DeliberationCompleted", dev), ("DeliberationFailed", qa)])
    assert updates[-1].completed == 1 and updates[-1].failed == 1


async def test_a_rejection_of_this_approval_ends_it_and_another_approvals_rejection_does_not(js, unique):
    approval = approval_of(unique)
    sent = await approve_plan(js, approval, by="upstream-spec")
    theirs = PlanRejected(approval_id=f"someone-else-{unique}", original_subject="planning.plan.approved.v1",
                          reasons=["not ours"])
    ours = PlanRejected(approval_id=sent.approval_id, original_subject="planning.plan.approved.v1",
                        story_id=approval.story_id, plan_id=approval.plan_id, reasons=["no council for role QA"])

    await answer(js, theirs, ours)

    assert await followed(js, sent) == [ours]


async def test_approving_the_same_plan_again_is_a_duplicate_whose_answers_are_still_found(js, unique):
    approval = approval_of(unique)
    first = await approve_plan(js, approval, by="upstream-spec")
    await answer(js, accepted(approval, first), completed(approval, first.deliberation_ids[0], Role.DEV),
                 failed(approval, first.deliberation_ids[1], Role.QA), concluded(approval, first))

    again = await approve_plan(js, approval, by="upstream-spec")

    assert again.duplicate and not first.duplicate
    assert again.approval_id == first.approval_id and again.deliberation_ids == first.deliberation_ids
    assert [type(u).__name__ for u in await followed(js, again)][::3] == ["PlanAccepted", "PlanConcluded"]


async def test_a_follower_stopped_early_leaves_nothing_running(js, unique):
    approval = approval_of(unique)
    sent = await approve_plan(js, approval, by="upstream-spec")
    await answer(js, accepted(approval, sent))

    async with contextlib.aclosing(follow_plan(js, sent)) as updates:
        first = await asyncio.wait_for(anext(updates), 20)

    assert isinstance(first, PlanAccepted)
    assert not [task for task in asyncio.all_tasks() if task.get_name().startswith("read ")]


async def test_a_message_that_breaks_the_contract_on_an_answer_subject_is_skipped_not_fatal(js, unique):
    approval = approval_of(unique)
    sent = await approve_plan(js, approval, by="upstream-spec")
    await js.publish(catalog.PLAN_ACCEPTED.subject, b"not json", headers={"Nats-Msg-Id": f"junk-{unique}"})
    await answer(js, accepted(approval, sent), completed(approval, sent.deliberation_ids[0], Role.DEV),
                 failed(approval, sent.deliberation_ids[1], Role.QA), concluded(approval, sent))

    assert [type(u).__name__ for u in await followed(js, sent)][::3] == ["PlanAccepted", "PlanConcluded"]
