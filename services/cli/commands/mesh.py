"""`fleet up`, `demo`, `endpoints` and `service`: the embedded mesh and its processes."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from contracts import catalog
from services.cli.options import AsJson, DataDir
from services.cli.runner import CommandError, console, nats_connection, run
from services.mesh.settings import DEFAULT_DATA_DIR, load_settings, read_endpoints

app = typer.Typer()


def _report(line: str) -> None:
    console.print(f"[dim]{line}[/]")


async def _up(data_dir: Path, auth: bool, cluster: bool) -> None:
    from services.embedded.stack import EmbeddedStack, StackAlreadyRunning

    stack = EmbeddedStack(data_dir, report=_report, auth=auth, cluster=cluster)
    try:
        # Started before the `finally`: a stack that never started must not stop, since stopping removes
        # the endpoints.json of the fleet that holds the data dir.
        with console.status("starting the embedded cluster..." if cluster else "starting the embedded mesh..."):
            endpoints = await stack.start()
    except StackAlreadyRunning as exc:
        raise CommandError(str(exc)) from None
    try:
        _print_endpoints(endpoints)
        if "dashboard_url" in endpoints:
            console.print(f"[bold]Dashboard:[/] {endpoints['dashboard_url']}")
        console.print(f"[green]Mesh is up.[/] Logs in {stack.logs_dir}. Press Ctrl-C to stop.")
        await asyncio.Event().wait()
    finally:
        with console.status("stopping..."):
            await stack.stop()
        console.print("stopped; the event log is kept in", stack.data_dir)


@app.command()
def up(
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    auth: Annotated[bool, typer.Option(
        "--auth", help="Each service connects to NATS as its own user, with the least-privilege permissions it "
        "has in a cluster; the fleet CLI connects as the operator.")] = False,
    cluster: Annotated[bool, typer.Option(
        "--cluster", help="Run what production runs (k8s/overlays/prod), on this machine: three clustered "
        "nats-servers keeping three copies of every stream and bucket, two replicas of every service, and a "
        "Ray head and two Ray worker nodes for the actors.")] = False,
) -> None:
    """Start NATS, Redis+FalkorDB, llama.cpp and Ray (unless external), then every service."""
    run(_up(data_dir, auth, cluster))


async def _demo(data_dir: Path, timeout_s: float) -> None:
    from services.cli.demo import print_story, print_winners, run_demo
    from services.embedded.stack import EmbeddedStack, is_running

    stack = None
    if is_running(data_dir) and "nats_url" in (endpoints := read_endpoints(data_dir.resolve())):
        console.print(f"Reusing the fleet running on {data_dir.resolve()}")
    else:
        stack = EmbeddedStack(data_dir, report=_report)
        with console.status("starting the embedded mesh (first start takes about 15s)..."):
            endpoints = await stack.start()
    try:
        # The mesh's own NATS and, under `fleet up --auth`, the operator's credentials it wrote down.
        settings = load_settings({**os.environ, "FLEET_DATA_DIR": str(data_dir),
                                  "FLEET_NATS_URL": endpoints["nats_url"]})
        async with nats_connection(settings) as client:
            progress = await run_demo(client, console, timeout_s=timeout_s)
            print_winners(progress, console)
            await print_story(client, progress.story_id, console)
    finally:
        if stack is not None:
            with console.status("stopping the embedded mesh..."):
                await stack.stop()


@app.command()
def demo(
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    timeout: Annotated[float, typer.Option(min=1, max=86_400, help="Give up after this many seconds.")] = 900.0,
) -> None:
    """Publish a sample plan approval (1 task x 2 roles) and show each deliberation, phase by phase, to its winner."""
    try:
        run(_demo(data_dir, timeout))
    except TimeoutError as exc:
        raise CommandError(f"{exc} under {data_dir / 'logs'}") from None


def _print_endpoints(endpoints: dict[str, str]) -> None:
    table = Table("endpoint", "address")
    for key, value in endpoints.items():
        table.add_row(key, str(value))
    console.print(table)


@app.command()
def endpoints(data_dir: DataDir = Path(DEFAULT_DATA_DIR), as_json: AsJson = False) -> None:
    """Print the endpoints of the running embedded mesh."""
    found = read_endpoints(data_dir.resolve())
    if not found:
        raise CommandError(
            f"no fleet is running on {data_dir.resolve()} (no endpoints.json); start one with `fleet up`")
    if as_json:
        print(json.dumps(found, indent=2))
    else:
        _print_endpoints(found)


@app.command()
def service(name: Annotated[str, typer.Argument(help=f"One of: {', '.join(catalog.SERVICES)}")]) -> None:
    """Run one service process (what `fleet up` and the Kubernetes Deployments run)."""
    if name not in catalog.SERVICES:
        raise CommandError(f"unknown service {name!r}; choose one of {', '.join(catalog.SERVICES)}")
    from services.mesh.logs import configure_logging
    from services.mesh.runtime import build_app

    module = importlib.import_module(f"services.{name}.app")
    configure_logging(name)
    # FastStream takes SIGINT and SIGTERM over to drain its consumers, then returns.
    run(build_app(module.SERVICE, load_settings(), module.wire).run())
