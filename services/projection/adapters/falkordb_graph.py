"""The graph read model on FalkorDB, the embedded default: one graph key per namespace."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Mapping, Sequence

from falkordb.asyncio import FalkorDB
from redis.exceptions import ResponseError

from services.projection import cypher
from services.projection.stores import FENCE, Fenced, NamespacePointer, PointedNamespaces, canonical_hash
from services.projection.vocabulary import EXPIRES_AT, EXPIRING, GraphWrite, Label

FIRST_GENERATION = "g1"
# Every label is found by its id; a dated one is swept by its expiry.
INDEXES = {label: ("id", EXPIRES_AT) if label in EXPIRING else ("id",) for label in Label}
# FalkorDB gives a node a new document in its label's index at every write and never reuses the old one's
# id: the index's tables grow with every write and every deleted node, long after the graph stops growing
# (bench soak: Redis rose 10 MiB/h at a constant 2,800 nodes; rebuilding the index gives it all back).
# A label's index is rebuilt at a sweep once it has spent more document ids than it holds documents, and at
# least this many: a rebuild reads each live node once, paid for by as many writes.
INDEX_SPENT_IDS_BEFORE_REBUILD = 10_000
# A rebuilt index answers once FalkorDB has filled it; until then a MERGE scans the label, still correct.
INDEX_READY_TIMEOUT_S = 30.0
INDEXES_QUERY = "CALL db.indexes() YIELD label, properties, status, info RETURN label, properties, status, info"

log = logging.getLogger("fleet.projection")


_WRITE_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def one_write_at_a_time() -> asyncio.Lock:
    """The process's one FalkorDB write lock (one per event loop, as a lock belongs to its loop)."""
    return _WRITE_LOCKS.setdefault(asyncio.get_running_loop(), asyncio.Lock())


class FalkorGraphStore(PointedNamespaces):
    kind = "graph"
    supports_swap = True

    def __init__(self, uri: str, base: str = "fleet", retention_s: float | None = None) -> None:
        """`retention_s`: how long a dated node outlives its latest write (docs/read-models.md); None keeps all."""
        self._db = FalkorDB.from_url(uri)
        self._base = base
        self._retention_s = retention_s
        # The pointer to the active graph lives beside the graphs, in the same server.
        self._pointer = NamespacePointer(self._db.connection, key_prefix=f"{base}:graph",
                                         first_namespace=self.fresh_namespace(FIRST_GENERATION))

    def fresh_namespace(self, generation: str) -> str:
        return f"{self._base}_{generation}"

    async def prepare(self, namespace: str) -> None:
        graph = self._db.select_graph(namespace)
        for label in INDEXES:
            await _create_index(graph, label)  # creates the graph itself on first use
        await graph.query(cypher.MAKE_FENCE, {"fence_id": FENCE})

    async def checkpoint(self, namespace: str, stream: str) -> int:
        if namespace not in await self._db.list_graphs():
            return 0
        rows = (await self._db.select_graph(namespace).ro_query(cypher.CHECKPOINT_QUERY, {"stream": stream})).result_set
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    async def apply(
        self, namespace: str, stream: str, sequence: int, writes: Sequence[GraphWrite], fence: int | None = None,
    ) -> bool:
        # One GRAPH.QUERY is atomic in FalkorDB: the writes and the checkpoint land together or not at all.
        # But two queries that MERGE the same edge at the same time may both create it (seen in a rebuild that
        # folds PLANNING and ORCHESTRATION at once: a plan's approval and its rejection each MERGE its
        # HAS_PLAN edge), so a process sends one write at a time. Other processes must not write the same
        # graph at the same time: the lease keeps other replicas out, and the fence refuses a stale leader's
        # batch (docs/read-models.md).
        text, params = cypher.batch_statement(writes, stream, sequence, fence, self._retention_s)
        async with one_write_at_a_time():
            result = await self._db.select_graph(namespace).query(params_header(params) + text)
        applied = bool(result.result_set)
        # Nothing written: already applied, or fenced. The fence only rises, so reading it after says which.
        if not applied and fence is not None and (await self._fence(namespace)) > fence:
            raise Fenced(f"graph {namespace} is fenced above token {fence}")
        return applied

    async def raise_fence(self, namespace: str, token: int) -> None:
        rows = (await self._db.select_graph(namespace).query(
            cypher.RAISE_FENCE, {"fence_id": FENCE, "token": token})).result_set
        if not rows:
            raise Fenced(f"graph {namespace} is fenced above token {token}")

    async def _fence(self, namespace: str) -> int:
        rows = (await self._db.select_graph(namespace).ro_query(cypher.FENCE_QUERY, {"fence_id": FENCE})).result_set
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    async def rewind(self, namespace: str, stream: str, sequence: int) -> None:
        await self._db.select_graph(namespace).query(cypher.REWIND_QUERY, {"stream": stream, "sequence": sequence})

    async def drop(self, namespace: str) -> None:
        if namespace in await self._db.list_graphs():
            await self._db.select_graph(namespace).delete()

    async def expire(self, namespace: str, now: float) -> int:
        if namespace not in await self._db.list_graphs():
            return 0
        graph, deleted = self._db.select_graph(namespace), 0
        for label in EXPIRING:
            while True:
                async with one_write_at_a_time():
                    rows = (await graph.query(cypher.expired_statement(label),
                                              {"now": now, "limit": cypher.EXPIRED_PER_STATEMENT})).result_set
                deleted += rows[0][0]
                if rows[0][0] < cypher.EXPIRED_PER_STATEMENT:
                    break
        await self._rebuild_spent_indexes(graph)
        return deleted

    async def _rebuild_spent_indexes(self, graph) -> None:
        rows = (await graph.ro_query(INDEXES_QUERY)).result_set
        indexed = {row[0]: set(row[1]) for row in rows}
        for label in [label for label, wanted in INDEXES.items() if not set(wanted) <= indexed.get(label, set())]:
            # Dropped by a rebuild that broke off before it created the index again.
            async with one_write_at_a_time():
                await _create_index(graph, label)
            log.warning("graph %s: the index of :%s was missing and is made again", graph.name, label)
        for label, documents, spent in spent_indexes(rows):
            began = time.monotonic()
            async with one_write_at_a_time():
                for attribute in INDEXES[label]:
                    with contextlib.suppress(ResponseError):  # not there: a rebuild broke off after a drop
                        await graph.query(f"DROP INDEX FOR (n:{label}) ON (n.{attribute})")
                await _create_index(graph, label)
                ready = await _index_ready(graph, label, INDEX_READY_TIMEOUT_S)
            log.info("graph %s: rebuilt the index of :%s, which had spent %d document ids on %d nodes (%.2fs%s)",
                     graph.name, label, spent, documents, time.monotonic() - began,
                     "" if ready else ", still filling")

    async def content_hash(self, namespace: str) -> str:
        return canonical_hash(await self.content(namespace))

    async def content(self, namespace: str) -> list[dict]:
        if namespace not in await self._db.list_graphs():
            return []
        graph = self._db.select_graph(namespace)
        nodes = (await graph.ro_query(cypher.CONTENT_NODES_QUERY)).result_set
        edges = (await graph.ro_query(cypher.CONTENT_EDGES_QUERY)).result_set
        return [{"node": row[0], "id": row[1], "props": dict(row[2])} for row in nodes] + [
            {"edge": row[2], "from": [row[0], row[1]], "to": [row[3], row[4]], "props": dict(row[5])} for row in edges
        ]

    async def read(self, query: str, params: dict | None = None) -> list[list]:
        """A read-only query on the active graph."""
        namespace = await self.active_namespace()
        if namespace not in await self._db.list_graphs():
            return []
        return (await self._db.select_graph(namespace).ro_query(query, params or {})).result_set

    async def close(self) -> None:
        await self._db.aclose()


