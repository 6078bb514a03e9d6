"""Consuming a durable: decode the envelope, route by subject, publish the handler's events, ack.

The policy, the same for every service:
- input that breaks its contract, or that no route takes, is dead-lettered at once with the reason, then acked;
- any other failure is retried with backoff; after `max_deliveries` it is dead-lettered with
  the last error, then acked. Nothing is acked and dropped, nothing is nak'd forever.

A route may name what follows publishing (`after_published`), such as removing an outbox that has
served; it runs before the ack, and its failure is retried like the handler's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Mapping
from typing import Any

import anyio
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.message import NatsMessage

from contracts.envelope import CORRELATION_ID, MSG_ID
from contracts.errors import ContractViolation, Rejected
from services.mesh.deadletters import DeadLetter, dead_letter_event
from services.mesh.decoding import decode_incoming
from services.mesh.logs import correlated
from services.mesh.messages import AfterPublished, Cause, Clock, GiveUp, Handler, Incoming, Refusal, utc_now
from services.mesh.metrics import HANDLER_SECONDS, MESSAGES
from services.mesh.publishing import EventPublisher
from streams.definitions import ConsumerSpec
from streams.subjects import subject_matches

log = logging.getLogger("fleet.consumer")

# How long a stopping service tries to hand back a message its handler did not finish.
HAND_BACK_WITHIN_S = 2.0

# What became of a delivery, as the fleet_messages metric counts it.
HANDLED, FAILED, DEAD_LETTERED = "handled", "failed", "dead_lettered"


def retry_delay_s(deliveries: int) -> float:
    """Exponential backoff between redeliveries, capped at 30 s."""
    return float(min(2 ** max(deliveries - 1, 0), 30))


class DurableConsumer:
    """Binds one durable from streams/ to one handler per subject.

    A filter with wildcards (`planning.>`) passes subjects no route takes: each is dead-lettered once,
    with the subjects the durable does take, so nothing else needs to reject them.
    `give_up` answers, per subject, for any message dead-lettered there, decoded or not.
    """

    def __init__(
        self,
        spec: ConsumerSpec,
        routes: Mapping[str, Handler],
        publisher: EventPublisher,
        clock: Clock = utc_now,
        give_up: Mapping[str, GiveUp] | None = None,
        after_published: Mapping[str, AfterPublished] | None = None,
    ) -> None:
        missing = {subject for subject in spec.filter_subjects if not _has_wildcard(subject)} - set(routes)
        if missing:
            raise ValueError(f"{spec.durable}: no handler for {sorted(missing)}")
        unreachable = [s for s in routes if not any(subject_matches(f, s) for f in spec.filter_subjects)]
        if unreachable:
            raise ValueError(f"{spec.durable}: its filter passes no message to {sorted(unreachable)}")
        self.spec = spec
        self._routes = dict(routes)
        self._give_up = dict(give_up or {})
        self._after_published = dict(after_published or {})
        self._publisher = publisher
        self._clock = clock
        self._max_event_age_s: float | None = None

    def register(
        self, broker: NatsBroker, *, max_workers: int = 1, inbox_prefix: str = "_INBOX",
        max_event_age_s: float | None = None,
    ) -> None:
        """Subscribe on the broker, bound to the existing durable (services never declare).

        `max_event_age_s`: events older than this are dead-lettered unhandled (see `too_old`).
        """
        self._max_event_age_s = max_event_age_s
        subscriber = broker.subscriber(
            self.spec.filter_subjects[0],
            stream=JStream(self.spec.stream, declare=False),
            durable=self.spec.durable,
            # A short fetch timeout loses a race in nats-py on a busy loop (a bare asyncio.TimeoutError
            # that FastStream 0.7.8 logs as an error before restarting its fetch loop); 5 s makes it rare.
            pull_sub=PullSub(batch_size=max(max_workers, 1), timeout=5.0),
            ack_policy=AckPolicy.MANUAL,
            max_workers=max_workers,
            # Pulled messages arrive on an inbox: under the user's own prefix, the only ones it may read.
            inbox_prefix=f"{inbox_prefix}.".encode(),
            # The handler takes the message itself and decodes its body: our own decoding rejects what
            # FastStream's JSON/text decoding would choke on before the handler ran, leaving the message
            # redelivered forever.
            decoder=the_message_itself,
        )
        subscriber(self.on_message)

    async def on_message(self, message: Any) -> None:
        """`message` is the NatsMessage (see `the_message_itself`), typed Any so FastStream neither
        validates it as data nor insists on its context annotation."""
        raw = message.raw_message
        headers = raw.headers or {}
        began = time.perf_counter()
        # Every line logged while this message is handled carries its correlation id.
        with correlated(headers.get(CORRELATION_ID) or headers.get(MSG_ID) or ""):
            outcome = await self._handle(message)
        MESSAGES.labels(self.spec.service, self.spec.durable, raw.subject, outcome).inc()
        HANDLER_SECONDS.labels(self.spec.service, self.spec.durable, raw.subject).observe(time.perf_counter() - began)

    async def _handle(self, message: NatsMessage) -> str:
        """Handle one delivery; returns what became of it: handled, failed (to be retried) or dead_lettered."""
        raw = message.raw_message
        meta = raw.metadata
        headers = dict(raw.headers or {})
        deliveries = meta.num_delivered or 1
        letter = DeadLetter(
            service=self.spec.service,
            consumer=self.spec.durable,
            stream=self.spec.stream,
            stream_sequence=meta.sequence.stream,
            deliveries=deliveries,
            subject=raw.subject,
            headers=headers,
            body=raw.data,
        )
        if raw.subject not in self._routes:
            return await self._reject(message, letter, self._unrouted(raw.subject), None)
        try:
            incoming = decode_incoming(
                raw.subject,
                headers,
                raw.data,
                received_at=meta.timestamp or self._clock(),
                stream_sequence=meta.sequence.stream,
                deliveries=deliveries,
            )
        except ContractViolation as exc:
            return await self._reject(message, letter, str(exc), None, exc.reasons)
        except Exception as exc:  # noqa: BLE001 - whatever cannot be decoded is rejected, never retried
            return await self._reject(message, letter, f"undecodable message: {type(exc).__name__}: {exc}", None)
        if (stale := too_old(incoming, meta.timestamp, self._clock(), self._max_event_age_s)) is not None:
            return await self._reject(message, letter, stale, incoming)
        if deliveries > self.spec.max_deliveries:
            # Earlier deliveries ended without an ack or nak: the service died, or lost NATS while
            # recording the outcome. Either way the server redelivered, and the limit is reached.
            reason = (
                f"gave up after {deliveries - 1} deliveries that ended without an acknowledgement "
                "(the service died or lost its NATS connection while handling it)"
            )
            return await self._reject(message, letter, reason, incoming)
        try:
            async with self._keep_alive(message):
                async with asyncio.timeout(self.spec.handler_timeout_s):
                    outgoing = await self._routes[raw.subject](incoming)
                for event in outgoing:
                    await self._publisher.publish(event, cause=Cause.of(incoming.envelope))
                if outgoing and (after := self._after_published.get(raw.subject)) is not None:
                    await after(incoming)
        except asyncio.CancelledError:
            # The service is stopping (a rollout's SIGTERM) and the broker's grace ran out before this handler
            # ended, e.g. mid-LLM call: hand the message back now, so a replica left takes it at once instead
            # of after the ack wait (150 s for a turn). Shielded, as the stop cancels every later await too.
            with anyio.move_on_after(HAND_BACK_WITHIN_S, shield=True), contextlib.suppress(Exception):
                await message.nack()
            raise
        except Rejected as exc:
            return await self._reject(message, letter, str(exc), incoming, exc.reasons)
        except Exception as exc:  # noqa: BLE001 - every other failure is retried, then dead-lettered
            error = _describe(exc, self.spec.handler_timeout_s)
            if deliveries >= self.spec.max_deliveries:
                return await self._reject(
                    message, letter, f"failed {deliveries} times; last error: {error}", incoming)
            delay = retry_delay_s(deliveries)
            log.warning(
                "%s seq=%s delivery %s failed, retrying in %.0fs: %s",
                self.spec.durable, meta.sequence.stream, deliveries, delay, error,
            )
            await message.nack(delay=delay)
            return FAILED
        await message.ack()
        return HANDLED

    async def _reject(
        self, message: NatsMessage, letter: DeadLetter, reason: str, incoming: Incoming | None,
        reasons: tuple[str, ...] = (),
    ) -> str:
        """Publish what giving up implies, then the dead letter, then ack: in that order, so nothing is lost."""
        log.error(
            "%s seq=%s dead-lettered: %s",
            self.spec.durable, letter.stream_sequence, reason,
        )
        outgoing, cause = dead_letter_event(letter, reason)
        if (give_up := self._give_up.get(letter.subject)) is not None:
            refusal = Refusal(letter.subject, letter.headers, letter.body, reasons or (reason,), incoming)
            # An undecodable message has only its headers to link the answer to it, as its dead letter has.
            answer_cause = Cause.of(incoming.envelope) if incoming is not None else cause
            for event in give_up(refusal):
                await self._publisher.publish(event, cause=answer_cause)
        await self._publisher.publish(outgoing, cause=cause)
        await message.ack()
        return DEAD_LETTERED

    def _unrouted(self, subject: str) -> str:
        return (f"{self.spec.durable} takes no message on subject {subject!r}; "
                f"it takes {', '.join(sorted(self._routes))}")

    @contextlib.asynccontextmanager
    async def _keep_alive(self, message: NatsMessage):
        """Tell the server a long handler is still working, so it does not redeliver meanwhile."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(self.spec.ack_wait_s / 3)
                try:
                    await message.in_progress()
                except Exception as exc:  # noqa: BLE001 - a missed beat must not fail the handler
                    log.warning("%s: in_progress() failed: %s", self.spec.durable, exc)

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def too_old(incoming: Incoming, stored_at: dt.datetime | None, now: dt.datetime, max_age_s: float | None) -> str | None:
    """Why an event is too old to handle, or None.

    The records that make handling an event idempotent (a dispatch claim, a deliberation's or a plan's
    record) expire; an event older than the shortest of their lives (a redrive, a replay, a republish
    of an old message) could meet a record that has gone and start again what already ran. Its age runs
    from the earlier of when it was stored and when its producer says it happened, so neither a fresh
    copy of an old event nor a producer's clock that runs fast hides it.
    """
    if not max_age_s:
        return None
    began = min(t for t in (incoming.envelope.occurred_at, stored_at) if t is not None)
    age_s = (now - began).total_seconds()
    if age_s <= max_age_s:
        return None
    return (f"too old to handle: the event is {_duration(age_s)} old, and the records that keep its handling "
            f"idempotent last {_duration(max_age_s)} (streams/capacity.py); publish it anew (a new event id "
            "and time) if it should still take effect")


def _duration(seconds: float) -> str:
    return f"{seconds / 86_400:.1f} days" if seconds >= 86_400 else f"{seconds:.1f} s"


def _has_wildcard(subject: str) -> bool:
    return any(token in ("*", ">") for token in subject.split("."))


def _describe(exc: Exception, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"handler did not finish within {timeout_s:g}s"
    return f"{type(exc).__name__}: {exc}"


async def the_message_itself(message: NatsMessage) -> NatsMessage:
    # Handed over as the handler's argument, not injected (`Context("message")`), and a coroutine:
    # FastStream runs a plain-function decoder, and resolves an injected context, in a worker thread,
    # two thread hand-offs for every message, which cost the collector and the agents a fifth of their CPU.
    return message
