"""Reading the mesh back after a fault: results, the durables' and the projection's position, dead letters,
and the read models beside a rebuild of them from sequence 0."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts import catalog
from services.embedded.stack import EmbeddedStack
from services.mesh.settings import Settings
from services.projection.app import projectors
from services.projection.projector import Projector
from services.projection.rebuild import rebuild
from streams.definitions import CONSUMERS
from tests.chaos.invariants import Comparison, Expected
from tests.support import decode, read_stream

RESULT_SUBJECTS = (catalog.DELIBERATION_COMPLETED.subject, catalog.DELIBERATION_FAILED.subject)


async def wait_until(condition: Callable, within_s: float, what: str, every_s: float = 1.0) -> float:
    """Seconds until `condition()` (async) holds; TimeoutError naming `what` after `within_s`."""
    began = time.monotonic()
    while not await condition():
        if time.monotonic() - began > within_s:
            raise TimeoutError(f"{what} not within {within_s:.0f}s")
        await asyncio.sleep(every_s)
    return time.monotonic() - began


async def results_of(js: JetStreamContext, plans: set[str]) -> list:
    found = []
    for subject in RESULT_SUBJECTS:
        found += [e for e in map(decode, await read_stream(js, subject)) if e.plan_id in plans]
    return found


async def result_times(js: JetStreamContext, plans: set[str]) -> list[float]:
    """When each result of these plans was stored (the server's clock, seconds since the epoch)."""
    times = []
    for subject in RESULT_SUBJECTS:
        times += [m.metadata.timestamp.timestamp() for m in await read_stream(js, subject)
                  if decode(m).plan_id in plans]
    return times


async def wait_for_results(js: JetStreamContext, expected: list[Expected], within_s: float) -> tuple[bool, float]:
    """(all ended, seconds waited): polls until every expected deliberation has a result, or gives up."""
    plans = {e.plan_id for e in expected}
    wanted = {e.deliberation_id for e in expected}
    began = time.monotonic()
    while True:
        ended = {r.deliberation_id for r in await results_of(js, plans)}
        if wanted <= ended:
            return True, time.monotonic() - began
        if time.monotonic() - began > within_s:
            return False, time.monotonic() - began
        await asyncio.sleep(2.0)


async def busy_durables(js: JetStreamContext) -> dict[str, dict[str, int]]:
    """Durables with messages still to deliver or to be acked: a redelivery may still come from these."""
    busy = {}
    for spec in CONSUMERS:
        info = await js.consumer_info(spec.stream, spec.durable)
        if info.num_pending or info.num_ack_pending:
            busy[spec.durable] = {"pending": info.num_pending, "unacked": info.num_ack_pending,
                                  "redelivered": info.num_redelivered}
    return busy


async def durables_idle(js: JetStreamContext) -> bool:
    return not await busy_durables(js)


async def caught_up(js: JetStreamContext, projector: Projector) -> bool:
    """The live projection's checkpoint in each stream is at its last message (deleted messages aside)."""
    store = projector.store
    namespace = await store.active_namespace()
    for stream in projector.spec.streams:
        checkpoint = await store.checkpoint(namespace, stream.name)
        if checkpoint >= (await js.stream_info(stream.name)).state.last_seq:
            continue
        try:
            await js.get_msg(stream.name, seq=checkpoint + 1, subject=">", next=True)
        except NotFoundError:
            continue  # only deleted messages (fired or cancelled schedules) after the checkpoint
        return False
    return True


async def compare_read_models(js: JetStreamContext, stack: EmbeddedStack, within_s: float = 120.0) -> list[Comparison]:
    """Wait for the live projection to reach the end of the log, then rebuild each model from 0 and compare."""
    endpoints = stack.endpoints
    settings = Settings(data_dir=stack.data_dir, nats_url=endpoints["nats_url"], valkey_url=endpoints["valkey_url"],
                        graph_uri=endpoints["graph_uri"])
    comparisons = []
    for projector in projectors(settings):
        try:
            try:
                await wait_until(lambda p=projector: caught_up(js, p), within_s, f"{projector.spec.name} caught up")
                is_caught_up = True
            except TimeoutError:
                is_caught_up = False
            live = await projector.store.content_hash(await projector.store.active_namespace())
            rebuilt = await rebuild(js, projector, grace_s=1.0)
            comparisons.append(Comparison(projector.spec.name, is_caught_up, live, rebuilt.content_hash,
                                          rebuilt.replaced_hash))
        finally:
            await projector.store.close()
    return comparisons


async def dead_letters_after(js: JetStreamContext, sequence: int) -> list:
    return [(m.metadata.sequence.stream, decode(m)) for m in await read_stream(js, catalog.MESSAGE_REJECTED.subject)
            if m.metadata.sequence.stream > sequence]
