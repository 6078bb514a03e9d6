"""The deliberation aggregate as pure functions: given these events, expect this state and these commands."""


import msgspec
import pytest

from bench.record_size import TEXT_MAX_CHARS, WIDEST, brief_of, first_over_limit, largest
from contracts.events import (
    Brief,
    Choice,
    DeadlinePassed,
    DecisionMade,
    DeliberationAdvanced,
    DeliberationCompleted,
    DeliberationFailed,
    DeliberationScored,
    DeliberationStarted,
    Phase,
    PlannedTask,
    RankedProposal,
    Role,
    ScoredBy,
    Text,
    Turn,
    TurnCompleted,
    TurnFailed,
    TurnRequested,
    Verdict,
)
from services.collector.domain import (
    DECIDED_BY_RANKING,
    Deliberation,
    ended_phase,
    outcome_of,
    step,
    too_large_to_store,
)
from services.collector.handlers import RECORD_MAX_BYTES
from services.collector.replay import replay
from services.collector.scoring import check_original, check_python_parses, eligible, rank, score_all
from services.councils.domain import new_council
from services.mesh.outbox import pack, unpack
from services.planning.domain import MAX_BRIEF_BYTES
from tests.support import ARCHITECT, REF, T0, at

RUBRIC = {"correctness": "works", "clarity": "clear"}


def started(council=None) -> DeliberationStarted:
    return DeliberationStarted(
        deliberation=REF,
        brief=Brief(task=PlannedTask(task_id="t", title="Add caching"), rubric=RUBRIC),
        council=council or new_council(Role.DEV, 3, phase_deadline_s=60),
        architect=ARCHITECT,
        started_at=T0,
    )


def requests(outgoing) -> list[TurnRequested]:
    return [o.payload for o in outgoing if isinstance(o.payload, TurnRequested)]


def of_type(outgoing, kind):
    return [o.payload for o in outgoing if isinstance(o.payload, kind)]


def answer(request: TurnRequested, content: str = "", **structured) -> TurnCompleted:
    return TurnCompleted(
        deliberation=REF, turn=request.turn, agent=request.agent, content=content or f"text of {request.turn.key}",
        model="m", temperature=request.agent.temperature, seed=request.agent.seed, prompt_tokens=1,
        completion_tokens=1, latency_ms=1, **structured,
    )


def failure(request: TurnRequested, error_class: str = "LlmTimeout") -> TurnFailed:
    return TurnFailed(deliberation=REF, turn=request.turn, agent=request.agent, error_class=error_class, message="slow")


def run(state, events, now=T0):
    outgoing = []
    for event in events:
        state, out = step(state, event, now)
        outgoing += out
    return state, outgoing


def verdict(*scores: int) -> Verdict:
    return Verdict(criteria=dict(zip(RUBRIC, scores, strict=True)), justification="because")


def answer_proposals(state, outgoing, contents=("Plan A: cache reads.", "Plan B: a write-through cache.",
                                                "Plan C: memoize the hot path.")):
    asked = requests(outgoing)
    return run(state, [answer(r, c) for r, c in zip(asked, contents, strict=True)])


def to_judging(contents=None, council=None):
    """Through propose, one critique round and revise, to the start of judging."""
    state, out = step(None, started(council), T0)
    state, out = answer_proposals(state, out, *([contents] if contents else []))
    state, out = run(state, [answer(r) for r in requests(out)])  # critiques
    state, out = run(state, [answer(r, f"Revised by {r.turn.author_id}: {r.input.proposal}") for r in requests(out)])
    return state, out


def test_a_start_asks_every_agent_to_propose_with_its_own_persona_temperature_and_seed_under_a_deadline():
    state, out = step(None, started(), T0)
    asked = requests(out)
    assert [r.turn.agent_id for r in asked] == ["dev-1", "dev-2", "dev-3"]
    assert {r.turn.phase for r in asked} == {Phase.PROPOSE}
    assert len({(r.agent.persona, r.agent.temperature, r.agent.seed) for r in asked}) == 3
    (advanced,) = of_type(out, DeliberationAdvanced)
    (deadline,) = [o for o in out if isinstance(o.payload, DeadlinePassed)]
    assert advanced.deadline_at == at(60) == deadline.deliver_at
    assert state.phase == Phase.PROPOSE


