"""Composition root of the planning service."""

from __future__ import annotations

import logging

from contracts import catalog
from services.councils.directory import CouncilDirectory, seed_default_councils
from services.mesh.consuming import DurableConsumer
from services.mesh.runtime import Binding, Mesh
from services.planning.handlers import PlanningHandlers
from streams.definitions import PLANNING_APPROVALS

SERVICE = catalog.PLANNING

log = logging.getLogger("fleet.planning")


async def wire(mesh: Mesh) -> list[Binding]:
    councils = CouncilDirectory(mesh.js)
    if await seed_default_councils(councils, mesh.publisher, by=SERVICE):
        log.info("no council was ever configured: seeded the default councils (5 roles x 3 agents)")
    handlers = PlanningHandlers(councils)
    routes = {
        catalog.PLAN_APPROVED.subject: handlers.on_plan_approved,
        # Legacy approvals arrive upcast to v1, so the same handler serves both.
        catalog.LEGACY_PLAN_APPROVED.subject: handlers.on_plan_approved,
    }
    return [Binding(DurableConsumer(PLANNING_APPROVALS, routes, mesh.publisher), max_workers=4)]
