"""A realistic, deterministic event log: councils, plan approvals and whole deliberations, in envelopes."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass

from contracts import catalog
from contracts import events as ev
from contracts.envelope import deterministic_id, to_headers
from services.mesh.messages import Cause, Outgoing
from services.mesh.publishing import envelope_for

# The log begins this hour: the read models forget what is older than their retention (30 days), so a log
# dated for good would one day rebuild into nothing. Within a run, the same seed still gives the same log.
START = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
ROLES = (ev.Role.DEV, ev.Role.QA)
TASKS_PER_PLAN = 2
AGENTS_PER_COUNCIL = 3
PROSE = (
    "the service retries each call with backoff and records the outcome as an event so a replay gives the "
    "same answer; tests cover the throttle window, the lockout, clock skew and the audit trail; a sliding "
    "window keyed by account and address keeps state in the key-value store with a TTL; the migration adds "
    "an index first and backfills in batches; errors are typed and logged with the correlation id"
)
WORDS = PROSE.split()


@dataclass(frozen=True)
class Stored:
    """One message as it is published: subject, envelope headers and the encoded payload."""

    subject: str
    headers: dict[str, str]
    body: bytes


class LogWriter:
    """Builds events with the contracts' own types and envelopes, with ids and times derived from a seed."""

    def __init__(self, seed: str) -> None:
        self._seed = seed
        self._count = 0
        self._random = random.Random(seed)

    def text(self, size: int) -> str:
        """About `size` characters of prose, different every time."""
        words: list[str] = []
        length = 0
        while length < size:
            word = self._random.choice(WORDS)
            words.append(word)
            length += len(word) + 1
        return " ".join(words)

    def emit(self, payload: ev.Event, producer: str, cause: Cause | None) -> tuple[Stored, Cause]:
        self._count += 1
        outgoing = Outgoing(payload=payload, event_id=deterministic_id("bench", self._seed, str(self._count)))
        now = START + dt.timedelta(milliseconds=self._count)
        envelope = envelope_for(outgoing, producer=producer, cause=cause, now=now)
        stored = Stored(catalog.spec_for_payload(payload).subject, to_headers(envelope), catalog.encode(payload))
        return stored, Cause.of(envelope)


def agent(agent_id: str, role: ev.Role) -> ev.AgentProfile:
    return ev.AgentProfile(agent_id=agent_id, role=role, persona=f"{role.value} engineer, terse", temperature=0.7,
                           seed=sum(map(ord, agent_id)))


def council(role: ev.Role) -> ev.Council:
    prefix = role.value.lower()
    return ev.Council(role=role, agents=[agent(f"{prefix}-{n}", role) for n in range(1, AGENTS_PER_COUNCIL + 1)])


ARCHITECT = agent("architect-1", ev.Role.ARCHITECT)


def event_log(total: int, seed: str = "fleet-bench") -> Iterator[Stored]:
    """`total` stored events: the councils, then stories of one plan, each task deliberated by every role."""
    writer = LogWriter(seed)
    produced = 0

    def take(items: Iterator[Stored]) -> Iterator[Stored]:
        nonlocal produced
        for item in items:
            if produced >= total:
                return
            produced += 1
            yield item

    yield from take(_councils(writer))
    story = 0
    while produced < total:
        story += 1
        yield from take(_story(writer, story))


def _councils(writer: LogWriter) -> Iterator[Stored]:
    for role in ROLES:
        stored, _ = writer.emit(ev.CouncilCreated(council=council(role), created_by="bench"), catalog.OPERATOR, None)
        yield stored


def _story(writer: LogWriter, number: int) -> Iterator[Stored]:
    story, plan = f"story-{number:06d}", "plan-1"
    tasks = [
        ev.PlannedTask(task_id=f"task-{n}", title=f"Task {n} of {story}", description=writer.text(300))
        for n in range(1, TASKS_PER_PLAN + 1)
    ]
    approval = ev.PlanApproved(story_id=story, plan_id=plan, approved_by="alice", roles=list(ROLES), tasks=tasks,
                               rubric={"correctness": "it works", "tests": "it is tested"})
    stored, cause = writer.emit(approval, catalog.UPSTREAM, None)
    yield stored
    for task in tasks:
        for role in ROLES:
            ref = ev.DeliberationRef(deliberation_id=deterministic_id(story, plan, task.task_id, role.value),
                                     story_id=story, plan_id=plan, task_id=task.task_id, role=role)
            yield from _deliberation(writer, ref, ev.Brief(task=task, rubric=approval.rubric), cause)