def test_peers_critique_round_the_circle_once_every_proposal_is_in():
    state, out = step(None, started(), T0)
    state, out = answer_proposals(state, out)
    critiques = requests(out)
    assert [(r.turn.agent_id, r.turn.author_id) for r in critiques] == [
        ("dev-1", "dev-2"), ("dev-2", "dev-3"), ("dev-3", "dev-1")
    ]
    assert critiques[0].input.proposal == "Plan B: a write-through cache."
    assert state.phase == Phase.CRITIQUE and state.round == 1


def test_each_author_revises_with_the_critique_it_received_and_only_the_latest_version_keeps_its_text():
    state, out = step(None, started(), T0)
    state, out = answer_proposals(state, out)
    state, out = run(state, [answer(r, f"critique of {r.turn.author_id}") for r in requests(out)])
    revisions = requests(out)
    assert {r.turn.phase for r in revisions} == {Phase.REVISE}
    by_author = {r.turn.author_id: r for r in revisions}
    assert by_author["dev-2"].input.critique == "critique of dev-2"
    assert by_author["dev-2"].input.proposal == "Plan B: a write-through cache."
    state, out = run(state, [answer(r, f"v2 of {r.turn.author_id}") for r in revisions])
    assert state.drafts["dev-2"] == ["", "v2 of dev-2"]  # the first version is in the log; its count stays
    judged = requests(out)
    assert {r.turn.phase for r in judged} == {Phase.JUDGE}
    assert [r.input.proposal for r in judged] == ["v2 of dev-1", "v2 of dev-2", "v2 of dev-3"]
    assert {r.agent.temperature for r in judged} == {0.0}


def test_scores_rank_the_proposals_and_the_architect_chooses_among_the_top_k():
    state, out = to_judging()
    verdicts = {"dev-1": verdict(5, 5), "dev-2": verdict(9, 8), "dev-3": verdict(7, 7)}
    state, out = run(state, [answer(r, verdict=verdicts[r.turn.author_id]) for r in requests(out)])
    (scored,) = of_type(out, DeliberationScored)
    assert [s.score for s in scored.scores] == [5.0, 8.5, 7.0]
    assert [r.agent_id for r in state.ranking] == ["dev-2", "dev-3", "dev-1"]
    (select,) = requests(out)
    assert select.turn.phase == Phase.SELECT and select.agent == ARCHITECT
    assert [c.agent_id for c in select.input.candidates] == ["dev-2", "dev-3", "dev-1"]

    state, out = step(state, answer(select, choice=Choice(winner_id="dev-3", rationale="Simpler to run.")), at(100))
    (decision,) = of_type(out, DecisionMade)
    (completed,) = of_type(out, DeliberationCompleted)
    assert (decision.winner_id, decision.decided_by) == ("dev-3", ARCHITECT.agent_id)
    assert decision.rationale == "Simpler to run."
    assert completed.winner.agent_id == "dev-3" and completed.winner.score == 7.0 and completed.winner.revisions == 1
    assert [r.agent_id for r in completed.ranking] == ["dev-2", "dev-3", "dev-1"]
    assert completed.duration_ms == 100_000
    assert state.finished


def test_of_more_scored_proposals_than_k_only_the_top_k_go_to_the_architect_who_cannot_choose_another():
    state, out = to_judging(council=new_council(Role.DEV, 3, top_k=2, phase_deadline_s=60))
    verdicts = {"dev-1": verdict(5, 5), "dev-2": verdict(9, 8), "dev-3": verdict(7, 7)}
    state, out = run(state, [answer(r, verdict=verdicts[r.turn.author_id]) for r in requests(out)])
    (select,) = requests(out)
    assert [c.agent_id for c in select.input.candidates] == ["dev-2", "dev-3"]

    state, out = step(state, answer(select, choice=Choice(winner_id="dev-1", rationale="Cheapest.")), at(100))
    (decision,) = of_type(out, DecisionMade)
    assert decision.candidates == ["dev-2", "dev-3"]
    assert (decision.winner_id, decision.decided_by) == ("dev-2", DECIDED_BY_RANKING)
    assert "'dev-1', who is not a candidate" in decision.rationale


