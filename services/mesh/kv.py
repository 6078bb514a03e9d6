"""Typed JetStream KV state with compare-and-set, for services whose decisions must survive restarts."""

from __future__ import annotations

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from streams.definitions import BucketSpec


class ConcurrentUpdate(RuntimeError):
    """Someone else wrote the key since we read it: read again and retry."""


class VersionedStore[T: msgspec.Struct]:
    def __init__(self, js: JetStreamContext, bucket: BucketSpec, kind: type[T]) -> None:
        self._js = js
        self._bucket = bucket
        self._decoder = msgspec.json.Decoder(kind)
        self._kv = None

    async def _bind(self):
        if self._kv is None:
            # Binds to the bucket streams/ declared; key_value() never creates one.
            self._kv = await self._js.key_value(self._bucket.bucket)
        return self._kv

    async def load(self, key: str) -> tuple[T | None, int | None]:
        """The value and its revision, or (None, None) when the key was never written."""
        kv = await self._bind()
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None, None
        return self._decoder.decode(entry.value), entry.revision

    async def save(self, key: str, value: T, revision: int | None) -> int:
        """Write only if nobody wrote since `revision` (None: only if the key is new)."""
        kv = await self._bind()
        data = msgspec.json.encode(value)
        try:
            if revision is None:
                return await kv.create(key, data)
            return await kv.update(key, data, last=revision)
        except KeyWrongLastSequenceError as exc:
            raise ConcurrentUpdate(f"{self._bucket.bucket}/{key} changed since revision {revision}") from exc

    async def create_or_get(self, key: str, value: T) -> T:
        """First writer wins: store `value` if the key is new, else return what is stored."""
        while True:
            stored, revision = await self.load(key)
            if stored is not None:
                return stored
            try:
                await self.save(key, value, revision)
                return value
            except ConcurrentUpdate:
                continue
