"""`fleet council`, `deliberation`, `story` and `projections`, run as commands against a real nats-server."""

from __future__ import annotations

import contextlib
import json

import msgspec
import pytest
from faststream.nats import NatsBroker

from contracts import queries
from contracts.events import RankedProposal
from contracts.queries import (
    DecisionBrief,
    DeliberationList,
    DeliberationStatus,
    DeliberationSummary,
    DeliberationView,
    PlanView,
    StoryView,
    TaskView,
)
from services.embedded.servers import nats_plan
from services.mesh.queries import NotFound, serve
from tests.servers import nats_container, real_server
from tests.support import fleet, publish_chain

pytestmark = pytest.mark.integration


def one_error_line(out: str) -> str:
    """The error a failed command ended with (stdout and stderr come merged): its last line, and its only one."""
    assert "Traceback" not in out, out
    [line] = [line for line in out.strip().splitlines() if line.startswith("error: ")]
    assert out.strip().endswith(line), out
    return line


async def test_a_council_is_created_listed_refused_twice_and_deleted(empty_log, tmp_path):
    url, _ = empty_log

    created = await fleet(url, tmp_path, "council", "create", "--role", "qa", "--agents", "2", "--rounds", "0")
    again = await fleet(url, tmp_path, "council", "create", "--role", "QA")
    listed = await fleet(url, tmp_path, "council", "list")
    deleted = await fleet(url, tmp_path, "council", "delete", "--role", "QA")
    after = await fleet(url, tmp_path, "council", "list")
    deleted_again = await fleet(url, tmp_path, "council", "delete", "--role", "QA")

    assert created == (0, "created the QA council: qa-1, qa-2\n"), created
    assert again[0] == 1 and "QA already has a council of 2" in one_error_line(again[1])
    assert listed[0] == 0 and "qa-1" in listed[1] and "qa-2" in listed[1] and "rounds 0, quorum 2" in listed[1]
    assert deleted == (0, "deleted the QA council\n"), deleted
    assert after == (0, "no councils; the planning service seeds the defaults on its first start\n"), after
    assert deleted_again[0] == 1 and one_error_line(deleted_again[1]) == "error: QA has no council"


async def test_a_command_on_a_nats_with_no_streams_says_to_declare_them(tmp_path):
    async with real_server(nats_container, nats_plan(tmp_path), tmp_path) as endpoints:
        council = await fleet(endpoints["nats_url"], tmp_path, "council", "list")
        traced = await fleet(endpoints["nats_url"], tmp_path, "tail", "planning.>")

    assert council[0] == 1 and "run `fleet streams apply` first" in one_error_line(council[1])
    assert traced[0] == 1 and "`fleet streams apply`" in one_error_line(traced[1])


@contextlib.asynccontextmanager
async def read_models(nats_url: str, unique: str):
    """The projection service's queries, answered from one story the way its read models would answer."""
    story_id, deliberation_id = f"s-{unique}", f"d-{unique}"
    view = DeliberationView(
        deliberation_id=deliberation_id, story_id=story_id, plan_id="p", task_id="t", role="DEV", title="Cache reads",
        status=DeliberationStatus.COMPLETED,
        agents=["dev-1", "dev-2"], winner_id="dev-2", winner_score=8.5, decided_by="architect-1",
        ranking=[RankedProposal(rank=1, agent_id="dev-2", score=8.5, qualified=True),
                 RankedProposal(rank=2, agent_id="dev-1", score=6.0, qualified=True)],
        rationale="covers invalidation", duration_ms=4200)
    story = StoryView(story_id=story_id, plans=[PlanView(plan_id="p", approved_by="alice", tasks=[TaskView(
        task_id="t", title="Cache reads", deliberations=[DecisionBrief(
            deliberation_id=deliberation_id, role="DEV", status=DeliberationStatus.COMPLETED, winner_id="dev-2",
            winner_score=8.5,
            decided_by="architect-1")])])])

    async def show_deliberation(request):
        if request.deliberation_id != deliberation_id:
            raise NotFound(f"no deliberation {request.deliberation_id!r}")
        return view

    async def list_deliberations(request):
        mine = request.story_id in (None, story_id) and request.status in (None, view.status)
        return DeliberationList(deliberations=[DeliberationSummary(
            deliberation_id=deliberation_id, story_id=story_id, task_id="t", role="DEV", status=view.status,
            winner_id="dev-2", duration_ms=4200)] if mine else [])

    async def show_story(request):
        if request.story_id != story_id:
            raise NotFound(f"no story {request.story_id!r}")
        return story

    broker = NatsBroker(nats_url)
    serve(broker, queries.SHOW_DELIBERATION, show_deliberation, queue=f"test-{unique}")
    serve(broker, queries.LIST_DELIBERATIONS, list_deliberations, queue=f"test-{unique}")
    serve(broker, queries.SHOW_STORY, show_story, queue=f"test-{unique}")
    await broker.start()
    try:
        yield story_id, deliberation_id
    finally:
        await broker.stop()


