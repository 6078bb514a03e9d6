"""The collector's state machine: fold outcomes, decide the result. Pure: no I/O."""

from __future__ import annotations

import datetime as dt

import msgspec

from contracts.events import (
    DeliberationCompleted,
    DeliberationFailed,
    DeliberationRef,
    ProposalCompleted,
    ProposalFailed,
    RankedProposal,
    Winner,
)

# The walking skeleton has no scoring yet: it keeps the first proposal that completed and says so.
PROVISIONAL_SELECTION = "provisional: first completed proposal, not scored"


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: str
    content: str | None = None
    error: str | None = None


class Collected(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the collector knows of one deliberation, in arrival order."""

    deliberation: DeliberationRef
    council: list[str]
    started_at: dt.datetime
    outcomes: list[Outcome] = []
    # At most one of the two is set: msgspec cannot decode an untagged union of Structs.
    completed: DeliberationCompleted | None = None
    failed: DeliberationFailed | None = None
    # Stream sequence of the outcome message that completed the deliberation. Only a redelivery
    # of that very message re-publishes the result; a stored copy of it (same event id) does not.
    result_caused_by: int | None = None

    @property
    def result(self) -> DeliberationCompleted | DeliberationFailed | None:
        return self.completed or self.failed


type ProposalOutcome = ProposalCompleted | ProposalFailed


def _as_outcome(event: ProposalOutcome) -> Outcome:
    if isinstance(event, ProposalCompleted):
        return Outcome(agent_id=event.agent_id, content=event.content)
    return Outcome(agent_id=event.agent_id, error=f"{event.error_class}: {event.message}")


def evolve(state: Collected | None, event: ProposalOutcome) -> Collected:
    """Record an outcome once per agent; a repeat changes nothing."""
    if state is None:
        state = Collected(deliberation=event.deliberation, council=event.council, started_at=event.started_at)
    if event.agent_id in {o.agent_id for o in state.outcomes}:
        return state
    return msgspec.structs.replace(state, outcomes=[*state.outcomes, _as_outcome(event)])


def decide(state: Collected, now: dt.datetime) -> DeliberationCompleted | DeliberationFailed | None:
    """The result, once every council member has answered; None while some are outstanding."""
    if state.result is not None or len(state.outcomes) < len(state.council):
        return None
    ref = state.deliberation
    ids = {
        "deliberation_id": ref.deliberation_id,
        "story_id": ref.story_id,
        "plan_id": ref.plan_id,
        "task_id": ref.task_id,
        "role": ref.role,
    }
    duration_ms = max(int((now - state.started_at).total_seconds() * 1000), 0)
    proposals = [o for o in state.outcomes if o.content]
    failures = [o for o in state.outcomes if not o.content]
    if not proposals:
        reasons = "; ".join(f"{o.agent_id}: {o.error}" for o in failures)
        return DeliberationFailed(**ids, reason=f"no agent produced a proposal ({reasons})", duration_ms=duration_ms)
    first = proposals[0]
    return DeliberationCompleted(
        **ids,
        winner=Winner(agent_id=first.agent_id, content=first.content or ""),
        ranking=[RankedProposal(agent_id=o.agent_id) for o in proposals],
        duration_ms=duration_ms,
        selection=PROVISIONAL_SELECTION,
        failed_agents=[o.agent_id for o in failures],
    )


def record(state: Collected | None, event: ProposalOutcome, sequence: int, now: dt.datetime) -> Collected:
    """Fold the event in and, if that completes the deliberation, attach the result to it."""
    state = evolve(state, event)
    result = decide(state, now)
    if isinstance(result, DeliberationCompleted):
        return msgspec.structs.replace(state, completed=result, result_caused_by=sequence)
    if isinstance(result, DeliberationFailed):
        return msgspec.structs.replace(state, failed=result, result_caused_by=sequence)
    return state
