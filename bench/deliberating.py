"""A mesh on the STAND-IN LLM for the mesh benchmarks: start it, set its councils, approve, await results.

The mesh is `fleet up` as it runs in production shape: every service its own process, each connected
as its own least-privilege NATS user (`auth=True`); only the LLM is `bench/llm_standin.py`, so what
is measured is the mesh, not a model. The benchmark itself connects as the operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import os
import shutil
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nats.aio.client import Client
from nats.js import JetStreamContext

from bench.llm_standin import standin_plan
from contracts import catalog
from contracts.events import Council, PlanApproved, PlannedTask, Role
from services.cli.stream_tools import consumer_statuses, one_line, read_all
from services.councils.directory import CouncilDirectory, replace_councils
from services.embedded.servers import ray_temp_dir, running_server
from services.embedded.stack import EmbeddedStack
from services.mesh.publishing import EventPublisher
from services.mesh.runtime import connect
from services.mesh.settings import load_settings
from services.planning.client import Results, approve_plan, deliberation_ids
from streams.definitions import STREAMS
from tests.e2e.flows import as_operator
from tests.support import read_stream, wait_for

BENCH_USER = "bench"
# Where the logs of a mesh that broke off go (git ignores bench/results).
KEPT_LOGS = Path("bench/results")
# The production default of FLEET_AGENT_CONCURRENCY (services/mesh/settings.py): enough for 15 agents
# answering at once. `fleet up` lowers it to 2 only for its own llama.cpp, which answers one at a time.
AGENT_CONCURRENCY = "16"


@dataclass
class Mesh:
    stack: EmbeddedStack
    client: Client
    standin_url: str
    service_env: dict[str, str]
    lines: list[tuple[float, str]] = field(default_factory=list)

    @property
    def js(self) -> JetStreamContext:
        return self.client.jetstream()

    def settings_in_force(self) -> dict[str, str]:
        """What the services ran with that decides how many turns run at once."""
        env = self.stack.service_environment()
        return {name: env.get(name, "(default)") for name in
                ("FLEET_AGENT_CONCURRENCY", "FLEET_LLM_MODEL", "FLEET_LLM_RESPONSE_FORMAT", "FLEET_LLM_MAX_TOKENS")}


async def councils_seeded(stack: EmbeddedStack, client: Client, timeout_s: float = 120.0) -> None:
    """Planning seeds the default councils (one per role) on its first start."""
    await wait_for(client.jetstream(), catalog.COUNCIL_CREATED.subject, lambda m: True, len(Role), timeout_s=timeout_s)


@contextlib.asynccontextmanager
async def standin_mesh(
    data_dir: Path, *, latency_ms: float = 0.0, service_env: Mapping[str, str] | None = None
) -> AsyncIterator[Mesh]:
    """The stand-in LLM, then `fleet up --auth` pointed at it, with its default councils seeded."""
    async with running_server(standin_plan(latency_ms=latency_ms), data_dir / "logs") as llm:
        env = {**os.environ, "FLEET_LLM_BASE_URL": llm["llm_base_url"], "FLEET_LLM_MODEL": llm["llm_model"],
               "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        wanted = {"FLEET_AGENT_CONCURRENCY": AGENT_CONCURRENCY, **(service_env or {})}
        lines: list[tuple[float, str]] = []
        began = time.monotonic()
        stack = EmbeddedStack(data_dir / "fleet", env=env, service_env=wanted, auth=True,
                              report=lambda line: lines.append((time.monotonic() - began, line)))
        await stack.start()
        try:
            client = await as_operator(stack)
            try:
                await councils_seeded(stack, client)
                yield Mesh(stack, client, llm["standin_url"], wanted, lines)
            except Exception:
                kept = await keep_evidence(data_dir, client.jetstream())
                print(f"the mesh's logs, events and durables are kept in {kept}", file=sys.stderr)
                raise
            finally:
                await client.close()
        finally:
            await stack.stop()


async def keep_evidence(data_dir: Path, js: JetStreamContext) -> Path:
    """Out of the temporary folder of a run that broke off: the logs, every stored event, every durable's state."""
    kept = KEPT_LOGS / f"broke-off-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"
    for logs in (data_dir / "logs", data_dir / "fleet" / "logs"):
        if logs.is_dir():
            shutil.copytree(logs, kept / ("servers" if logs.parent == data_dir else "mesh"), dirs_exist_ok=True)
    ray_logs = ray_temp_dir(data_dir / "fleet") / "session_latest" / "logs"
    if ray_logs.is_dir():
        shutil.copytree(ray_logs, kept / "ray", dirs_exist_ok=True)
    with contextlib.suppress(Exception):
        events = await read_all(js)
        (kept / "events.txt").write_text("".join(f"{event.stream} {one_line(event)}\n" for event in events))
        _, durables = await consumer_statuses(js)
        (kept / "durables.txt").write_text("".join(f"{d}\n" for d in durables))
    return kept


