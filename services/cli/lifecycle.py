"""`fleet deliberation cancel` and `retry`: checked against the read model, then asked of the collector."""

from __future__ import annotations

from contracts import catalog
from contracts.envelope import deterministic_id
from contracts.events import DeliberationCancelRequested, DeliberationRetryRequested
from contracts.queries import SHOW_DELIBERATION, DeliberationStatus, DeliberationView, ShowDeliberation
from services.cli.runner import CommandError, nats_connection
from services.collector.domain import attempt_id, next_attempt
from services.mesh.messages import Outgoing
from services.mesh.publishing import EventPublisher
from services.mesh.queries import ask


async def request_cancel(deliberation_id: str, reason: str, by: str) -> DeliberationView:
    """Ask the collector to stop a deliberation in progress; what the read model showed before."""
    async with nats_connection() as client:
        view = await ask(client, SHOW_DELIBERATION, ShowDeliberation(deliberation_id=deliberation_id))
        if view.status.finished:
            raise CommandError(f"deliberation {deliberation_id} has already ended ({view.status}); "
                               "there is nothing to cancel")
        if view.status == DeliberationStatus.PENDING:
            # The collector knows a deliberation only once it started; a cancel before that is retried and,
            # if the start is slow, dead-lettered.
            raise CommandError(f"deliberation {deliberation_id} has not started yet (PENDING); cancel it once it "
                               "is IN_PROGRESS")
        request = DeliberationCancelRequested(deliberation_id=deliberation_id, requested_by=by, reason=reason)
        # One cancel per deliberation: asking twice is the same request.
        event_id = deterministic_id("deliberation.cancel_requested", deliberation_id)
        await EventPublisher(client.jetstream(), producer=catalog.OPERATOR).publish(Outgoing(request, event_id))
    return view


async def request_retry(deliberation_id: str, reason: str, by: str) -> tuple[str, int]:
    """Ask the collector for a new attempt at an ended deliberation; the new attempt's id and number."""
    async with nats_connection() as client:
        view = await ask(client, SHOW_DELIBERATION, ShowDeliberation(deliberation_id=deliberation_id))
        if not view.status.finished:
            raise CommandError(f"deliberation {deliberation_id} is in progress ({view.status}); cancel it first "
                               f"with `fleet deliberation cancel {deliberation_id} --reason ...`")
        if view.retried_as:
            raise CommandError(f"deliberation {deliberation_id} was already retried as {view.retried_as}; "
                               "retry that one")
        attempt = next_attempt(deliberation_id, view.attempt, by, reason)
        request = DeliberationRetryRequested(deliberation_id=deliberation_id, requested_by=by, reason=reason)
        # One retry per attempt: the next retry is of the new attempt, under its own id.
        event_id = deterministic_id("deliberation.retry_requested", deliberation_id)
        await EventPublisher(client.jetstream(), producer=catalog.OPERATOR).publish(Outgoing(request, event_id))
    return attempt_id(attempt.first_id, attempt.number), attempt.number
