"""The read models as pure functions: given these events, expect these graph MERGEs, these KV writes, these views."""

import datetime as dt
import json
import random

import msgspec
import pytest
from falkordb.graph import Graph
from hypothesis import given
from hypothesis import strategies as st

from contracts import catalog
from contracts.envelope import Envelope, format_time
from contracts.events import (
    AgentProfile,
    Attempt,
    Brief,
    CheckResult,
    CouncilCreated,
    CouncilDeleted,
    DecisionMade,
    DeliberationAdvanced,
    DeliberationCancelRequested,
    DeliberationCompleted,
    DeliberationFailed,
    DeliberationOutcome,
    DeliberationRef,
    DeliberationRequested,
    DeliberationRetryRequested,
    DeliberationScored,
    DeliberationStarted,
    Event,
    Phase,
    PlanAccepted,
    PlanApproved,
    PlanConcluded,
    PlannedDeliberation,
    PlannedTask,
    PlanRejected,
    ProposalScore,
    RankedProposal,
    Role,
    ScoredBy,
    StoryTransitioned,
    Turn,
    TurnCompleted,
    TurnFailed,
    Winner,
)
from services.councils.domain import new_council
from services.projection import graph_model, kv_model
from services.projection.adapters.falkordb_graph import INDEX_SPENT_IDS_BEFORE_REBUILD, params_header, spent_indexes
from services.projection.cypher import batch_statement, coalesce_writes
from services.projection.graph_model import graph_writes
from services.projection.kv_model import (
    ACTIVITY_KEPT,
    ACTIVITY_KEY,
    DELIBERATIONS_KEY,
    AddToIndex,
    AddToSet,
    CountOnce,
    SetFields,
    council_stats_key,
    counted_key,
    deliberation_key,
    kv_writes,
    story_deliberations_key,
)
from services.projection.reads import deliberation_view, story_view
from services.projection.vocabulary import (
    EdgeWrite,
    Label,
    NodeWrite,
    Rel,
    critique_key,
    plan_key,
    proposal_key,
    revision_key,
    task_key,
)
from tests.support import REF, T0, at

DEV_COUNCIL = new_council(Role.DEV, 3)
ARCHITECT = AgentProfile(agent_id="architect-1", role=Role.ARCHITECT, persona="the architect", temperature=0.2,
                         seed=7)
BRIEF = Brief(task=PlannedTask(task_id="t-1", title="Add caching", description="Cache the reads."),
              rubric={"correctness": "works"})


def envelope(event: Event, occurred_at: dt.datetime = T0, event_id: str | None = None) -> Envelope:
    spec = catalog.spec_for_payload(event)
    event_id = event_id or f"{spec.event_type}/{event.aggregate_id()}/{occurred_at.timestamp()}"
    return Envelope(
        event_id=event_id, event_type=spec.event_type, schema_version=spec.version, occurred_at=occurred_at,
        producer="test", correlation_id="c-1", causation_id="c-1", aggregate_type=spec.aggregate_type,
        aggregate_id=event.aggregate_id(), traceparent="00-" + "0" * 32 + "-" + "0" * 16 + "-01",
    )


def plan_approved(story_id: str = "s-1", plan_id: str = "p-1") -> PlanApproved:
    return PlanApproved(
        story_id=story_id, plan_id=plan_id, approved_by="alice", roles=[Role.DEV, Role.QA],
        tasks=[PlannedTask(task_id="t-1", title="Add caching", description="Cache the reads."),
               PlannedTask(task_id="t-2", title="Measure it")],
        constraints=["no new services"],
    )


def requested(ref: DeliberationRef = REF) -> DeliberationRequested:
    return DeliberationRequested(deliberation=ref, brief=BRIEF, approved_by="alice", council=DEV_COUNCIL,
                                 architect=ARCHITECT)


def started() -> DeliberationStarted:
    return DeliberationStarted(deliberation=REF, brief=BRIEF, council=DEV_COUNCIL, architect=ARCHITECT,
                               started_at=at(1))


def advanced(phase: Phase = Phase.PROPOSE, round_: int = 0) -> DeliberationAdvanced:
    return DeliberationAdvanced(deliberation_id="d-1", phase=phase, round=round_, turns=["a"], deadline_at=at(300))


def turn_completed(phase: Phase, agent_id: str = "dev-1", author_id: str = "dev-1", round_: int = 0,
                   context_hash: str | None = "abc") -> TurnCompleted:
    agent = next(a for a in DEV_COUNCIL.agents if a.agent_id == agent_id)
    return TurnCompleted(
        deliberation=REF, turn=Turn(phase=phase, round=round_, agent_id=agent_id, author_id=author_id),
        agent=agent, content=f"{phase} by {agent_id} on {author_id}", model="m", temperature=agent.temperature,
        seed=agent.seed, prompt_tokens=10, completion_tokens=20, latency_ms=30, context_hash=context_hash,
    )


def turn_failed() -> TurnFailed:
    return TurnFailed(deliberation=REF, turn=Turn(phase=Phase.PROPOSE, round=0, agent_id="dev-3", author_id="dev-3"),
                      agent=DEV_COUNCIL.agents[2], error_class="LlmTimeout", message="slow")


def scored() -> DeliberationScored:
    return DeliberationScored(deliberation_id="d-1", scores=[
        ProposalScore(agent_id="dev-1", criteria={"correctness": 8}, justification="good",
                      checks=[CheckResult(check="parses", passed=True)], score=8.0, qualified=True),
        ProposalScore(agent_id="dev-2", criteria={}, justification="", score=None, qualified=False,
                      checks=[CheckResult(check="parses", passed=False, detail="syntax")], scoring_error="judge"),
    ])


