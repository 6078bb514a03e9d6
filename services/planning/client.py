"""Approving a plan as an upstream planner does, and waiting for its deliberations' results: the one way the
demo, the evaluation, the benchmarks and the tests do both."""

from __future__ import annotations

import asyncio
import contextlib
import time

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from contracts import catalog
from contracts.events import PlanApproved
from services.mesh.messages import Outgoing
from services.mesh.publishing import EventPublisher
from services.planning.domain import deliberation_id

RESULT_SUBJECTS = (catalog.DELIBERATION_COMPLETED.subject, catalog.DELIBERATION_FAILED.subject)


def deliberation_ids(approval: PlanApproved) -> list[str]:
    """The deliberation of each task and role, in the approval's order, named as ingress names them."""
    return [deliberation_id(approval.story_id, approval.plan_id, task.task_id, role)
            for task in approval.tasks for role in approval.roles]


def approval_event_id(approval: PlanApproved) -> str:
    """One per plan, so publishing the same approval again is de-duplicated."""
    return f"{approval.plan_id}-approved"


async def approve_plan(
    js: JetStreamContext, approval: PlanApproved, *, by: str, event_id: str | None = None,
) -> list[str]:
    """Publish the approval in the envelope and wait for JetStream's ack; returns the deliberations it starts."""
    outgoing = Outgoing(approval, event_id=event_id or approval_event_id(approval))
    await EventPublisher(js, producer=by).publish(outgoing)
    return deliberation_ids(approval)


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

