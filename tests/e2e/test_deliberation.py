"""Whole deliberations on the embedded mesh, each service its own process, the LLM a real llama.cpp server."""

import asyncio
import json
import os
import signal
import time
import uuid
from pathlib import Path

import msgspec
import pytest

from contracts import catalog
from contracts.envelope import MSG_ID
from contracts.events import (
    CouncilCreated,
    CouncilDeleted,
    DeliberationCompleted,
    DeliberationFailed,
    Phase,
    PlanApproved,
    Role,
)
from contracts.queries import SHOW_DELIBERATION, SHOW_STORY, ShowDeliberation, ShowStory
from services.councils.domain import new_council
from services.mesh.queries import ask
from services.mesh.settings import Settings
from services.planning.client import approval_event_id
from services.projection.app import projectors
from services.projection.rebuild import rebuild
from tests.e2e.flows import (
    approval_for,
    approve,
    as_operator,
    conclusion_of,
    events_of,
    id_of,
    of,
    result_of,
    wait_until_mesh_idle,
)
from tests.support import body_of, counted_facts, decode, read_stream, wait_for

pytestmark = pytest.mark.e2e

PHASES = [Phase.PROPOSE, Phase.CRITIQUE, Phase.REVISE, Phase.JUDGE, Phase.SELECT]


@pytest.fixture(scope="module")
async def dev_approval(mesh) -> PlanApproved:
    return approval_for(Role.DEV)


async def test_a_council_proposes_critiques_revises_is_judged_and_the_architect_decides(js, dev_approval):
    deliberation = await approve(js, dev_approval)
    result = await result_of(js, deliberation)
    assert isinstance(result, DeliberationCompleted), result

    orchestration = [(m.subject, decode(m)) for m in await read_stream(js, "orchestration.*.*.v1")
                     if of(deliberation)(m)]
    assert [subject.split(".")[2] for subject, _ in orchestration] == [
        "requested", "started", "advanced", "advanced", "advanced", "advanced", "scored", "advanced", "made",
        "completed",
    ]
    assert [e.phase for s, e in orchestration if s == catalog.DELIBERATION_ADVANCED.subject] == PHASES

    asked = await events_of(js, catalog.TURN_REQUESTED.subject, deliberation)
    assert [sum(r.turn.phase == phase for r in asked) for phase in PHASES] == [3, 3, 3, 3, 1]
    proposals = [t for t in await events_of(js, catalog.TURN_COMPLETED.subject, deliberation)
                 if t.turn.phase == Phase.PROPOSE]
    assert {p.model for p in proposals} == {"SmolLM2-135M-Instruct"}
    assert len({(p.agent.persona, p.temperature, p.seed) for p in proposals}) == 3

    [scored] = await events_of(js, catalog.DELIBERATION_SCORED.subject, deliberation)
    [decision] = await events_of(js, catalog.DECISION_MADE.subject, deliberation)
    score_of = {s.agent_id: s.score for s in scored.scores}
    ranked_scores = [score_of[r.agent_id] for r in result.ranking if r.qualified and r.score is not None]
    assert ranked_scores == sorted(ranked_scores, reverse=True)
    assert decision.winner_id == result.winner.agent_id and decision.winner_id in decision.candidates
    assert decision.rationale.strip() and result.rationale == decision.rationale
    assert result.winner.score == score_of[result.winner.agent_id]
    drafts = [t.content for t in await events_of(js, catalog.TURN_COMPLETED.subject, deliberation)
              if t.turn.phase in (Phase.PROPOSE, Phase.REVISE) and t.turn.author_id == result.winner.agent_id]
    assert result.winner.content == drafts[-1] and result.winner.revisions == len(drafts) - 1


async def test_a_duplicate_approval_starts_no_second_deliberation(js, dev_approval):
    deliberation = id_of(dev_approval)
    await result_of(js, deliberation)
    # The same approval under a new message id is stored and planned again; the deterministic
    # deliberation id and the dispatch claim make it start nothing.
    again = {MSG_ID: f"{dev_approval.plan_id}-2"}
    await js.publish(catalog.PLAN_APPROVED.subject, body_of(dev_approval), headers=again)
    await wait_until_mesh_idle(js)
    assert len(await events_of(js, catalog.DELIBERATION_STARTED.subject, deliberation)) == 1
    assert len(await events_of(js, catalog.TURN_REQUESTED.subject, deliberation)) == 13


async def stable_content(js, store, settle_s: float = 1.0, timeout_s: float = 60.0) -> list[dict]:
    """The live model once the mesh is idle and the projector has stopped changing it."""
    await wait_until_mesh_idle(js)
    deadline = time.monotonic() + timeout_s
    previous = None
    while time.monotonic() < deadline:
        current = await active_content(store)
        if current == previous:
            return current
        previous = current
        await asyncio.sleep(settle_s)
    raise AssertionError(f"the {store.kind} read model kept changing for {timeout_s}s")