RANKING = [RankedProposal(rank=1, agent_id="dev-1", score=8.0, qualified=True),
           RankedProposal(rank=2, agent_id="dev-2", score=None, qualified=False)]


def decided() -> DecisionMade:
    return DecisionMade(deliberation_id="d-1", winner_id="dev-1", candidates=["dev-1"], ranking=RANKING,
                        rationale="simplest", decided_by="architect-1")


def completed() -> DeliberationCompleted:
    return DeliberationCompleted(
        deliberation_id="d-1", story_id="s-1", plan_id="p-1", task_id="t-1", role=Role.DEV,
        winner=Winner(agent_id="dev-1", content="the proposal", score=8.0, revisions=1), ranking=RANKING,
        rationale="simplest", decided_by="architect-1", duration_ms=4200, failed_agents=["dev-3"],
    )


def failed(timed_out: bool = False, cancelled_by: str | None = None,
           deliberation_id: str = "d-1") -> DeliberationFailed:
    return DeliberationFailed(deliberation_id=deliberation_id, story_id="s-1", plan_id="p-1", task_id="t-1",
                              role=Role.DEV, phase=Phase.PROPOSE, reason="quorum not reached", duration_ms=300_000,
                              timed_out=timed_out, cancelled_by=cancelled_by)


def transitioned(from_state: str = "DESIGN", to_state: str = "BUILD") -> StoryTransitioned:
    return StoryTransitioned(story_id="s-1", from_state=from_state, to_state=to_state, transitioned_by="po",
                             reason="design signed off")


def plan_accepted() -> PlanAccepted:
    return PlanAccepted(story_id="s-1", plan_id="p-1", approved_by="alice", approval_id="approval-1",
                        deliberations=[PlannedDeliberation(deliberation_id="d-1", task_id="t-1", role=Role.DEV)])


def plan_rejected(story_id: str = "s-1", plan_id: str = "p-9") -> PlanRejected:
    return PlanRejected(approval_id="approval-9", original_subject="planning.plan.approved.v1",
                        reasons=["no council for role DATA"], story_id=story_id, plan_id=plan_id)


def plan_concluded(revision: int = 1, outcome: str = "failed") -> PlanConcluded:
    winner = "dev-1" if outcome == "completed" else None
    return PlanConcluded(story_id="s-1", plan_id="p-1", revision=revision,
                         completed=int(outcome == "completed"), failed=int(outcome != "completed"),
                         outcomes=[DeliberationOutcome(deliberation_id="d-1" if revision == 1 else "d-2",
                                                       task_id="t-1", role=Role.DEV, outcome=outcome,
                                                       winner_id=winner)])


def cancel_requested(deliberation_id: str = "d-1") -> DeliberationCancelRequested:
    return DeliberationCancelRequested(deliberation_id=deliberation_id, requested_by="ops", reason="wrong rubric")


def retry_requested(deliberation_id: str = "d-1") -> DeliberationRetryRequested:
    return DeliberationRetryRequested(deliberation_id=deliberation_id, requested_by="ops", reason="rubric fixed")


RETRY_REF = msgspec.structs.replace(REF, deliberation_id="d-2")


def retried(ref: DeliberationRef = RETRY_REF) -> DeliberationRequested:
    """The retry's new attempt, as the collector requests it."""
    return msgspec.structs.replace(requested(ref), attempt=Attempt(
        first_id="d-1", previous_id="d-1", number=2, requested_by="ops", reason="rubric fixed"))


def nodes_of(writes) -> dict[tuple[Label, str], dict]:
    return {(w.label, w.id): w.props for w in writes if isinstance(w, NodeWrite)}


def edges_of(writes) -> set[tuple[Label, str, Rel, Label, str]]:
    return {(w.source, w.source_id, w.rel, w.target, w.target_id) for w in writes if isinstance(w, EdgeWrite)}


# --- cypher: coalescing a batch into rows ---------------------------------------------------------


def test_a_node_written_twice_in_one_batch_becomes_one_row_with_the_later_properties():
    nodes, edges = coalesce_writes([
        NodeWrite(Label.DELIBERATION, "d-1", {"status": "PENDING", "role": "DEV"}),
        NodeWrite(Label.DELIBERATION, "d-1", {"status": "IN_PROGRESS", "phase": "propose"}),
    ])

    assert nodes == {Label.DELIBERATION: {"d-1": {"status": "IN_PROGRESS", "role": "DEV", "phase": "propose"}}}
    assert edges == {}


def test_none_properties_are_dropped_and_never_erase_an_earlier_value():
    nodes, _ = coalesce_writes([
        NodeWrite(Label.DECISION, "d-1", {"winner_id": "dev-1", "architect_error": None}),
        NodeWrite(Label.DECISION, "d-1", {"winner_id": None, "rationale": "simplest"}),
    ])

    assert nodes[Label.DECISION]["d-1"] == {"winner_id": "dev-1", "rationale": "simplest"}


def test_an_edge_creates_stub_rows_for_both_endpoints():
    nodes, edges = coalesce_writes([EdgeWrite(Label.STORY, "s-1", Rel.HAS_PLAN, Label.PLAN_VERSION, "s-1/p-1")])

    assert nodes == {Label.STORY: {"s-1": {}}, Label.PLAN_VERSION: {"s-1/p-1": {}}}
    assert edges == {(Label.STORY, "HAS_PLAN", Label.PLAN_VERSION): {("s-1", "s-1/p-1"): {}}}


