"""Composition root of the planning service."""

from __future__ import annotations

from contracts import catalog
from services.mesh.consuming import DurableConsumer
from services.mesh.runtime import Binding, Mesh
from services.planning.handlers import on_plan_approved
from streams.definitions import PLANNING_APPROVALS

SERVICE = catalog.PLANNING


async def wire(mesh: Mesh) -> list[Binding]:
    routes = {
        catalog.PLAN_APPROVED.subject: on_plan_approved,
        # Legacy approvals arrive upcast to v1, so the same handler serves both.
        catalog.LEGACY_PLAN_APPROVED.subject: on_plan_approved,
    }
    return [Binding(DurableConsumer(PLANNING_APPROVALS, routes, mesh.publisher), max_workers=4)]
