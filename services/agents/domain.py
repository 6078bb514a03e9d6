"""What an agent is asked in each phase, and how its answer becomes an outcome event. Pure: no I/O."""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from contracts.envelope import deterministic_id
from contracts.events import (
    Choice,
    Phase,
    Role,
    TurnCompleted,
    TurnFailed,
    TurnRequested,
    Verdict,
)
from services.mesh.publishing import Outgoing
from services.mesh.redaction import redact

ROLE_FOCUS = {
    Role.DEV: "clean, maintainable, tested code",
    Role.QA: "test strategy, edge cases and the bugs others will miss",
    Role.ARCHITECT: "design, scalability, boundaries and proven patterns",
    Role.DEVOPS: "deployment, pipelines, Kubernetes and operability",
    Role.DATA: "data models, pipelines and safe migrations",
}

STRUCTURED_PHASES = frozenset({Phase.JUDGE, Phase.SELECT})
# Room for a short JSON answer; the schema bounds the free-text fields below this.
STRUCTURED_MAX_TOKENS = 320
JUSTIFICATION_MAX_CHARS = 400
RATIONALE_MAX_CHARS = 600
SCORE_RANGE = msgspec.Meta(ge=0, le=10)


class ResponseFormat(enum.StrEnum):
    """How the LLM server is asked for JSON that follows a schema."""

    # OpenAI and vLLM: {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}
    JSON_SCHEMA = "json_schema"
    # llama.cpp's Python server: {"type": "json_object", "schema": ...}
    JSON_OBJECT = "json_object"


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


class StructuredOutputInvalid(ValueError):
    """The answer does not match the schema it was asked to follow."""


# --- structured answers --------------------------------------------------------------------


# Answer types are built from the request, but the same rubric or candidates give the same type: cached,
# so that msgspec builds each type's decoder and JSON schema once, not on every judge and select turn.
ANSWER_TYPES_CACHED = 256


def verdict_type(rubric: dict[str, str]) -> type[msgspec.Struct]:
    """The judge's answer for this rubric: one 0-10 integer per criterion, then a justification."""
    return _verdict_type(tuple(rubric))


@functools.lru_cache(maxsize=ANSWER_TYPES_CACHED)
def _verdict_type(criteria: tuple[str, ...]) -> type[msgspec.Struct]:
    names = {f"criterion_{index}": criterion for index, criterion in enumerate(criteria)}
    criteria = msgspec.defstruct(
        "Criteria",
        [(name, Annotated[int, SCORE_RANGE]) for name in names],
        rename=names,
        forbid_unknown_fields=True,
    )
    return msgspec.defstruct(
        "JudgeAnswer",
        [("criteria", criteria), ("justification", Annotated[str, msgspec.Meta(max_length=JUSTIFICATION_MAX_CHARS)])],
        forbid_unknown_fields=True,
    )


def choice_type(candidates: list[str]) -> type[msgspec.Struct]:
    """The architect's answer: one of the candidates' ids, and why."""
    return _choice_type(tuple(candidates))


@functools.lru_cache(maxsize=ANSWER_TYPES_CACHED)
def _choice_type(candidates: tuple[str, ...]) -> type[msgspec.Struct]:
    return msgspec.defstruct(
        "ArchitectAnswer",
        [
            ("winner_id", Literal[tuple(candidates)]),  # type: ignore[valid-type]
            ("rationale", Annotated[str, msgspec.Meta(min_length=1, max_length=RATIONALE_MAX_CHARS)]),
        ],
        forbid_unknown_fields=True,
    )


def answer_type(request: TurnRequested) -> type[msgspec.Struct] | None:
    if request.turn.phase == Phase.JUDGE:
        return verdict_type(request.brief.rubric)
    if request.turn.phase == Phase.SELECT:
        return choice_type([c.agent_id for c in request.input.candidates])
    return None


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """msgspec puts nested types under $defs; some servers' grammar builders only take inline schemas."""
    definitions = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if (ref := node.get("$ref")) is not None:
                return resolve(definitions[ref.rsplit("/", 1)[1]])
            return {key: resolve(value) for key, value in node.items() if key != "$defs"}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve(schema)


def response_format(kind: type[msgspec.Struct], dialect: ResponseFormat) -> dict[str, Any]:
    schema = _inline_schema(kind)
    if dialect == ResponseFormat.JSON_OBJECT:
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": kind.__name__, "schema": schema, "strict": True}}


