"""The deliberation aggregate: state folded from its events, and the commands each step implies. Pure: no I/O.

Phases run propose -> (critique -> revise) x rounds -> judge -> select. Each phase opens with its
turn requests and a deadline; it closes when every turn answered or the deadline passed. No phase's
deadline falls after the deliberation's overall deadline, which fails it wherever it stands. An
operator may cancel one in progress, and retry one that ended as a new attempt with its own id.

The state keeps what later steps read, no more: the latest draft of each author (earlier versions
leave an empty string, so their count still says how often it was revised) and the answers of the
phase in progress; the text of a closed phase is in the log.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec

from contracts.envelope import deterministic_id
from contracts.errors import Rejected
from contracts.events import (
    AgentProfile,
    Attempt,
    Brief,
    Candidate,
    Choice,
    Council,
    DeadlinePassed,
    DecisionMade,
    DeliberationAdvanced,
    DeliberationCancelRequested,
    DeliberationCompleted,
    DeliberationFailed,
    DeliberationRef,
    DeliberationRequested,
    DeliberationRetryRequested,
    DeliberationScored,
    DeliberationStarted,
    Phase,
    ProposalScore,
    RankedProposal,
    ScoredBy,
    Turn,
    TurnCompleted,
    TurnFailed,
    TurnInput,
    TurnRequested,
    Verdict,
    Winner,
    overall_deadline,
)
from contracts.queries import failed_status
from services.collector.scoring import eligible, rank, score_all
from services.mesh.messages import Outgoing

DECIDED_BY_RANKING = "ranking"
# How a turn left unanswered at its phase deadline is described.
DEADLINE_ERROR = "DeadlinePassed"


class TurnState(msgspec.Struct, frozen=True, kw_only=True):
    turn: Turn
    status: Literal["pending", "completed", "failed"] = "pending"
    content: str = ""
    verdict: Verdict | None = None
    choice: Choice | None = None
    error: str = ""
    # Failed because its phase's deadline passed with it unanswered: a failure it causes is a timeout.
    timed_out: bool = False


class Deliberation(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the collector knows of one deliberation."""

    ref: DeliberationRef
    brief: Brief
    council: Council
    architect: AgentProfile
    started_at: dt.datetime
    # Set when this deliberation is a retry of an earlier one.
    attempt: Attempt | None = None
    phase: Phase = Phase.PROPOSE
    round: int = 0
    deadline_at: dt.datetime | None = None
    # When the phase in progress opened (None in records stored before it was kept).
    phase_opened_at: dt.datetime | None = None
    # Every turn ever asked for, by Turn.key: outcomes are recorded once per key. Only the phase in
    # progress keeps its answers' text; a closed phase keeps each turn's status and error.
    turns: dict[str, TurnState] = {}
    # Each author's proposal, then each revision of it; only the latest keeps its text.
    drafts: dict[str, list[str]] = {}
    scores: list[ProposalScore] = []
    ranking: list[RankedProposal] = []
    # At most one of the two is set: msgspec cannot decode an untagged union of Structs.
    completed: DeliberationCompleted | None = None
    failed: DeliberationFailed | None = None
    # Once an operator retried it: the new attempt's id, and the request, so that only a repeat of the
    # same request is answered again.
    retried_as: str | None = None
    retry_request: DeliberationRetryRequested | None = None

    @property
    def finished(self) -> bool:
        return self.completed is not None or self.failed is not None

    @property
    def overall_deadline_at(self) -> dt.datetime:
        return overall_deadline(self.started_at, self.council.protocol)

    def current_turns(self) -> list[TurnState]:
        return [t for t in self.turns.values() if t.turn.phase == self.phase and t.turn.round == self.round]

    def authors(self) -> list[str]:
        """Agents with a proposal, in council order."""
        return [a.agent_id for a in self.council.agents if a.agent_id in self.drafts]

    def profile(self, agent_id: str) -> AgentProfile:
        if agent_id == self.architect.agent_id:
            return self.architect
        return next(a for a in self.council.agents if a.agent_id == agent_id)


type DeliberationEvent = (
    DeliberationStarted | TurnCompleted | TurnFailed | DeadlinePassed | DeliberationCancelRequested
    | DeliberationRetryRequested
)
type Step = tuple[Deliberation, list[Outgoing]]


