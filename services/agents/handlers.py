"""The agents service's handler, and what giving up on a request publishes."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec

from contracts.events import TurnRequested
from services.agents.adapters.ray_agents import AgentPool
from services.agents.adapters.wire import LlmContextExceeded
from services.agents.domain import Completion, LlmFailure, Prompt, prompt_for
from services.agents.outcomes import NO_CONTEXT, GivenContext, given_up, outcome
from services.agents.structured import StructuredOutputInvalid, answer_type, parse_structured
from services.mesh.messages import Incoming, Outgoing, Refusal
from services.mesh.metrics import LLM_SECONDS, LLM_TOKENS, STRUCTURED_ANSWERS

STRUCTURED_ATTEMPTS = 2
RETRY_TEMPERATURE = 0.7


# Asks the read models for the context of a turn; judge and select turns are never asked for one.
type ContextSource = Callable[[TurnRequested], Awaitable[GivenContext]]


async def no_context(request: TurnRequested) -> GivenContext:
    return NO_CONTEXT


@dataclass(frozen=True)
class AgentHandlers:
    pool: AgentPool
    model: str
    max_tokens: int
    context: ContextSource = no_context
    # Tokens the model reads and writes per request; None: prompts are never cut to fit.
    context_window: int | None = None

    async def on_turn_requested(self, incoming: Incoming[TurnRequested]) -> list[Outgoing]:
        return [await self.take_turn(incoming.payload)]

    async def take_turn(self, request: TurnRequested) -> Outgoing:
        """The turn's one outcome event. LLM errors come back as typed failures; Ray errors (a dead actor,
        a lost node) raise, so the request is retried while Ray restarts the actor, and given up on after
        the last try."""
        if answer_type(request) is None:
            given = await self.context(request)
            prompt = self._prompt(request, context=given.text)
            answer, prompt = await self._complete(request, prompt, context=given.text)
            return outcome(request, answer, context=given, prompt_cut_chars=prompt.cut_chars)
        prompt = self._prompt(request)
        phase = request.turn.phase.value
        problems = []
        for attempt in range(1, STRUCTURED_ATTEMPTS + 1):
            # A retry with the same seed, or at temperature 0, would repeat the same answer.
            retry = prompt if attempt == 1 else msgspec.structs.replace(
                prompt, seed=(prompt.seed or 0) + attempt - 1, temperature=max(prompt.temperature, RETRY_TEMPERATURE)
            )
            answer, sent = await self._complete(request, retry)
            if isinstance(answer, LlmFailure):
                return outcome(request, answer, attempts=attempt)
            prompt = msgspec.structs.replace(prompt, user=sent.user, cut_chars=sent.cut_chars)
            try:
                structured = parse_structured(request, answer.content)
            except StructuredOutputInvalid as exc:
                STRUCTURED_ANSWERS.labels(phase, "invalid").inc()
                problems.append(f"attempt {attempt}: {exc}")
                continue
            STRUCTURED_ANSWERS.labels(phase, "valid").inc()
            return outcome(request, answer, structured=structured, attempts=attempt, prompt_cut_chars=sent.cut_chars)
        failure = LlmFailure(error_class=StructuredOutputInvalid.__name__, message="; ".join(problems))
        return outcome(request, failure, attempts=STRUCTURED_ATTEMPTS)

    def _prompt(self, request: TurnRequested, context: str = "", *, strict: bool = False) -> Prompt:
        return prompt_for(request, model=self.model, max_tokens=self.max_tokens, context=context,
                          context_window=self.context_window, strict=strict)

    async def _complete(
        self, request: TurnRequested, prompt: Prompt, context: str = "",
    ) -> tuple[Completion | LlmFailure, Prompt]:
        """The answer, and the prompt it answers: cut again by the strict estimate if the server found the
        ordinary one too generous (random letters, long runs of whitespace)."""
        answer = await self._ask(request, prompt)
        if isinstance(answer, LlmFailure) and answer.error_class == LlmContextExceeded.__name__ \
                and self.context_window is not None:
            strict = self._prompt(request, context, strict=True)
            prompt = msgspec.structs.replace(prompt, user=strict.user, cut_chars=strict.cut_chars)
            answer = await self._ask(request, prompt)
        return answer, prompt

    async def _ask(self, request: TurnRequested, prompt: Prompt) -> Completion | LlmFailure:
        began = time.perf_counter()
        answer = await self.pool.complete(request.agent.agent_id, prompt)
        seconds = time.perf_counter() - began
        role, model = request.agent.role.value, prompt.model
        if isinstance(answer, LlmFailure):
            LLM_SECONDS.labels(role, model, answer.error_class).observe(seconds)
        else:
            LLM_SECONDS.labels(role, model, "ok").observe(seconds)
            LLM_TOKENS.labels(role, model, "prompt").inc(answer.prompt_tokens)
            LLM_TOKENS.labels(role, model, "completion").inc(answer.completion_tokens)
        return answer


def on_turn_request_given_up(refusal: Refusal) -> list[Outgoing]:
    # A request that cannot be read names no deliberation to tell: its dead letter is all there is.
    if refusal.incoming is None:
        return []
    request: TurnRequested = refusal.incoming.payload
    return [given_up(request, "; ".join(refusal.reasons))]
