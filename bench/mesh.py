"""Mesh overhead and throughput, with the STAND-IN LLM answering at once (`bench/llm_standin.py`).

One mesh (`fleet up --auth`, every service its own process) serves both figures:

1. Latency from publishing an approval to its result event, one deliberation at a time, for a
   propose-only council (3 agents, no critique: propose -> judge -> select) and for the full protocol
   (3 agents, 1 critique round: propose -> critique -> revise -> judge -> select), interleaved.
   Baseline: one hop of the mesh measured raw on the same server, an ack'd JetStream publish until a
   pull consumer has the message, so the ratio reads as "so many raw hops".
2. Sustained full deliberations per second, with up to WINDOW in flight. Baseline: the raw nats-py
   rate of ack'd publishes consumed (and acked) by a pull consumer at the same time, of 1 KB messages.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from rich.console import Console

from bench.deliberating import (
    Mesh,
    approval,
    approve,
    deliberate_in_window,
    percentile,
    set_councils,
    standin_mesh,
    stored_messages,
)
from bench.report import Figure, Result
from contracts.events import Role
from services.councils.domain import new_council
from services.planning.client import Results, deliberation_ids

FULL, PROPOSE_ONLY = Role.DEV, Role.QA
WARM_UP = 5
RESULT_TIMEOUT_S = 120.0
# The first deliberations also create the agents' Ray actors, a worker process each: 20 to 40 s on 2
# busy cores.
WARM_UP_TIMEOUT_S = 300.0
# Deliberations in flight at once during the throughput run: enough to keep every service busy.
WINDOW = 64
SCRATCH_STREAM, SCRATCH_SUBJECT = "BENCH_RAW", "bench.raw.messages"
# About the size of a stored event with its envelope headers.
RAW_MESSAGE = b"x" * 1024


async def one_deliberation(mesh: Mesh, results: Results, role: Role, timeout_s: float) -> tuple[float, str]:
    approved = approval([role])
    [deliberation] = deliberation_ids(approved)
    arrival = results.expect(deliberation)
    began = time.perf_counter()
    await approve(mesh.js, approved)
    arrived_at, outcome = await asyncio.wait_for(arrival, timeout_s)
    return arrived_at - began, outcome


async def latencies(mesh: Mesh, results: Results, samples: int, console: Console) -> dict[Role, list[float]]:
    """Both variants one after the other, sample after sample, so drift on a shared machine hits both alike."""
    measured: dict[Role, list[float]] = {FULL: [], PROPOSE_ONLY: []}
    failed = 0
    for sample in range(WARM_UP + samples):
        for role in (PROPOSE_ONLY, FULL):
            timeout_s = WARM_UP_TIMEOUT_S if sample < WARM_UP else RESULT_TIMEOUT_S
            seconds, outcome = await one_deliberation(mesh, results, role, timeout_s)
            failed += outcome != "completed"
            if sample >= WARM_UP:
                measured[role].append(seconds)
        if sample % 10 == 9:
            console.print(f"  latency: {sample + 1 - WARM_UP} of {samples} samples")
    if failed:
        raise RuntimeError(f"{failed} deliberations failed during the latency run; see the services' logs")
    return measured


async def throughput(mesh: Mesh, results: Results, count: int) -> tuple[float, float, int]:
    """Deliberations per second from the first publish to the last result, events stored per deliberation."""
    before = await stored_messages(mesh.js)
    began = time.perf_counter()
    done = await deliberate_in_window(mesh, results, FULL, count, WINDOW, RESULT_TIMEOUT_S)
    last = max(at for at, _ in done)
    failed = sum(outcome != "completed" for _, outcome in done)
    events = (await stored_messages(mesh.js) - before) / count
    return count / (last - began), events, failed


async def raw_hop_latency(client: Client, samples: int) -> list[float]:
    """An ack'd publish until a waiting pull consumer holds the message: one hop of the mesh, raw."""
    js = client.jetstream()
    subscription = await js.pull_subscribe(SCRATCH_SUBJECT, durable="bench-hop", stream=SCRATCH_STREAM,
                                           config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT))
    seconds = []
    try:
        for sample in range(WARM_UP + samples):
            fetching = asyncio.create_task(subscription.fetch(1, timeout=10))
            await asyncio.sleep(0.005)  # the pull request is waiting on the server, as a service's is
            began = time.perf_counter()
            await js.publish(SCRATCH_SUBJECT, RAW_MESSAGE)
            [message] = await fetching
            arrived = time.perf_counter()
            await message.ack()
            if sample >= WARM_UP:
                seconds.append(arrived - began)
    finally:
        await subscription.unsubscribe()
    return seconds