@functools.lru_cache(maxsize=ANSWER_TYPES_CACHED)
def _inline_schema(kind: type[msgspec.Struct]) -> dict[str, Any]:
    # Shared by every request of this kind: it is only ever encoded, never changed.
    return inline_refs(msgspec.json.schema(kind))


def _json_text(content: str) -> str:
    """The JSON object in an answer, without the code fence some models wrap it in."""
    fenced = re.search(r"```(?:json)?\s*(\{.*\})\s*```", content, re.DOTALL)
    return fenced.group(1) if fenced else content.strip()


def parse_structured(request: TurnRequested, content: str) -> Verdict | Choice:
    kind = answer_type(request)
    assert kind is not None, "only judge and select turns are structured"
    try:
        answer = msgspec.json.decode(_json_text(content), type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise StructuredOutputInvalid(f"{kind.__name__} does not match its schema: {exc}") from None
    if request.turn.phase == Phase.JUDGE:
        criteria = msgspec.structs.asdict(answer.criteria)
        names = list(request.brief.rubric)
        return Verdict(criteria={names[i]: criteria[f"criterion_{i}"] for i in range(len(names))},
                       justification=answer.justification)
    return Choice(winner_id=answer.winner_id, rationale=answer.rationale)


# --- prompts -------------------------------------------------------------------------------


def system_prompt(request: TurnRequested) -> str:
    agent = request.agent
    if request.turn.phase == Phase.JUDGE:
        return (
            "You are an impartial judge of software engineering proposals. Score strictly against the "
            "rubric, from 0 (absent) to 10 (excellent), and justify the scores in one or two sentences."
        )
    return (
        f"You are {agent.agent_id}, a senior {agent.role.value} engineer on a council of agents that "
        f"deliberates on software engineering tasks. Your focus: {ROLE_FOCUS[agent.role]}. {agent.persona}"
    )


def _brief(request: TurnRequested) -> list[str]:
    task = request.brief.task
    lines = [f"Task {task.task_id}: {task.title}"]
    if task.description:
        lines.append(task.description)
    if request.brief.constraints:
        lines.append("Constraints:")
        lines += [f"- {constraint}" for constraint in request.brief.constraints]
    if request.brief.rubric:
        lines.append("Proposals are judged on:")
        lines += [f"- {criterion}: {meaning}" for criterion, meaning in request.brief.rubric.items()]
    return lines


def user_prompt(request: TurnRequested, context: str = "") -> str:
    lines, given = _brief(request), request.input
    if context:
        lines = ["What the project has recorded around this task:", context, "", *lines]
    match request.turn.phase:
        case Phase.PROPOSE:
            lines.append("Write your proposal: the approach, the key steps, and the main risks.")
        case Phase.CRITIQUE:
            lines += [
                f"Proposal by {request.turn.author_id}:", given.proposal,
                "Critique this proposal against the criteria: its weaknesses and the concrete changes that "
                "would fix them. Be brief.",
            ]
        case Phase.REVISE:
            lines += [
                "Your proposal:", given.proposal,
                "A peer's critique of it:", given.critique,
                "Rewrite your proposal so that it answers the critique. Write only the revised proposal.",
            ]
        case Phase.JUDGE:
            lines += ["Proposal:", given.proposal, "Score the proposal on each criterion. Answer in JSON."]
        case Phase.SELECT:
            for candidate in given.candidates:
                lines += [f"Candidate {candidate.agent_id} (score {candidate.score:.1f}):", candidate.content]
            lines.append(
                "As the architect, choose the winner among the candidates and explain why in two or three "
                "sentences. Answer in JSON."
            )
    return "\n".join(lines)


def max_tokens_for(phase: Phase, budget: int) -> int:
    if phase in STRUCTURED_PHASES:
        return STRUCTURED_MAX_TOKENS
    if phase == Phase.CRITIQUE:
        return max(budget // 2, 64)
    return budget


def chat_request(
    request: TurnRequested, *, model: str, max_tokens: int, dialect: ResponseFormat, context: str = "",
    thinking: bool = True,
) -> ChatRequest:
    kind = answer_type(request)
    # Upstream task texts may carry credentials; nothing secret reaches the LLM.
    messages = [ChatMessage("system", redact(system_prompt(request))),
                ChatMessage("user", redact(user_prompt(request, context)))]
    return ChatRequest(
        model=request.agent.model or model,
        messages=messages,
        temperature=request.agent.temperature,
        max_tokens=max_tokens_for(request.turn.phase, max_tokens),
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
