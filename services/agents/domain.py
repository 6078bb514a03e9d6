"""What a turn asks of the model, and what comes back. Pure: no I/O.

The prompt is the model's business, not the wire's: how it is sent (OpenAI's or llama.cpp's dialect,
vLLM's template switches) is the LLM adapter's (adapters/wire.py), and what an answer becomes is
outcomes.py's.
"""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.events import Phase, TurnRequested
from services.agents.prompts import Part, fit, prompt_token_budget, system_prompt, user_prompt_parts
from services.agents.structured import answer_schema, answer_token_bound, answer_type
from services.mesh.redaction import redact


class Prompt(msgspec.Struct, frozen=True, kw_only=True):
    """One request to the model: instructions, the turn's text, sampling, and the answer's schema if any."""

    model: str
    system: str
    user: str
    temperature: float
    max_tokens: int
    seed: int | None = None
    # A judge or select turn's answer: its type's name and JSON schema, which the server enforces.
    answer_name: str | None = None
    answer_schema: dict[str, Any] | None = None
    # Characters of the turn's text cut to fit the model's context (prompts.fit).
    cut_chars: int = 0


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


def prompt_for(
    request: TurnRequested, *, model: str, max_tokens: int, context: str = "", context_window: int | None = None,
    strict: bool = False,
) -> Prompt:
    """The prompt for a turn; with `context_window` (tokens), the turn's text is cut to leave the answer room,
    by the estimate for ordinary text or, `strict`, by one that holds for any text."""
    kind = answer_type(request)
    answer_tokens = max_tokens_for(request, max_tokens)
    # Upstream task texts may carry credentials; nothing secret reaches the LLM.
    system = redact(system_prompt(request))
    parts = [Part(redact(part.text), part.cut) for part in user_prompt_parts(request, context)]
    budget = None if context_window is None else prompt_token_budget(context_window, answer_tokens, system,
                                                                     strict=strict)
    user = fit(parts, budget, strict=strict)
    return Prompt(
        model=request.agent.model or model,
        system=system,
        user=user.text,
        cut_chars=user.cut_chars,
        temperature=request.agent.temperature,
        max_tokens=answer_tokens,
        seed=request.agent.seed,
        answer_name=kind.__name__ if kind is not None else None,
        answer_schema=answer_schema(kind) if kind is not None else None,
    )
