"""How a turn's answer becomes its one outcome event. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.envelope import deterministic_id
from contracts.events import Choice, TurnCompleted, TurnFailed, TurnRequested, Verdict
from services.agents.domain import Completion, LlmFailure
from services.mesh.messages import Outgoing


@dataclass(frozen=True)
class GivenContext:
    """The context a turn was written with, or why it had none."""

    text: str = ""
    context_hash: str | None = None
    error: str | None = None


NO_CONTEXT = GivenContext()


def outcome(
    request: TurnRequested, answer: Completion | LlmFailure, *, structured: Verdict | Choice | None = None,
    attempts: int = 1, context: GivenContext = NO_CONTEXT, prompt_cut_chars: int = 0,
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
            prompt_cut_chars=prompt_cut_chars,
        )
    else:
        event = TurnFailed(**common, error_class=answer.error_class, message=answer.message)
    event_id = deterministic_id("turn.outcome", request.deliberation.deliberation_id, request.turn.key)
    return Outgoing(event, event_id=event_id)


def given_up(request: TurnRequested, reason: str) -> Outgoing:
    """The outcome of a request the service gave up on, so the deliberation does not wait for it."""
    return outcome(request, LlmFailure(error_class="AgentGaveUp", message=reason))
