"""Reading the log in order: the one reader behind the projector, the monitor, the stream tools and the demo.

Each reading is a JetStream ordered consumer: nothing durable is declared, nothing is acked, and
nats-py re-creates it from the last sequence it delivered whenever it sees a gap. A reader starts at
a sequence, a time, the first message or only what is stored from now on.

Taking messages one at a time through nats-py's `next_msg` costs a task and a timer each, more than
parsing them. The fast path takes what nats-py has already received straight from its queue, which
needs four of its private attributes; it is used only with the nats-py minor version it was written
against (`pyproject.toml` pins that minor) and otherwise falls back, saying so once, to `next_msg`.
tests/integration/test_log_reader.py reads the same log both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from nats.aio import client as nats_client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

log = logging.getLogger("fleet.log")

# The nats-py minor version whose subscription internals `_take_received` knows (as nats_patches does).
FAST_READ_VERSION = "2.16."
# How long the server keeps an ordered consumer whose reader went away without unsubscribing.
INACTIVE_THRESHOLD_S = 60.0


class _NamedForItsInbox(ConsumerConfig):
    """An ordered consumer's config that names each consumer nats-py creates for it after its delivery inbox.

    nats-py creates an unnamed consumer on `$JS.API.CONSUMER.CREATE.<stream>`, a subject that does not
    say what it reads; a named one is created on `...CREATE.<stream>.<name>.<filter>`, which lets a
    client's permissions keep it to the subjects it may read (streams/permissions.py). nats-py re-creates
    an ordered consumer after a gap from this same config with a fresh inbox, and `add_consumer` begins
    with `evolve`: naming it there gives every creation a name of its own, as the server needs (the
    start of an existing consumer cannot be changed). tests/integration/test_client_permissions.py re-creates one.
    """

    def evolve(self, **params) -> ConsumerConfig:
        config = super().evolve(**params)
        if config.deliver_subject:
            config.name = config.deliver_subject.rsplit(".", 1)[-1]
        return config


@dataclass(frozen=True)
class Start:
    """Where a reading begins: a stream sequence, a time, or (neither) only what is stored from now on."""

    sequence: int | None = None
    time: dt.datetime | None = None

    def config(self) -> ConsumerConfig:
        if self.sequence is not None:
            return _NamedForItsInbox(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                     opt_start_seq=max(self.sequence, 1))
        if self.time is not None:
            return _NamedForItsInbox(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=self.time.isoformat())
        return _NamedForItsInbox(deliver_policy=DeliverPolicy.NEW)


FIRST = Start(sequence=1)
NEW = Start()


async def after_last(js: JetStreamContext, stream: str) -> Start:
    """The start just after what the stream holds now: unlike NEW, it misses nothing stored before the
    reader's consumer exists."""
    return Start(sequence=(await js.stream_info(stream)).state.last_seq + 1)


@dataclass(frozen=True)
class Reading:
    """One stream to read, the subjects of it to read (a filter), and where to begin.

    One filter per reading: it is in the subject that creates the consumer, where a client's permissions
    can check it (streams/permissions.py); `follow` reads several.
    """

    stream: str
    subjects: str = ">"
    start: Start = FIRST


def fast_read_applies(version: str = nats_client.__version__) -> bool:
    return version.startswith(FAST_READ_VERSION)


_said_fast_read_does_not_apply = False


def _fast_read_wanted(fast: bool | None) -> bool:
    global _said_fast_read_does_not_apply
    if fast is False:
        return False
    if fast_read_applies():
        return True
    if not _said_fast_read_does_not_apply:
        _said_fast_read_does_not_apply = True
        log.warning("nats-py %s is not %sx, whose internals the log reader's fast path knows: reading one "
                    "message at a time (slower, the same result)", nats_client.__version__, FAST_READ_VERSION)
    return False


