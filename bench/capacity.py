"""What one deliberation leaves behind: events and bytes in each stream, bucket and read model.

The figures feed the capacity model in `streams/capacity.py` and `docs/scaling.md`. The run uses the
stand-in LLM (`bench/llm_standin.py`), so answers are short: the model adds the answers' own bytes by
the number of times each answer is stored, which this benchmark also measures (the mean answer length
of the run against the bytes per deliberation).

It runs full deliberations (3 agents, 1 critique round) in windows, and reads each stream's and
bucket's state, and the Redis+FalkorDB server's used memory, before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import msgspec
import valkey.asyncio as valkey
from rich.console import Console

from bench.deliberating import Mesh, approval, approve, set_councils, standin_mesh
from bench.report import Figure, Result
from contracts import catalog
from contracts.events import Role, TurnCompleted
from services.councils.domain import new_council
from services.mesh.log_reader import Reading, Start, read_to_end
from services.planning.client import Results, deliberation_ids
from streams.definitions import AGENT, BUCKETS, STREAMS

FULL = Role.DEV
WINDOW = 32
RESULT_TIMEOUT_S = 300.0


async def state(mesh: Mesh) -> dict[str, tuple[int, int]]:
    """(messages, bytes) of every stream and bucket, by name."""
    names = [s.name for s in STREAMS] + [b.stream_name for b in BUCKETS]
    infos = [await mesh.js.stream_info(name) for name in names]
    return {name: (info.state.messages, info.state.bytes) for name, info in zip(names, infos, strict=True)}


async def used_memory(url: str) -> int:
    client = valkey.from_url(url)
    try:
        return int((await client.info("memory"))["used_memory"])
    finally:
        await client.aclose()


async def deliberate(mesh: Mesh, results: Results, count: int, console: Console) -> int:
    """`count` full deliberations, up to WINDOW in flight; returns how many did not complete."""
    room = asyncio.Semaphore(WINDOW)
    arrivals = []
    for n in range(count):
        await room.acquire()
        approved = approval([FULL])
        [deliberation] = deliberation_ids(approved)
        arrival = results.expect(deliberation)
        arrival.add_done_callback(lambda _: room.release())
        arrivals.append(arrival)
        await approve(mesh.js, approved)
        if (n + 1) % 100 == 0:
            console.print(f"  {n + 1} of {count} approved")
    done = await asyncio.wait_for(asyncio.gather(*arrivals), RESULT_TIMEOUT_S + count)
    return sum(outcome != "completed" for _, outcome in done)


async def mean_answer_bytes(mesh: Mesh, after: int) -> tuple[float, int]:
    """The mean UTF-8 length of the answers stored after stream sequence `after`, and how many."""
    lengths = []
    reading = Reading(AGENT.name, catalog.TURN_COMPLETED.subject, Start(sequence=after + 1))
    async for message in read_to_end(mesh.js, reading):
        lengths.append(len(msgspec.json.decode(message.data, type=TurnCompleted).content.encode()))
    return sum(lengths) / max(len(lengths), 1), len(lengths)


async def settled(mesh: Mesh) -> None:
    """Let the projection and the clean-ups catch up before reading the state."""
    previous = None
    while (current := await state(mesh)) != previous:
        previous = current
        await asyncio.sleep(2.0)


async def run(options: argparse.Namespace, console: Console) -> Result:
    count = options.deliberations
    with tempfile.TemporaryDirectory(prefix="fleet-bench-capacity-") as folder:
        async with standin_mesh(Path(folder)) as mesh:
            await set_councils(mesh.stack, [new_council(FULL, 3, critique_rounds=1)])
            results = Results()
            await results.subscribe(mesh.client)
            valkey_url = mesh.stack.endpoints["valkey_url"]
            await deliberate(mesh, results, 5, console)  # warm-up: the Ray actors and every code path
            await settled(mesh)
            before, memory_before = await state(mesh), await used_memory(valkey_url)
            agent_last = (await mesh.js.stream_info(AGENT.name)).state.last_seq
            console.print(f"{count} full deliberations, up to {WINDOW} in flight")
            failed = await deliberate(mesh, results, count, console)
            await settled(mesh)
            after, memory_after = await state(mesh), await used_memory(valkey_url)
            answer_bytes, answers = await mean_answer_bytes(mesh, agent_last)
            await results.close()
    figures = []
    per_deliberation = {}
    for name in before:
        messages = (after[name][0] - before[name][0]) / count
        stored = (after[name][1] - before[name][1]) / count
        per_deliberation[name] = {"messages": round(messages, 2), "bytes": round(stored)}
        figures.append(Figure(f"{name} bytes per deliberation", stored, "B", higher_is_better=False))
        figures.append(Figure(f"{name} messages per deliberation", messages, "msgs", higher_is_better=False))
    read_models = (memory_after - memory_before) / count
    figures.append(Figure("read models (Redis used_memory) per deliberation", read_models, "B",
                          higher_is_better=False))
    figures.append(Figure("mean stand-in answer", answer_bytes, "B", higher_is_better=False))
    notes = [f"{answers / count:.1f} answers per deliberation of {answer_bytes:.0f} B on average (stand-in)"]
    if failed:
        notes.append(f"{failed} of {count} deliberations did not complete")
    return Result(
        benchmark="capacity",
        figures=figures,
        details={"deliberations": count, "window": WINDOW, "failed": failed, "council": "3 agents, 1 critique round",
                 "per_deliberation": per_deliberation, "read_models_bytes": round(read_models),
                 "answers_per_deliberation": answers / count, "mean_answer_bytes": round(answer_bytes)},
        notes=notes,
    )
