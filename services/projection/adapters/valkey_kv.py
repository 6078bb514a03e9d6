"""The key-value read model on Valkey (or any Redis-compatible server): one key prefix per namespace."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec
import valkey.asyncio as valkey

from services.projection.kv_model import AddToIndex, AddToSet, CountOnce, KvWrite, SetFields
from services.projection.stores import FENCE, Fenced, NamespacePointer, PointedNamespaces, canonical_hash

FIRST_GENERATION = "g1"
CHECKPOINT = "checkpoint"
# One batch, checkpoint and all, in one script: atomic like MULTI/EXEC, and skipped whole when the
# checkpoint is already there. KEYS[1]: the checkpoint; KEYS[2]: the namespace's fence; the other keys are
# the keys written. ARGV[1]: the sequence; ARGV[2]: the writes as JSON (see `_payload`), every value a
# string, so nothing is converted; ARGV[3]: the writer's lease token, or '' for no fence check; ARGV[4]: the
# retention in milliseconds, or '' to keep everything. Returns -1 (FENCED) when a newer lease holder has
# written here, 0 when already applied, 1 when applied.
#
# A dated key expires the retention after its latest date, whatever order its writes come in (a later
# date only ever moves it on); an event already past the retention writes a key that is gone at once,
# which is what a rebuild of old events should leave, and a fact past the retention is not counted (its
# marker may have gone with its deliberation). An aged index drops members dated before the retention,
# by the server's clock.
APPLY_BATCH = """
local checkpoint, fence, sequence, token = KEYS[1], KEYS[2], ARGV[1], ARGV[3]
if token ~= '' and tonumber(redis.call('GET', fence) or '0') > tonumber(token) then return -1 end
if tonumber(redis.call('GET', checkpoint) or '0') >= tonumber(sequence) then return 0 end
local batch = cjson.decode(ARGV[2])
local chunk = 512
local function each_chunk(command, key, items)
  for first = 1, #items, chunk do
    redis.call(command, key, unpack(items, first, math.min(first + chunk - 1, #items)))
  end
end
for _, row in ipairs(batch.fields) do each_chunk('HSET', KEYS[row[1]], row[2]) end
for _, row in ipairs(batch.indexes) do
  each_chunk('ZADD', KEYS[row[1]], row[3])
  if row[2] ~= '' then redis.call('ZREMRANGEBYRANK', KEYS[row[1]], 0, -1 - tonumber(row[2])) end
end
for _, row in ipairs(batch.sets) do each_chunk('SADD', KEYS[row[1]], row[2]) end
local keep_ms = tonumber(ARGV[4])
local now_ms = nil
if keep_ms then
  local now = redis.call('TIME')
  now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end
for _, row in ipairs(batch.counts) do
  local dated = tonumber(row[5])
  local expired = keep_ms and dated and dated + keep_ms <= now_ms
  if not expired and redis.call('HSETNX', KEYS[row[2]], row[3], '1') == 1 then
    local amounts = row[4]
    for i = 1, #amounts, 2 do redis.call('HINCRBY', KEYS[row[1]], amounts[i], amounts[i + 1]) end
  end
end
if keep_ms then
  for _, row in ipairs(batch.expiries) do
    local key, until_ms = KEYS[row[1]], tonumber(row[2]) + keep_ms
    local current = redis.call('PEXPIRETIME', key)
    if current == -1 or (current >= 0 and current < until_ms) then redis.call('PEXPIREAT', key, until_ms) end
  end
  if #batch.aged > 0 then
    local oldest = string.format('(%.3f', (now_ms - keep_ms) / 1000)
    for _, ref in ipairs(batch.aged) do redis.call('ZREMRANGEBYSCORE', KEYS[ref], '-inf', oldest) end
  end
end
redis.call('SET', checkpoint, sequence)
if token ~= '' then redis.call('SET', fence, token) end
return 1
"""
# A new lease holder's token: refused (-1) below a newer one, recorded otherwise.
RAISE_FENCE = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > tonumber(ARGV[1]) then return -1 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""
FENCED = -1


class ValkeyStore(PointedNamespaces):
    kind = "kv"
    supports_swap = True

    def __init__(self, url: str, base: str = "fleet", retention_s: float | None = None) -> None:
        """`retention_s`: how long a dated key outlives its latest write (docs/read-models.md); None keeps all."""
        self._client = valkey.from_url(url, decode_responses=True)
        self._base = base
        self._keep_ms = "" if retention_s is None else str(round(retention_s * 1000))
        self._pointer = NamespacePointer(self._client, key_prefix=f"{base}:kv",
                                         first_namespace=self.fresh_namespace(FIRST_GENERATION))

    def fresh_namespace(self, generation: str) -> str:
        return f"{self._base}:kv:{generation}"

    async def prepare(self, namespace: str) -> None:
        """Nothing to declare: keys come into being with their first write."""

    async def checkpoint(self, namespace: str, stream: str) -> int:
        return int(await self._client.get(f"{namespace}:{CHECKPOINT}:{stream}") or 0)

    async def apply(
        self, namespace: str, stream: str, sequence: int, writes: Sequence[KvWrite], fence: int | None = None,
    ) -> bool:
        keys, payload = _payload(namespace, coalesce(writes))
        applied = await self._client.eval(APPLY_BATCH, len(keys) + 2, f"{namespace}:{CHECKPOINT}:{stream}",
                                          self._fence_key(namespace), *keys, sequence, payload,
                                          "" if fence is None else fence, self._keep_ms)
        if applied == FENCED:
            raise Fenced(f"{namespace} is fenced above token {fence}")
        return bool(applied)

    async def raise_fence(self, namespace: str, token: int) -> None:
        if await self._client.eval(RAISE_FENCE, 1, self._fence_key(namespace), token) == FENCED:
            raise Fenced(f"{namespace} is fenced above token {token}")

    def _fence_key(self, namespace: str) -> str:
        # Under the checkpoints' prefix, so content hashes leave it out.
        return f"{namespace}:{CHECKPOINT}:{FENCE}"

    async def rewind(self, namespace: str, stream: str, sequence: int) -> None:
        await self._client.set(f"{namespace}:{CHECKPOINT}:{stream}", sequence)

    async def drop(self, namespace: str) -> None:
        batch = []
        async for key in self._client.scan_iter(match=f"{namespace}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await self._client.unlink(*batch)
                batch = []
        if batch:
            await self._client.unlink(*batch)

    async def expire(self, namespace: str, now: float) -> int:
        """Nothing to do: the server deletes a key at its expiry (set with each batch)."""
        return 0

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
    """A batch's writes merged by key.

    Applying them gives what applying the writes one by one gives: later fields override earlier ones,
    a member added twice keeps its later score, trimming a capped index once at the end keeps the same
    members as trimming it after each add, and counts run in order, each fact once. Each key is written
    by one kind of write only (the model's keys say which), so the order between kinds does not matter.
    A key keeps its latest date, as it would after the writes one by one.
    """

    fields: dict[str, dict[str, str]] = field(default_factory=dict)
    indexes: dict[str, dict[str, float]] = field(default_factory=dict)
    caps: dict[str, int] = field(default_factory=dict)
    sets: dict[str, dict[str, None]] = field(default_factory=dict)
    counts: list[CountOnce] = field(default_factory=list)
    expiries: dict[str, float] = field(default_factory=dict)
    aged: dict[str, None] = field(default_factory=dict)

    def date(self, key: str, at: float | None) -> None:
        if at is not None:
            self.expiries[key] = max(at, self.expiries.get(key, at))


def coalesce(writes: Sequence[KvWrite]) -> Coalesced:
    batch = Coalesced()
    for write in writes:
        if isinstance(write, CountOnce):
            batch.date(write.marker, write.at)
        if isinstance(write, AddToIndex) and write.aged:
            batch.aged[write.key] = None
        batch.date(write.key, write.at)
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


def _payload(namespace: str, batch: Coalesced) -> tuple[list[str], bytes]:
    """The keys a batch writes, and its writes as one JSON document naming each key by its place in KEYS.

    One argument, encoded in C, instead of a command and its arguments per key packed by valkey-py:
    packing was the largest part of a KV write. Scores and amounts go as strings, as valkey-py would
    send them, so the server parses the same numbers.
    """
    keys: dict[str, int] = {}

    def ref(key: str) -> int:
        # KEYS[1] is the checkpoint, KEYS[2] the fence, and Lua counts from 1.
        return keys.setdefault(f"{namespace}:{key}", len(keys) + 3)

    document = {
        "fields": [[ref(key), [part for pair in fields.items() for part in pair]]
                   for key, fields in batch.fields.items()],
        "indexes": [
            [ref(key), str(batch.caps.get(key, "")),
             [part for member, score in members.items() for part in (repr(score), member)]]
            for key, members in batch.indexes.items()
        ],
        "sets": [[ref(key), list(members)] for key, members in batch.sets.items()],
        "counts": [
            [ref(count.key), ref(count.marker), count.fact,
             [part for name, amount in sorted(count.amounts.items()) for part in (name, str(amount))],
             "" if count.at is None else str(round(count.at * 1000))]
            for count in batch.counts
        ],
        # Dates in whole milliseconds, as PEXPIREAT takes them.
        "expiries": [[ref(key), str(round(at * 1000))] for key, at in batch.expiries.items()],
        "aged": [ref(key) for key in batch.aged],
    }
    return list(keys), msgspec.json.encode(document)


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
