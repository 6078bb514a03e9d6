"""Queries on the read models: NATS request/reply, answered by the projection service.

Nobody reads another service's store: the CLI, the agents and monitoring ask here. A reply carries
the header `Fleet-Query-Status`: 200 with the reply type as its body, or an error code with `QueryError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import msgspec

from contracts.events import Attempt, DeliberationFailed, DeliberationRef, Phase, RankedProposal, Role

STATUS_HEADER = "Fleet-Query-Status"


class QueryError(msgspec.Struct, frozen=True, kw_only=True):
    status: int
    error: str


class DeliberationStatus(enum.StrEnum):
    """Where a deliberation stands, as the read models show it."""

    # Requested: ingress accepted it, dispatch has not started it yet.
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    # Failed in a phase; TIMED_OUT when that phase ended at its deadline with turns unanswered.
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def finished(self) -> bool:
        return self in (DeliberationStatus.COMPLETED, DeliberationStatus.FAILED, DeliberationStatus.TIMED_OUT)


def failed_status(failed: DeliberationFailed) -> DeliberationStatus:
    return DeliberationStatus.TIMED_OUT if failed.timed_out else DeliberationStatus.FAILED


# --- deliberation.show ----------------------------------------------------------------------


class ShowDeliberation(msgspec.Struct, frozen=True, kw_only=True):
    deliberation_id: str


class DeliberationView(msgspec.Struct, frozen=True, kw_only=True):
    deliberation_id: str
    story_id: str
    plan_id: str
    task_id: str
    role: str
    title: str = ""
    status: DeliberationStatus
    phase: str | None = None
    round: int | None = None
    agents: list[str] = []
    winner_id: str | None = None
    winner_score: float | None = None
    winner_content: str | None = None
    winner_revisions: int | None = None
    ranking: list[RankedProposal] = []
    rationale: str | None = None
    decided_by: str | None = None
    # "judge", or "checks" when the judge scored no qualified proposal and the checks ranked them.
    scored_by: str | None = None
    architect_error: str | None = None
    reason: str | None = None
    failed_phase: str | None = None
    failed_agents: list[str] = []
    requested_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: int | None = None
    # "<phase>:<round>" -> when that phase began
    phases_started: dict[str, str] = {}
    # A retry's attempt, linked to the first; and, once it was retried, the new attempt's id.
    attempt: Attempt | None = None
    retried_as: str | None = None


# --- deliberation.list ----------------------------------------------------------------------


class ListDeliberations(msgspec.Struct, frozen=True, kw_only=True):
    story_id: str | None = None
    status: DeliberationStatus | None = None
    limit: int = 50


class DeliberationSummary(msgspec.Struct, frozen=True, kw_only=True):
    deliberation_id: str
    story_id: str
    task_id: str
    role: str
    status: DeliberationStatus
    phase: str | None = None
    winner_id: str | None = None
    requested_at: str | None = None
    duration_ms: int | None = None


class DeliberationList(msgspec.Struct, frozen=True, kw_only=True):
    deliberations: list[DeliberationSummary]


# --- story.show -----------------------------------------------------------------------------


class ShowStory(msgspec.Struct, frozen=True, kw_only=True):
    story_id: str


class DecisionBrief(msgspec.Struct, frozen=True, kw_only=True):
    deliberation_id: str
    role: str
    status: DeliberationStatus | None = None
    winner_id: str | None = None
    winner_score: float | None = None
    rationale: str | None = None
    decided_by: str | None = None


class TaskView(msgspec.Struct, frozen=True, kw_only=True):
    task_id: str
    title: str | None = None
    deliberations: list[DecisionBrief] = []


class PlanView(msgspec.Struct, frozen=True, kw_only=True):
    plan_id: str
    approved_by: str | None = None
    approved_at: str | None = None
    tasks: list[TaskView] = []


class StoryView(msgspec.Struct, frozen=True, kw_only=True):
    story_id: str
    plans: list[PlanView]


# --- agent.context --------------------------------------------------------------------------


class GetAgentContext(msgspec.Struct, frozen=True, kw_only=True):
    deliberation: DeliberationRef
    role: Role
    phase: Phase


class AgentContext(msgspec.Struct, frozen=True, kw_only=True):
    """What an agent is told of its task's surroundings, redacted and cut to its role's budget."""

    text: str
    # sha256 of `text`; recorded in the turn's outcome event. None when the scope gives no context.
    context_hash: str | None
    sections: list[str] = []
    estimated_tokens: int = 0
    truncated: bool = False


@dataclass(frozen=True)
class QuerySpec:
    subject: str
    request: type[msgspec.Struct]
    reply: type[msgspec.Struct]
    summary: str
    request_decoder: msgspec.json.Decoder = field(init=False, repr=False, compare=False)
    reply_decoder: msgspec.json.Decoder = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "request_decoder", msgspec.json.Decoder(self.request))
        object.__setattr__(self, "reply_decoder", msgspec.json.Decoder(self.reply))


SHOW_DELIBERATION = QuerySpec(
    subject="query.deliberation.show.v1", request=ShowDeliberation, reply=DeliberationView,
    summary="One deliberation: status, phase, ranking, winner, rationale and timings. "
    "Replaces the older GetDeliberationResult RPC.",
)
LIST_DELIBERATIONS = QuerySpec(
    subject="query.deliberation.list.v1", request=ListDeliberations, reply=DeliberationList,
    summary="Deliberations, newest first, optionally of one story and/or in one status.",
)
SHOW_STORY = QuerySpec(
    subject="query.story.show.v1", request=ShowStory, reply=StoryView,
    summary="A story as a tree: its plans, their tasks, and each task's deliberations and decisions.",
)
AGENT_CONTEXT = QuerySpec(
    subject="query.agent.context.v1", request=GetAgentContext, reply=AgentContext,
    summary="The context an agent gets before it writes: story, plan, task, decisions and related tasks, "
    "scoped by role and phase, redacted, cut to the role's token budget.",
)

QUERIES: tuple[QuerySpec, ...] = (SHOW_DELIBERATION, LIST_DELIBERATIONS, SHOW_STORY, AGENT_CONTEXT)