def test_the_top_k_are_the_best_scored_qualified_proposals_and_without_scores_the_best_by_the_checks():
    def ranked(*standings):
        return [RankedProposal(rank=rank, agent_id=agent, score=score, qualified=qualified)
                for rank, (agent, score, qualified) in enumerate(standings, start=1)]

    judged = ranked(("dev-4", 9.0, True), ("dev-1", 8.0, True), ("dev-5", 7.5, True), ("dev-2", 6.0, True),
                    ("dev-3", None, True), ("dev-6", None, False))
    unscored = ranked(("dev-2", None, True), ("dev-1", None, True), ("dev-3", None, True), ("dev-4", None, False))

    assert [(r.agent_id, r.rank) for r in eligible(judged, 2)[0]] == [("dev-4", 1), ("dev-1", 2)]
    assert eligible(judged, 2)[1] == ScoredBy.JUDGE
    assert [r.agent_id for r in eligible(unscored, 2)[0]] == ["dev-2", "dev-1"]
    assert eligible(unscored, 2)[1] == ScoredBy.CHECKS


def test_an_architect_that_cannot_decide_leaves_the_top_score_to_win_and_says_so():
    state, out = to_judging()
    state, out = run(state, [answer(r, verdict=verdict(6, 6)) for r in requests(out)])
    (select,) = requests(out)
    state, out = step(state, failure(select, "StructuredOutputInvalid"), T0)
    (decision,) = of_type(out, DecisionMade)
    assert decision.decided_by == DECIDED_BY_RANKING and decision.winner_id == "dev-1"
    assert "StructuredOutputInvalid" in decision.rationale and decision.architect_error


def test_a_failed_agent_leaves_a_quorum_that_goes_on_without_it():
    state, out = step(None, started(), T0)
    asked = requests(out)
    state, out = run(state, [answer(asked[0]), failure(asked[1]), answer(asked[2])])
    critiques = requests(out)
    assert [(r.turn.agent_id, r.turn.author_id) for r in critiques] == [("dev-1", "dev-3"), ("dev-3", "dev-1")]


def test_below_quorum_the_deliberation_fails_with_every_reason():
    state, out = step(None, started(), T0)
    asked = requests(out)
    state, out = run(state, [answer(asked[0]), failure(asked[1], "LlmConnectionRefused"), failure(asked[2])])
    (failed,) = of_type(out, DeliberationFailed)
    assert failed.phase == Phase.PROPOSE
    assert "1 of 3 agents proposed, 2 needed" in failed.reason
    assert "dev-2: LlmConnectionRefused" in failed.reason and "dev-3: LlmTimeout" in failed.reason


def test_a_deadline_fails_the_turns_still_out_and_closes_the_phase():
    state, out = step(None, started(), T0)
    asked = requests(out)
    state, _ = run(state, [answer(asked[0]), answer(asked[1])])
    deadline = DeadlinePassed(deliberation_id="d-1", phase=Phase.PROPOSE, round=0, deadline_at=at(60))
    state, out = step(state, deadline, at(60))
    assert state.turns[asked[2].turn.key].error.startswith("DeadlinePassed")
    assert state.turns[asked[2].turn.key].timed_out
    assert state.phase == Phase.CRITIQUE
    late, out = step(state, answer(asked[2]), at(61))
    assert late == state and out == []


def test_a_phase_that_fails_at_its_deadline_is_a_timeout_and_one_failed_by_its_agents_is_not():
    state, out = step(None, started(), T0)
    asked = requests(out)
    state, _ = run(state, [answer(asked[0])])
    deadline = DeadlinePassed(deliberation_id="d-1", phase=Phase.PROPOSE, round=0, deadline_at=at(60))
    _, out = step(state, deadline, at(60))
    (timed_out,) = of_type(out, DeliberationFailed)
    assert timed_out.timed_out

    # An agent's own error that reads like the deadline's is still the agent's failure, not a timeout.
    state, out = step(None, started(), T0)
    asked = requests(out)
    _, out = run(state, [answer(asked[0]), failure(asked[1], "DeadlinePassed"), failure(asked[2], "DeadlinePassed")])
    (failed,) = of_type(out, DeliberationFailed)
    assert not failed.timed_out and "dev-2: DeadlinePassed" in failed.reason