async def raw_rate(client: Client, count: int) -> float:
    """Ack'd publishes, one at a time, consumed and acked by a pull consumer meanwhile: messages per second."""
    js = client.jetstream()
    subscription = await js.pull_subscribe(SCRATCH_SUBJECT, durable="bench-rate", stream=SCRATCH_STREAM,
                                           config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT))

    async def consume() -> None:
        consumed = 0
        while consumed < count:
            try:
                batch = await subscription.fetch(WINDOW, timeout=1)
            except TimeoutError:
                continue
            for message in batch:
                await message.ack()
            consumed += len(batch)

    try:
        began = time.perf_counter()
        consuming = asyncio.create_task(consume())
        for _ in range(count):
            await js.publish(SCRATCH_SUBJECT, RAW_MESSAGE)
        await asyncio.wait_for(consuming, 120)
        return count / (time.perf_counter() - began)
    finally:
        await subscription.unsubscribe()


async def with_scratch_stream(client: Client, work):
    """A stream of the benchmark's own, beside the mesh's on the same server; the services never declare one."""
    js = client.jetstream()
    await js.add_stream(StreamConfig(name=SCRATCH_STREAM, subjects=[SCRATCH_SUBJECT]))
    try:
        return await work()
    finally:
        await js.delete_stream(SCRATCH_STREAM)


async def run(options: argparse.Namespace, console: Console) -> Result:
    samples, count = options.samples, options.deliberations
    with tempfile.TemporaryDirectory(prefix="fleet-bench-mesh-") as folder:
        async with standin_mesh(Path(folder)) as mesh:
            await set_councils(mesh.stack, [new_council(FULL, 3, critique_rounds=1),
                                            new_council(PROPOSE_ONLY, 3, critique_rounds=0)])
            results = Results()
            await results.subscribe(mesh.client)
            console.print(f"mesh up; {samples} latency samples of each council after {WARM_UP} warm-up ones")
            measured = await latencies(mesh, results, samples, console)
            hops = await with_scratch_stream(mesh.client, lambda: raw_hop_latency(mesh.client, samples))
            console.print(f"throughput: {count} full deliberations, up to {WINDOW} in flight")
            rate, events, failed = await throughput(mesh, results, count)
            raw = await with_scratch_stream(mesh.client, lambda: raw_rate(mesh.client, max(count * 10, 2_000)))
            await results.close()
            settings = mesh.settings_in_force()
    hop = percentile(hops, 0.5) * 1000

    def latency(name: str, role: Role, fraction: float, target: float | None) -> Figure:
        return Figure(name, percentile(measured[role], fraction) * 1000, "ms", baseline="raw hop p50",
                      baseline_value=hop, target=target, higher_is_better=False)

    figures = [
        Figure("raw hop p50 (baseline)", hop, "ms", higher_is_better=False),
        Figure("raw hop p99", percentile(hops, 0.99) * 1000, "ms", higher_is_better=False),
        latency("propose-only p50", PROPOSE_ONLY, 0.5, 15.0),
        latency("propose-only p99", PROPOSE_ONLY, 0.99, None),
        latency("full protocol p50", FULL, 0.5, 50.0),
        latency("full protocol p99", FULL, 0.99, None),
        Figure("raw publish+consume (baseline)", raw, "msgs/s"),
        Figure("full deliberations", rate, "delib/s", baseline="raw publish+consume", baseline_value=raw,
               target=50.0),
    ]
    notes = [f"stand-in LLM (instant); {events:.1f} events stored per full deliberation, "
             f"so {rate * events:,.0f} events/s at the mesh's throughput"]
    if failed:
        notes.append(f"{failed} of {count} deliberations in the throughput run failed")
    return Result(
        benchmark="mesh",
        figures=figures,
        details={
            "llm": "bench/llm_standin.py, instant canned answers (a stand-in, not a model)",
            "auth": "every service as its own least-privilege NATS user (fleet up --auth)",
            "results_read_by": "core NATS subscription on the result subjects, subscribed before publishing",
            "councils": {"propose_only": f"{PROPOSE_ONLY.value}: 3 agents, critique_rounds=0",
                         "full": f"{FULL.value}: 3 agents, critique_rounds=1"},
            "latency_samples": samples, "warm_up": WARM_UP,
            "latency_ms": {role.value: [round(s * 1000, 2) for s in values] for role, values in measured.items()},
            "throughput": {"deliberations": count, "window": WINDOW, "failed": failed,
                           "events_per_deliberation": round(events, 1)},
            "raw_message_bytes": len(RAW_MESSAGE),
            "service_settings": settings,
        },
        notes=notes,
    )
