"""A soak: approvals at a steady rate for a bounded time, with every process's memory and every store's
size sampled throughout. Flat after warm-up is the target; growth per hour is the figure.

The mesh is the embedded one with the stand-in LLM (answers padded to about 1.5 KB), sized so that its
limits bite within the run: the
capacity model's load is 1 deliberation a day (every stream and bucket at its 64 MiB floor), and a
record lives SOAK_RECORD_TTL_S after its last write (FLEET_RECORD_TTL_S). So what a day of production
does to the stores (streams reaching their byte limits and dropping their oldest events, records
expiring) happens here in minutes, and a store that still grows at the end is one the limits miss.

`python -m bench soak --deliberations 1200 --minutes 20`: one full deliberation (3 agents, 1 critique
round) per approval, up to WINDOW in flight. The first WARM_UP_SHARE of the run is warm-up; the growth
of each figure is the least-squares slope of its samples after it, per hour.
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
from services.planning.client import Results
from streams.apply import RECORD_TTL_VARIABLE, apply_all
from streams.capacity import LOAD_VARIABLE, Load
from streams.definitions import BUCKETS, STREAMS

FULL = Role.DEV
WINDOW = 32
SAMPLE_EVERY_S = 20.0
WARM_UP_SHARE = 0.25
SOAK_LOAD = Load(deliberations_per_day=1)
SOAK_RECORD_TTL_S = 120.0
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


def growth(samples: list[dict], pick) -> tuple[float, float, float]:
    """(value at the end of warm-up, value at the end, slope per hour after warm-up)."""
    warm = [s for s in samples if s["t"] >= samples[-1]["t"] * WARM_UP_SHARE]
    series = [(s["t"], pick(s)) for s in warm]
    return series[0][1], series[-1][1], slope_per_hour(series)


def summary(start: float, end: float, slope: float) -> dict[str, float]:
    return {"warm_mib": round(start, 1), "end_mib": round(end, 1), "slope_mib_per_h": round(slope, 1)}


async def run(options: argparse.Namespace, console: Console) -> Result:
    count, seconds = options.deliberations, options.minutes * 60
    # The mesh's own `fleet streams apply` (in this process) and its services read these.
    saved = {name: os.environ.get(name) for name in (LOAD_VARIABLE, RECORD_TTL_VARIABLE)}
    os.environ[LOAD_VARIABLE] = str(SOAK_LOAD.deliberations_per_day)
    os.environ[RECORD_TTL_VARIABLE] = str(SOAK_RECORD_TTL_S)
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
                              f"a sample every {SAMPLE_EVERY_S:.0f}s")
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
    for key, label in (("nats_dir_mib", "nats-server store directory"), ("redis_used_mib", "redis used_memory")):
        start, end, slope = growth(samples, lambda s, k=key: s[k])
        figures.append(Figure(f"{label} growth after warm-up", slope, "MiB/h", higher_is_better=False))
        details[key] = summary(start, end, slope)
    notes = [f"{ended} deliberations ended, {failed} not completed; limits at {SOAK_LOAD.deliberations_per_day:g} "
             f"deliberation a day (64 MiB floors), records kept {SOAK_RECORD_TTL_S:.0f}s"]
    return Result(benchmark="soak", figures=figures,
                  details={"approvals": count, "minutes": options.minutes, "window": WINDOW, "failed": failed,
                           "samples": samples, **details}, notes=notes)
