"""One fault run: start the embedded mesh behind the LLM stand-in, then for each fault approve plans,
inject the fault part-way, heal it, wait for every deliberation's result, and check the invariants."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nats.js import JetStreamContext
from rich.console import Console

from contracts import catalog
from contracts.envelope import MSG_ID
from contracts.events import CouncilCreated, PlanApproved, PlannedTask, Role
from services.councils.domain import new_council
from services.embedded.servers import LLM_CONTEXT_PER_SLOT, LLM_MODEL_NAME, LLM_SLOTS, llm_plan, running_server
from services.embedded.stack import EmbeddedStack
from streams.definitions import DEAD_LETTERS
from tests.chaos import invariants
from tests.chaos.faults import Fault, FaultDidNotHeal, StandInServer, Target, services_connected
from tests.chaos.invariants import Availability, Check, Outcomes
from tests.chaos.readback import (
    busy_durables,
    compare_read_models,
    dead_letters_after,
    durables_idle,
    result_times,
    results_of,
    wait_for_results,
    wait_until,
)
from tests.e2e.flows import as_operator
from tests.support import body_of, decode, last_sequence, read_stream

STANDIN, EMBEDDED = "standin", "embedded"
# The monitor only reads; on 2 cores its fold of every stream would slow the services under test.
SERVICES_UNDER_TEST = tuple(s for s in catalog.SERVICES if s != catalog.MONITOR)


@dataclass
class Options:
    approvals: int = 50
    faults: list[Fault] = field(default_factory=list)
    llm: str = STANDIN
    tasks: int = 1
    roles: tuple[Role, ...] = (Role.DEV, Role.QA)
    # The default councils' protocol: every phase runs, and one failed agent of three leaves a quorum.
    agents: int = 3
    critique_rounds: int = 1
    # Approvals go out over this long; the fault starts after a third of it and lasts its hold_s.
    spread_s: float = 10.0
    # How long to wait for every result once the fault is healed: a lost deliberation fails, it does not hang.
    result_timeout_s: float = 600.0
    data_dir: Path | None = None
    # The agents' LLM timeout, when not the default for the LLM below.
    llm_timeout: float | None = None
    # What production runs (`fleet up --cluster`): three NATS nodes, two replicas of each service, two Ray nodes.
    cluster: bool = False

    @property
    def llm_timeout_s(self) -> float:
        if self.llm_timeout is not None:
            return self.llm_timeout
        # The stand-in answers at once; a real SmolLM2 on 2 cores queues a turn behind another.
        return 3.0 if self.llm == STANDIN else 20.0


@dataclass
class FaultRun:
    fault: str
    description: str
    deliberations: int
    checks: list[Check]
    outcomes: Outcomes
    observed: dict
    seconds: dict
    healed: bool
    availability: Availability

    @property
    def held(self) -> bool:
        return self.healed and all(c.held for c in self.checks)

    def as_json(self) -> dict:
        return {"fault": self.fault, "description": self.description, "deliberations": self.deliberations,
                "held": self.held, "healed": self.healed, "checks": [c.as_json() for c in self.checks],
                "outcomes": self.outcomes.as_json(), "observed": self.observed, "seconds": self.seconds,
                "availability": self.availability.as_json()}


def approvals_for(run_id: str, fault: str, options: Options) -> list[PlanApproved]:
    tasks = [PlannedTask(task_id=f"task-{t}", title=f"Chaos task {t}", description="Add retry with backoff.")
             for t in range(options.tasks)]
    return [PlanApproved(story_id=f"chaos-{run_id}-{fault}-{i}", plan_id=f"plan-{run_id}-{fault}-{i}",
                         approved_by="chaos", roles=list(options.roles), tasks=tasks)
            for i in range(options.approvals)]


async def publish_until_stored(js: JetStreamContext, subject: str, body: bytes, msg_id: str,
                               within_s: float = 180.0) -> None:
    """Publish, retrying through an outage; the message id makes a repeat that did get stored harmless."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            await js.publish(subject, body, headers={MSG_ID: msg_id}, timeout=5.0)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def seed_councils(js: JetStreamContext, options: Options, run_id: str) -> None:
    """Councils of the chosen size for the roles under test and an architect, after the defaults planning seeds."""
    await wait_until(lambda: _count(js, catalog.COUNCIL_CREATED.subject, len(Role)), 90, "default councils seeded")
    councils = [new_council(role, options.agents, critique_rounds=options.critique_rounds) for role in options.roles]
    councils.append(new_council(Role.ARCHITECT, 1))
    for council in councils:
        created = CouncilCreated(council=council, created_by="chaos")
        await publish_until_stored(js, catalog.COUNCIL_CREATED.subject, body_of(created),
                                   f"chaos-{run_id}-council-{council.role.value}")


