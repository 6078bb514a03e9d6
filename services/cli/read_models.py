"""`fleet deliberation`, `fleet story` and `fleet projections`: the read models, asked and rebuilt."""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from contracts import queries
from contracts.queries import (
    DeliberationList,
    DeliberationStatus,
    DeliberationView,
    OperatorRequest,
    PlanView,
    RequestFate,
    StoryView,
    cancel_fate,
    retry_fate,
)
from services.cli.runner import nats_connection
from services.mesh.queries import ask
from services.mesh.settings import load_settings
from services.projection.app import projectors
from services.projection.projector import Progress
from services.projection.rebuild import RebuildResult, rebuild

STATUS_COLOURS = {DeliberationStatus.COMPLETED: "green", DeliberationStatus.FAILED: "red",
                  DeliberationStatus.TIMED_OUT: "red", DeliberationStatus.CANCELLED: "magenta",
                  DeliberationStatus.IN_PROGRESS: "yellow"}


async def query(spec: queries.QuerySpec, request):
    async with nats_connection() as client:
        return await ask(client, spec, request)


def _status(status: DeliberationStatus | None) -> str:
    colour = STATUS_COLOURS.get(status or "", "dim")
    return f"[{colour}]{status}[/]"


def print_deliberation(view: DeliberationView, console: Console) -> None:
    console.print(f"[bold]{view.deliberation_id}[/]  {_status(view.status)}"
                  + (f"  phase {view.phase} (round {view.round})" if view.phase else ""))
    console.print(f"story {view.story_id} / plan {view.plan_id} / task {view.task_id}: {view.title}")
    console.print(f"council {view.role}: {', '.join(view.agents)}")
    for line in _lifecycle(view):
        console.print(line)
    if view.winner_id:
        console.print(f"[green]winner[/] {view.winner_id} (score {_score(view.winner_score)}, "
                      f"{view.winner_revisions} revision(s)), decided by {view.decided_by}")
        if view.scored_by == "checks":
            console.print("[yellow]scored by the checks:[/] the judge gave no valid verdict, so the deterministic "
                          "checks and the critiques each author answered ranked the proposals")
    if view.rationale:
        console.print(f"rationale: {view.rationale}")
    if view.architect_error:
        console.print(f"[yellow]architect error:[/] {view.architect_error}")
    if view.reason:
        console.print(f"[red]reason ({view.failed_phase}):[/] {view.reason}")
    if view.ranking:
        table = Table("rank", "agent", "score", "qualified")
        for ranked in view.ranking:
            table.add_row(str(ranked.rank), ranked.agent_id, _score(ranked.score), "yes" if ranked.qualified else "no")
        console.print(table)
    timings = Table("moment", "at")
    for label, value in (("requested", view.requested_at), ("started", view.started_at)):
        if value:
            timings.add_row(label, value)
    for phase, at in view.phases_started.items():
        timings.add_row(f"phase {phase}", at)
    if view.deadline_at:
        timings.add_row("overall deadline", f"{view.deadline_at} ({view.deadline_s:g}s after the start)")
    if view.finished_at:
        timings.add_row("finished", f"{view.finished_at} ({(view.duration_ms or 0) / 1000:.1f}s)")
    console.print(timings)
    if view.winner_content:
        console.print("[bold]winning proposal[/]")
        console.print(view.winner_content)


def _lifecycle(view: DeliberationView) -> list[str]:
    """The operator's hand in it: the attempt it is, cancel and retry requests, and what became of them."""
    lines = []
    if view.attempt:
        a = view.attempt
        lines.append(f"attempt {a.number}, retry of {a.previous_id} (first {a.first_id}), requested by "
                     f"{a.requested_by}" + (f": {a.reason}" if a.reason else ""))
    if view.cancel_requested:
        lines.append(_requested("cancel", view.cancel_requested, cancel_fate(view.status, view.cancelled_by)))
    if view.cancelled_by:
        lines.append(f"[magenta]cancelled by {view.cancelled_by}[/]")
    if view.retry_requested:
        lines.append(_requested("retry", view.retry_requested, retry_fate(view.retried_as)))
    if view.retried_as:
        lines.append(f"retried as {view.retried_as}")
    return lines


_FATES = {RequestFate.PENDING: " [yellow](pending)[/]", RequestFate.GRANTED: "",
          RequestFate.CAME_AFTER_IT_ENDED: " [dim](came after it ended)[/]",
          RequestFate.NOT_GRANTED: " [red](not granted)[/]"}


def _requested(what: str, request: OperatorRequest, fate: RequestFate) -> str:
    # A granted request needs no mark: the line after it says who cancelled it or what retried it.
    return (f"{what} requested by {request.by} at {request.at}" + (f": {request.reason}" if request.reason else "")
            + _FATES[fate])


def _score(score: float | None) -> str:
    return "-" if score is None else f"{score:.1f}"