def test_a_deadline_of_a_phase_already_over_changes_nothing():
    state, out = step(None, started(), T0)
    state, out = answer_proposals(state, out)
    stale = DeadlinePassed(deliberation_id="d-1", phase=Phase.PROPOSE, round=0, deadline_at=at(60))
    assert step(state, stale, at(60)) == (state, [])


def test_a_repeated_answer_is_counted_once():
    state, out = step(None, started(), T0)
    first = answer(requests(out)[0])
    state, _ = step(state, first, T0)
    assert step(state, first, T0) == (state, [])
    assert step(state, msgspec.structs.replace(first, content="another text"), T0) == (state, [])


def test_a_repeated_start_changes_nothing():
    state, _ = step(None, started(), T0)
    assert step(state, started(), at(5)) == (state, [])


def test_an_answer_for_a_deliberation_that_never_started_is_an_error_to_retry():
    turn = Turn(phase=Phase.PROPOSE, round=0, agent_id="dev-1", author_id="dev-1")
    fake = TurnRequested(deliberation=REF, turn=turn, agent=ARCHITECT, brief=started().brief)
    with pytest.raises(LookupError):
        step(None, answer(fake), T0)


def test_without_critique_rounds_proposals_go_straight_to_the_judge():
    state, out = step(None, started(new_council(Role.DEV, 3, critique_rounds=0)), T0)
    state, out = answer_proposals(state, out)
    assert {r.turn.phase for r in requests(out)} == {Phase.JUDGE}


def test_a_proposal_that_copies_a_peer_is_disqualified_and_cannot_win():
    same = "Use a write-through cache in Valkey with a 5 minute TTL and invalidate on writes."
    state, out = step(None, started(new_council(Role.DEV, 3, critique_rounds=0)), T0)
    state, out = answer_proposals(state, out, (same, same + " ", "Memoize the hot path in process."))
    state, out = run(state, [answer(r, verdict=verdict(9, 9)) for r in requests(out)])
    (scored,) = of_type(out, DeliberationScored)
    assert [s.qualified for s in scored.scores] == [True, False, True]
    (select,) = requests(out)
    assert [c.agent_id for c in select.input.candidates] == ["dev-1", "dev-3"]


def test_when_the_judge_scores_no_proposal_the_checks_and_answered_critiques_rank_them_and_it_says_so():
    state, out = step(None, started(new_council(Role.DEV, 3, critique_rounds=1)), T0)
    state, out = answer_proposals(state, out, ("Plan A: cache reads.", "Plan B: shard the writes.",
                                               "Plan C: queue the batch jobs."))
    critiques = requests(out)
    # dev-1's critic fails, so only dev-2's and dev-3's proposals are critiqued and revised.
    state, out = run(state, [answer(r, "Too vague.") if r.turn.author_id != "dev-1" else failure(r)
                             for r in critiques])
    revised = {"dev-3": "Queue jobs in JetStream, 4 workers.", "dev-2": "Shard writes by tenant id over 8 nodes."}
    state, out = run(state, [answer(r, revised[r.turn.author_id]) for r in requests(out)])
    state, out = run(state, [failure(r, "StructuredOutputInvalid") for r in requests(out)])
    (scored,) = of_type(out, DeliberationScored)
    assert scored.scored_by == ScoredBy.CHECKS
    assert sorted(s.agent_id for s in scored.scores) == ["dev-1", "dev-2", "dev-3"]
    assert all(s.score is None and "StructuredOutputInvalid" in s.scoring_error for s in scored.scores)
    (select,) = requests(out)
    assert [c.agent_id for c in select.input.candidates] == ["dev-2", "dev-3", "dev-1"]
    assert all(c.score is None for c in select.input.candidates)
    state, out = run(state, [answer(select, choice=Choice(winner_id="dev-2", rationale="Sharding scales."))])
    (completed,) = of_type(out, DeliberationCompleted)
    (decision,) = of_type(out, DecisionMade)
    assert (completed.winner.agent_id, completed.winner.score, completed.scored_by) == ("dev-2", None, "checks")
    assert decision.scored_by == ScoredBy.CHECKS


