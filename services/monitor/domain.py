"""What the dashboard shows, folded from the events it reads. Pure: no I/O.

Only what the log says is shown. Consumer lag and the dead-letter count come from JetStream itself
(see the poller in feed.py) and are kept here as the poller last saw them, or why it could not.
"""

from __future__ import annotations

import bisect
import datetime as dt
import statistics
from collections import deque
from dataclasses import asdict, dataclass, field

import msgspec

from contracts import events as ev
from contracts.envelope import Envelope, format_time
from contracts.queries import DeliberationStatus, cancel_fate, failed_status, retry_fate

RECENT_EVENTS = 100
FINISHED_KEPT = 50
PLANS_KEPT = 20
LATENCIES_KEPT = 500


@dataclass
class PhaseTiming:
    phase: str
    round: int
    started_at: str
    ended_at: str | None = None
    seconds: float | None = None


@dataclass
class DeliberationRow:
    deliberation_id: str
    story_id: str
    plan_id: str
    task_id: str
    title: str
    role: str
    status: DeliberationStatus = DeliberationStatus.PENDING
    phase: str | None = None
    round: int = 0
    requested_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    phases: list[PhaseTiming] = field(default_factory=list)
    winner_id: str | None = None
    winner_score: float | None = None
    winner_content: str | None = None
    rationale: str | None = None
    decided_by: str | None = None
    ranking: list[dict] = field(default_factory=list)
    reason: str | None = None
    duration_ms: int | None = None
    deadline_at: str | None = None
    # {"by", "reason", "at"} of an operator's request.
    cancel_requested: dict | None = None
    cancelled_by: str | None = None
    # A retry's attempt (number, first_id, previous_id, requested_by, reason); None for a first attempt.
    attempt: dict | None = None
    retry_requested: dict | None = None
    retried_as: str | None = None

    @property
    def finished(self) -> bool:
        return self.status.finished


@dataclass
class PlanRow:
    """Ingress's latest answer to an approval of a plan, and how the plan ended, kept apart as in the graph:
    a later approval of the same plan that is rejected replaces the answer, not the conclusion of the
    deliberations the earlier one started, and a conclusion after a rejection keeps no rejection's reasons
    as its own."""

    story_id: str
    plan_id: str
    # When the row last changed: what orders the rows and decides which are kept.
    at: str
    # "accepted" or "rejected", and the answer's approval, time and reasons (none when accepted); None when
    # the answer is older than what the monitor read.
    answer: str | None = None
    answered_at: str | None = None
    # What upstream matches the answer by; all a rejected approval that names no plan has.
    approval_id: str | None = None
    reasons: list[str] = field(default_factory=list)
    # The plan's deliberations, as an acceptance or the conclusion named them: a rejected approval starts
    # none and stops none.
    deliberations: list[str] = field(default_factory=list)
    concluded_at: str | None = None
    revision: int | None = None
    completed: int | None = None
    failed: int | None = None


@dataclass
class Source:
    """A reading the poller takes from JetStream: its value, or why it is unavailable."""

    value: object = None
    unavailable: str | None = "not read yet"
    read_at: str | None = None


@dataclass
class MonitorState:
    councils: dict[str, dict] = field(default_factory=dict)
    deliberations: dict[str, DeliberationRow] = field(default_factory=dict)
    # By "<story>/<plan>", or the approval's id when the rejected approval named no plan.
    plans: dict[str, PlanRow] = field(default_factory=dict)
    # The newest events by when they happened, oldest first: on start the readers deliver each
    # stream's last hour at once, so arrival order would let old events push out new ones.
    events: list[dict] = field(default_factory=list)
    latencies: dict[str, deque] = field(default_factory=dict)
    llm_failures: dict[str, int] = field(default_factory=dict)
    consumers: Source = field(default_factory=Source)
    dead_letters: Source = field(default_factory=Source)
    # The last sequence folded from each stream: the readers deliver each stream in order.
    positions: dict[str, int] = field(default_factory=dict)

    def apply(self, payload: ev.Event, envelope: Envelope, subject: str, stream: str, sequence: int) -> bool:
        """Fold one event; False when it was folded already (a reader that started again)."""
        if sequence <= self.positions.get(stream, 0):
            return False
        self.positions[stream] = sequence
        at = format_time(envelope.occurred_at)
        bisect.insort(self.events, {"at": at, "subject": subject, "stream": stream, "seq": sequence,
                                    "aggregate_id": envelope.aggregate_id, "producer": envelope.producer,
                                    "correlation_id": envelope.correlation_id}, key=_event_order)
        del self.events[:-RECENT_EVENTS]
        handler = _HANDLERS.get(type(payload))
        if handler is not None:
            handler(self, payload, at)
        self._forget_old_results()
        for key in sorted(self.plans, key=lambda k: self.plans[k].at)[:-PLANS_KEPT]:
            del self.plans[key]
        return True

    def _row(self, deliberation_id: str) -> DeliberationRow | None:
        return self.deliberations.get(deliberation_id)

    def _forget_old_results(self) -> None:
        finished = [row for row in self.deliberations.values() if row.finished]
        for row in sorted(finished, key=lambda r: r.finished_at or "")[:-FINISHED_KEPT]:
            del self.deliberations[row.deliberation_id]

    def snapshot(self, now: dt.datetime, nats_connected: bool) -> dict:
        rows = sorted(self.deliberations.values(), key=lambda r: r.requested_at or r.started_at or "", reverse=True)
        return {
            "at": format_time(now),
            "nats": "connected" if nats_connected else "disconnected",
            "councils": [self.councils[role] for role in sorted(self.councils)],
            "in_flight": [_row_dict(r) for r in rows if not r.finished],
            "results": [_row_dict(r) for r in sorted((r for r in rows if r.finished),
                                                     key=lambda r: r.finished_at or "", reverse=True)],
            "plans": [asdict(p) for p in sorted(self.plans.values(), key=lambda p: p.at, reverse=True)],
            "events": list(reversed(self.events)),
            "llm": {role: _latency_summary(values, self.llm_failures.get(role, 0))
                    for role, values in sorted(self.latencies.items())},
            "consumers": asdict(self.consumers),
            "dead_letters": asdict(self.dead_letters),
        }