async def set_councils(stack: EmbeddedStack, councils: Iterable[Council], remove: Iterable[Role] = ()) -> None:
    """Replace the councils of these roles and delete those of `remove`, as `fleet council` does."""
    client = await connect(load_settings({"FLEET_DATA_DIR": str(stack.data_dir)}))
    publisher = EventPublisher(client.jetstream(), producer=BENCH_USER)
    try:
        await replace_councils(CouncilDirectory(client.jetstream()), publisher, BENCH_USER, put=councils, remove=remove)
    finally:
        await client.drain()


def approval(roles: list[Role], tasks: int = 1) -> PlanApproved:
    suffix = uuid.uuid4().hex[:12]
    return PlanApproved(
        story_id=f"bench-story-{suffix}", plan_id=f"bench-plan-{suffix}", approved_by=BENCH_USER, roles=roles,
        tasks=[PlannedTask(task_id=f"task-{n}", title="Add login throttling",
                           description="Lock an account for 15 minutes after 5 failed logins in a row.")
               for n in range(tasks)],
    )


async def approve(js: JetStreamContext, approved: PlanApproved) -> None:
    """Publish the approval and wait for JetStream's ack, as an upstream planner would."""
    await approve_plan(js, approved, by=BENCH_USER)


async def stored_messages(js: JetStreamContext) -> int:
    """Messages stored in every stream of the mesh: what a deliberation costs in events."""
    return sum([(await js.stream_info(stream.name)).state.messages for stream in STREAMS])


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: an actual observation, never an interpolation between two."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


@dataclass(frozen=True)
class TurnTiming:
    phase: str
    agent_id: str
    # From the request stored to the outcome stored, and the part of it the LLM call took in the actor.
    seconds: float
    llm_seconds: float
    context_error: str | None


async def turn_timings(js: JetStreamContext, deliberations: Iterable[str]) -> list[TurnTiming]:
    """Each turn of these deliberations as the AGENT stream timed it: where a slow run spent its time."""
    wanted = set(deliberations)
    asked: dict[tuple[str, str], float] = {}
    answered: dict[tuple[str, str], tuple[float, object]] = {}
    for message in await read_stream(js, "agent.turn.>"):
        event = catalog.spec_for_subject(message.subject).decoder.decode(message.data)
        if event.deliberation.deliberation_id not in wanted:
            continue
        key, stored = (event.deliberation.deliberation_id, event.turn.key), message.metadata.timestamp.timestamp()
        if message.subject == catalog.TURN_REQUESTED.subject:
            asked[key] = stored
        else:
            answered[key] = (stored, event)
    return [
        TurnTiming(phase=event.turn.phase.value, agent_id=event.turn.agent_id, seconds=stored - asked[key],
                   llm_seconds=getattr(event, "latency_ms", 0) / 1000,
                   context_error=getattr(event, "context_error", None))
        for key, (stored, event) in answered.items() if key in asked
    ]


async def deliberate_in_window(
    mesh: Mesh, results: Results, role: Role, count: int, window: int, timeout_s: float,
    on_approved: Callable[[int], None] = lambda approved: None,
    before_approval: Callable[[int], Awaitable[None]] | None = None,
) -> list[tuple[float, str]]:
    """`count` one-role approvals with up to `window` deliberations in flight; each result's arrival time
    and outcome, in the order approved. `before_approval(n)` may pace the n-th (from 0)."""
    room = asyncio.Semaphore(window)
    arrivals: list[asyncio.Future] = []
    for n in range(count):
        if before_approval is not None:
            await before_approval(n)
        await room.acquire()
        approved = approval([role])
        [deliberation] = deliberation_ids(approved)
        arrival = results.expect(deliberation)
        arrival.add_done_callback(lambda _: room.release())
        arrivals.append(arrival)
        await approve(mesh.js, approved)
        on_approved(n + 1)
    return list(await asyncio.wait_for(asyncio.gather(*arrivals), timeout_s + count))