def test_a_stub_endpoint_never_erases_the_properties_of_a_node_written_before_it():
    nodes, _ = coalesce_writes([
        NodeWrite(Label.TASK, "s-1/p-1/t-1", {"title": "Add caching"}),
        EdgeWrite(Label.TASK, "s-1/p-1/t-1", Rel.DELIBERATED_IN, Label.DELIBERATION, "d-1"),
    ])

    assert nodes[Label.TASK]["s-1/p-1/t-1"] == {"title": "Add caching"}


def test_an_edge_written_twice_becomes_one_row_with_the_later_properties():
    _, edges = coalesce_writes([
        EdgeWrite(Label.PROPOSAL, "d-1/dev-1", Rel.REVISED_AS, Label.REVISION, "d-1/dev-1/r1", {"round": 0}),
        EdgeWrite(Label.PROPOSAL, "d-1/dev-1", Rel.REVISED_AS, Label.REVISION, "d-1/dev-1/r1", {"round": 1}),
    ])

    assert edges == {(Label.PROPOSAL, "REVISED_AS", Label.REVISION): {("d-1/dev-1", "d-1/dev-1/r1"): {"round": 1}}}


def test_an_edge_between_labels_its_relationship_does_not_join_is_rejected():
    with pytest.raises(ValueError):
        EdgeWrite(Label.STORY, "s-1", Rel.HAS_TASK, Label.TASK, "s-1/p-1/t-1")
    with pytest.raises(ValueError):
        EdgeWrite(Label.PROPOSAL, "d-1/dev-1", Rel.CRITIQUES, Label.CRITIQUE, "c")


def test_the_batch_statement_is_guarded_by_the_checkpoint_and_ends_by_moving_it():
    statement, params = batch_statement(graph_writes(plan_approved(), envelope(plan_approved())), "PLANNING", 7)
    lines = statement.splitlines()

    assert lines[0] == f"MERGE (cp:{Label.CHECKPOINT} {{id: $stream}})"
    assert "coalesce(cp.sequence, 0) < $sequence" in lines[1]
    assert lines[-2:] == ["SET cp.sequence = $sequence", "RETURN cp.sequence AS applied"]
    assert params["stream"] == "PLANNING"
    assert params["sequence"] == 7


def test_a_fenced_batch_statement_is_guarded_by_the_lease_token_too_and_records_it_with_the_checkpoint():
    statement, params = batch_statement([NodeWrite(Label.STORY, "s-1", {"story_id": "s-1"})], "S", 1, fence=42)
    lines = statement.splitlines()

    assert lines[1] == f"MERGE (fence:{Label.CHECKPOINT} {{id: $fence_id}})"
    assert "coalesce(fence.token, 0) <= $token" in lines[2] and "coalesce(cp.sequence, 0) < $sequence" in lines[2]
    assert lines[-2:] == ["SET cp.sequence = $sequence, fence.token = $token", "RETURN cp.sequence AS applied"]
    assert {key: params[key] for key in ("fence_id", "token")} == {"fence_id": "_fence", "token": 42}
    assert "$token" not in batch_statement([], "S", 1)[0]


def test_the_batch_statement_merges_every_node_before_any_edge():
    writes = graph_writes(plan_approved(), envelope(plan_approved())) + graph_writes(requested(), envelope(requested()))
    statement, _ = batch_statement(writes, "S", 1)
    unwinds = [line for line in statement.splitlines() if line.startswith("UNWIND")]
    kinds = ["node" if " MERGE (n:" in line else "edge" for line in unwinds]

    assert kinds == sorted(kinds, key=lambda kind: kind == "edge")
    assert kinds.count("node") == 6  # Story, PlanVersion, Task, Deliberation, Council, Actor
    assert kinds.count("edge") == 5  # HAS_PLAN, APPROVED, HAS_TASK, DELIBERATED_IN, HELD_BY


def test_the_batch_statement_has_a_segment_only_for_kinds_that_have_rows():
    statement, params = batch_statement([NodeWrite(Label.STORY, "s-1", {"story_id": "s-1"})], "S", 1)

    assert [line for line in statement.splitlines() if line.startswith("UNWIND")] == [
        f"UNWIND $n0 AS row MERGE (n:{Label.STORY} {{id: row.id}}) SET n += row.props"
    ]
    assert params == {"stream": "S", "sequence": 1, "n0": [{"id": "s-1", "props": {"story_id": "s-1"}}]}


def test_an_empty_batch_only_moves_the_checkpoint():
    statement, params = batch_statement([], "S", 3)

    assert "UNWIND" not in statement
    assert statement.splitlines()[-2] == "SET cp.sequence = $sequence"
    assert params == {"stream": "S", "sequence": 3}


# --- graph_model: what each event writes into the graph ---------------------------------------------


def test_an_approved_plan_writes_its_story_plan_version_approver_and_tasks():
    event = plan_approved()
    writes = graph_writes(event, envelope(event, at(5)))
    plan, t1, t2 = plan_key("s-1", "p-1"), task_key("s-1", "p-1", "t-1"), task_key("s-1", "p-1", "t-2")
    nodes = nodes_of(writes)

    assert set(nodes) == {(Label.STORY, "s-1"), (Label.PLAN_VERSION, plan), (Label.ACTOR, "alice"),
                          (Label.TASK, t1), (Label.TASK, t2)}
    assert plan == "s-1/p-1" and t1 == "s-1/p-1/t-1"
    assert nodes[(Label.PLAN_VERSION, plan)] == {
        "story_id": "s-1", "plan_id": "p-1", "approved_by": "alice", "approved_at": format_time(at(5)),
        "roles": ["DEV", "QA"], "constraints": ["no new services"], "task_count": 2,
    }
    assert nodes[(Label.TASK, t1)]["position"] == 0
    assert nodes[(Label.TASK, t2)]["position"] == 1
    assert nodes[(Label.TASK, t1)]["description"] == "Cache the reads."
    assert edges_of(writes) == {
        (Label.STORY, "s-1", Rel.HAS_PLAN, Label.PLAN_VERSION, plan),
        (Label.ACTOR, "alice", Rel.APPROVED, Label.PLAN_VERSION, plan),
        (Label.PLAN_VERSION, plan, Rel.HAS_TASK, Label.TASK, t1),
        (Label.PLAN_VERSION, plan, Rel.HAS_TASK, Label.TASK, t2),
    }


