"""Folding streams into a read model: read from the checkpoint, apply in batches, store the checkpoint.

The same code serves the live projection service and `fleet projections rebuild`; they differ only
in where they write (the active namespace or a fresh one) and in when they stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from services.mesh.deadletters import DeadLetter
from services.mesh.log_reader import Reading, Start, read_log
from services.mesh.metrics import PROJECTED, PROJECTION_POSITION
from services.projection.fold import Folded, ToWrites, fold, letter_for
from services.projection.stores import Fenced, ReadModelStore
from streams.definitions import ProjectionSpec, StreamSpec

log = logging.getLogger("fleet.projection")

# Called for a stored message that breaks its contract: the live service dead-letters it.
type Reject = Callable[[DeadLetter, str], Awaitable[None]]
# Asked before a retried write: is the namespace still the one to write to?
type Guard = Callable[[], Awaitable[bool]]

# A write that fails for another reason than an unreachable store is tried this often, then the
# event is dead-lettered and the projection moves past it.
MAX_ATTEMPTS = 5
# How often the lease holder deletes what the retention has passed, where the store does not do it itself.
EXPIRY_SWEEP_S = 60.0


@dataclass
class Progress:
    stream: str
    applied: int = 0
    last_sequence: int = 0
    target: int = 0
    rejected: int = 0


class Projector[W]:
    """Applies one stream to one store, batch by batch, each batch with its checkpoint."""

    def __init__(
        self, spec: ProjectionSpec, store: ReadModelStore[W], to_writes: ToWrites[W], reject: Reject | None = None,
        retry_delay_s: float = 1.0,
    ) -> None:
        self.spec = spec
        self.store = store
        self._to_writes = to_writes
        self._reject = reject
        self._retry_delay_s = retry_delay_s

    async def apply(
        self, namespace: str, stream: str, batch: Sequence[Msg], progress: Progress, *, still_ours: Guard | None = None,
        fence: int | None = None,
    ) -> None:
        """Apply a batch with its checkpoint. `still_ours` is asked before each retry: a follower whose
        namespace was switched or taken for a rebuild stops instead of writing into it. With a `fence` (the
        lease token), a store that a newer leader has written to refuses the batch: Fenced is raised."""
        await self._commit(namespace, stream, batch, fold(batch, self._to_writes, self.spec.name), progress, still_ours,
                           fence)

    async def _commit(
        self, namespace: str, stream: str, batch: Sequence[Msg], folded: Folded[W], progress: Progress,
        still_ours: Guard | None, fence: int | None = None,
    ) -> None:
        """Write a folded batch with its checkpoint: dead-letter what the fold rejected, and what the store refuses."""
        for letter, reason in folded.rejected:
            log.error("%s seq=%s cannot be projected: %s", stream, letter.stream_sequence, reason)
            await self._dead_letter(letter, reason)
        try:
            await self._write(namespace, stream, folded.last_sequence, folded.writes, still_ours, fence)
        except ProjectionWriteFailed as exc:
            if len(batch) == 1:
                await self._skip_unwritable(namespace, stream, batch[0], exc, still_ours, fence)
            else:
                # Find the event that cannot be written: apply the batch one event at a time.
                for message in batch:
                    await self._apply_one(namespace, stream, message, still_ours, fence)
        progress.applied += folded.applied_events
        progress.rejected += len(folded.rejected)
        progress.last_sequence = folded.last_sequence
        PROJECTED.labels(self.spec.name, stream).inc(folded.applied_events)
        PROJECTION_POSITION.labels(self.spec.name, stream).set(folded.last_sequence)

    async def _apply_one(
        self, namespace: str, stream: str, message: Msg, still_ours: Guard | None, fence: int | None,
    ) -> None:
        folded = fold([message], self._to_writes, self.spec.name)
        try:
            await self._write(namespace, stream, folded.last_sequence, folded.writes, still_ours, fence)
        except ProjectionWriteFailed as exc:
            await self._skip_unwritable(namespace, stream, message, exc, still_ours, fence)

    async def _skip_unwritable(
        self, namespace: str, stream: str, message: Msg, exc: ProjectionWriteFailed, still_ours: Guard | None,
        fence: int | None,
    ) -> None:
        """Dead-letter the one event the store refuses, then move the checkpoint past it."""
        letter = letter_for(message, self.spec.name)
        log.error("%s seq=%s dead-lettered: %s", stream, letter.stream_sequence, exc)
        await self._dead_letter(letter, str(exc))
        await self._write(namespace, stream, letter.stream_sequence, [], still_ours, fence)

    async def _dead_letter(self, letter: DeadLetter, reason: str) -> None:
        if self._reject is not None:
            await self._reject(letter, reason)

    async def _write(
        self, namespace: str, stream: str, sequence: int, writes: list[W], still_ours: Guard | None,
        fence: int | None,
    ) -> None:
        """Retry while the store is unreachable (an outage blocks, it never skips); give up on other errors.

        A fenced write is neither: another replica leads now, so Fenced goes up to the leadership loop.
        """
        attempts = 0
        while True:
            try:
                await self.store.apply(namespace, stream, sequence, writes, fence)
                return
            except Fenced:
                raise
            except Exception as exc:  # noqa: BLE001 - classified below
                unreachable = _is_unreachable(exc)
                attempts += 0 if unreachable else 1
                if attempts >= MAX_ATTEMPTS:
                    raise ProjectionWriteFailed(f"{type(exc).__name__}: {exc}") from exc
                delay = min(self._retry_delay_s * 2 ** min(attempts, 5), 30.0)
                log.warning("%s %s write up to seq %s failed (%s), retrying in %.1fs: %s", self.spec.name,
                            stream, sequence, "store unreachable" if unreachable else f"attempt {attempts}",
                            delay, exc)
                await asyncio.sleep(delay)
                if still_ours is not None and not await still_ours():
                    raise NamespaceMoved(namespace) from exc

    async def catch_up(
        self, js: JetStreamContext, namespace: str, stream: StreamSpec, on_progress: Callable[[Progress], None],
    ) -> Progress:
        """Apply everything stored so far, then return (a rebuild).

        Batch N is written while batch N+1 is read and folded, so the store and this process work at
        the same time; the writes still land one batch after the other, each with its checkpoint.
        """
        progress = Progress(stream=stream.name, target=(await js.stream_info(stream.name)).state.last_seq)
        progress.last_sequence = await self.store.checkpoint(namespace, stream.name)
        if progress.last_sequence >= progress.target:
            return progress
        writing: asyncio.Task | None = None
        read_through = progress.last_sequence
        try:
            async with read_log(js, Reading(stream.name, start=Start(sequence=read_through + 1))) as reader:
                while not reader.caught_up and read_through < progress.target:
                    batch = await reader.next_batch(self.spec.catch_up_batch_size, wait_s=2.0)
                    if not batch:
                        continue
                    folded = fold(batch, self._to_writes, self.spec.name)
                    read_through = folded.last_sequence
                    if writing is not None:
                        await writing
                        on_progress(progress)
                    writing = asyncio.create_task(self._commit(namespace, stream.name, batch, folded, progress, None))
            if writing is not None:
                await writing
                on_progress(progress)
        finally:
            if writing is not None and not writing.done():
                writing.cancel()
        return progress

    async def sweep_expired(self, every_s: float = EXPIRY_SWEEP_S) -> None:
        """Delete from the active namespace what the retention has passed, now and every `every_s`, for good.

        A sweep that fails is tried again at the next: what it deletes is late, never wrong."""
        while True:
            try:
                namespace = await self.store.active_namespace()
                deleted = await self.store.expire(namespace, time.time())
                if deleted:
                    log.info("%s projection deleted %s expired entries from %s", self.spec.name, deleted, namespace)
            except Exception as exc:  # noqa: BLE001 - the store's outage shows in the followers; retry next time
                log.warning("%s projection: sweeping expired entries failed, trying again in %.0fs: %r",
                            self.spec.name, every_s, exc)
            await asyncio.sleep(every_s)

    async def follow(self, js: JetStreamContext, stream: StreamSpec, fence: int | None = None) -> None:
        """Apply the stream as it grows, forever; move to the new namespace when a rebuild switches.

        A store that goes away (a restart of Valkey or the graph) is waited for; the follower then
        starts again from the checkpoint the store holds. With a `fence` (the lease token), every write
        is checked against the store's fence, and Fenced ends the follower once another replica leads.
        """
        delay = self._retry_delay_s
        while True:
            try:
                await self._follow_namespace(js, stream, fence)
            except Exception as exc:
                if not _is_unreachable(exc):
                    raise
                log.warning("%s %s: store unreachable, retrying in %.0fs: %s", self.spec.name, stream.name, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def follow_streams(self, js: JetStreamContext, fence: int | None = None) -> None:
        """Follow every stream of the projection at once, until one follower fails (Fenced among others)."""
        followers = [asyncio.create_task(self.follow(js, stream, fence), name=f"{self.spec.name}-{stream.name}")
                     for stream in self.spec.streams]
        try:
            done, _ = await asyncio.wait(followers, return_when=asyncio.FIRST_EXCEPTION)
            for follower in done:
                follower.result()
        finally:
            for follower in followers:
                follower.cancel()
            await asyncio.gather(*followers, return_exceptions=True)

    async def _follow_namespace(self, js: JetStreamContext, stream: StreamSpec, fence: int | None) -> None:
        while True:
            await self._wait_out_rebuild_in_place(stream)
            namespace = await self.store.active_namespace()
            await self.store.prepare(namespace)
            if fence is not None:
                # Before reading on, so a stale leader's next batch here is refused.
                await self.store.raise_fence(namespace, fence)
            progress = Progress(stream=stream.name, last_sequence=await self.store.checkpoint(namespace, stream.name))
            log.info("%s projection follows %s from seq %s into %s", self.spec.name, stream.name,
                     progress.last_sequence + 1, namespace)

            async def still_ours(namespace: str = namespace) -> bool:
                return (await self.store.active_namespace() == namespace
                        and await self.store.rebuild_in_place() is None)

            async with read_log(js, Reading(stream.name, start=Start(sequence=progress.last_sequence + 1))) as reader:
                while True:
                    batch = await reader.next_batch(self.spec.batch_size, wait_s=1.0, ask_when_idle=False)
                    if not await still_ours():
                        log.info("%s projection: %s was switched or taken for a rebuild", self.spec.name, namespace)
                        break
                    if not batch:
                        continue
                    try:
                        await self.apply(namespace, stream.name, batch, progress, still_ours=still_ours, fence=fence)
                    except NamespaceMoved:
                        break

    async def _wait_out_rebuild_in_place(self, stream: StreamSpec) -> None:
        waited_s = 0.0
        while (rebuild := await self.store.rebuild_in_place()) is not None:
            if waited_s % 30 == 0:
                log.warning("%s %s paused: rebuild %s is refilling the model in place. If no `fleet projections "
                            "rebuild %s` is running any more, run it again to finish.", self.spec.name,
                            stream.name, rebuild, self.store.kind)
            await asyncio.sleep(1.0)
            waited_s += 1.0


class ProjectionWriteFailed(RuntimeError):
    pass


class NamespaceMoved(RuntimeError):
    """The follower's namespace was switched or taken for a rebuild while it retried a write."""


def _is_unreachable(exc: Exception) -> bool:
    """Connection trouble, whichever client raised it: wait for the store, never skip an event."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _UNREACHABLE:
        return True
    # Servers that are up but cannot take writes for now: out of memory, failing to persist, a replica.
    return "ResponseError" in names and str(exc).split(" ", 1)[0] in _UNREACHABLE_REPLIES


_UNREACHABLE = {
    "ConnectionError", "TimeoutError", "OSError", "BusyLoadingError", "ReadOnlyError", "OutOfMemoryError",
    "TryAgainError", "MasterDownError", "ClusterDownError",
    # Neo4j: a leader switch, a lock timeout, a database still starting.
    "ServiceUnavailable", "SessionExpired", "TransientError",
}
_UNREACHABLE_REPLIES = {"OOM", "MISCONF", "LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"}
