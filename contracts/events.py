"""Event payloads: frozen msgspec Structs, named in the past tense."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated

import msgspec

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Text = Annotated[str, msgspec.Meta(max_length=64_000)]
# A rubric criterion names a key of the judge's JSON answer, which cannot hold quotes, backslashes or
# control characters unescaped: such a name is refused at ingress rather than breaking every judge turn.
CriterionName = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=r'^[^"\\\x00-\x1f]+$')]


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
        return getattr(self, "plan_id", None) or getattr(self, "story_id", "")


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
    rubric: dict[CriterionName, Text] = {}
    constraints: Annotated[list[Text], msgspec.Meta(max_length=50)] = []


class StoryTransitioned(Event, frozen=True, kw_only=True):
    """planning.story.transitioned.v1: a story moved between two states of upstream's workflow.

    The states are upstream's own words (for example "DESIGN" to "BUILD"); the mesh records them, it does
    not interpret them.
    """

    story_id: NonEmpty
    from_state: NonEmpty
    to_state: NonEmpty
    transitioned_by: NonEmpty
    reason: Text = ""


class LegacyStoryTransitioned(Event, frozen=True, kw_only=True):
    """planning.story.transitioned: the pre-envelope format, upcast to StoryTransitioned on read."""

    story_id: NonEmpty
    from_state: NonEmpty
    to_state: NonEmpty
    transitioned_by: NonEmpty
    timestamp: str | int | float | None = None


class LegacyPlanApproved(Event, frozen=True, kw_only=True):
    """planning.plan.approved: the pre-envelope format, upcast to PlanApproved on read."""

    story_id: NonEmpty
    plan_id: NonEmpty
    approved_by: NonEmpty
    roles: Annotated[list[Role], msgspec.Meta(min_length=1, max_length=5)]
    timestamp: str | int | float | None = None


# --- planning answers: what became of an approval, and of its plan ----------------------


class PlannedDeliberation(msgspec.Struct, frozen=True, kw_only=True):
    deliberation_id: str
    task_id: str
    role: Role


class PlanAccepted(Event, frozen=True, kw_only=True):
    """orchestration.plan.accepted.v1: ingress took the approval; these deliberations will run."""

    story_id: str
    plan_id: str
    approved_by: str
    # The approval's event id (Nats-Msg-Id): what upstream matches this answer by.
    approval_id: str
    deliberations: list[PlannedDeliberation]


class PlanRejected(Event, frozen=True, kw_only=True):
    """orchestration.plan.rejected.v1: ingress refused the approval, and why.

    Refused for what it says (its contract, its councils), it started nothing. Given up on after retries (the
    reason says so), it may have requested some deliberations first; redriving its dead letter answers again.

    The same message is in the dead letters for operators; this answer is for the publisher.
    """

    approval_id: str
    original_subject: str
    reasons: list[str]
    # Empty when the approval could not be read far enough to tell.
    story_id: str = ""
    plan_id: str = ""

    def aggregate_id(self) -> str:
        return self.plan_id or self.approval_id


class Outcome(enum.StrEnum):
    """The words DeliberationOutcome.outcome takes (kept a plain string on the wire)."""

    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


class DeliberationOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """How one deliberation of a plan ended: its last attempt, when it was retried."""

    deliberation_id: str
    task_id: str
    role: Role
    # One of Outcome: completed, failed, timed_out or cancelled.
    outcome: str
    winner_id: str | None = None
    reason: str | None = None


class PlanConcluded(Event, frozen=True, kw_only=True):
    """orchestration.plan.concluded.v1: every deliberation of an accepted plan has ended.

    Published again, with a higher `revision`, when a retried deliberation of the plan ends.
    """

    story_id: str
    plan_id: str
    outcomes: list[DeliberationOutcome]
    completed: int
    failed: int
    revision: int = 1


# --- config (councils: event-sourced configuration) ---------------------------------------


class AgentProfile(msgspec.Struct, frozen=True, kw_only=True):
    """One council member. Temperature, seed and persona are what make its voice differ from its peers'."""

    agent_id: NonEmpty
    role: Role
    persona: Text
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=2.0)]
    seed: int
    # None: the model the agents service is configured with.
    model: str | None = None


# A 1-round deliberation has five phases (propose, critique, revise, judge, select), each allowed 300 s;
# most finish in well under a minute. 30 minutes lets a slow LLM finish any sane protocol and stops a
# deliberation that keeps limping from phase to phase (docs/architecture.md, "A deliberation's lifecycle").
DEFAULT_DELIBERATION_DEADLINE_S = 1800.0


