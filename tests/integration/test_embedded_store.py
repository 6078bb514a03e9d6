"""The embedded redis-server with FalkorDB serves both the Valkey-compatible store and the Cypher graph."""

import pytest
import valkey.asyncio as valkey
from falkordb.asyncio import FalkorDB
from redis.asyncio import BlockingConnectionPool

from tests.servers import FALKORDB_IMAGE

pytestmark = pytest.mark.integration


async def test_it_serves_key_value_with_atomic_transactions(redis_endpoints, unique):
    client = valkey.from_url(redis_endpoints["valkey_url"])
    try:
        async with client.pipeline(transaction=True) as pipe:
            pipe.hset(f"deliberation:{unique}", mapping={"status": "COMPLETED", "seq": 42})
            pipe.expire(f"deliberation:{unique}", 60)
            await pipe.execute()
        assert await client.hgetall(f"deliberation:{unique}") == {b"status": b"COMPLETED", b"seq": b"42"}
    finally:
        await client.aclose()


async def test_it_runs_idempotent_cypher_merges(redis_endpoints, unique):
    host, port = redis_endpoints["graph_uri"].removeprefix("falkor://").rsplit(":", 1)
    pool = BlockingConnectionPool(host=host, port=int(port), max_connections=4)
    graph = FalkorDB(connection_pool=pool).select_graph(f"fleet-{unique}")
    merge = "MERGE (s:Story {id: $story}) MERGE (p:PlanVersion {id: $plan}) MERGE (s)-[:HAS_PLAN]->(p)"
    for _ in range(2):
        await graph.query(merge, {"story": "s-1", "plan": "p-1"})
    result = await graph.ro_query("MATCH (s:Story)-[r:HAS_PLAN]->(p:PlanVersion) RETURN s.id, p.id, count(r)")
    assert result.result_set == [["s-1", "p-1", 1]]
    await graph.delete()
    await pool.aclose()


async def test_its_falkordb_module_is_the_release_the_docker_route_pins(redis_endpoints):
    client = valkey.from_url(redis_endpoints["valkey_url"])
    try:
        # Each module comes as a flat list of its fields and their values: name, graph, ver, 42201, ...
        modules = [dict(zip(fields[::2], fields[1::2], strict=True))
                   for fields in await client.execute_command("MODULE", "LIST")]
    finally:
        await client.aclose()
    # The module reports its version as major * 10000 + minor * 100 + patch.
    [graph] = [m[b"ver"] for m in modules if m[b"name"] == b"graph"]
    major, rest = divmod(graph, 10_000)
    minor, patch = divmod(rest, 100)

    assert FALKORDB_IMAGE.endswith(f":v{major}.{minor}.{patch}")
