"""`fleet`: run the embedded mesh, the demo, and the stream and contract tools."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import signal
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from contracts import catalog
from services.mesh.settings import DEFAULT_DATA_DIR, SettingsError, load_settings, read_endpoints

app = typer.Typer(help="SWE AI Fleet: councils of LLM agents on a NATS JetStream mesh.", no_args_is_help=True)
streams_app = typer.Typer(help="Streams, durable consumers and KV buckets declared in streams/.")
contracts_app = typer.Typer(help="Event contracts declared in contracts/.")
app.add_typer(streams_app, name="streams")
app.add_typer(contracts_app, name="contracts")
council_app = typer.Typer(help="Councils: the agents that deliberate for each role (events on the CONFIG stream).")
app.add_typer(council_app, name="council")
deliberation_app = typer.Typer(help="Deliberations, as the read models show them (asked of the projection service).")
app.add_typer(deliberation_app, name="deliberation")
story_app = typer.Typer(help="Stories, as the graph read model shows them.")
app.add_typer(story_app, name="story")
projections_app = typer.Typer(help="The read models (graph and key-value), folded from the event log.")
app.add_typer(projections_app, name="projections")
dlq_app = typer.Typer(help="Dead letters: what was rejected and why, and re-publishing it after a fix.")
app.add_typer(dlq_app, name="dlq")
nats_app = typer.Typer(help="NATS users and their permissions, derived from the catalog and streams/.")
app.add_typer(nats_app, name="nats")
console = Console()

DataDir = Annotated[
    Path, typer.Option("--data-dir", envvar="FLEET_DATA_DIR", help="Where the embedded servers keep their data.")
]


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


async def _up(data_dir: Path, auth: bool) -> None:
    from services.embedded.stack import EmbeddedStack

    stack = EmbeddedStack(data_dir, report=lambda line: console.print(f"[dim]{line}[/]"), auth=auth)
    try:
        with console.status("starting the embedded mesh..."):
            endpoints = await stack.start()
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
) -> None:
    """Start NATS, Redis+FalkorDB, llama.cpp and Ray (unless external), then every service."""
    from services.embedded.stack import StackAlreadyRunning

    try:
        _run_until_signalled(_up(data_dir, auth))
    except (StackAlreadyRunning, SettingsError) as exc:
        _fail(str(exc))


async def _demo(data_dir: Path, timeout_s: float) -> None:
    from services.cli.demo import print_story, print_winners, run_demo
    from services.embedded.stack import EmbeddedStack, is_running

    stack = None
    if is_running(data_dir) and "nats_url" in (endpoints := read_endpoints(data_dir.resolve())):
        console.print(f"Reusing the fleet running on {data_dir.resolve()}")
    else:
        stack = EmbeddedStack(data_dir, report=lambda line: console.print(f"[dim]{line}[/]"))
        with console.status("starting the embedded mesh (first start takes about 15s)..."):
            endpoints = await stack.start()
    try:
        # The mesh's own NATS and, under `fleet up --auth`, the operator's credentials it wrote down.
        settings = load_settings({**os.environ, "FLEET_DATA_DIR": str(data_dir),
                                  "FLEET_NATS_URL": endpoints["nats_url"]})
        progress = await run_demo(settings, console, timeout_s=timeout_s)
        print_winners(progress, console)
        await print_story(settings, progress.story_id, console)
    finally:
        if stack is not None:
            with console.status("stopping the embedded mesh..."):
                await stack.stop()


@app.command()
def demo(
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 900.0,
) -> None:
    """Publish a sample plan approval (1 task x 2 roles) and show each deliberation, phase by phase, to its winner."""
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
    from services.mesh.runtime import connect
    from streams.apply import apply_all

    client = await connect(load_settings())
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


def _with_nats(main) -> None:
    """Run `main(js)` against the mesh's NATS, failing with a clear message when it cannot be reached."""
    from services.mesh.runtime import connect

    async def connected() -> None:
        settings = load_settings()
        try:
            client = await connect(settings, max_reconnect_attempts=0, connect_timeout=5)
        except Exception as exc:  # noqa: BLE001 - whatever the client raised, the fix is the same
            raise SettingsError(f"cannot reach NATS at {settings.nats_url}: {exc}; is `fleet up` running?") from exc
        try:
            await main(client.jetstream())
        finally:
            await client.close()

    try:
        _run_until_signalled(connected())
    except (SettingsError, ValueError) as exc:
        _fail(str(exc))


@streams_app.command("status")
def streams_status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False) -> None:
    """Streams, their consumers, and each consumer's lag (pending), unacked and redelivered counts."""
    from services.cli.stream_commands import print_status

    _with_nats(lambda js: print_status(js, console, as_json))


