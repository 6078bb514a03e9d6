"""Re-running a recorded deliberation's decision logic from its events, with no LLM call. Pure.

The recorded turn outcomes (proposals, critiques, revisions, the judges' verdicts, the architect's
choice) are the inputs; the collector's own `step` folds them again. What comes out (scores, ranking,
winner) is set beside what was recorded: the same code on the same inputs must decide the same, so
a difference means the decision logic changed since, or the log was tampered with.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from contracts.events import (
    DeadlinePassed,
    DecisionMade,
    DeliberationCancelRequested,
    DeliberationCompleted,
    DeliberationFailed,
    DeliberationScored,
    DeliberationStarted,
    Event,
    TurnCompleted,
    TurnFailed,
)
from services.collector.domain import step


@dataclass(frozen=True)
class Decision:
    """What a deliberation decided, recorded or recomputed."""

    scores: dict[str, float | None]
    qualified: dict[str, bool]  # False: a deterministic check disqualified the proposal
    ranking: list[str]
    candidates: list[str]  # whom the architect was asked to choose from: the selection's input
    winner: str | None
    outcome: str  # completed, failed or UNFINISHED
    reason: str = ""
    decided_by: str = ""  # the architect's id when its choice stood, else "ranking"


@dataclass(frozen=True)
class Replay:
    recorded: Decision
    recomputed: Decision

    @property
    def same_winner(self) -> bool:
        return (self.recorded.outcome, self.recorded.winner) == (self.recomputed.outcome, self.recomputed.winner)

    @property
    def differences(self) -> list[str]:
        found = []
        for agent in sorted(set(self.recorded.scores) | set(self.recomputed.scores)):
            before, after = self.recorded.scores.get(agent), self.recomputed.scores.get(agent)
            if before != after:
                found.append(f"score of {agent}: recorded {before}, recomputed {after}")
        for agent in sorted(set(self.recorded.qualified) | set(self.recomputed.qualified)):
            before, after = self.recorded.qualified.get(agent), self.recomputed.qualified.get(agent)
            if before != after:
                found.append(f"{agent} qualified: recorded {before}, recomputed {after}")
        if self.recorded.ranking != self.recomputed.ranking:
            found.append(f"ranking: recorded {self.recorded.ranking}, recomputed {self.recomputed.ranking}")
        if self.recorded.candidates != self.recomputed.candidates:
            found.append(f"candidates: recorded {self.recorded.candidates}, recomputed {self.recomputed.candidates}")
        if self.recorded.decided_by != self.recomputed.decided_by:
            found.append(f"decided by: recorded {self.recorded.decided_by}, recomputed {self.recomputed.decided_by}")
        if not self.same_winner:
            found.append(f"winner: recorded {self.recorded.winner} ({self.recorded.outcome}), "
                         f"recomputed {self.recomputed.winner} ({self.recomputed.outcome})")
        return found


UNFINISHED = "unfinished"  # no result recorded, or none recomputed

# The inputs the collector folds that can change a decision, and the results it published, as recorded.
# A cancel ends a deliberation, so it is one. A retry is not: it is granted only once the deliberation has
# ended, and what it changes (the new attempt's id) decides nothing here; a refused one would only raise.
INPUTS = (DeliberationStarted, DeadlinePassed, TurnCompleted, TurnFailed, DeliberationCancelRequested)
RESULTS = (DeliberationScored, DecisionMade, DeliberationCompleted, DeliberationFailed)


def decision_of(events: Sequence[Event]) -> Decision:
    """The decision the results among `events` state; the last of each kind counts."""
    scored = next((e for e in reversed(events) if isinstance(e, DeliberationScored)), None)
    scores = {s.agent_id: s.score for s in scored.scores} if scored else {}
    qualified = {s.agent_id: s.qualified for s in scored.scores} if scored else {}
    result = next((e for e in reversed(events) if isinstance(e, DeliberationCompleted | DeliberationFailed)), None)
    decision = next((e for e in reversed(events) if isinstance(e, DecisionMade)), None)
    candidates = list(decision.candidates) if decision else []
    if isinstance(result, DeliberationCompleted):
        decided_by = decision.decided_by if decision else result.decided_by
        return Decision(scores, qualified, [r.agent_id for r in result.ranking], candidates, result.winner.agent_id,
                        "completed", decided_by=decided_by)
    if isinstance(result, DeliberationFailed):
        return Decision(scores, qualified, [], candidates, None, "failed", result.reason)
    return Decision(scores, qualified, [], candidates, None, UNFINISHED)


def replay(inputs: Sequence[tuple[dt.datetime, Event]], recorded: Sequence[Event]) -> Replay:
    """Fold the recorded inputs, in the order they were stored, through the collector's `step`."""
    ordered = sorted((item for item in inputs if isinstance(item[1], INPUTS)), key=lambda item: item[0])
    if not any(isinstance(event, DeliberationStarted) for _, event in ordered):
        raise LookupError("the deliberation never started: there is no decision to replay")
    state, published = None, []
    for at, event in ordered:
        if state is None and not isinstance(event, DeliberationStarted):
            continue
        state, outgoing = step(state, event, at)
        published += [o.payload for o in outgoing]
    return Replay(recorded=decision_of(recorded), recomputed=decision_of(published))