def step(state: Deliberation | None, event: DeliberationEvent, now: dt.datetime) -> Step:
    """Apply one event; return the new state and what to publish. Repeats and stale events change nothing.

    Raises Rejected for a retry that can never be granted (in progress, or retried already).
    """
    if isinstance(event, DeliberationStarted):
        return begin(event, now) if state is None else (state, [])
    if state is None:
        raise LookupError(f"no deliberation {event.aggregate_id()} has started; its start may not be processed yet")
    if isinstance(event, DeliberationRetryRequested):
        return on_retry(state, event)
    if state.finished:
        return state, []
    if isinstance(event, DeliberationCancelRequested):
        return on_cancel(state, event, now)
    if isinstance(event, DeadlinePassed):
        return on_deadline(state, event, now)
    return on_outcome(state, event, now)


def begin(started: DeliberationStarted, now: dt.datetime) -> Step:
    state = Deliberation(
        ref=started.deliberation,
        brief=started.brief,
        council=started.council,
        architect=started.architect,
        started_at=started.started_at,
        attempt=started.attempt,
    )
    turns = [
        (Turn(phase=Phase.PROPOSE, round=0, agent_id=a.agent_id, author_id=a.agent_id), a, TurnInput())
        for a in started.council.agents
    ]
    return open_phase(state, Phase.PROPOSE, 0, turns, now)


def on_outcome(state: Deliberation, event: TurnCompleted | TurnFailed, now: dt.datetime) -> Step:
    key = event.turn.key
    known = state.turns.get(key)
    if known is None or known.status != "pending":
        return state, []  # a repeat, or an answer that came after its phase's deadline
    if isinstance(event, TurnCompleted):
        recorded = msgspec.structs.replace(
            known, status="completed", content=event.content, verdict=event.verdict, choice=event.choice
        )
    else:
        recorded = msgspec.structs.replace(known, status="failed", error=f"{event.error_class}: {event.message}")
    state = with_turn(state, recorded)
    if any(t.status == "pending" for t in state.current_turns()):
        return state, []
    return close_phase(state, now)


def on_deadline(state: Deliberation, deadline: DeadlinePassed, now: dt.datetime) -> Step:
    if (deadline.phase, deadline.round) != (state.phase, state.round):
        return state, []  # the phase closed before its deadline
    overall = deadline.deadline_at >= state.overall_deadline_at
    seconds = state.council.protocol.deliberation_deadline_s if overall else state.council.protocol.phase_deadline_s
    pending = [t for t in state.current_turns() if t.status == "pending"]
    # A turn is asked only when its phase opens, so at the overall deadline it did not have all of
    # deliberation_deadline_s: the error names the deadline that passed, not a time it was given.
    error = (f"{DEADLINE_ERROR}: the deliberation's overall deadline of {seconds:g}s passed" if overall
             else f"{DEADLINE_ERROR}: no answer within {seconds:g}s")
    for turn in pending:
        state = with_turn(state, msgspec.structs.replace(turn, status="failed", error=error, timed_out=True))
    if overall:
        return fail(state, f"the deliberation's overall deadline of {seconds:g}s passed in the {state.phase} phase "
                           f"(round {state.round}) with {len(pending)} of {len(state.current_turns())} turns "
                           "unanswered", now, timed_out=True)
    return close_phase(state, now)


def too_large_to_store(state: Deliberation, size: int, limit: int, now: dt.datetime) -> Step:
    """The step that would have stored a record of `size` bytes, over the store's `limit`, ends it instead.

    The record cannot be saved, so the event would be retried until dead-lettered and the deliberation
    would hang until its overall deadline: one failure that says why is better. Answers near Text's
    64,000 characters in wide characters (up to 6 bytes each as JSON) are what gets there.
    """
    return fail(state, f"its stored record would be {size:,} bytes, over the store's limit of {limit:,} bytes: "
                       "the drafts, answers and turn requests it must hold at once are too large", now, timed_out=False)


def on_cancel(state: Deliberation, request: DeliberationCancelRequested, now: dt.datetime) -> Step:
    """An operator stopped it: one failure, in the phase it was in, that says who and why."""
    reason = f"cancelled by {request.requested_by}" + (f": {request.reason}" if request.reason else "")
    return fail(state, reason, now, cancelled_by=request.requested_by)


def attempt_id(first_id: str, number: int) -> str:
    """The id of attempt `number` (2 for the first retry) of the deliberation first named `first_id`."""
    return deterministic_id("deliberation.attempt", first_id, str(number))


