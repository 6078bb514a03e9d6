"""The read models on real servers: nats-server, and redis-server with the FalkorDB module."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt

import msgspec
import pytest

from contracts import catalog
from contracts.envelope import MSG_ID
from contracts.events import (
    AgentProfile,
    Attempt,
    Brief,
    Council,
    DecisionMade,
    DeliberationCancelRequested,
    DeliberationCompleted,
    DeliberationFailed,
    DeliberationOutcome,
    DeliberationRef,
    DeliberationRequested,
    DeliberationRetryRequested,
    DeliberationStarted,
    LegacyStoryTransitioned,
    Phase,
    PlanAccepted,
    PlanApproved,
    PlanConcluded,
    PlannedDeliberation,
    PlannedTask,
    PlanRejected,
    Protocol,
    RankedProposal,
    Role,
    StoryTransitioned,
    Turn,
    TurnCompleted,
    Winner,
)
from contracts.queries import DeliberationStatus, ListDeliberations, OperatorRequest
from services.mesh.log_reader import Reading, read_log
from services.projection.app import projectors
from services.projection.graph_model import graph_writes
from services.projection.kv_model import AddToIndex, kv_writes
from services.projection.projector import Progress, Projector
from services.projection.reads import ReadModels
from services.projection.rebuild import rebuild
from services.projection.vocabulary import EdgeWrite, Label, NodeWrite, Rel
from streams.definitions import AGENT, ORCHESTRATION, PLANNING
from tests.support import council_stats, counted_facts, decode, last_sequence, read_stream

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def agent(agent_id: str) -> AgentProfile:
    return AgentProfile(agent_id=agent_id, role=Role.DEV, persona="p", temperature=0.3, seed=1)


def story_events(suffix: str):
    """A plan approval, and one whole deliberation of its task, as the services would publish them."""
    story, plan, deliberation = f"story-{suffix}", f"plan-{suffix}", f"d-{suffix}"
    task = PlannedTask(task_id="login", title="Add login throttling", description="password=hunter2 in prod")
    ref = DeliberationRef(deliberation_id=deliberation, story_id=story, plan_id=plan, task_id="login", role=Role.DEV)
    council = Council(role=Role.DEV, agents=[agent("dev-1"), agent("dev-2")])
    turn = Turn(phase=Phase.PROPOSE, round=0, agent_id="dev-1", author_id="dev-1")
    approval = PlanApproved(story_id=story, plan_id=plan, approved_by="alice", roles=[Role.DEV], tasks=[task])
    requested = DeliberationRequested(deliberation=ref, brief=Brief(task=task, rubric={}), approved_by="alice",
                                      council=council, architect=agent("architect-1"))
    started = DeliberationStarted(deliberation=ref, brief=Brief(task=task, rubric={}), council=council,
                                  architect=agent("architect-1"), started_at=NOW)
    proposal = TurnCompleted(deliberation=ref, turn=turn, agent=agent("dev-1"), content="Use a sliding window.",
                             model="m", temperature=0.3, seed=1, prompt_tokens=10, completion_tokens=5, latency_ms=7)
    ranking = [RankedProposal(rank=1, agent_id="dev-1", score=8.0, qualified=True)]
    decision = DecisionMade(deliberation_id=deliberation, winner_id="dev-1", candidates=["dev-1"], ranking=ranking,
                            rationale="Simplest.", decided_by="architect-1")
    completed = DeliberationCompleted(
        deliberation_id=deliberation, story_id=story, plan_id=plan, task_id="login", role=Role.DEV,
        winner=Winner(agent_id="dev-1", content="Use a sliding window.", score=8.0, revisions=0),
        ranking=ranking, rationale="Simplest.", decided_by="architect-1", duration_ms=1234,
    )
    return {"approval": approval, "requested": requested, "started": started, "proposal": proposal,
            "decision": decision, "completed": completed, **lifecycle_events(suffix, task, council)}


def lifecycle_events(suffix: str, task: PlannedTask, council: Council) -> dict:
    """Around the deliberation: the story's transitions, ingress's answers, and a QA deliberation that an
    operator cancels and retries, as upstream, planning, the CLI and the collector would publish them."""
    story, plan = f"story-{suffix}", f"plan-{suffix}"
    qa_council = Council(role=Role.QA, agents=council.agents, protocol=Protocol(deliberation_deadline_s=600))
    qa = DeliberationRef(deliberation_id=f"qa-{suffix}", story_id=story, plan_id=plan, task_id="login", role=Role.QA)
    retry = msgspec.structs.replace(qa, deliberation_id=f"qa2-{suffix}")
    qa_requested = DeliberationRequested(deliberation=qa, brief=Brief(task=task, rubric={}), approved_by="alice",
                                         council=qa_council, architect=agent("architect-1"))
    outcome = DeliberationOutcome(deliberation_id=f"d-{suffix}", task_id="login", role=Role.DEV, outcome="completed",
                                  winner_id="dev-1")
    return {
        "legacy_transition": LegacyStoryTransitioned(story_id=story, from_state="TODO", to_state="DESIGN",
                                                     transitioned_by="po", timestamp=1_700_000_000),
        "transition": StoryTransitioned(story_id=story, from_state="DESIGN", to_state="BUILD", transitioned_by="po",
                                        reason="design signed off"),
        "accepted": PlanAccepted(story_id=story, plan_id=plan, approved_by="alice", approval_id=f"{suffix}-approval",
                                 deliberations=[PlannedDeliberation(deliberation_id=r.deliberation_id, task_id="login",
                                                                    role=r.role) for r in (qa,)]),
        "qa_requested": qa_requested,
        "qa_started": DeliberationStarted(deliberation=qa, brief=qa_requested.brief, council=qa_council,
                                          architect=agent("architect-1"), started_at=NOW),
        "cancel": DeliberationCancelRequested(deliberation_id=qa.deliberation_id, requested_by="ops",
                                              reason="wrong rubric"),
        "cancelled": DeliberationFailed(deliberation_id=qa.deliberation_id, story_id=story, plan_id=plan,
                                        task_id="login", role=Role.QA, phase=Phase.PROPOSE, reason="cancelled",
                                        duration_ms=900, cancelled_by="ops"),
        "concluded": PlanConcluded(story_id=story, plan_id=plan, completed=1, failed=1, outcomes=[
            outcome, DeliberationOutcome(deliberation_id=qa.deliberation_id, task_id="login", role=Role.QA,
                                         outcome="cancelled")]),
        "retry": DeliberationRetryRequested(deliberation_id=qa.deliberation_id, requested_by="ops",
                                            reason="rubric fixed"),
        "retried": msgspec.structs.replace(qa_requested, deliberation=retry, attempt=Attempt(
            first_id=qa.deliberation_id, previous_id=qa.deliberation_id, number=2, requested_by="ops",
            reason="rubric fixed")),
        "reconcluded": PlanConcluded(story_id=story, plan_id=plan, completed=1, failed=0, revision=2, outcomes=[
            outcome, DeliberationOutcome(deliberation_id=retry.deliberation_id, task_id="login", role=Role.QA,
                                         outcome="completed", winner_id="dev-2")]),
        "rejected": PlanRejected(approval_id=f"{suffix}-approval-2", original_subject=catalog.PLAN_APPROVED.subject,
                                 reasons=["no council for DATA"], story_id=story, plan_id=f"plan2-{suffix}"),
    }


async def publish(js, event, event_id: str) -> None:
    if isinstance(event, LegacyStoryTransitioned):
        # Legacy publishers send no headers: the body itself identifies the fact.
        await js.publish(catalog.LEGACY_STORY_TRANSITIONED.subject, msgspec.json.encode(event))
        return
    await js.publish(catalog.spec_for_payload(event).subject, msgspec.json.encode(event), headers={MSG_ID: event_id})


async def catch_up(js, projector, *streams) -> list[Progress]:
    namespace = await projector.store.active_namespace()
    await projector.store.prepare(namespace)
    return [await projector.catch_up(js, namespace, stream, lambda p: None) for stream in streams]


async def test_the_lifecycle_is_what_story_show_deliberation_show_and_list_answer(js, stores, unique):
    graph, kv = stores
    events = story_events(unique)
    for name, event in events.items():
        await publish(js, event, f"{unique}-{name}")
    for projector in stores:
        await catch_up(js, projector, *projector.spec.streams)
    reads = ReadModels(graph.store, kv.store)

    story = await reads.story(f"story-{unique}")
    cancelled = await reads.deliberation(f"qa-{unique}")
    retry = await reads.deliberation(f"qa2-{unique}")
    listed = await reads.deliberations(ListDeliberations(story_id=f"story-{unique}",
                                                        status=DeliberationStatus.CANCELLED))

    assert story.state == "BUILD"
    assert [(t.from_state, t.to_state, t.by, t.reason) for t in story.transitions] == [
        ("TODO", "DESIGN", "po", ""), ("DESIGN", "BUILD", "po", "design signed off")]
    accepted, rejected = story.plans
    assert (accepted.answer, accepted.approval_id, accepted.deliberation_count, accepted.conclusion_revision,
            accepted.failed) == ("accepted", f"{unique}-approval", 1, 2, 0)
    assert (rejected.plan_id, rejected.answer, rejected.answer_reasons, rejected.approval_id) == (
        f"plan2-{unique}", "rejected", ["no council for DATA"], f"{unique}-approval-2")
    [task] = accepted.tasks
    assert [(d.role, d.attempt_number, d.status, d.cancelled_by, d.retried_as) for d in task.deliberations] == [
        ("DEV", 1, "COMPLETED", None, None), ("QA", 1, "CANCELLED", "ops", f"qa2-{unique}"),
        ("QA", 2, "PENDING", None, None)]
    assert (cancelled.status, cancelled.cancelled_by, cancelled.retried_as) == ("CANCELLED", "ops", f"qa2-{unique}")
    assert (cancelled.cancel_requested.by, cancelled.cancel_requested.reason) == ("ops", "wrong rubric")
    assert isinstance(cancelled.retry_requested, OperatorRequest)
    assert (cancelled.deadline_s, cancelled.deadline_at) == (600.0, "2026-11-22T12:10:00.000000Z")
    assert (retry.attempt.number, retry.attempt.first_id, retry.attempt.requested_by) == (2, f"qa-{unique}", "ops")
    assert [d.deliberation_id for d in listed.deliberations] == [f"qa-{unique}"]
    transitions = await kv.store.client.zrange(
        f"{await kv.store.active_namespace()}:story:story-{unique}:transitions", 0, -1)
    assert [msgspec.json.decode(t)["to_state"] for t in transitions] == ["DESIGN", "BUILD"]


async def test_a_plan_shows_ingress_latest_answer_to_its_approvals_never_two(js, stores, unique):
    graph, kv = stores
    events = story_events(unique)
    rejected = msgspec.structs.replace(events["rejected"], approval_id=f"{unique}-approval-3",
                                       plan_id=f"plan-{unique}")
    accepted_again = msgspec.structs.replace(events["accepted"], approval_id=f"{unique}-approval-4")
    reads = ReadModels(graph.store, kv.store)

    async def latest_answer(*named) -> tuple:
        for name, event in named:
            await publish(js, event, f"{unique}-{name}")
        await catch_up(js, graph, PLANNING, ORCHESTRATION)
        [plan] = (await reads.story(f"story-{unique}")).plans
        return plan.answer, plan.approval_id, plan.answer_reasons, plan.deliberation_count, plan.concluded_at

    after_rejection = await latest_answer(("approval", events["approval"]), ("accepted", events["accepted"]),
                                          ("concluded", events["concluded"]), ("rejected-later", rejected))
    after_acceptance = await latest_answer(("accepted-again", accepted_again))

    assert after_rejection[:4] == ("rejected", f"{unique}-approval-3", ["no council for DATA"], 0)
    assert after_acceptance[:4] == ("accepted", f"{unique}-approval-4", [], 1)
    # The deliberations the first acceptance started still concluded, whatever was answered since.
    assert after_rejection[4] is not None and after_acceptance[4] == after_rejection[4]


async def test_an_edge_whose_endpoint_arrives_later_is_kept_and_filled_in(js, stores, unique):
    graph, kv = stores
    events = story_events(unique)
    # The agent's proposal and the decision are projected before the deliberation and the plan exist.
    await publish(js, events["proposal"], f"{unique}-proposal")
    await publish(js, events["requested"], f"{unique}-requested")
    await publish(js, events["decision"], f"{unique}-decision")
    await publish(js, events["completed"], f"{unique}-completed")
    await catch_up(js, graph, AGENT, ORCHESTRATION)
    await publish(js, events["approval"], f"{unique}-approval")
    await catch_up(js, graph, PLANNING)

    story = await ReadModels(graph.store, kv.store).story(f"story-{unique}")

    assert story is not None
    [plan] = story.plans
    assert plan.approved_by == "alice"
    [task] = plan.tasks
    assert task.title == "Add login throttling"
    [decision] = task.deliberations
    assert (decision.deliberation_id, decision.status, decision.winner_id) == (f"d-{unique}", "COMPLETED", "dev-1")
    assert decision.rationale == "Simplest."
    chosen = await graph.store.read(
        "MATCH (:Decision {id: $d})-[:CHOSE]->(p:Proposal)<-[:AUTHORED]-(a:Agent) RETURN p.content, a.id",
        {"d": f"d-{unique}"},
    )
    assert chosen == [["Use a sliding window.", "dev-1"]]


async def test_a_replayed_stream_duplicates_nothing(js, stores, unique):
    graph, kv = stores
    events = story_events(unique)
    for name, event in events.items():
        await publish(js, event, f"{unique}-{name}")
    await catch_up(js, graph, PLANNING, ORCHESTRATION, AGENT)
    await catch_up(js, kv, PLANNING, ORCHESTRATION, AGENT)
    before = {p.spec.name: await p.store.content_hash(await p.store.active_namespace()) for p in stores}

    # Every message again, from sequence 1: the checkpoints are wound back, so nothing is skipped by them.
    for projector in stores:
        namespace = await projector.store.active_namespace()
        for stream in (PLANNING, ORCHESTRATION, AGENT):
            await projector.store.rewind(namespace, stream.name, 0)
        replayed = await catch_up(js, projector, PLANNING, ORCHESTRATION, AGENT)
        assert sum(p.applied for p in replayed) >= len(events)

    after = {p.spec.name: await p.store.content_hash(await p.store.active_namespace()) for p in stores}
    assert after == before
    stats = await council_stats(kv.store.client, await kv.store.active_namespace(), "DEV")
    assert stats["turns_completed"] >= 1


async def test_a_batch_writes_what_its_events_write_one_at_a_time(js, stores, unique):
    _, kv = stores
    events = story_events(unique)
    for name, event in events.items():
        await publish(js, event, f"{unique}-{name}")
    # The same turn stored again past the duplicate window: in the same batch, and still counted once.
    await publish(js, events["proposal"], f"{unique}-proposal-again")
    batched, one_by_one = kv.store.fresh_namespace(f"{unique}batched"), kv.store.fresh_namespace(f"{unique}single")
    try:
        for stream in (ORCHESTRATION, AGENT):
            await kv.catch_up(js, batched, stream, lambda p: None)
            progress = Progress(stream=stream.name)
            async with read_log(js, Reading(stream.name)) as reader:
                while not reader.caught_up:
                    for message in await reader.next_batch(500, wait_s=2.0):
                        await kv.apply(one_by_one, stream.name, [message], progress)
        assert await kv.store.content_hash(batched) == await kv.store.content_hash(one_by_one)
        stats, counted = await council_stats(kv.store.client, batched), await counted_facts(kv.store.client, batched)
        # The streams are shared with other specs, whose turns may have failed: each turn counts once either way.
        turns = stats.get("turns_completed", 0) + stats.get("turns_failed", 0)
        assert turns == len([fact for fact in counted if fact.startswith("turn/")])
    finally:
        for namespace in (batched, one_by_one):
            await kv.store.drop(namespace)


async def test_a_capped_index_written_in_one_batch_keeps_what_it_keeps_written_one_write_at_a_time(stores, unique):
    _, kv = stores
    # Scores that tie, so the members' order decides too; a member added again with another score.
    writes = [AddToIndex("feed", f"entry-{n:03d}", float(n % 7), capped=200) for n in range(250)]
    writes.append(AddToIndex("feed", "entry-003", 9.0, capped=200))
    batched, one_by_one = kv.store.fresh_namespace(f"{unique}batched"), kv.store.fresh_namespace(f"{unique}single")
    try:
        assert await kv.store.apply(batched, "FEED", 1, writes)
        for sequence, write in enumerate(writes, start=1):
            await kv.store.apply(one_by_one, "FEED", sequence, [write])
        kept = [await kv.store.client.zrange(f"{namespace}:feed", 0, -1, withscores=True)
                for namespace in (batched, one_by_one)]
        assert kept[0] == kept[1] and len(kept[0]) == 200
        assert not await kv.store.apply(batched, "FEED", 1, writes[:1])
    finally:
        for namespace in (batched, one_by_one):
            await kv.store.drop(namespace)


async def test_a_rebuild_twice_gives_the_same_hash_as_the_live_model(js, stores, unique):
    graph, kv = stores
    for name, event in story_events(unique).items():
        await publish(js, event, f"{unique}-{name}")
    for projector in stores:
        await catch_up(js, projector, *projector.spec.streams)
    live = {p.spec.name: await p.store.content_hash(await p.store.active_namespace()) for p in stores}

    first = [await rebuild(js, p, generation=f"{unique}a", grace_s=0) for p in stores]
    second = [await rebuild(js, p, generation=f"{unique}b", grace_s=0) for p in stores]

    assert {r.projection: r.content_hash for r in first} == live
    assert {r.projection: r.content_hash for r in second} == live
    for projector, result in zip(stores, second, strict=True):
        assert result.namespace == await projector.store.active_namespace()
        assert result.events > 0


async def test_a_rebuild_in_place_while_the_live_projector_writes_loses_nothing(js, stores, unique):
    events = story_events(unique)
    for name, event in events.items():
        await publish(js, event, f"{unique}-{name}")
    followers = [asyncio.create_task(p.follow(js, stream)) for p in stores for stream in p.spec.streams]

    async def keep_publishing(count: int) -> None:
        for index in range(count):
            turn = Turn(phase=Phase.PROPOSE, round=0, agent_id=f"dev-{index}", author_id=f"dev-{index}")
            await publish(js, msgspec.structs.replace(events["proposal"], turn=turn), f"{unique}-live-{index}")
            await asyncio.sleep(0.02)

    try:
        publishing = asyncio.create_task(keep_publishing(150))
        await asyncio.sleep(0.5)
        rebuilt = [await rebuild(js, p, in_place=True, grace_s=1.5) for p in stores]
        await publishing
        await asyncio.sleep(2.0)
    finally:
        for follower in followers:
            follower.cancel()
    for projector in stores:
        await catch_up(js, projector, *projector.spec.streams)
    live = {p.spec.name: await p.store.content_hash(await p.store.active_namespace()) for p in stores}

    fresh = [await rebuild(js, p, generation=f"{unique}x", grace_s=0) for p in stores]

    assert [r.replaced for r in rebuilt] == [None, None]
    assert [await p.store.rebuild_in_place() for p in stores] == [None, None]
    assert {r.projection: r.content_hash for r in fresh} == live
    proposals = await stores[0].store.read(
        "MATCH (:Deliberation {id: $d})-[:HAS_PROPOSAL]->(p:Proposal) RETURN count(p)", {"d": f"d-{unique}"})
    assert proposals == [[150]]


async def test_a_killed_projector_resumes_from_its_checkpoint_and_counts_each_event_once(js, stores, unique):
    _, kv = stores
    namespace = await kv.store.active_namespace()
    proposal = story_events(unique)["proposal"]
    data_proposals = [msgspec.structs.replace(
        proposal, deliberation=msgspec.structs.replace(proposal.deliberation, role=Role.DATA),
        turn=Turn(phase=Phase.PROPOSE, round=0, agent_id=f"dev-{index}", author_id=f"dev-{index}"))
        for index in range(6)]
    follower = asyncio.create_task(kv.follow(js, AGENT))
    for index, event in enumerate(data_proposals[:3]):
        await publish(js, event, f"{unique}-turn-{index}")
    await checkpoint_reaches(kv, namespace, AGENT, await last_sequence(js, AGENT.name))
    follower.cancel()  # killed: nothing in memory survives, only the checkpoint stored with the model
    with contextlib.suppress(asyncio.CancelledError):
        await follower
    for index, event in enumerate(data_proposals[3:], start=3):
        await publish(js, event, f"{unique}-turn-{index}")

    # Restarted: a new projector on the same store, counting each event it folds.
    folded = []

    def counted(event, envelope):
        folded.append(event)
        return kv_writes(event, envelope)

    restarted = Projector(kv.spec, kv.store, counted)
    follower = asyncio.create_task(restarted.follow(js, AGENT))
    try:
        await checkpoint_reaches(kv, namespace, AGENT, await last_sequence(js, AGENT.name))
    finally:
        follower.cancel()

    # It read on from its checkpoint: the three turns published after the kill and nothing before them.
    assert [(e.deliberation.role, e.turn.agent_id) for e in folded] == [
        (Role.DATA, "dev-3"), (Role.DATA, "dev-4"), (Role.DATA, "dev-5")]
    stats = await council_stats(kv.store.client, namespace, "DATA")
    data_turns = [m for m in await read_stream(js, catalog.TURN_COMPLETED.subject)
                  if decode(m).deliberation.role == Role.DATA]
    assert len(data_turns) >= 6
    assert stats["turns_completed"] == len(data_turns)


async def checkpoint_reaches(projector, namespace: str, stream, sequence: int, within_s: float = 30.0) -> None:
    """Wait until the projector's stored checkpoint in `stream` is at `sequence`, or fail at the deadline."""
    deadline = asyncio.get_running_loop().time() + within_s
    while (checkpoint := await projector.store.checkpoint(namespace, stream.name)) < sequence:
        assert asyncio.get_running_loop().time() < deadline, f"checkpoint {checkpoint}, not {sequence}"
        await asyncio.sleep(0.1)


