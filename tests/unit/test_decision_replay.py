"""How `fleet deliberation replay` reports a recomputed decision beside the recorded one."""

import msgspec

from contracts import catalog
from contracts.events import (
    CheckResult,
    DecisionMade,
    DeliberationCancelRequested,
    DeliberationCompleted,
    DeliberationScored,
)
from services.cli.decision_replay import DIFFERENT, SAME, STREAMS, SUBJECTS, comparison_rows, report, verdict_of
from services.collector.domain import step
from services.collector.replay import replay
from tests.support import REF, at
from tests.unit.test_collector import answer, recorded_deliberation, requests, started, verdict, with_judge_verdict


def test_replay_reads_the_collectors_inputs_and_results_from_the_orchestration_and_agent_streams():
    assert STREAMS == ("AGENT", "ORCHESTRATION")
    assert {"agent.turn.completed.v1", "orchestration.deliberation.completed.v1"} <= SUBJECTS
    assert "agent.turn.requested.v1" not in SUBJECTS


def test_the_report_sets_recorded_beside_recomputed_and_says_same_winner():
    inputs, published = recorded_deliberation()
    result = replay(inputs, published)

    rows = comparison_rows(result)
    printed = report("d-1", len(inputs), result)

    assert verdict_of(result) == SAME == printed["verdict"]
    assert [what for what, _, _ in rows] == [
        "score of dev-1", "score of dev-2", "score of dev-3", "ranking", "architect chose among", "outcome",
        "decided by", "winner"]
    assert all(recorded == recomputed for _, recorded, recomputed in rows)
    assert "architect's choice are the ones recorded" in printed["source"]
    assert printed["recorded"]["winner"] == printed["recomputed"]["winner"] and printed["differences"] == []


def test_a_tampered_winner_is_reported_as_a_different_winner():
    inputs, published = recorded_deliberation()
    tampered = [msgspec.structs.replace(e, winner=msgspec.structs.replace(e.winner, agent_id="dev-9"))
                if isinstance(e, DeliberationCompleted) else e for e in published]

    result = replay(inputs, tampered)

    assert verdict_of(result) == DIFFERENT
    assert ("winner", "dev-9", result.recomputed.winner) in comparison_rows(result)


def test_a_tampered_recorded_judge_score_that_changes_the_ranking_decision_is_a_different_winner():
    inputs, published = recorded_deliberation(architect_answers=False)
    recorded = replay(inputs, published).recorded

    result = replay(with_judge_verdict(inputs, recorded.winner, verdict(0, 0)), published)

    assert verdict_of(result) == DIFFERENT == report("d-1", len(inputs), result)["verdict"]
    assert (f"score of {recorded.winner}", str(recorded.scores[recorded.winner]), "0.0") in comparison_rows(result)
    assert result.recomputed.decided_by == result.recorded.decided_by == "ranking"


def test_a_recorded_disqualification_the_checks_do_not_reproduce_is_shown_and_listed():
    inputs, published = recorded_deliberation()
    failed = CheckResult(check="original", passed=False, detail="copied")

    def disqualify_dev_1(event):
        if not isinstance(event, DeliberationScored):
            return event
        first = msgspec.structs.replace(event.scores[0], qualified=False, checks=[failed])
        return msgspec.structs.replace(event, scores=[first, *event.scores[1:]])

    result = replay(inputs, [disqualify_dev_1(e) for e in published])

    [row] = [row for row in comparison_rows(result) if row[0] == "score of dev-1"]
    assert row[1].endswith("(disqualified)") and not row[2].endswith("(disqualified)")
    assert "dev-1 qualified: recorded False, recomputed True" in result.differences


def test_the_architects_candidates_are_compared_as_the_selections_input():
    inputs, published = recorded_deliberation()
    narrowed = [msgspec.structs.replace(e, candidates=e.candidates[:1]) if isinstance(e, DecisionMade) else e
                for e in published]

    result = replay(inputs, published)
    tampered = replay(inputs, narrowed)

    assert result.recorded.candidates == result.recomputed.candidates == ["dev-3", "dev-2", "dev-1"]
    assert ("architect chose among", "dev-3, dev-2, dev-1", "dev-3, dev-2, dev-1") in comparison_rows(result)
    assert tampered.differences == ["candidates: recorded ['dev-3'], recomputed ['dev-3', 'dev-2', 'dev-1']"]



def test_a_cancelled_deliberation_replays_to_the_same_cancellation():
    """The cancel is one of the inputs: without it the replay goes on, stops unfinished, and reports a difference."""
    inputs, published = [], []

    def feed(state, event, seconds):
        inputs.append((at(seconds), event))
        state, out = step(state, event, at(seconds))
        published.extend(o.payload for o in out)
        return state, out

    state, out = feed(None, started(), 0)
    for index, request in enumerate(requests(out)):
        state, _ = feed(state, answer(request, f"Plan {index}"), 1 + index)
    cancel = DeliberationCancelRequested(deliberation_id=REF.deliberation_id, requested_by="alice", reason="stop")
    feed(state, cancel, 9)

    result = replay(inputs, published)

    assert result.differences == [] and verdict_of(result) == SAME
    assert result.recomputed.outcome == result.recorded.outcome == "failed"
    assert result.recomputed.reason == result.recorded.reason == "cancelled by alice: stop"
    assert catalog.DELIBERATION_CANCEL_REQUESTED.subject in SUBJECTS
