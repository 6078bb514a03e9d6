"""A soak: approvals at a steady rate for a bounded time, with every process's memory and every store's
size sampled throughout. Flat after warm-up is the target; growth per hour is the figure.

The mesh is the embedded one with the stand-in LLM (answers padded to about 1.5 KB), sized so that every
limit bites within the run: the capacity model's load is 1 deliberation every 4 days, so every stream and
bucket is at a floor of SOAK_FLOOR_MIB (FLEET_STREAM_FLOOR_MIB), a record lives SOAK_RECORD_TTL_S after its last
write (FLEET_RECORD_TTL_S), the read models keep a deliberation as long (FLEET_READ_MODEL_RETENTION_S), and
Ray remembers SOAK_RAY_TASK_EVENTS actor calls. So what weeks of production do to the stores (streams
reaching their byte limits and dropping their oldest events, records and read models expiring) happens
here in minutes, and a store that still grows at the end is one the limits miss.

`python -m bench soak --deliberations 2000 --minutes 30`: one full deliberation (3 agents, 1 critique
round) per approval, up to WINDOW in flight. The warm-up lasts until every window has filled once (the
busy streams' duplicate windows, then the records' life), and at least WARM_UP_SHARE of the run; the
growth of each figure is the least-squares slope of its samples after it, per hour.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import tempfile
import time
from pathlib import Path

from rich.console import Console

from bench.capacity import LONG_ANSWER_CHARS, set_answer_chars, used_memory
from bench.deliberating import Mesh, deliberate_in_window, set_councils, standin_mesh
from bench.footprint import roots_of, stack_memory
from bench.report import Figure, Result
from contracts.events import Role
from services.councils.domain import new_council
from services.embedded.stack import RAY_TASK_EVENTS_VARIABLE
from services.mesh.settings import READ_MODEL_RETENTION_VARIABLE
from services.planning.client import Results
from streams.apply import RECORD_TTL_VARIABLE, apply_all
from streams.capacity import FLOOR_VARIABLE, LOAD_VARIABLE, Load
from streams.definitions import AGENT, BUCKETS, ORCHESTRATION, STREAMS

FULL = Role.DEV
WINDOW = 32
SAMPLE_EVERY_S = 20.0
WARM_UP_SHARE = 0.25
# One deliberation every four days: every stream's and bucket's limit is then the floor, all reached within minutes.
SOAK_LOAD = Load(deliberations_per_day=0.25)
SOAK_FLOOR_MIB = 8
SOAK_RECORD_TTL_S = 120.0
SOAK_RAY_TASK_EVENTS = 2000
# nats-server's memory budget (GOMEMLIMIT, as k8s sets it from the pod's limit), about 2.5 times the live heap
# it needs at the soak's limits (28 to 41 MiB measured: the caches of the busy streams' blocks). Without one,
# Go keeps the highest heap its collector ever let grow, so a process with a flat live heap looks as if it leaks.
SOAK_NATS_MEMORY = "96MiB"
# Go prints a line per collection with this variable: `gc 7 @1.2s 0%: ..., 41->43->29 MB, 58 MB goal, ...`,
# the last of the three sizes (MiB) being the heap still live after it.
GC_TRACE = {"GODEBUG": "gctrace=1"}
LIVE_HEAP = re.compile(r"^gc \d+ @.*?(\d+)->(\d+)->(\d+) MB", re.MULTILINE)
# Until the duplicate windows of the busy streams (message ids NATS holds in memory) and the records have
# filled once: before that, memory grows by design.
WARM_UP_S = max(ORCHESTRATION.duplicate_window_s, AGENT.duplicate_window_s) + SOAK_RECORD_TTL_S
RESULT_TIMEOUT_S = 300.0


def slope_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) samples, per hour; 0 for fewer than two."""
    if len(samples) < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / len(samples)
    mean_v = sum(v for _, v in samples) / len(samples)
    spread = sum((t - mean_t) ** 2 for t, _ in samples)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in samples) / spread * 3600


def live_heap_mib(gc_trace: Path) -> float:
    """The heap a Go server still held after its latest collection, from its gctrace log; 0 before the first."""
    found = LIVE_HEAP.findall(gc_trace.read_text(errors="replace")) if gc_trace.is_file() else []
    return float(found[-1][2]) if found else 0.0


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


async def sample(mesh: Mesh, began: float) -> dict:
    memory = stack_memory(roots_of(mesh.stack))
    stores = {name: (await mesh.js.stream_info(name)).state.bytes
              for name in [s.name for s in STREAMS] + [b.stream_name for b in BUCKETS]}
    return {
        "t": time.monotonic() - began,
        "pss_mib": {name: kib / 1024 for name, kib in memory.pss_kib.items()},
        "stores_mib": {name: size / 2**20 for name, size in stores.items()},
        "nats_dir_mib": directory_bytes(mesh.stack.data_dir / "nats") / 2**20,
        "nats_live_heap_mib": live_heap_mib(mesh.stack.logs_dir / "nats.log"),
        "redis_used_mib": await used_memory(mesh.stack.endpoints["valkey_url"]) / 2**20,
    }


