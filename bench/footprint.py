"""Footprint of the embedded mesh as `fleet up` runs it: cold start, and memory idle and under load.

The real embedded default: nats-server, redis+FalkorDB, llama.cpp with SmolLM2-135M, a local Ray,
and the six services, each its own process (no auth, as plain `fleet up`).

- Cold start: from `EmbeddedStack.start()` until every service answers /healthz and the default
  councils are seeded. Baseline: the servers alone, the moment the last of the four is ready, in the
  same start; the ratio says what the services add. Each server's own time is in the details.
- Memory: every process of the stack (each child leads its own process group; Ray's workers and
  actors descend from the Ray server) summed, as PSS (shared pages split between their users, so
  the sum is honest) and as RSS (each process's resident set; shared pages counted again in every
  process, so an upper bound). Idle: after the start settles. Under load: the peak while two
  deliberations run on the real LLM, sampled twice a second. Baseline: the four servers' processes
  alone, in the same sample.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from rich.console import Console

from bench.deliberating import approval, approve, councils_seeded
from bench.report import Figure, Result
from contracts.events import Role
from services.embedded import binaries
from services.embedded.stack import EmbeddedStack
from services.planning.client import Results, deliberation_ids
from tests.e2e.flows import as_operator

COLD_START_TARGET_S = 15.0
IDLE_TARGET_MIB = 1.5 * 1024
SETTLE_S = 10.0
SAMPLE_EVERY_S = 0.5
LOAD_TIMEOUT_S = 300.0
READY_LINE = re.compile(r"^(?P<name>\S+) ready in (?P<seconds>[\d.]+)s")


@dataclass(frozen=True)
class Memory:
    """Kibibytes summed over processes, as PSS and RSS, for the servers and for the whole stack."""

    pss_kib: dict[str, int]
    rss_kib: dict[str, int]
    processes: dict[str, int]

    def total(self, kind: str, names: set[str] | None = None) -> float:
        table = self.pss_kib if kind == "pss" else self.rss_kib
        return sum(v for k, v in table.items() if names is None or k in names) / 1024


def _process_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent, process group, session), from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces; the fields after it are plain.
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(entry)] = (int(fields[1]), int(fields[2]), int(fields[3]))
    return table


def _kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def stack_memory(roots: dict[int, str]) -> Memory:
    """Each root's process group and session, and every descendant, attributed to the root's name."""
    table = _process_table()
    owner: dict[int, str] = {}
    for pid, (_, group, session) in table.items():
        if group in roots or session in roots:
            owner[pid] = roots.get(group) or roots[session]
    changed = True
    while changed:  # descendants that left their parent's group (Ray starts its workers in new sessions)
        changed = False
        for pid, (parent, _, _) in table.items():
            if pid not in owner and parent in owner:
                owner[pid] = owner[parent]
                changed = True
    pss, rss, count = defaultdict(int), defaultdict(int), defaultdict(int)
    for pid, name in owner.items():
        pss[name] += _kib(pid, "Pss")
        rss[name] += _kib(pid, "Rss")
        count[name] += 1
    return Memory(dict(pss), dict(rss), dict(count))


def roots_of(stack: EmbeddedStack) -> dict[int, str]:
    roots = {p.pid: p.name for p in stack.servers if p.pid is not None}
    roots.update({s.process.pid: name for name, s in stack.services.items() if s.process.pid is not None})
    return roots


async def healthy(session: aiohttp.ClientSession, port: int) -> bool:
    try:
        async with session.get(f"http://127.0.0.1:{port}/healthz") as reply:
            return reply.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def services_healthy(stack: EmbeddedStack, began: float, timeout_s: float = 120.0) -> dict[str, float]:
    """Seconds from `began` until each service's /healthz answered 200."""
    ready: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
        while len(ready) < len(stack.metrics_ports):
            if time.monotonic() > deadline:
                raise RuntimeError(f"services not healthy after {timeout_s:.0f}s: "
                                   f"{sorted(set(stack.metrics_ports) - set(ready))}")
            for name, port in stack.metrics_ports.items():
                if name not in ready and await healthy(session, port):
                    ready[name] = time.monotonic() - began
            await asyncio.sleep(0.05)
    return ready


def import_seconds() -> float:
    """A fresh interpreter importing the heaviest service's composition root (agents: Ray, FastStream)."""
    began = time.monotonic()
    subprocess.run([str(binaries.python()), "-c", "import services.agents.app"], check=True)
    return time.monotonic() - began


