"""Agents as Ray actors: one named actor per agent id and agents replica, each with its own LLM client."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import ray

from services.agents.adapters.llm import LlmClient, LlmConfig
from services.agents.adapters.wire import LlmError
from services.agents.domain import Completion, LlmFailure, Prompt

NAMESPACE = "swe-ai-fleet"


class AgentActor:
    """Runs in its own Ray worker process; returns an answer or a typed failure, never raises."""

    def __init__(self, agent_id: str, config: LlmConfig) -> None:
        self.agent_id = agent_id
        self._client = LlmClient(config)

    async def complete(self, prompt: Prompt) -> Completion | LlmFailure:
        try:
            return await self._client.complete(prompt)
        except LlmError as exc:
            return LlmFailure(error_class=type(exc).__name__, message=str(exc))

    async def close(self) -> None:
        await self._client.close()


@dataclass(frozen=True)
class ActorResources:
    """What one agent's actor asks Ray for (Settings.agent_actor_cpus and agent_actor_memory_mib)."""

    cpus: float = 0.05
    memory_mib: int = 128


class AgentPool:
    """Finds or starts the actor of each agent. Handles are a cache; the actors hold no state.

    Each agents replica has actors of its own: an actor lives as long as the process that made it, so
    actors shared between replicas died under the others' calls whenever one replica stopped (a rolling
    restart failed turns in the replica left, up to four deliveries of one). The name says whose it is.
    """

    def __init__(self, config: LlmConfig, max_concurrency: int = 8,
                 resources: ActorResources = ActorResources()) -> None:  # noqa: B008 - frozen, shared safely
        self._config = config
        self._max_concurrency = max_concurrency
        self._resources = resources
        self._actors: dict[str, ray.actor.ActorHandle] = {}
        self.owner = uuid.uuid4().hex[:8]

    def _actor(self, agent_id: str) -> ray.actor.ActorHandle:
        if agent_id not in self._actors:
            self._actors[agent_id] = (
                ray.remote(AgentActor)
                .options(
                    name=f"agent-{agent_id}@{self.owner}",
                    namespace=NAMESPACE,
                    get_if_exists=True,
                    num_cpus=self._resources.cpus,
                    memory=self._resources.memory_mib * 1024 * 1024,
                    # Over every node with room, not packed onto the first: a lost node takes a share of
                    # the agents, and Ray restarts each on a node that is left (a turn in flight fails
                    # with RayActorError and its message is redelivered to the restarted actor).
                    scheduling_strategy="SPREAD",
                    max_restarts=-1,
                    max_concurrency=self._max_concurrency,
                )
                .remote(agent_id, self._config)
            )
        return self._actors[agent_id]

    async def complete(self, agent_id: str, prompt: Prompt) -> Completion | LlmFailure:
        try:
            return await self._actor(agent_id).complete.remote(prompt)
        except ray.exceptions.RayActorError:
            # The cached handle points at a dead actor: look it up again next time.
            self._actors.pop(agent_id, None)
            raise
