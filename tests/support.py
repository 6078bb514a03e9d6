"""Test helpers: what the specs share of events to start from, and helpers that read the real JetStream
log (no sleeps, only polling with a deadline)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import msgspec
from nats.js import JetStreamContext
from prometheus_client.parser import text_string_to_metric_families

from contracts import catalog
from contracts.envelope import to_headers
from contracts.events import (
    AgentProfile,
    Brief,
    Council,
    DeliberationRef,
    DeliberationRequested,
    PlanApproved,
    PlannedTask,
    Role,
)
from services.councils.domain import architect_of, default_councils
from services.mesh.log_reader import Reading, read_to_end
from services.mesh.logs import formatter
from services.mesh.messages import Cause, Outgoing
from services.mesh.publishing import envelope_for
from services.mesh.runtime import SideWork, Wiring, bind_durables, new_broker
from services.mesh.settings import Settings
from streams.definitions import stream_for_subject

# One deliberation of one task, and when it starts: each spec changes only what it is about.
T0 = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
REF = DeliberationRef(deliberation_id="d-1", story_id="s-1", plan_id="p-1", task_id="t-1", role=Role.DEV)
# The architect of the default councils.
ARCHITECT = architect_of({council.role: council for council in default_councils()})


def at(seconds: float) -> dt.datetime:
    """`seconds` after T0."""
    return T0 + dt.timedelta(seconds=seconds)


async def read_stream(js: JetStreamContext, subject: str) -> list:
    """Every message stored on `subject` (a filter), from the start of its stream, through the mesh's log reader."""
    return [message async for message in read_to_end(js, Reading(stream_for_subject(subject).name, subject))]


async def last_sequence(js: JetStreamContext, stream: str) -> int:
    """The sequence of the last message `stream` stored."""
    return (await js.stream_info(stream)).state.last_seq


def decode(message):
    return catalog.spec_for_subject(message.subject).decoder.decode(message.data)


async def wait_for(
    js: JetStreamContext, subject: str, matches: Callable, count: int, timeout_s: float = 60.0
) -> list:
    """Poll the log until `count` messages on `subject` satisfy `matches`, or fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [m for m in await read_stream(js, subject) if matches(m)]
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) >= count, f"only {len(found)}/{count} messages on {subject} after {timeout_s}s"
            return found
        await asyncio.sleep(0.2)


async def wait_until_idle(js: JetStreamContext, stream: str, durables: list[str], timeout_s: float = 60.0) -> None:
    """Wait until each durable has consumed and acked everything in its stream."""
    if not durables:
        raise ValueError("no durables to wait for: an empty list would be idle at once")
    deadline = time.monotonic() + timeout_s
    while True:
        infos = [await js.consumer_info(stream, durable) for durable in durables]
        if all(i.num_pending == 0 and i.num_ack_pending == 0 for i in infos):
            return
        assert time.monotonic() < deadline, f"consumers not idle after {timeout_s}s: {infos}"
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def running_service(service: str, nats_url: str, wire: Wiring, **settings) -> AsyncIterator[SideWork]:
    """A real service, in this process, wired exactly as `fleet service` wires it."""
    config = Settings(data_dir=Path("."), nats_url=nats_url, **settings)
    broker = new_broker(service, config)
    side = SideWork(await bind_durables(broker, service, config, wire))
    await broker.start()
    await side.start(broker, service, config)
    try:
        yield side
    finally:
        await side.stop()
        await broker.stop()


def body_of(payload) -> bytes:
    return msgspec.json.encode(payload)


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of the first Prometheus sample `name` with these label values (exact, so role="DEV" is not
    role="DEVOPS"); 0 when there is none."""
    for family in text_string_to_metric_families(metrics):
        for found in family.samples:
            if found.name == name and labels.items() <= found.labels.items():
                return found.value
    return 0.0


# When the chain publish_chain stores began, in its envelopes: recent, since the read models forget what is
# older than their retention (30 days), and a chain dated for good would one day fold into nothing.
CHAIN_STARTED = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)


async def start_fleet(nats_url: str, data_dir, *args: str, env: dict | None = None):
    """`fleet ARGS` as its own process, as an operator runs it, pointed at the test's NATS and data dir."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "FLEET_NATS_URL": nats_url, "FLEET_DATA_DIR": str(data_dir), "COLUMNS": "250",
             **(env or {})},
    )


async def fleet(nats_url: str, data_dir, *args: str, env: dict | None = None, timeout_s: float = 60.0
                ) -> tuple[int, str]:
    """`fleet ARGS` run to its end: its exit code and what it printed."""
    process = await start_fleet(nats_url, data_dir, *args, env=env)
    out, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    return process.returncode, out.decode()


def profile(agent_id: str, role: Role = Role.DEV) -> AgentProfile:
    return AgentProfile(agent_id=agent_id, role=role, persona="p", temperature=0.3, seed=1)


async def publish_chain(js, unique: str) -> tuple[str, str]:
    """An approval and the request it caused, with the envelope the services would give them."""
    approval = PlanApproved(story_id=f"s-{unique}", plan_id=f"p-{unique}", approved_by="alice", roles=[Role.DEV],
                            tasks=[PlannedTask(task_id="t", title="Cache reads")])
    first = envelope_for(Outgoing(approval, f"approval-{unique}"), producer="upstream", cause=None, now=CHAIN_STARTED)
    await js.publish(catalog.PLAN_APPROVED.subject, msgspec.json.encode(approval), headers=to_headers(first))
    deliberation = f"d-{unique}"
    request = DeliberationRequested(
        deliberation=DeliberationRef(deliberation_id=deliberation, story_id=approval.story_id,
                                     plan_id=approval.plan_id, task_id="t", role=Role.DEV),
        brief=Brief(task=approval.tasks[0], rubric={}), approved_by="alice",
        council=Council(role=Role.DEV, agents=[profile("dev-1")]), architect=profile("architect-1", Role.ARCHITECT))
    second = envelope_for(Outgoing(request, f"request-{unique}"), producer="planning", cause=Cause.of(first),
                          now=CHAIN_STARTED + dt.timedelta(milliseconds=40))
    await js.publish(catalog.DELIBERATION_REQUESTED.subject, msgspec.json.encode(request), headers=to_headers(second))
    return first.correlation_id, deliberation


@contextlib.contextmanager
def log_lines(logger: logging.Logger, service: str, *filters: logging.Filter) -> Iterator[list[str]]:
    """The lines `logger` writes within the block, formatted as the service's JSON lines, through `filters`."""
    kept: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(self.format(record))

    handler = Keep()
    for log_filter in filters:
        handler.addFilter(log_filter)
    handler.setFormatter(formatter(service, "json"))
    logger.addHandler(handler)
    try:
        yield kept
    finally:
        logger.removeHandler(handler)


async def council_stats(client, namespace: str, role: str = "*") -> dict[str, int]:
    """A council's counters in the KV read model (every council's, by default), summed over the days kept."""
    totals: dict[str, int] = {}
    async for key in client.scan_iter(match=f"{namespace}:council:{role}:stats:*"):
        for name, amount in (await client.hgetall(key)).items():
            totals[name] = totals.get(name, 0) + int(amount)
    return totals


async def counted_facts(client, namespace: str, deliberation_id: str = "*") -> set[str]:
    """The facts the KV read model has counted for a deliberation (for every one, by default)."""
    from services.projection.kv_model import counted_key, deliberation_key

    facts: set[str] = set()
    async for key in client.scan_iter(match=f"{namespace}:{counted_key(deliberation_key(deliberation_id))}"):
        facts |= set(await client.hkeys(key))
    return facts
