"""Every event the mesh carries: subject, type, version, payload, producers, consumers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import msgspec

from contracts import events as ev

# Who produces events: each name is also the producer in the envelope and the NATS user.
UPSTREAM = "upstream planning"
PLANNING = "planning"
DISPATCH = "dispatch"
AGENTS = "agents"
COLLECTOR = "collector"
PROJECTION = "projection"
MONITOR = "monitor"
# Every service process, by name: `fleet service NAME`, the embedded stack, the Deployments in k8s/.
SERVICES = (PLANNING, DISPATCH, AGENTS, COLLECTOR, PROJECTION, MONITOR)
ANY_SERVICE = "any service"
# The `fleet` CLI in an operator's hands: councils, dead-letter redrives, cancels and retries.
OPERATOR = "operator"
# Readers outside the mesh, with no durable of their own (docs/clients.md): upstream planning follows
# what became of its approvals; monitoring subscribers follow results and decisions.
MONITORING_SUBSCRIBERS = "monitoring subscribers"
OUTSIDE_READERS = (UPSTREAM, MONITORING_SUBSCRIBERS)

SUBJECT_PATTERN = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.v[0-9]+$")


class StrictDecoder:
    """msgspec's JSON decoder for one payload type, strict where msgspec is lenient.

    msgspec checks UTF-8 only in the strings it keeps, so invalid bytes in an unknown field passed
    and invalid bytes in a known one raised UnicodeDecodeError; nesting past the interpreter's
    recursion limit raised RecursionError. JSON must be UTF-8 throughout (RFC 8259), and every
    reason a body cannot be read is a msgspec.DecodeError, which readers turn into a rejection.
    """

    def __init__(self, payload: type[ev.Event]) -> None:
        self.type = payload
        self._decoder = msgspec.json.Decoder(payload)

    def decode(self, body: bytes) -> ev.Event:
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise msgspec.DecodeError(f"JSON is malformed: invalid UTF-8 (byte {exc.start})") from None
        try:
            return self._decoder.decode(body)
        except RecursionError:
            raise msgspec.DecodeError("JSON is malformed: nested too deeply") from None


@dataclass(frozen=True)
class EventSpec:
    """One event on one subject. `event_type` is `<aggregate>.<event>`."""

    subject: str
    event_type: str
    version: int
    payload: type[ev.Event]
    aggregate_type: str
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    summary: str
    legacy: bool = False
    decoder: StrictDecoder = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoder", StrictDecoder(self.payload))

    @property
    def is_ingress(self) -> bool:
        return UPSTREAM in self.producers


PLAN_APPROVED = EventSpec(
    subject="planning.plan.approved.v1",
    event_type="plan.approved",
    version=1,
    payload=ev.PlanApproved,
    aggregate_type="plan",
    producers=(UPSTREAM,),
    consumers=(PLANNING, PROJECTION),
    summary="Upstream approved a plan: deliberate every task for every listed role.",
)
LEGACY_PLAN_APPROVED = EventSpec(
    subject="planning.plan.approved",
    event_type="plan.approved",
    version=0,
    payload=ev.LegacyPlanApproved,
    aggregate_type="plan",
    producers=(UPSTREAM,),
    consumers=(PLANNING, PROJECTION),
    summary="Pre-envelope plan approval, no tasks. Accepted and upcast to v1.",
    legacy=True,
)
STORY_TRANSITIONED = EventSpec(
    subject="planning.story.transitioned.v1",
    event_type="story.transitioned",
    version=1,
    payload=ev.StoryTransitioned,
    aggregate_type="story",
    producers=(UPSTREAM,),
    consumers=(PLANNING, PROJECTION),
    summary="Upstream moved a story between two states of its workflow; the read models keep its history.",
)
LEGACY_STORY_TRANSITIONED = EventSpec(
    subject="planning.story.transitioned",
    event_type="story.transitioned",
    version=0,
    payload=ev.LegacyStoryTransitioned,
    aggregate_type="story",
    producers=(UPSTREAM,),
    consumers=(PLANNING, PROJECTION),
    summary="Pre-envelope story transition with a `timestamp`. Accepted and upcast to v1.",
    legacy=True,
)
PLAN_ACCEPTED = EventSpec(
    subject="orchestration.plan.accepted.v1",
    event_type="plan.accepted",
    version=1,
    payload=ev.PlanAccepted,
    aggregate_type="plan",
    producers=(PLANNING,),
    consumers=(PLANNING, PROJECTION, UPSTREAM, MONITORING_SUBSCRIBERS),
    summary="Ingress accepted an approval: the deliberation of each (task, role) it requested.",
)
PLAN_REJECTED = EventSpec(
    subject="orchestration.plan.rejected.v1",
    event_type="plan.rejected",
    version=1,
    payload=ev.PlanRejected,
    aggregate_type="plan",
    producers=(PLANNING,),
    consumers=(PROJECTION, UPSTREAM, MONITORING_SUBSCRIBERS),
    summary="Ingress refused an approval, with every reason, or gave up on it after retries. Also dead-lettered.",
)
PLAN_CONCLUDED = EventSpec(
    subject="orchestration.plan.concluded.v1",
    event_type="plan.concluded",
    version=1,
    payload=ev.PlanConcluded,
    aggregate_type="plan",
    producers=(PLANNING,),
    consumers=(PROJECTION, UPSTREAM, MONITORING_SUBSCRIBERS),
    summary="Every deliberation of an accepted plan has ended, with each outcome; again after a retry ends.",
)
COUNCIL_CREATED = EventSpec(
    subject="config.council.created.v1",
    event_type="council.created",
    version=1,
    payload=ev.CouncilCreated,
    aggregate_type="council",
    producers=(OPERATOR, PLANNING),
    consumers=(PLANNING, PROJECTION),
    summary="A role's council: its agents (persona, temperature, seed, model) and protocol. "
    "Planning seeds the five defaults when no council was ever created.",
)
COUNCIL_DELETED = EventSpec(
    subject="config.council.deleted.v1",
    event_type="council.deleted",
    version=1,
    payload=ev.CouncilDeleted,
    aggregate_type="council",
    producers=(OPERATOR,),
    consumers=(PLANNING, PROJECTION),
    summary="A role's council is gone; approvals naming the role are dead-lettered until one is created.",
)
DELIBERATION_REQUESTED = EventSpec(
    subject="orchestration.deliberation.requested.v1",
    event_type="deliberation.requested",
    version=1,
    payload=ev.DeliberationRequested,
    aggregate_type="deliberation",
    producers=(PLANNING, COLLECTOR),
    consumers=(DISPATCH, PLANNING, PROJECTION),
    summary="One deliberation is due for a (plan, task, role), with the council and architect of that moment; "
    "the collector requests a retry's new attempt.",
)
DELIBERATION_CANCEL_REQUESTED = EventSpec(
    subject="orchestration.deliberation.cancel_requested.v1",
    event_type="deliberation.cancel_requested",
    version=1,
    payload=ev.DeliberationCancelRequested,
    aggregate_type="deliberation",
    producers=(OPERATOR,),
    consumers=(COLLECTOR, PROJECTION),
    summary="An operator asked to stop a deliberation in progress, and why; it fails as cancelled.",
)
DELIBERATION_RETRY_REQUESTED = EventSpec(
    subject="orchestration.deliberation.retry_requested.v1",
    event_type="deliberation.retry_requested",
    version=1,
    payload=ev.DeliberationRetryRequested,
    aggregate_type="deliberation",
    producers=(OPERATOR,),
    consumers=(COLLECTOR, PROJECTION),
    summary="An operator asked for a new attempt at an ended deliberation, and why; it gets its own id.",
)
DELIBERATION_STARTED = EventSpec(
    subject="orchestration.deliberation.started.v1",
    event_type="deliberation.started",
    version=1,
    payload=ev.DeliberationStarted,
    aggregate_type="deliberation",
    producers=(DISPATCH,),
    consumers=(COLLECTOR, PROJECTION),
    summary="Dispatch claimed the deliberation; the collector runs it from here.",
)
DELIBERATION_ADVANCED = EventSpec(
    subject="orchestration.deliberation.advanced.v1",
    event_type="deliberation.advanced",
    version=1,
    payload=ev.DeliberationAdvanced,
    aggregate_type="deliberation",
    producers=(COLLECTOR,),
    consumers=(PROJECTION,),
    summary="A phase (propose, critique, revise, judge, select) began, with its turns and deadline.",
)
DEADLINE_PASSED = EventSpec(
    subject="orchestration.deliberation.deadline_passed.v1",
    event_type="deliberation.deadline_passed",
    version=1,
    payload=ev.DeadlinePassed,
    aggregate_type="deliberation",
    producers=(COLLECTOR,),
    consumers=(COLLECTOR, PROJECTION),
    summary="A phase's deadline. Scheduled with JetStream message scheduling, so it survives restarts.",
)
DELIBERATION_SCORED = EventSpec(
    subject="orchestration.deliberation.scored.v1",
    event_type="deliberation.scored",
    version=1,
    payload=ev.DeliberationScored,
    aggregate_type="deliberation",
    producers=(COLLECTOR,),
    consumers=(PROJECTION,),
    summary="Every final proposal's judge scores per criterion and deterministic checks.",
)
DECISION_MADE = EventSpec(
    subject="orchestration.decision.made.v1",
    event_type="decision.made",
    version=1,
    payload=ev.DecisionMade,
    aggregate_type="deliberation",
    producers=(COLLECTOR,),
    consumers=(PROJECTION, MONITORING_SUBSCRIBERS),
    summary="The architect's choice among the top candidates, with the ranking and the rationale.",
)
TURN_REQUESTED = EventSpec(
    subject="agent.turn.requested.v1",
    event_type="turn.requested",
    version=1,
    payload=ev.TurnRequested,
    aggregate_type="deliberation",
    producers=(COLLECTOR,),
    consumers=(AGENTS, PROJECTION),
    summary="An agent is asked to propose, critique, revise, judge or select.",
)
TURN_COMPLETED = EventSpec(
    subject="agent.turn.completed.v1",
    event_type="turn.completed",
    version=1,
    payload=ev.TurnCompleted,
    aggregate_type="deliberation",
    producers=(AGENTS,),
    consumers=(COLLECTOR, PROJECTION),
    summary="What the agent wrote, with model, temperature, seed and tokens; verdict or choice when structured.",
)
TURN_FAILED = EventSpec(
    subject="agent.turn.failed.v1",
    event_type="turn.failed",
    version=1,
    payload=ev.TurnFailed,
    aggregate_type="deliberation",
    producers=(AGENTS,),
    consumers=(COLLECTOR, PROJECTION),
    summary="A turn failed: the typed LLM or runtime error, never a stand-in text.",
)
DELIBERATION_COMPLETED = EventSpec(
    subject="orchestration.deliberation.completed.v1",
    event_type="deliberation.completed",
    version=1,
    payload=ev.DeliberationCompleted,
    aggregate_type="deliberation",
    producers=(COLLECTOR,),
    consumers=(PLANNING, PROJECTION, UPSTREAM, MONITORING_SUBSCRIBERS),
    summary="The one result of a deliberation: winner, score, ranking, rationale, duration.",
)
DELIBERATION_FAILED = EventSpec(
    subject="orchestration.deliberation.failed.v1",
    event_type="deliberation.failed",
    version=1,
    payload=ev.DeliberationFailed,
    aggregate_type="deliberation",
    producers=(COLLECTOR,),
    consumers=(PLANNING, PROJECTION, UPSTREAM, MONITORING_SUBSCRIBERS),
    summary="The one result of a deliberation that could not complete, with the phase and the precise reason.",
)
MESSAGE_REJECTED = EventSpec(
    subject="deadletter.message.rejected.v1",
    event_type="message.rejected",
    version=1,
    payload=ev.MessageRejected,
    aggregate_type="message",
    producers=(ANY_SERVICE,),
    consumers=(PROJECTION,),
    summary="A message a service rejected, kept whole (subject, headers, body) with the reason.",
)
MESSAGE_REDRIVEN = EventSpec(
    subject="deadletter.message.redriven.v1",
    event_type="message.redriven",
    version=1,
    payload=ev.MessageRedriven,
    aggregate_type="letter",
    producers=(OPERATOR,),
    consumers=(PROJECTION,),
    summary="A dead letter's original message was re-published after a fix, under an id derived from the "
            "letter, so a second redrive is a duplicate.",
)

EVENTS: tuple[EventSpec, ...] = (
    PLAN_APPROVED,
    LEGACY_PLAN_APPROVED,
    STORY_TRANSITIONED,
    LEGACY_STORY_TRANSITIONED,
    PLAN_ACCEPTED,
    PLAN_REJECTED,
    PLAN_CONCLUDED,
    COUNCIL_CREATED,
    COUNCIL_DELETED,
    DELIBERATION_REQUESTED,
    DELIBERATION_CANCEL_REQUESTED,
    DELIBERATION_RETRY_REQUESTED,
    DELIBERATION_STARTED,
    DELIBERATION_ADVANCED,
    DEADLINE_PASSED,
    TURN_REQUESTED,
    TURN_COMPLETED,
    TURN_FAILED,
    DELIBERATION_SCORED,
    DECISION_MADE,
    DELIBERATION_COMPLETED,
    DELIBERATION_FAILED,
    MESSAGE_REJECTED,
    MESSAGE_REDRIVEN,
)

_BY_SUBJECT = {spec.subject: spec for spec in EVENTS}
_BY_PAYLOAD = {spec.payload: spec for spec in EVENTS if not spec.legacy}


class UnknownSubject(KeyError):
    """No event is published on this subject."""

    def __str__(self) -> str:
        # A KeyError's text is its argument's repr; this one is read as a reason.
        return str(self.args[0])


def spec_for_subject(subject: str) -> EventSpec:
    try:
        return _BY_SUBJECT[subject]
    except KeyError:
        raise UnknownSubject(f"no event is published on subject {subject!r}") from None


def spec_for_payload(payload: ev.Event) -> EventSpec:
    return _BY_PAYLOAD[type(payload)]


def encode(payload: ev.Event) -> bytes:
    return msgspec.json.encode(payload)
