"""What the evaluation measures, from the events of each deliberation. Pure: no I/O."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from contracts.events import (
    DeliberationCompleted,
    DeliberationFailed,
    DeliberationScored,
    DeliberationStarted,
    Phase,
    TurnCompleted,
    TurnFailed,
)
from services.agents.handlers import STRUCTURED_ATTEMPTS
from services.agents.structured import STRUCTURED_PHASES, StructuredOutputInvalid
from services.collector.scoring import check_original, checks_for

OVERALL = "overall"


@dataclass
class Record:
    """One deliberation of the evaluation, as its events tell it."""

    case: str
    role: str
    deliberation_id: str
    keywords: list[str]
    status: str = "missing"  # completed, failed or missing (no result before the deadline)
    reason: str = ""
    scored_by: str | None = None
    winner: str = ""
    winner_score: float | None = None
    proposals: dict[str, str] = field(default_factory=dict)  # each agent's first proposal, in council order
    structured_answers: int = 0  # JSON answers the LLM gave to judge and select turns (each attempt)
    structured_valid: int = 0
    structured_turns: int = 0  # judge and select turns that got any JSON answer
    structured_first_valid: int = 0
    llm_errors: int = 0  # turns that failed for another reason than their JSON
    seconds: float | None = None
    tokens: int = 0
    # A single agent's first proposal (the council's first agent), judged by the same judge afterwards.
    baseline: str = ""
    baseline_score: float | None = None
    baseline_error: str = ""


def record_of(record: Record, events: Sequence[object]) -> Record:
    """Fill a record from its deliberation's events, in stored order."""
    for event in events:
        match event:
            case DeliberationStarted():
                record.proposals = {agent.agent_id: "" for agent in event.council.agents} | record.proposals
            case DeliberationCompleted():
                record.status, record.scored_by = "completed", event.scored_by
                record.winner, record.winner_score = event.winner.content, event.winner.score
                record.seconds = event.duration_ms / 1000
            case DeliberationFailed():
                record.status, record.reason, record.seconds = "failed", event.reason, event.duration_ms / 1000
            case DeliberationScored() if record.scored_by is None:
                record.scored_by = event.scored_by
            case TurnCompleted():
                record.tokens += event.prompt_tokens + event.completion_tokens
                if event.turn.phase == Phase.PROPOSE:
                    record.proposals[event.turn.agent_id] = event.content
                if event.turn.phase in STRUCTURED_PHASES:
                    record.structured_turns += 1
                    record.structured_answers += event.attempts
                    record.structured_valid += 1
                    record.structured_first_valid += event.attempts == 1
            case TurnFailed() if event.error_class == StructuredOutputInvalid.__name__:
                record.structured_turns += 1
                record.structured_answers += STRUCTURED_ATTEMPTS
            case TurnFailed():
                record.llm_errors += 1
    return record


def keyword_coverage(text: str, keywords: Iterable[str]) -> float:
    """The share of the task's key terms that appear in the text, case-insensitively."""
    keywords = list(keywords)
    lowered = text.lower()
    return sum(keyword.lower() in lowered for keyword in keywords) / len(keywords) if keywords else 0.0


def distinct_share(proposals: Sequence[str]) -> tuple[int, int]:
    """(distinct, all): a proposal is distinct unless it is a copy of an earlier one, as the collector judges copies."""
    distinct = sum(check_original(text, dict(enumerate(proposals[:index]))).passed
                   for index, text in enumerate(proposals))
    return distinct, len(proposals)


def by_checks(record: Record) -> int | None:
    """+1 when the winner beats the single agent's first proposal on the deterministic checks and then on the
    task's key terms, 0 for a tie, -1 when it loses; None without both texts."""
    if record.status != "completed" or not record.baseline:
        return None

    def standing(text: str) -> tuple[int, float]:
        return -sum(not c.passed for c in checks_for(text, {})), keyword_coverage(text, record.keywords)

    winner, baseline = standing(record.winner), standing(record.baseline)
    return (winner > baseline) - (winner < baseline)


def by_judge(record: Record) -> int | None:
    """+1, 0 or -1 as the judge scored the winner against the single agent's first proposal; None unless both."""
    if record.status != "completed" or record.winner_score is None or record.baseline_score is None:
        return None
    return (record.winner_score > record.baseline_score) - (record.winner_score < record.baseline_score)


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _wins(outcomes: list[int | None]) -> dict[str, float | int | None]:
    known = [o for o in outcomes if o is not None]
    return {"compared": len(known), "won": _share(known.count(1), len(known)),
            "tied": _share(known.count(0), len(known)), "lost": _share(known.count(-1), len(known))}


def summary(records: Sequence[Record]) -> dict:
    """The figures of a set of deliberations."""
    completed = [r for r in records if r.status == "completed"]
    distinct = [distinct_share([text for text in r.proposals.values() if text]) for r in records]
    coverage = [keyword_coverage(r.winner, r.keywords) for r in completed]
    finished = [r for r in records if r.seconds is not None]
    return {
        "deliberations": len(records),
        "completed": len(completed),
        "completion_rate": _share(len(completed), len(records)),
        "scored_by_checks": sum(r.scored_by == "checks" for r in completed),
        "structured_answers": sum(r.structured_answers for r in records),
        "structured_valid_share": _share(sum(r.structured_valid for r in records),
                                         sum(r.structured_answers for r in records)),
        "structured_first_attempt_share": _share(sum(r.structured_first_valid for r in records),
                                                 sum(r.structured_turns for r in records)),
        "llm_errors": sum(r.llm_errors for r in records),
        "distinct_proposal_share": _share(sum(d for d, _ in distinct), sum(n for _, n in distinct)),
        "keyword_coverage": statistics.fmean(coverage) if coverage else None,
        "winners_with_a_keyword": _share(sum(c > 0 for c in coverage), len(coverage)),
        "beats_single_agent_by_judge": _wins([by_judge(r) for r in records]),
        "beats_single_agent_by_checks": _wins([by_checks(r) for r in records]),
        "seconds_mean": statistics.fmean(r.seconds for r in finished) if finished else None,
        "tokens_mean": statistics.fmean(r.tokens for r in finished) if finished else None,
    }


def report(records: Sequence[Record]) -> dict[str, dict]:
    """The figures per role, then overall."""
    roles = sorted({r.role for r in records})
    return {**{role: summary([r for r in records if r.role == role]) for role in roles}, OVERALL: summary(records)}
