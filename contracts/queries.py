"""Queries on the read models: NATS request/reply, answered by the projection service.

Nobody reads another service's store: the CLI, the agents and monitoring ask here. A reply carries
the header `Fleet-Query-Status`: 200 with the reply type as its body, or an error code with `QueryError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import msgspec

from contracts.events import (
    Attempt,
    DeliberationFailed,
    DeliberationRef,
    Phase,
    RankedProposal,
    Role,
)

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
    # Stopped by an operator (`fleet deliberation cancel`); the view says who.
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in (DeliberationStatus.COMPLETED, DeliberationStatus.FAILED, DeliberationStatus.TIMED_OUT,
                        DeliberationStatus.CANCELLED)


def failed_status(failed: DeliberationFailed) -> DeliberationStatus:
    if failed.cancelled_by is not None:
        return DeliberationStatus.CANCELLED
    return DeliberationStatus.TIMED_OUT if failed.timed_out else DeliberationStatus.FAILED


class OperatorRequest(msgspec.Struct, frozen=True, kw_only=True):
    """An operator's cancel or retry request: who asked, why, and when."""

    by: str
    reason: str = ""
    at: str


class RequestFate(enum.StrEnum):
    """What became of an operator's cancel or retry request, as far as the read models can tell."""

    GRANTED = "granted"
    PENDING = "pending"
    # The deliberation ended some other way before the collector read the cancel, which then changed nothing.
    CAME_AFTER_IT_ENDED = "came after it ended"
    NOT_GRANTED = "not granted"


def cancel_fate(status: DeliberationStatus, cancelled_by: str | None) -> RequestFate:
    """A cancel is pending only while the deliberation runs: once it ended, it was cancelled or it was not."""
    if cancelled_by is not None:
        return RequestFate.GRANTED
    return RequestFate.CAME_AFTER_IT_ENDED if status.finished else RequestFate.PENDING


def retry_fate(retried_as: str | None) -> RequestFate:
    """A retry is granted with its new attempt's id, in the collector step that reads the request; without
    one it was refused, since the collector retries only an ended deliberation and refuses one still running
    at once. No event says it refused, so the request reads "not granted" rather than pending for ever (and
    for the moment between a granted request and its new attempt reaching the read model)."""
    return RequestFate.GRANTED if retried_as is not None else RequestFate.NOT_GRANTED


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
    # The overall deadline, from the council's protocol and the start.
    deadline_s: float | None = None
    deadline_at: str | None = None
    cancel_requested: OperatorRequest | None = None
    cancelled_by: str | None = None
    # Set on a retry's new attempt; None for a first attempt.
    attempt: Attempt | None = None
    retry_requested: OperatorRequest | None = None
    # The new attempt's id, once a retry of this one was requested.
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
    # 1 for a first attempt, 2 for its first retry.
    attempt_number: int = 1
    retried_as: str | None = None
    cancelled_by: str | None = None


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
    attempt_number: int = 1
    retried_as: str | None = None
    cancelled_by: str | None = None


class TaskView(msgspec.Struct, frozen=True, kw_only=True):
    task_id: str
    title: str | None = None
    deliberations: list[DecisionBrief] = []


class PlanView(msgspec.Struct, frozen=True, kw_only=True):
    plan_id: str
    approved_by: str | None = None
    approved_at: str | None = None
    tasks: list[TaskView] = []
    # Ingress's latest answer to an approval of this plan: "accepted" (with how many deliberations it
    # requested) or "rejected" (with its reasons); each deliberation's outcome is on the deliberation.
    answer: str | None = None
    answered_at: str | None = None
    approval_id: str | None = None
    answer_reasons: list[str] = []
    deliberation_count: int | None = None
    # Once every deliberation ended; a later revision after a retried one ends.
    concluded_at: str | None = None
    conclusion_revision: int | None = None
    completed: int | None = None
    failed: int | None = None


class TransitionView(msgspec.Struct, frozen=True, kw_only=True):
    """One move of a story between upstream's states."""

    event_id: str
    from_state: str
    to_state: str
    by: str
    reason: str = ""
    at: str


class StoryView(msgspec.Struct, frozen=True, kw_only=True):
    story_id: str
    plans: list[PlanView]
    # The state of the last transition; None before any.
    state: str | None = None
    transitions: list[TransitionView] = []


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
    summary="A story as a tree: its state and transitions, its plans with ingress's answers, their tasks, and "
    "each task's deliberations and decisions.",
)
AGENT_CONTEXT = QuerySpec(
    subject="query.agent.context.v1", request=GetAgentContext, reply=AgentContext,
    summary="The context an agent gets before it writes: story, plan, task, decisions and related tasks, "
    "scoped by role and phase, redacted, cut to the role's token budget.",
)

QUERIES: tuple[QuerySpec, ...] = (SHOW_DELIBERATION, LIST_DELIBERATIONS, SHOW_STORY, AGENT_CONTEXT)
