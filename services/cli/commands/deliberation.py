"""`fleet deliberation`: deliberations as the read models show them, and their decisions re-run."""

from __future__ import annotations

from typing import Annotated

import msgspec
import typer

from contracts import catalog
from services.cli.options import AsJson
from services.cli.runner import CommandError, console, on_jetstream, run

app = typer.Typer(help="Deliberations, as the read models show them (asked of the projection service).")
DeliberationId = Annotated[str, typer.Argument(help="The deliberation id.")]
Reason = Annotated[str, typer.Option("--reason", help="Why, for the record.")]
By = Annotated[str, typer.Option("--by", help="Who asks, for the record.")]


@app.command("show")
def deliberation_show(deliberation_id: DeliberationId, as_json: AsJson = False) -> None:
    """Status, phase, ranking, winner, rationale and timings of one deliberation."""
    from contracts.queries import SHOW_DELIBERATION, ShowDeliberation
    from services.cli.read_models import print_deliberation, query

    view = run(query(SHOW_DELIBERATION, ShowDeliberation(deliberation_id=deliberation_id)))
    if as_json:
        print(msgspec.json.encode(view).decode())
    else:
        print_deliberation(view, console)


@app.command("replay")
def deliberation_replay(
    deliberation_id: DeliberationId,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Recompute and compare only (the one mode there is).")]
    = False,
    as_json: AsJson = False,
) -> None:
    """Re-run a recorded deliberation's decision logic from its events, with no LLM call: same winner?

    Exits 0 when the recomputed winner is the recorded one, 2 when it is not.
    """
    from services.cli.decision_replay import print_decision_replay

    if not dry_run:
        raise CommandError("only --dry-run exists: a replay recomputes and compares, it never publishes")
    outcome: list[bool] = []
    run(on_jetstream(lambda js: print_decision_replay(js, console, deliberation_id, as_json, outcome)))
    if outcome and not outcome[0]:
        raise typer.Exit(2)


@app.command("list")
def deliberation_list(
    story: Annotated[str | None, typer.Option("--story", help="Only this story's deliberations.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="One status: PENDING, IN_PROGRESS, COMPLETED, FAILED, TIMED_OUT "
                                 "or CANCELLED.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    as_json: AsJson = False,
) -> None:
    """Deliberations, newest first."""
    from contracts.queries import LIST_DELIBERATIONS, DeliberationStatus, ListDeliberations
    from services.cli.read_models import print_deliberations, query

    known = [member.value for member in DeliberationStatus]
    if status is not None and status.upper() not in known:
        raise CommandError(f"unknown status {status!r}; choose one of {', '.join(known)}")
    wanted = DeliberationStatus(status.upper()) if status is not None else None
    found = run(query(LIST_DELIBERATIONS, ListDeliberations(story_id=story, status=wanted, limit=limit)))
    if as_json:
        print(msgspec.json.encode(found).decode())
    else:
        print_deliberations(found, console)


@app.command("cancel")
def deliberation_cancel(deliberation_id: DeliberationId, reason: Reason, by: By = catalog.OPERATOR) -> None:
    """Stop a deliberation in progress: it ends as CANCELLED, in the phase it is in, with your reason."""
    from services.cli.lifecycle import request_cancel

    view = run(request_cancel(deliberation_id, reason, by))
    console.print(f"[yellow]cancel requested[/] for {deliberation_id} ({view.status}): the collector ends it as "
                  f"cancelled by {by}; see `fleet deliberation show {deliberation_id}`")


@app.command("retry")
def deliberation_retry(deliberation_id: DeliberationId, reason: Reason, by: By = catalog.OPERATOR) -> None:
    """Deliberate an ended deliberation again, as a new attempt with its own id (same task, brief and council)."""
    from services.cli.lifecycle import request_retry

    new_id, number = run(request_retry(deliberation_id, reason, by))
    console.print(f"[green]retry requested[/] for {deliberation_id}: attempt {number} is {new_id}, which dispatch "
                  f"starts as usual; see `fleet deliberation show {new_id}`")
