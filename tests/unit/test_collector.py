"""The collector folds outcomes and emits one result when the whole council has answered."""

import datetime as dt

from contracts.events import (
    DeliberationCompleted,
    DeliberationFailed,
    DeliberationRef,
    ProposalCompleted,
    ProposalFailed,
    Role,
)
from services.collector.domain import PROVISIONAL_SELECTION, decide, evolve, record

STARTED = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
LATER = STARTED + dt.timedelta(seconds=4)
REF = DeliberationRef(deliberation_id="d-1", story_id="s", plan_id="p", task_id="t", role=Role.DEV)
COUNCIL = ["dev-1", "dev-2", "dev-3"]


def proposal(agent_id: str, content: str = "a plan") -> ProposalCompleted:
    return ProposalCompleted(
        deliberation=REF, agent_id=agent_id, council=COUNCIL, started_at=STARTED, content=f"{content} by {agent_id}",
        model="m", temperature=0.7, prompt_tokens=1, completion_tokens=1, latency_ms=1,
    )


def failure(agent_id: str) -> ProposalFailed:
    return ProposalFailed(
        deliberation=REF, agent_id=agent_id, council=COUNCIL, started_at=STARTED,
        error_class="LlmTimeout", message="no answer within 60s",
    )


def fold(*events):
    state = None
    for index, event in enumerate(events):
        state = record(state, event, 100 + index, LATER)
    return state


def test_no_result_while_some_council_members_have_not_answered():
    state = fold(proposal("dev-1"), failure("dev-2"))
    assert state.result is None
    assert decide(state, LATER) is None


def test_the_last_answer_completes_with_the_first_proposal_as_provisional_winner():
    state = fold(failure("dev-2"), proposal("dev-3"), proposal("dev-1"))
    result = state.result
    assert isinstance(result, DeliberationCompleted)
    assert result.winner.agent_id == "dev-3" and result.winner.content == "a plan by dev-3"
    assert [r.agent_id for r in result.ranking] == ["dev-3", "dev-1"]
    assert all(r.score is None for r in result.ranking)
    assert result.selection == PROVISIONAL_SELECTION
    assert result.failed_agents == ["dev-2"]
    assert result.duration_ms == 4000
    assert state.result_caused_by == 102


def test_a_redelivered_outcome_is_counted_once():
    state = fold(proposal("dev-1"), proposal("dev-1"), proposal("dev-1"))
    assert len(state.outcomes) == 1
    assert state.result is None


def test_an_outcome_arriving_after_the_result_changes_nothing():
    done = fold(proposal("dev-1"), proposal("dev-2"), proposal("dev-3"))
    assert record(done, proposal("dev-2", "a revised plan"), 999, LATER) == done


def test_a_council_where_nobody_proposed_fails_with_every_error_named():
    result = fold(failure("dev-1"), failure("dev-2"), failure("dev-3")).result
    assert isinstance(result, DeliberationFailed)
    for agent_id in COUNCIL:
        assert f"{agent_id}: LlmTimeout: no answer within 60s" in result.reason


def test_the_first_outcome_establishes_the_deliberation_and_its_council():
    state = evolve(None, failure("dev-1"))
    assert state.deliberation == REF and state.council == COUNCIL and state.started_at == STARTED
