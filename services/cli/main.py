"""`fleet`: run the embedded mesh, the demo, and the stream and contract tools."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.mesh.settings import DEFAULT_DATA_DIR, SettingsError, load_settings, read_endpoints

app = typer.Typer(help="SWE AI Fleet: councils of LLM agents on a NATS JetStream mesh.", no_args_is_help=True)
streams_app = typer.Typer(help="Streams, durable consumers and KV buckets declared in streams/.")
contracts_app = typer.Typer(help="Event contracts declared in contracts/.")
app.add_typer(streams_app, name="streams")
app.add_typer(contracts_app, name="contracts")
console = Console()

DataDir = Annotated[
    Path, typer.Option("--data-dir", envvar="FLEET_DATA_DIR", help="Where the embedded servers keep their data.")
]
SERVICE_NAMES = ("planning", "dispatch", "agents", "collector")


def _fail(message: str) -> None:
    console.print(f"[red]error:[/] {message}")
    raise typer.Exit(1)


def _run_until_signalled(main) -> None:
    """Run `main`, cancelling it on Ctrl-C, SIGTERM or a closed terminal, so its cleanup always runs."""

    async def guarded() -> None:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(guarded())


async def _up(data_dir: Path) -> None:
    from services.embedded.stack import EmbeddedStack

    stack = EmbeddedStack(data_dir, report=lambda line: console.print(f"[dim]{line}[/]"))
    try:
        with console.status("starting the embedded mesh..."):
            endpoints = await stack.start()
        _print_endpoints(endpoints)
        console.print(f"[green]Mesh is up.[/] Logs in {stack.logs_dir}. Press Ctrl-C to stop.")
        await asyncio.Event().wait()
    finally:
        with console.status("stopping..."):
            await stack.stop()
        console.print("stopped; the event log is kept in", stack.data_dir)


@app.command()
def up(data_dir: DataDir = Path(DEFAULT_DATA_DIR)) -> None:
    """Start NATS, Redis+FalkorDB, llama.cpp and Ray (unless external), then every service."""
    from services.embedded.stack import StackAlreadyRunning

    try:
        _run_until_signalled(_up(data_dir))
    except StackAlreadyRunning as exc:
        _fail(str(exc))


async def _demo(data_dir: Path, timeout_s: float) -> None:
    from services.cli.demo import print_winners, run_demo
    from services.embedded.stack import EmbeddedStack, is_running

    stack = None
    if is_running(data_dir) and "nats_url" in (endpoints := read_endpoints(data_dir.resolve())):
        console.print(f"Reusing the fleet running on {data_dir.resolve()}")
    else:
        stack = EmbeddedStack(data_dir, report=lambda line: console.print(f"[dim]{line}[/]"))
        with console.status("starting the embedded mesh (first start takes about 15s)..."):
            endpoints = await stack.start()
    try:
        progress = await run_demo(endpoints["nats_url"], console, timeout_s=timeout_s)
        print_winners(progress, console)
    finally:
        if stack is not None:
            with console.status("stopping the embedded mesh..."):
                await stack.stop()


@app.command()
def demo(
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 900.0,
) -> None:
    """Publish a sample plan approval (2 tasks x 2 roles) and show each deliberation to its winner."""
    try:
        _run_until_signalled(_demo(data_dir, timeout))
    except TimeoutError as exc:
        _fail(f"{exc} under {data_dir / 'logs'}")


def _print_endpoints(endpoints: dict[str, str]) -> None:
    table = Table("endpoint", "address")
    for key, value in endpoints.items():
        table.add_row(key, str(value))
    console.print(table)


@app.command()
def endpoints(
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Print the endpoints of the running embedded mesh."""
    found = read_endpoints(data_dir.resolve())
    if not found:
        _fail(f"no fleet is running on {data_dir.resolve()} (no endpoints.json); start one with `fleet up`")
    if as_json:
        print(json.dumps(found, indent=2))
    else:
        _print_endpoints(found)


async def _apply_streams() -> None:
    import nats

    from streams.apply import apply_all

    settings = load_settings()
    client = await nats.connect(settings.nats_url)
    try:
        changes = await apply_all(client.jetstream())
    finally:
        await client.close()
    table = Table("kind", "name", "action", "details")
    for change in changes:
        colour = {"created": "green", "updated": "yellow"}.get(change.action, "dim")
        table.add_row(change.kind, change.name, f"[{colour}]{change.action}[/]", change.details)
    console.print(table)


@streams_app.command("apply")
def streams_apply() -> None:
    """Create or update every declared stream, consumer and bucket; print what changed."""
    try:
        asyncio.run(_apply_streams())
    except SettingsError as exc:
        _fail(str(exc))


@contracts_app.command("export")
def contracts_export(
    out: Annotated[Path, typer.Option(help="Folder for the schemas and the catalog.")] = Path("docs/contracts"),
) -> None:
    """Write a JSON Schema per event and the Markdown catalog."""
    from contracts.export import catalog_markdown, json_schemas

    out.mkdir(parents=True, exist_ok=True)
    for name, schema in json_schemas().items():
        (out / name).write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    (out / "catalog.md").write_text(catalog_markdown())
    console.print(f"wrote {len(json_schemas())} schemas and catalog.md to {out}")


@app.command()
def service(name: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICE_NAMES)}")]) -> None:
    """Run one service process (what `fleet up` and the Kubernetes Deployments run)."""
    if name not in SERVICE_NAMES:
        _fail(f"unknown service {name!r}; choose one of {', '.join(SERVICE_NAMES)}")
    from services.mesh.runtime import build_app, configure_logging

    module = importlib.import_module(f"services.{name}.app")
    configure_logging(name)
    try:
        settings = load_settings()
    except SettingsError as exc:
        _fail(str(exc))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(build_app(module.SERVICE, settings, module.wire).run())


if __name__ == "__main__":
    app()
