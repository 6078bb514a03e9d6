"""`fleet demo`: one plan approval through the whole mesh, with live progress per deliberation."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field

from nats.aio.client import Client
from rich.console import Console, Group
from rich.live import Live
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table

from contracts import catalog
from contracts.envelope import CORRELATION_ID
from contracts.events import (
    DecisionMade,
    DeliberationAdvanced,
    DeliberationCompleted,
    DeliberationFailed,
    PlanApproved,
    PlannedTask,
    Role,
    TurnCompleted,
    TurnFailed,
)
from services.mesh.log_reader import Reading, after_last, follow
from services.mesh.messages import Outgoing
from services.mesh.publishing import EventPublisher
from services.planning.domain import deliberation_id
from streams.definitions import stream_for_subject

FOLLOWED = (
    catalog.DELIBERATION_ADVANCED,
    catalog.TURN_COMPLETED,
    catalog.TURN_FAILED,
    catalog.DECISION_MADE,
    catalog.DELIBERATION_COMPLETED,
    catalog.DELIBERATION_FAILED,
)


def sample_approval() -> PlanApproved:
    suffix = uuid.uuid4().hex[:8]
    return PlanApproved(
        story_id=f"demo-story-{suffix}",
        plan_id=f"demo-plan-{suffix}",
        approved_by="fleet-demo",
        roles=[Role.DEV, Role.QA],
        tasks=[
            PlannedTask(
                task_id="rate-limit",
                title="Add rate limiting to the public REST API",
                description="Limit each API key to 100 requests per minute and return HTTP 429 beyond that.",
            ),
        ],
        rubric={
            "correctness": "the proposal solves the task as stated",
            "risks": "it names what can go wrong and how to catch it",
            "clarity": "its steps are concrete",
        },
    )


@dataclass
class Row:
    task_id: str
    role: str
    phase: str = "requested"
    turns: int = 0
    answered: int = 0
    failures: int = 0
    decision: DecisionMade | None = None
    result: DeliberationCompleted | DeliberationFailed | None = None


@dataclass
class Progress:
    rows: dict[str, Row] = field(default_factory=dict)
    story_id: str = ""
    began: float = field(default_factory=time.monotonic)

    def done(self) -> bool:
        return bool(self.rows) and all(r.result is not None for r in self.rows.values())

    def table(self) -> Table:
        table = Table(title=f"Deliberations ({time.monotonic() - self.began:.0f}s)")
        for column in ("task", "role", "phase", "answered", "failed turns", "status", "duration"):
            table.add_column(column)
        for row in self.rows.values():
            if isinstance(row.result, DeliberationCompleted):
                winner = row.result.winner
                status = f"[green]completed[/] winner {winner.agent_id} ({_score(winner.score)})"
                duration = row.result.duration_ms
            elif isinstance(row.result, DeliberationFailed):
                status, duration = f"[red]failed[/] in {row.result.phase}", row.result.duration_ms
            else:
                status, duration = "[yellow]in progress[/]", None
            table.add_row(
                row.task_id, row.role, row.phase, f"{row.answered}/{row.turns}", str(row.failures), status,
                f"{duration / 1000:.1f}s" if duration is not None else "",
            )
        return table


def _score(score: float | None) -> str:
    return "unscored" if score is None else f"{score:.1f}/10"


def apply_event(progress: Progress, subject: str, data: bytes) -> None:
    event = catalog.spec_for_subject(subject).decoder.decode(data)
    row = progress.rows.get(event.aggregate_id())
    if row is None:
        return
    if isinstance(event, DeliberationAdvanced):
        row.phase = event.phase.value if event.round == 0 else f"{event.phase.value} (round {event.round})"
        row.turns, row.answered = len(event.turns), 0
    elif isinstance(event, TurnCompleted | TurnFailed):
        row.answered += 1
        row.failures += isinstance(event, TurnFailed)
    elif isinstance(event, DecisionMade):
        row.decision = event
    elif isinstance(event, DeliberationCompleted | DeliberationFailed):
        row.phase = "done"
        row.result = event


async def run_demo(client: Client, console: Console, timeout_s: float = 900.0) -> Progress:
    """Publish a sample approval and follow its causal chain until every deliberation has a result."""
    approval = sample_approval()
    event_id = str(uuid.uuid4())
    progress = Progress(story_id=approval.story_id)
    for task in approval.tasks:
        for role in approval.roles:
            key = deliberation_id(approval.story_id, approval.plan_id, task.task_id, role)
            progress.rows[key] = Row(task.task_id, role.value)
    updated = asyncio.Event()
    js = client.jetstream()
    # From what each stream holds now, not from whenever its reader happens to start.
    readings = [Reading(stream_for_subject(spec.subject).name, spec.subject,
                        await after_last(js, stream_for_subject(spec.subject).name)) for spec in FOLLOWED]

    async def watch() -> None:
        async for message in follow(js, readings):
            if (message.headers or {}).get(CORRELATION_ID) == event_id:
                apply_event(progress, message.subject, message.data)
                updated.set()

    watching = asyncio.create_task(watch())
    try:
        await EventPublisher(js, producer=catalog.OPERATOR).publish(Outgoing(approval, event_id=event_id))
        console.print(
            f"Published plan approval {approval.plan_id} (story {approval.story_id}): "
            f"{len(approval.tasks)} tasks x {len(approval.roles)} roles, event id {event_id}"
        )
        deadline = time.monotonic() + timeout_s
        with Live(progress.table(), console=console, refresh_per_second=4) as live:
            while not progress.done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"deliberations not finished after {timeout_s:.0f}s; see the logs")
                if watching.done():
                    watching.result()  # the reading broke off: say why
                updated.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(updated.wait(), timeout=min(remaining, 1.0))
                live.update(progress.table())
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    return progress


def print_winners(progress: Progress, console: Console) -> None:
    for row in progress.rows.values():
        result = row.result
        title = f"{row.task_id} / {row.role}"
        if isinstance(result, DeliberationCompleted):
            ranking = Table("rank", "agent", "score", "qualified", box=None)
            for ranked in result.ranking:
                qualified = "yes" if ranked.qualified else "no"
                ranking.add_row(str(ranked.rank), ranked.agent_id, _score(ranked.score), qualified)
            winner = result.winner
            body = Group(
                Markdown(winner.content),
                "",
                ranking,
                "",
                f"[bold]Decided by {result.decided_by}:[/] {result.rationale}",
                f"[dim]{winner.revisions} revision(s) | {result.duration_ms / 1000:.1f}s"
                + (f" | failed agents: {', '.join(result.failed_agents)}" if result.failed_agents else "")
                + "[/]",
            )
            console.print(Panel(body, title=f"{title}: winner {winner.agent_id}, score {_score(winner.score)}"))
        elif isinstance(result, DeliberationFailed):
            console.print(Panel(f"[red]{result.reason}[/]", title=f"{title}: failed in {result.phase}"))


async def print_story(client: Client, story_id: str, console: Console, timeout_s: float = 30.0) -> None:
    """The story as the graph read model shows it, once the projection has caught up with the results."""
    from contracts.queries import SHOW_STORY, ShowStory
    from services.cli.read_models import story_tree
    from services.mesh.queries import QueryFailed, ask

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            story = await ask(client, SHOW_STORY, ShowStory(story_id=story_id))
        except QueryFailed as exc:
            story, problem = None, str(exc)
        else:
            decided = [d.status is not None and d.status.finished
                       for p in story.plans for t in p.tasks for d in t.deliberations]
            if decided and all(decided):
                break
            problem = "the read model has not caught up with every result"
        if time.monotonic() > deadline:
            console.print(f"[yellow]story {story_id} not shown:[/] {problem}")
            return
        await asyncio.sleep(0.5)
    console.print(story_tree(story))
    console.print(f"[dim]Again any time: fleet story show {story_id}[/]")
