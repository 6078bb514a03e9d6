"""Projection failover: seconds from the lease holder's end to the standby's first write.

Two replicas (each its own NATS connection and store clients, as two pods) follow the same streams into
the same stores; the holder is killed (its followers stop, its leases are never handed back) or stopped
gracefully (it hands them back), one event is published, and the clock runs until the standby's first
applied batch, per projection. A kill waits out the lease's life (PROJECTION_LEASES' time to live); a
graceful stop waits for the standby's next attempt (a second at most).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.js import JetStreamContext
from rich.console import Console

from bench.events import event_log
from bench.report import Figure, Result
from services.embedded.servers import nats_plan, redis_plan, running_server
from services.mesh.settings import Settings
from services.projection.app import graph_store, kv_store, leadership
from services.projection.graph_model import graph_writes
from services.projection.kv_model import kv_writes
from services.projection.leadership import Leadership
from services.projection.projector import Projector
from streams.apply import apply_all
from streams.definitions import GRAPH_PROJECTION, KV_PROJECTION, PROJECTION_LEASE_S

# Events in the log before the first replica starts; each round publishes one more.
LOG_EVENTS = 2_000
# Each kill waits out a lease's life (10 s), so few rounds.
ROUNDS = 3


class FirstWrite:
    """A store that notes when it first applied a batch."""

    def __init__(self, store) -> None:
        self._store = store
        self.at: float | None = None

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def apply(self, namespace, stream, sequence, writes, fence=None) -> bool:
        applied = await self._store.apply(namespace, stream, sequence, writes, fence)
        if applied and self.at is None:
            self.at = time.monotonic()
        return applied


@dataclass
class Replica:
    client: nats.NATS
    stores: list[FirstWrite]
    leaderships: list[Leadership]
    tasks: list[asyncio.Task] = field(default_factory=list)

    @property
    def leads(self) -> bool:
        return all(item.token is not None for item in self.leaderships)

    async def end(self, graceful: bool) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if graceful:
            for item in self.leaderships:
                await item.release()
        for store in self.stores:
            await store.close()
        await self.client.close()


async def start(name: str, settings: Settings, keys: str) -> Replica:
    client = await nats.connect(settings.nats_url)
    js = client.jetstream()
    stores = [FirstWrite(graph_store(settings)), FirstWrite(kv_store(settings))]
    projectors = [Projector(GRAPH_PROJECTION, stores[0], graph_writes), Projector(KV_PROJECTION, stores[1], kv_writes)]
    leaderships = [await leadership(js, p, name, key=f"{keys}-{p.spec.name}") for p in projectors]
    replica = Replica(client, stores, leaderships)
    replica.tasks = [asyncio.create_task(item.run()) for item in leaderships]
    return replica


async def until(condition, within_s: float = 120.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {within_s}s")
        await asyncio.sleep(0.01)


async def one_round(js: JetStreamContext, settings: Settings, keys: str, graceful: bool, events) -> list[float]:
    """Seconds from the holder's end to the standby's first write, graph then kv."""
    holder = await start("holder", settings, keys)
    await until(lambda: holder.leads)
    standby = await start("standby", settings, keys)
    try:
        # The holder writes (the log so far, or this event), so the standby's first write is the one after.
        stored = next(events)
        await js.publish(stored.subject, stored.body, headers=stored.headers)
        await until(lambda: all(store.at is not None for store in holder.stores))
        await asyncio.sleep(1.0)
        ended = time.monotonic()
        await holder.end(graceful)
        stored = next(events)
        await js.publish(stored.subject, stored.body, headers=stored.headers)
        await until(lambda: all(store.at is not None for store in standby.stores))
        return [store.at - ended for store in standby.stores]
    finally:
        await standby.end(graceful=True)


async def run(options: argparse.Namespace, console: Console) -> Result:
    seconds: dict[str, list[float]] = {"kill": [], "graceful": []}
    with tempfile.TemporaryDirectory(prefix="fleet-bench-failover-") as tmp:
        root = Path(tmp)
        async with (running_server(nats_plan(root), root / "logs") as nats_endpoints,
                    running_server(redis_plan(root), root / "logs") as redis_endpoints):
            client = await nats.connect(nats_endpoints["nats_url"])
            try:
                js = client.jetstream()
                await apply_all(js, replicas=1)
                events = event_log(LOG_EVENTS + 4 * ROUNDS)
                for _ in range(LOG_EVENTS):
                    stored = next(events)
                    await js.publish(stored.subject, stored.body, headers=stored.headers)
                settings = Settings(data_dir=root, nats_url=nats_endpoints["nats_url"],
                                    valkey_url=redis_endpoints["valkey_url"], graph_uri=redis_endpoints["graph_uri"],
                                    graph_name="failover", kv_prefix="failover")
                for index in range(ROUNDS):
                    for mode in ("kill", "graceful"):
                        took = await one_round(js, settings, f"r{index}-{mode}", mode == "graceful", events)
                        console.print(f"  round {index + 1} {mode}: graph {took[0]:.2f}s, kv {took[1]:.2f}s")
                        seconds[mode] += took
            finally:
                await client.close()
    kill, graceful = statistics.median(seconds["kill"]), statistics.median(seconds["graceful"])
    return Result(
        benchmark="failover",
        figures=[
            # The lease's life after the holder's last renewal, plus one standby attempt.
            Figure("holder killed: standby's first write", kill, "s", target=PROJECTION_LEASE_S + 1.0,
                   higher_is_better=False),
            Figure("holder stopped gracefully: standby's first write", graceful, "s", higher_is_better=False),
        ],
        details={"lease_s": PROJECTION_LEASE_S, "rounds": ROUNDS, "seconds": seconds,
                 "max": {mode: max(values) for mode, values in seconds.items()}},
        notes=["median over both projections and every round; a kill waits out the lease's life, a graceful "
               "stop the standby's next attempt to take the lease (every second)"],
    )