def test_when_the_judge_and_the_architect_both_fail_the_best_ranked_by_the_checks_wins_and_it_says_so():
    state, out = step(None, started(new_council(Role.DEV, 2, critique_rounds=0)), T0)
    broken = "Do this:\n```python\ndef f(:\n    pass\n```\n"
    state, out = answer_proposals(state, out, (broken, "Plan B is different."))
    state, out = run(state, [failure(r, "StructuredOutputInvalid") for r in requests(out)])
    state, out = run(state, [failure(r, "StructuredOutputInvalid") for r in requests(out)])
    (completed,) = of_type(out, DeliberationCompleted)
    assert (completed.winner.agent_id, completed.decided_by, completed.scored_by) == ("dev-2", "ranking", "checks")
    assert "best-ranked (by the checks)" in completed.rationale


def test_when_no_proposal_is_qualified_the_deliberation_fails_and_invents_nothing():
    state, out = step(None, started(new_council(Role.DEV, 2, critique_rounds=0)), T0)
    state, out = answer_proposals(state, out, ("  ", " \n"))
    state, out = run(state, [failure(r, "StructuredOutputInvalid") for r in requests(out)])
    (failed,) = of_type(out, DeliberationFailed)
    assert failed.phase == Phase.JUDGE and "dev-1 disqualified (not_empty: the proposal is empty" in failed.reason
    assert isinstance(state, Deliberation) and state.completed is None


def test_python_code_that_does_not_parse_halves_the_judges_score():
    broken = "Do this:\n```python\ndef f(:\n    pass\n```\n"
    working = "Do this:\n```python\ndef f():\n    return 1\n```\n"
    scores = score_all({"a": broken, "b": working}, {"a": verdict(8, 8), "b": verdict(8, 8)}, {})
    assert [s.score for s in scores] == [4.0, 8.0]
    assert check_python_parses(broken).passed is False and "line 1" in check_python_parses(broken).detail
    assert check_python_parses("no code here") is None


def test_a_copy_is_told_apart_from_a_different_proposal():
    assert not check_original("Cache reads in Valkey.", {"a": "cache reads in   valkey."}).passed
    assert check_original("Cache reads in Valkey.", {"a": "Rewrite the service in Rust."}).passed


def test_a_near_copy_of_text_without_spaces_is_a_copy():
    """Split on spaces, such text was one word, and a copy with one character changed compared as different."""
    chinese = "我们在服务前面加一层缓存读取热点数据设置过期时间并在写入时失效" * 8
    near_copy = chinese[:100] + "改" + chinese[101:]
    minified = "function f(a){return a.map(function(b){return b*2}).filter(function(c){return c>3})};" * 6
    assert not check_original(near_copy, {"a": chinese}).passed
    assert not check_original(minified.replace("b*2", "b*3", 1), {"a": minified}).passed
    assert check_original("完全不同的方案用消息队列异步处理所有请求" * 8, {"a": chinese}).passed


def test_ranking_puts_scored_qualified_proposals_first_and_keeps_council_order_on_ties():
    scores = score_all({"a": "x one", "b": "y two", "c": "z three"}, {"a": verdict(5, 5), "c": verdict(5, 5)},
                       {"b": "LlmTimeout: slow"})
    assert [r.agent_id for r in rank(scores)] == ["a", "c", "b"]


def test_the_phase_a_step_closes_is_reported_with_how_long_it_lasted():
    state, out = step(None, started(), T0)
    asked = requests(out)

    first, _ = step(state, answer(asked[0]), at(5))
    *_, last = asked
    closed, _ = run(first, [answer(r) for r in asked[1:]], now=at(12))

    assert ended_phase(None, state, T0) is None
    assert ended_phase(state, first, at(5)) is None
    assert closed.phase == Phase.CRITIQUE
    assert ended_phase(first, closed, at(12)) == (Phase.PROPOSE, 12.0)


def test_a_finished_deliberation_reports_its_outcome_and_the_phase_it_ended_in():
    state, out = step(None, started(new_council(Role.DEV, 3)), T0)
    assert outcome_of(state) is None
    failed, _ = run(state, [failure(r) for r in requests(out)], now=at(30))

    assert outcome_of(failed) == "failed"
    assert ended_phase(state, failed, at(30))[0] == Phase.PROPOSE


