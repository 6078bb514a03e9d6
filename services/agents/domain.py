"""Prompts and outcomes of an agent's work. Pure: no I/O."""

from __future__ import annotations

import msgspec

from contracts.envelope import deterministic_id
from contracts.events import ProposalCompleted, ProposalFailed, ProposalRequested, Role
from services.mesh.publishing import Outgoing

ROLE_FOCUS = {
    Role.DEV: "clean, maintainable, tested code",
    Role.QA: "test strategy, edge cases and the bugs others will miss",
    Role.ARCHITECT: "design, scalability, boundaries and proven patterns",
    Role.DEVOPS: "deployment, pipelines, Kubernetes and operability",
    Role.DATA: "data models, pipelines and safe migrations",
}


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


class Completion(msgspec.Struct, frozen=True, kw_only=True):
    content: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int


class LlmFailure(msgspec.Struct, frozen=True, kw_only=True):
    """A typed LLM or runtime error: what the agent reports instead of a proposal."""

    error_class: str
    message: str


def system_prompt(role: Role) -> str:
    return (
        f"You are a senior {role.value} engineer on a council of agents that deliberates on "
        f"software engineering tasks. Your focus: {ROLE_FOCUS[role]}. "
        "Write a concrete proposal for the task: the approach, the key steps, and the main risks."
    )


def user_prompt(request: ProposalRequested) -> str:
    lines = [f"Task {request.task.task_id}: {request.task.title}"]
    if request.task.description:
        lines.append(request.task.description)
    if request.constraints:
        lines.append("Constraints:")
        lines += [f"- {constraint}" for constraint in request.constraints]
    if request.rubric:
        lines.append("Your proposal will be judged on:")
        lines += [f"- {criterion}: {meaning}" for criterion, meaning in request.rubric.items()]
    return "\n".join(lines)


def chat_request(request: ProposalRequested, model: str) -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=[
            ChatMessage("system", system_prompt(request.agent.role)),
            ChatMessage("user", user_prompt(request)),
        ],
        temperature=request.agent.temperature,
        max_tokens=request.agent.max_tokens,
    )


def outcome(request: ProposalRequested, answer: Completion | LlmFailure) -> Outgoing:
    """The one outcome event of a proposal request; its id is the same whatever the outcome."""
    common = {
        "deliberation": request.deliberation,
        "agent_id": request.agent.agent_id,
        "council": request.council,
        "started_at": request.started_at,
    }
    if isinstance(answer, Completion):
        event = ProposalCompleted(
            **common,
            content=answer.content,
            model=answer.model,
            temperature=request.agent.temperature,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            latency_ms=answer.latency_ms,
        )
    else:
        event = ProposalFailed(**common, error_class=answer.error_class, message=answer.message)
    event_id = deterministic_id("proposal.outcome", request.deliberation.deliberation_id, request.agent.agent_id)
    return Outgoing(event, event_id=event_id)


def given_up(request: ProposalRequested, reason: str) -> Outgoing:
    """The outcome of a request the service gave up on, so the deliberation does not wait for it."""
    return outcome(request, LlmFailure(error_class="AgentGaveUp", message=reason))
