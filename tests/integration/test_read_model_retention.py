"""The read models forget a story's history the retention after its latest event, as a rebuild would.

On the real stores (redis-server with FalkorDB; Neo4j where Docker runs), with a retention of seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time

import msgspec
import pytest

from contracts.events import Phase
from services.projection.app import projectors
from services.projection.graph_model import graph_writes
from services.projection.kv_model import (
    DELIBERATIONS_KEY,
    council_stats_key,
    counted_key,
    deliberation_key,
    kv_writes,
    stats_day,
    story_deliberations_key,
)
from services.projection.vocabulary import EXPIRES_AT, Label
from tests.support import REF, council_stats, counted_facts
from tests.unit.test_projection_models import completed, decided, envelope, requested, turn_completed

pytestmark = pytest.mark.integration

# Long enough that nothing expires while a spec writes and reads back, even on a loaded machine; the spec
# that waits for an expiry dates its events close to the retention instead.
RETENTION_S = 60.0
EXPIRES_WITHIN_S = 3.0


@pytest.fixture
async def retained(store_settings):
    """Both projections with a retention of RETENTION_S, each on its prepared active namespace."""
    graph, kv = projectors(dataclasses.replace(store_settings, read_model_retention_s=RETENTION_S))
    for projector in (graph, kv):
        await projector.store.prepare(await projector.store.active_namespace())
    yield graph, kv
    for projector in (graph, kv):
        await projector.store.drop(await projector.store.active_namespace())
        await projector.store.close()


def ago(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)


def deliberation_events(when: dt.datetime) -> list:
    """A deliberation requested `when`, proposed, decided and completed a second later."""
    later = when + dt.timedelta(seconds=1)
    return [(requested(), envelope(requested(), when)),
            (turn_completed(Phase.PROPOSE), envelope(turn_completed(Phase.PROPOSE), later)),
            (decided(), envelope(decided(), later)),
            (completed(), envelope(completed(), later))]


async def project(projectors_, events, first_sequence: int = 1) -> None:
    """Each event as its own batch, on one stream, as the projector applies them."""
    for projector, to_writes in zip(projectors_, (graph_writes, kv_writes), strict=True):
        namespace = await projector.store.active_namespace()
        for offset, (event, env) in enumerate(events):
            await projector.store.apply(namespace, "S", first_sequence + offset, to_writes(event, env))


async def graph_node(graph, label: Label, node_id: str) -> dict | None:
    rows = await graph.store.read(f"MATCH (n:{label} {{id: $id}}) RETURN properties(n)", {"id": node_id})
    return dict(rows[0][0]) if rows else None


async def kv_expiry_s(kv, key: str) -> float:
    namespace = await kv.store.active_namespace()
    return await kv.store.client.pexpiretime(f"{namespace}:{key}") / 1000


async def test_a_deliberation_is_kept_the_retention_after_its_latest_event_in_both_read_models(retained):
    graph, kv = retained
    began = ago(0)
    events = deliberation_events(began)
    latest = events[-1][1].occurred_at.timestamp()

    await project(retained, events)

    # Dated by the latest event, not the first: the deliberation's whole history goes at once.
    assert await kv_expiry_s(kv, deliberation_key("d-1")) == pytest.approx(latest + RETENTION_S, abs=0.01)
    assert await kv_expiry_s(kv, story_deliberations_key("s-1")) == pytest.approx(began.timestamp() + RETENTION_S,
                                                                                  abs=0.01)
    node = await graph_node(graph, Label.DELIBERATION, "d-1")
    assert node[EXPIRES_AT] == pytest.approx(latest + RETENTION_S, abs=0.01)
    # A sweep before the expiry deletes nothing.
    assert await graph.store.expire(await graph.store.active_namespace(), time.time()) == 0
    assert await graph_node(graph, Label.PROPOSAL, "d-1/dev-1") is not None


async def test_once_the_retention_has_passed_the_history_is_gone_and_the_configuration_stays(retained):
    graph, kv = retained
    # Its latest event is EXPIRES_WITHIN_S short of the retention (the last is a second after the first).
    events = deliberation_events(ago(RETENTION_S - EXPIRES_WITHIN_S + 1))
    await project(retained, events)
    await asyncio.sleep(EXPIRES_WITHIN_S + 1.5)

    graph_namespace = await graph.store.active_namespace()
    swept = await graph.store.expire(graph_namespace, time.time())
    # Another deliberation, later: the shared index drops the first one, which is dated past the retention.
    again = requested(msgspec.structs.replace(REF, deliberation_id="d-2"))
    await project(retained, [(again, envelope(again, ago(0)))], first_sequence=len(events) + 1)

    kv_namespace = await kv.store.active_namespace()
    client = kv.store.client
    stats = council_stats_key("DEV", stats_day(events[-1][1].occurred_at))
    assert swept >= 4  # the deliberation, its task, its proposal and its decision
    for label, node_id in [(Label.DELIBERATION, "d-1"), (Label.PROPOSAL, "d-1/dev-1"), (Label.DECISION, "d-1")]:
        assert await graph_node(graph, label, node_id) is None
    assert await client.exists(f"{kv_namespace}:{deliberation_key('d-1')}",
                               f"{kv_namespace}:{counted_key(deliberation_key('d-1'))}") == 0
    # The day's counters go with the day's last fact: d-2's request counts nothing, so they are gone too.
    assert await client.exists(f"{kv_namespace}:{stats}") == 0
    assert await client.zrange(f"{kv_namespace}:{DELIBERATIONS_KEY}", 0, -1) == ["d-2"]
    # Who authored it is configuration, not history: kept for good.
    assert await graph_node(graph, Label.AGENT, "dev-1") is not None


async def test_a_late_copy_of_an_expired_deliberations_event_leaves_nothing_behind(retained):
    graph, kv = retained
    # Past the retention when it arrives: a redelivery, a redrive or a replay of an old log.
    late = deliberation_events(ago(RETENTION_S * 3))

    await project(retained, late)
    await graph.store.expire(await graph.store.active_namespace(), time.time())

    content = await graph.store.content(await graph.store.active_namespace())
    # Only the configuration it named: the council that held it and the agent that wrote, with no edge left.
    assert {item["node"] for item in content if "node" in item} == {Label.COUNCIL, Label.AGENT}
    assert [item for item in content if "edge" in item] == []
    kv_content = await kv.store.content(await kv.store.active_namespace())
    # Only the monitoring feed, which keeps its newest lines whatever their age, and the empty shared index.
    assert {item["key"] for item in kv_content} == {"activity"}


async def test_a_late_copy_of_a_counted_fact_counts_nothing_though_its_days_counters_are_still_kept(retained):
    _, kv = retained
    late_turn = turn_completed(Phase.PROPOSE)
    fresh = msgspec.structs.replace(late_turn, deliberation=msgspec.structs.replace(REF, deliberation_id="d-2"))
    # Today's counters are kept (d-2's turn); d-1's turn is dated past the retention, maybe the same day.
    await project(retained, [(fresh, envelope(fresh, ago(0))),
                             (late_turn, envelope(late_turn, ago(RETENTION_S * 2)))])

    stats = await council_stats(kv.store.client, await kv.store.active_namespace(), "DEV")
    assert stats["turns_completed"] == 1
    assert await counted_facts(kv.store.client, await kv.store.active_namespace()) == {
        "turn/d-2/propose/0/dev-1/dev-1"}


async def test_the_latest_date_wins_whichever_stream_is_applied_first(retained):
    graph, kv = retained
    began = ago(0)
    completed_late = (completed(), envelope(completed(), began + dt.timedelta(seconds=2)))
    requested_early = (requested(), envelope(requested(), began))

    # The result's stream is folded before the request's: the earlier date must not shorten the life.
    await project(retained, [completed_late, requested_early])

    expected = began.timestamp() + 2 + RETENTION_S
    assert await kv_expiry_s(kv, deliberation_key("d-1")) == pytest.approx(expected, abs=0.01)
    assert (await graph_node(graph, Label.DELIBERATION, "d-1"))[EXPIRES_AT] == pytest.approx(expected, abs=0.01)