async def peak_under_load(stack: EmbeddedStack, console: Console) -> tuple[Memory, float, int]:
    """Two deliberations (DEV and QA) on the real LLM, memory sampled meanwhile: the peak sample."""
    client = await as_operator(stack)
    results = Results()
    await results.subscribe(client)
    approved = approval([Role.DEV, Role.QA])
    arrivals = asyncio.gather(*(results.expect(d) for d in deliberation_ids(approved)))
    began = time.monotonic()
    await approve(client.jetstream(), approved)
    roots = roots_of(stack)
    peak, samples = stack_memory(roots), 0
    while not arrivals.done() and time.monotonic() - began < LOAD_TIMEOUT_S:
        await asyncio.sleep(SAMPLE_EVERY_S)
        sample = stack_memory(roots)
        samples += 1
        if sample.total("pss") > peak.total("pss"):
            peak = sample
    finished = sum(outcome == "completed" for _, outcome in arrivals.result()) if arrivals.done() else 0
    if not arrivals.done():
        arrivals.cancel()
        console.print(f"  the deliberations did not finish within {LOAD_TIMEOUT_S:.0f}s; the peak is of what ran")
    await results.close()
    await client.close()
    return peak, time.monotonic() - began, finished


async def run(options: argparse.Namespace, console: Console) -> Result:
    with tempfile.TemporaryDirectory(prefix="fleet-bench-footprint-") as folder:
        lines: list[tuple[float, str]] = []
        began = time.monotonic()
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        stack = EmbeddedStack(Path(folder) / "fleet", env=env,
                              report=lambda line: lines.append((time.monotonic() - began, line)))
        try:
            await stack.start()
            started = time.monotonic() - began
            health = await services_healthy(stack, began)
            client = await as_operator(stack)
            await councils_seeded(stack, client)
            await client.close()
            cold = time.monotonic() - began
            servers_ready = {m["name"]: at for at, line in lines if (m := READY_LINE.match(line))}
            console.print(f"  cold start {cold:.1f}s (servers {max(servers_ready.values()):.1f}s); settling")
            await asyncio.sleep(SETTLE_S)
            servers = {p.name for p in stack.servers}
            idle = stack_memory(roots_of(stack))
            console.print("  under load: two deliberations on the real LLM")
            peak, load_seconds, finished = await peak_under_load(stack, console)
        finally:
            await stack.stop()
    imports = import_seconds()
    servers_s = max(servers_ready.values())
    mib = "MiB"

    def memory(name: str, sample: Memory, kind: str, target: float | None) -> Figure:
        return Figure(name, sample.total(kind), mib, baseline="servers alone",
                      baseline_value=sample.total(kind, servers), target=target, higher_is_better=False)

    return Result(
        benchmark="footprint",
        figures=[
            Figure("servers ready (baseline)", servers_s, "s", higher_is_better=False),
            Figure("cold start, services healthy + councils", cold, "s", baseline="servers ready",
                   baseline_value=servers_s, target=COLD_START_TARGET_S, higher_is_better=False),
            Figure("import services.agents.app", imports, "s", higher_is_better=False),
            Figure("servers alone, idle PSS (baseline)", idle.total("pss", servers), mib, higher_is_better=False),
            memory("whole mesh, idle PSS", idle, "pss", IDLE_TARGET_MIB),
            memory("whole mesh, idle RSS sum", idle, "rss", IDLE_TARGET_MIB),
            memory("whole mesh, peak PSS under load", peak, "pss", None),
            memory("whole mesh, peak RSS sum under load", peak, "rss", None),
        ],
        details={
            "stack": "fleet up default: nats, redis+falkordb, llama.cpp SmolLM2-135M, local Ray, 6 services, no auth",
            "seconds_from_start": {"servers_ready": servers_ready, "start_returned": round(started, 2),
                                   "services_healthy": {k: round(v, 2) for k, v in health.items()},
                                   "councils_seeded": round(cold, 2)},
            "idle_after_s": SETTLE_S,
            "idle_kib": {"pss": idle.pss_kib, "rss": idle.rss_kib, "processes": idle.processes},
            "peak_kib": {"pss": peak.pss_kib, "rss": peak.rss_kib, "processes": peak.processes},
            "load": {"deliberations": 2, "completed": finished, "seconds": round(load_seconds, 1),
                     "sampled_every_s": SAMPLE_EVERY_S},
        },
        notes=["memory is attributed to the process that started it: Ray's workers and the agents' actors "
               "count under ray"],
    )