async def test_a_v0_plan_approval_is_upcast_into_a_plan_with_one_task(js, stores, unique):
    graph, kv = stores
    legacy = {"story_id": f"story-{unique}", "plan_id": f"plan-{unique}", "approved_by": "bob", "roles": ["QA"]}
    await js.publish(catalog.LEGACY_PLAN_APPROVED.subject, msgspec.json.encode(legacy))
    await catch_up(js, graph, PLANNING)

    story = await ReadModels(graph.store, kv.store).story(f"story-{unique}")

    assert story is not None
    [plan] = story.plans
    assert plan.approved_by == "bob"
    assert [t.task_id for t in plan.tasks] == [f"plan-{unique}"]


async def test_an_event_that_breaks_its_contract_is_dead_lettered_and_the_projection_moves_past_it(
    js, stores, unique
):
    graph, _ = stores
    letters = []

    async def reject(letter, reason):
        letters.append((letter, reason))

    projector = Projector(graph.spec, graph.store, graph_writes, reject)
    ack = await js.publish(catalog.DELIBERATION_STARTED.subject, b'{"deliberation": 42}',
                           headers={MSG_ID: f"{unique}-broken"})
    events = story_events(unique)
    await publish(js, events["requested"], f"{unique}-requested")

    await catch_up(js, projector, ORCHESTRATION)

    [(letter, reason)] = [(letter, reason) for letter, reason in letters if letter.stream_sequence == ack.seq]
    assert letter.headers[MSG_ID] == f"{unique}-broken" and letter.body == b'{"deliberation": 42}'
    assert letter.consumer == "projection-graph" and "invalid orchestration.deliberation.started.v1" in reason
    namespace = await graph.store.active_namespace()
    assert await graph.store.checkpoint(namespace, ORCHESTRATION.name) > ack.seq
    status = await graph.store.read("MATCH (d:Deliberation {id: $d}) RETURN d.status", {"d": f"d-{unique}"})
    assert status == [["PENDING"]]


