"""Fixtures of the projection's specs: both read models over the real stores, FalkorDB or Neo4j."""

from __future__ import annotations

import pytest

from services.mesh.settings import Settings
from services.projection.app import projectors
from tests.servers import docker_available


@pytest.fixture(scope="module")
def neo4j_server():
    """Neo4j Community in a container; these tests are skipped, with the reason, where no Docker engine runs."""
    if not docker_available():
        pytest.skip("no Docker engine: the Neo4j graph adapter is tested in a testcontainers Neo4j only")
    from testcontainers.community.neo4j import Neo4jContainer

    with Neo4jContainer("neo4j:5-community") as container:
        yield {"graph_uri": container.get_connection_url(), "user": container.username,
               "password": container.password}


@pytest.fixture(params=["falkordb", "neo4j"])
def store_settings(request, nats_url, redis_endpoints, unique) -> Settings:
    """Both projections on their own graph and key prefix, so tests never see each other's models.

    The graph is FalkorDB (embedded default) or Neo4j: the same Cypher runs on both.
    """
    graph_settings = {"graph_uri": redis_endpoints["graph_uri"], "graph_name": f"t{unique}"}
    if request.param == "neo4j":
        neo4j = request.getfixturevalue("neo4j_server")
        graph_settings = {"graph_uri": neo4j["graph_uri"], "graph_name": "neo4j", "graph_user": neo4j["user"],
                          "graph_password": neo4j["password"]}
    return Settings(data_dir=".", nats_url=nats_url, valkey_url=redis_endpoints["valkey_url"],
                    kv_prefix=f"t{unique}", **graph_settings)


@pytest.fixture
async def stores(store_settings):
    graph, kv = projectors(store_settings)
    yield graph, kv
    for projector in (graph, kv):
        await projector.store.drop(await projector.store.active_namespace())
        await projector.store.close()