async def active_content(store) -> list[dict]:
    # Content, not its hash, so that a failing comparison shows what differs.
    return await store.content(await store.active_namespace())


def differences(rebuilt: list[dict], live: list[dict]) -> dict[str, list[dict]]:
    """What only one of two models holds (equal models: two empty lists)."""
    def keyed(items):
        return {json.dumps(item, sort_keys=True, default=str): item for item in items}

    rebuilt_items, live_items = keyed(rebuilt), keyed(live)
    return {"only rebuilt": [rebuilt_items[k] for k in sorted(rebuilt_items.keys() - live_items.keys())],
            "only live": [live_items[k] for k in sorted(live_items.keys() - rebuilt_items.keys())]}


NONE_DIFFER = {"only rebuilt": [], "only live": []}


async def test_the_read_models_show_the_story_and_its_decision_and_a_rebuild_reproduces_them(js, mesh, dev_approval):
    stack, endpoints = mesh
    # Approved by the first spec when the module runs whole; run alone, this one approves it (same message id).
    deliberation = await approve(js, dev_approval)
    result = await result_of(js, deliberation)
    client = await as_operator(stack)
    try:
        deadline = time.monotonic() + 30
        while (view := await ask(client, SHOW_DELIBERATION, ShowDeliberation(deliberation_id=deliberation))).status \
                != "COMPLETED" and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        story = await ask(client, SHOW_STORY, ShowStory(story_id=dev_approval.story_id))
    finally:
        await client.close()

    assert (view.status, view.winner_id, view.rationale) == ("COMPLETED", result.winner.agent_id, result.rationale)
    assert [r.agent_id for r in view.ranking] == [r.agent_id for r in result.ranking]
    assert [p.split(":")[0] for p in view.phases_started] == [p.value for p in PHASES]
    [plan] = story.plans
    [task] = plan.tasks
    [decided] = task.deliberations
    assert (plan.approved_by, task.task_id) == ("e2e", "login")
    assert (decided.winner_id, decided.rationale, decided.status) == (
        result.winner.agent_id, result.rationale, "COMPLETED")
    written = [t for t in await events_of(js, catalog.TURN_COMPLETED.subject, deliberation)
               if t.turn.phase in (Phase.PROPOSE, Phase.REVISE)]
    assert {t.turn.phase for t in written} == {Phase.PROPOSE, Phase.REVISE}
    assert all(t.context_hash and t.context_error is None for t in written)

    settings = Settings(data_dir=Path("."), nats_url=endpoints["nats_url"], valkey_url=endpoints["valkey_url"],
                        graph_uri=endpoints["graph_uri"])
    for projector in projectors(settings):
        live = await stable_content(js, projector.store)
        first = await rebuild(js, projector, grace_s=1.0)
        assert differences(await active_content(projector.store), live) == NONE_DIFFER
        second = await rebuild(js, projector, grace_s=1.0)
        assert differences(await active_content(projector.store), live) == NONE_DIFFER
        assert first.replaced_hash == first.content_hash == second.content_hash
        await projector.store.close()


async def test_a_malformed_approval_is_dead_lettered_with_its_reason_and_the_mesh_keeps_working(js):
    suffix = uuid.uuid4().hex[:8]
    malformed = msgspec.json.encode({"story_id": "s", "plan_id": "p", "approved_by": "x", "roles": ["CHEF"]})
    await js.publish(catalog.PLAN_APPROVED.subject, malformed, headers={MSG_ID: f"malformed-{suffix}"})
    [letter] = await wait_for(js, catalog.MESSAGE_REJECTED.subject,
                              lambda m: decode(m).original_headers.get(MSG_ID) == f"malformed-{suffix}", 1)
    assert "Invalid enum value 'CHEF' - at `$.roles[0]`" in decode(letter).reason
    assert decode(letter).original_body == malformed


@pytest.mark.usefixtures("councils_put_back")
async def test_a_role_without_a_council_is_dead_lettered_with_that_reason(js):
    await js.publish(catalog.COUNCIL_DELETED.subject, body_of(CouncilDeleted(role=Role.DEVOPS, deleted_by="e2e")),
                     headers={MSG_ID: f"e2e-delete-devops-{uuid.uuid4()}"})
    approval = approval_for(Role.DEVOPS)
    await approve(js, approval)
    [letter] = await wait_for(js, catalog.MESSAGE_REJECTED.subject,
                              lambda m: decode(m).original_headers.get(MSG_ID) == approval_event_id(approval), 1)
    assert decode(letter).reason.startswith("no council for role DEVOPS")


