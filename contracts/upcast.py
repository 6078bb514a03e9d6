"""Upcasters: older payload versions become the current one on read."""

from __future__ import annotations

from contracts.events import (
    Event,
    LegacyPlanApproved,
    LegacyStoryTransitioned,
    PlanApproved,
    PlannedTask,
    StoryTransitioned,
)


def plan_as_task(story_id: str, plan_id: str) -> PlannedTask:
    """With no tasks, the deliberation topic is the plan itself."""
    return PlannedTask(
        task_id=plan_id,
        title=f"Plan {plan_id} of story {story_id}",
        description=(
            f"Plan {plan_id} for story {story_id} was approved without a task breakdown. "
            "Propose how your role should carry out this plan."
        ),
    )


def upcast_v0_v1(legacy: LegacyPlanApproved) -> PlanApproved:
    return PlanApproved(
        story_id=legacy.story_id,
        plan_id=legacy.plan_id,
        approved_by=legacy.approved_by,
        roles=legacy.roles,
        tasks=[plan_as_task(legacy.story_id, legacy.plan_id)],
    )


def upcast_legacy_transition(legacy: LegacyStoryTransitioned) -> StoryTransitioned:
    """The legacy `timestamp` is dropped: when it happened is the envelope's `occurred_at`."""
    return StoryTransitioned(
        story_id=legacy.story_id,
        from_state=legacy.from_state,
        to_state=legacy.to_state,
        transitioned_by=legacy.transitioned_by,
    )


UPCASTERS = {LegacyPlanApproved: upcast_v0_v1, LegacyStoryTransitioned: upcast_legacy_transition}


def upcast(payload: Event) -> Event:
    """Apply upcasters until the payload is the current version of its event."""
    while (step := UPCASTERS.get(type(payload))) is not None:
        payload = step(payload)
    return payload
