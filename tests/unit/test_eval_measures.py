"""The evaluation's figures are what the events say: completion, valid JSON, distinct proposals, key terms."""

import datetime as dt

import msgspec
import pytest

from contracts.events import (
    AgentProfile,
    Brief,
    DeliberationCompleted,
    DeliberationFailed,
    DeliberationRef,
    DeliberationStarted,
    Phase,
    PlannedTask,
    Role,
    Turn,
    TurnCompleted,
    TurnFailed,
    Winner,
)
from eval.cases import approval_of, load_cases
from eval.measures import OVERALL, Record, by_checks, by_judge, keyword_coverage, record_of, report
from services.councils.domain import new_council
from services.planning.domain import MAX_BRIEF_BYTES, oversized_briefs

REF = DeliberationRef(deliberation_id="d-1", story_id="s", plan_id="p", task_id="t", role=Role.DEV)
COUNCIL = new_council(Role.DEV, 3)
T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def turn(phase: Phase, agent: str, content: str = "text", attempts: int = 1) -> TurnCompleted:
    profile = next(a for a in COUNCIL.agents if a.agent_id == agent) if agent.startswith("dev") else \
        AgentProfile(agent_id=agent, role=Role.ARCHITECT, persona="", temperature=0.0, seed=1)
    return TurnCompleted(deliberation=REF, turn=Turn(phase=phase, round=0, agent_id=agent, author_id=agent),
                         agent=profile, content=content, model="m", temperature=0.0, seed=1, prompt_tokens=100,
                         completion_tokens=20, latency_ms=5, attempts=attempts)


def started() -> DeliberationStarted:
    return DeliberationStarted(deliberation=REF, brief=Brief(task=PlannedTask(task_id="t", title="T"), rubric={}),
                               council=COUNCIL, architect=COUNCIL.agents[0], started_at=T0)


def completed(winner: str, score: float | None = 7.5) -> DeliberationCompleted:
    return DeliberationCompleted(deliberation_id="d-1", story_id="s", plan_id="p", task_id="t", role=Role.DEV,
                                 winner=Winner(agent_id="dev-2", content=winner, score=score, revisions=1),
                                 ranking=[], rationale="r", decided_by="architect-1", duration_ms=90_000)


def fresh() -> Record:
    return Record(case="c", role="DEV", deliberation_id="d-1", keywords=["cache", "redis"])


def test_a_deliberation_is_read_from_its_events():
    judge_failed = TurnFailed(deliberation=REF, turn=Turn(phase=Phase.JUDGE, round=0, agent_id="a", author_id="dev-3"),
                              agent=COUNCIL.agents[0], error_class="StructuredOutputInvalid", message="x")
    events = [started(), turn(Phase.PROPOSE, "dev-2", "Cache in Redis."), turn(Phase.PROPOSE, "dev-1", "Shard it."),
              turn(Phase.JUDGE, "architect-1", attempts=1), turn(Phase.JUDGE, "architect-1", attempts=2),
              judge_failed, turn(Phase.SELECT, "architect-1"), completed("Cache reads in Redis.")]
    record = record_of(fresh(), events)
    assert list(record.proposals) == ["dev-1", "dev-2", "dev-3"]  # council order, whoever answered first
    assert (record.proposals["dev-1"], record.proposals["dev-3"]) == ("Shard it.", "")
    assert (record.structured_turns, record.structured_answers) == (4, 1 + 2 + 2 + 1)
    assert (record.structured_valid, record.structured_first_valid) == (3, 2)
    assert (record.status, record.winner_score, record.seconds, record.tokens) == ("completed", 7.5, 90.0, 5 * 120)


def test_the_figures_per_role_count_failures_and_missing_results_against_completion():
    done = record_of(fresh(), [started(), completed("Cache in Redis.")])
    failed = record_of(fresh(), [DeliberationFailed(deliberation_id="d-1", story_id="s", plan_id="p", task_id="t",
                                                    role=Role.DEV, phase=Phase.PROPOSE, reason="quorum",
                                                    duration_ms=5)])
    missing = fresh()
    figures = report([done, failed, missing])
    assert set(figures) == {"DEV", OVERALL}
    assert figures[OVERALL]["completion_rate"] == pytest.approx(1 / 3)
    assert figures[OVERALL]["keyword_coverage"] == 1.0 and figures[OVERALL]["winners_with_a_keyword"] == 1.0


def test_key_terms_are_found_case_insensitively_and_counted_as_a_share():
    assert keyword_coverage("Use a Redis CACHE", ["cache", "redis", "queue", "worker"]) == 0.5
    assert keyword_coverage("nothing relevant", ["cache"]) == 0.0


def test_the_winner_is_compared_with_a_single_agents_first_proposal_by_the_judge_and_by_the_checks():
    record = record_of(fresh(), [started(), completed("Cache reads in Redis.", score=8.0)])
    record.baseline, record.baseline_score = "Cache it.", 6.0
    assert by_judge(record) == 1 and by_checks(record) == 1  # more key terms
    record.baseline_score, record.baseline = 8.0, "A redis cache."
    assert by_judge(record) == 0 and by_checks(record) == 0
    record.winner = "```python\ndef f(:\n```\nCache in Redis."  # code that does not parse
    assert by_checks(record) == -1


def test_every_case_of_the_set_is_a_valid_approval_within_the_brief_limit():
    cases = load_cases()
    assert len(cases) >= 30 and {r for c in cases for r in c.roles} == set(Role)
    assert {len(c.rubric) for c in cases} == {1, 2, 3, 4, 5, 6}
    for case in cases:
        approval = approval_of(case, "test")
        assert not oversized_briefs(approval), case.name
        text = (case.title + " " + case.description).lower()
        assert case.keywords and all(keyword in text for keyword in case.keywords), case.name
    near_limit = [approval_of(c, "test") for c in cases if c.pad_to_bytes]
    assert len(near_limit) == 2
    assert all(len(msgspec.json.encode(a)) > 0.75 * MAX_BRIEF_BYTES for a in near_limit)
