"""The evaluation set: approvals the demo never ran, read from approvals.toml and made into PlanApproved events."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from contracts.events import PlanApproved, PlannedTask, Role
from services.planning.domain import deliberation_id, oversized_briefs

CASES_FILE = Path(__file__).with_name("approvals.toml")
EVAL_USER = "fleet-eval"
# A constraint is at most 64,000 characters (contracts.events.Text): padding is spread over several.
PAD_CONSTRAINT_CHARS = 60_000
# Build logs and an incident timeline, as an appendix a real upstream might attach to a task.
PAD_LINES = (
    "2026-11-28T03:14:07Z build-agent-7 step=test shard=3/8 pytest tests/integration -q exit=1 duration=412s",
    "2026-11-28T03:14:09Z build-agent-7 FAILED tests/integration/test_orders.py::test_refund_race - TimeoutError",
    "2026-11-28T03:15:42Z pager alert=checkout-p99-latency value=2.31s threshold=1.5s region=eu-west-1",
    "2026-11-28T03:16:03Z deploy service=payments version=4.18.2 strategy=canary weight=10% status=paused",
    "2026-11-28T03:17:55Z postgres primary=db-3 replication_lag_bytes=48211456 wal_senders=2 checkpoints_req=17",
)


@dataclass(frozen=True)
class Case:
    name: str
    roles: list[Role]
    title: str
    description: str
    keywords: list[str]
    rubric: dict[str, str]
    constraints: list[str] = field(default_factory=list)
    # For the cases near the size limit: pad the brief, as JSON, to about this many bytes.
    pad_to_bytes: int | None = None


def load_cases(path: Path = CASES_FILE) -> list[Case]:
    cases = []
    for entry in tomllib.loads(path.read_text())["case"]:
        cases.append(Case(
            name=entry["name"], roles=[Role(role) for role in entry["roles"]], title=entry["title"],
            description=entry["description"].strip(), keywords=entry["keywords"], rubric=entry["rubric"],
            constraints=entry.get("constraints", []), pad_to_bytes=entry.get("pad_to_bytes"),
        ))
    return cases


def _padding(chars: int) -> list[str]:
    """Appendix constraints of realistic log lines, `chars` characters in all, none over the contract's limit."""
    text, line = [], 0
    while sum(map(len, text)) < chars:
        text.append(f"{PAD_LINES[line % len(PAD_LINES)]} #{line}\n")
        line += 1
    whole = "".join(text)[:chars]
    return [f"Appendix: {whole[start:start + PAD_CONSTRAINT_CHARS]}"
            for start in range(0, len(whole), PAD_CONSTRAINT_CHARS)]


def approval_of(case: Case, run_id: str) -> PlanApproved:
    """The case as upstream planning would publish it, under ids unique to this run."""
    approval = PlanApproved(
        story_id=f"eval-{run_id}-{case.name}"[:256], plan_id=f"eval-plan-{run_id}-{case.name}"[:256],
        approved_by=EVAL_USER, roles=case.roles,
        tasks=[PlannedTask(task_id=case.name, title=case.title, description=case.description)],
        rubric=case.rubric, constraints=case.constraints,
    )
    if case.pad_to_bytes:
        size = len(msgspec.json.encode(approval))
        approval = msgspec.structs.replace(
            approval, constraints=[*case.constraints, *_padding(max(case.pad_to_bytes - size, 0))])
        if oversized_briefs(approval):
            raise ValueError(f"case {case.name}: pad_to_bytes={case.pad_to_bytes} puts its brief over the limit")
    return approval


def deliberations_of(case: Case, approval: PlanApproved) -> dict[str, Role]:
    return {deliberation_id(approval.story_id, approval.plan_id, case.name, role): role for role in case.roles}
