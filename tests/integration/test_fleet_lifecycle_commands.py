"""`fleet deliberation cancel` and `retry`, run as commands against a real nats-server: what the read model
shows decides what is refused in one line; what is asked is published for the collector."""

from __future__ import annotations

import contextlib

import pytest
from faststream.nats import NatsBroker

from contracts import catalog, queries
from contracts.events import Attempt
from contracts.queries import DeliberationStatus, DeliberationView
from services.collector.domain import attempt_id
from services.mesh.queries import NotFound, serve
from tests.integration.test_fleet_commands import one_error_line
from tests.support import decode, fleet, read_stream

pytestmark = pytest.mark.integration


def view(deliberation_id: str, status: DeliberationStatus, **fields) -> DeliberationView:
    return DeliberationView(deliberation_id=deliberation_id, story_id="s", plan_id="p", task_id="t", role="DEV",
                            status=status, **fields)


@contextlib.asynccontextmanager
async def deliberations(nats_url: str, unique: str):
    """deliberation.show answered as the read models would, for one deliberation in each situation."""
    second = attempt_id(f"done-{unique}", 2)
    views = {v.deliberation_id: v for v in (
        view(f"running-{unique}", DeliberationStatus.IN_PROGRESS, phase="critique", round=1),
        view(f"pending-{unique}", DeliberationStatus.PENDING),
        view(f"done-{unique}", DeliberationStatus.COMPLETED),
        view(f"retried-{unique}", DeliberationStatus.FAILED, retried_as=f"next-{unique}"),
        view(second, DeliberationStatus.TIMED_OUT, attempt=Attempt(
            first_id=f"done-{unique}", previous_id=f"done-{unique}", number=2, requested_by="bob", reason="slow")),
    )}

    async def show_deliberation(request):
        if request.deliberation_id not in views:
            raise NotFound(f"no deliberation {request.deliberation_id!r}")
        return views[request.deliberation_id]

    broker = NatsBroker(nats_url)
    serve(broker, queries.SHOW_DELIBERATION, show_deliberation, queue=f"test-{unique}")
    await broker.start()
    try:
        yield second
    finally:
        await broker.stop()


async def asked(js, subject: str, deliberation_id: str) -> list:
    return [decode(m) for m in await read_stream(js, subject) if decode(m).deliberation_id == deliberation_id]


async def test_a_cancel_is_asked_only_of_a_deliberation_in_progress(js, nats_url, tmp_path, unique):
    async with deliberations(nats_url, unique):
        unknown = await fleet(nats_url, tmp_path, "deliberation", "cancel", f"nope-{unique}", "--reason", "x")
        finished = await fleet(nats_url, tmp_path, "deliberation", "cancel", f"done-{unique}", "--reason", "x")
        pending = await fleet(nats_url, tmp_path, "deliberation", "cancel", f"pending-{unique}", "--reason", "x")
        cancelled = await fleet(nats_url, tmp_path, "deliberation", "cancel", f"running-{unique}",
                                "--reason", "wrong brief", "--by", "alice")

    assert unknown[0] == 1 and one_error_line(unknown[1]) == f"error: no deliberation 'nope-{unique}'"
    assert finished[0] == 1 and one_error_line(finished[1]) == (
        f"error: deliberation done-{unique} has already ended (COMPLETED); there is nothing to cancel")
    assert pending[0] == 1 and one_error_line(pending[1]) == (
        f"error: deliberation pending-{unique} has not started yet (PENDING); cancel it once it is IN_PROGRESS")
    assert cancelled[0] == 0 and f"cancel requested for running-{unique}" in cancelled[1], cancelled
    [request] = await asked(js, catalog.DELIBERATION_CANCEL_REQUESTED.subject, f"running-{unique}")
    assert (request.requested_by, request.reason) == ("alice", "wrong brief")
    assert await asked(js, catalog.DELIBERATION_CANCEL_REQUESTED.subject, f"done-{unique}") == []
    assert await asked(js, catalog.DELIBERATION_CANCEL_REQUESTED.subject, f"pending-{unique}") == []


async def test_a_retry_is_asked_only_of_an_ended_deliberation_not_yet_retried_and_names_the_new_attempt(
        js, nats_url, tmp_path, unique):
    async with deliberations(nats_url, unique) as second:
        running = await fleet(nats_url, tmp_path, "deliberation", "retry", f"running-{unique}", "--reason", "x")
        retried = await fleet(nats_url, tmp_path, "deliberation", "retry", f"retried-{unique}", "--reason", "x")
        first = await fleet(nats_url, tmp_path, "deliberation", "retry", f"done-{unique}", "--reason", "LLM down",
                            "--by", "bob")
        third = await fleet(nats_url, tmp_path, "deliberation", "retry", second, "--reason", "still slow")

    assert running[0] == 1 and one_error_line(running[1]).startswith(
        f"error: deliberation running-{unique} is in progress (IN_PROGRESS); cancel it first")
    assert retried[0] == 1 and one_error_line(retried[1]) == (
        f"error: deliberation retried-{unique} was already retried as next-{unique}; retry that one")
    assert first[0] == 0 and f"attempt 2 is {second}" in first[1], first
    assert third[0] == 0 and f"attempt 3 is {attempt_id(f'done-{unique}', 3)}" in third[1], third
    [request] = await asked(js, catalog.DELIBERATION_RETRY_REQUESTED.subject, f"done-{unique}")
    assert (request.requested_by, request.reason) == ("bob", "LLM down")
    assert await asked(js, catalog.DELIBERATION_RETRY_REQUESTED.subject, f"running-{unique}") == []