def recorded_deliberation(architect_answers: bool = True):
    """A whole deliberation as the log holds it: the inputs with their times, and what was published."""
    inputs, published = [], []

    def feed(state, event, seconds):
        inputs.append((at(seconds), event))
        state, out = step(state, event, at(seconds))
        published.extend(o.payload for o in out)
        return state, out

    state, out = feed(None, started(), 0)
    revisions = {"dev-1": "Cache reads in Redis with a TTL.", "dev-2": "A write-through cache by the database.",
                 "dev-3": "Memoize the hot path inside the process."}
    for round_, contents in enumerate([("Plan A", "Plan B", "Plan C"), None, None]):
        for index, request in enumerate(requests(out)):
            content = contents[index] if contents else f"text of {request.turn.key}"
            if request.turn.phase == Phase.REVISE:
                content = revisions[request.turn.author_id]
            state, new = feed(state, answer(request, content), 10 * round_ + index + 1)
            out = new if new else out
    for index, request in enumerate(requests(out)):
        state, new = feed(state, answer(request, verdict=verdict(5 + index, 5 + index)), 40 + index)
        out = new if new else out
    (select,) = requests(out)
    chosen = select.input.candidates[-1].agent_id
    if architect_answers:
        feed(state, answer(select, choice=Choice(winner_id=chosen, rationale="Best.")), 50)
    else:
        feed(state, failure(select), 50)
    return inputs, published


def test_replaying_a_recorded_deliberation_reaches_the_same_winner():
    inputs, published = recorded_deliberation()

    replayed = replay(list(reversed(inputs)), published)

    assert replayed.same_winner and replayed.differences == []
    assert replayed.recomputed.outcome == "completed"
    (completed,) = [e for e in published if isinstance(e, DeliberationCompleted)]
    assert replayed.recomputed.winner == completed.winner.agent_id
    assert replayed.recomputed.scores == replayed.recorded.scores and len(replayed.recorded.scores) == 3


def test_a_recorded_result_that_the_logic_does_not_reproduce_is_reported_with_each_difference():
    inputs, published = recorded_deliberation()
    winner = next(e for e in published if isinstance(e, DeliberationCompleted)).winner.agent_id
    other = next(a for a in ("dev-1", "dev-2", "dev-3") if a != winner)
    tampered = [msgspec.structs.replace(e, winner=msgspec.structs.replace(e.winner, agent_id=other))
                if isinstance(e, DeliberationCompleted) else e for e in published]

    replayed = replay(inputs, tampered)

    assert not replayed.same_winner
    assert replayed.differences == [f"winner: recorded {other} (completed), recomputed {winner} (completed)"]


def test_a_deliberation_that_never_started_cannot_be_replayed():
    with pytest.raises(LookupError, match="never started"):
        replay([], [])


def with_judge_verdict(inputs, author: str, new_verdict: Verdict):
    return [(moment, msgspec.structs.replace(e, verdict=new_verdict)
             if isinstance(e, TurnCompleted) and e.turn.phase == Phase.JUDGE and e.turn.author_id == author else e)
            for moment, e in inputs]


def test_a_tampered_judge_score_that_changes_a_ranking_decision_gives_a_different_winner():
    inputs, published = recorded_deliberation(architect_answers=False)
    (completed,) = [e for e in published if isinstance(e, DeliberationCompleted)]
    assert completed.decided_by == DECIDED_BY_RANKING

    replayed = replay(with_judge_verdict(inputs, completed.winner.agent_id, verdict(1, 1)), published)

    assert not replayed.same_winner
    assert replayed.recorded.winner == completed.winner.agent_id != replayed.recomputed.winner
    assert f"score of {completed.winner.agent_id}" in replayed.differences[0]
    assert any(d.startswith("ranking:") for d in replayed.differences)
    assert replayed.differences[-1].startswith(f"winner: recorded {completed.winner.agent_id} (completed)")


def test_a_tampered_recorded_score_is_reported_even_when_the_architect_still_picks_the_same_winner():
    inputs, published = recorded_deliberation()
    tampered = [msgspec.structs.replace(e, scores=[msgspec.structs.replace(e.scores[0], score=0.0), *e.scores[1:]])
                if isinstance(e, DeliberationScored) else e for e in published]

    replayed = replay(inputs, tampered)

    assert replayed.same_winner
    assert replayed.recomputed.decided_by == ARCHITECT.agent_id == replayed.recorded.decided_by
    assert len(replayed.differences) == 1 and replayed.differences[0].startswith("score of dev-1: recorded 0.0")


