"""A projection's lease as one key of the PROJECTION_LEASES bucket (streams/definitions.py).

Create-if-absent takes it, compare-and-set on the revision renews it, and the bucket's time to live ends
the lease of a holder that stopped renewing. The revision of the create that took it is the holder's
fencing token: JetStream sequences only grow, so each new holder's token is higher than every earlier one.
"""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from streams.definitions import PROJECTION_LEASES

log = logging.getLogger("fleet.projection.lease")


class NatsLease:
    """One key of a lease bucket, taken, kept and handed back by one holder."""

    def __init__(self, bucket: KeyValue, key: str, holder: str, life_s: float) -> None:
        self.key = key
        self.holder = holder
        # How long the lease outlives its last renewal: the bucket's time to live.
        self.life_s = life_s
        self._bucket = bucket
        self._revision: int | None = None

    @classmethod
    async def open(cls, js: JetStreamContext, key: str, holder: str) -> NatsLease:
        """The lease `key` in PROJECTION_LEASES, whose life is the bucket's time to live."""
        try:
            bucket = await js.key_value(PROJECTION_LEASES.bucket)
        except BucketNotFoundError:
            raise RuntimeError(f"bucket {PROJECTION_LEASES.bucket!r} does not exist; run `fleet streams apply` "
                               "first (services never declare buckets)") from None
        life_s = (await bucket.status()).ttl
        if not life_s:
            raise RuntimeError(f"bucket {PROJECTION_LEASES.bucket!r} has no time to live: a lease would never end")
        return cls(bucket, key, holder, life_s)

    async def acquire(self) -> int | None:
        """The fencing token if this holder now holds the lease; None while another holder's is live."""
        try:
            self._revision = await self._bucket.create(self.key, self.holder.encode())
        except KeyWrongLastSequenceError:
            return None
        return self._revision

    async def renew(self) -> bool:
        """Extend the lease by its life; False when it is no longer this holder's (it expired, another took it)."""
        if self._revision is None:
            return False
        try:
            self._revision = await self._bucket.update(self.key, self.holder.encode(), last=self._revision)
        except KeyWrongLastSequenceError:
            self._revision = None
            return False
        return True

    async def release(self) -> None:
        """Hand the lease back, so a standby takes it at once; only if it is still this holder's."""
        if self._revision is None:
            return
        revision, self._revision = self._revision, None
        try:
            await self._bucket.delete(self.key, last=revision)
        except Exception as exc:  # noqa: BLE001 - a lease not handed back ends by itself, within its life
            log.warning("lease %s not handed back (%s); it ends within %.0fs", self.key, exc, self.life_s)
