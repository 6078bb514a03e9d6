"""What one deliberation leaves behind: events and bytes in each stream, bucket and read model.

The figures feed the capacity model in `streams/capacity.py` and `docs/scaling.md`. The run uses the
stand-in LLM (`bench/llm_standin.py`), so the answers' length is the bench's to choose: it runs the same
count of full deliberations (3 agents, 1 critique round) twice, with short answers and with answers
padded to LONG_ANSWER_CHARS, and reads each stream's and bucket's state and the Redis+FalkorDB server's
used memory before and after each. The first run gives the bytes per deliberation at a known answer
length; the difference between the runs, over the difference in answer length, gives how many copies
of an answer each store keeps (an answer's own event, the prompts that quote it, the record).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import msgspec
import valkey.asyncio as valkey
from rich.console import Console

from bench.deliberating import Mesh, deliberate_in_window, set_councils, standin_mesh
from bench.report import Figure, Result
from contracts import catalog
from contracts.events import Role, TurnCompleted
from services.councils.domain import new_council
from services.mesh.log_reader import Reading, Start, read_to_end
from services.planning.client import Results
from streams.definitions import AGENT, BUCKETS, STREAMS

FULL = Role.DEV
WINDOW = 32
RESULT_TIMEOUT_S = 300.0
LONG_ANSWER_CHARS = 2048


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
    def progress(approved: int) -> None:
        if approved % 100 == 0:
            console.print(f"  {approved} of {count} approved")

    done = await deliberate_in_window(mesh, results, FULL, count, WINDOW, RESULT_TIMEOUT_S, progress)
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


@dataclass
class Window:
    """What one run of deliberations added, per deliberation."""

    answer_bytes: float
    per_store: dict[str, tuple[float, float]]  # messages, bytes
    read_models: float
    failed: int


async def measured_window(mesh: Mesh, results: Results, count: int, console: Console) -> Window:
    valkey_url = mesh.stack.endpoints["valkey_url"]
    await settled(mesh)
    before, memory_before = await state(mesh), await used_memory(valkey_url)
    agent_last = (await mesh.js.stream_info(AGENT.name)).state.last_seq
    failed = await deliberate(mesh, results, count, console)
    await settled(mesh)
    after, memory_after = await state(mesh), await used_memory(valkey_url)
    answer_bytes, _ = await mean_answer_bytes(mesh, agent_last)
    per_store = {name: ((after[name][0] - before[name][0]) / count, (after[name][1] - before[name][1]) / count)
                 for name in before}
    return Window(answer_bytes, per_store, (memory_after - memory_before) / count, failed)


async def set_answer_chars(standin_url: str, chars: int) -> None:
    async with aiohttp.ClientSession() as session, session.post(f"{standin_url}/_answers",
                                                                 json={"chars": chars}) as reply:
        reply.raise_for_status()


async def run(options: argparse.Namespace, console: Console) -> Result:
    count = options.deliberations
    with tempfile.TemporaryDirectory(prefix="fleet-bench-capacity-") as folder:
        async with standin_mesh(Path(folder)) as mesh:
            await set_councils(mesh.stack, [new_council(FULL, 3, critique_rounds=1)])
            results = Results()
            await results.subscribe(mesh.client)
            await deliberate(mesh, results, 5, console)  # warm-up: the Ray actors and every code path
            console.print(f"{count} full deliberations with the stand-in's short answers, up to {WINDOW} in flight")
            short = await measured_window(mesh, results, count, console)
            await set_answer_chars(mesh.standin_url, LONG_ANSWER_CHARS)
            console.print(f"{count} more with answers padded to {LONG_ANSWER_CHARS} characters")
            long = await measured_window(mesh, results, count, console)
            await results.close()
    longer_by = long.answer_bytes - short.answer_bytes
    figures, footprints = [], {}
    for name, (messages, stored) in short.per_store.items():
        copies = (long.per_store[name][1] - stored) / longer_by if longer_by else 0.0
        footprints[name] = {"messages": round(messages, 2), "bytes": round(stored), "answer_copies": round(copies, 2)}
        figures.append(Figure(f"{name} bytes per deliberation", stored, "B", higher_is_better=False))
        figures.append(Figure(f"{name} answer copies per deliberation", copies, "copies", higher_is_better=False))
    read_model_copies = (long.read_models - short.read_models) / longer_by if longer_by else 0.0
    figures += [
        Figure("read models (Redis used_memory) per deliberation", short.read_models, "B", higher_is_better=False),
        Figure("read models answer copies per deliberation", read_model_copies, "copies", higher_is_better=False),
        Figure("mean short answer", short.answer_bytes, "B", higher_is_better=False),
        Figure("mean long answer", long.answer_bytes, "B", higher_is_better=False),
    ]
    notes = [f"{count} deliberations at each answer length; the footprints at {short.answer_bytes:.0f} B answers "
             "and the copies of an answer go into streams/capacity.py"]
    failed = short.failed + long.failed
    if failed:
        notes.append(f"{failed} of {2 * count} deliberations did not complete")
    return Result(
        benchmark="capacity",
        figures=figures,
        details={"deliberations_per_window": count, "window": WINDOW, "failed": failed,
                 "council": "3 agents, 1 critique round", "footprints": footprints,
                 "short_answer_bytes": round(short.answer_bytes), "long_answer_bytes": round(long.answer_bytes),
                 "read_models_bytes": round(short.read_models),
                 "read_models_answer_copies": round(read_model_copies, 2),
                 "long": {name: {"messages": round(m, 2), "bytes": round(b)}
                          for name, (m, b) in long.per_store.items()}},
        notes=notes,
    )
