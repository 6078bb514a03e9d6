"""Run the evaluation set on a mesh: approve each case, wait for its results, read its events, judge a baseline.

The mesh is `fleet up --auth` in a folder of its own; with FLEET_LLM_BASE_URL set, its LLM is that server
(vLLM on a GPU, say) and nothing else changes. The evaluation connects as the operator and publishes the
approvals as an upstream planner does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import msgspec
from nats.aio.client import Client
from nats.js import JetStreamContext

from contracts.errors import ContractViolation
from contracts.events import DeliberationStarted, Phase, Role, Turn, TurnFailed, TurnInput, TurnRequested
from eval.cases import EVAL_USER, Case, approval_of, deliberations_of
from eval.measures import Record, record_of
from services.agents.adapters.llm import llm_config
from services.agents.adapters.ray_agents import AgentActor
from services.agents.domain import Completion, LlmFailure, Prompt
from services.agents.handlers import AgentHandlers
from services.cli.stream_tools import read_events
from services.collector.scoring import score_proposal
from services.councils.directory import CouncilDirectory
from services.embedded.stack import EmbeddedStack
from services.mesh.decoding import decode_incoming
from services.mesh.runtime import connect
from services.mesh.settings import Settings, load_settings
from services.planning.client import Results, approve_plan
from streams.definitions import AGENT, ORCHESTRATION


@contextlib.asynccontextmanager
async def embedded_mesh(data_dir: Path, report: Callable[[str], None]) -> AsyncIterator[tuple[EmbeddedStack, Client]]:
    """`fleet up --auth` in `data_dir`, its default councils seeded; the operator's client to it."""
    stack = EmbeddedStack(data_dir, report=report, auth=True)
    await stack.start()
    try:
        client = await connect(load_settings({"FLEET_DATA_DIR": str(stack.data_dir)}))
        try:
            directory, deadline = CouncilDirectory(client.jetstream()), time.monotonic() + 120
            while len(await directory.councils()) < len(Role) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            yield stack, client
        finally:
            await client.close()
    finally:
        await stack.stop()


async def events_by_deliberation(js: JetStreamContext) -> dict[str, list[object]]:
    """Every orchestration and agent event, decoded, grouped by deliberation, in stored order."""
    grouped: dict[str, list[object]] = defaultdict(list)
    for stream in (ORCHESTRATION, AGENT):
        async for stored in read_events(js, stream.name):
            if stored.is_schedule:
                continue
            try:
                incoming = decode_incoming(stored.subject, stored.headers, stored.data, received_at=stored.stored_at,
                                           stream_sequence=stored.sequence, deliveries=1)
            except ContractViolation:
                continue  # not a deliberation's event: the dead letters say what it was
            grouped[incoming.payload.aggregate_id()].append(incoming.payload)
    return grouped


class Judge:
    """The judge turn the collector would ask for, taken by the agents' own handler, its LLM call in this process."""

    def __init__(self, settings: Settings) -> None:
        self._agent = AgentActor("eval-judge", llm_config(settings))
        self._handlers = AgentHandlers(pool=self, model=settings.llm_model, max_tokens=settings.llm_max_tokens,
                                       context_window=settings.llm_context_tokens)

    async def complete(self, agent_id: str, prompt: Prompt) -> Completion | LlmFailure:
        """What the agents' Ray pool does for a turn, without Ray."""
        return await self._agent.complete(prompt)

    async def score(self, started: DeliberationStarted, proposal: str) -> tuple[float | None, str]:
        """The judged score of one proposal (checks applied as the collector applies them), or why there is none."""
        judge = msgspec.structs.replace(started.architect, temperature=0.0)
        request = TurnRequested(
            deliberation=started.deliberation, agent=judge, brief=started.brief,
            turn=Turn(phase=Phase.JUDGE, round=0, agent_id=judge.agent_id, author_id="single-agent-baseline"),
            input=TurnInput(proposal=proposal))
        answer = (await self._handlers.take_turn(request)).payload
        if isinstance(answer, TurnFailed):
            return None, f"{answer.error_class}: {answer.message}"
        return score_proposal("baseline", proposal, {}, answer.verdict, None).score, ""

    async def close(self) -> None:
        await self._agent.close()


async def evaluate(
    client: Client, cases: Sequence[Case], settings: Settings, *, parallel: int, timeout_s: float,
    report: Callable[[str], None],
) -> list[Record]:
    """Approve every case (`parallel` approvals in flight at most), wait for each result; a record per deliberation."""
    js, run_id = client.jetstream(), uuid.uuid4().hex[:8]
    results = Results()
    await results.subscribe(client)
    records: dict[str, Record] = {}
    gate, done, began = asyncio.Semaphore(parallel), 0, time.monotonic()
    total = sum(len(case.roles) for case in cases)

    async def run_case(case: Case) -> None:
        nonlocal done
        approval = approval_of(case, run_id)
        deliberations = deliberations_of(case, approval)
        for deliberation, role in deliberations.items():
            records[deliberation] = Record(case=case.name, role=role.value, deliberation_id=deliberation,
                                           keywords=case.keywords)
        async with gate:
            await approve_plan(js, approval, by=EVAL_USER)
            arrived = await asyncio.gather(*(results.wait(d, timeout_s) for d in deliberations))
        for role, came in zip(deliberations.values(), arrived, strict=True):
            done += 1
            report(f"[{done}/{total}] {case.name} {role.value}: {'result in' if came else 'NO RESULT after'} "
                   f"{time.monotonic() - began:.0f}s of the run")

    try:
        await asyncio.gather(*(run_case(case) for case in cases))
    finally:
        await results.close()
    report("reading the events back and judging each single agent's first proposal")
    grouped, judge = await events_by_deliberation(js), Judge(settings)
    try:
        await _judge_baselines(records, grouped, judge)
    finally:
        await judge.close()
    return list(records.values())


async def _judge_baselines(records: dict[str, Record], grouped: dict[str, list[object]], judge: Judge) -> None:
    for deliberation, record in records.items():
        events = grouped.get(deliberation, [])
        record_of(record, events)
        started = next((e for e in events if isinstance(e, DeliberationStarted)), None)
        first_agent = started.council.agents[0].agent_id if started else None
        if record.status == "completed" and first_agent in record.proposals:
            record.baseline = record.proposals[first_agent]
            record.baseline_score, record.baseline_error = await judge.score(started, record.baseline)