@app.command()
def tail(
    subject_filter: Annotated[str, typer.Argument(help="A NATS subject filter, e.g. 'orchestration.>'.")] = ">",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line, for piping.")] = False,
    last: Annotated[int, typer.Option("--last", help="Show the last N stored events of each stream first.")] = 0,
) -> None:
    """Follow events as they are stored, with their headers and decoded bodies, until Ctrl-C."""
    from services.cli.stream_commands import print_tail

    _with_nats(lambda js: print_tail(js, console, subject_filter, last, as_json))


@app.command()
def replay(
    stream: Annotated[str, typer.Option("--stream", help="The stream, e.g. ORCHESTRATION.")],
    from_seq: Annotated[int | None, typer.Option("--from-seq", help="Start at this sequence.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Start at a time: ISO-8601 or an age (15m, 2h).")] = None,
    subject: Annotated[str, typer.Option("--subject", help="Only subjects matching this filter.")] = ">",
    until: Annotated[str | None, typer.Option("--until", help="Stop after this sequence or time.")] = None,
    into: Annotated[str | None, typer.Option("--into", help="Re-deliver into a read model (graph or kv).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """Print a stream's stored events in order, or re-deliver them into a read model (--into)."""
    from services.cli.stream_commands import print_replay, replay_into_projection

    if from_seq is not None and since is not None:
        _fail("give --from-seq or --since, not both")
    if into is not None:
        if into not in ("graph", "kv") or since is not None or subject != ">" or until is not None:
            _fail("--into takes graph or kv, with --from-seq only (a read model is refolded from a sequence on)")
        _with_nats(lambda js: replay_into_projection(js, console, stream, into, from_seq or 1))
        return
    _with_nats(lambda js: print_replay(js, console, stream, from_seq, since, subject, until, as_json))


@app.command()
def trace(
    ident: Annotated[str, typer.Argument(help="A correlation id or an aggregate id (a deliberation id, a plan id).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Every event of one causal chain, across all streams, as a tree by causation, with timings."""
    from services.cli.stream_commands import print_trace

    _with_nats(lambda js: print_trace(js, console, ident, as_json))


@dlq_app.command("list")
def dlq_list(
    service: Annotated[str | None, typer.Option("--service", help="Only letters from this service.")] = None,
    stream: Annotated[str | None, typer.Option("--stream", help="Only letters of messages from this stream.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="The newest N.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Dead letters, newest last: who rejected what, why, and whether it was redriven."""
    from services.cli.dead_letters import print_letters

    _with_nats(lambda js: print_letters(js, console, service, stream, limit, as_json))


@dlq_app.command("show")
def dlq_show(letter: Annotated[str, typer.Argument(help="The letter's sequence in DEAD_LETTERS, or its id.")]) -> None:
    """One dead letter in full: the reason, the original headers and body, and its redrive."""
    from services.cli.dead_letters import print_letter

    _with_nats(lambda js: print_letter(js, console, letter))


@dlq_app.command("redrive")
def dlq_redrive(
    letters: Annotated[list[str] | None, typer.Argument(help="Letter sequences or ids.")] = None,
    redrive_all: Annotated[bool, typer.Option("--all", help="Every letter not yet redriven (filters apply).")] = False,
    service: Annotated[str | None, typer.Option("--service", help="With --all: only this service's.")] = None,
    stream: Annotated[str | None, typer.Option("--stream", help="With --all: only this stream's.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Redrive letters already redriven too (inside the stream's "
                                        "duplicate window JetStream still drops the copy).")] = False,
    by: Annotated[str, typer.Option("--by", envvar="USER", help="Who redrives, for the record.")] = catalog.OPERATOR,
) -> None:
    """Re-publish dead letters' original messages after a fix; a letter is redriven once unless --force."""
    from services.cli.dead_letters import matching, redrive_letters, select

    if bool(letters) == redrive_all:
        _fail("name the letters to redrive, or give --all (with --service/--stream to narrow it)")

    def chosen(known):
        return matching(known, service, stream) if redrive_all else select(known, letters or [])

    _with_nats(lambda js: redrive_letters(js, console, chosen, force, lambda q: yes or typer.confirm(q), by))


@contracts_app.command("export")
def contracts_export(
    out: Annotated[Path, typer.Option(help="Folder for the schemas and the catalog.")] = Path("docs/contracts"),
) -> None:
    """Write a JSON Schema per event and the Markdown catalog."""
    from contracts.export import catalog_markdown, json_schemas

    out.mkdir(parents=True, exist_ok=True)
    schemas = json_schemas()
    for stale in {p.name for p in out.glob("*.schema.json")} - set(schemas):
        (out / stale).unlink()
        console.print(f"removed {stale}: no such event any more")
    for name, schema in schemas.items():
        (out / name).write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    (out / "catalog.md").write_text(catalog_markdown())
    (out / ASYNCAPI_FILE).write_text(_asyncapi_text())
    console.print(f"wrote {len(json_schemas())} schemas, catalog.md and {ASYNCAPI_FILE} to {out}")


ASYNCAPI_FILE = "asyncapi.json"


def _asyncapi_text() -> str:
    from contracts.asyncapi import asyncapi_document

    return json.dumps(asyncapi_document(), indent=2, sort_keys=True) + "\n"


@nats_app.command("auth")
def nats_auth(
    out: Annotated[Path | None, typer.Option(help="Write it here instead of printing it.")] = None,
) -> None:
    """The nats-server users block: one user per service with least-privilege permissions from the catalog.

    Each password is read from the server's environment (NATS_PASSWORD_<USER>), never written here.
    """
    from streams.permissions import authorization

    if out is None:
        print(authorization(), end="")
        return
    out.write_text(authorization())
    console.print(f"wrote the NATS users and permissions to {out}")


@contracts_app.command("asyncapi")
def contracts_asyncapi() -> None:
    """Print the AsyncAPI 3.0 document of every subject, built from contracts/ (also written by `export`)."""
    print(_asyncapi_text(), end="")


RoleOption = Annotated[str, typer.Option("--role", help="DEV, QA, ARCHITECT, DEVOPS or DATA.", case_sensitive=False)]


def _role(raw: str):
    from contracts.events import Role

    try:
        return Role(raw.upper())
    except ValueError:
        _fail(f"unknown role {raw!r}; choose one of {', '.join(r.value for r in Role)}")


def _council_command(main) -> None:
    from services.cli.councils import CouncilCommandError

    try:
        asyncio.run(main)
    except (CouncilCommandError, SettingsError) as exc:
        _fail(str(exc))


@council_app.command("create")
def council_create(
    role: RoleOption,
    agents: Annotated[int, typer.Option(min=1, max=16, help="How many agents.")] = 3,
    model: Annotated[str | None, typer.Option(help="LLM model; default: the agents service's model.")] = None,
    rounds: Annotated[int, typer.Option(min=0, max=5, help="Critique and revision rounds.")] = 1,
    quorum: Annotated[int | None, typer.Option(min=1, help="Proposals needed to go on; default: a majority.")] = None,
    top_k: Annotated[int, typer.Option(min=1, help="How many best-scored proposals the architect chooses from.")] = 3,
    deadline: Annotated[float, typer.Option(min=1, help="Seconds each phase may take.")] = 300.0,
    by: Annotated[str, typer.Option(help="Who is creating it, for the record.")] = catalog.OPERATOR,
) -> None:
    """Give a role a council. Each agent gets its own persona, temperature and seed."""
    from services.cli.councils import create_council
    from services.councils.domain import new_council

    try:
        council = new_council(
            _role(role), agents, model=model, critique_rounds=rounds, quorum=quorum, top_k=top_k,
            phase_deadline_s=deadline,
        )
    except ValueError as exc:
        _fail(str(exc))
    _council_command(create_council(council, by))
    members = ", ".join(a.agent_id for a in council.agents)
    console.print(f"[green]created[/] the {council.role.value} council: {members}")


@council_app.command("list")
def council_list() -> None:
    """Show every council in force, its agents and its protocol."""
    from services.cli.councils import list_councils

    found = {}

    async def read() -> None:
        found.update(await list_councils())

    _council_command(read())
    if not found:
        console.print("no councils; the planning service seeds the defaults on its first start")
        return
    table = Table("role", "agent", "persona", "temperature", "seed", "model", "protocol")
    for council in found.values():
        p = council.protocol
        protocol = f"rounds {p.critique_rounds}, quorum {p.quorum}, top {p.top_k}, {p.phase_deadline_s:g}s/phase"
        for index, agent in enumerate(council.agents):
            table.add_row(
                council.role.value if index == 0 else "", agent.agent_id, agent.persona.split(":")[0],
                f"{agent.temperature:g}", str(agent.seed), agent.model or "(default)", protocol if index == 0 else "",
            )
    console.print(table)


@council_app.command("delete")
def council_delete(
    role: RoleOption, by: Annotated[str, typer.Option(help="Who is deleting it, for the record.")] = catalog.OPERATOR
) -> None:
    """Remove a role's council; approvals naming the role are dead-lettered until a new one exists."""
    from services.cli.councils import delete_council

    chosen = _role(role)
    _council_command(delete_council(chosen, by))
    console.print(f"[yellow]deleted[/] the {chosen.value} council")


@council_app.command("seed")
def council_seed(
    by: Annotated[str, typer.Option(help="Who is seeding, for the record.")] = "provisioner",
) -> None:
    """Publish the default councils (5 roles x 3 agents) unless a council was ever configured. Safe to re-run."""
    from services.cli.councils import seed_councils

    seeded = []

    async def seed() -> None:
        seeded.append(await seed_councils(by))

    _council_command(seed())
    if seeded[0]:
        console.print("[green]seeded[/] the default councils: DEV, QA, ARCHITECT, DEVOPS, DATA, 3 agents each")
    else:
        console.print("councils were configured before: nothing seeded")


def _ask(spec, request):
    from services.cli.read_models import query
    from services.mesh.queries import QueryFailed

    try:
        return asyncio.run(query(spec, request))
    except (QueryFailed, SettingsError) as exc:
        _fail(str(exc))


@deliberation_app.command("show")
def deliberation_show(
    deliberation_id: Annotated[str, typer.Argument(help="The deliberation id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Status, phase, ranking, winner, rationale and timings of one deliberation."""
    from contracts.queries import SHOW_DELIBERATION, ShowDeliberation
    from services.cli.read_models import print_deliberation

    view = _ask(SHOW_DELIBERATION, ShowDeliberation(deliberation_id=deliberation_id))
    if as_json:
        print(msgspec.json.encode(view).decode())
    else:
        print_deliberation(view, console)


@deliberation_app.command("replay")
def deliberation_replay(
    deliberation_id: Annotated[str, typer.Argument(help="The deliberation id.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Recompute and compare only (the one mode there is).")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Re-run a recorded deliberation's decision logic from its events, with no LLM call: same winner?

    Exits 0 when the recomputed winner is the recorded one, 2 when it is not.
    """
    from services.cli.decision_replay import print_decision_replay

    if not dry_run:
        _fail("only --dry-run exists: a replay recomputes and compares, it never publishes")
    outcome: list[bool] = []
    _with_nats(lambda js: print_decision_replay(js, console, deliberation_id, as_json, outcome))
    if outcome and not outcome[0]:
        raise typer.Exit(2)


@deliberation_app.command("list")
def deliberation_list(
    story: Annotated[str | None, typer.Option("--story", help="Only this story's deliberations.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="PENDING, IN_PROGRESS, COMPLETED, FAILED or TIMED_OUT.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Deliberations, newest first."""
    from contracts.queries import LIST_DELIBERATIONS, DeliberationStatus, ListDeliberations
    from services.cli.read_models import print_deliberations

    known = [known.value for known in DeliberationStatus]
    if status is not None and status.upper() not in known:
        _fail(f"unknown status {status!r}; choose one of {', '.join(known)}")
    wanted = DeliberationStatus(status.upper()) if status is not None else None
    found = _ask(LIST_DELIBERATIONS, ListDeliberations(story_id=story, status=wanted, limit=limit))
    if as_json:
        print(msgspec.json.encode(found).decode())
    else:
        print_deliberations(found, console)


@story_app.command("show")
def story_show(
    story_id: Annotated[str, typer.Argument(help="The story id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """A story as a tree: plans, tasks, and each task's deliberations and decisions."""
    from contracts.queries import SHOW_STORY, ShowStory
    from services.cli.read_models import story_tree

    view = _ask(SHOW_STORY, ShowStory(story_id=story_id))
    if as_json:
        print(msgspec.json.encode(view).decode())
    else:
        console.print(story_tree(view))


PROJECTION_CHOICES = {"graph": ["graph"], "kv": ["kv"], "all": ["graph", "kv"]}


@projections_app.command("rebuild")
def projections_rebuild(
    which: Annotated[str, typer.Argument(help="graph, kv or all.")] = "all",
    in_place: Annotated[bool, typer.Option(
        "--in-place", help="Empty and refill the active model, the live projection paused, instead of building a "
        "second one beside it (half the memory; readers see the model grow). Always so on Neo4j Community.",
    )] = False,
) -> None:
    """Rebuild read models from sequence 0 into a fresh namespace, then switch readers to it. The mesh keeps running."""
    from services.cli.read_models import print_rebuilds, rebuild_projections

    if which not in PROJECTION_CHOICES:
        _fail(f"unknown read model {which!r}; choose graph, kv or all")
    try:
        results = asyncio.run(rebuild_projections(PROJECTION_CHOICES[which], console, in_place=in_place or None))
    except SettingsError as exc:
        _fail(str(exc))
    print_rebuilds(results, console)


@app.command()
def service(name: Annotated[str, typer.Argument(help=f"One of: {', '.join(catalog.SERVICES)}")]) -> None:
    """Run one service process (what `fleet up` and the Kubernetes Deployments run)."""
    if name not in catalog.SERVICES:
        _fail(f"unknown service {name!r}; choose one of {', '.join(catalog.SERVICES)}")
    from services.mesh.logs import configure_logging
    from services.mesh.runtime import build_app

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
