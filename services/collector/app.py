"""Composition root of the collector service."""

from __future__ import annotations

from functools import partial

from contracts import catalog
from services.collector.handlers import CollectorHandlers, Record
from services.mesh.consuming import DurableConsumer
from services.mesh.kv import VersionedStore
from services.mesh.messages import utc_now
from services.mesh.publishing import cancel_schedule
from services.mesh.runtime import Binding, Mesh
from streams.definitions import COLLECTOR_DELIBERATIONS, COLLECTOR_DELIBERATIONS_IN, COLLECTOR_TURNS

SERVICE = catalog.COLLECTOR


async def wire(mesh: Mesh) -> list[Binding]:
    handlers = CollectorHandlers(
        store=VersionedStore(mesh.js, COLLECTOR_DELIBERATIONS, Record),
        cancel_schedule=partial(cancel_schedule, mesh.js, catalog.DEADLINE_PASSED.subject),
        clock=utc_now,
    )
    lifecycle = {
        catalog.DELIBERATION_STARTED.subject: handlers.on_deliberation_started,
        catalog.DEADLINE_PASSED.subject: handlers.on_deadline_passed,
        catalog.DELIBERATION_CANCEL_REQUESTED.subject: handlers.on_deliberation_cancel_requested,
        catalog.DELIBERATION_RETRY_REQUESTED.subject: handlers.on_deliberation_retry_requested,
    }
    outcomes = {
        catalog.TURN_COMPLETED.subject: handlers.on_turn_completed,
        catalog.TURN_FAILED.subject: handlers.on_turn_failed,
    }
    # Every outbox goes once its events are published: the stored record holds no outbox for ever.
    return [
        Binding(DurableConsumer(COLLECTOR_DELIBERATIONS_IN, lifecycle, mesh.publisher,
                                after_published=dict.fromkeys(lifecycle, handlers.forget_outbox)), max_workers=4),
        Binding(DurableConsumer(COLLECTOR_TURNS, outcomes, mesh.publisher,
                                after_published=dict.fromkeys(outcomes, handlers.forget_outbox)), max_workers=4),
    ]
