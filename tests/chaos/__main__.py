"""`python -m tests.chaos [--cluster] [--approvals N] [--faults NAMES] [--llm standin|embedded]`: the fault runs.

Prints a table (fault x invariant) and writes JSON under bench/results/; exits 1 if any invariant failed
or a fault did not heal. See docs/reliability.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.report import machine
from contracts.events import Role
from tests.chaos.faults import CLUSTER_FAULT_NAMES, FAULT_NAMES, chosen
from tests.chaos.invariants import INVARIANTS
from tests.chaos.run import EMBEDDED, STANDIN, FaultRun, Options, run


def parse(argv: list[str]) -> tuple[Options, Path]:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--approvals", type=int, default=50, help="plan approvals per fault (default 50)")
    parser.add_argument("--faults", default="", help=f"comma-separated, default all: {','.join(FAULT_NAMES)}; "
                        f"with --cluster: {','.join(CLUSTER_FAULT_NAMES)}")
    parser.add_argument("--cluster", action="store_true",
                        help="run on `fleet up --cluster`: 3 NATS nodes (R3), 2 replicas of each service, "
                        "a Ray head and 2 workers")
    parser.add_argument("--llm", choices=(STANDIN, EMBEDDED), default=STANDIN,
                        help="standin: instant canned answers (default); embedded: SmolLM2 behind the stand-in proxy")
    parser.add_argument("--tasks", type=int, default=1, help="tasks per approval (default 1)")
    parser.add_argument("--roles", default="DEV,QA", help="roles per approval, one deliberation each (default DEV,QA)")
    parser.add_argument("--agents", type=int, default=3, help="agents per council, quorum a majority (default 3)")
    parser.add_argument("--critique-rounds", type=int, default=1, help="critique rounds (default 1)")
    parser.add_argument("--spread", type=float, default=10.0, help="seconds over which approvals go out (default 10)")
    parser.add_argument("--result-timeout", type=float, default=600.0,
                        help="seconds to wait for every result after a fault (default 600)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="where the JSON goes")
    options = parser.parse_args(argv)
    try:
        faults = chosen([n.strip() for n in options.faults.split(",") if n.strip()], cluster=options.cluster)
    except ValueError as exc:
        parser.error(str(exc))
    return Options(
        approvals=options.approvals, faults=faults, llm=options.llm, tasks=options.tasks,
        roles=tuple(Role(r.strip()) for r in options.roles.split(",")), agents=options.agents,
        critique_rounds=options.critique_rounds, spread_s=options.spread, result_timeout_s=options.result_timeout,
        cluster=options.cluster,
    ), options.out


def table(runs: list[FaultRun], llm: str) -> Table:
    title = "Fault runs" + (" (LLM: STAND-IN, instant canned answers)" if llm == STANDIN else " (LLM: SmolLM2)")
    shown = Table(title=title, title_justify="left")
    for column in ("fault", "deliberations", "completed / failed", "results after", "resumed / longest gap",
                   *INVARIANTS):
        shown.add_column(column)
    for r in runs:
        by_name = {c.name: c for c in r.checks}
        ended = f"{r.outcomes.completed} / {r.outcomes.failed}" + (
            f" ({r.outcomes.timed_out} timed out)" if r.outcomes.timed_out else "")
        fault = r.fault if r.healed else f"{r.fault} [red](not healed)[/]"
        gap = r.availability
        shown.add_row(fault, str(r.deliberations), ended, f"{r.seconds.get('results_by', 0):.0f}s",
                      f"{_seconds(gap.resumed_after_s)} / {_seconds(gap.longest_gap_s)}",
                      *(_cell(by_name[name]) for name in INVARIANTS))
    return shown


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:g}s"


def _cell(check) -> str:
    return f"[green]✓[/] {check.summary}" if check.held else f"[red]✗[/] {check.summary}"


def write(runs: list[FaultRun], options: Options, out: Path, started: dt.datetime, argv: list[str]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "started_at": started.isoformat(timespec="seconds"), "argv": argv, "machine": machine(),
        "llm": options.llm, "approvals_per_fault": options.approvals, "tasks": options.tasks,
        "roles": [r.value for r in options.roles], "agents": options.agents,
        "critique_rounds": options.critique_rounds, "llm_timeout_s": options.llm_timeout_s,
        "result_timeout_s": options.result_timeout_s, "cluster": options.cluster,
        "held": all(r.held for r in runs), "runs": [r.as_json() for r in runs],
    }
    path = out / f"chaos-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    options, out = parse(argv)
    console = Console() if sys.stdout.isatty() else Console(width=200)
    started = dt.datetime.now(dt.UTC)
    runs = asyncio.run(run(options, report=console.print))
    console.print(table(runs, options.llm))
    for r in runs:
        for check in r.checks:
            if not check.held:
                console.print(f"[red]{r.fault} / {check.name}[/]: {json.dumps(check.evidence)}")
        if r.observed:
            console.print(f"[dim]{r.fault}: {json.dumps(r.observed)}[/]")
    console.print(f"JSON: {write(runs, options, out, started, argv)}")
    return 0 if runs and all(r.held for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
