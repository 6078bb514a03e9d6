"""Test helpers: what the specs share of events to start from, and helpers that read the real JetStream
log (no sleeps, only polling with a deadline)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client.parser import text_string_to_metric_families

from contracts import catalog
from contracts.events import DeliberationRef, Role
from services.councils.domain import architect_of, default_councils
from services.mesh.runtime import SideWork, Wiring, bind_durables, new_broker
from services.mesh.settings import Settings

# One deliberation of one task, and when it starts: each spec changes only what it is about.
T0 = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
REF = DeliberationRef(deliberation_id="d-1", story_id="s-1", plan_id="p-1", task_id="t-1", role=Role.DEV)
# The architect of the default councils.
ARCHITECT = architect_of({council.role: council for council in default_councils()})


def at(seconds: float) -> dt.datetime:
    """`seconds` after T0."""
    return T0 + dt.timedelta(seconds=seconds)


async def read_stream(js: JetStreamContext, subject: str) -> list:
    """Every message stored on `subject`, from the start of its stream."""
    subscription = await js.pull_subscribe(
        subject, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE,
                                       inactive_threshold=30.0)
    )
    messages = []
    try:
        while True:
            try:
                batch = await subscription.fetch(256, timeout=0.5)
            except TimeoutError:
                # Nothing came within the timeout: the end, unless the server still holds messages for us
                # (a busy machine can take longer than that to deliver the next batch).
                if (await subscription.consumer_info()).num_pending == 0:
                    break
                continue
            messages += batch
    finally:
        await subscription.unsubscribe()
    return messages


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
