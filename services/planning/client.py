"""The client of an upstream planner: approve a plan, then follow what becomes of it, in the log's order.

`approve_plan` publishes the approval in the envelope; `follow_plan` yields the answers about it: accepted (or
rejected, and it ends), each deliberation's result as it is stored, then the plan's conclusion, where it ends.
It needs only a JetStream context, so it runs as the `upstream` NATS user (docs/clients.md); the demo, the
evaluation, the benchmarks, `fleet plan approve` and the tests use it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from contracts import catalog
from contracts.errors import ContractViolation
from contracts.events import (
    DeliberationCompleted,
    DeliberationFailed,
    PlanAccepted,
    PlanApproved,
    PlanConcluded,
    PlanRejected,
)
from services.mesh.decoding import decode_incoming, stored_position
from services.mesh.log_reader import Reading, Start, after_last, follow
from services.mesh.messages import Outgoing
from services.mesh.publishing import EventPublisher
from services.planning.domain import deliberation_id, planned_tasks
from streams.definitions import ORCHESTRATION, PLANNING

log = logging.getLogger("fleet.client")

RESULT_SUBJECTS = (catalog.DELIBERATION_COMPLETED.subject, catalog.DELIBERATION_FAILED.subject)
# Everything ingress and the collector tell upstream about a plan, all in ORCHESTRATION: one start position
# (read before publishing) serves the reader of every subject.
ANSWER_SUBJECTS = tuple(spec.subject for spec in catalog.EVENTS if catalog.UPSTREAM in spec.consumers)

type PlanUpdate = PlanAccepted | PlanRejected | DeliberationCompleted | DeliberationFailed | PlanConcluded


def deliberation_ids(approval: PlanApproved) -> list[str]:
    """The deliberation of each task and role, in the approval's order, named as ingress names them."""
    return [deliberation_id(approval.story_id, approval.plan_id, task.task_id, role)
            for task in planned_tasks(approval) for role in approval.roles]


def approval_event_id(approval: PlanApproved) -> str:
    """One per plan, so publishing the same approval again is de-duplicated."""
    return f"{approval.plan_id}-approved"


@dataclass(frozen=True)
class Approval:
    """An approval stored in the log: what its answers are matched by, and where in the log they begin."""

    approval: PlanApproved
    approval_id: str
    deliberation_ids: list[str]
    answers_from: Start
    # The log already held this approval (the same event id within the de-duplication window).
    duplicate: bool = False


async def approve_plan(
    js: JetStreamContext, approval: PlanApproved, *, by: str, event_id: str | None = None,
) -> Approval:
    """Publish the approval in the envelope and wait for JetStream's ack.

    `by` is the producer in the envelope (the upstream service's name); `event_id` defaults to one per plan.
    """
    answers_from = await after_last(js, ORCHESTRATION.name)
    outgoing = Outgoing(approval, event_id=event_id or approval_event_id(approval))
    ack = await EventPublisher(js, producer=by).publish(outgoing)
    if ack.duplicate:
        # Answered when it was first stored, at most one de-duplication window ago.
        window = dt.timedelta(seconds=PLANNING.duplicate_window_s + 60)
        answers_from = Start(time=dt.datetime.now(dt.UTC) - window)
    return Approval(approval, outgoing.event_id, deliberation_ids(approval), answers_from, bool(ack.duplicate))


async def follow_plan(js: JetStreamContext, approval: Approval) -> AsyncIterator[PlanUpdate]:
    """What becomes of an approval: PlanAccepted or PlanRejected (the end), each deliberation's
    DeliberationCompleted or DeliberationFailed (a retried one's new attempt too), then PlanConcluded (the end).

    It waits as long as the plan runs; bound it with `asyncio.timeout`. Close it (`aclosing`) if you stop early.
    """
    # One ordered consumer per subject, each filter in the subject that creates it, where the `upstream` and
    # `subscriber` users' permissions check it; AnswerOrder puts their answers back in the plan's order.
    readings = [Reading(ORCHESTRATION.name, subject, approval.answers_from) for subject in ANSWER_SUBJECTS]
    order = AnswerOrder(approval)
    async with contextlib.aclosing(follow(js, readings)) as messages:
        async for message in messages:
            try:
                answer = _decoded(message)
            except ContractViolation as exc:
                # Not an answer the mesh gave (it publishes only what its contracts say): someone else's
                # message on the subject, which the read models dead-letter. It answers nothing of ours.
                log.warning("skipped %s at ORCHESTRATION seq %s: %s", message.subject,
                            stored_position(message)[0], exc)
                continue
            for update in order.take(answer):
                yield update
            if order.ended:
                return


