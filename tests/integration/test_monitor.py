"""The monitor service on a real nats-server: it reads every stream at once and serves what it saw."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket

import aiohttp
import msgspec
import pytest

from contracts import catalog
from contracts.envelope import MSG_ID
from contracts.events import CouncilCreated, DeliberationAdvanced, Phase, Role
from services.councils.domain import new_council
from services.embedded.servers import free_port
from services.monitor.app import SERVICE, wire
from tests.support import publish_chain, running_service

pytestmark = pytest.mark.integration


async def state_when(port: int, ready, timeout_s: float = 20.0) -> dict:
    """Poll /api/state until `ready(state)` holds, or fail with the last state seen."""
    async with aiohttp.ClientSession() as http:
        for _ in range(int(timeout_s / 0.2)):
            async with http.get(f"http://127.0.0.1:{port}/api/state") as response:
                state = await response.json()
            if ready(state):
                return state
            await asyncio.sleep(0.2)
    raise AssertionError(f"the monitor never showed it: {state}")


async def test_the_monitor_shows_councils_deliberations_and_events_from_every_stream(empty_log, unique):
    nats_url, js = empty_log
    port = free_port()
    council = new_council(Role.DATA, 2)
    async with running_service(SERVICE, nats_url, wire, monitor_port=port):
        await js.publish(catalog.COUNCIL_CREATED.subject,
                         msgspec.json.encode(CouncilCreated(council=council, created_by="test")),
                         headers={MSG_ID: f"council-{unique}"})
        _, deliberation = await publish_chain(js, unique)
        advanced = DeliberationAdvanced(deliberation_id=deliberation, phase=Phase.PROPOSE, round=0, turns=["x"],
                                        deadline_at=dt.datetime.now(dt.UTC))
        await js.publish(catalog.DELIBERATION_ADVANCED.subject, msgspec.json.encode(advanced),
                         headers={MSG_ID: f"advanced-{unique}"})

        state = await state_when(port, lambda s: s["consumers"]["read_at"] and any(
            r["deliberation_id"] == deliberation and r["phase"] == "propose" for r in s["in_flight"]))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/") as response:
                page = await response.text()
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                health = response.status

    assert "DATA" in {c["role"] for c in state["councils"]}
    streams = {e["stream"] for e in state["events"]}
    assert {"PLANNING", "ORCHESTRATION", "CONFIG"} <= streams
    [row] = [r for r in state["in_flight"] if r["deliberation_id"] == deliberation]
    assert row["title"] == "Cache reads" and row["phases"][0]["phase"] == "propose"
    assert state["consumers"]["unavailable"] is None
    assert {c["durable"] for c in state["consumers"]["value"]} >= {"planning-plan-approvals"}
    assert state["dead_letters"]["unavailable"] is None and state["nats"] == "connected"
    assert "Deliberations in flight" in page and health == 200


async def test_a_port_in_use_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        from services.mesh.runtime import Mesh  # noqa: F401 - the wiring below is what fleet service runs
        from services.monitor.domain import MonitorState
        from services.monitor.web import Changes, dashboard, serve

        with pytest.raises(OSError, match=f"cannot listen on port {port}"):
            await serve(dashboard(MonitorState(), Changes(), lambda: True), port, lambda p: None)
