"""Projection rebuild rate: events per second folded from the log into the KV and the graph read models.

Baseline: reading the same streams raw with an nats-py ordered consumer, in the same run, on the same
servers. Also measured, to show where the time goes: decoding alone, and decoding plus each model's
pure fold (no store), both on messages already in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import nats
import psutil
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from bench.events import event_log
from bench.report import Figure, Result
from services.embedded.servers import nats_plan, redis_plan, running_server
from services.mesh import nats_patches
from services.mesh.decoding import decode_incoming, stored_position
from services.mesh.log_reader import Reading, read_log
from services.mesh.settings import Settings
from services.projection.app import projectors
from services.projection.fold import fold
from services.projection.graph_model import graph_writes
from services.projection.kv_model import kv_writes
from services.projection.projector import Progress as StreamProgress
from services.projection.projector import Projector
from services.projection.rebuild import RebuildResult, rebuild
from streams.apply import apply_all
from streams.definitions import GRAPH_PROJECTION, StreamSpec

TARGET = 20_000.0
RATE = "events/s"
PUBLISH_WINDOW = 2_000
# A second rebuild to compare content hashes doubles the slowest step: only on small logs unless asked.
TWICE_UP_TO = 20_000


def progress_bar(console: Console) -> Progress:
    return Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console)


def _rate_text(done: int, began: float) -> str:
    return f"{done / max(time.monotonic() - began, 1e-6):>9,.0f} ev/s"


async def publish(js: JetStreamContext, total: int, bar: Progress) -> float:
    """Publish the log with async JetStream publishes, a window at a time; returns the seconds it took."""
    task = bar.add_task("publish", total=total, rate="")
    began, done, window = time.monotonic(), 0, []
    for stored in event_log(total):
        window.append(await js.publish_async(stored.subject, stored.body, headers=stored.headers))
        if len(window) >= PUBLISH_WINDOW:
            done += await _settle(window)
            bar.update(task, completed=done, rate=_rate_text(done, began))
    done += await _settle(window)
    await js.publish_async_completed()
    bar.update(task, completed=done, rate=_rate_text(done, began))
    return time.monotonic() - began


async def _settle(window: list) -> int:
    for future in window:
        ack = await future
        if ack.duplicate:
            raise RuntimeError(f"event stored twice: {ack}")
    count = len(window)
    window.clear()
    return count


async def read_raw(js: JetStreamContext, streams: Sequence[StreamSpec], bar: Progress) -> tuple[list[Msg], float]:
    """Every stored message of `streams` through an ordered consumer, nothing decoded: the baseline."""
    counts = {s.name: (await js.stream_info(s.name)).state.messages for s in streams}
    task = bar.add_task("raw read (baseline)", total=sum(counts.values()), rate="")
    messages: list[Msg] = []
    began = time.monotonic()
    for stream in streams:
        if not counts[stream.name]:
            continue
        subject = stream.subjects[0] if len(stream.subjects) == 1 else ">"
        subscription = await js.subscribe(subject, stream=stream.name, ordered_consumer=True,
                                          deliver_policy=DeliverPolicy.ALL, inactive_threshold=60.0)
        for _ in range(counts[stream.name]):
            messages.append(await subscription.next_msg(timeout=10.0))
            if len(messages) % 5_000 == 0:
                bar.update(task, completed=len(messages), rate=_rate_text(len(messages), began))
        await subscription.unsubscribe()
    seconds = time.monotonic() - began
    bar.update(task, completed=len(messages), rate=_rate_text(len(messages), began))
    return messages, seconds


async def read_callback(js: JetStreamContext, streams: Sequence[StreamSpec]) -> tuple[int, float]:
    """The same streams through ordered consumers with a callback, no next_msg: nats-py's ceiling."""
    began, read = time.monotonic(), 0
    for stream in streams:
        expected = (await js.stream_info(stream.name)).state.messages
        if expected:
            read += await _count_with_callback(js, stream, expected)
    return read, time.monotonic() - began


async def _count_with_callback(js: JetStreamContext, stream: StreamSpec, expected: int) -> int:
    done, count = asyncio.Event(), 0

    async def on_message(message: Msg) -> None:
        nonlocal count
        count += 1
        if count >= expected:
            done.set()

    subject = stream.subjects[0] if len(stream.subjects) == 1 else ">"
    subscription = await js.subscribe(subject, stream=stream.name, cb=on_message, ordered_consumer=True,
                                      deliver_policy=DeliverPolicy.ALL, inactive_threshold=60.0)
    await asyncio.wait_for(done.wait(), timeout=600)
    await subscription.unsubscribe()
    return count


