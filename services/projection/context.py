"""The context an agent gets before it writes: pure selection, redaction and cutting to a budget."""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from contracts.events import Phase, Role
from contracts.queries import AgentContext
from services.mesh.redaction import redact
from services.mesh.tokens import cut_to_tokens, estimate_tokens

SCOPES_FILE = Path(__file__).with_name("context_scopes.toml")
SECTIONS = ("story", "plan", "task", "decisions", "related_tasks")
EXCERPT_CHARS = 300
ELLIPSIS = "…"


@dataclass(frozen=True)
class Scope:
    phases: tuple[Phase, ...]
    sections: tuple[str, ...]
    decisions: str  # "story" or "task"
    budget_tokens: int


def load_scopes(budgets: Mapping[Role, int], path: Path = SCOPES_FILE) -> dict[Role, Scope]:
    """Every role's scope: its own table over the defaults, its budget from the settings. A bad file fails
    loudly at start."""
    document = tomllib.loads(path.read_text())
    default = document.get("default", {})
    unknown_roles = set(document.get("roles", {})) - {role.value for role in Role}
    if unknown_roles:
        raise ValueError(f"{path}: no such role {sorted(unknown_roles)}; roles are {', '.join(Role)}")
    scopes = {}
    for role in Role:
        merged = {**default, **document.get("roles", {}).get(role.value, {})}
        unknown = set(merged.get("sections", [])) - set(SECTIONS)
        if unknown or merged.get("decisions") not in ("story", "task"):
            raise ValueError(f"{path}: bad scope for {role}: sections {sorted(unknown)}, decisions "
                             f"{merged.get('decisions')!r}")
        scopes[role] = Scope(
            phases=tuple(Phase(p) for p in merged["phases"]), sections=tuple(merged["sections"]),
            decisions=merged["decisions"], budget_tokens=budgets[role],
        )
    return scopes


@dataclass(frozen=True)
class Decision:
    deliberation_id: str
    task_id: str
    role: str
    winner_id: str
    rationale: str
    winner_excerpt: str = ""


@dataclass(frozen=True)
class ContextFacts:
    """What the read models know around one deliberation."""

    deliberation_id: str
    story_id: str
    task_id: str
    task_title: str = ""
    task_description: str = ""
    plan_id: str = ""
    plan_approved_by: str = ""
    plan_constraints: tuple[str, ...] = ()
    plan_task_count: int = 0
    decisions: tuple[Decision, ...] = ()
    related_tasks: tuple[tuple[str, str], ...] = field(default=())


def _section(name: str, facts: ContextFacts, scope: Scope) -> str:
    match name:
        case "story":
            return f"Story: {facts.story_id}"
        case "plan":
            lines = [f"Plan {facts.plan_id}, approved by {facts.plan_approved_by}, {facts.plan_task_count} task(s)."]
            lines += [f"Plan constraint: {c}" for c in facts.plan_constraints]
            return "\n".join(lines)
        case "task":
            return f"Your task {facts.task_id}: {facts.task_title}\n{facts.task_description}".rstrip()
        case "decisions":
            chosen = [
                d for d in facts.decisions
                if d.deliberation_id != facts.deliberation_id
                and (scope.decisions == "story" or d.task_id == facts.task_id)
            ]
            if not chosen:
                return ""
            lines = ["Decisions already made:"]
            for d in sorted(chosen, key=lambda d: (d.task_id, d.role, d.deliberation_id)):
                lines.append(f"- task {d.task_id}, {d.role}: {d.winner_id} won. {d.rationale}".rstrip())
                if d.winner_excerpt:
                    # Redacted before it is cut: a secret cut in half would no longer look like one.
                    lines.append(f"  Winning proposal begins: {redact(d.winner_excerpt)[:EXCERPT_CHARS]}")
            return "\n".join(lines)
        case "related_tasks":
            others = [(t, title) for t, title in facts.related_tasks if t != facts.task_id]
            if not others:
                return ""
            return "\n".join(["Other tasks of the plan:", *(f"- {t}: {title}" for t, title in sorted(others))])
    raise ValueError(name)


def build_context(facts: ContextFacts, scope: Scope, phase: Phase) -> AgentContext:
    """The scoped, redacted context, whole sections first, the last one cut to fit the budget."""
    if phase not in scope.phases:
        return AgentContext(text="", context_hash=None)
    parts, names, truncated = [], [], False
    for name in scope.sections:
        text = redact(_section(name, facts, scope))
        if not text:
            continue
        room = scope.budget_tokens - estimate_tokens("".join(f"{p}\n\n" for p in parts))
        if room <= 0:
            truncated = True
            break
        if estimate_tokens(text) > room:
            truncated = True
            kept = cut_to_tokens(text, room - estimate_tokens(ELLIPSIS)).rstrip()
            if not kept:
                break
            text = kept + ELLIPSIS
        parts.append(text)
        names.append(name)
        if truncated:
            break
    body = "\n\n".join(parts)
    return AgentContext(
        text=body, context_hash=hashlib.sha256(body.encode()).hexdigest(), sections=names,
        estimated_tokens=estimate_tokens(body), truncated=truncated,
    )
