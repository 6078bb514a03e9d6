"""Two or more projection replicas: one writes each read model (the lease holder), the others stand by.

Real nats-server, Valkey and FalkorDB (Neo4j where Docker runs). Each replica has its own NATS
connection and its own store clients, as separate processes would.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field

import nats
import pytest
from nats.js.errors import NotFoundError

from services.mesh.metrics import REGISTRY
from services.mesh.settings import Settings
from services.projection.adapters.nats_lease import NatsLease
from services.projection.app import SERVICE, graph_store, kv_store, leadership, projectors, wire
from services.projection.graph_model import graph_writes
from services.projection.kv_model import SetFields, kv_writes
from services.projection.leadership import Leadership
from services.projection.projector import Projector
from services.projection.rebuild import rebuild
from services.projection.stores import Fenced
from services.projection.vocabulary import Label, NodeWrite
from streams.definitions import GRAPH_PROJECTION, KV_PROJECTION
from tests.integration.test_projection import publish, story_events
from tests.support import last_sequence, running_service

pytestmark = pytest.mark.integration


def some_writes(projector, unique: str) -> list:
    if projector.store.kind == "graph":
        return [NodeWrite(Label.STORY, f"story-{unique}", {"title": "fenced"})]
    return [SetFields(f"story:{unique}", {"title": "fenced"})]


async def test_a_stale_leaders_batch_is_refused_by_the_store_and_writes_nothing(stores, unique):
    for projector in stores:
        store = projector.store
        namespace = await store.active_namespace()
        await store.prepare(namespace)
        await store.raise_fence(namespace, 5)  # a newer holder took the lease with token 5
        before = await store.content_hash(namespace)

        with pytest.raises(Fenced):
            await store.apply(namespace, "PLANNING", 1, some_writes(projector, unique), fence=4)
        with pytest.raises(Fenced):
            await store.raise_fence(namespace, 4)

        assert await store.content_hash(namespace) == before, store.kind
        assert await store.checkpoint(namespace, "PLANNING") == 0, store.kind
        assert await store.apply(namespace, "PLANNING", 1, some_writes(projector, unique), fence=5), store.kind
        # A rebuild writes with no token and checks no fence; the fence stays out of the content hash.
        assert await store.apply(namespace, "PLANNING", 2, [], fence=None), store.kind
        after = await store.content_hash(namespace)
        await store.raise_fence(namespace, 9)
        assert await store.content_hash(namespace) == after != before, store.kind


async def test_a_lease_handed_back_is_taken_at_once_and_its_token_is_higher(nats_url, unique):
    first, second = await nats.connect(nats_url), await nats.connect(nats_url)
    try:
        holder = await NatsLease.open(first.jetstream(), f"{unique}-graph", "replica-a")
        standby = await NatsLease.open(second.jetstream(), f"{unique}-graph", "replica-b")
        token = await holder.acquire()
        assert token is not None
        assert await standby.acquire() is None
        assert await holder.renew()

        await holder.release()

        taken = await standby.acquire()
        assert taken is not None and taken > token
        assert not await holder.renew()
        await standby.release()
    finally:
        await first.close()
        await second.close()


@dataclass
class Writes:
    """Who wrote each batch that landed, per projection, in the order they landed."""

    by: dict[str, list[str]] = field(default_factory=lambda: {"graph": [], "kv": []})


class Recorded:
    """A store that notes which replica each applied batch came from."""

    def __init__(self, store, replica: str, writes: Writes) -> None:
        self._store, self._replica, self._writes = store, replica, writes

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def apply(self, namespace, stream, sequence, writes, fence=None) -> bool:
        applied = await self._store.apply(namespace, stream, sequence, writes, fence)
        if applied:
            self._writes.by[self._store.kind].append(self._replica)
        return applied


@dataclass
class Replica:
    name: str
    client: nats.NATS
    projectors: list[Projector]
    leaderships: list[Leadership]
    tasks: list[asyncio.Task] = field(default_factory=list)

    @property
    def leads_both(self) -> bool:
        return all(item.token is not None for item in self.leaderships)

    async def kill(self) -> None:
        """As a crash: its followers stop, and its leases are never handed back."""
        await self._stop(release=False)

    async def stop(self) -> None:
        """As a rollout's SIGTERM: followers stopped, then the leases handed back (services/mesh/runtime)."""
        await self._stop(release=True)

    async def _stop(self, release: bool) -> None:
        if self.client.is_closed:
            return
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if release:
            for item in self.leaderships:
                await item.release()
        for projector in self.projectors:
            await projector.store.close()
        await self.client.close()


async def start_replica(name: str, nats_url: str, settings: Settings, writes: Writes, unique: str) -> Replica:
    client = await nats.connect(nats_url)
    js = client.jetstream()
    projectors = [Projector(GRAPH_PROJECTION, Recorded(graph_store(settings), name, writes), graph_writes),
                  Projector(KV_PROJECTION, Recorded(kv_store(settings), name, writes), kv_writes)]
    # Keys of this test's own: the other tests share the server and the bucket.
    leaderships = [await leadership(js, p, name, key=f"{unique}-{p.spec.name}") for p in projectors]
    replica = Replica(name, client, projectors, leaderships)
    replica.tasks = [asyncio.create_task(item.run()) for item in leaderships]
    return replica


