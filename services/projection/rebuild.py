"""`fleet projections rebuild`: fold every stream from sequence 0 into a fresh namespace, then switch.

The mesh keeps running meanwhile. The live projector notices the switch and carries on from the new
namespace's checkpoints, which the rebuild left at the tail of each stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nats.js import JetStreamContext

from services.projection.projector import Progress, Projector
from streams.definitions import StreamSpec

# Long enough for the live projector to see the switch or the rebuild marker (it looks at least once a
# second) and finish the batch it had begun, before the namespace it wrote to is dropped.
SWITCH_GRACE_S = 3.0


@dataclass
class RebuildResult:
    projection: str
    namespace: str
    replaced: str | None
    content_hash: str
    # Reading and applying the log; the hashing and the switch's grace are not counted.
    seconds: float
    # The hash of the model it replaced, taken just before the switch: equal unless the log grew meanwhile.
    replaced_hash: str | None = None
    progress: list[Progress] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(p.applied for p in self.progress)

    @property
    def rate(self) -> float:
        return self.events / max(self.seconds, 1e-6)


async def rebuild(
    js: JetStreamContext,
    projector: Projector,
    *,
    on_progress: Callable[[Progress], None] = lambda progress: None,
    generation: str | None = None,
    grace_s: float = SWITCH_GRACE_S,
    in_place: bool | None = None,
) -> RebuildResult:
    """Rebuild into a fresh namespace and switch to it; in place where the store has one namespace only."""
    store = projector.store
    in_place = not store.supports_swap if in_place is None else in_place
    if not in_place and not store.supports_swap:
        raise ValueError(f"the {store.kind} store has one namespace only: it can only be rebuilt in place")
    generation = generation or f"g{time.time_ns() // 1_000_000}"
    if in_place:
        return await _rebuild_in_place(js, projector, on_progress, generation, grace_s)
    began = time.monotonic()
    current = await store.active_namespace()
    namespace = store.fresh_namespace(generation)
    await store.drop(namespace)
    await store.prepare(namespace)
    progress = await catch_up_all(js, projector, namespace, on_progress)
    # The log grew while we built: a last pass, then the switch; the live projector does the rest.
    for stream_progress, more in zip(progress, await catch_up_all(js, projector, namespace, on_progress), strict=True):
        stream_progress.applied += more.applied
        stream_progress.last_sequence = more.last_sequence
    # What the live model has already let expire goes here too, before the two are compared and switched.
    await store.expire(namespace, time.time())
    folded_s = time.monotonic() - began
    replaced_hash = await store.content_hash(current)
    replaced = await store.switch_to(namespace)
    if replaced and replaced != namespace:
        await asyncio.sleep(grace_s)
        await store.drop(replaced)
    return RebuildResult(
        projection=projector.spec.name, namespace=namespace, replaced=replaced,
        content_hash=await store.content_hash(namespace), seconds=folded_s, progress=progress,
        replaced_hash=replaced_hash,
    )


async def _rebuild_in_place(
    js: JetStreamContext, projector: Projector, on_progress: Callable[[Progress], None], generation: str,
    grace_s: float,
) -> RebuildResult:
    """Empty the active namespace and refill it, the live projector paused meanwhile.

    Readers see the model grow. Should the rebuild stop half-way, the live projector resumes from the
    checkpoints it left and finishes the job.
    """
    store = projector.store
    namespace = await store.active_namespace()
    await store.mark_rebuild_in_place(f"{generation} since {datetime.now(UTC).isoformat(timespec='seconds')}")
    try:
        # The live projector looks at the marker before each batch and each retry: give it time to stop.
        await asyncio.sleep(grace_s)
        began = time.monotonic()
        await store.drop(namespace)
        await store.prepare(namespace)
        progress = await catch_up_all(js, projector, namespace, on_progress)
        await store.expire(namespace, time.time())
        folded_s = time.monotonic() - began
    finally:
        await store.mark_rebuild_in_place(None)
    return RebuildResult(
        projection=projector.spec.name, namespace=namespace, replaced=None,
        content_hash=await store.content_hash(namespace), seconds=folded_s, progress=progress,
    )


async def catch_up_all(
    js: JetStreamContext, projector: Projector, namespace: str, on_progress: Callable[[Progress], None],
) -> list[Progress]:
    """Every stream at once, one reader each: each stream has its own checkpoint, and the models do not
    depend on how the streams interleave, so they need not wait for each other."""
    tasks = [asyncio.ensure_future(projector.catch_up(js, namespace, stream, on_progress))
             for stream in projector.spec.streams]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        # One failed (or the rebuild was cancelled): stop the others rather than leave them writing.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def replay_into(
    js: JetStreamContext, projector: Projector, stream: StreamSpec, from_sequence: int,
    on_progress: Callable[[Progress], None] = lambda progress: None, grace_s: float = SWITCH_GRACE_S,
) -> Progress:
    """Fold a stream into the active read model again from `from_sequence` on.

    Writes are idempotent, so this changes nothing a correct model holds and repairs one that missed
    or mangled those events. The live projector is paused meanwhile, as for a rebuild in place.
    """
    store = projector.store
    namespace = await store.active_namespace()
    marker = f"replay of {stream.name} from {from_sequence} since {datetime.now(UTC).isoformat(timespec='seconds')}"
    await store.mark_rebuild_in_place(marker)
    try:
        await asyncio.sleep(grace_s)
        await store.rewind(namespace, stream.name, max(from_sequence - 1, 0))
        return await projector.catch_up(js, namespace, stream, on_progress)
    finally:
        await store.mark_rebuild_in_place(None)
