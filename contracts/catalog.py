"""Every event the mesh carries: subject, type, version, payload, producers, consumers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import msgspec

from contracts import events as ev

UPSTREAM = "upstream planning"
PLANNING = "planning"
DISPATCH = "dispatch"
AGENTS = "agents"
COLLECTOR = "collector"
ANY_SERVICE = "any service"

SUBJECT_PATTERN = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.v[0-9]+$")


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
    decoder: msgspec.json.Decoder = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoder", msgspec.json.Decoder(self.payload))

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
    consumers=(PLANNING,),
    summary="Upstream approved a plan: deliberate every task for every listed role.",
)
LEGACY_PLAN_APPROVED = EventSpec(
    subject="planning.plan.approved",
    event_type="plan.approved",
    version=0,
    payload=ev.LegacyPlanApproved,
    aggregate_type="plan",
    producers=(UPSTREAM,),
    consumers=(PLANNING,),
    summary="Pre-envelope plan approval, no tasks. Accepted and upcast to v1.",
    legacy=True,
)
DELIBERATION_REQUESTED = EventSpec(
    subject="orchestration.deliberation.requested.v1",
    event_type="deliberation.requested",
    version=1,
    payload=ev.DeliberationRequested,
    aggregate_type="deliberation",
    producers=(PLANNING,),
    consumers=(DISPATCH,),
    summary="One deliberation is due for a (plan, task, role). Its id is deterministic.",
)
DELIBERATION_STARTED = EventSpec(
    subject="orchestration.deliberation.started.v1",
    event_type="deliberation.started",
    version=1,
    payload=ev.DeliberationStarted,
    aggregate_type="deliberation",
    producers=(DISPATCH,),
    consumers=(),
    summary="Dispatch chose the council and asked each agent for a proposal.",
)
PROPOSAL_REQUESTED = EventSpec(
    subject="agent.proposal.requested.v1",
    event_type="proposal.requested",
    version=1,
    payload=ev.ProposalRequested,
    aggregate_type="deliberation",
    producers=(DISPATCH,),
    consumers=(AGENTS,),
    summary="One agent of the council is asked for a proposal.",
)
PROPOSAL_COMPLETED = EventSpec(
    subject="agent.proposal.completed.v1",
    event_type="proposal.completed",
    version=1,
    payload=ev.ProposalCompleted,
    aggregate_type="deliberation",
    producers=(AGENTS,),
    consumers=(COLLECTOR,),
    summary="An agent's proposal, as the LLM wrote it, with model, temperature and tokens.",
)
PROPOSAL_FAILED = EventSpec(
    subject="agent.proposal.failed.v1",
    event_type="proposal.failed",
    version=1,
    payload=ev.ProposalFailed,
    aggregate_type="deliberation",
    producers=(AGENTS,),
    consumers=(COLLECTOR,),
    summary="An agent could not propose: the typed LLM or runtime error, never a stand-in text.",
)
DELIBERATION_COMPLETED = EventSpec(
    subject="orchestration.deliberation.completed.v1",
    event_type="deliberation.completed",
    version=1,
    payload=ev.DeliberationCompleted,
    aggregate_type="deliberation",
    producers=(COLLECTOR,),
    consumers=(),
    summary="The one result of a deliberation: winner, ranking, duration.",
)
DELIBERATION_FAILED = EventSpec(
    subject="orchestration.deliberation.failed.v1",
    event_type="deliberation.failed",
    version=1,
    payload=ev.DeliberationFailed,
    aggregate_type="deliberation",
    producers=(COLLECTOR,),
    consumers=(),
    summary="The one result of a deliberation that produced no proposal, with the reason.",
)
MESSAGE_REJECTED = EventSpec(
    subject="deadletter.message.rejected.v1",
    event_type="message.rejected",
    version=1,
    payload=ev.MessageRejected,
    aggregate_type="message",
    producers=(ANY_SERVICE,),
    consumers=(),
    summary="A message a service rejected, kept whole (subject, headers, body) with the reason.",
)

EVENTS: tuple[EventSpec, ...] = (
    PLAN_APPROVED,
    LEGACY_PLAN_APPROVED,
    DELIBERATION_REQUESTED,
    DELIBERATION_STARTED,
    PROPOSAL_REQUESTED,
    PROPOSAL_COMPLETED,
    PROPOSAL_FAILED,
    DELIBERATION_COMPLETED,
    DELIBERATION_FAILED,
    MESSAGE_REJECTED,
)

_BY_SUBJECT = {spec.subject: spec for spec in EVENTS}
_BY_PAYLOAD = {spec.payload: spec for spec in EVENTS if not spec.legacy}


def spec_for_subject(subject: str) -> EventSpec:
    try:
        return _BY_SUBJECT[subject]
    except KeyError:
        raise KeyError(f"no event is published on subject {subject!r}") from None


def spec_for_payload(payload: ev.Event) -> EventSpec:
    return _BY_PAYLOAD[type(payload)]


def encode(payload: ev.Event) -> bytes:
    return msgspec.json.encode(payload)
