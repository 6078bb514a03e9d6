"""Composition root of the projection service: the read models and the queries on them."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

from nats.js import JetStreamContext

from contracts import catalog, queries
from services.mesh.deadletters import DeadLetter, dead_letter_event
from services.mesh.publishing import EventPublisher
from services.mesh.queries import serve
from services.mesh.runtime import Background, Mesh
from services.mesh.settings import Settings
from services.projection.adapters.falkordb_graph import FalkorGraphStore
from services.projection.adapters.nats_lease import NatsLease
from services.projection.adapters.neo4j_graph import Neo4jGraphStore
from services.projection.adapters.valkey_kv import ValkeyStore
from services.projection.context import load_scopes
from services.projection.graph_model import graph_writes
from services.projection.handlers import QueryHandlers
from services.projection.kv_model import kv_writes
from services.projection.leadership import Leadership
from services.projection.projector import Projector, Reject
from services.projection.reads import ReadModels
from streams.definitions import GRAPH_PROJECTION, KV_PROJECTION

SERVICE = catalog.PROJECTION


def graph_store(settings: Settings):
    uri, _ = settings.require_read_models()
    if uri.startswith(("neo4j://", "neo4j+s://", "bolt://", "bolt+s://")):
        return Neo4jGraphStore(uri, settings.graph_user, settings.graph_password or "", database=settings.graph_name,
                               retention_s=settings.read_model_retention_s)
    return FalkorGraphStore(uri, base=settings.graph_name, retention_s=settings.read_model_retention_s)


def kv_store(settings: Settings) -> ValkeyStore:
    _, url = settings.require_read_models()
    return ValkeyStore(url, base=settings.kv_prefix, retention_s=settings.read_model_retention_s)


def projectors(settings: Settings, reject: Reject | None = None) -> list[Projector]:
    """The graph and the KV projections over their stores: what the service follows and a rebuild refills."""
    return [
        Projector(GRAPH_PROJECTION, graph_store(settings), graph_writes, reject),
        Projector(KV_PROJECTION, kv_store(settings), kv_writes, reject),
    ]


def dead_letterer(publisher: EventPublisher) -> Reject:
    async def reject(letter: DeadLetter, reason: str) -> None:
        outgoing, cause = dead_letter_event(letter, reason)
        await publisher.publish(outgoing, cause=cause)

    return reject


async def wire(mesh: Mesh) -> list[Background]:
    graph, kv = projectors(mesh.settings, dead_letterer(mesh.publisher))
    handlers = QueryHandlers(ReadModels(graph.store, kv.store), load_scopes(mesh.settings.context_budget_tokens))
    answers = {
        queries.SHOW_DELIBERATION: handlers.on_show_deliberation,
        queries.LIST_DELIBERATIONS: handlers.on_list_deliberations,
        queries.SHOW_STORY: handlers.on_show_story,
        queries.AGENT_CONTEXT: handlers.on_get_agent_context,
    }
    for spec, answer in answers.items():
        serve(mesh.broker, spec, answer, queue=SERVICE)
    # Every replica answers queries; each projection is written by the one replica holding its lease.
    holder = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    graph_lead, kv_lead = [await leadership(mesh.js, projector, holder) for projector in (graph, kv)]
    # The runtime calls the closes in this order once both are cancelled, so no write follows a release.
    return [
        Background("graph-lease", graph_lead.run, close=graph_lead.release),
        Background("kv-lease", kv_lead.run, close=_release_and_close(kv_lead, graph, kv)),
    ]


async def leadership(js: JetStreamContext, projector: Projector, holder: str, key: str | None = None) -> Leadership:
    """The projection's followers, run while `holder` holds the projection's lease (its name, unless `key`)."""
    lease = await NatsLease.open(js, key or projector.spec.name, holder)

    async def follow(token: int) -> None:
        sweeper = asyncio.create_task(projector.sweep_expired(), name=f"{projector.spec.name}-expiry")
        try:
            await projector.follow_streams(js, fence=token)
        finally:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)

    return Leadership(projector.spec.name, lease, follow)


def _release_and_close(leadership: Leadership, *projectors: Projector):
    async def close() -> None:
        await leadership.release()
        for projector in projectors:
            await projector.store.close()

    return close