def _deliberation(writer: LogWriter, ref: ev.DeliberationRef, brief: ev.Brief, cause: Cause) -> Iterator[Stored]:
    """One whole deliberation, 42 events: propose, critique, revise, judge, select, decision."""
    members = council(ref.role)
    ids = [a.agent_id for a in members.agents]
    stored, cause = writer.emit(ev.DeliberationRequested(
        deliberation=ref, brief=brief, approved_by="alice", council=members, architect=ARCHITECT), catalog.PLANNING,
        cause)
    yield stored
    stored, cause = writer.emit(ev.DeliberationStarted(
        deliberation=ref, brief=brief, council=members, architect=ARCHITECT, started_at=START), catalog.DISPATCH,
        cause)
    yield stored
    profiles = {a.agent_id: a for a in [*members.agents, ARCHITECT]}
    phases = [
        (ev.Phase.PROPOSE, 0, [(a, a) for a in ids]),
        (ev.Phase.CRITIQUE, 1, [(critic, author) for critic in ids for author in ids if critic != author]),
        (ev.Phase.REVISE, 1, [(a, a) for a in ids]),
        (ev.Phase.JUDGE, 1, [(ARCHITECT.agent_id, a) for a in ids]),
        (ev.Phase.SELECT, 1, [(ARCHITECT.agent_id, ARCHITECT.agent_id)]),
    ]
    for phase, round_, pairs in phases:
        turns = [ev.Turn(phase=phase, round=round_, agent_id=who, author_id=whose) for who, whose in pairs]
        stored, _ = writer.emit(ev.DeliberationAdvanced(
            deliberation_id=ref.deliberation_id, phase=phase, round=round_, turns=[t.key for t in turns],
            deadline_at=START + dt.timedelta(minutes=5)), catalog.COLLECTOR, cause)
        yield stored
        for turn in turns:
            yield from _turn(writer, ref, brief, turn, profiles[turn.agent_id], cause)
        if phase is ev.Phase.JUDGE:
            yield from _scored(writer, ref, ids, cause)
    yield from _result(writer, ref, ids, cause)


def _turn(writer: LogWriter, ref, brief, turn: ev.Turn, profile: ev.AgentProfile, cause: Cause) -> Iterator[Stored]:
    request = ev.TurnRequested(deliberation=ref, turn=turn, agent=profile, brief=brief,
                               input=ev.TurnInput(proposal=writer.text(200) if turn.phase != ev.Phase.PROPOSE else ""))
    stored, turn_cause = writer.emit(request, catalog.COLLECTOR, cause)
    yield stored
    verdict = ev.Verdict(criteria={"correctness": 8, "tests": 7}, justification=writer.text(150)) if (
        turn.phase is ev.Phase.JUDGE) else None
    choice = ev.Choice(winner_id=ref.role.value.lower() + "-1", rationale=writer.text(150)) if (
        turn.phase is ev.Phase.SELECT) else None
    completed = ev.TurnCompleted(
        deliberation=ref, turn=turn, agent=profile, content=writer.text(1000), verdict=verdict, choice=choice,
        model="SmolLM2-135M-Instruct", temperature=profile.temperature, seed=profile.seed, prompt_tokens=900,
        completion_tokens=250, latency_ms=1800, context_hash="sha256:" + "0" * 64 if turn.phase in (
            ev.Phase.PROPOSE, ev.Phase.REVISE) else None,
    )
    stored, _ = writer.emit(completed, catalog.AGENTS, turn_cause)
    yield stored


def _scored(writer: LogWriter, ref: ev.DeliberationRef, ids: list[str], cause: Cause) -> Iterator[Stored]:
    scores = [
        ev.ProposalScore(agent_id=a, criteria={"correctness": 8 - n, "tests": 7}, justification=writer.text(150),
                         checks=[ev.CheckResult(check="non_empty", passed=True)], score=7.5 - n, qualified=True)
        for n, a in enumerate(ids)
    ]
    stored, _ = writer.emit(ev.DeliberationScored(deliberation_id=ref.deliberation_id, scores=scores),
                            catalog.COLLECTOR, cause)
    yield stored


def _result(writer: LogWriter, ref: ev.DeliberationRef, ids: list[str], cause: Cause) -> Iterator[Stored]:
    ranking = [ev.RankedProposal(rank=n + 1, agent_id=a, score=7.5 - n, qualified=True) for n, a in enumerate(ids)]
    rationale = writer.text(300)
    stored, cause = writer.emit(ev.DecisionMade(
        deliberation_id=ref.deliberation_id, winner_id=ids[0], candidates=ids, ranking=ranking, rationale=rationale,
        decided_by=ARCHITECT.agent_id), catalog.COLLECTOR, cause)
    yield stored
    stored, _ = writer.emit(ev.DeliberationCompleted(
        deliberation_id=ref.deliberation_id, story_id=ref.story_id, plan_id=ref.plan_id, task_id=ref.task_id,
        role=ref.role, winner=ev.Winner(agent_id=ids[0], content=writer.text(1000), score=7.5, revisions=1),
        ranking=ranking, rationale=rationale, decided_by=ARCHITECT.agent_id, duration_ms=95_000), catalog.COLLECTOR,
        cause)
    yield stored