async def read_batched(js: JetStreamContext, streams: Sequence[StreamSpec]) -> tuple[int, float]:
    """The same streams through the projector's own reader, in its catch-up batches, nothing decoded:
    the ceiling of a rebuild's reading."""
    began, read = time.monotonic(), 0
    for stream in streams:
        last = (await js.stream_info(stream.name)).state.last_seq
        if not last:
            continue
        async with read_log(js, Reading(stream.name)) as reader:
            through = 0
            while not reader.caught_up and through < last:
                batch = await reader.next_batch(GRAPH_PROJECTION.catch_up_batch_size, wait_s=2.0)
                if batch:
                    read += len(batch)
                    through = stored_position(batch[-1])[0]
    return read, time.monotonic() - began


def parse_positions(messages: Sequence[Msg]) -> float:
    """Parse each message's stream sequence and time from its reply subject, as `fold` does: seconds."""
    began = time.monotonic()
    for message in messages:
        stored_position(message)
    return time.monotonic() - began


def decode_all(messages: Sequence[Msg]) -> float:
    """decode_incoming on each message in memory, as `fold` calls it; returns the seconds it took."""
    began = time.monotonic()
    for message in messages:
        sequence, stored_at = stored_position(message)
        decode_incoming(message.subject, message.headers or {}, message.data, received_at=stored_at,
                        stream_sequence=sequence, deliveries=1)
    return time.monotonic() - began


