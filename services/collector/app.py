"""Composition root of the collector service."""

from __future__ import annotations

from contracts import catalog
from services.collector.domain import Collected
from services.collector.handlers import CollectorHandlers
from services.mesh.consuming import DurableConsumer
from services.mesh.kv import VersionedStore
from services.mesh.publishing import utc_now
from services.mesh.runtime import Binding, Mesh
from streams.definitions import COLLECTOR_DELIBERATIONS, COLLECTOR_OUTCOMES

SERVICE = catalog.COLLECTOR


async def wire(mesh: Mesh) -> list[Binding]:
    handlers = CollectorHandlers(store=VersionedStore(mesh.js, COLLECTOR_DELIBERATIONS, Collected), clock=utc_now)
    routes = {
        catalog.PROPOSAL_COMPLETED.subject: handlers.on_proposal_completed,
        catalog.PROPOSAL_FAILED.subject: handlers.on_proposal_failed,
    }
    return [Binding(DurableConsumer(COLLECTOR_OUTCOMES, routes, mesh.publisher), max_workers=4)]