def test_the_same_task_id_in_two_plans_is_two_task_nodes():
    first, second = plan_approved(plan_id="p-1"), plan_approved(plan_id="p-2")
    nodes = nodes_of(graph_writes(first, envelope(first)) + graph_writes(second, envelope(second)))

    assert {(Label.TASK, "s-1/p-1/t-1"), (Label.TASK, "s-1/p-2/t-1")} <= set(nodes)


def test_a_failed_deliberation_that_timed_out_has_status_timed_out():
    timed_out, failed_plainly = failed(timed_out=True), failed(timed_out=False)

    assert nodes_of(graph_writes(timed_out, envelope(timed_out)))[(Label.DELIBERATION, "d-1")]["status"] == "TIMED_OUT"
    assert nodes_of(graph_writes(failed_plainly, envelope(failed_plainly)))[(Label.DELIBERATION, "d-1")][
        "status"] == "FAILED"


def test_a_propose_turn_writes_a_proposal_authored_by_its_agent():
    event = turn_completed(Phase.PROPOSE, "dev-1", "dev-1")
    writes = graph_writes(event, envelope(event))
    proposal = proposal_key("d-1", "dev-1")

    assert set(nodes_of(writes)) == {(Label.PROPOSAL, proposal)}
    assert nodes_of(writes)[(Label.PROPOSAL, proposal)]["content"] == event.content
    assert edges_of(writes) == {
        (Label.DELIBERATION, "d-1", Rel.HAS_PROPOSAL, Label.PROPOSAL, proposal),
        (Label.AGENT, "dev-1", Rel.AUTHORED, Label.PROPOSAL, proposal),
    }


def test_a_critique_turn_writes_a_critique_of_the_authors_proposal_authored_by_the_critic():
    event = turn_completed(Phase.CRITIQUE, agent_id="dev-2", author_id="dev-1", round_=0)
    writes = graph_writes(event, envelope(event))
    critique = critique_key("d-1", "dev-2", "dev-1", 0)

    assert set(nodes_of(writes)) == {(Label.CRITIQUE, critique)}
    assert nodes_of(writes)[(Label.CRITIQUE, critique)]["critic_id"] == "dev-2"
    assert edges_of(writes) == {
        (Label.CRITIQUE, critique, Rel.CRITIQUES, Label.PROPOSAL, proposal_key("d-1", "dev-1")),
        (Label.AGENT, "dev-2", Rel.AUTHORED, Label.CRITIQUE, critique),
    }


def test_a_revise_turn_writes_a_revision_of_the_authors_proposal_authored_by_its_agent():
    event = turn_completed(Phase.REVISE, "dev-1", "dev-1", round_=1)
    writes = graph_writes(event, envelope(event))
    revision = revision_key("d-1", "dev-1", 1)

    assert set(nodes_of(writes)) == {(Label.REVISION, revision)}
    assert edges_of(writes) == {
        (Label.PROPOSAL, proposal_key("d-1", "dev-1"), Rel.REVISED_AS, Label.REVISION, revision),
        (Label.AGENT, "dev-1", Rel.AUTHORED, Label.REVISION, revision),
    }


@pytest.mark.parametrize("phase", [Phase.JUDGE, Phase.SELECT])
def test_judge_and_select_turns_write_nothing_to_the_graph(phase):
    event = turn_completed(phase)
    assert graph_writes(event, envelope(event)) == []


def test_events_the_graph_does_not_show_write_nothing():
    assert graph_writes(turn_failed(), envelope(turn_failed())) == []


def every_projected_event() -> list[Event]:
    return [
        plan_approved(),
        transitioned(),
        plan_accepted(),
        plan_rejected(),
        plan_concluded(),
        cancel_requested(),
        retry_requested(),
        retried(),
        CouncilCreated(council=DEV_COUNCIL, created_by="ops"),
        CouncilDeleted(role=Role.QA, deleted_by="ops"),
        requested(),
        started(),
        advanced(),
        scored(),
        decided(),
        completed(),
        failed(timed_out=True),
        turn_completed(Phase.PROPOSE),
        turn_completed(Phase.CRITIQUE, "dev-2", "dev-1"),
        turn_completed(Phase.REVISE, round_=1, context_hash=None),
    ]


def test_the_examples_cover_every_event_the_graph_projects():
    assert {type(e) for e in every_projected_event()} == set(graph_model.PROJECTORS)


def test_every_property_written_to_the_graph_is_a_scalar_or_a_list_of_strings():
    """Neo4j cannot store a map, nor a list of anything but one primitive type."""

    def storable(value) -> bool:
        if isinstance(value, list):
            return all(isinstance(item, str) for item in value)
        return isinstance(value, str | int | float | bool)

    for event in every_projected_event():
        writes = graph_writes(event, envelope(event))
        assert writes, type(event).__name__
        nodes, edges = coalesce_writes(writes)
        rows = [props for by_id in nodes.values() for props in by_id.values()]
        rows += [props for by_pair in edges.values() for props in by_pair.values()]
        for props in rows:
            for name, value in props.items():
                assert storable(value), f"{type(event).__name__}.{name} = {value!r}"