def test_the_architects_recorded_choice_decides_the_replay_as_it_decided_the_deliberation():
    inputs, published = recorded_deliberation()
    (decision,) = [e for e in published if isinstance(e, DecisionMade)]

    replayed = replay(inputs, published)

    assert (replayed.recomputed.winner, replayed.recomputed.decided_by) == (decision.winner_id, decision.decided_by)


def test_a_deliberations_stored_record_at_the_largest_brief_and_answers_stays_under_the_nats_payload_limit():
    """3 agents, 2 rounds, a brief at the limit, every answer 64,000 characters, each outbox removed once published."""
    sizes = largest(agents=3, rounds=2, brief_bytes=MAX_BRIEF_BYTES, chars=TEXT_MAX_CHARS)
    assert sizes.steps == 20  # start, 3 proposals, 2 x (3 critiques, 3 revisions), 3 verdicts, a choice
    assert sizes.promptly < RECORD_MAX_BYTES
    assert first_over_limit(agents=3, rounds=2) is None
    # More rounds keep no more text: only the latest draft and the phase in progress are kept.
    assert largest(agents=3, rounds=1).promptly <= sizes.promptly <= largest(agents=3, rounds=1).promptly + 4096


def test_the_bench_fills_answers_to_the_contracts_limit_in_the_character_json_writes_widest():
    assert Text.__metadata__[0].max_length == TEXT_MAX_CHARS
    assert len(msgspec.json.encode(WIDEST)) - 2 == 6  # a control character, escaped as \u00XX


def test_answers_of_the_widest_characters_would_make_a_record_nats_refuses_from_the_second_proposal_on():
    """What the collector must not try to save: Text counts characters, and JSON writes one in up to 6 bytes."""
    assert largest(agents=3, rounds=1, fill=WIDEST).promptly > 4 * RECORD_MAX_BYTES
    assert first_over_limit(agents=3, rounds=1, fill=WIDEST) == (3, "TurnCompleted")


def test_a_record_too_large_to_store_ends_the_deliberation_once_saying_how_large():
    state, asked = step(None, started(), T0)
    state, _ = run(state, [answer(r) for r in requests(asked)[:1]])

    state, out = too_large_to_store(state, 4_491_085, RECORD_MAX_BYTES, at(7))

    (failed,) = of_type(out, DeliberationFailed)
    assert (failed.phase, failed.timed_out, failed.cancelled_by, failed.duration_ms) == (Phase.PROPOSE, False, None,
                                                                                         7000)
    assert failed.reason == (f"its stored record would be 4,491,085 bytes, over the store's limit of "
                             f"{RECORD_MAX_BYTES:,} bytes: the drafts, answers and turn requests it must hold at "
                             "once are too large")
    assert outcome_of(state) == "failed"
    assert step(state, answer(requests(asked)[1]), at(8)) == (state, [])  # it ended: later answers change nothing


def test_a_closed_phase_keeps_its_outcomes_but_not_their_text_and_a_draft_only_its_latest_version():
    state, out = step(None, started(), T0)
    state, out = answer_proposals(state, out)
    state, out = run(state, [answer(r, f"critique of {r.turn.author_id}") for r in requests(out)])
    closed = [t for t in state.turns.values() if t.turn.phase in (Phase.PROPOSE, Phase.CRITIQUE)]
    assert {(t.status, t.content) for t in closed} == {("completed", "")}
    assert state.drafts["dev-2"] == ["Plan B: a write-through cache."]
    state, out = run(state, [answer(r, f"v2 of {r.turn.author_id}") for r in requests(out)])
    assert state.drafts["dev-2"] == ["", "v2 of dev-2"]


def test_a_redelivery_gets_back_exactly_what_was_published_brief_included():
    brief = brief_of(MAX_BRIEF_BYTES)
    state, outgoing = step(None, msgspec.structs.replace(started(), brief=brief), T0)
    parcel = pack(outgoing[1], state.brief)
    assert len(parcel.body) < 4096  # the brief is stored once, in the state
    assert parcel.brief_elided and unpack(parcel, state.brief).payload == requests(outgoing)[0]
