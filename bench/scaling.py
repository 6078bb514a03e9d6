"""Parallel scaling: 15 agents in 5 councils against 1 agent, with the STAND-IN LLM taking 500 ms per answer.

Both sides run the same protocol, critique_rounds=0 (propose -> judge -> select), since a council of
one skips critique: three LLM phases, so about 1.5 s of LLM time either way. The wall time is from
publishing the approval to the last result event.

- many: one approval naming all 5 roles, each council of 3 agents: 5 deliberations, 15 proposals at
  once, then 15 judge turns, all for the architect council's first agent, then 5 selections by it.
- one: an approval naming only DEV, whose council is 1 agent (the architect still judges and selects).

Ideal ratio many/one is 1.0, since every LLM call of a phase runs at the same time. The runs
alternate (one, many, one, many...) and the ratio is of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console

from bench.deliberating import (
    Mesh,
    TurnTiming,
    approval,
    approve,
    set_councils,
    standin_mesh,
    turn_timings,
)
from bench.report import Figure, Result
from contracts.events import Role
from services.councils.domain import new_council
from services.planning.client import Results, deliberation_ids

LATENCY_MS = 500.0
TARGET = 1.05
RESULT_TIMEOUT_S = 120.0
WARM_UP = 3
ROLES = [Role.DEV, Role.QA, Role.ARCHITECT, Role.DEVOPS, Role.DATA]


async def wall_time(mesh: Mesh, results: Results, roles: list[Role]) -> tuple[float, list[str]]:
    """Seconds from the approval's publish to the last result, and the deliberations it started."""
    approved = approval(roles)
    deliberations = deliberation_ids(approved)
    arrivals = [results.expect(d) for d in deliberations]
    began = time.perf_counter()
    await approve(mesh.js, approved)
    done = await asyncio.wait_for(asyncio.gather(*arrivals), RESULT_TIMEOUT_S)
    failed = [outcome for _, outcome in done if outcome != "completed"]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(done)} deliberations failed; see the services' logs")
    return max(at for at, _ in done) - began, deliberations


def turn_summary(timings: list[TurnTiming]) -> dict:
    """What the slowest turn spent beside its LLM call, and how many turns went without their context."""
    slowest = max(timings, key=lambda t: t.seconds - t.llm_seconds)
    return {"turns": len(timings), "context_errors": sum(t.context_error is not None for t in timings),
            "slowest_turn": {"phase": slowest.phase, "agent": slowest.agent_id, "seconds": round(slowest.seconds, 3),
                             "llm_seconds": round(slowest.llm_seconds, 3)}}


async def run(options: argparse.Namespace, console: Console) -> Result:
    runs = options.runs
    one_agent = [new_council(Role.DEV, 1, critique_rounds=0), new_council(Role.ARCHITECT, 3, critique_rounds=0)]
    many_agents = [new_council(role, 3, critique_rounds=0) for role in ROLES]
    timings: dict[str, list[float]] = {"one": [], "many": []}
    turns: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="fleet-bench-scaling-") as folder:
        async with standin_mesh(Path(folder), latency_ms=LATENCY_MS) as mesh:
            results = Results()
            await results.subscribe(mesh.client)
            # The first runs also start the agents' Ray actors (a process each) and let them settle: not counted.
            for attempt in range(-WARM_UP + 1, runs + 1):
                await set_councils(mesh.stack, one_agent)
                one, _ = await wall_time(mesh, results, [Role.DEV])
                await set_councils(mesh.stack, many_agents)
                many, deliberations = await wall_time(mesh, results, ROLES)
                if attempt > 0:
                    timings["one"].append(one)
                    timings["many"].append(many)
                    turns.append(turn_summary(await turn_timings(mesh.js, deliberations)))
                console.print(f"  run {attempt}{' (warm-up)' if attempt <= 0 else ''}: "
                              f"1 agent {one:.3f}s, 15 agents {many:.3f}s")
            await results.close()
            settings = mesh.settings_in_force()
    one, many = statistics.median(timings["one"]), statistics.median(timings["many"])
    llm_floor = 3 * LATENCY_MS / 1000
    return Result(
        benchmark="scaling",
        figures=[
            Figure("1 agent, 1 council (baseline)", one, "s", higher_is_better=False),
            Figure("15 agents, 5 councils", many, "s", baseline="1 agent", baseline_value=one,
                   higher_is_better=False),
            Figure("ratio 15 agents / 1 agent", many / one, "x", target=TARGET, higher_is_better=False),
            Figure("1 agent: mesh time beyond the LLM's", one - llm_floor, "s", higher_is_better=False),
        ],
        details={
            "llm": f"bench/llm_standin.py with --latency-ms {LATENCY_MS:g} (a stand-in, not a model)",
            "protocol": "critique_rounds=0 on both sides: propose -> judge -> select, 3 LLM phases",
            "runs": runs, "seconds": {k: [round(v, 3) for v in vs] for k, vs in timings.items()},
            "turns_of_each_15_agent_run": turns,
            "llm_time_s": llm_floor,
            "service_settings": settings,
        },
        notes=["the older system reported a ratio of 1.13 for 5 agents"],
    )