class Protocol(msgspec.Struct, frozen=True, kw_only=True):
    """How a council deliberates."""

    critique_rounds: Annotated[int, msgspec.Meta(ge=0, le=5)] = 1
    # Fewer proposals than this, and the deliberation fails.
    quorum: Annotated[int, msgspec.Meta(ge=1)] = 2
    # How many of the best-scored proposals the architect chooses from.
    top_k: Annotated[int, msgspec.Meta(ge=1)] = 3
    # Every phase must be over this long after it started; unanswered turns then count as failed.
    phase_deadline_s: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    # The whole deliberation must be over this long after it started, whatever its phases. No phase's
    # deadline is set later than that moment, and the deadline that falls on it fails the deliberation
    # as timed out, in the phase it is in; a phase due to open after it does not open.
    deliberation_deadline_s: Annotated[float, msgspec.Meta(gt=0)] = DEFAULT_DELIBERATION_DEADLINE_S


def overall_deadline(started_at: dt.datetime, protocol: Protocol) -> dt.datetime:
    """When a deliberation started at `started_at` must be over: the one rule the collector enforces and
    the read models show, so the deadline an operator sees is the one that fails the deliberation."""
    return started_at + dt.timedelta(seconds=protocol.deliberation_deadline_s)


class Council(msgspec.Struct, frozen=True, kw_only=True):
    role: Role
    agents: Annotated[list[AgentProfile], msgspec.Meta(min_length=1, max_length=16)]
    protocol: Protocol = Protocol()


class CouncilCreated(Event, frozen=True, kw_only=True):
    """config.council.created.v1: a role gets a council; it deliberates every task for that role."""

    council: Council
    created_by: NonEmpty

    def aggregate_id(self) -> str:
        return self.council.role.value


class CouncilDeleted(Event, frozen=True, kw_only=True):
    role: Role
    deleted_by: NonEmpty

    def aggregate_id(self) -> str:
        return self.role.value


# --- orchestration (the deliberation aggregate) --------------------------------------


class Phase(enum.StrEnum):
    PROPOSE = "propose"
    CRITIQUE = "critique"
    REVISE = "revise"
    JUDGE = "judge"
    SELECT = "select"


class DeliberationRef(msgspec.Struct, frozen=True, kw_only=True):
    """Identifies one deliberation: one (plan, task, role)."""

    deliberation_id: str
    story_id: str
    plan_id: str
    task_id: str
    role: Role


class Brief(msgspec.Struct, frozen=True, kw_only=True):
    """What a council deliberates on, and how proposals will be judged."""

    task: PlannedTask
    rubric: dict[str, str]
    constraints: list[str] = []


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """A retry: a new deliberation of the same (plan, task, role), with its own id, linked to the first."""

    first_id: str
    previous_id: str
    # 2 for the first retry.
    number: Annotated[int, msgspec.Meta(ge=2)]
    requested_by: str
    reason: str


class DeliberationRequested(Event, frozen=True, kw_only=True):
    """One deliberation is due; the council and the architect are fixed here, as they were at approval."""

    deliberation: DeliberationRef
    brief: Brief
    approved_by: str
    council: Council
    architect: AgentProfile
    # Set when an operator retried an ended deliberation; None for the first attempt.
    attempt: Attempt | None = None


class DeliberationCancelRequested(Event, frozen=True, kw_only=True):
    """An operator asked to stop a deliberation in progress; it ends as failed, cancelled by them."""

    deliberation_id: NonEmpty
    requested_by: NonEmpty
    reason: Text = ""


class DeliberationRetryRequested(Event, frozen=True, kw_only=True):
    """An operator asked for a new attempt at an ended deliberation."""

    deliberation_id: NonEmpty
    requested_by: NonEmpty
    reason: Text = ""


class DeliberationStarted(Event, frozen=True, kw_only=True):
    deliberation: DeliberationRef
    brief: Brief
    council: Council
    architect: AgentProfile
    started_at: dt.datetime
    # The request's attempt, when it is a retry: the collector retries a retry as attempt number + 1.
    attempt: Attempt | None = None


class DeliberationAdvanced(Event, frozen=True, kw_only=True):
    """A phase began: these turns are asked for, and must be answered by `deadline_at`."""

    deliberation_id: str
    phase: Phase
    round: int
    turns: list[str]
    deadline_at: dt.datetime


class DeadlinePassed(Event, frozen=True, kw_only=True):
    """Published by the JetStream scheduler at a phase's deadline; ignored when the phase is over."""

    deliberation_id: str
    phase: Phase
    round: int
    deadline_at: dt.datetime


class CheckResult(msgspec.Struct, frozen=True, kw_only=True):
    """A deterministic check of a proposal: `passed` is a fact about the text, not an opinion."""

    check: str
    passed: bool
    detail: str = ""