# --- order independence: the streams may interleave in any way --------------------------------------


def stream_logs() -> dict[str, list[tuple[Event, Envelope]]]:
    """Each stream's events in its own order, with the times they were stored."""
    logs = {
        "CONFIG": [CouncilCreated(council=DEV_COUNCIL, created_by="ops")],
        "PLANNING": [plan_approved(), transitioned(), transitioned("BUILD", "REVIEW")],
        "ORCHESTRATION": [plan_accepted(), requested(), started(), advanced(), cancel_requested(),
                          advanced(Phase.CRITIQUE), scored(), decided(), completed(), plan_concluded(1, "completed"),
                          retry_requested(), retried(), failed(cancelled_by="ops", deliberation_id="d-2"),
                          plan_concluded(2, "cancelled"), plan_rejected()],
        "AGENT": [turn_completed(Phase.PROPOSE, "dev-1", "dev-1"), turn_completed(Phase.PROPOSE, "dev-2", "dev-2"),
                  turn_completed(Phase.CRITIQUE, "dev-2", "dev-1"), turn_completed(Phase.REVISE, "dev-1", "dev-1", 1)],
    }
    return {
        stream: [(event, envelope(event, at(10 * index))) for index, event in enumerate(events)]
        for stream, events in logs.items()
    }


def interleave(logs: dict[str, list], rng: random.Random) -> list:
    """One interleaving of the streams that keeps each stream's own order."""
    queues = {stream: list(events) for stream, events in logs.items()}
    merged = []
    while queues:
        stream = rng.choice(sorted(queues))
        merged.append(queues[stream].pop(0))
        if not queues[stream]:
            del queues[stream]
    return merged


def graph_after(events_in_order) -> tuple[dict, dict]:
    return coalesce_writes(write for event, env in events_in_order for write in graph_writes(event, env))


def test_the_interleaving_helper_keeps_each_streams_order():
    logs = stream_logs()
    merged = interleave(logs, random.Random(1))

    for stream, events in logs.items():
        assert [item for item in merged if item in events] == events, stream


def test_the_graph_does_not_depend_on_how_the_streams_interleave():
    logs = stream_logs()
    stream_by_stream = [item for events in logs.values() for item in events]
    reversed_streams = [item for events in reversed(logs.values()) for item in events]
    expected = graph_after(stream_by_stream)

    assert graph_after(reversed_streams) == expected
    for seed in range(20):
        assert graph_after(interleave(logs, random.Random(seed))) == expected, seed


def test_the_graph_holds_the_final_state_of_each_stream_whatever_the_interleaving():
    logs = stream_logs()
    orchestration_last = [*logs["PLANNING"], *logs["AGENT"], *logs["CONFIG"], *logs["ORCHESTRATION"]]
    planning_last = [*logs["ORCHESTRATION"], *logs["AGENT"], *logs["CONFIG"], *logs["PLANNING"]]

    for order in (orchestration_last, planning_last):
        nodes, edges = graph_after(order)
        assert nodes[Label.DELIBERATION]["d-1"]["status"] == "COMPLETED"
        assert nodes[Label.TASK]["s-1/p-1/t-1"]["title"] == "Add caching"
        assert nodes[Label.PROPOSAL]["d-1/dev-1"]["content"] == "propose by dev-1 on dev-1"
        assert nodes[Label.PROPOSAL]["d-1/dev-1"]["score"] == 8.0
        assert nodes[Label.PROPOSAL]["d-1/dev-1"]["rank"] == 1
        assert ("s-1/p-1/t-1", "d-1") in edges[(Label.TASK, "DELIBERATED_IN", Label.DELIBERATION)]
        assert nodes[Label.STORY]["s-1"]["state"] == "REVIEW"
        assert nodes[Label.PLAN_VERSION]["s-1/p-1"]["conclusion_revision"] == 2
        assert nodes[Label.DELIBERATION]["d-2"]["status"] == "CANCELLED"
        assert ("d-1", "d-2") in edges[(Label.DELIBERATION, "RETRIED_AS", Label.DELIBERATION)]


# --- kv_model: what each event writes into the key-value store --------------------------------------


def kind(writes, cls) -> list:
    return [w for w in writes if isinstance(w, cls)]


def test_a_requested_deliberation_is_pending_and_indexed_by_time_and_by_story():
    event = requested()
    writes = kv_writes(event, envelope(event, at(5)))
    (fields,) = kind(writes, SetFields)

    assert fields.key == deliberation_key("d-1") == "deliberation:d-1"
    assert fields.fields["status"] == "PENDING"
    assert fields.fields["story_id"] == "s-1"
    assert fields.fields["title"] == "Add caching"
    assert fields.fields["requested_at"] == format_time(at(5))
    assert json.loads(fields.fields["agents"]) == ["dev-1", "dev-2", "dev-3"]
    assert AddToIndex(DELIBERATIONS_KEY, "d-1", at(5).timestamp(), aged=True) in writes
    assert AddToSet(story_deliberations_key("s-1"), "d-1", at=at(5).timestamp()) in writes


def test_every_key_an_event_writes_is_dated_by_it_but_the_indexes_every_aggregate_shares():
    event = requested()
    writes = kv_writes(event, envelope(event, at(5)))

    shared = {DELIBERATIONS_KEY, ACTIVITY_KEY}
    assert {w.key for w in writes if w.at is None} == shared
    assert {w.at for w in writes if w.key not in shared} == {at(5).timestamp()}
    # The index of every deliberation outlives each of them: its members age out by their own dates.
    assert [w.aged for w in writes if w.key == DELIBERATIONS_KEY] == [True]