async def test_deliberations_and_stories_are_shown_as_the_read_models_answer(nats_url, tmp_path, unique):
    async with read_models(nats_url, unique) as (story_id, deliberation_id):
        shown = await fleet(nats_url, tmp_path, "deliberation", "show", deliberation_id)
        shown_json = await fleet(nats_url, tmp_path, "deliberation", "show", deliberation_id, "--json")
        listed = await fleet(nats_url, tmp_path, "deliberation", "list", "--story", story_id, "--status", "COMPLETED")
        none_listed = await fleet(nats_url, tmp_path, "deliberation", "list", "--story", "elsewhere")
        none_cancelled = await fleet(nats_url, tmp_path, "deliberation", "list", "--status", "cancelled")
        story = await fleet(nats_url, tmp_path, "story", "show", story_id)
        story_json = await fleet(nats_url, tmp_path, "story", "show", story_id, "--json")

    assert shown[0] == 0 and "winner dev-2 (score 8.5" in shown[1] and "rationale: covers invalidation" in shown[1]
    assert shown_json[0] == 0 and msgspec.json.decode(shown_json[1], type=DeliberationView).winner_id == "dev-2"
    assert listed[0] == 0 and deliberation_id in listed[1] and "4.2s" in listed[1]
    assert none_listed == (0, "no deliberations match\n")
    assert none_cancelled == (0, "no deliberations match\n")
    assert story[0] == 0 and f"story {story_id}" in story[1] and "dev-2 won (score 8.5" in story[1]
    assert story_json[0] == 0 and json.loads(story_json[1])["plans"][0]["approved_by"] == "alice"


async def test_an_unknown_deliberation_or_story_is_a_one_line_error(nats_url, tmp_path, unique):
    async with read_models(nats_url, unique):
        deliberation = await fleet(nats_url, tmp_path, "deliberation", "show", f"nope-{unique}")
        story = await fleet(nats_url, tmp_path, "story", "show", f"nope-{unique}")

    assert deliberation[0] == 1 and one_error_line(deliberation[1]) == f"error: no deliberation 'nope-{unique}'"
    assert story[0] == 1 and one_error_line(story[1]) == f"error: no story 'nope-{unique}'"


async def test_with_no_projection_service_a_query_says_nobody_answers(nats_url, tmp_path):
    code, out = await fleet(nats_url, tmp_path, "story", "show", "any")

    assert code == 1 and "nobody answers query.story.show.v1: is the projection service running?" in one_error_line(out)


async def test_projections_rebuild_refolds_the_log_and_twice_gives_the_same_hash(
    js, nats_url, tmp_path, redis_endpoints, unique
):
    await publish_chain(js, unique)
    env = {"FLEET_VALKEY_URL": redis_endpoints["valkey_url"], "FLEET_GRAPH_URI": redis_endpoints["graph_uri"],
           "FLEET_KV_PREFIX": f"t{unique}", "FLEET_GRAPH_NAME": f"t{unique}"}

    first = await fleet(nats_url, tmp_path, "projections", "rebuild", "kv", env=env)
    second = await fleet(nats_url, tmp_path, "projections", "rebuild", "kv", env=env)

    assert first[0] == 0 and "rebuilding the kv read model from sequence 0" in first[1], first[1]
    [row] = [line.split("│")[1:-1] for line in second[1].splitlines() if line.startswith("│ kv")]
    assert second[0] == 0 and int(row[3]) >= 2, second[1]
    assert row[-1].strip() == "yes", "the same log folds to the same content hash"