def _event_order(event: dict) -> tuple:
    return event["at"], event["stream"], event["seq"]


def _row_dict(row: DeliberationRow) -> dict:
    # What became of each operator request, by the same rule as `fleet deliberation show`: a request the
    # collector refused, or a cancel that came after the end, must not read as pending for ever.
    return {**asdict(row),
            "cancel_fate": cancel_fate(row.status, row.cancelled_by).value if row.cancel_requested else None,
            "retry_fate": retry_fate(row.retried_as).value if row.retry_requested else None}


def _latency_summary(values: deque, failures: int) -> dict:
    ordered = sorted(values)
    return {
        "count": len(ordered), "failures": failures,
        "p50_ms": statistics.median(ordered) if ordered else None,
        "p95_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] if ordered else None,
        "max_ms": ordered[-1] if ordered else None,
    }


def _council_created(state: MonitorState, event: ev.CouncilCreated, at: str) -> None:
    council = event.council
    state.councils[council.role.value] = {
        "role": council.role.value, "created_at": at, "created_by": event.created_by,
        "agents": [{"agent_id": a.agent_id, "persona": a.persona, "temperature": a.temperature,
                    "model": a.model} for a in council.agents],
        "rounds": council.protocol.critique_rounds, "quorum": council.protocol.quorum,
    }


def _council_deleted(state: MonitorState, event: ev.CouncilDeleted, at: str) -> None:
    state.councils.pop(event.role.value, None)


def _requested(state: MonitorState, event: ev.DeliberationRequested, at: str) -> None:
    ref = event.deliberation
    row = state.deliberations.setdefault(ref.deliberation_id, DeliberationRow(
        ref.deliberation_id, ref.story_id, ref.plan_id, ref.task_id, event.brief.task.title, ref.role.value))
    row.requested_at = row.requested_at or at
    if (attempt := event.attempt) is not None:
        row.attempt = msgspec.to_builtins(attempt)
        if (previous := state._row(attempt.previous_id)) is not None:
            previous.retried_as = ref.deliberation_id


def _operator_request(event: ev.DeliberationCancelRequested | ev.DeliberationRetryRequested, at: str) -> dict:
    return {"by": event.requested_by, "reason": event.reason, "at": at}


def _cancel_requested(state: MonitorState, event: ev.DeliberationCancelRequested, at: str) -> None:
    if (row := state._row(event.deliberation_id)) is not None:
        row.cancel_requested = _operator_request(event, at)


def _retry_requested(state: MonitorState, event: ev.DeliberationRetryRequested, at: str) -> None:
    if (row := state._row(event.deliberation_id)) is not None:
        row.retry_requested = _operator_request(event, at)


def _started(state: MonitorState, event: ev.DeliberationStarted, at: str) -> None:
    ref = event.deliberation
    row = state.deliberations.setdefault(ref.deliberation_id, DeliberationRow(
        ref.deliberation_id, ref.story_id, ref.plan_id, ref.task_id, event.brief.task.title, ref.role.value))
    row.started_at = format_time(event.started_at)
    row.deadline_at = format_time(ev.overall_deadline(event.started_at, event.council.protocol))
    if not row.finished:
        row.status = DeliberationStatus.IN_PROGRESS


