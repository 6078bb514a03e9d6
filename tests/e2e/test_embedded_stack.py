"""`fleet up`'s promises: endpoints written, one stack per data dir, services kept alive, nothing left behind."""

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import nats
import pytest

from contracts import catalog
from contracts.envelope import MSG_ID
from services.embedded.stack import EmbeddedStack, StackAlreadyRunning, is_running

pytestmark = pytest.mark.e2e


def live_members(pgid: int) -> list[int]:
    """Processes of the group that still run. Zombies are left out: a container's PID 1 may never reap them."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, process_group = fields[0], int(fields[2])
        if process_group == pgid and state not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


async def survivors(groups: list[int], within_s: float = 10.0) -> dict[int, list[int]]:
    deadline = time.monotonic() + within_s
    while True:
        left = {pgid: pids for pgid in groups if (pids := live_members(pgid))}
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.2)


async def test_the_stack_restarts_dead_services_keeps_its_log_and_leaves_nothing_behind(tmp_path):
    data_dir = tmp_path / "fleet"
    stack = EmbeddedStack(data_dir, report=print, services=("planning",))
    endpoints = await stack.start()
    try:
        written = json.loads((data_dir / "endpoints.json").read_text())
        assert {"nats_url", "valkey_url", "graph_uri", "llm_base_url", "ray_address"} <= written.keys()
        assert is_running(data_dir)
        with pytest.raises(StackAlreadyRunning):
            await EmbeddedStack(data_dir, report=print).start()

        client = await nats.connect(endpoints["nats_url"])
        await client.jetstream().publish(catalog.PLAN_APPROVED.subject, b"{}", headers={MSG_ID: "kept"})
        await client.close()

        planning = stack.services["planning"]
        first_pid = planning.process.pid
        os.kill(first_pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not (planning.process.pid != first_pid and planning.process.running()):
            assert time.monotonic() < deadline, "planning was not restarted"
            await asyncio.sleep(0.2)
        assert planning.restarts == 1
        groups = stack.process_ids()
    finally:
        await stack.stop()

    assert not await survivors(groups), "processes survived the stop"
    assert not (data_dir / "endpoints.json").exists()
    assert not is_running(data_dir)

    again = EmbeddedStack(data_dir, report=print, services=())
    endpoints = await again.start()
    try:
        client = await nats.connect(endpoints["nats_url"])
        info = await client.jetstream().stream_info("PLANNING")
        await client.close()
        assert info.state.messages >= 1
    finally:
        await again.stop()
