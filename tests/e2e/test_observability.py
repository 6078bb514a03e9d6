"""The embedded mesh as Prometheus sees it: every service serves metrics and health on its own port."""

import aiohttp
import pytest

from contracts.events import Role
from tests.e2e.flows import approval_for, approve, result_of
from tests.support import sample

pytestmark = pytest.mark.e2e


async def scrape(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200, url
        return await response.text()


async def test_each_service_serves_health_and_metrics_and_a_deliberation_shows_in_them(js, mesh):
    _, endpoints = mesh
    # A deliberation of its own: a service restarted by an earlier test has counted nothing since.
    await result_of(js, await approve(js, approval_for(Role.DEV)))
    metrics = {key.removeprefix("metrics_"): url for key, url in endpoints.items() if key.startswith("metrics_")}

    assert {"planning", "dispatch", "agents", "collector", "projection"} <= metrics.keys()
    async with aiohttp.ClientSession() as http:
        for url in metrics.values():
            async with http.get(url.replace("/metrics", "/healthz")) as response:
                assert response.status == 200 and (await response.json())["nats"] == "connected"
    agents, collector = await scrape(metrics["agents"]), await scrape(metrics["collector"])
    assert sample(agents, "fleet_llm_request_seconds_count", outcome="ok") >= 1
    assert sample(agents, "fleet_llm_tokens_total", kind="completion") >= 1
    assert sample(agents, "fleet_messages_total", consumer="agents-turn-requests", outcome="handled") >= 1
    assert sample(collector, "fleet_deliberation_phase_seconds_count", phase="propose") >= 1
    assert sample(collector, "fleet_deliberations_total", role=Role.DEV.value, outcome="completed") >= 1
    projection = await scrape(metrics["projection"])
    assert sample(projection, "fleet_projected_events_total", projection="graph", stream="ORCHESTRATION") >= 1
    assert sample(projection, "fleet_projection_position", projection="kv", stream="AGENT") >= 1
    # The only replica holds both read models' leases.
    assert sample(projection, "fleet_projection_lease_held", projection="graph") == 1
    assert sample(projection, "fleet_projection_lease_held", projection="kv") == 1
