"""The graph read model on Neo4j, through the official async driver. Same Cypher as FalkorDB.

Neo4j Community has one user database, so namespaces are not separate graphs here: the store has a
single namespace, and a rebuild refills it in place (see `supports_swap`) while the live projector
waits. With Enterprise, point
FLEET_GRAPH_NAME at a database per deployment.
"""

from __future__ import annotations

from collections.abc import Sequence

from neo4j import AsyncGraphDatabase

from services.projection import cypher
from services.projection.stores import FENCE, Fenced, canonical_hash
from services.projection.vocabulary import EXPIRES_AT, EXPIRING, GraphWrite, Label

# The node that marks a rebuild in place: a checkpoint no stream is named after, so it survives the drop.
REBUILD_MARKER = "_rebuild"


class Neo4jGraphStore:
    kind = "graph"
    supports_swap = False

    def __init__(self, uri: str, user: str, password: str, database: str = "neo4j",
                 retention_s: float | None = None) -> None:
        self._driver = AsyncGraphDatabase.driver(uri, auth=(user, password))
        self._database = database
        self._retention_s = retention_s

    def fresh_namespace(self, generation: str) -> str:
        return self._database

    async def active_namespace(self) -> str:
        return self._database

    async def prepare(self, namespace: str) -> None:
        for label in Label:
            await self._driver.execute_query(
                f"CREATE CONSTRAINT {label.value.lower()}_id IF NOT EXISTS FOR (n:{label}) REQUIRE n.id IS UNIQUE",
                database_=namespace,
            )
        for label in EXPIRING:
            await self._driver.execute_query(
                f"CREATE INDEX {label.value.lower()}_{EXPIRES_AT} IF NOT EXISTS FOR (n:{label}) ON (n.{EXPIRES_AT})",
                database_=namespace,
            )
        await self._driver.execute_query(cypher.MAKE_FENCE, {"fence_id": FENCE}, database_=namespace)

    async def checkpoint(self, namespace: str, stream: str) -> int:
        records, _, _ = await self._driver.execute_query(cypher.CHECKPOINT_QUERY, {"stream": stream},
                                                         database_=namespace)
        return int(records[0][0]) if records and records[0][0] is not None else 0

    async def apply(
        self, namespace: str, stream: str, sequence: int, writes: Sequence[GraphWrite], fence: int | None = None,
    ) -> bool:
        # execute_query runs the statement in one transaction, with retries on transient errors.
        text, params = cypher.batch_statement(writes, stream, sequence, fence, self._retention_s)
        records, _, _ = await self._driver.execute_query(text, params, database_=namespace)
        applied = bool(records)
        # Nothing written: already applied, or fenced. The fence only rises, so reading it after says which.
        if not applied and fence is not None and (await self._fence(namespace)) > fence:
            raise Fenced(f"graph {namespace} is fenced above token {fence}")
        return applied

    async def raise_fence(self, namespace: str, token: int) -> None:
        records, _, _ = await self._driver.execute_query(cypher.RAISE_FENCE, {"fence_id": FENCE, "token": token},
                                                         database_=namespace)
        if not records:
            raise Fenced(f"graph {namespace} is fenced above token {token}")

    async def _fence(self, namespace: str) -> int:
        records, _, _ = await self._driver.execute_query(cypher.FENCE_QUERY, {"fence_id": FENCE}, database_=namespace)
        return int(records[0][0]) if records and records[0][0] is not None else 0

    async def rewind(self, namespace: str, stream: str, sequence: int) -> None:
        await self._driver.execute_query(cypher.REWIND_QUERY, {"stream": stream, "sequence": sequence},
                                         database_=namespace)

    async def rebuild_in_place(self) -> str | None:
        records, _, _ = await self._driver.execute_query(
            f"MATCH (m:{Label.CHECKPOINT} {{id: $id}}) RETURN m.rebuild", {"id": REBUILD_MARKER},
            database_=self._database,
        )
        return records[0][0] if records else None

    async def mark_rebuild_in_place(self, rebuild: str | None) -> None:
        if rebuild is None:
            query, params = f"MATCH (m:{Label.CHECKPOINT} {{id: $id}}) DELETE m", {"id": REBUILD_MARKER}
        else:
            query = f"MERGE (m:{Label.CHECKPOINT} {{id: $id}}) SET m.rebuild = $rebuild"
            params = {"id": REBUILD_MARKER, "rebuild": rebuild}
        await self._driver.execute_query(query, params, database_=self._database)

    async def switch_to(self, namespace: str) -> str | None:
        return None

    async def drop(self, namespace: str) -> None:
        # CALL ... IN TRANSACTIONS needs an auto-commit transaction, which only session.run gives.
        async with self._driver.session(database=namespace) as session:
            # The fence stays too: a stale leader must not find the refilled model open to its writes.
            result = await session.run(
                f"MATCH (n) WHERE NOT (n:{Label.CHECKPOINT} AND n.id IN [$marker, $fence]) "
                "CALL { WITH n DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS",
                {"marker": REBUILD_MARKER, "fence": FENCE},
            )
            await result.consume()

    async def expire(self, namespace: str, now: float) -> int:
        deleted = 0
        for label in EXPIRING:
            while True:
                records, _, _ = await self._driver.execute_query(
                    cypher.expired_statement(label), {"now": now, "limit": cypher.EXPIRED_PER_STATEMENT},
                    database_=namespace)
                deleted += records[0][0]
                if records[0][0] < cypher.EXPIRED_PER_STATEMENT:
                    break
        return deleted

    async def content_hash(self, namespace: str) -> str:
        return canonical_hash(await self.content(namespace))

    async def content(self, namespace: str) -> list[dict]:
        nodes, _, _ = await self._driver.execute_query(cypher.CONTENT_NODES_QUERY, database_=namespace)
        edges, _, _ = await self._driver.execute_query(cypher.CONTENT_EDGES_QUERY, database_=namespace)
        return [{"node": r["label"], "id": r["id"], "props": dict(r["props"])} for r in nodes] + [
            {"edge": r["rel"], "from": [r["source_label"], r["source"]], "to": [r["target_label"], r["target"]],
             "props": dict(r["props"])}
            for r in edges
        ]

    async def read(self, query: str, params: dict | None = None) -> list[list]:
        records, _, _ = await self._driver.execute_query(query, params or {}, database_=self._database)
        return [list(record.values()) for record in records]

    async def close(self) -> None:
        await self._driver.close()