def spent_indexes(rows: list[list]) -> list[tuple[Label, int, int]]:
    """(label, documents, spent document ids) of each index due for a rebuild, from `db.indexes()` rows: an
    index still filling, or one whose figures this FalkorDB does not give, is left alone."""
    due = []
    for label, _, status, info in rows:
        if label not in INDEXES or status != "OPERATIONAL" or not isinstance(info, Mapping):
            continue
        documents, highest = info.get("numDocuments"), info.get("maxDocId")
        if not isinstance(documents, int) or not isinstance(highest, int):
            continue
        spent = highest - documents
        if spent >= max(documents, INDEX_SPENT_IDS_BEFORE_REBUILD):
            due.append((Label(label), documents, spent))
    return due


async def _create_index(graph, label: Label) -> None:
    for attribute in INDEXES[label]:
        try:
            await graph.query(f"CREATE INDEX FOR (n:{label}) ON (n.{attribute})")
        except ResponseError as exc:
            if "already indexed" not in str(exc):
                raise


async def _index_ready(graph, label: Label, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = (await graph.ro_query(INDEXES_QUERY)).result_set
        if any(row[0] == label and row[2] == "OPERATIONAL" for row in rows):
            return True
        await asyncio.sleep(0.05)
    return False


def params_header(params: dict) -> str:
    """The `CYPHER name=value ...` prefix falkordb-py writes for a query's parameters, in half its time.

    The same text (tests/unit/test_projection_models.py compares them): falkordb-py's general
    `stringify_param_value` was a tenth of a graph rebuild's CPU time.
    """
    return "CYPHER " + "".join([f"`{_name(key)}`={_literal(value)} " for key, value in params.items()])


def _literal(value) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join([_literal(item) for item in value]) + "]"
    if isinstance(value, dict):
        return "{" + ",".join([f"`{_name(key)}`:{_literal(item)}" for key, item in value.items()]) + "}"
    return str(value)


def _name(key) -> str:
    name = key.decode() if isinstance(key, bytes) else str(key)
    if not name or "`" in name:
        raise ValueError(f"FalkorDB takes no empty name and no backtick in one: {name!r}")
    return name
