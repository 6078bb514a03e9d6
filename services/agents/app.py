"""Composition root of the agents service."""

from __future__ import annotations

import logging
import os
import signal
import threading

import ray

from contracts import catalog
from services.agents.adapters.context import read_model_context
from services.agents.adapters.llm import llm_config
from services.agents.adapters.ray_agents import NAMESPACE, ActorResources, AgentPool
from services.agents.handlers import STRUCTURED_ATTEMPTS, AgentHandlers, on_turn_request_given_up
from services.agents.prompts import TEMPLATE_TOKENS
from services.mesh.consuming import DurableConsumer
from services.mesh.runtime import Binding, Mesh
from services.mesh.settings import Settings, SettingsError
from streams.definitions import AGENTS_TURNS

# Room between the LLM timeout and the handler deadline, so a slow LLM is a typed LlmTimeout outcome.
DEADLINE_MARGIN_S = 10.0

SERVICE = catalog.AGENTS

log = logging.getLogger("fleet.agents")


def connect_ray(address: str | None) -> None:
    """Join the given cluster, or start a local one when no address is set."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # ray.init makes SIGTERM a bare sys.exit, which skipped the service's graceful stop: a rollout then cut
    # the turns in hand without handing them back, and they waited out the 150 s ack wait. The handler the
    # service had (FastStream's drain) is put back.
    graceful_stop = signal.getsignal(signal.SIGTERM)
    ray.init(
        address=address,
        namespace=NAMESPACE,
        include_dashboard=False,
        log_to_driver=False,
        ignore_reinit_error=True,
    )
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, graceful_stop)


def log_budgets_the_window_cannot_hold(settings: Settings) -> None:
    """Said once at start: a context budget the model's window cannot hold is cut at every turn, not refused."""
    room = settings.llm_context_tokens - settings.llm_max_tokens - TEMPLATE_TOKENS
    over = {role: budget for role, budget in settings.context_budget_tokens.items() if budget > room}
    if over:
        log.info(
            "the model's context (FLEET_LLM_CONTEXT_TOKENS=%d, less FLEET_LLM_MAX_TOKENS=%d for the answer) holds "
            "under %d tokens of prompt; a read-model context up to its budget (FLEET_CONTEXT_BUDGET_TOKENS: %s) "
            "is cut to fit at each turn", settings.llm_context_tokens, settings.llm_max_tokens, room,
            ", ".join(f"{role} {budget}" for role, budget in over.items()),
        )


async def wire(mesh: Mesh) -> list[Binding]:
    settings = mesh.settings
    longest_s = (AGENTS_TURNS.handler_timeout_s - DEADLINE_MARGIN_S) / STRUCTURED_ATTEMPTS
    if settings.llm_timeout_s > longest_s:
        raise SettingsError(
            f"FLEET_LLM_TIMEOUT_S={settings.llm_timeout_s:g} must be at most {longest_s:g}: a judge or "
            f"architect turn may call the LLM {STRUCTURED_ATTEMPTS} times within the agents' handler deadline "
            f"of {AGENTS_TURNS.handler_timeout_s:g}s (AGENTS_TURNS in streams/definitions.py)"
        )
    log_budgets_the_window_cannot_hold(settings)
    connect_ray(settings.ray_address)
    pool = AgentPool(llm_config(settings), max_concurrency=settings.agent_concurrency,
                     resources=ActorResources(settings.agent_actor_cpus, settings.agent_actor_memory_mib))
    handlers = AgentHandlers(
        pool=pool,
        model=settings.llm_model,
        max_tokens=settings.llm_max_tokens,
        context=read_model_context(mesh.client, settings.context_timeout_s),
        context_window=settings.llm_context_tokens,
    )
    subject = catalog.TURN_REQUESTED.subject
    consumer = DurableConsumer(
        AGENTS_TURNS,
        {subject: handlers.on_turn_requested},
        mesh.publisher,
        give_up={subject: on_turn_request_given_up},
    )
    return [Binding(consumer, max_workers=settings.agent_concurrency)]