def test_counters_are_kept_per_day_so_that_they_expire_with_the_facts_they_count():
    late, next_day = completed(), msgspec.structs.replace(completed(), deliberation_id="d-2")
    (before_midnight,) = kind(kv_writes(late, envelope(late, dt.datetime(2026, 11, 22, 23, 59, 59, tzinfo=dt.UTC))),
                              CountOnce)
    (after_midnight,) = kind(kv_writes(next_day, envelope(next_day, dt.datetime(2026, 11, 23, tzinfo=dt.UTC))),
                             CountOnce)

    assert before_midnight.key == "council:DEV:stats:2026-11-22"
    assert after_midnight.key == "council:DEV:stats:2026-11-23"
    # What was counted is remembered beside the deliberation, and goes with it, whatever the day.
    assert (before_midnight.marker, after_midnight.marker) == (counted_key("deliberation:d-1"),
                                                               counted_key("deliberation:d-2"))


def test_a_started_deliberation_is_in_progress_with_its_overall_deadline():
    council = msgspec.structs.replace(DEV_COUNCIL, protocol=msgspec.structs.replace(
        DEV_COUNCIL.protocol, deliberation_deadline_s=600.0))
    event = msgspec.structs.replace(started(), council=council)
    (fields,) = kind(kv_writes(event, envelope(event)), SetFields)

    assert fields == SetFields(deliberation_key("d-1"), {
        "status": "IN_PROGRESS", "started_at": format_time(at(1)), "deadline_s": "600.0",
        "deadline_at": format_time(at(601))}, at=T0.timestamp())


def test_an_advanced_deliberation_records_its_phase_round_and_when_the_phase_began():
    event = advanced(Phase.CRITIQUE, 1)
    (fields,) = kind(kv_writes(event, envelope(event, at(9))), SetFields)

    assert fields.fields == {"phase": "critique", "round": "1", "phase_started:critique:1": format_time(at(9))}


def test_a_completed_deliberation_records_the_winner_and_counts_once_for_its_council():
    event = completed()
    writes = kv_writes(event, envelope(event, at(60)))
    (fields,) = kind(writes, SetFields)
    (counted,) = kind(writes, CountOnce)

    assert fields.fields["status"] == "COMPLETED"
    assert fields.fields["winner_id"] == "dev-1"
    assert fields.fields["duration_ms"] == "4200"
    assert fields.fields["finished_at"] == format_time(at(60))
    assert counted == CountOnce(council_stats_key("DEV", "2026-11-22"),
                                {"completed": 1, "duration_ms_total": 4200, "wins:dev-1": 1}, fact="result/d-1",
                                marker="counted:deliberation:d-1", at=at(60).timestamp())


def test_a_deliberation_that_timed_out_is_timed_out_and_counted_as_timed_out():
    event = failed(timed_out=True)
    writes = kv_writes(event, envelope(event))
    (fields,) = kind(writes, SetFields)
    (counted,) = kind(writes, CountOnce)

    assert fields.fields["status"] == "TIMED_OUT"
    assert fields.fields["failed_phase"] == "propose"
    assert counted.amounts == {"timed_out": 1, "duration_ms_total": 300_000}
    assert counted.fact == "result/d-1"


def test_a_deliberation_that_failed_in_time_is_failed_and_counted_as_failed():
    event = failed(timed_out=False)
    writes = kv_writes(event, envelope(event))

    assert kind(writes, SetFields)[0].fields["status"] == "FAILED"
    assert kind(writes, CountOnce)[0].amounts == {"failed": 1, "duration_ms_total": 300_000}


def test_a_turn_completed_and_a_turn_failed_count_the_same_fact_so_only_one_is_counted():
    completed_turn = turn_completed(Phase.PROPOSE, "dev-3", "dev-3")
    (success,) = kind(kv_writes(completed_turn, envelope(completed_turn)), CountOnce)
    (failure,) = kind(kv_writes(turn_failed(), envelope(turn_failed())), CountOnce)

    assert success.fact == failure.fact
    assert failure.amounts == {"turns_failed": 1, "errors:LlmTimeout": 1}


def test_every_event_adds_exactly_one_activity_entry_capped_at_the_feed_length():
    for event in [*every_projected_event(), turn_failed()]:
        writes = kv_writes(event, envelope(event, at(3)))
        feed = [w for w in writes if isinstance(w, AddToIndex) and w.key == ACTIVITY_KEY]

        assert len(feed) == 1, type(event).__name__
        assert feed[0].capped == ACTIVITY_KEPT
        assert feed[0].score == at(3).timestamp()


def test_the_activity_entry_is_unique_per_event_id_and_the_same_for_a_replayed_event():
    event = started()
    first = kv_model.activity_entry(event, envelope(event, event_id="e-1"))
    replayed = kv_model.activity_entry(event, envelope(event, event_id="e-1"))
    another = kv_model.activity_entry(event, envelope(event, event_id="e-2"))

    expected = AddToIndex(ACTIVITY_KEY, (
        '{"aggregate_id": "d-1", "at": "2026-11-22T12:00:00.000000Z", "correlation_id": "c-1", "event_id": "e-1", '
        '"producer": "test", "type": "deliberation.started.v1"}'), T0.timestamp(), capped=ACTIVITY_KEPT)
    assert [first, replayed] == [expected, expected]
    assert json.loads(another.member)["event_id"] == "e-2"