@pytest.mark.parametrize("batch_size", [1, 500])
async def test_an_event_the_store_refuses_is_dead_lettered_alone_and_the_rest_is_projected(
    js, stores, unique, batch_size
):
    graph, _ = stores
    letters = []

    async def reject(letter, reason):
        letters.append((letter, reason))

    def unwritable_for_one_task(event, envelope):
        writes = graph_writes(event, envelope)
        if isinstance(event, DeliberationRequested) and event.deliberation.task_id == "poison":
            # A map is no property value in either engine: this write fails however often it is tried.
            writes.append(NodeWrite(Label.TASK, f"poison-{unique}", {"shape": {"nested": 1}}))
        return writes

    spec = dataclasses.replace(graph.spec, batch_size=batch_size, catch_up_batch_size=batch_size)
    projector = Projector(spec, graph.store, unwritable_for_one_task, reject, retry_delay_s=0.001)
    events = story_events(unique)
    poison = msgspec.structs.replace(events["requested"], deliberation=msgspec.structs.replace(
        events["requested"].deliberation, deliberation_id=f"poison-{unique}", task_id="poison"))
    ack = await js.publish(catalog.DELIBERATION_REQUESTED.subject, msgspec.json.encode(poison),
                           headers={MSG_ID: f"{unique}-poison"})
    await publish(js, events["requested"], f"{unique}-requested")

    await catch_up(js, projector, ORCHESTRATION)

    [(letter, reason)] = [(letter, reason) for letter, reason in letters if letter.stream_sequence == ack.seq]
    assert letter.headers[MSG_ID] == f"{unique}-poison" and reason
    namespace = await graph.store.active_namespace()
    assert await graph.store.checkpoint(namespace, ORCHESTRATION.name) > ack.seq
    assert await graph.store.read("MATCH (d:Deliberation {id: $d}) RETURN d.status", {"d": f"d-{unique}"}) == [
        ["PENDING"]]
    assert await graph.store.read("MATCH (d:Deliberation {id: $d}) RETURN d.status", {"d": f"poison-{unique}"}) == []


