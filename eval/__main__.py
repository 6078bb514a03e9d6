"""`python -m eval [--cases A,B] [--limit N] [--parallel N]`: the evaluation set through the mesh; table and JSON.

Exits 1 when a target is missed: every judge and select answer schema-valid, 95% of deliberations completed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from eval.cases import load_cases
from eval.measures import OVERALL, report
from eval.run import embedded_mesh, evaluate
from services.mesh.settings import load_settings

TARGETS = {"structured_valid_share": 1.0, "completion_rate": 0.95}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", help="only these cases, by name, comma-separated (default: all)")
    parser.add_argument("--limit", type=int, help="only the first N cases")
    parser.add_argument("--parallel", type=int, default=2, help="approvals in flight at once (default 2)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds to wait for an approval's results once published (default 1800)")
    parser.add_argument("--out", type=Path, default=Path("eval/results"), help="where the JSON goes")
    parser.add_argument("--data-dir", type=Path, help="the mesh's folder (default: a new temporary one)")
    options = parser.parse_args(argv)
    cases = load_cases()
    if options.cases:
        wanted = options.cases.split(",")
        unknown = sorted(set(wanted) - {c.name for c in cases})
        if unknown:
            parser.error(f"unknown case(s) {', '.join(unknown)}; see eval/approvals.toml")
        cases = [c for c in cases if c.name in wanted]
    options.selected = cases[:options.limit] if options.limit else cases
    return options


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _wins(figure: dict) -> str:
    if not figure["compared"]:
        return "-"
    return f"{figure['won']:.0%} / {figure['tied']:.0%} / {figure['lost']:.0%} ({figure['compared']})"


def table(figures: dict[str, dict]) -> Table:
    grid = Table(title="Evaluation: the approvals the demo never ran", show_lines=False)
    for column in ("role", "delib.", "completed", "JSON valid", "JSON 1st try", "distinct", "keywords",
                   "beats 1 agent: judge w/t/l", "checks w/t/l", "s / delib.", "tokens / delib."):
        grid.add_column(column, justify="left" if column == "role" else "right")
    for role, f in figures.items():
        grid.add_row(
            f"[bold]{role}[/]" if role == OVERALL else role, str(f["deliberations"]), _percent(f["completion_rate"]),
            _percent(f["structured_valid_share"]), _percent(f["structured_first_attempt_share"]),
            _percent(f["distinct_proposal_share"]),
            f"{_percent(f['keyword_coverage'])} ({_percent(f['winners_with_a_keyword'])} any)",
            _wins(f["beats_single_agent_by_judge"]), _wins(f["beats_single_agent_by_checks"]),
            "-" if f["seconds_mean"] is None else f"{f['seconds_mean']:.0f}",
            "-" if f["tokens_mean"] is None else f"{f['tokens_mean']:,.0f}",
        )
    return grid


def missed_targets(overall: dict) -> list[str]:
    return [f"{name} {_percent(overall[name])} < {_percent(target)}" for name, target in TARGETS.items()
            if overall[name] is None or overall[name] < target]


async def main(options: argparse.Namespace, console: Console) -> int:
    data_dir = options.data_dir or Path(tempfile.mkdtemp(prefix="fleet-eval-"))
    began = time.monotonic()
    async with embedded_mesh(data_dir / "fleet", lambda line: console.print(f"[dim]{line}[/]")) as (stack, client):
        settings = load_settings(stack.service_environment())
        console.print(f"LLM: {settings.llm_model} at {settings.llm_base_url} ({len(options.selected)} approvals, "
                      f"{options.parallel} at once)")
        records = await evaluate(client, options.selected, settings, parallel=options.parallel,
                                 timeout_s=options.timeout, report=console.print)
    figures = report(records)
    console.print(table(figures))
    for record in records:
        if record.status != "completed":
            console.print(f"[red]{record.case} {record.role} {record.status}[/]: {record.reason or 'no result'}")
    options.out.mkdir(parents=True, exist_ok=True)
    path = options.out / f"eval-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    path.write_text(json.dumps({
        "commit": commit.stdout.strip(), "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "llm": {"model": settings.llm_model, "base_url": settings.llm_base_url,
                "context_tokens": settings.llm_context_tokens, "max_tokens": settings.llm_max_tokens},
        "seconds": round(time.monotonic() - began, 1), "figures": figures,
        "deliberations": [vars(record) for record in records],
    }, indent=2, ensure_ascii=False, default=str) + "\n")
    console.print(f"JSON: {path}")
    if missed := missed_targets(figures[OVERALL]):
        console.print(f"[red]targets missed: {'; '.join(missed)}[/]")
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    sys.exit(asyncio.run(main(parse(sys.argv[1:]), Console(width=200))))
