"""Answers to the queries, read from the active namespaces: shaping is pure, reading is thin."""

from __future__ import annotations

import json

import msgspec

from contracts.events import DeliberationRef
from contracts.queries import (
    DecisionBrief,
    DeliberationList,
    DeliberationStatus,
    DeliberationSummary,
    DeliberationView,
    ListDeliberations,
    PlanView,
    StoryView,
    TaskView,
    TransitionView,
)
from services.projection.context import ContextFacts, Decision
from services.projection.kv_model import DELIBERATIONS_KEY, deliberation_key, story_deliberations_key
from services.projection.vocabulary import Label, Rel, plan_key, task_key

_INTEGER_FIELDS = ("round", "duration_ms", "winner_revisions")
_NUMBER_FIELDS = ("winner_score", "deadline_s")
_JSON_FIELDS = ("agents", "ranking", "failed_agents", "attempt", "cancel_requested", "retry_requested")
PHASE_PREFIX = "phase_started:"


def deliberation_view(fields: dict[str, str]) -> DeliberationView:
    """A stored deliberation hash as the reply type."""
    values: dict = {}
    phases = {}
    for name, raw in fields.items():
        if name.startswith(PHASE_PREFIX):
            phases[name[len(PHASE_PREFIX):]] = raw
        elif name in _INTEGER_FIELDS:
            values[name] = int(raw)
        elif name in _NUMBER_FIELDS or name in _JSON_FIELDS:
            values[name] = json.loads(raw)
        else:
            values[name] = raw
    values["phases_started"] = dict(sorted(phases.items(), key=lambda item: item[1]))
    values.setdefault("status", DeliberationStatus.PENDING.value)
    for required in ("deliberation_id", "story_id", "plan_id", "task_id", "role"):
        values.setdefault(required, "")
    return msgspec.convert(values, DeliberationView)


def summary_of(view: DeliberationView) -> DeliberationSummary:
    return DeliberationSummary(
        deliberation_id=view.deliberation_id, story_id=view.story_id, task_id=view.task_id, role=view.role,
        status=view.status, phase=view.phase, winner_id=view.winner_id, requested_at=view.requested_at,
        duration_ms=view.duration_ms, attempt_number=view.attempt.number if view.attempt else 1,
        retried_as=view.retried_as, cancelled_by=view.cancelled_by,
    )


STORY_QUERY = f"""MATCH (s:{Label.STORY} {{id: $story}})-[:{Rel.HAS_PLAN}]->(p:{Label.PLAN_VERSION})
OPTIONAL MATCH (p)-[:{Rel.HAS_TASK}]->(t:{Label.TASK})
OPTIONAL MATCH (t)-[:{Rel.DELIBERATED_IN}]->(d:{Label.DELIBERATION})
OPTIONAL MATCH (d)-[:{Rel.DECIDED}]->(c:{Label.DECISION})
OPTIONAL MATCH (d)-[:{Rel.RETRIED_AS}]->(r:{Label.DELIBERATION})
RETURN p.plan_id, p.approved_by, p.approved_at, p.answer, p.answered_at, p.approval_id, p.answer_reasons,
       p.deliberation_count, p.concluded_at, p.conclusion_revision, p.completed, p.failed,
       t.task_id, t.title, t.position, d.id, d.role, d.status, d.winner_score, d.attempt_number, d.cancelled_by,
       r.id, c.winner_id, c.rationale, c.decided_by"""
STORY_TRANSITIONS_QUERY = f"""MATCH (s:{Label.STORY} {{id: $story}})
OPTIONAL MATCH (s)-[:{Rel.TRANSITIONED}]->(t:{Label.TRANSITION})
RETURN s.state, t.id, t.from_state, t.to_state, t.by, t.reason, t.at"""
_PLAN_COLUMNS = ("approved_by", "approved_at", "answer", "answered_at", "approval_id", "answer_reasons",
                 "deliberation_count", "concluded_at", "conclusion_revision", "completed", "failed")


def story_view(story_id: str, rows: list[list], transition_rows: list[list] = ()) -> StoryView | None:
    """Rows of STORY_QUERY and STORY_TRANSITIONS_QUERY as a tree, in a stable order: plans by approval,
    tasks by position, a task's deliberations by role and attempt, transitions by time."""
    if not rows and not transition_rows:
        return None
    plans: dict[str, dict] = {}
    for row in rows:
        plan_id, plan_columns = row[0], row[1:12]
        (task_id, title, position, deliberation_id, role, status, score, attempt_number, cancelled_by, retried_as,
         winner_id, rationale, decided_by) = row[12:]
        plan = plans.setdefault(plan_id, {**dict(zip(_PLAN_COLUMNS, plan_columns, strict=True)), "tasks": {}})
        if task_id is None:
            continue
        task = plan["tasks"].setdefault(task_id, {"title": title, "position": position or 0, "deliberations": {}})
        if deliberation_id is not None:
            task["deliberations"][deliberation_id] = DecisionBrief(
                deliberation_id=deliberation_id, role=role or "", status=status, winner_id=winner_id,
                winner_score=score, rationale=rationale, decided_by=decided_by, attempt_number=attempt_number or 1,
                retried_as=retried_as, cancelled_by=cancelled_by,
            )
    transitions = [
        TransitionView(event_id=event_id, from_state=from_state, to_state=to_state, by=by, reason=reason or "", at=at)
        for _state, event_id, from_state, to_state, by, reason, at in transition_rows if event_id is not None
    ]
    return StoryView(
        story_id=story_id, state=transition_rows[0][0] if transition_rows else None,
        transitions=sorted(transitions, key=lambda t: (t.at, t.event_id)),
        plans=[_plan_view(plan_id, plan) for plan_id, plan in sorted(
            plans.items(), key=lambda item: (item[1]["approved_at"] or item[1]["answered_at"] or "", item[0]))],
    )


