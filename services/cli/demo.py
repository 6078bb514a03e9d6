"""`fleet demo`: one plan approval through the whole mesh, with live progress per deliberation."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field

import msgspec
import nats
from nats.js.api import ConsumerConfig, DeliverPolicy
from rich.console import Console, Group
from rich.live import Live
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table

from contracts import catalog
from contracts.envelope import CORRELATION_ID, MSG_ID
from contracts.events import (
    DeliberationCompleted,
    DeliberationFailed,
    PlanApproved,
    PlannedTask,
    ProposalCompleted,
    ProposalFailed,
    Role,
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
            PlannedTask(
                task_id="sessions",
                title="Move user sessions from memory to Valkey",
                description="Sessions must survive restarts and expire after 30 minutes of inactivity.",
            ),
        ],
        rubric={"correctness": "the proposal solves the task as stated", "clarity": "steps are concrete"},
    )


@dataclass
class Row:
    task_id: str
    role: str
    council_size: int = 3
    proposals: int = 0
    failures: int = 0
    result: DeliberationCompleted | DeliberationFailed | None = None


@dataclass
class Progress:
    rows: dict[tuple[str, str], Row] = field(default_factory=dict)
    began: float = field(default_factory=time.monotonic)

    def row(self, task_id: str, role: str) -> Row:
        return self.rows.setdefault((task_id, role), Row(task_id, role))

    def done(self) -> bool:
        return bool(self.rows) and all(r.result is not None for r in self.rows.values())

    def table(self) -> Table:
        table = Table(title=f"Deliberations ({time.monotonic() - self.began:.0f}s)")
        for column in ("task", "role", "proposals", "failed", "status", "duration"):
            table.add_column(column)
        for row in self.rows.values():
            if isinstance(row.result, DeliberationCompleted):
                status, duration = f"[green]completed[/] winner {row.result.winner.agent_id}", row.result.duration_ms
            elif isinstance(row.result, DeliberationFailed):
                status, duration = "[red]failed[/]", row.result.duration_ms
            else:
                status, duration = "[yellow]in progress[/]", None
            table.add_row(
                row.task_id, row.role, f"{row.proposals}/{row.council_size}", str(row.failures), status,
                f"{duration / 1000:.1f}s" if duration is not None else "",
            )
        return table


def _decode(subject: str, data: bytes):
    return catalog.spec_for_subject(subject).decoder.decode(data)


def apply_event(progress: Progress, subject: str, data: bytes) -> None:
    event = _decode(subject, data)
    if isinstance(event, ProposalCompleted | ProposalFailed):
        row = progress.row(event.deliberation.task_id, event.deliberation.role.value)
        row.council_size = len(event.council)
        if isinstance(event, ProposalCompleted):
            row.proposals += 1
        else:
            row.failures += 1
    elif isinstance(event, DeliberationCompleted | DeliberationFailed):
        progress.row(event.task_id, event.role.value).result = event


async def run_demo(nats_url: str, console: Console, timeout_s: float = 900.0) -> Progress:
    """Publish a sample approval and follow its causal chain until every deliberation has a result."""
    approval = sample_approval()
    event_id = str(uuid.uuid4())
    progress = Progress()
    for task in approval.tasks:
        for role in approval.roles:
            progress.row(task.task_id, role.value)
    updated = asyncio.Event()
    client = await nats.connect(nats_url)
    js = client.jetstream()

    async def follow(message) -> None:
        if (message.headers or {}).get(CORRELATION_ID) == event_id:
            apply_event(progress, message.subject, message.data)
            updated.set()

    subscriptions = []
    try:
        for subject in (
            catalog.PROPOSAL_COMPLETED.subject,
            catalog.PROPOSAL_FAILED.subject,
            catalog.DELIBERATION_COMPLETED.subject,
            catalog.DELIBERATION_FAILED.subject,
        ):
            config = ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
            subscriptions.append(await js.subscribe(subject, cb=follow, ordered_consumer=True, config=config))
        await js.publish(
            catalog.PLAN_APPROVED.subject, msgspec.json.encode(approval), headers={MSG_ID: event_id}
        )
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
                updated.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(updated.wait(), timeout=min(remaining, 1.0))
                live.update(progress.table())
    finally:
        for subscription in subscriptions:
            await subscription.unsubscribe()
        await client.close()
    return progress


def print_winners(progress: Progress, console: Console) -> None:
    for row in progress.rows.values():
        result = row.result
        if isinstance(result, DeliberationCompleted):
            body = Group(
                Markdown(result.winner.content),
                f"[dim]ranking: {', '.join(r.agent_id for r in result.ranking)} | {result.selection} | "
                f"{result.duration_ms / 1000:.1f}s[/]",
            )
            console.print(Panel(body, title=f"{row.task_id} / {row.role}: winner {result.winner.agent_id}"))
        elif isinstance(result, DeliberationFailed):
            console.print(Panel(f"[red]{result.reason}[/]", title=f"{row.task_id} / {row.role}: failed"))
