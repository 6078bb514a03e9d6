"""What an operator sees of a running service: Prometheus metrics, health, JSON logs, one trace per chain."""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest

from contracts import catalog
from contracts.envelope import MSG_ID, TRACEPARENT, traceparent_for
from contracts.events import PlanApproved, PlannedTask, Role
from services.mesh.logs import CorrelationFilter
from services.planning.app import SERVICE, wire
from tests.support import body_of, decode, log_lines, running_service, sample, wait_for, wait_until_idle

pytestmark = pytest.mark.integration


def approval(unique: str) -> PlanApproved:
    return PlanApproved(story_id=f"s-{unique}", plan_id=f"p-{unique}", approved_by="alice", roles=[Role.DEV],
                        tasks=[PlannedTask(task_id="t-1", title="Model orders")])


@pytest.fixture
def json_lines():
    """The JSON lines the fleet's loggers write while the test runs, as `fleet service` configures them."""
    with log_lines(logging.getLogger("fleet"), "planning", CorrelationFilter()) as lines:
        yield lines


async def test_a_service_counts_what_it_handled_and_dead_lettered_and_says_it_is_healthy(js, nats_url, unique):
    async with running_service(SERVICE, nats_url, wire) as service:
        await js.publish(catalog.PLAN_APPROVED.subject, body_of(approval(unique)), headers={MSG_ID: f"ok-{unique}"})
        await js.publish(catalog.PLAN_APPROVED.subject, b'{"story_id": 7}', headers={MSG_ID: f"bad-{unique}"})
        await wait_until_idle(js, "PLANNING", ["planning-plan-approvals"])
        base = f"http://127.0.0.1:{service.http_port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/metrics") as response:
                assert response.status == 200
                metrics = await response.text()
            async with http.get(f"{base}/healthz") as response:
                health = (response.status, await response.json())

    consumer = {"service": "planning", "consumer": "planning-plan-approvals", "subject": catalog.PLAN_APPROVED.subject}
    assert sample(metrics, "fleet_messages_total", **consumer, outcome="handled") >= 1
    assert sample(metrics, "fleet_messages_total", **consumer, outcome="dead_lettered") >= 1
    assert sample(metrics, "fleet_handler_seconds_count", **consumer) >= 2
    assert "faststream_received_messages_total" in metrics
    assert health == (200, {"service": "planning", "nats": "connected"})


async def test_every_line_logged_while_handling_a_message_carries_its_correlation_id(
    js, nats_url, unique, json_lines
):
    async with running_service(SERVICE, nats_url, wire):
        await js.publish(catalog.PLAN_APPROVED.subject, b'{"story_id": 7}',
                         headers={MSG_ID: f"bad-{unique}", "Fleet-Correlation-Id": f"chain-{unique}"})
        await wait_until_idle(js, "PLANNING", ["planning-plan-approvals"])

    records = [json.loads(line) for line in json_lines]
    [rejected] = [r for r in records if "dead-lettered" in r["message"] and r["correlation_id"] == f"chain-{unique}"]
    assert rejected["service"] == "planning" and rejected["level"] == "ERROR"
    assert {"time", "logger", "message", "correlation_id"} <= rejected.keys()


async def test_an_approval_without_a_traceparent_starts_one_trace_that_its_requests_continue(js, nats_url, unique):
    async with running_service(SERVICE, nats_url, wire):
        await js.publish(catalog.PLAN_APPROVED.subject, body_of(approval(unique)), headers={MSG_ID: f"a-{unique}"})
        [request] = await wait_for(js, catalog.DELIBERATION_REQUESTED.subject,
                                   lambda m: decode(m).deliberation.plan_id == f"p-{unique}", 1)

    trace_of = lambda traceparent: traceparent.split("-")[1]  # noqa: E731
    assert trace_of(request.headers[TRACEPARENT]) == trace_of(traceparent_for(f"a-{unique}"))