class ProposalScore(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: str
    # Per rubric criterion, 0-10, from the LLM judge. Empty when the judge failed.
    criteria: dict[str, int]
    justification: str
    checks: list[CheckResult]
    # Mean of `criteria`; None when the judge gave no valid verdict.
    score: float | None
    # False when a deterministic check failed: such a proposal can never win.
    qualified: bool
    scoring_error: str | None = None


class ScoredBy(enum.StrEnum):
    """What ranked the proposals the architect chose from."""

    # The LLM judge's scores against the rubric, next to the deterministic checks.
    JUDGE = "judge"
    # The judge scored no qualified proposal: the deterministic checks, then how many peer critiques each
    # proposal answered with a revision. The judge's errors stay in the scores.
    CHECKS = "checks"


class DeliberationScored(Event, frozen=True, kw_only=True):
    deliberation_id: str
    scores: list[ProposalScore]
    scored_by: ScoredBy = ScoredBy.JUDGE


class RankedProposal(msgspec.Struct, frozen=True, kw_only=True):
    rank: int
    agent_id: str
    score: float | None
    qualified: bool


class DecisionMade(Event, frozen=True, kw_only=True):
    """orchestration.decision.made.v1: who won, from which candidates, and why."""

    deliberation_id: str
    winner_id: str
    candidates: list[str]
    ranking: list[RankedProposal]
    rationale: Text
    # The architect's agent id, or "ranking" when the architect could not decide and the top score won.
    decided_by: str
    architect_error: str | None = None
    scored_by: ScoredBy = ScoredBy.JUDGE


class Winner(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: str
    content: str
    score: float | None
    revisions: int


class DeliberationCompleted(Event, frozen=True, kw_only=True):
    deliberation_id: str
    story_id: str
    plan_id: str
    task_id: str
    role: Role
    winner: Winner
    ranking: list[RankedProposal]
    rationale: str
    decided_by: str
    duration_ms: int
    failed_agents: list[str] = []
    scored_by: ScoredBy = ScoredBy.JUDGE


class DeliberationFailed(Event, frozen=True, kw_only=True):
    deliberation_id: str
    story_id: str
    plan_id: str
    task_id: str
    role: Role
    phase: Phase
    reason: str
    duration_ms: int
    # True when the phase ended at its deadline with turns unanswered, or the deliberation's overall
    # deadline passed: the read models say TIMED_OUT.
    timed_out: bool = False
    # Who cancelled it (`fleet deliberation cancel`); the reason says why. The read models say CANCELLED.
    cancelled_by: str | None = None


# --- agent (turns taken by the Ray actors) ------------------------------------------------


class Turn(msgspec.Struct, frozen=True, kw_only=True):
    """One piece of work in a deliberation. `author_id` is whose proposal it is about."""

    phase: Phase
    round: int
    agent_id: str
    author_id: str

    @property
    def key(self) -> str:
        """Unique within a deliberation: outcomes are de-duplicated by it."""
        return f"{self.phase}/{self.round}/{self.agent_id}/{self.author_id}"


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: str
    content: str
    # None when the judge scored no proposal and the checks ranked them (ScoredBy.CHECKS).
    score: float | None = None


class TurnInput(msgspec.Struct, frozen=True, kw_only=True):
    """What the turn works on, beyond the brief: a proposal, its critique, or the candidates."""

    proposal: str = ""
    critique: str = ""
    candidates: list[Candidate] = []


class TurnRequested(Event, frozen=True, kw_only=True):
    deliberation: DeliberationRef
    turn: Turn
    agent: AgentProfile
    brief: Brief
    input: TurnInput = TurnInput()


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """The LLM judge's structured output for one proposal."""

    criteria: dict[str, int]
    justification: str


class Choice(msgspec.Struct, frozen=True, kw_only=True):
    """The architect's structured output: the winner and why."""

    winner_id: str
    rationale: str


class TurnCompleted(Event, frozen=True, kw_only=True):
    deliberation: DeliberationRef
    turn: Turn
    agent: AgentProfile
    # The proposal, critique or revision; for judge and select turns the raw structured answer.
    content: Text
    verdict: Verdict | None = None
    choice: Choice | None = None
    model: str
    temperature: float
    seed: int
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int
    attempts: int = 1
    # The hash of the read-model context the agent was given (propose and revise turns), so a
    # deliberation can be explained later; None with `context_error` when the context was unavailable.
    context_hash: str | None = None
    context_error: str | None = None
    # Characters of the prompt (context, brief, peers' texts) cut so that it fit the model's context;
    # the prompt itself said so where it was cut.
    prompt_cut_chars: Annotated[int, msgspec.Meta(ge=0)] = 0


class TurnFailed(Event, frozen=True, kw_only=True):
    """A turn that produced nothing usable: the typed error, never a stand-in text."""

    deliberation: DeliberationRef
    turn: Turn
    agent: AgentProfile
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


class MessageRedriven(Event, frozen=True, kw_only=True):
    """An operator re-published a dead letter's original message after a fix; one per letter."""

    letter_id: str
    letter_sequence: int
    original_subject: str
    original_stream: str
    original_sequence: int
    republished_id: str
    republished_sequence: int
    redriven_by: NonEmpty

    def aggregate_id(self) -> str:
        # The letter redriven: its redrives share one aggregate, whichever message it holds.
        return self.letter_id