async def test_an_event_the_model_cannot_take_is_dead_lettered_with_the_error(js, stores, unique):
    graph, _ = stores
    letters = []

    async def reject(letter, reason):
        letters.append((letter, reason))

    def failing_for_one_task(event, envelope):
        if isinstance(event, DeliberationRequested) and event.deliberation.task_id == "unmodelled":
            raise KeyError("no node for this shape")
        return graph_writes(event, envelope)

    projector = Projector(graph.spec, graph.store, failing_for_one_task, reject)
    events = story_events(unique)
    odd = msgspec.structs.replace(events["requested"], deliberation=msgspec.structs.replace(
        events["requested"].deliberation, deliberation_id=f"odd-{unique}", task_id="unmodelled"))
    ack = await js.publish(catalog.DELIBERATION_REQUESTED.subject, msgspec.json.encode(odd),
                           headers={MSG_ID: f"{unique}-odd"})
    await publish(js, events["requested"], f"{unique}-requested")

    await catch_up(js, projector, ORCHESTRATION)

    [reason] = [reason for letter, reason in letters if letter.stream_sequence == ack.seq]
    assert reason == "KeyError: 'no node for this shape'"
    assert await graph.store.read("MATCH (d:Deliberation {id: $d}) RETURN d.status", {"d": f"d-{unique}"}) == [
        ["PENDING"]]


