"""`fleet plan approve`: approve a plan as upstream planning does, and follow it to its results."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from services.cli.runner import CommandError, console, on_jetstream, run

if TYPE_CHECKING:
    from nats.js import JetStreamContext
    from rich.console import Console

    from contracts.events import PlanApproved, PlanConcluded
    from services.planning.client import PlanUpdate

app = typer.Typer(help="Plans, approved as upstream planning approves them.")


@app.command("approve")
def plan_approve(
    source: Annotated[str, typer.Argument(
        help="A JSON file with the approval (planning.plan.approved.v1; docs/clients.md), or - for stdin.")],
    wait: Annotated[bool, typer.Option(
        "--wait", help="Follow every deliberation to its result; exit 1 unless all of them completed.")] = False,
    timeout_s: Annotated[float, typer.Option(
        "--timeout", min=1, max=7 * 24 * 3600, help="With --wait: give up after this many seconds.")] = 3600,
    by: Annotated[str, typer.Option(
        "--by", help="The producer in the event's envelope: who publishes it.")] = "",
    event_id: Annotated[str | None, typer.Option(
        "--event-id", help="The approval's event id (Nats-Msg-Id); by default one per plan, '<plan_id>-approved'.")]
    = None,
) -> None:
    """Check the approval against the contract, publish it, print each deliberation it starts.

    Nothing is published when the file breaks the contract: each problem is named with its field path.
    """
    from contracts.catalog import OPERATOR
    from services.planning.domain import read_approval

    approval = read_approval(_read(source))
    run(on_jetstream(lambda js: _approve(js, approval, by or OPERATOR, event_id, wait, timeout_s, console)))


def _read(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    path = Path(source)
    if not path.is_file():
        raise CommandError(f"no such file: {source}")
    return path.read_bytes()


async def _approve(
    js: JetStreamContext, approval: PlanApproved, by: str, event_id: str | None, wait: bool, timeout_s: float,
    out: Console,
) -> None:
    import asyncio
    import contextlib

    from services.planning.client import approve_plan, follow_plan
    from services.planning.domain import planned_tasks

    sent = await approve_plan(js, approval, by=by, event_id=event_id)
    note = " (already in the log: published before with this event id; following its answers)" if sent.duplicate else ""
    out.print(f"published plan {approval.plan_id} of story {approval.story_id}, event id {sent.approval_id}{note}")
    slots = [(task.task_id, role.value) for task in planned_tasks(approval) for role in approval.roles]
    for deliberation, (task, role) in zip(sent.deliberation_ids, slots, strict=True):
        out.print(f"  {deliberation}  task {task}  {role}")
    if not wait:
        return
    tally = WaitTally(sent.deliberation_ids)
    try:
        async with asyncio.timeout(timeout_s):
            async with contextlib.aclosing(follow_plan(js, sent)) as updates:
                with out.status(f"waiting for {tally.total} result(s)…") as status:
                    async for update in updates:
                        out.print(tally.line_for(update))
                        status.update(f"waiting for {tally.waiting} result(s)…")
    except TimeoutError:
        raise CommandError(f"{tally.done} of {tally.total} result(s) within {timeout_s:g}s; the deliberations go on "
                           f"(`fleet deliberation list --story {approval.story_id}`)") from None
    if (verdict := tally.verdict()) is not None:
        raise CommandError(verdict)


class WaitTally:
    """What `--wait` has seen so far, and how each update reads on one line."""

    def __init__(self, deliberation_ids: list[str]) -> None:
        # The approval's own deliberations are counted; a retry's new attempt (another id) is shown, not counted.
        self._expected = set(deliberation_ids)
        self._ended: set[str] = set()
        self.total = len(self._expected)
        self.rejected: list[str] = []
        self.concluded: PlanConcluded | None = None

    @property
    def done(self) -> int:
        return len(self._ended)

    @property
    def waiting(self) -> int:
        return self.total - self.done

    def _counted(self, deliberation_id: str) -> str:
        if deliberation_id not in self._expected:
            return "[retry]"
        self._ended.add(deliberation_id)
        return f"[{self.done}/{self.total}]"

    def line_for(self, update: PlanUpdate) -> str:
        from contracts.events import DeliberationCompleted, DeliberationFailed, PlanAccepted, PlanRejected

        match update:
            case PlanAccepted():
                return f"accepted: {len(update.deliberations)} deliberation(s) requested"
            case PlanRejected():
                self.rejected = update.reasons
                return "rejected: " + "; ".join(update.reasons)
            case DeliberationCompleted():
                score = "no score" if update.winner.score is None else f"score {update.winner.score:.1f}"
                return (f"{self._counted(update.deliberation_id)} completed {update.task_id} {update.role}: "
                        f"{update.winner.agent_id} won ({score}) in {update.duration_ms / 1000:.1f}s  "
                        f"{update.deliberation_id}")
            case DeliberationFailed():
                outcome = "cancelled" if update.cancelled_by else "timed out" if update.timed_out else "failed"
                return (f"{self._counted(update.deliberation_id)} {outcome} {update.task_id} {update.role} in phase "
                        f"{update.phase}: {update.reason}  {update.deliberation_id}")
        self.concluded = update
        return (f"plan {update.plan_id} concluded: {update.completed} completed, {update.failed} did not"
                + (f" (revision {update.revision})" if update.revision > 1 else ""))

    def verdict(self) -> str | None:
        """Why the plan did not succeed, or None when every deliberation (its last attempt) completed."""
        if self.rejected:
            return "the approval was rejected: " + "; ".join(self.rejected)
        assert self.concluded is not None, "the answers end with a rejection or a conclusion"
        unsuccessful = [f"{o.task_id} {o.role} {o.outcome}: {o.reason}" for o in self.concluded.outcomes
                        if o.outcome != "completed"]
        if not unsuccessful:
            return None
        return f"{len(unsuccessful)} of {len(self.concluded.outcomes)} deliberation(s) did not complete: " + \
            "; ".join(unsuccessful)
