"""What the projector needs of a read-model store, whatever the engine behind it.

A store keeps several namespaces (a graph, a key prefix) and a pointer to the active one. The live
projector writes to the active one; a rebuild fills a fresh one, then moves the pointer, so readers
never see a half-built model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Protocol

# The checkpoint that holds a namespace's fence: the highest lease token that has written to it. Named
# like a checkpoint (no stream has this name), so content hashes leave it out as they leave checkpoints.
FENCE = "_fence"


class Fenced(RuntimeError):
    """A write refused because a newer lease holder has written: this replica no longer holds the lease."""


class ReadModelStore[W](Protocol):
    kind: str  # "graph" or "kv"
    # False: one namespace only, so a rebuild empties and refills it in place, the live projector paused.
    supports_swap: bool

    async def active_namespace(self) -> str:
        """The namespace readers and the live projector use; the first call creates one."""

    def fresh_namespace(self, generation: str) -> str:
        """A namespace for a rebuild, not yet in use."""

    async def prepare(self, namespace: str) -> None:
        """Create indexes and constraints (idempotent)."""

    async def checkpoint(self, namespace: str, stream: str) -> int:
        """The last stream sequence applied to `namespace`, 0 when none."""

    async def apply(
        self, namespace: str, stream: str, sequence: int, writes: Sequence[W], fence: int | None = None,
    ) -> bool:
        """Apply the writes and store `sequence` as the stream's checkpoint, in one atomic step.

        Does nothing and returns False when the checkpoint is already at or past `sequence`. With a `fence`
        (the writer's lease token), the same step refuses the batch when the namespace's fence is higher,
        and raises Fenced; None (a rebuild into its own namespace) checks no fence.
        """

    async def raise_fence(self, namespace: str, token: int) -> None:
        """Record a new lease holder's token in `namespace`, refusing older ones; Fenced if a newer one is there."""

    async def rewind(self, namespace: str, stream: str, sequence: int) -> None:
        """Move the checkpoint back, so the events after `sequence` are applied again (writes are idempotent)."""

    async def rebuild_in_place(self) -> str | None:
        """The rebuild refilling the active namespace in place, if one holds it: the live projector waits."""

    async def mark_rebuild_in_place(self, rebuild: str | None) -> None:
        """Take the active namespace for a rebuild in place (a name), or hand it back (None)."""

    async def switch_to(self, namespace: str) -> str | None:
        """Point readers at `namespace`; returns the namespace it replaced."""

    async def drop(self, namespace: str) -> None: ...

    async def expire(self, namespace: str, now: float) -> int:
        """Delete what expired before `now` (epoch seconds), where the engine does not itself; returns how much."""

    async def content_hash(self, namespace: str) -> str:
        """A hash of everything but the checkpoints: equal hashes, equal read models."""

    async def close(self) -> None: ...


class NamespacePointer:
    """The active namespace, and the rebuild holding it in place, as two keys of a Redis-compatible server
    (Valkey, or the server FalkorDB runs in), beside the namespaces themselves."""

    def __init__(self, client, *, key_prefix: str, first_namespace: str) -> None:
        self._client = client
        self._active = f"{key_prefix}:active"
        self._rebuilding = f"{key_prefix}:rebuilding"
        self._first = first_namespace

    async def active(self) -> str:
        """The first call names the first namespace; every later call returns what the pointer says."""
        await self._client.set(self._active, self._first, nx=True)
        return await self._client.get(self._active)

    async def switch_to(self, namespace: str) -> str | None:
        return await self._client.set(self._active, namespace, get=True)

    async def rebuild_in_place(self) -> str | None:
        return await self._client.get(self._rebuilding)

    async def mark_rebuild_in_place(self, rebuild: str | None) -> None:
        if rebuild is None:
            await self._client.delete(self._rebuilding)
        else:
            await self._client.set(self._rebuilding, rebuild)


class PointedNamespaces:
    """The ReadModelStore methods about which namespace is active, for a store that keeps a NamespacePointer."""

    _pointer: NamespacePointer

    async def active_namespace(self) -> str:
        return await self._pointer.active()

    async def rebuild_in_place(self) -> str | None:
        return await self._pointer.rebuild_in_place()

    async def mark_rebuild_in_place(self, rebuild: str | None) -> None:
        await self._pointer.mark_rebuild_in_place(rebuild)

    async def switch_to(self, namespace: str) -> str | None:
        return await self._pointer.switch_to(namespace)


def canonical_hash(items: Sequence[object]) -> str:
    """SHA-256 of the sorted, canonical JSON of the items."""
    lines = sorted(json.dumps(item, sort_keys=True, default=str) for item in items)
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()