def fold_all(messages: Sequence[Msg], to_writes: Callable, name: str, batch: int) -> tuple[float, int]:
    """The projector's pure fold (decode and the model's writes), in batches, no store: seconds, writes."""
    began, writes = time.monotonic(), 0
    for start in range(0, len(messages), batch):
        writes += len(fold(messages[start:start + batch], to_writes, name).writes)
    return time.monotonic() - began, writes


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds used so far by this process, and by the servers it started (its child processes)."""
    servers = 0.0
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            times = child.cpu_times()
            servers += times.user + times.system
    return time.process_time(), servers


async def rebuild_with_bar(js: JetStreamContext, projector: Projector, total: int, bar: Progress,
                           label: str) -> tuple[RebuildResult, dict[str, float]]:
    """The rebuild, and the CPU microseconds per event it cost this process and the servers while it folded.

    CPU per event moves much less than a rate with what else the machine runs.
    """
    task = bar.add_task(label, total=total, rate="")
    applied: dict[str, int] = {}
    began = time.monotonic()
    cpu_began = cpu_seconds()
    cpu_folded = [cpu_began]

    def on_progress(progress: StreamProgress) -> None:
        applied[progress.stream] = progress.applied
        done = sum(applied.values())
        bar.update(task, completed=done, rate=_rate_text(done, began))
        cpu_folded[0] = cpu_seconds()

    # No grace: nothing follows the read models here, so the replaced namespace can go at once.
    result = await rebuild(js, projector, on_progress=on_progress, grace_s=0.0)
    events = max(result.events, 1)
    return result, {"client": 1e6 * (cpu_folded[0][0] - cpu_began[0]) / events,
                    "servers": 1e6 * (cpu_folded[0][1] - cpu_began[1]) / events}


async def run(options: argparse.Namespace, console: Console) -> Result:
    """Publish `options.events` events, then measure raw read, decode, fold and both rebuilds."""
    total = options.events
    twice = options.twice if options.twice is not None else total <= TWICE_UP_TO
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        root = Path(tmp)
        async with (running_server(nats_plan(root), root / "logs") as nats_endpoints,
                    running_server(redis_plan(root), root / "logs") as redis_endpoints):
            # As every fleet process does (services/mesh/runtime.py): nats-py's header parse, only faster.
            nats_patches.install()
            client = await nats.connect(nats_endpoints["nats_url"])
            try:
                js = client.jetstream(publish_async_max_pending=2 * PUBLISH_WINDOW)
                await apply_all(js, replicas=1)
                settings = Settings(data_dir=root, nats_url=nats_endpoints["nats_url"],
                                    valkey_url=redis_endpoints["valkey_url"], graph_uri=redis_endpoints["graph_uri"],
                                    graph_name="bench", kv_prefix="bench")
                return await _measure(js, settings, total, twice, console)
            finally:
                await client.close()


async def _measure(js: JetStreamContext, settings: Settings, total: int, twice: bool, console: Console) -> Result:
    graph, kv = projectors(settings)
    details: dict = {"events": total}
    notes: list[str] = []
    try:
        with progress_bar(console) as bar:
            publish_s = await publish(js, total, bar)
            messages, raw_s = await read_raw(js, GRAPH_PROJECTION.streams, bar)
            details["bytes"] = sum(len(m.data) + len(m.header or b"") for m in messages)
            details["streams"] = {
                s.name: (await js.stream_info(s.name)).state.messages for s in GRAPH_PROJECTION.streams
            }
            callback_read, callback_s = await read_callback(js, GRAPH_PROJECTION.streams)
            batched_read, batched_s = await read_batched(js, GRAPH_PROJECTION.streams)
            bar.console.log("parsing, decoding and folding in memory (no store) ...")
            position_s = parse_positions(messages)
            decode_s = decode_all(messages)
            graph_fold_s, graph_write_count = fold_all(messages, graph_writes, "graph", GRAPH_PROJECTION.batch_size)
            kv_fold_s, kv_write_count = fold_all(messages, kv_writes, "kv", GRAPH_PROJECTION.batch_size)
            read = len(messages)
            del messages
            kv_result, kv_cpu = await rebuild_with_bar(js, kv, total, bar, "rebuild kv")
            graph_result, graph_cpu = await rebuild_with_bar(js, graph, total, bar, "rebuild graph")
            if twice:
                kv_again, _ = await rebuild_with_bar(js, kv, total, bar, "rebuild kv again")
                graph_again, _ = await rebuild_with_bar(js, graph, total, bar, "rebuild graph again")
    finally:
        for projector in (graph, kv):
            await projector.store.close()
    raw_rate = read / raw_s
    details |= {
        "seconds": {"publish": publish_s, "raw_read": raw_s, "callback_read": callback_s,
                    "batched_read": batched_s, "position": position_s, "decode": decode_s, "graph_fold": graph_fold_s,
                    "kv_fold": kv_fold_s, "kv_rebuild": kv_result.seconds, "graph_rebuild": graph_result.seconds},
        "writes": {"graph": graph_write_count, "kv": kv_write_count},
        "applied": {"kv": kv_result.events, "graph": graph_result.events},
        "content_hash": {"kv": kv_result.content_hash, "graph": graph_result.content_hash},
        "batch_size": GRAPH_PROJECTION.batch_size,
        "catch_up_batch_size": GRAPH_PROJECTION.catch_up_batch_size,
        "cpu_us_per_event": {"kv": kv_cpu, "graph": graph_cpu},
    }
    if twice:
        stable = {"kv": kv_again.content_hash == kv_result.content_hash,
                  "graph": graph_again.content_hash == graph_result.content_hash}
        details["content_hash_stable"] = stable
        details["second_rebuild_rate"] = {"kv": kv_again.rate, "graph": graph_again.rate}
        notes.append("content hash stable over a second rebuild: "
                     + ", ".join(f"{name} {'yes' if same else 'NO'}" for name, same in stable.items()))
    else:
        notes.append(f"second rebuild (content hash check) skipped above {TWICE_UP_TO} events; --twice forces it")
    notes.append("CPU per event while folding, microseconds, this process + the servers: "
                 + ", ".join(f"{name} {cpu['client']:.0f} + {cpu['servers']:.0f}"
                             for name, cpu in (("kv", kv_cpu), ("graph", graph_cpu))))
    notes.append(f"{total:,} events, {details['bytes'] / total:,.0f} bytes each on average; published at "
                 f"{total / publish_s:,.0f} events/s")
    batched_rate = batched_read / batched_s
    details["ratio_to_batched_read"] = {"kv": kv_result.rate / batched_rate, "graph": graph_result.rate / batched_rate}
    notes.append(f"rebuild / raw read in the projector's batches: kv {kv_result.rate / batched_rate:.2f}, "
                 f"graph {graph_result.rate / batched_rate:.2f}")
    baseline = "raw read, next_msg"
    return Result("rebuild", [
        Figure("raw read, next_msg", raw_rate, RATE),
        Figure("raw read, callback", callback_read / callback_s, RATE, baseline, raw_rate),
        Figure("raw read, projector's batches", batched_rate, RATE, baseline, raw_rate),
        Figure("position parse (memory)", read / position_s, RATE, baseline, raw_rate),
        Figure("decode only (memory)", read / decode_s, RATE, baseline, raw_rate),
        Figure("fold kv model (memory)", read / kv_fold_s, RATE, baseline, raw_rate),
        Figure("fold graph model (memory)", read / graph_fold_s, RATE, baseline, raw_rate),
        Figure("rebuild kv", kv_result.rate, RATE, baseline, raw_rate, target=TARGET),
        Figure("rebuild graph", graph_result.rate, RATE, baseline, raw_rate, target=TARGET),
    ], details, notes)
