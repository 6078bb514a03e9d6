"""Composition root of the planning service."""

from __future__ import annotations

import logging

from contracts import catalog
from services.councils.directory import CouncilDirectory, seed_default_councils
from services.mesh.consuming import DurableConsumer
from services.mesh.kv import VersionedStore
from services.mesh.runtime import Binding, Mesh
from services.planning.handlers import PlanningHandlers, PlanOutcomeHandlers, on_approval_refused
from services.planning.plan_outcomes import PlanOutcomes
from streams.definitions import PLAN_OUTCOMES, PLANNING_APPROVALS, PLANNING_PLAN_OUTCOMES

SERVICE = catalog.PLANNING

log = logging.getLogger("fleet.planning")


async def wire(mesh: Mesh) -> list[Binding]:
    councils = CouncilDirectory(mesh.js)
    if await seed_default_councils(councils, mesh.publisher, by=SERVICE):
        log.info("no council was ever configured: seeded the default councils (5 roles x 3 agents)")
    handlers = PlanningHandlers(councils)
    # Legacy events arrive upcast to v1, so one handler serves both forms. Any other subject of the
    # ingress stream is dead-lettered by the consumer, once, naming these.
    ingress = {
        catalog.PLAN_APPROVED.subject: handlers.on_plan_approved,
        catalog.LEGACY_PLAN_APPROVED.subject: handlers.on_plan_approved,
        catalog.STORY_TRANSITIONED.subject: handlers.on_story_transitioned,
        catalog.LEGACY_STORY_TRANSITIONED.subject: handlers.on_story_transitioned,
    }
    # Every approval gets an answer: accepted by its handler, or rejected here whenever it is given up on.
    refused = dict.fromkeys((catalog.PLAN_APPROVED.subject, catalog.LEGACY_PLAN_APPROVED.subject), on_approval_refused)
    outcomes = PlanOutcomeHandlers(VersionedStore(mesh.js, PLAN_OUTCOMES, PlanOutcomes))
    plans = {
        catalog.PLAN_ACCEPTED.subject: outcomes.on_plan_accepted,
        catalog.DELIBERATION_REQUESTED.subject: outcomes.on_deliberation_requested,
        catalog.DELIBERATION_COMPLETED.subject: outcomes.on_deliberation_completed,
        catalog.DELIBERATION_FAILED.subject: outcomes.on_deliberation_failed,
    }
    return [
        Binding(DurableConsumer(PLANNING_APPROVALS, ingress, mesh.publisher, give_up=refused), max_workers=4),
        # One at a time: a plan's events fold in order, without compare-and-set retries among workers.
        Binding(DurableConsumer(PLANNING_PLAN_OUTCOMES, plans, mesh.publisher)),
    ]
