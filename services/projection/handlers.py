"""The projection service's query handlers, one per query."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.events import Role
from contracts.queries import (
    AgentContext,
    DeliberationList,
    DeliberationView,
    GetAgentContext,
    ListDeliberations,
    ShowDeliberation,
    ShowStory,
    StoryView,
)
from services.mesh.queries import NotFound
from services.projection.context import Scope, build_context
from services.projection.reads import ReadModels


@dataclass(frozen=True)
class QueryHandlers:
    read_models: ReadModels
    scopes: dict[Role, Scope]

    async def on_show_deliberation(self, request: ShowDeliberation) -> DeliberationView:
        view = await self.read_models.deliberation(request.deliberation_id)
        if view is None:
            raise NotFound(f"no deliberation {request.deliberation_id!r} in the read model")
        return view

    async def on_list_deliberations(self, request: ListDeliberations) -> DeliberationList:
        return await self.read_models.deliberations(request)

    async def on_show_story(self, request: ShowStory) -> StoryView:
        view = await self.read_models.story(request.story_id)
        if view is None:
            raise NotFound(f"no story {request.story_id!r} in the read model")
        return view

    async def on_get_agent_context(self, request: GetAgentContext) -> AgentContext:
        scope = self.scopes[request.role]
        if request.phase not in scope.phases:
            return AgentContext(text="", context_hash=None)
        facts = await self.read_models.context_facts(request.deliberation)
        return build_context(facts, scope, request.phase)