def print_deliberations(found: DeliberationList, console: Console) -> None:
    if not found.deliberations:
        console.print("no deliberations match")
        return
    table = Table("deliberation", "story", "task", "role", "attempt", "status", "phase", "winner", "duration")
    for d in found.deliberations:
        status = _status(d.status) + (f" by {d.cancelled_by}" if d.cancelled_by else "")
        status += f", retried as {d.retried_as}" if d.retried_as else ""
        table.add_row(d.deliberation_id, d.story_id, d.task_id, d.role, str(d.attempt_number), status, d.phase or "",
                      d.winner_id or "", f"{d.duration_ms / 1000:.1f}s" if d.duration_ms is not None else "")
    console.print(table)


def story_tree(story: StoryView) -> Tree:
    tree = Tree(f"[bold]story {story.story_id}[/]" + (f", now {story.state}" if story.state else ""))
    if story.transitions:
        history = tree.add("transitions")
        for t in story.transitions:
            history.add(f"{t.at} {t.from_state} → {t.to_state} by {t.by}" + (f": {t.reason}" if t.reason else ""))
    for plan in story.plans:
        approved = f"approved by {plan.approved_by} at {plan.approved_at}" if plan.approved_at else "not approved"
        branch = tree.add(f"plan {plan.plan_id}, {approved}")
        for line in _plan_answers(plan):
            branch.add(line)
        for task in plan.tasks:
            leaf = branch.add(f"task {task.task_id}: {task.title}")
            if not task.deliberations:
                leaf.add("[dim]no deliberation yet[/]")
            for d in task.deliberations:
                line = f"{d.role} {_status(d.status)} {d.deliberation_id}"
                line += f" (attempt {d.attempt_number})" if d.attempt_number > 1 else ""
                line += f" by {d.cancelled_by}" if d.cancelled_by else ""
                line += f", retried as {d.retried_as}" if d.retried_as else ""
                if d.winner_id:
                    line += f": [green]{d.winner_id}[/] won (score {_score(d.winner_score)}, decided by {d.decided_by})"
                node = leaf.add(line)
                if d.rationale:
                    node.add(f"[italic]{d.rationale}[/]")
    return tree


def _plan_answers(plan: PlanView) -> list[str]:
    """What ingress answered, and how the plan ended."""
    lines = []
    if plan.answer == "accepted":
        lines.append(f"[green]accepted[/] at {plan.answered_at}: {plan.deliberation_count} deliberation(s)")
    elif plan.answer == "rejected":
        lines.append(f"[red]rejected[/] at {plan.answered_at}: {'; '.join(plan.answer_reasons)}")
    if plan.concluded_at:
        lines.append(f"concluded at {plan.concluded_at} (revision {plan.conclusion_revision}): "
                     f"{plan.completed} completed, {plan.failed} failed")
    return lines


class ProgressPrinter:
    """A line per stream at most once a second, and at each stream's end: position, events and rate."""

    def __init__(self, projection: str, console: Console) -> None:
        self._projection = projection
        self._console = console
        self._began = time.monotonic()
        self._last = 0.0

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if now - self._last < 1.0 and progress.last_sequence < progress.target:
            return
        self._last = now
        rate = progress.applied / max(now - self._began, 1e-6)
        self._console.print(
            f"  {self._projection} {progress.stream}: seq {progress.last_sequence}/{progress.target}, "
            f"{progress.applied} events ({rate:,.0f}/s)"
        )


async def rebuild_projections(names: list[str], console: Console, in_place: bool | None = None) -> list[RebuildResult]:
    """Rebuild each named projection from sequence 0, printing progress and the rate as it goes."""
    settings = load_settings()
    chosen = [p for p in projectors(settings) if p.spec.name in names]
    results = []
    async with nats_connection(settings) as client:
        for projector in chosen:
            where = "in place" if in_place or not projector.store.supports_swap else "beside the live one"
            console.print(f"rebuilding the {projector.spec.name} read model from sequence 0, {where}...")
            printer = ProgressPrinter(projector.spec.name, console)
            results.append(await rebuild(client.jetstream(), projector, on_progress=printer, in_place=in_place))
            await projector.store.close()
    return results


def print_rebuilds(results: list[RebuildResult], console: Console) -> None:
    table = Table("read model", "namespace", "replaced", "events", "seconds", "events/s", "content hash",
                  "same as replaced")
    for r in results:
        same = "-" if r.replaced_hash is None else ("[green]yes[/]" if r.replaced_hash == r.content_hash else
                                                   "[yellow]no[/] (the log grew, or the old model was stale)")
        table.add_row(r.projection, r.namespace, r.replaced or "-", str(r.events), f"{r.seconds:.2f}",
                      f"{r.rate:,.0f}", r.content_hash[:16], same)
    console.print(table)