@pytest.mark.usefixtures("councils_put_back")
async def test_a_failing_agent_leaves_a_quorum_that_completes_without_it(js):
    council = new_council(Role.DATA, 3)
    # Instructions longer than the model's context, which are never cut: the server refuses every request of this agent.
    unanswerable = msgspec.structs.replace(council.agents[1], persona="word " * 5000)
    council = msgspec.structs.replace(council, agents=[council.agents[0], unanswerable, council.agents[2]])
    await js.publish(catalog.COUNCIL_CREATED.subject, body_of(CouncilCreated(council=council, created_by="e2e")),
                     headers={MSG_ID: f"e2e-data-council-{uuid.uuid4()}"})
    deliberation = await approve(js, approval_for(Role.DATA))
    result = await result_of(js, deliberation)
    assert isinstance(result, DeliberationCompleted), result
    assert result.failed_agents == ["data-2"]
    failures = await events_of(js, catalog.TURN_FAILED.subject, deliberation)
    print("failed turns:", [(f.turn.key, f.error_class, f.message[:200]) for f in failures])
    [failure] = [f for f in failures if f.turn.agent_id == "data-2"]
    assert failure.turn.phase == Phase.PROPOSE and failure.error_class == "LlmContextExceeded"
    assert "context" in failure.message
    critiques = [r.turn for r in await events_of(js, catalog.TURN_REQUESTED.subject, deliberation)
                 if r.turn.phase == Phase.CRITIQUE]
    assert {(c.agent_id, c.author_id) for c in critiques} == {("data-1", "data-3"), ("data-3", "data-1")}


async def test_the_collector_and_projection_killed_mid_deliberation_carry_on_and_count_a_repeated_answer_once(
    js, mesh
):
    stack, endpoints = mesh
    approval = approval_for(Role.QA)
    deliberation = await approve(js, approval)
    # The first answer stored (with parallel LLM slots, others may have come with it).
    first = (await wait_for(js, catalog.TURN_COMPLETED.subject, of(deliberation), 1, timeout_s=120))[0]
    collector, projection = stack.services["collector"], stack.services["projection"]
    restarts = collector.restarts
    os.kill(collector.process.pid, signal.SIGKILL)
    os.kill(projection.process.pid, signal.SIGKILL)
    # The same answer stored again: what a redelivery looks like once the duplicate window has passed.
    await js.publish(first.subject, first.data, headers={**first.headers, MSG_ID: "e2e-repeated-answer"})

    result = await result_of(js, deliberation)
    assert isinstance(result, DeliberationCompleted), result
    # The plan's conclusion follows the result; the live model is compared once it has that too.
    await conclusion_of(js, approval)
    assert collector.restarts == restarts + 1
    advanced = await events_of(js, catalog.DELIBERATION_ADVANCED.subject, deliberation)
    assert [a.phase for a in advanced] == PHASES
    asked = await events_of(js, catalog.TURN_REQUESTED.subject, deliberation)
    assert sum(r.turn.phase == Phase.JUDGE for r in asked) == 3
    assert len(await events_of(js, catalog.DELIBERATION_COMPLETED.subject, deliberation)) == 1

    # The restarted projector resumed from its checkpoints: its model is what a rebuild from zero gives,
    # and the repeated answer is counted once in the council's statistics.
    settings = Settings(data_dir=Path("."), nats_url=endpoints["nats_url"], valkey_url=endpoints["valkey_url"],
                        graph_uri=endpoints["graph_uri"])
    graph, kv = projectors(settings)
    for projector in (graph, kv):
        live = await stable_content(js, projector.store)
        rebuilt = await rebuild(js, projector, grace_s=1.0)
        assert differences(await active_content(projector.store), live) == NONE_DIFFER
        assert rebuilt.content_hash == rebuilt.replaced_hash
    completed_turns = {t.turn.key for t in await events_of(js, catalog.TURN_COMPLETED.subject, deliberation)}
    counted = await counted_facts(kv.store.client, await kv.store.active_namespace(), deliberation)
    assert {f"turn/{deliberation}/{key}" for key in completed_turns} <= counted
    assert sum(fact.startswith(f"turn/{deliberation}/") for fact in counted) == len(
        {t.turn.key for t in await events_of(js, catalog.TURN_REQUESTED.subject, deliberation)}
    )
    for projector in (graph, kv):
        await projector.store.close()


@pytest.mark.breaks_mesh
async def test_the_llm_server_killed_mid_deliberation_ends_it_as_failed_with_the_reason(js, mesh):
    # The mesh has no LLM afterwards: the marker runs it after every other end-to-end test.
    stack, _ = mesh
    deliberation = await approve(js, approval_for(Role.ARCHITECT))
    await wait_for(js, catalog.DELIBERATION_STARTED.subject, of(deliberation), 1)
    [llm] = [server for server in stack.servers if server.name == "llama.cpp"]
    os.killpg(llm.pid, signal.SIGKILL)
    result = await result_of(js, deliberation)
    assert isinstance(result, DeliberationFailed), result
    assert "LlmConnectionRefused" in result.reason
    assert result.duration_ms < 60_000, "it ended on the typed errors, not on a phase deadline"
