"""How `fleet deliberation replay` reports a recomputed decision beside the recorded one."""

import msgspec

from contracts.events import DeliberationCompleted
from services.cli.decision_replay import DIFFERENT, SAME, STREAMS, SUBJECTS, comparison_rows, report, verdict_of
from services.collector.replay import replay
from tests.unit.test_collector import recorded_deliberation


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
        "score of dev-1", "score of dev-2", "score of dev-3", "ranking", "outcome", "decided by", "winner"]
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