def next_attempt(deliberation_id: str, attempt: Attempt | None, requested_by: str, reason: str) -> Attempt:
    """The attempt that retrying `deliberation_id` (itself `attempt`, or a first attempt) starts."""
    first_id = attempt.first_id if attempt else deliberation_id
    number = attempt.number + 1 if attempt else 2
    return Attempt(first_id=first_id, previous_id=deliberation_id, number=number, requested_by=requested_by,
                   reason=reason)


def on_retry(state: Deliberation, request: DeliberationRetryRequested) -> Step:
    """A new deliberation of the same (plan, task, role), brief, council and architect, with its own id."""
    deliberation_id = state.ref.deliberation_id
    if request == state.retry_request:
        return state, []  # the same request again: it was answered
    if not state.finished:
        raise Rejected(f"deliberation {deliberation_id} is in progress; cancel it first")
    if state.retried_as is not None:
        raise Rejected(f"deliberation {deliberation_id} was already retried as {state.retried_as}; retry that one")
    attempt = next_attempt(deliberation_id, state.attempt, request.requested_by, request.reason)
    new_id = attempt_id(attempt.first_id, attempt.number)
    requested = DeliberationRequested(
        deliberation=msgspec.structs.replace(state.ref, deliberation_id=new_id),
        brief=state.brief,
        approved_by=request.requested_by,
        council=state.council,
        architect=state.architect,
        attempt=attempt,
    )
    state = msgspec.structs.replace(state, retried_as=new_id, retry_request=request)
    return state, [Outgoing(requested, event_id=deterministic_id("deliberation.requested", new_id))]


def with_turn(state: Deliberation, turn: TurnState) -> Deliberation:
    drafts = state.drafts
    phase = turn.turn.phase
    if turn.status == "completed" and phase in (Phase.PROPOSE, Phase.REVISE):
        author = turn.turn.author_id
        # Earlier versions are never read again; an empty string keeps their count.
        drafts = {**drafts, author: [*("" for _ in drafts.get(author, [])), turn.content]}
    return msgspec.structs.replace(state, turns={**state.turns, turn.turn.key: turn}, drafts=drafts)


def without_answers(turn: TurnState) -> TurnState:
    """A turn of a closed phase: its outcome, without the text later steps no longer read."""
    return msgspec.structs.replace(turn, content="", verdict=None, choice=None)


# --- phases ------------------------------------------------------------------------------

type TurnPlan = tuple[Turn, AgentProfile, TurnInput]


def open_phase(state: Deliberation, phase: Phase, round_: int, plans: list[TurnPlan], now: dt.datetime) -> Step:
    """Ask for the phase's turns, under a deadline no later than the overall one.

    A phase that opens after the overall deadline still opens, with that deadline, already past: the
    scheduler delivers it at once and `on_deadline` fails the deliberation. Deciding here from `now`
    instead would hang the outcome on the handler's clock, which a replay of the log cannot know.
    """
    deadline_at = min(now + dt.timedelta(seconds=state.council.protocol.phase_deadline_s), state.overall_deadline_at)
    deliberation_id = state.ref.deliberation_id
    turns = {key: without_answers(turn) for key, turn in state.turns.items()}
    outgoing = [
        Outgoing(
            DeliberationAdvanced(
                deliberation_id=deliberation_id,
                phase=phase,
                round=round_,
                turns=[turn.key for turn, _, _ in plans],
                deadline_at=deadline_at,
            ),
            event_id=deterministic_id("deliberation.advanced", deliberation_id, phase, str(round_)),
        )
    ]
    for turn, agent, turn_input in plans:
        turns[turn.key] = TurnState(turn=turn)
        request = TurnRequested(deliberation=state.ref, turn=turn, agent=agent, brief=state.brief, input=turn_input)
        outgoing.append(Outgoing(request, event_id=deterministic_id("turn.requested", deliberation_id, turn.key)))
    outgoing.append(
        Outgoing(
            DeadlinePassed(deliberation_id=deliberation_id, phase=phase, round=round_, deadline_at=deadline_at),
            event_id=deterministic_id("deliberation.deadline", deliberation_id, phase, str(round_)),
            deliver_at=deadline_at,
        )
    )
    state = msgspec.structs.replace(state, phase=phase, round=round_, deadline_at=deadline_at, phase_opened_at=now,
                                    turns=turns)
    return state, outgoing


