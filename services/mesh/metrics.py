"""Prometheus metrics and the health endpoint every service process serves.

One registry per process. The durable consumer counts what it handles; the agents and the collector
add LLM and deliberation figures. FastStream's own middleware adds broker-level message metrics.
`/healthz` answers 200 only while the NATS connection is up, so a supervisor restarts a service
that lost it for good.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger("fleet.metrics")

REGISTRY = CollectorRegistry(auto_describe=True)

# Messages taken from a durable, by what became of each delivery.
MESSAGES = Counter(
    "fleet_messages", "Deliveries handled by durable consumers, by outcome: handled, failed (to be retried), "
    "dead_lettered", ["service", "consumer", "subject", "outcome"], registry=REGISTRY,
)
HANDLER_SECONDS = Histogram(
    "fleet_handler_seconds", "Time a handler took, publishing its events included", ["service", "consumer", "subject"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120), registry=REGISTRY,
)
LLM_SECONDS = Histogram(
    "fleet_llm_request_seconds", "LLM chat completions, by role, model and outcome (ok or the error class)",
    ["role", "model", "outcome"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120), registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "fleet_llm_tokens", "Tokens the LLM read (prompt) and wrote (completion)", ["role", "model", "kind"],
    registry=REGISTRY,
)
STRUCTURED_ANSWERS = Counter(
    "fleet_structured_answers", "JSON answers of judge and select turns, each attempt, by whether it matched its "
    "schema (valid, invalid)", ["phase", "outcome"], registry=REGISTRY,
)
SCORED_BY = Counter(
    "fleet_deliberations_scored_by", "Completed deliberations by what ranked their candidates: judge, or checks "
    "when the judge scored no qualified proposal", ["role", "scored_by"], registry=REGISTRY,
)
PHASE_SECONDS = Histogram(
    "fleet_deliberation_phase_seconds", "How long each deliberation phase lasted, from asking to the last answer",
    ["role", "phase"], buckets=(0.1, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 600), registry=REGISTRY,
)
PROJECTED = Counter(
    "fleet_projected_events", "Events folded into a read model, by projection and stream", ["projection", "stream"],
    registry=REGISTRY,
)
PROJECTION_POSITION = Gauge(
    "fleet_projection_position", "The last stream sequence a read model holds (compare with the stream's last)",
    ["projection", "stream"], registry=REGISTRY,
)
PROJECTION_LEASE_HELD = Gauge(
    "fleet_projection_lease_held", "1 while this replica holds the projection's lease and writes its read model, "
    "0 while it stands by (answering queries only)", ["projection"], registry=REGISTRY,
)
DELIBERATIONS = Counter(
    "fleet_deliberations", "Deliberations finished, by role and outcome (completed, failed, timed_out, cancelled)",
    ["role", "outcome"], registry=REGISTRY,
)


async def serve_health_and_metrics(port: int, connected: Callable[[], bool], service: str) -> web.AppRunner:
    """`/metrics` and `/healthz` on `port` (0 picks a free one, which is logged)."""

    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(REGISTRY))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    async def health(_: web.Request) -> web.Response:
        if connected():
            return web.json_response({"service": service, "nats": "connected"})
        return web.json_response({"service": service, "nats": "disconnected"}, status=503)

    app = web.Application()
    app.add_routes([web.get("/metrics", metrics), web.get("/healthz", health)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "0.0.0.0", port)  # noqa: S104 - scraped and probed from outside the pod
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(f"cannot serve metrics on port {port} ({exc}); set FLEET_METRICS_PORT to a free port") from exc
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("metrics on http://localhost:%s/metrics, health on /healthz", bound)
    return runner
