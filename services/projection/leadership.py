"""Which replica writes a projection: the holder of its lease. The others stand by and answer queries.

A holder renews its lease every third of its life. It stops writing when a renewal is refused (the lease
expired or another replica took it), when no renewal succeeded for a whole life (NATS out of reach: the
lease may have gone), or when a store refuses a batch for its fence (a newer holder has written). It
then stands by like any other replica and tries for the lease again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import nats.errors

from services.mesh.metrics import PROJECTION_LEASE_HELD
from services.projection.stores import Fenced

log = logging.getLogger("fleet.projection.lease")

# What a holder does with its lease: follow its streams with the token as fence, until cancelled or Fenced.
type Work = Callable[[int], Awaitable[None]]

# Trouble reaching NATS: a standby tries again, a holder tries again within the lease's life.
_OUT_OF_REACH = (nats.errors.Error, OSError)


class Lease(Protocol):
    key: str
    holder: str
    life_s: float

    async def acquire(self) -> int | None: ...

    async def renew(self) -> bool: ...

    async def release(self) -> None: ...


class Leadership:
    """Stands by until the lease is free, writes while it holds it, and stands by again once it is lost."""

    def __init__(self, projection: str, lease: Lease, work: Work) -> None:
        self.projection = projection
        self.lease = lease
        self._work = work
        self.renew_every_s = lease.life_s / 3
        # A standby asks this often: a lease handed back on a graceful stop is taken within it.
        self.poll_s = min(1.0, self.renew_every_s)
        # The fencing token while this replica holds the lease.
        self.token: int | None = None
        PROJECTION_LEASE_HELD.labels(projection).set(0)

    async def run(self) -> None:
        """For the life of the process. Cancelled, it stops writing but keeps the lease: see `release`."""
        while True:
            token = await self._acquire()
            if token is None:
                await asyncio.sleep(self.poll_s)
                continue
            await self._lead(token)

    async def release(self) -> None:
        """Hand the lease back (a graceful stop, once `run` is cancelled), so a standby takes over at once."""
        await self.lease.release()

    async def _acquire(self) -> int | None:
        try:
            return await self.lease.acquire()
        except _OUT_OF_REACH as exc:
            log.warning("%s lease %s: NATS out of reach, standing by: %r", self.projection, self.lease.key, exc)
            return None

    async def _lead(self, token: int) -> None:
        self.token = token
        PROJECTION_LEASE_HELD.labels(self.projection).set(1)
        log.info("%s projection: %s holds lease %s (token %s) and writes", self.projection, self.lease.holder,
                 self.lease.key, token)
        loop = asyncio.get_running_loop()
        work = asyncio.create_task(self._work(token), name=f"{self.projection}-lead")
        try:
            renewed_at = loop.time()
            while True:
                await asyncio.wait({work}, timeout=self.renew_every_s)
                if work.done():
                    work.result()  # Fenced, or an error that ends the process
                    raise RuntimeError(f"{self.projection} followers ended")
                renewed = await self._renew()
                if renewed:
                    renewed_at = loop.time()
                elif renewed is False or loop.time() - renewed_at >= self.lease.life_s:
                    log.warning("%s projection: lease %s lost (%s); standing by", self.projection, self.lease.key,
                                "taken or expired" if renewed is False else "not renewed within its life")
                    return
        except Fenced as exc:
            log.warning("%s projection: a newer lease holder has written (%s); standing by", self.projection, exc)
        finally:
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            self.token = None
            PROJECTION_LEASE_HELD.labels(self.projection).set(0)

    async def _renew(self) -> bool | None:
        """True: renewed; False: the lease is gone; None: NATS did not answer, try again."""
        try:
            return await self.lease.renew()
        except _OUT_OF_REACH as exc:
            log.warning("%s lease %s: renewal failed, trying again: %r", self.projection, self.lease.key, exc)
            return None
