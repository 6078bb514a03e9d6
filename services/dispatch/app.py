"""Composition root of the dispatch service."""

from __future__ import annotations

from contracts import catalog
from services.dispatch.domain import Claim
from services.dispatch.handlers import DispatchHandlers
from services.mesh.consuming import DurableConsumer
from services.mesh.kv import VersionedStore
from services.mesh.messages import utc_now
from services.mesh.runtime import Binding, Mesh
from streams.definitions import DISPATCH_CLAIMS, DISPATCH_REQUESTS

SERVICE = catalog.DISPATCH


async def wire(mesh: Mesh) -> list[Binding]:
    handlers = DispatchHandlers(claims=VersionedStore(mesh.js, DISPATCH_CLAIMS, Claim), clock=utc_now)
    routes = {catalog.DELIBERATION_REQUESTED.subject: handlers.on_deliberation_requested}
    return [Binding(DurableConsumer(DISPATCH_REQUESTS, routes, mesh.publisher), max_workers=4)]