def _close_phase(row: DeliberationRow, at: str) -> None:
    if row.phases and row.phases[-1].ended_at is None:
        last = row.phases[-1]
        last.ended_at = at
        last.seconds = round((dt.datetime.fromisoformat(at) - dt.datetime.fromisoformat(last.started_at))
                             .total_seconds(), 3)


def _advanced(state: MonitorState, event: ev.DeliberationAdvanced, at: str) -> None:
    if (row := state._row(event.deliberation_id)) is None:
        return
    _close_phase(row, at)
    row.phases.append(PhaseTiming(event.phase.value, event.round, at))
    row.phase, row.round = event.phase.value, event.round
    if not row.finished:
        row.status = DeliberationStatus.IN_PROGRESS


def _decided(state: MonitorState, event: ev.DecisionMade, at: str) -> None:
    if (row := state._row(event.deliberation_id)) is None:
        return
    row.rationale, row.decided_by = event.rationale, event.decided_by
    row.ranking = msgspec.to_builtins(event.ranking)


def _completed(state: MonitorState, event: ev.DeliberationCompleted, at: str) -> None:
    if (row := state._row(event.deliberation_id)) is None:
        return
    _close_phase(row, at)
    row.status, row.finished_at, row.duration_ms = DeliberationStatus.COMPLETED, at, event.duration_ms
    row.winner_id, row.winner_score = event.winner.agent_id, event.winner.score
    row.winner_content, row.rationale, row.decided_by = event.winner.content, event.rationale, event.decided_by
    row.ranking = msgspec.to_builtins(event.ranking)


def _failed(state: MonitorState, event: ev.DeliberationFailed, at: str) -> None:
    if (row := state._row(event.deliberation_id)) is None:
        return
    _close_phase(row, at)
    row.status = failed_status(event)
    row.finished_at, row.duration_ms, row.reason = at, event.duration_ms, event.reason
    row.cancelled_by = event.cancelled_by


def _plan_row(state: MonitorState, key: str, story_id: str, plan_id: str, at: str) -> PlanRow:
    row = state.plans.setdefault(key, PlanRow(story_id, plan_id, at))
    row.at = at
    return row


def _answer(row: PlanRow, answer: str, approval_id: str, reasons: list[str], at: str) -> None:
    row.answer, row.answered_at, row.approval_id, row.reasons = answer, at, approval_id, reasons


def _plan_accepted(state: MonitorState, event: ev.PlanAccepted, at: str) -> None:
    row = _plan_row(state, f"{event.story_id}/{event.plan_id}", event.story_id, event.plan_id, at)
    _answer(row, "accepted", event.approval_id, [], at)
    row.deliberations = [d.deliberation_id for d in event.deliberations]


def _plan_rejected(state: MonitorState, event: ev.PlanRejected, at: str) -> None:
    key = f"{event.story_id}/{event.plan_id}" if event.plan_id else event.approval_id
    _answer(_plan_row(state, key, event.story_id, event.plan_id, at), "rejected", event.approval_id,
            list(event.reasons), at)


def _plan_concluded(state: MonitorState, event: ev.PlanConcluded, at: str) -> None:
    row = _plan_row(state, f"{event.story_id}/{event.plan_id}", event.story_id, event.plan_id, at)
    row.concluded_at, row.revision = at, event.revision
    row.completed, row.failed = event.completed, event.failed
    row.deliberations = row.deliberations or [o.deliberation_id for o in event.outcomes]


def _turn_completed(state: MonitorState, event: ev.TurnCompleted, at: str) -> None:
    role = event.deliberation.role.value
    state.latencies.setdefault(role, deque(maxlen=LATENCIES_KEPT)).append(event.latency_ms)


def _turn_failed(state: MonitorState, event: ev.TurnFailed, at: str) -> None:
    role = event.deliberation.role.value
    state.llm_failures[role] = state.llm_failures.get(role, 0) + 1


_HANDLERS = {
    ev.CouncilCreated: _council_created,
    ev.CouncilDeleted: _council_deleted,
    ev.DeliberationRequested: _requested,
    ev.DeliberationCancelRequested: _cancel_requested,
    ev.DeliberationRetryRequested: _retry_requested,
    ev.DeliberationStarted: _started,
    ev.DeliberationAdvanced: _advanced,
    ev.DecisionMade: _decided,
    ev.DeliberationCompleted: _completed,
    ev.DeliberationFailed: _failed,
    ev.TurnCompleted: _turn_completed,
    ev.TurnFailed: _turn_failed,
    ev.PlanAccepted: _plan_accepted,
    ev.PlanRejected: _plan_rejected,
    ev.PlanConcluded: _plan_concluded,
}