async def eventually(condition, what: str, within_s: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"not within {within_s}s: {what}"
        await asyncio.sleep(0.1)


async def caught_up(js, projectors) -> bool:
    for projector in projectors:
        namespace = await projector.store.active_namespace()
        for stream in projector.spec.streams:
            if await projector.store.checkpoint(namespace, stream.name) < await last_sequence(js, stream.name):
                return False
    return True


async def test_replicas_write_one_at_a_time_and_a_standby_takes_over_from_a_dead_or_stopping_leader(
        js, nats_url, store_settings, stores, unique):
    events = list(story_events(unique).items())
    writes = Writes()
    replicas = []
    try:
        for name, event in events[:6]:
            await publish(js, event, f"{unique}-{name}")
        a = await start_replica("a", nats_url, store_settings, writes, unique)
        replicas.append(a)

        async def a_leads() -> bool:
            return a.leads_both

        await eventually(a_leads, "replica a leads")
        b = await start_replica("b", nats_url, store_settings, writes, unique)
        replicas.append(b)
        await eventually(lambda: caught_up(js, stores), "a wrote everything")
        dead_tokens = [item.token for item in a.leaderships]
        assert not any(item.token for item in b.leaderships)

        await a.kill()
        for name, event in events[6:12]:
            await publish(js, event, f"{unique}-{name}")

        async def b_leads() -> bool:
            return b.leads_both

        await eventually(b_leads, "standby b takes over once a's lease has expired")
        assert all(item.token > token for item, token in zip(b.leaderships, dead_tokens, strict=True))
        await eventually(lambda: caught_up(js, stores), "b wrote what was published after a died")

        c = await start_replica("c", nats_url, store_settings, writes, unique)
        replicas.append(c)
        await b.stop()
        for name, event in events[12:]:
            await publish(js, event, f"{unique}-{name}")

        async def c_leads() -> bool:
            return c.leads_both

        await eventually(c_leads, "standby c takes over the lease b handed back")
        await eventually(lambda: caught_up(js, stores), "c wrote what was published after b stopped")
    finally:
        for replica in replicas:
            await replica.stop()

    # One writer at a time: each replica's batches form one run, in the order they held the lease.
    for projection, writers in writes.by.items():
        assert [name for name, _ in itertools.groupby(writers)] == ["a", "b", "c"], projection
    graph, _ = stores
    doubled = await graph.store.read("MATCH (a)-[r]->(b) WITH a, type(r) AS rel, b, count(r) AS n WHERE n > 1 "
                                     "RETURN count(*)")
    assert doubled == [[0]]
    live = {p.spec.name: await p.store.content_hash(await p.store.active_namespace()) for p in stores}
    rebuilt = [await rebuild(js, p, generation=f"{unique}r", grace_s=0) for p in stores]
    assert {r.projection: r.content_hash for r in rebuilt} == live


async def test_a_holder_whose_lease_was_taken_stops_writing_and_stands_by(js, nats_url, store_settings, stores,
                                                                          unique):
    writes = Writes()
    replica = await start_replica("a", nats_url, store_settings, writes, unique)
    try:
        async def leads() -> bool:
            return replica.leads_both

        await eventually(leads, "the only replica leads")
        graph = replica.leaderships[0]
        assert REGISTRY.get_sample_value("fleet_projection_lease_held", {"projection": "graph"}) == 1
        # Its lease ends as if it had expired, and another holder takes the key.
        bucket = await js.key_value("PROJECTION_LEASES")
        await bucket.purge(graph.lease.key)
        await bucket.create(graph.lease.key, b"someone-else")

        async def stood_by() -> bool:
            return graph.token is None

        await eventually(stood_by, "the holder notices at its next renewal")
        assert REGISTRY.get_sample_value("fleet_projection_lease_held", {"projection": "graph"}) == 0
        assert replica.leaderships[1].token is not None  # the other projection's lease is untouched
    finally:
        await replica.stop()


async def test_two_service_replicas_as_deployed_hand_the_read_models_over_on_a_graceful_stop(
        empty_log, redis_endpoints, unique):
    """`fleet service projection` twice, on a NATS server of this test's own (the leases' keys are the
    read models' names): the first leads, the second stands by, and takes over when the first stops."""
    url, js = empty_log
    stores = {"valkey_url": redis_endpoints["valkey_url"], "graph_uri": redis_endpoints["graph_uri"],
              "graph_name": f"t{unique}", "kv_prefix": f"t{unique}"}
    readers = projectors(Settings(data_dir=".", nats_url=url, **stores))
    leases = await js.key_value("PROJECTION_LEASES")
    events = list(story_events(unique).items())
    first, second = contextlib.AsyncExitStack(), contextlib.AsyncExitStack()
    try:
        await first.enter_async_context(running_service(SERVICE, url, wire, **stores))

        async def both_held() -> bool:
            return None not in await holders(leases)

        await eventually(both_held, "the first replica takes both leases")
        held_by_first = await holders(leases)
        await second.enter_async_context(running_service(SERVICE, url, wire, **stores))
        for name, event in events[:8]:
            await publish(js, event, f"{unique}-{name}")
        await eventually(lambda: caught_up(js, readers), "the first replica writes")
        assert await holders(leases) == held_by_first

        await first.aclose()  # SIGTERM: followers stopped, then the leases handed back
        for name, event in events[8:]:
            await publish(js, event, f"{unique}-{name}")

        async def taken_over() -> bool:
            now = await holders(leases)
            return None not in now and set(now).isdisjoint(held_by_first)

        await eventually(taken_over, "the second replica takes both leases")
        await eventually(lambda: caught_up(js, readers), "the second replica writes")
    finally:
        await first.aclose()
        await second.aclose()
        for projector in readers:
            await projector.store.drop(await projector.store.active_namespace())
            await projector.store.close()


async def holders(bucket) -> list[bytes | None]:
    """Who holds the graph's and the KV's lease (None: nobody)."""
    found = []
    for key in (GRAPH_PROJECTION.name, KV_PROJECTION.name):
        try:
            found.append((await bucket.get(key)).value)
        except NotFoundError:
            found.append(None)
    return found