@given(st.text(), st.text(), st.text(), st.text(), st.sampled_from(["deliberation.started", "a\"b\\c"]))
def test_the_activity_entry_is_the_json_the_standard_encoder_writes(event_id, aggregate_id, correlation_id, producer,
                                                                   event_type):
    event = started()
    sent = msgspec.structs.replace(envelope(event), event_id=event_id, aggregate_id=aggregate_id,
                                   correlation_id=correlation_id, producer=producer, event_type=event_type)
    entry = {"event_id": event_id, "at": format_time(sent.occurred_at), "type": f"{event_type}.v1",
             "aggregate_id": aggregate_id, "correlation_id": correlation_id, "producer": producer}

    assert kv_model.activity_entry(event, sent).member == json.dumps(entry, sort_keys=True)


# --- reads: stored rows as replies ----------------------------------------------------------------


def test_a_stored_deliberation_hash_is_parsed_into_its_view():
    view = deliberation_view({
        "deliberation_id": "d-1", "story_id": "s-1", "plan_id": "p-1", "task_id": "t-1", "role": "DEV",
        "status": "COMPLETED", "round": "2", "duration_ms": "4200", "winner_revisions": "1", "winner_score": "7.5",
        "agents": '["dev-1", "dev-2"]', "failed_agents": '["dev-3"]',
        "ranking": '[{"rank": 1, "agent_id": "dev-1", "score": 7.5, "qualified": true}]',
        "phase_started:revise:1": "2026-11-22T12:02:00.000000Z",
        "phase_started:propose:0": "2026-11-22T12:00:00.000000Z",
        "title": "123",
    })

    assert view.round == 2
    assert view.duration_ms == 4200
    assert view.winner_revisions == 1
    assert view.winner_score == 7.5
    assert view.agents == ["dev-1", "dev-2"]
    assert view.failed_agents == ["dev-3"]
    assert view.ranking[0].agent_id == "dev-1" and view.ranking[0].qualified is True
    assert list(view.phases_started.items()) == [("propose:0", "2026-11-22T12:00:00.000000Z"),
                                                 ("revise:1", "2026-11-22T12:02:00.000000Z")]
    assert view.title == "123"


def test_a_deliberation_hash_without_its_request_fields_still_reads_as_pending():
    view = deliberation_view({"deliberation_id": "d-1", "phase": "propose", "round": "0"})

    assert view.status == "PENDING"
    assert (view.story_id, view.plan_id, view.task_id, view.role) == ("", "", "", "")


def test_a_deliberation_written_by_the_kv_model_reads_back_as_its_view():
    stored: dict[str, str] = {}
    for event, moment in [(requested(), at(0)), (started(), at(1)), (advanced(), at(2)),
                          (advanced(Phase.CRITIQUE, 1), at(3)), (decided(), at(4)), (completed(), at(5))]:
        for write in kv_writes(event, envelope(event, moment)):
            if isinstance(write, SetFields) and write.key == deliberation_key("d-1"):
                stored.update(write.fields)

    view = deliberation_view(stored)

    assert view.status == "COMPLETED"
    assert view.phase == "critique" and view.round == 1
    assert view.winner_id == "dev-1" and view.winner_score == 8.0 and view.winner_content == "the proposal"
    assert [r.agent_id for r in view.ranking] == ["dev-1", "dev-2"]
    assert view.failed_agents == ["dev-3"]
    assert view.phases_started == {"propose:0": format_time(at(2)), "critique:1": format_time(at(3))}
    assert view.requested_at == format_time(at(0))
    assert view.scored_by == "judge"


def test_a_decision_the_checks_ranked_says_so_in_both_read_models():
    decision = msgspec.structs.replace(decided(), scored_by=ScoredBy.CHECKS)
    stored: dict[str, str] = {}
    for write in kv_writes(decision, envelope(decision, at(4))):
        if isinstance(write, SetFields) and write.key == deliberation_key("d-1"):
            stored.update(write.fields)
    assert deliberation_view(stored).scored_by == "checks"
    assert nodes_of(graph_writes(decision, envelope(decision, at(4))))[(Label.DECISION, "d-1")]["scored_by"] == "checks"


def story_row(plan_id, approved_at, task_id=None, title=None, position=None, deliberation_id=None, role=None,
              status=None, score=None, winner_id=None, rationale=None, decided_by=None, attempt_number=None,
              cancelled_by=None, retried_as=None, answers=(None,) * 9) -> list:
    """A row of STORY_QUERY; `answers` are the plan's answer ... failed columns."""
    return [plan_id, "alice", approved_at, *answers, task_id, title, position, deliberation_id, role, status, score,
            attempt_number, cancelled_by, retried_as, winner_id, rationale, decided_by]


def test_a_story_with_no_rows_is_unknown():
    assert story_view("s-1", []) is None


def test_a_story_is_a_tree_of_plans_by_approval_time_and_tasks_by_position():
    rows = [
        story_row("p-2", "2026-11-23T09:00:00.000000Z", "t-b", "Second", 1),
        story_row("p-2", "2026-11-23T09:00:00.000000Z", "t-a", "First", 0, "d-2", "QA", "PENDING"),
        story_row("p-2", "2026-11-23T09:00:00.000000Z", "t-a", "First", 0, "d-1", "DEV", "COMPLETED", 8.0,
                  "dev-1", "simplest", "architect-1"),
        story_row("p-1", "2026-11-22T09:00:00.000000Z"),
    ]

    view = story_view("s-1", rows)

    assert view.story_id == "s-1"
    assert [p.plan_id for p in view.plans] == ["p-1", "p-2"]
    assert view.plans[0].tasks == []
    assert [t.task_id for t in view.plans[1].tasks] == ["t-a", "t-b"]
    first = view.plans[1].tasks[0]
    assert [d.role for d in first.deliberations] == ["DEV", "QA"]
    assert first.deliberations[0].winner_id == "dev-1"
    assert first.deliberations[0].winner_score == 8.0
    assert view.plans[1].tasks[1].deliberations == []


