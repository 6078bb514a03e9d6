"""The key-value read model on Valkey (or any Redis-compatible server): one key prefix per namespace."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import valkey.asyncio as valkey
from valkey.exceptions import WatchError

from services.projection.kv_model import AddToIndex, AddToSet, CountOnce, KvWrite, SetFields
from services.projection.stores import canonical_hash

FIRST_GENERATION = "g1"
CHECKPOINT = "checkpoint"
# Every CountOnce of a batch in one call. KEYS: per count, its counters hash then its set of facts already
# counted. ARGV: per count, the fact, the number of field/amount pairs, then the pairs.
COUNT_ONCE = """
local arg = 1
for k = 1, #KEYS, 2 do
  local fact, count = ARGV[arg], tonumber(ARGV[arg + 1])
  arg = arg + 2
  if redis.call('SADD', KEYS[k + 1], fact) == 1 then
    for i = arg, arg + 2 * count - 1, 2 do redis.call('HINCRBY', KEYS[k], ARGV[i], ARGV[i + 1]) end
  end
  arg = arg + 2 * count
end
return 0
"""


class ValkeyStore:
    kind = "kv"
    supports_swap = True

    def __init__(self, url: str, base: str = "fleet") -> None:
        self._client = valkey.from_url(url, decode_responses=True)
        self._base = base
        self._pointer = f"{base}:kv:active"
        self._rebuild_marker = f"{base}:kv:rebuilding"

    def fresh_namespace(self, generation: str) -> str:
        return f"{self._base}:kv:{generation}"

    async def active_namespace(self) -> str:
        await self._client.set(self._pointer, self.fresh_namespace(FIRST_GENERATION), nx=True)
        return await self._client.get(self._pointer)

    async def prepare(self, namespace: str) -> None:
        """Nothing to declare: keys come into being with their first write."""

    async def checkpoint(self, namespace: str, stream: str) -> int:
        return int(await self._client.get(f"{namespace}:{CHECKPOINT}:{stream}") or 0)

    async def apply(self, namespace: str, stream: str, sequence: int, writes: Sequence[KvWrite]) -> bool:
        checkpoint = f"{namespace}:{CHECKPOINT}:{stream}"
        while True:
            async with self._client.pipeline(transaction=True) as pipe:
                try:
                    # WATCH + MULTI/EXEC: the writes and the checkpoint commit together, and not at all if
                    # the checkpoint changed in between; then it is read again.
                    await pipe.watch(checkpoint)
                    if int(await pipe.get(checkpoint) or 0) >= sequence:
                        return False
                    pipe.multi()
                    _queue(pipe, namespace, coalesce(writes))
                    pipe.set(checkpoint, sequence)
                    await pipe.execute()
                    return True
                except WatchError:
                    continue

    async def rewind(self, namespace: str, stream: str, sequence: int) -> None:
        await self._client.set(f"{namespace}:{CHECKPOINT}:{stream}", sequence)

    async def rebuild_in_place(self) -> str | None:
        return await self._client.get(self._rebuild_marker)

    async def mark_rebuild_in_place(self, rebuild: str | None) -> None:
        if rebuild is None:
            await self._client.delete(self._rebuild_marker)
        else:
            await self._client.set(self._rebuild_marker, rebuild)

    async def switch_to(self, namespace: str) -> str | None:
        return await self._client.set(self._pointer, namespace, get=True)

    async def drop(self, namespace: str) -> None:
        batch = []
        async for key in self._client.scan_iter(match=f"{namespace}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await self._client.unlink(*batch)
                batch = []
        if batch:
            await self._client.unlink(*batch)

    async def content_hash(self, namespace: str) -> str:
        return canonical_hash(await self.content(namespace))

    async def content(self, namespace: str) -> list[dict]:
        keys = [key async for key in self._client.scan_iter(match=f"{namespace}:*", count=1000)
                if not key[len(namespace) + 1:].startswith(f"{CHECKPOINT}:")]
        items = []
        for start in range(0, len(keys), 1000):
            chunk = keys[start:start + 1000]
            async with self._client.pipeline(transaction=False) as pipe:
                for key in chunk:
                    pipe.type(key)
                kinds = await pipe.execute()
                for key, kind in zip(chunk, kinds, strict=True):
                    _read_value(pipe, key, kind)
                values = await pipe.execute()
            for key, kind, value in zip(chunk, kinds, values, strict=True):
                value = sorted(value) if kind == "set" else value
                items.append({"key": key[len(namespace) + 1:], "type": kind, "value": value})
        return items

    @property
    def client(self) -> valkey.Valkey:
        return self._client

    async def close(self) -> None:
        await self._client.aclose()


@dataclass
class Coalesced:
    """A batch's writes as few commands: one per key, and one script call for every count.

    Applying them gives what applying the writes one by one gives: later fields override earlier ones,
    a member added twice keeps its later score, trimming a capped index once at the end keeps the same
    members as trimming it after each add, and counts run in order, each fact once. Each key is written
    by one kind of write only (the model's keys say which), so the order between kinds does not matter.
    """

    fields: dict[str, dict[str, str]] = field(default_factory=dict)
    indexes: dict[str, dict[str, float]] = field(default_factory=dict)
    caps: dict[str, int] = field(default_factory=dict)
    sets: dict[str, dict[str, None]] = field(default_factory=dict)
    counts: list[CountOnce] = field(default_factory=list)


def coalesce(writes: Sequence[KvWrite]) -> Coalesced:
    batch = Coalesced()
    for write in writes:
        match write:
            case SetFields(key=key, fields=fields):
                if fields:
                    batch.fields.setdefault(key, {}).update(fields)
            case CountOnce():
                batch.counts.append(write)
            case AddToIndex(key=key, member=member, score=score, capped=capped):
                batch.indexes.setdefault(key, {})[member] = score
                if capped is not None:
                    batch.caps[key] = min(capped, batch.caps.get(key, capped))
            case AddToSet(key=key, member=member):
                batch.sets.setdefault(key, {})[member] = None
    return batch


def _queue(pipe, namespace: str, batch: Coalesced) -> None:
    for key, fields in batch.fields.items():
        pipe.hset(f"{namespace}:{key}", mapping=fields)
    for key, members in batch.indexes.items():
        pipe.zadd(f"{namespace}:{key}", members)
        if (capped := batch.caps.get(key)) is not None:
            pipe.zremrangebyrank(f"{namespace}:{key}", 0, -capped - 1)
    for key, members in batch.sets.items():
        pipe.sadd(f"{namespace}:{key}", *members)
    if batch.counts:
        keys: list[str] = []
        args: list[str | int] = []
        for count in batch.counts:
            key = f"{namespace}:{count.key}"
            keys += [key, f"{key}:counted"]
            args += [count.fact, len(count.amounts)]
            args += [part for name, amount in sorted(count.amounts.items()) for part in (name, amount)]
        pipe.eval(COUNT_ONCE, len(keys), *keys, *args)


def _read_value(pipe, key: str, kind: str) -> None:
    match kind:
        case "hash":
            pipe.hgetall(key)
        case "zset":
            pipe.zrange(key, 0, -1, withscores=True)
        case "set":
            pipe.smembers(key)
        case _:
            pipe.get(key)