class AnswerOrder:
    """The answers about one approval in the order the plan lived them, whichever reader brought each first:
    accepted before any result, every result before the conclusion that counts it, each result once. Pure."""

    def __init__(self, approval: Approval) -> None:
        self._approval = approval
        self._accepted = False
        self._seen: set[str] = set()
        self._held_results: list[DeliberationCompleted | DeliberationFailed] = []
        self._held_conclusion: PlanConcluded | None = None
        self.ended = False

    def take(self, update: PlanUpdate) -> list[PlanUpdate]:
        """What may be given now, in order; nothing after the end."""
        if self.ended or not self._about_this(update):
            return []
        match update:
            case PlanRejected():
                self.ended = True
                return [update]
            case PlanAccepted():
                if self._accepted:
                    return []
                self._accepted = True
                ready: list[PlanUpdate] = [update, *self._held_results]
                self._seen |= {result.deliberation_id for result in self._held_results}
                self._held_results = []
                return ready + self._conclusion_if_due()
            case PlanConcluded():
                self._held_conclusion = self._held_conclusion or update
                return self._conclusion_if_due()
        if update.deliberation_id in self._seen | {held.deliberation_id for held in self._held_results}:
            return []  # one result per deliberation: a copy read again (a reader re-created after a gap)
        if not self._accepted:
            self._held_results.append(update)
            return []
        self._seen.add(update.deliberation_id)
        return [update, *self._conclusion_if_due()]

    def _about_this(self, update: PlanUpdate) -> bool:
        # An answer to an approval is matched by its event id: another approval of the same plan, read back on
        # the duplicate path, is not this one's.
        if isinstance(update, PlanRejected | PlanAccepted):
            return update.approval_id == self._approval.approval_id
        plan = self._approval.approval
        return (update.story_id, update.plan_id) == (plan.story_id, plan.plan_id)

    def _conclusion_if_due(self) -> list[PlanUpdate]:
        conclusion = self._held_conclusion
        if conclusion is None or not self._accepted:
            return []
        if any(outcome.deliberation_id not in self._seen for outcome in conclusion.outcomes):
            return []
        self.ended = True
        return [conclusion]


def _decoded(message: Msg) -> PlanUpdate:
    sequence, stored_at = stored_position(message)
    return decode_incoming(message.subject, message.headers or {}, message.data, received_at=stored_at,
                           stream_sequence=sequence, deliveries=1).payload


class Results:
    """Result events as they are stored, through a core NATS subscription (no consumer, no ack).

    A core subscription sees each message the moment the server takes it into the stream, which is
    the earliest any reader could; subscribe before publishing the approval, or a result may be missed.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[tuple[float, str]]] = {}
        self._early: dict[str, tuple[float, str]] = {}
        self._subscriptions = []

    async def subscribe(self, client: Client) -> None:
        for subject in RESULT_SUBJECTS:
            self._subscriptions.append(await client.subscribe(subject, cb=self._arrived))

    async def close(self) -> None:
        for subscription in self._subscriptions:
            await subscription.unsubscribe()

    async def _arrived(self, message: Msg) -> None:
        at = time.perf_counter()
        event = catalog.spec_for_subject(message.subject).decoder.decode(message.data)
        outcome = "completed" if message.subject == catalog.DELIBERATION_COMPLETED.subject else "failed"
        key = event.aggregate_id()
        future = self._waiting.pop(key, None)
        if future is None:
            self._early[key] = (at, outcome)
        elif not future.done():
            future.set_result((at, outcome))

    def expect(self, deliberation: str) -> asyncio.Future[tuple[float, str]]:
        """A future of (perf_counter time of arrival, "completed" or "failed")."""
        future = asyncio.get_running_loop().create_future()
        if deliberation in self._early:
            future.set_result(self._early.pop(deliberation))
        else:
            self._waiting[deliberation] = future
        return future

    async def wait(self, deliberation: str, timeout_s: float) -> str | None:
        """"completed" or "failed", or None if no result came within `timeout_s`."""
        with contextlib.suppress(TimeoutError):
            return (await asyncio.wait_for(self.expect(deliberation), timeout_s))[1]
        self._waiting.pop(deliberation, None)
        return None

