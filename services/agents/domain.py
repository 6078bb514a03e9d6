"""The chat request for a turn, and how its answer becomes an outcome event. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from contracts.envelope import deterministic_id
from contracts.events import (
    Choice,
    Phase,
    TurnCompleted,
    TurnFailed,
    TurnRequested,
    Verdict,
)
from services.agents.prompts import Part, fit, prompt_byte_budget, system_prompt, user_prompt_parts
from services.agents.structured import ResponseFormat, answer_token_bound, answer_type, response_format
from services.mesh.messages import Outgoing
from services.mesh.redaction import redact


class ChatMessage(msgspec.Struct, frozen=True):
    role: str
    content: str


class ChatRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An OpenAI-compatible /v1/chat/completions request body."""

    model: str
    messages: list[ChatMessage]
    temperature: float
    max_tokens: int
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    # vLLM's hook into the model's chat template, e.g. to switch Qwen3's thinking off.
    chat_template_kwargs: dict[str, Any] | None = None


class Completion(msgspec.Struct, frozen=True, kw_only=True):
    content: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int


class LlmFailure(msgspec.Struct, frozen=True, kw_only=True):
    """A typed LLM or runtime error: what the agent reports instead of an answer."""

    error_class: str
    message: str


# --- requests ------------------------------------------------------------------------------


def max_tokens_for(request: TurnRequested, budget: int) -> int:
    """A free-text turn gets the configured budget (half for a critique); a JSON answer what it can ever need."""
    if (kind := answer_type(request)) is not None:
        return answer_token_bound(kind)
    if request.turn.phase == Phase.CRITIQUE:
        return max(budget // 2, 64)
    return budget


def chat_request(
    request: TurnRequested, *, model: str, max_tokens: int, dialect: ResponseFormat, context: str = "",
    thinking: bool = True, context_window: int | None = None,
) -> ChatRequest:
    """The chat completion for a turn; with `context_window` (tokens), the prompt is cut to leave the answer room."""
    kind = answer_type(request)
    answer_tokens = max_tokens_for(request, max_tokens)
    # Upstream task texts may carry credentials; nothing secret reaches the LLM.
    system = redact(system_prompt(request))
    parts = [Part(redact(part.text), part.cuttable) for part in user_prompt_parts(request, context)]
    budget = None if context_window is None else prompt_byte_budget(context_window, answer_tokens, system)
    messages = [ChatMessage("system", system), ChatMessage("user", fit(parts, budget))]
    return ChatRequest(
        model=request.agent.model or model,
        messages=messages,
        temperature=request.agent.temperature,
        max_tokens=answer_tokens,
        seed=request.agent.seed,
        response_format=response_format(kind, dialect) if kind is not None else None,
        # Thinking tokens count against max_tokens and are not the answer; a hybrid model can skip them.
        chat_template_kwargs=None if thinking else {"enable_thinking": False},
    )


# --- outcomes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GivenContext:
    """The context a turn was written with, or why it had none."""

    text: str = ""
    context_hash: str | None = None
    error: str | None = None


NO_CONTEXT = GivenContext()


def outcome(
    request: TurnRequested, answer: Completion | LlmFailure, *, structured: Verdict | Choice | None = None,
    attempts: int = 1, context: GivenContext = NO_CONTEXT,
) -> Outgoing:
    """The one outcome event of a turn; its id is the same whatever the outcome."""
    common = {"deliberation": request.deliberation, "turn": request.turn, "agent": request.agent}
    if isinstance(answer, Completion):
        event = TurnCompleted(
            **common,
            content=answer.content,
            verdict=structured if isinstance(structured, Verdict) else None,
            choice=structured if isinstance(structured, Choice) else None,
            model=answer.model,
            temperature=request.agent.temperature,
            seed=request.agent.seed,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            latency_ms=answer.latency_ms,
            attempts=attempts,
            context_hash=context.context_hash,
            context_error=context.error,
        )
    else:
        event = TurnFailed(**common, error_class=answer.error_class, message=answer.message)
    event_id = deterministic_id("turn.outcome", request.deliberation.deliberation_id, request.turn.key)
    return Outgoing(event, event_id=event_id)


def given_up(request: TurnRequested, reason: str) -> Outgoing:
    """The outcome of a request the service gave up on, so the deliberation does not wait for it."""
    return outcome(request, LlmFailure(error_class="AgentGaveUp", message=reason))
