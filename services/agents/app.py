"""Composition root of the agents service."""

from __future__ import annotations

import os

import ray

from contracts import catalog
from services.agents.adapters.llm import LlmConfig
from services.agents.adapters.ray_agents import NAMESPACE, AgentPool
from services.agents.handlers import AgentHandlers
from services.mesh.consuming import DurableConsumer
from services.mesh.runtime import Binding, Mesh
from streams.definitions import AGENTS_PROPOSALS

SERVICE = catalog.AGENTS


def connect_ray(address: str | None) -> None:
    """Join the given cluster, or start a local one when no address is set."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(
        address=address,
        namespace=NAMESPACE,
        include_dashboard=False,
        log_to_driver=False,
        ignore_reinit_error=True,
    )


async def wire(mesh: Mesh) -> list[Binding]:
    settings = mesh.settings
    connect_ray(settings.ray_address)
    config = LlmConfig(
        base_url=settings.require_llm(),
        timeout_s=settings.llm_timeout_s,
        api_key=settings.llm_api_key,
    )
    handlers = AgentHandlers(
        pool=AgentPool(config, max_concurrency=settings.agent_concurrency),
        model=settings.llm_model,
        max_deliveries=AGENTS_PROPOSALS.max_deliveries,
    )
    routes = {catalog.PROPOSAL_REQUESTED.subject: handlers.on_proposal_requested}
    consumer = DurableConsumer(AGENTS_PROPOSALS, routes, mesh.publisher)
    return [Binding(consumer, max_workers=settings.agent_concurrency)]