async def soak(mesh: Mesh, results: Results, count: int, seconds: float, console: Console) -> tuple[list, int, int]:
    samples: list[dict] = []
    began = time.monotonic()
    next_sample = 0.0

    async def paced(n: int) -> None:
        """Hold the n-th approval until its time, sampling meanwhile."""
        nonlocal next_sample
        due = began + n * seconds / count
        while time.monotonic() < due:
            if time.monotonic() - began >= next_sample:
                samples.append(await sample(mesh, began))
                next_sample += SAMPLE_EVERY_S
            await asyncio.sleep(min(0.2, max(0.0, due - time.monotonic())))

    def progress(approved: int) -> None:
        if approved % 200 == 0:
            console.print(f"  {approved} of {count} approved after {time.monotonic() - began:.0f}s")

    done = await deliberate_in_window(mesh, results, FULL, count, WINDOW, RESULT_TIMEOUT_S, progress, paced)
    samples.append(await sample(mesh, began))
    failed = sum(outcome != "completed" for _, outcome in done)
    return samples, len(done), failed


def growth(samples: list[dict], pick, warm_up_s: float = WARM_UP_S) -> tuple[float, float, float]:
    """(value at the end of warm-up, value at the end, slope per hour after warm-up). A run too short for
    the warm-up to leave two samples counts its last 1 - WARM_UP_SHARE."""
    share = samples[-1]["t"] * WARM_UP_SHARE
    warm = [s for s in samples if s["t"] >= max(share, warm_up_s)]
    if len(warm) < 2:
        warm = [s for s in samples if s["t"] >= share]
    series = [(s["t"], pick(s)) for s in warm]
    return series[0][1], series[-1][1], slope_per_hour(series)


def summary(start: float, end: float, slope: float) -> dict[str, float]:
    return {"warm_mib": round(start, 1), "end_mib": round(end, 1), "slope_mib_per_h": round(slope, 1)}


async def run(options: argparse.Namespace, console: Console) -> Result:
    count, seconds = options.deliberations, options.minutes * 60
    # The mesh's own `fleet streams apply` (in this process) and its services read these.
    soak_env = {LOAD_VARIABLE: str(SOAK_LOAD.deliberations_per_day), FLOOR_VARIABLE: str(SOAK_FLOOR_MIB),
                RECORD_TTL_VARIABLE: str(SOAK_RECORD_TTL_S), READ_MODEL_RETENTION_VARIABLE: str(SOAK_RECORD_TTL_S),
                RAY_TASK_EVENTS_VARIABLE: str(SOAK_RAY_TASK_EVENTS), "GOMEMLIMIT": SOAK_NATS_MEMORY, **GC_TRACE}
    saved = {name: os.environ.get(name) for name in soak_env}
    os.environ.update(soak_env)
    try:
        with tempfile.TemporaryDirectory(prefix="fleet-bench-soak-") as folder:
            async with standin_mesh(Path(folder)) as mesh:
                await apply_all(mesh.js)  # as the stack did, so the run's limits are the soak's
                await set_councils(mesh.stack, [new_council(FULL, 3, critique_rounds=1)])
                # Answers of about 1.5 KB, as in the capacity benchmark's second run: the byte limits bite sooner.
                await set_answer_chars(mesh.standin_url, LONG_ANSWER_CHARS)
                results = Results()
                await results.subscribe(mesh.client)
                console.print(f"soak: {count} approvals over {options.minutes:g} min, up to {WINDOW} in flight, "
                              f"a sample every {SAMPLE_EVERY_S:.0f}s, growth counted after "
                              f"{max(WARM_UP_S, seconds * WARM_UP_SHARE) / 60:.0f} min")
                samples, ended, failed = await soak(mesh, results, count, seconds, console)
                await results.close()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    figures, details = [], {}
    for name in sorted(samples[-1]["pss_mib"]):
        start, end, slope = growth(samples, lambda s, n=name: s["pss_mib"].get(n, 0.0))
        figures.append(Figure(f"{name} PSS growth after warm-up", slope, "MiB/h", higher_is_better=False))
        details[f"pss:{name}"] = summary(start, end, slope)
    for name in sorted(samples[-1]["stores_mib"]):
        start, end, slope = growth(samples, lambda s, n=name: s["stores_mib"][n])
        figures.append(Figure(f"{name} stored, end", end, "MiB", higher_is_better=False))
        details[f"store:{name}"] = summary(start, end, slope)
    for key, label in (("nats_dir_mib", "nats-server store directory"), ("nats_live_heap_mib", "nats-server live heap"),
                       ("redis_used_mib", "redis used_memory")):
        start, end, slope = growth(samples, lambda s, k=key: s[k])
        figures.append(Figure(f"{label} growth after warm-up", slope, "MiB/h", higher_is_better=False))
        details[key] = summary(start, end, slope)
    notes = [f"{ended} deliberations ended, {failed} not completed; limits at {SOAK_LOAD.deliberations_per_day:g} "
             f"deliberations a day ({SOAK_FLOOR_MIB} MiB floors), records and read models kept "
             f"{SOAK_RECORD_TTL_S:.0f}s, {SOAK_RAY_TASK_EVENTS} actor calls in Ray's memory, "
             f"nats-server's memory limit {SOAK_NATS_MEMORY}"]
    return Result(benchmark="soak", figures=figures,
                  details={"approvals": count, "minutes": options.minutes, "window": WINDOW, "failed": failed,
                           "samples": samples, **details}, notes=notes)