async def test_writes_from_two_streams_at_once_merge_a_shared_edge_once(stores, store_settings, unique):
    """A rebuild folds every stream at once, and a plan's approval (PLANNING) and its answer (ORCHESTRATION)
    both MERGE the plan's HAS_PLAN edge. FalkorDB lets two queries racing on one MERGE both create the edge
    (900 of 3,000 racing edges doubled), so a process sends it one write at a time; Neo4j locks the merged
    nodes. Two clients, as two connections race more readily than one client's."""
    graph, _ = stores
    if not graph.store.supports_swap:
        pytest.skip("Neo4j Community has one database: no fresh graph per trial (and its MERGE locks its nodes)")
    other, other_kv = projectors(store_settings)
    plans = [(f"s-{unique}-{n}", f"p-{unique}-{n}") for n in range(300)]

    def approved(story: str, plan: str) -> list:
        return [NodeWrite(Label.STORY, story, {"story_id": story}),
                NodeWrite(Label.PLAN_VERSION, plan, {"plan_id": plan, "approved_by": "alice"}),
                NodeWrite(Label.TASK, f"{plan}/t", {"title": "x"}),
                EdgeWrite(Label.STORY, story, Rel.HAS_PLAN, Label.PLAN_VERSION, plan),
                EdgeWrite(Label.PLAN_VERSION, plan, Rel.HAS_TASK, Label.TASK, f"{plan}/t")]

    def answered(story: str, plan: str) -> list:
        return [NodeWrite(Label.STORY, story, {"story_id": story}),
                NodeWrite(Label.PLAN_VERSION, plan, {"answer": "rejected"}),
                EdgeWrite(Label.STORY, story, Rel.HAS_PLAN, Label.PLAN_VERSION, plan)]

    doubled = []
    # The race is won or lost when the edges are first created: fresh graphs, several times.
    for trial in range(5):
        namespace = graph.store.fresh_namespace(f"race{unique}{trial}")
        await graph.store.prepare(namespace)
        await asyncio.gather(
            graph.store.apply(namespace, PLANNING.name, 1, [w for p in plans for w in approved(*p)]),
            other.store.apply(namespace, ORCHESTRATION.name, 1, [w for p in plans for w in answered(*p)]),
        )
        edges = [(tuple(item["from"]), tuple(item["to"])) for item in await graph.store.content(namespace)
                 if item.get("edge") == Rel.HAS_PLAN.value]
        doubled.append(len(edges) - len(set(edges)))
        assert len(set(edges)) == len(plans)
        await graph.store.drop(namespace)
    await other.store.close()
    await other_kv.store.close()

    assert doubled == [0] * 5
