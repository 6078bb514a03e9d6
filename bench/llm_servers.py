"""The embedded LLM server: llama-cpp-python's Python server against llama.cpp's llama-server, 1 and 3 slots.

The same turns go to each, built by the agents' own code from the evaluation set: a judge turn for each
of 12 cases (their own rubrics, some not in English) and 6 proposals. Measured per server:
- the share of judge answers that match their schema on the first attempt (the target is all of them);
- the wall time of the whole workload, with as many requests in flight as the server has slots;
- completion tokens per second, summed over the requests.
Baseline: the Python server the embedded mesh used before, in the same run. Nothing else runs meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from bench.report import Figure, Result
from contracts.events import (
    AgentProfile,
    Brief,
    DeliberationRef,
    Phase,
    PlannedTask,
    Role,
    Turn,
    TurnInput,
    TurnRequested,
)
from eval.cases import load_cases
from services.agents.adapters.llm import LlmClient, LlmConfig
from services.agents.adapters.wire import LlmError, ResponseFormat
from services.agents.domain import prompt_for
from services.agents.structured import StructuredOutputInvalid, parse_structured
from services.embedded import binaries
from services.embedded.servers import (
    LLM_CONTEXT_PER_SLOT,
    LLM_MODEL_NAME,
    ServerPlan,
    free_port,
    llm_plan,
    running_server,
)

JUDGED_CASES = 12
PROPOSALS = 6
MAX_TOKENS = 256
PROPOSAL = ("Put a token bucket per key in Redis behind a Lua script, so that every replica takes from the same "
            "bucket; fall back to a local bucket at a fraction of the limit when Redis is slow, and alert on it.")


def python_server_plan(threads: int) -> ServerPlan:
    """llama-cpp-python's server, as `fleet up` ran it before llama-server."""
    port = free_port()
    return ServerPlan(
        name="llama-cpp-python",
        argv=[str(binaries.python()), "-m", "llama_cpp.server", "--model", str(binaries.smollm2_model()),
              "--model_alias", LLM_MODEL_NAME, "--host", "127.0.0.1", "--port", str(port),
              "--n_ctx", str(LLM_CONTEXT_PER_SLOT), "--n_threads", str(threads)],
        endpoints={"llm_base_url": f"http://127.0.0.1:{port}/v1"}, port=port,
        ready_url=f"http://127.0.0.1:{port}/v1/models",
    )


def workload() -> list[TurnRequested]:
    architect = AgentProfile(agent_id="architect-1", role=Role.ARCHITECT, persona="", temperature=0.0, seed=7)
    turns = []
    for number, case in enumerate(load_cases()[:JUDGED_CASES + PROPOSALS]):
        ref = DeliberationRef(deliberation_id=f"bench-{number}", story_id="s", plan_id="p", task_id=case.name,
                              role=case.roles[0])
        brief = Brief(task=PlannedTask(task_id=case.name, title=case.title, description=case.description),
                      rubric=case.rubric, constraints=case.constraints)
        if number < JUDGED_CASES:
            turn, agent, given = Turn(phase=Phase.JUDGE, round=0, agent_id="architect-1", author_id="a"), architect, \
                TurnInput(proposal=PROPOSAL)
        else:
            agent = AgentProfile(agent_id="dev-1", role=case.roles[0], persona="", temperature=0.7, seed=number)
            turn, given = Turn(phase=Phase.PROPOSE, round=0, agent_id="dev-1", author_id="dev-1"), TurnInput()
        turns.append(TurnRequested(deliberation=ref, turn=turn, agent=agent, brief=brief, input=given))
    return turns


@dataclass
class Measured:
    seconds: float
    judged: int
    valid_first: int
    completion_tokens: int
    errors: list[str]


async def measure(base_url: str, dialect: ResponseFormat, in_flight: int) -> Measured:
    client = LlmClient(LlmConfig(base_url=base_url, timeout_s=300, dialect=dialect))
    gate = asyncio.Semaphore(in_flight)
    measured = Measured(0.0, 0, 0, 0, [])

    async def one(request: TurnRequested) -> None:
        prompt = prompt_for(request, model=LLM_MODEL_NAME, max_tokens=MAX_TOKENS, context_window=LLM_CONTEXT_PER_SLOT)
        async with gate:
            try:
                completion = await client.complete(prompt)
            except LlmError as exc:
                measured.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                return
        measured.completion_tokens += completion.completion_tokens
        if request.turn.phase == Phase.JUDGE:
            measured.judged += 1
            try:
                parse_structured(request, completion.content)
                measured.valid_first += 1
            except StructuredOutputInvalid as exc:
                measured.errors.append(str(exc)[:200])

    began = time.monotonic()
    try:
        await asyncio.gather(*(one(request) for request in workload()))
    finally:
        await client.close()
    measured.seconds = time.monotonic() - began
    return measured


async def run(options: argparse.Namespace, console: Console) -> Result:
    threads = 2
    logs = Path(tempfile.mkdtemp(prefix="bench-llm-"))
    runs: dict[str, Measured] = {}
    plans = [("llama-server, 1 slot", llm_plan(threads, slots=1), ResponseFormat.JSON_SCHEMA, 1),
             ("llama-server, 3 slots", llm_plan(threads, slots=3), ResponseFormat.JSON_SCHEMA, 3)]
    if importlib.util.find_spec("llama_cpp.server") is not None:
        plans.insert(0, ("llama-cpp-python", python_server_plan(threads), ResponseFormat.JSON_OBJECT, 1))
    for name, plan, dialect, in_flight in plans:
        async with running_server(plan, logs) as endpoints:
            runs[name] = await measure(endpoints["llm_base_url"], dialect, in_flight)
        got = runs[name]
        console.print(f"{name}: {got.seconds:.1f}s, {got.valid_first}/{got.judged} judge answers valid first time, "
                      f"{got.completion_tokens / got.seconds:.0f} tokens/s, {len(got.errors)} error(s)")
    base = runs.get("llama-cpp-python")
    figures = []
    for name, got in runs.items():
        figures += [
            Figure(f"{name}: judge answers valid on the first attempt", got.valid_first / max(got.judged, 1), "share",
                   baseline="llama-cpp-python" if base else None,
                   baseline_value=base.valid_first / max(base.judged, 1) if base else None, target=1.0),
            Figure(f"{name}: workload wall time", got.seconds, "s", baseline="llama-cpp-python" if base else None,
                   baseline_value=base.seconds if base else None, higher_is_better=False),
            Figure(f"{name}: completion tokens/s", got.completion_tokens / got.seconds, "tokens/s",
                   baseline="llama-cpp-python" if base else None,
                   baseline_value=base.completion_tokens / base.seconds if base else None),
        ]
    return Result(benchmark="llm", figures=figures,
                  details={name: {"errors": got.errors[:10], "judged": got.judged,
                                  "completion_tokens": got.completion_tokens} for name, got in runs.items()},
                  notes=[f"{JUDGED_CASES} judge turns and {PROPOSALS} proposals of {MAX_TOKENS} tokens at most, "
                         f"built by the agents' code from eval/approvals.toml; {threads} threads"])