def _plan_view(plan_id: str, plan: dict) -> PlanView:
    tasks = [
        TaskView(task_id=task_id, title=task["title"],
                 deliberations=sorted(task["deliberations"].values(), key=lambda d: (d.role, d.attempt_number)))
        for task_id, task in sorted(plan.pop("tasks").items(), key=lambda item: (item[1]["position"], item[0]))
    ]
    values = {name: value for name, value in plan.items() if value is not None}
    return PlanView(plan_id=plan_id, tasks=tasks, **values)


CONTEXT_TASK_QUERY = f"""MATCH (t:{Label.TASK} {{id: $task}})
OPTIONAL MATCH (p:{Label.PLAN_VERSION} {{id: $plan}})
RETURN t.title, t.description, p.approved_by, p.constraints, p.task_count"""
CONTEXT_DECISIONS_QUERY = f"""MATCH (d:{Label.DELIBERATION} {{story_id: $story}})-[:{Rel.DECIDED}]->(c:{Label.DECISION})
OPTIONAL MATCH (c)-[:{Rel.CHOSE}]->(w:{Label.PROPOSAL})
RETURN d.id, d.task_id, d.role, c.winner_id, c.rationale, w.content"""
CONTEXT_RELATED_QUERY = f"""MATCH (p:{Label.PLAN_VERSION} {{id: $plan}})-[:{Rel.HAS_TASK}]->(t:{Label.TASK})
RETURN t.task_id, t.title"""


class ReadModels:
    """The queries' view of both stores; always the active namespace, so a rebuild is invisible."""

    def __init__(self, graph, kv) -> None:
        self._graph = graph
        self._kv = kv

    async def deliberation(self, deliberation_id: str) -> DeliberationView | None:
        namespace = await self._kv.active_namespace()
        fields = await self._kv.client.hgetall(f"{namespace}:{deliberation_key(deliberation_id)}")
        return deliberation_view(fields) if fields else None

    async def deliberations(self, request: ListDeliberations) -> DeliberationList:
        namespace = await self._kv.active_namespace()
        client = self._kv.client
        if request.story_id:
            ids = list(await client.smembers(f"{namespace}:{story_deliberations_key(request.story_id)}"))
        else:
            ids = await client.zrevrange(f"{namespace}:{DELIBERATIONS_KEY}", 0, -1)
        async with client.pipeline(transaction=False) as pipe:
            for deliberation_id in ids:
                pipe.hgetall(f"{namespace}:{deliberation_key(deliberation_id)}")
            hashes = await pipe.execute()
        views = [deliberation_view(fields) for fields in hashes if fields]
        if request.status:
            views = [v for v in views if v.status == request.status]
        views.sort(key=lambda v: (v.requested_at or "", v.deliberation_id), reverse=True)
        return DeliberationList(deliberations=[summary_of(v) for v in views[: request.limit]])

    async def story(self, story_id: str) -> StoryView | None:
        return story_view(story_id, await self._graph.read(STORY_QUERY, {"story": story_id}),
                          await self._graph.read(STORY_TRANSITIONS_QUERY, {"story": story_id}))

    async def context_facts(self, ref: DeliberationRef) -> ContextFacts:
        plan = plan_key(ref.story_id, ref.plan_id)
        task_rows = await self._graph.read(
            CONTEXT_TASK_QUERY, {"task": task_key(ref.story_id, ref.plan_id, ref.task_id), "plan": plan}
        )
        title, description, approved_by, constraints, task_count = task_rows[0] if task_rows else [None] * 5
        decisions = await self._graph.read(CONTEXT_DECISIONS_QUERY, {"story": ref.story_id})
        related = await self._graph.read(CONTEXT_RELATED_QUERY, {"plan": plan})
        return ContextFacts(
            deliberation_id=ref.deliberation_id, story_id=ref.story_id, task_id=ref.task_id,
            task_title=title or "", task_description=description or "", plan_id=ref.plan_id,
            plan_approved_by=approved_by or "", plan_constraints=tuple(constraints or ()),
            plan_task_count=task_count or 0,
            decisions=tuple(
                Decision(deliberation_id=d, task_id=t, role=r, winner_id=w or "", rationale=why or "",
                         winner_excerpt=content or "")
                for d, t, r, w, why, content in decisions
            ),
            related_tasks=tuple((t, title or "") for t, title in related),
        )