def close_phase(state: Deliberation, now: dt.datetime) -> Step:
    match state.phase:
        case Phase.PROPOSE:
            return after_proposals(state, now)
        case Phase.CRITIQUE:
            return after_critiques(state, now)
        case Phase.REVISE:
            return critique_or_judge(state, state.round + 1, now)
        case Phase.JUDGE:
            return after_judging(state, now)
        case Phase.SELECT:
            return after_selection(state, now)


def after_proposals(state: Deliberation, now: dt.datetime) -> Step:
    proposed, quorum, size = len(state.authors()), state.council.protocol.quorum, len(state.council.agents)
    if proposed < quorum:
        reasons = "; ".join(f"{t.turn.agent_id}: {t.error}" for t in state.current_turns() if t.status == "failed")
        return fail(state, f"quorum not met: {proposed} of {size} agents proposed, {quorum} needed ({reasons})", now)
    return critique_or_judge(state, 1, now)


def critique_or_judge(state: Deliberation, round_: int, now: dt.datetime) -> Step:
    """Critique round `round_` if one is due and there are peers to review; else judge."""
    authors = state.authors()
    if round_ > state.council.protocol.critique_rounds or len(authors) < 2:
        return open_judging(state, now)
    # Agent i reviews agent i+1, round the circle, among the agents that proposed.
    plans = [
        (
            Turn(phase=Phase.CRITIQUE, round=round_, agent_id=critic, author_id=author),
            state.profile(critic),
            TurnInput(proposal=state.drafts[author][-1]),
        )
        for critic, author in zip(authors, authors[1:] + authors[:1], strict=True)
    ]
    return open_phase(state, Phase.CRITIQUE, round_, plans, now)


def after_critiques(state: Deliberation, now: dt.datetime) -> Step:
    """Each author whose proposal was critiqued revises it; without a critique it stands as it is."""
    plans = [
        (
            Turn(phase=Phase.REVISE, round=state.round, agent_id=t.turn.author_id, author_id=t.turn.author_id),
            state.profile(t.turn.author_id),
            TurnInput(proposal=state.drafts[t.turn.author_id][-1], critique=t.content),
        )
        for t in state.current_turns()
        if t.status == "completed"
    ]
    if not plans:
        return critique_or_judge(state, state.round + 1, now)
    return open_phase(state, Phase.REVISE, state.round, plans, now)


def open_judging(state: Deliberation, now: dt.datetime) -> Step:
    # The judge is the architect at temperature 0: the same proposal should get the same verdict.
    judge = msgspec.structs.replace(state.architect, temperature=0.0)
    plans = [
        (
            Turn(phase=Phase.JUDGE, round=0, agent_id=judge.agent_id, author_id=author),
            judge,
            TurnInput(proposal=state.drafts[author][-1]),
        )
        for author in state.authors()
    ]
    return open_phase(state, Phase.JUDGE, 0, plans, now)


def after_judging(state: Deliberation, now: dt.datetime) -> Step:
    judged = {t.turn.author_id: t for t in state.current_turns()}
    finals = {author: state.drafts[author][-1] for author in state.authors()}
    verdicts = {a: t.verdict for a, t in judged.items() if t.status == "completed" and t.verdict is not None}
    errors = {a: t.error or "the judge gave no verdict" for a, t in judged.items() if a not in verdicts}
    scores = score_all(finals, verdicts, errors)
    ranking = rank(scores, {author: len(state.drafts[author]) - 1 for author in finals})
    state = msgspec.structs.replace(state, scores=scores, ranking=ranking)
    deliberation_id = state.ref.deliberation_id
    candidates, scored_by = eligible(ranking, state.council.protocol.top_k)
    scored = Outgoing(
        DeliberationScored(deliberation_id=deliberation_id, scores=scores, scored_by=scored_by),
        event_id=deterministic_id("deliberation.scored", deliberation_id),
    )
    if not candidates:
        reasons = "; ".join(_unfit(s) for s in scores)
        state, outgoing = fail(state, f"no proposal was both scored and qualified ({reasons})", now)
        return state, [scored, *outgoing]
    plan = (
        Turn(phase=Phase.SELECT, round=0, agent_id=state.architect.agent_id, author_id=""),
        state.architect,
        TurnInput(
            candidates=[
                Candidate(agent_id=c.agent_id, content=finals[c.agent_id], score=c.score) for c in candidates
            ]
        ),
    )
    state, outgoing = open_phase(state, Phase.SELECT, 0, [plan], now)
    return state, [scored, *outgoing]