def test_a_story_reads_the_same_whatever_the_order_of_its_rows():
    rows = [
        story_row("p-1", "2026-11-22T09:00:00.000000Z", "t-2", "Two", 1, "d-3", "QA", "PENDING"),
        story_row("p-1", "2026-11-22T09:00:00.000000Z", "t-1", "One", 0, "d-1", "DEV", "COMPLETED"),
        story_row("p-1", "2026-11-22T09:00:00.000000Z", "t-1", "One", 0, "d-2", "ARCHITECT", "FAILED"),
        story_row("p-0", "2026-11-21T09:00:00.000000Z", "t-1", "Zero", 0),
    ]

    assert story_view("s-1", rows) == story_view("s-1", list(reversed(rows)))


def test_a_dead_letter_is_counted_once_by_service_and_stream():
    from contracts.events import MessageRejected
    letter = MessageRejected(
        service="planning", consumer="planning-plan-approvals", reason="invalid", original_subject="planning.x",
        original_headers={}, original_body=b"{}", stream="PLANNING", stream_sequence=7, deliveries=1,
    )
    [count, _activity] = kv_model.kv_writes(letter, envelope(letter))
    assert count == CountOnce(kv_model.dead_letter_stats_key("2026-11-22"),
                              {"total": 1, "service:planning": 1, "stream:PLANNING": 1},
                              fact="letter/planning-plan-approvals/PLANNING/7",
                              marker="counted:deadletters:stats:2026-11-22", at=T0.timestamp())


def test_a_redrive_is_counted_once_per_letter():
    from contracts.events import MessageRedriven
    redriven = MessageRedriven(letter_id="l-1", letter_sequence=3, original_subject="planning.x", original_stream="P",
                               original_sequence=7, republished_id="r-1", republished_sequence=9, redriven_by="alice")
    [count, _activity] = kv_model.kv_writes(redriven, envelope(redriven))
    assert count == CountOnce(kv_model.dead_letter_stats_key("2026-11-22"), {"redriven": 1}, fact="redrive/l-1",
                              marker="counted:deadletters:stats:2026-11-22", at=T0.timestamp())


# --- the graph adapter's parameter text -----------------------------------------------------------

names = st.text(min_size=1).filter(lambda name: "`" not in name)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                      | st.dictionaries(names, inner, max_size=4), max_leaves=12)


@given(st.dictionaries(names, values, max_size=4))
def test_the_parameter_text_is_what_falkordb_py_writes(params):
    assert params_header(params) == Graph._build_params_header(None, params)


@pytest.mark.parametrize("name", ["", "a`b"])
def test_a_parameter_name_falkordb_cannot_take_is_refused_as_falkordb_py_refuses_it(name):
    with pytest.raises(ValueError):
        Graph._build_params_header(None, {"p": {name: 1}})
    with pytest.raises(ValueError):
        params_header({"p": {name: 1}})


def test_a_dated_batch_moves_each_nodes_expiry_to_its_latest_date_and_never_dates_configuration():
    writes = [NodeWrite(Label.DELIBERATION, "d-1", {"status": "PENDING"}, at=10.0),
              NodeWrite(Label.DELIBERATION, "d-1", {}, at=5.0),
              EdgeWrite(Label.DELIBERATION, "d-1", Rel.HELD_BY, Label.COUNCIL, "DEV", at=20.0)]
    statement, params = batch_statement(writes, "S", 1, retention_s=100.0)
    rows = {row["id"]: row for value in params.values() if isinstance(value, list) for row in value if "id" in row}

    # The edge's date counts for its endpoint too: the latest of the three is 20.
    assert rows["d-1"]["expires"] == 120.0
    assert "expires" not in rows["DEV"]
    assert "MERGE (n:Deliberation {id: row.id}) SET n += row.props, n.expires_at = CASE" in statement
    assert "MERGE (n:Council {id: row.id}) SET n += row.props\n" in statement


def test_without_a_retention_no_node_is_dated():
    statement, params = batch_statement([NodeWrite(Label.DELIBERATION, "d-1", {}, at=10.0)], "S", 1)

    assert "expires_at" not in statement
    assert all("expires" not in row for value in params.values() if isinstance(value, list) for row in value)


def test_a_graph_index_is_due_for_a_rebuild_once_it_has_spent_more_ids_than_it_holds_and_the_minimum():
    minimum = INDEX_SPENT_IDS_BEFORE_REBUILD

    def row(label, documents, highest, status="OPERATIONAL"):
        return [label, ["id"], status, {"numDocuments": documents, "maxDocId": highest}]

    rows = [
        row("Proposal", 100, 100 + minimum),             # spent the minimum, more than it holds: due
        row("Critique", 2 * minimum, 4 * minimum - 1),   # spent fewer than it holds: not yet
        row("Revision", 10, 10 + minimum - 1),           # below the minimum: not yet
        row("Decision", 10, 10 + 2 * minimum, status="[Indexing] 5/10: UNDER CONSTRUCTION"),
        ["Task", ["id"], "OPERATIONAL", "no figures in this version"],
        row("NotOurs", 1, 10 * minimum),
    ]
    assert spent_indexes(rows) == [(Label.PROPOSAL, 100, minimum)]
