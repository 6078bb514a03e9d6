"""`fleet tail`, `replay`, `trace` and `streams status`, run as commands against a real nats-server."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest

from contracts import catalog
from contracts.envelope import MSG_ID
from services.mesh.settings import Settings
from services.projection.app import projectors
from streams.definitions import ORCHESTRATION
from tests.support import fleet, publish_chain, start_fleet

pytestmark = pytest.mark.integration


async def test_trace_shows_the_chain_of_a_deliberation_as_a_tree_in_one_trace(js, nats_url, tmp_path, unique):
    correlation, deliberation = await publish_chain(js, unique)
    await publish_chain(js, f"{unique}-other")

    code, out = await fleet(nats_url, tmp_path, "trace", deliberation, "--json")

    assert code == 0, out
    traced = json.loads(out)
    assert [(r["depth"], r["event_id"]) for r in traced["events"]] == [(0, f"approval-{unique}"),
                                                                      (1, f"request-{unique}")]
    assert traced["events"][1]["hop_ms"] == 40
    assert len(traced["trace_ids"]) == 1
    code, out = await fleet(nats_url, tmp_path, "trace", correlation)
    assert code == 0 and "└ orchestration.deliberation.requested.v1" in out


async def test_trace_of_an_unknown_id_says_so(nats_url, tmp_path, unique):
    code, out = await fleet(nats_url, tmp_path, "trace", f"nothing-{unique}")

    assert code == 1 and "no event has correlation id or aggregate id" in out


async def test_replay_prints_a_range_of_a_stream_in_order(js, nats_url, tmp_path, unique):
    acks = [await js.publish(catalog.PLAN_APPROVED.subject, b'{"story_id": "x"}',
                             headers={MSG_ID: f"replay-{unique}-{i}"}) for i in range(3)]
    first, last = acks[0].seq, acks[-1].seq

    code, out = await fleet(nats_url, tmp_path, "replay", "--stream", "PLANNING", "--from-seq", str(first),
                            "--until", str(last - 1), "--json")

    assert code == 0, out
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["seq"] for line in lines] == [first, first + 1]
    assert lines[0]["headers"][MSG_ID] == f"replay-{unique}-0" and lines[0]["body"] == {"story_id": "x"}
    code, out = await fleet(nats_url, tmp_path, "replay", "--stream", "PLANNING", "--from-seq", str(last),
                            "--subject", "planning.nothing.>")
    assert code == 0 and "0 events" in out


async def test_replay_of_an_unknown_stream_names_the_real_ones(nats_url, tmp_path):
    code, out = await fleet(nats_url, tmp_path, "replay", "--stream", "NOPE")

    assert code == 1 and "ORCHESTRATION" in out


async def test_replay_into_a_read_model_applies_events_again_and_duplicates_nothing(
    js, nats_url, tmp_path, redis_endpoints, unique
):
    await publish_chain(js, unique)
    env = {"FLEET_VALKEY_URL": redis_endpoints["valkey_url"], "FLEET_GRAPH_URI": redis_endpoints["graph_uri"],
           "FLEET_KV_PREFIX": f"t{unique}", "FLEET_GRAPH_NAME": f"t{unique}"}
    settings = Settings(data_dir=tmp_path, nats_url=nats_url, valkey_url=env["FLEET_VALKEY_URL"],
                        graph_uri=env["FLEET_GRAPH_URI"], kv_prefix=env["FLEET_KV_PREFIX"])
    [_, kv] = projectors(settings)
    namespace = await kv.store.active_namespace()
    await kv.catch_up(js, namespace, ORCHESTRATION, lambda p: None)
    before = await kv.store.content_hash(namespace)
    code, out = await fleet(nats_url, tmp_path, "replay", "--stream", "ORCHESTRATION", "--from-seq", "1",
                            "--into", "kv", env=env)

    assert code == 0, out
    assert "nothing was duplicated" in out
    assert await kv.store.content_hash(namespace) == before
    assert await kv.store.rebuild_in_place() is None
    await kv.store.drop(namespace)
    await kv.store.close()


async def test_streams_status_shows_each_durable_with_its_lag(js, nats_url, tmp_path, unique):
    await js.publish(catalog.PLAN_APPROVED.subject, b"{}", headers={MSG_ID: f"lag-{unique}"})

    code, out = await fleet(nats_url, tmp_path, "streams", "status", "--json")

    assert code == 0, out
    status = json.loads(out)
    approvals = next(c for c in status["consumers"] if c["name"] == "planning-plan-approvals")
    assert approvals["present"] and approvals["declared"] and approvals["pending"] >= 1
    assert {"CONFIG", "PLANNING", "ORCHESTRATION", "AGENT", "DEAD_LETTERS"} <= {s["name"] for s in status["streams"]}


async def test_tail_prints_events_as_they_are_stored(js, nats_url, tmp_path, unique):
    process = await start_fleet(nats_url, tmp_path, "tail", "planning.>", "--json")
    try:
        seen = None
        for attempt in range(50):  # the tail subscribes a moment after it starts: publish until it shows
            await js.publish(catalog.PLAN_APPROVED.subject, b'{"n": 1}', headers={MSG_ID: f"tail-{unique}-{attempt}"})
            try:
                line = await asyncio.wait_for(process.stdout.readline(), 0.5)
            except TimeoutError:
                continue
            seen = json.loads(line)
            break
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(process.communicate(), 30.0)

    assert seen is not None and seen["subject"] == catalog.PLAN_APPROVED.subject
    assert seen["headers"][MSG_ID].startswith(f"tail-{unique}-") and seen["stream"] == "PLANNING"
    assert process.returncode == 0 and b"Traceback" not in rest, "Ctrl-C stops the tail cleanly"


async def test_tail_last_shows_the_last_events_matching_the_filter_first(js, nats_url, tmp_path, unique):
    subject = f"planning.tailed.{unique}"
    acks = [await js.publish(subject, b'{"n": %d}' % n, headers={MSG_ID: f"last-{unique}-{n}"}) for n in range(3)]
    for n in range(5):  # later events the filter leaves out: the last 2 are not the stream's last 2
        await js.publish(catalog.PLAN_APPROVED.subject, b"{}", headers={MSG_ID: f"later-{unique}-{n}"})
    process = await start_fleet(nats_url, tmp_path, "tail", subject, "--last", "2", "--json")
    try:
        lines = [json.loads(await asyncio.wait_for(process.stdout.readline(), 30.0)) for _ in range(2)]
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.communicate(), 30.0)

    assert [(line["seq"], line["body"]) for line in lines] == [(acks[1].seq, {"n": 1}), (acks[2].seq, {"n": 2})]
