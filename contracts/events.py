"""Event payloads: frozen msgspec Structs, named in the past tense."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated

import msgspec

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Text = Annotated[str, msgspec.Meta(max_length=64_000)]


class Role(enum.StrEnum):
    DEV = "DEV"
    QA = "QA"
    ARCHITECT = "ARCHITECT"
    DEVOPS = "DEVOPS"
    DATA = "DATA"


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every payload. Unknown fields are ignored so producers may add fields."""

    def aggregate_id(self) -> str:
        """The id of the aggregate this event belongs to."""
        if (ref := getattr(self, "deliberation", None)) is not None:
            return ref.deliberation_id
        if (deliberation_id := getattr(self, "deliberation_id", None)) is not None:
            return deliberation_id
        return getattr(self, "plan_id", "")


# --- planning (ingress, owned by upstream planning services) -------------------------


class PlannedTask(msgspec.Struct, frozen=True, kw_only=True):
    task_id: NonEmpty
    title: NonEmpty
    description: Text = ""


class PlanApproved(Event, frozen=True, kw_only=True):
    """planning.plan.approved.v1: the ingress contract upstream depends on."""

    story_id: NonEmpty
    plan_id: NonEmpty
    approved_by: NonEmpty
    roles: Annotated[list[Role], msgspec.Meta(min_length=1, max_length=5)]
    tasks: Annotated[list[PlannedTask], msgspec.Meta(max_length=100)]
    rubric: dict[NonEmpty, Text] = {}
    constraints: Annotated[list[Text], msgspec.Meta(max_length=50)] = []


class LegacyPlanApproved(Event, frozen=True, kw_only=True):
    """planning.plan.approved: the pre-envelope format, upcast to PlanApproved on read."""

    story_id: NonEmpty
    plan_id: NonEmpty
    approved_by: NonEmpty
    roles: Annotated[list[Role], msgspec.Meta(min_length=1, max_length=5)]
    timestamp: str | int | float | None = None


# --- orchestration (the deliberation aggregate) --------------------------------------


class DeliberationRef(msgspec.Struct, frozen=True, kw_only=True):
    """Identifies one deliberation: one (plan, task, role)."""

    deliberation_id: str
    story_id: str
    plan_id: str
    task_id: str
    role: Role


class DeliberationRequested(Event, frozen=True, kw_only=True):
    deliberation: DeliberationRef
    task: PlannedTask
    approved_by: str
    rubric: dict[str, str] = {}
    constraints: list[str] = []


class DeliberationStarted(Event, frozen=True, kw_only=True):
    deliberation: DeliberationRef
    council: list[str]
    started_at: dt.datetime


class RankedProposal(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: str
    # None means "not scored": the walking skeleton selects provisionally, without a rubric score.
    score: float | None = None


class Winner(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: str
    content: str


class DeliberationCompleted(Event, frozen=True, kw_only=True):
    deliberation_id: str
    story_id: str
    plan_id: str
    task_id: str
    role: Role
    winner: Winner
    ranking: list[RankedProposal]
    duration_ms: int
    selection: str
    failed_agents: list[str] = []


class DeliberationFailed(Event, frozen=True, kw_only=True):
    deliberation_id: str
    story_id: str
    plan_id: str
    task_id: str
    role: Role
    reason: str
    duration_ms: int


# --- agent (proposal work done by the Ray actors) -------------------------------------


class AgentProfile(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: str
    role: Role
    temperature: float
    max_tokens: int


class ProposalRequested(Event, frozen=True, kw_only=True):
    deliberation: DeliberationRef
    agent: AgentProfile
    council: list[str]
    task: PlannedTask
    rubric: dict[str, str] = {}
    constraints: list[str] = []
    started_at: dt.datetime


class ProposalCompleted(Event, frozen=True, kw_only=True):
    deliberation: DeliberationRef
    agent_id: str
    council: list[str]
    started_at: dt.datetime
    content: str
    model: str
    temperature: float
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int


class ProposalFailed(Event, frozen=True, kw_only=True):
    deliberation: DeliberationRef
    agent_id: str
    council: list[str]
    started_at: dt.datetime
    error_class: str
    message: str


# --- dead letters -----------------------------------------------------------------------


class MessageRejected(Event, frozen=True, kw_only=True):
    """A message a service could not process, kept whole with the reason."""

    service: str
    consumer: str
    reason: str
    original_subject: str
    original_headers: dict[str, str]
    original_body: bytes
    stream: str
    stream_sequence: int
    deliveries: int
    # A body too large to inline (base64 grows it by a third) is left out; the original message
    # is still in `stream` at `stream_sequence`, since event streams keep everything.
    original_body_omitted: bool = False

    def aggregate_id(self) -> str:
        return f"{self.stream}:{self.stream_sequence}"
