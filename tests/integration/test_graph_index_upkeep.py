"""FalkorDB's label indexes are rebuilt at the sweep once they have spent more document ids than they hold.

FalkorDB gives a node a new index document at every write and every deleted node leaves its document's traces,
so without the rebuild its memory grows with the writes at a constant graph size (docs/read-models.md).
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from services.projection.adapters import falkordb_graph
from services.projection.adapters.falkordb_graph import INDEXES_QUERY, FalkorGraphStore
from services.projection.graph_model import graph_writes
from services.projection.vocabulary import EXPIRES_AT, Label
from tests.unit.test_projection_models import envelope, requested

pytestmark = pytest.mark.integration

REWRITES = 30


@pytest.fixture
async def graph(redis_endpoints, unique):
    store = FalkorGraphStore(redis_endpoints["graph_uri"], base=f"t{unique}", retention_s=3600.0)
    namespace = await store.active_namespace()
    await store.prepare(namespace)
    yield store, namespace
    await store.drop(namespace)
    await store.close()


async def document_ids(store: FalkorGraphStore, namespace: str, label: Label) -> tuple[int, int, str]:
    """(documents, highest document id, status) of a label's index."""
    rows = (await store._db.select_graph(namespace).ro_query(INDEXES_QUERY)).result_set
    [(status, info)] = [(row[2], row[3]) for row in rows if row[0] == label]
    return info["numDocuments"], info["maxDocId"], status


async def deliberations_named(store: FalkorGraphStore, deliberation_id: str) -> int:
    rows = await store.read(f"MATCH (n:{Label.DELIBERATION} {{id: $id}}) RETURN count(n)", {"id": deliberation_id})
    return rows[0][0]


async def rewrite_one_deliberation(store: FalkorGraphStore, namespace: str, times: int, first_sequence: int = 1):
    now = dt.datetime.now(dt.UTC)
    for offset in range(times):
        event = requested()
        await store.apply(namespace, "S", first_sequence + offset, graph_writes(event, envelope(event, now)))


async def test_an_index_that_spent_more_ids_than_it_holds_is_rebuilt_and_still_finds_every_node(graph, monkeypatch):
    store, namespace = graph
    monkeypatch.setattr(falkordb_graph, "INDEX_SPENT_IDS_BEFORE_REBUILD", REWRITES // 2)
    await rewrite_one_deliberation(store, namespace, REWRITES)
    documents, highest, _ = await document_ids(store, namespace, Label.DELIBERATION)
    assert documents == 1 and highest >= REWRITES  # one node, a fresh document at every write

    await store.expire(namespace, time.time())

    assert await document_ids(store, namespace, Label.DELIBERATION) == (1, 1, "OPERATIONAL")
    assert await deliberations_named(store, "d-1") == 1
    # Written again after the rebuild: found by the new index, not made twice.
    await rewrite_one_deliberation(store, namespace, 2, first_sequence=REWRITES + 1)
    assert await deliberations_named(store, "d-1") == 1


async def test_an_index_below_the_minimum_is_left_as_it_is(graph, monkeypatch):
    store, namespace = graph
    monkeypatch.setattr(falkordb_graph, "INDEX_SPENT_IDS_BEFORE_REBUILD", REWRITES * 2)
    await rewrite_one_deliberation(store, namespace, REWRITES)
    before = await document_ids(store, namespace, Label.DELIBERATION)

    await store.expire(namespace, time.time())

    assert await document_ids(store, namespace, Label.DELIBERATION) == before


async def test_an_index_a_broken_off_rebuild_dropped_is_made_again_at_the_next_sweep(graph):
    store, namespace = graph
    await rewrite_one_deliberation(store, namespace, 2)
    await store._db.select_graph(namespace).query(f"DROP INDEX FOR (n:{Label.DELIBERATION}) ON (n.{EXPIRES_AT})")

    await store.expire(namespace, time.time())

    rows = (await store._db.select_graph(namespace).ro_query(INDEXES_QUERY)).result_set
    assert [set(row[1]) for row in rows if row[0] == Label.DELIBERATION] == [{"id", EXPIRES_AT}]