class LogReader:
    """An ordered reading of one stream. `caught_up` says whether the last batch reached the end."""

    def __init__(self, subscription, *, fast: bool) -> None:
        self._subscription = subscription
        self._fast = fast
        self.caught_up = False

    async def next_batch(self, limit: int, wait_s: float, *, ask_when_idle: bool = True) -> list[Msg]:
        """Up to `limit` messages: waits `wait_s` for the first, then for the rest the stream already holds.

        When nothing came, `caught_up` is what the server says, which costs a request; a reader that
        follows the stream for ever never asks (`ask_when_idle=False`).
        """
        batch: list[Msg] = []
        try:
            batch.append(await self._subscription.next_msg(timeout=wait_s))
            batch += await self._take_received(limit - 1)
            while len(batch) < limit and batch[-1].metadata.num_pending > 0:
                batch.append(await self._subscription.next_msg(timeout=wait_s))
                batch += await self._take_received(limit - len(batch))
        except TimeoutError:
            pass
        if batch:
            self.caught_up = batch[-1].metadata.num_pending == 0
        else:
            # Nothing came in time: caught up only if the server agrees nothing is left to deliver.
            self.caught_up = await self._nothing_pending() if ask_when_idle else False
        return batch

    async def _take_received(self, limit: int) -> list[Msg]:
        """Up to `limit` messages nats-py has already received, without `next_msg`'s task and timer each.

        The fast path: it takes them from nats-py's queue, and sends the flow-control reply that
        `next_msg` would send once the messages before it are taken. The server holds the stream until
        that reply comes; nats-py's own task would send it only at its next look, every 0.25 s.
        tests/integration/test_log_reader.py reads a stream long enough to need it, that task stopped.
        """
        if not self._fast:
            return []
        core = self._subscription._sub
        queue = core._pending_queue
        taken: list[Msg] = []
        while len(taken) < limit and not queue.empty():
            message = queue.get_nowait()
            queue.task_done()
            core._pending_size -= len(message.data)
            taken.append(message)
        flow = core._jsi
        if flow is not None and flow._fcr and flow.get_js_delivered() >= flow._fcd:
            reply, flow._fcr = flow._fcr, None
            await core._conn.publish(reply)
        return taken

    async def _nothing_pending(self) -> bool:
        try:
            info = await self._subscription.consumer_info()
        except Exception as exc:  # noqa: BLE001 - an ordered consumer may be re-creating itself just now
            log.debug("consumer info unavailable: %s", exc)
            return False
        return info.num_pending == 0 and (info.num_ack_pending or 0) == 0


@contextlib.asynccontextmanager
async def read_log(js: JetStreamContext, reading: Reading, *, fast: bool | None = None) -> AsyncIterator[LogReader]:
    """An ordered reader of one stream. `fast=False` forces the plain path; else the fast one if it applies."""
    subscription = await js.subscribe(
        reading.subjects, stream=reading.stream, ordered_consumer=True, config=reading.start.config(),
        inactive_threshold=INACTIVE_THRESHOLD_S,
    )
    try:
        yield LogReader(subscription, fast=_fast_read_wanted(fast))
    finally:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()


async def read_to_end(js: JetStreamContext, reading: Reading, *, batch: int = 500) -> AsyncIterator[Msg]:
    """What one stream holds now, in order, from the reading's start to its last message; then it stops."""
    info = await js.stream_info(reading.stream)
    if info.state.messages == 0:
        return
    # A filtered consumer that matches nothing only says so after a wait: ask the stream first.
    if reading.subjects != ">" and not (await js.stream_info(reading.stream, subjects_filter=reading.subjects)
                                        ).state.subjects:
        return
    async with read_log(js, reading) as reader:
        while not reader.caught_up:
            for message in await reader.next_batch(batch, wait_s=2.0):
                yield message


async def follow(js: JetStreamContext, readings: Sequence[Reading], *, batch: int = 500) -> AsyncIterator[Msg]:
    """Messages of several streams as they are stored, each stream in order; it never ends by itself.

    A reader that fails (its stream deleted, NATS gone for good) ends the whole reading with its error.
    """
    queue: asyncio.Queue[Msg | BaseException] = asyncio.Queue()

    async def read(reading: Reading) -> None:
        try:
            async with read_log(js, reading) as reader:
                while True:
                    for message in await reader.next_batch(batch, wait_s=5.0, ask_when_idle=False):
                        queue.put_nowait(message)
        except Exception as exc:  # noqa: BLE001 - handed to the reading's owner below
            queue.put_nowait(exc)

    tasks = [asyncio.create_task(read(reading), name=f"read {reading.stream}") for reading in readings]
    try:
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