async def _count(js: JetStreamContext, subject: str, at_least: int) -> bool:
    return len(await read_stream(js, subject)) >= at_least


async def run_fault(target: Target, js: JetStreamContext, fault: Fault, options: Options, run_id: str,
                    report: Callable[[str], None]) -> FaultRun:
    approvals = approvals_for(run_id, fault.name, options)
    expected = invariants.expected_deliberations(approvals)
    plans = {a.plan_id for a in approvals}
    letters_from = await last_sequence(js, DEAD_LETTERS.name)
    restarts_before = {name: s.restarts for name, s in target.stack.services.items()}
    seconds: dict[str, float] = {}
    wall: dict[str, float] = {}
    began = time.monotonic()
    report(f"[bold]{fault.name}[/]: {fault.description}; {len(approvals)} approvals, {len(expected)} deliberations")

    async def publish_all() -> None:
        pause = options.spread_s / max(len(approvals), 1)
        for approval in approvals:
            await publish_until_stored(js, catalog.PLAN_APPROVED.subject, body_of(approval),
                                       f"{approval.plan_id}-1")
            await asyncio.sleep(pause)

    async def break_and_mend() -> bool:
        await asyncio.sleep(options.spread_s / 3)
        seconds["injected_at"] = time.monotonic() - began
        wall["injected_at"] = time.time()
        await fault.inject(target)
        await fault.hold(target)
        try:
            await fault.heal(target)
        except FaultDidNotHeal as exc:
            fault.observed["not_healed"] = str(exc)
            return False
        finally:
            seconds["healed_at"] = time.monotonic() - began
        return True

    publishing = asyncio.create_task(publish_all())
    healed = await break_and_mend()
    await publishing
    seconds["published_by"] = time.monotonic() - began
    all_ended, waited = await wait_for_results(js, expected, options.result_timeout_s)
    seconds["results_by"] = time.monotonic() - began
    if not all_ended:
        report(f"  [red]not every deliberation ended within {options.result_timeout_s:.0f}s[/]")
    if busy := await busy_durables(js):
        fault.observed["busy_after_results"] = busy
    with contextlib.suppress(TimeoutError):
        # Redeliveries still to come (an ack wait not yet over) would show up as duplicates after the check.
        await wait_until(lambda: durables_idle(js), 180, "durables idle")
    seconds["idle_by"] = time.monotonic() - began
    comparisons = await compare_read_models(js, target.stack)
    seconds["checked_by"] = time.monotonic() - began

    requested = [e for e in map(decode, await read_stream(js, catalog.DELIBERATION_REQUESTED.subject))
                 if e.deliberation.plan_id in plans]
    started = [e for e in map(decode, await read_stream(js, catalog.DELIBERATION_STARTED.subject))
               if e.deliberation.plan_id in plans]
    results = await results_of(js, plans)
    outcomes = invariants.outcomes(results)
    available = invariants.availability(await result_times(js, plans), wall.get("injected_at", time.time()),
                                        outcomes.completed, len(expected))
    checks = [
        invariants.one_result_per_task_and_role(expected, results),
        invariants.no_deliberation_duplicated_or_lost(expected, requested, started, results, plans),
        invariants.read_models_equal_rebuild(comparisons),
        invariants.every_dead_letter_has_a_reason(await dead_letters_after(js, letters_from)),
    ]
    # Every restart the supervisor made meanwhile: the one a kill asked for, and any crash the fault caused.
    restarts = {name: s.restarts - restarts_before[name] for name, s in target.stack.services.items()
                if s.restarts > restarts_before[name]}
    done = FaultRun(fault.name, fault.description, len(expected), checks, outcomes,
                    fault.observed | {"service_restarts": restarts}, {k: round(v, 1) for k, v in seconds.items()},
                    healed, available)
    report(f"  {'[green]held[/]' if done.held else '[red]FAILED[/]'} (results after {seconds['results_by']:.0f}s, "
           f"{done.outcomes.completed} completed, {done.outcomes.failed} failed; results resumed "
           f"{available.resumed_after_s}s after the fault, longest gap {available.longest_gap_s}s): "
           + "; ".join(f"{c.name}: {c.summary}" for c in checks))
    for reason, count in done.outcomes.failure_reasons.items():
        report(f"  [dim]{count} failed: {reason}[/]")
    if (work := fault.observed.get("work_at_kill")) is not None and fault.observed.get("unacked_at_kill") is not None:
        report(f"  [dim]killed holding {fault.observed['unacked_at_kill']} unacknowledged message(s): {work}[/]")
    return done


