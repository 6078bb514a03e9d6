"""What each event writes into the key-value read model: pure functions from an event to commands.

Keys are relative to the projection's namespace (the store prefixes them). Each hash field is written
by events of one stream only, counters only ever add, and the activity feed is ordered by event time,
so the final content does not depend on how the streams interleave: a rebuild gives the same model.

Every key an event writes is dated by the event (`at`): the store keeps it for the read models'
retention after its latest date, and so does a rebuild, so the two agree on what has expired too.
Keys shared by every aggregate are not dated: the deliberations index drops members older than the
retention instead (`aged`), the activity feed keeps its newest lines, and counters are kept per day.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from json.encoder import encode_basestring_ascii as _json_string

import msgspec

from contracts import events as ev
from contracts.envelope import Envelope, format_time
from contracts.queries import DeliberationStatus, failed_status

ACTIVITY_KEY = "activity"
ACTIVITY_KEPT = 200
DELIBERATIONS_KEY = "deliberations"


def deliberation_key(deliberation_id: str) -> str:
    return f"deliberation:{deliberation_id}"


def story_deliberations_key(story_id: str) -> str:
    return f"story:{story_id}:deliberations"


def story_key(story_id: str) -> str:
    # Every story key ends in its own suffix: a bare `story:{id}` would be another story's set when the id
    # itself ends in ":deliberations" or ":transitions", and writing a hash there fails with WRONGTYPE.
    return f"story:{story_id}:state"


def story_transitions_key(story_id: str) -> str:
    return f"story:{story_id}:transitions"


def stats_day(at: datetime) -> str:
    """The UTC day a counted fact falls on: counters are kept per day, so they expire with their facts."""
    return at.date().isoformat()


def council_stats_key(role: str, day: str) -> str:
    return f"council:{role}:stats:{day}"


def dead_letter_stats_key(day: str) -> str:
    return f"deadletters:stats:{day}"


def counted_key(key: str) -> str:
    """A hash of the facts already counted, kept beside what they belong to (a deliberation, a day's dead
    letters) and dated with it, so it goes when they do; a copy of a fact counted there adds nothing."""
    return f"counted:{key}"

# json.dumps(value, sort_keys=True) builds an encoder per call; one shared encoder writes the same bytes.
_JSON = json.JSONEncoder(sort_keys=True)


@dataclass(frozen=True)
class SetFields:
    key: str
    fields: dict[str, str]
    # When the event that wrote it happened (epoch seconds); None: a key kept for good.
    at: float | None = None


@dataclass(frozen=True)
class CountOnce:
    """Add to counters in a hash, once per fact: a copy of the event stored again adds nothing.

    `fact` names what is counted (a deliberation's result, a turn's outcome), not the message, since a
    copy stored past the duplicate window is a new message with the same fact. `marker` is the hash that
    remembers it (counted_key of what the fact belongs to). A fact dated past the retention counts nothing:
    its marker may be gone, and it would count twice.
    """

    key: str
    amounts: dict[str, int]
    fact: str
    marker: str
    at: float | None = None


@dataclass(frozen=True)
class AddToIndex:
    """A sorted-set member: `capped` keeps only the highest-scored that many; `aged` (scores are event
    times) drops members older than the retention, for an index that outlives each of its members."""

    key: str
    member: str
    score: float
    capped: int | None = None
    aged: bool = False
    at: float | None = None


@dataclass(frozen=True)
class AddToSet:
    key: str
    member: str
    at: float | None = None


type KvWrite = SetFields | CountOnce | AddToIndex | AddToSet


def _fields(**values) -> dict[str, str]:
    return {
        name: value if isinstance(value, str) else _JSON.encode(value)
        for name, value in values.items()
        if value is not None
    }


def _deliberation(key_id: str, **values) -> SetFields:
    return SetFields(deliberation_key(key_id), _fields(**values))


def _story_transitioned(event: ev.StoryTransitioned, envelope: Envelope) -> list[KvWrite]:
    at = format_time(envelope.occurred_at)
    transition = {"event_id": envelope.event_id, "from_state": event.from_state, "to_state": event.to_state,
                  "by": event.transitioned_by, "reason": event.reason, "at": at}
    return [
        # The state is the last transition's, in the order the story's one stream keeps.
        SetFields(story_key(event.story_id), _fields(state=event.to_state, state_since=at)),
        AddToIndex(story_transitions_key(event.story_id), _JSON.encode(transition), envelope.occurred_at.timestamp()),
    ]


def _requested(event: ev.DeliberationRequested, envelope: Envelope) -> list[KvWrite]:
    ref, attempt = event.deliberation, event.attempt
    writes: list[KvWrite] = [
        _deliberation(
            ref.deliberation_id, deliberation_id=ref.deliberation_id, story_id=ref.story_id, plan_id=ref.plan_id,
            task_id=ref.task_id, role=ref.role.value, title=event.brief.task.title,
            status=DeliberationStatus.PENDING.value,
            requested_at=format_time(envelope.occurred_at), agents=[a.agent_id for a in event.council.agents],
            attempt=_builtins(attempt),
        ),
        AddToIndex(DELIBERATIONS_KEY, ref.deliberation_id, envelope.occurred_at.timestamp(), aged=True),
        AddToSet(story_deliberations_key(ref.story_id), ref.deliberation_id),
    ]
    if attempt is not None:
        writes.append(_deliberation(attempt.previous_id, retried_as=ref.deliberation_id))
    return writes


def _builtins(value) -> dict | None:
    return None if value is None else msgspec.to_builtins(value)


def _operator_request(event: ev.DeliberationCancelRequested | ev.DeliberationRetryRequested,
                      envelope: Envelope) -> dict:
    return {"by": event.requested_by, "reason": event.reason, "at": format_time(envelope.occurred_at)}


def _cancel_requested(event: ev.DeliberationCancelRequested, envelope: Envelope) -> list[KvWrite]:
    return [_deliberation(event.deliberation_id, cancel_requested=_operator_request(event, envelope))]


def _retry_requested(event: ev.DeliberationRetryRequested, envelope: Envelope) -> list[KvWrite]:
    return [_deliberation(event.deliberation_id, retry_requested=_operator_request(event, envelope))]


def _started(event: ev.DeliberationStarted, envelope: Envelope) -> list[KvWrite]:
    return [_deliberation(event.deliberation.deliberation_id, status=DeliberationStatus.IN_PROGRESS.value,
                          started_at=format_time(event.started_at),
                          deadline_s=event.council.protocol.deliberation_deadline_s,
                          deadline_at=format_time(ev.overall_deadline(event.started_at, event.council.protocol)))]


def _advanced(event: ev.DeliberationAdvanced, envelope: Envelope) -> list[KvWrite]:
    return [_deliberation(
        event.deliberation_id, phase=event.phase.value, round=event.round,
        **{f"phase_started:{event.phase.value}:{event.round}": format_time(envelope.occurred_at)},
    )]


def _decided(event: ev.DecisionMade, envelope: Envelope) -> list[KvWrite]:
    return [_deliberation(
        event.deliberation_id, decided_by=event.decided_by, scored_by=event.scored_by.value, rationale=event.rationale,
        architect_error=event.architect_error,
        ranking=[{"rank": r.rank, "agent_id": r.agent_id, "score": r.score, "qualified": r.qualified}
                 for r in event.ranking],
    )]


def _completed(event: ev.DeliberationCompleted, envelope: Envelope) -> list[KvWrite]:
    stats = council_stats_key(event.role.value, stats_day(envelope.occurred_at))
    return [
        _deliberation(
            event.deliberation_id, status=DeliberationStatus.COMPLETED.value, winner_id=event.winner.agent_id,
            winner_score=event.winner.score, winner_content=event.winner.content,
            winner_revisions=event.winner.revisions, duration_ms=event.duration_ms,
            finished_at=format_time(envelope.occurred_at), failed_agents=list(event.failed_agents),
        ),
        CountOnce(stats, {"completed": 1, "duration_ms_total": event.duration_ms,
                          f"wins:{event.winner.agent_id}": 1}, fact=f"result/{event.deliberation_id}",
                  marker=_marker(event.deliberation_id)),
    ]


def _failed(event: ev.DeliberationFailed, envelope: Envelope) -> list[KvWrite]:
    status = failed_status(event).value
    stats = council_stats_key(event.role.value, stats_day(envelope.occurred_at))
    return [
        _deliberation(event.deliberation_id, status=status, reason=event.reason, failed_phase=event.phase.value,
                      duration_ms=event.duration_ms, finished_at=format_time(envelope.occurred_at),
                      cancelled_by=event.cancelled_by),
        CountOnce(stats, {status.lower(): 1, "duration_ms_total": event.duration_ms},
                  fact=f"result/{event.deliberation_id}", marker=_marker(event.deliberation_id)),
    ]


def _turn_completed(event: ev.TurnCompleted, envelope: Envelope) -> list[KvWrite]:
    return [CountOnce(
        council_stats_key(event.deliberation.role.value, stats_day(envelope.occurred_at)),
        {"turns_completed": 1, "prompt_tokens": event.prompt_tokens, "completion_tokens": event.completion_tokens,
         "llm_latency_ms_total": event.latency_ms},
        fact=_turn_fact(event), marker=_marker(event.deliberation.deliberation_id),
    )]


def _turn_failed(event: ev.TurnFailed, envelope: Envelope) -> list[KvWrite]:
    return [CountOnce(council_stats_key(event.deliberation.role.value, stats_day(envelope.occurred_at)),
                      {"turns_failed": 1, f"errors:{event.error_class}": 1}, fact=_turn_fact(event),
                      marker=_marker(event.deliberation.deliberation_id))]


def _marker(deliberation_id: str) -> str:
    return counted_key(deliberation_key(deliberation_id))


def _turn_fact(event: ev.TurnCompleted | ev.TurnFailed) -> str:
    """A turn has one outcome: whichever arrives first is counted."""
    return f"turn/{event.deliberation.deliberation_id}/{event.turn.key}"


def _rejected(event: ev.MessageRejected, envelope: Envelope) -> list[KvWrite]:
    stats = dead_letter_stats_key(stats_day(envelope.occurred_at))
    return [CountOnce(stats, {"total": 1, f"service:{event.service}": 1, f"stream:{event.stream}": 1},
                      fact=f"letter/{event.consumer}/{event.stream}/{event.stream_sequence}",
                      marker=counted_key(stats))]


def _redriven(event: ev.MessageRedriven, envelope: Envelope) -> list[KvWrite]:
    stats = dead_letter_stats_key(stats_day(envelope.occurred_at))
    return [CountOnce(stats, {"redriven": 1}, fact=f"redrive/{event.letter_id}", marker=counted_key(stats))]


PROJECTORS: dict[type[ev.Event], Callable[[ev.Event, Envelope], list[KvWrite]]] = {
    ev.StoryTransitioned: _story_transitioned,
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
    ev.MessageRejected: _rejected,
    ev.MessageRedriven: _redriven,
}


def activity_entry(event: ev.Event, envelope: Envelope) -> AddToIndex:
    """One line of the monitoring feed; unique per event, so replays add nothing.

    The line is what `json.dumps(entry, sort_keys=True)` writes for these six strings, put together
    directly: the general encoder was a fifth of the KV model's time in a rebuild. A unit test
    compares the two.
    """
    member = (
        f'{{"aggregate_id": {_json_string(envelope.aggregate_id)}, '
        f'"at": {_json_string(format_time(envelope.occurred_at))}, '
        f'"correlation_id": {_json_string(envelope.correlation_id)}, "event_id": {_json_string(envelope.event_id)}, '
        f'"producer": {_json_string(envelope.producer)}, '
        f'"type": {_json_string(f"{envelope.event_type}.v{envelope.schema_version}")}}}'
    )
    return AddToIndex(ACTIVITY_KEY, member, envelope.occurred_at.timestamp(), capped=ACTIVITY_KEPT)


def kv_writes(event: ev.Event, envelope: Envelope) -> list[KvWrite]:
    projector = PROJECTORS.get(type(event))
    at = envelope.occurred_at.timestamp()
    own = projector(event, envelope) if projector else []
    return [*(_dated(write, at) for write in own), activity_entry(event, envelope)]


def _dated(write: KvWrite, at: float) -> KvWrite:
    """The write, its key dated by the event; an aged index is not: its members carry their own dates."""
    if isinstance(write, AddToIndex) and write.aged:
        return write
    return replace(write, at=at)