def _unfit(score: ProposalScore) -> str:
    if not score.qualified:
        failed = ", ".join(f"{c.check}: {c.detail}" for c in score.checks if not c.passed)
        return f"{score.agent_id} disqualified ({failed})"
    return f"{score.agent_id} not scored ({score.scoring_error})"


def after_selection(state: Deliberation, now: dt.datetime) -> Step:
    (selection,) = state.current_turns()
    eligible_ranks, scored_by = eligible(state.ranking, state.council.protocol.top_k)
    candidates = [c.agent_id for c in eligible_ranks]
    choice = selection.choice if selection.status == "completed" else None
    if choice is not None and choice.winner_id in candidates:
        winner_id, rationale, decided_by, error = choice.winner_id, choice.rationale, state.architect.agent_id, None
    else:
        error = selection.error or (
            f"the architect chose {choice.winner_id!r}, who is not a candidate" if choice else "no choice"
        )
        winner_id, decided_by = candidates[0], DECIDED_BY_RANKING
        best = "highest-scored" if scored_by == ScoredBy.JUDGE else "best-ranked (by the checks)"
        rationale = f"The architect could not decide ({error}); the {best} candidate wins."
    deliberation_id = state.ref.deliberation_id
    decision = DecisionMade(
        deliberation_id=deliberation_id,
        winner_id=winner_id,
        candidates=candidates,
        ranking=state.ranking,
        rationale=rationale,
        decided_by=decided_by,
        architect_error=error,
        scored_by=scored_by,
    )
    score = next(s.score for s in state.scores if s.agent_id == winner_id)
    completed = DeliberationCompleted(
        **_ids(state.ref),
        winner=Winner(
            agent_id=winner_id,
            content=state.drafts[winner_id][-1],
            score=score,
            revisions=len(state.drafts[winner_id]) - 1,
        ),
        ranking=state.ranking,
        rationale=rationale,
        decided_by=decided_by,
        duration_ms=_duration_ms(state, now),
        failed_agents=[a.agent_id for a in state.council.agents if a.agent_id not in state.drafts],
        scored_by=scored_by,
    )
    state = msgspec.structs.replace(state, completed=completed)
    return state, [
        Outgoing(decision, event_id=deterministic_id("decision.made", deliberation_id)),
        Outgoing(completed, event_id=deterministic_id("deliberation.result", deliberation_id)),
    ]


def fail(state: Deliberation, reason: str, now: dt.datetime, *, timed_out: bool | None = None,
         cancelled_by: str | None = None) -> Step:
    """The one failure; a timeout unless said otherwise when a turn of the phase timed out."""
    if timed_out is None:
        timed_out = cancelled_by is None and any(t.timed_out for t in state.current_turns())
    failed = DeliberationFailed(
        **_ids(state.ref), phase=state.phase, reason=reason, duration_ms=_duration_ms(state, now), timed_out=timed_out,
        cancelled_by=cancelled_by,
    )
    state = msgspec.structs.replace(state, failed=failed)
    return state, [Outgoing(failed, event_id=deterministic_id("deliberation.result", state.ref.deliberation_id))]


def _ids(ref: DeliberationRef) -> dict:
    return {
        "deliberation_id": ref.deliberation_id,
        "story_id": ref.story_id,
        "plan_id": ref.plan_id,
        "task_id": ref.task_id,
        "role": ref.role,
    }


def ended_phase(before: Deliberation | None, after: Deliberation, now: dt.datetime) -> tuple[Phase, float] | None:
    """The phase a step closed and how many seconds it lasted; None while the same phase goes on."""
    if before is None or before.deadline_at is None or before.finished:
        return None
    if (after.phase, after.round) == (before.phase, before.round) and not after.finished:
        return None
    seconds = before.council.protocol.phase_deadline_s
    opened = before.phase_opened_at or before.deadline_at - dt.timedelta(seconds=seconds)
    return before.phase, max((now - opened).total_seconds(), 0.0)


def outcome_of(state: Deliberation) -> str | None:
    """completed, failed, timed_out or cancelled once finished (the read models' status); None before."""
    if state.completed is not None:
        return "completed"
    if state.failed is not None:
        return failed_status(state.failed).value.lower()
    return None


def _duration_ms(state: Deliberation, now: dt.datetime) -> int:
    return max(int((now - state.started_at).total_seconds() * 1000), 0)