def stack_environment(llm_endpoints: dict[str, str], model: str) -> dict[str, str]:
    """This process's environment without FLEET_ or Ray settings that would point the stack elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_") and k != "RAY_ADDRESS"}
    return env | {"FLEET_LLM_BASE_URL": llm_endpoints["llm_base_url"], "FLEET_LLM_MODEL": model,
                  "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def service_environment(options: Options) -> dict[str, str]:
    settings = {"FLEET_LLM_TIMEOUT_S": f"{options.llm_timeout_s:g}"}
    if options.llm == EMBEDDED:
        # What `fleet up` sets for the embedded model, with the end-to-end suite's short answers.
        settings |= {"FLEET_LLM_MAX_TOKENS": "48", "FLEET_AGENT_CONCURRENCY": str(LLM_SLOTS),
                     "FLEET_LLM_CONTEXT_TOKENS": str(LLM_CONTEXT_PER_SLOT)}
    return settings


async def run(options: Options, report: Callable[[str], None] | None = None) -> list[FaultRun]:
    """Start everything, run each fault in turn on the same mesh, stop everything; the runs' results."""
    report = report or Console(width=200).print
    data_dir = options.data_dir or Path(tempfile.mkdtemp(prefix="chaos-"))
    # nats-py logs every failed reconnect with a traceback; while NATS is down on purpose that is noise.
    logging.getLogger("nats.aio.client").setLevel(logging.CRITICAL)
    run_id = uuid.uuid4().hex[:6]
    async with contextlib.AsyncExitStack() as stop_later:
        upstream, model = None, "standin-instant"
        if options.llm == EMBEDDED:
            real = await stop_later.enter_async_context(
                running_server(llm_plan(threads=os.cpu_count() or 2), data_dir / "logs"))
            upstream, model = real["llm_base_url"], LLM_MODEL_NAME
        llm = StandInServer(data_dir / "logs", upstream=upstream)
        await llm.start()
        stop_later.push_async_callback(llm.stop)
        report(f"LLM: {'STAND-IN (bench/llm_standin.py), instant canned answers' if upstream is None else
                       f'SmolLM2 (llama.cpp) behind the stand-in proxy {llm.endpoints["llm_base_url"]}'}; "
               f"agents' LLM timeout {options.llm_timeout_s:g}s")
        stack = EmbeddedStack(data_dir, env=stack_environment(llm.endpoints, model), report=lambda line: None,
                              service_env=service_environment(options), services=SERVICES_UNDER_TEST, auth=True,
                              cluster=options.cluster)
        began = time.monotonic()
        await stack.start()
        stop_later.push_async_callback(stack.stop)
        client = await as_operator(stack)
        stop_later.push_async_callback(client.close)
        js = client.jetstream()
        await seed_councils(js, options, run_id)
        # Every service consuming before the first fault: one still starting would only crash and be restarted.
        await wait_until(lambda: services_connected(stack), 120, "every service up")
        shape = ("cluster: 3 NATS nodes (R3), 2 replicas of each service, a Ray head and 2 workers"
                 if options.cluster else "mesh")
        report(f"{shape} up in {time.monotonic() - began:.0f}s (data in {data_dir}); "
               f"councils: {options.agents} agents, "
               f"{options.critique_rounds} critique round(s), roles {', '.join(r.value for r in options.roles)}")
        target = Target(stack, llm, js, options.llm_timeout_s)
        return [await run_fault(target, js, fault, options, run_id, report) for fault in options.faults]
