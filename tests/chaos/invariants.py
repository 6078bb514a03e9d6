"""What must hold after a fault, as pure functions of the events read back from the streams.

Each check returns a `Check`: its name, whether it held, a one-line summary with the counts, and the
evidence (offending ids, at most a few of each) that a reader needs to start looking.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from contracts.events import (
    DeliberationCompleted,
    DeliberationFailed,
    DeliberationRequested,
    DeliberationStarted,
    MessageRejected,
    PlanApproved,
)
from services.planning.domain import deliberation_id

ONE_RESULT_PER_TASK_AND_ROLE = "one result per (task, role)"
NO_DELIBERATION_DUPLICATED_OR_LOST = "no deliberation duplicated or lost"
READ_MODELS_EQUAL_REBUILD = "read models = rebuild"
EVERY_DEAD_LETTER_HAS_A_REASON = "dead letters have a reason"
INVARIANTS = (ONE_RESULT_PER_TASK_AND_ROLE, NO_DELIBERATION_DUPLICATED_OR_LOST, READ_MODELS_EQUAL_REBUILD,
              EVERY_DEAD_LETTER_HAS_A_REASON)

# Evidence lists are cut here: enough to start looking, short enough for a table and a JSON file.
SHOWN = 5


@dataclass(frozen=True)
class Check:
    name: str
    held: bool
    summary: str
    evidence: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"name": self.name, "held": self.held, "summary": self.summary, "evidence": self.evidence}


@dataclass(frozen=True)
class Expected:
    """One deliberation an approval asked for: (plan, task, role) and the id planning derives from them."""

    deliberation_id: str
    plan_id: str
    task_id: str
    role: str


@dataclass(frozen=True)
class Comparison:
    """A live read model next to a rebuild of it from sequence 0."""

    projection: str
    caught_up: bool
    live_hash: str
    rebuilt_hash: str
    # The hash `rebuild` took of the model it replaced, just before switching.
    replaced_hash: str | None


def expected_deliberations(approvals: Iterable[PlanApproved]) -> list[Expected]:
    """One per (task, role) of each approval, as planning requests them."""
    return [
        Expected(deliberation_id(a.story_id, a.plan_id, t.task_id, role), a.plan_id, t.task_id, role.value)
        for a in approvals
        for t in a.tasks
        for role in a.roles
    ]


def _shown(items: Iterable) -> list:
    return sorted(items)[:SHOWN]


def one_result_per_task_and_role(
    expected: Sequence[Expected], results: Sequence[DeliberationCompleted | DeliberationFailed]
) -> Check:
    """Every approval's (task, role) has exactly one completed-or-failed event: none missing, none twice."""
    count = Counter((r.plan_id, r.task_id, r.role.value) for r in results)
    wanted = {(e.plan_id, e.task_id, e.role) for e in expected}
    missing = [key for key in wanted if count[key] == 0]
    repeated = {key: n for key, n in count.items() if key in wanted and n > 1}
    held = not missing and not repeated
    summary = f"{len(wanted) - len(missing)}/{len(wanted)} with a result"
    if repeated:
        summary += f", {len(repeated)} with more than one"
    return Check(ONE_RESULT_PER_TASK_AND_ROLE, held, summary, {
        "expected": len(wanted), "without_result": len(missing), "with_several": len(repeated),
        "without_result_examples": ["/".join(key) for key in _shown(missing)],
        "with_several_examples": {"/".join(key): n for key, n in sorted(repeated.items())[:SHOWN]},
    })


def no_deliberation_duplicated_or_lost(
    expected: Sequence[Expected],
    requested: Sequence[DeliberationRequested],
    started: Sequence[DeliberationStarted],
    results: Sequence[DeliberationCompleted | DeliberationFailed],
    plan_ids: Iterable[str],
) -> Check:
    """Each expected deliberation is requested, started and ended once; nothing else starts for these plans.

    A deliberation that failed (its LLM down, say) has ended: it is not lost.
    """
    plans = set(plan_ids)
    wanted = {e.deliberation_id for e in expected}
    requests = Counter(r.deliberation.deliberation_id for r in requested if r.deliberation.plan_id in plans)
    starts = Counter(s.deliberation.deliberation_id for s in started if s.deliberation.plan_id in plans)
    ends = Counter(r.deliberation_id for r in results if r.plan_id in plans)
    lost = {
        "never_requested": [d for d in wanted if requests[d] == 0],
        "never_started": [d for d in wanted if requests[d] and starts[d] == 0],
        "never_ended": [d for d in wanted if starts[d] and ends[d] == 0],
    }
    duplicated = {
        "requested_twice": [d for d, n in requests.items() if n > 1],
        "started_twice": [d for d, n in starts.items() if n > 1],
        "ended_twice": [d for d, n in ends.items() if n > 1],
    }
    unexpected = sorted((set(requests) | set(starts) | set(ends)) - wanted)
    held = not any(lost.values()) and not any(duplicated.values()) and not unexpected
    lost_count = sum(len(v) for v in lost.values())
    duplicated_count = sum(len(v) for v in duplicated.values())
    summary = f"{len(wanted)} expected, {lost_count} lost, {duplicated_count} duplicated"
    if unexpected:
        summary += f", {len(unexpected)} unexpected"
    evidence = {key: {"count": len(ids), "examples": _shown(ids)} for key, ids in (lost | duplicated).items()}
    evidence["unexpected"] = {"count": len(unexpected), "examples": unexpected[:SHOWN]}
    return Check(NO_DELIBERATION_DUPLICATED_OR_LOST, held, summary, evidence)


def read_models_equal_rebuild(comparisons: Sequence[Comparison]) -> Check:
    """The live projection, caught up with the log, hashes the same as a rebuild from sequence 0."""
    if not comparisons:
        return Check(READ_MODELS_EQUAL_REBUILD, False, "not compared", {})
    differing = [
        c.projection for c in comparisons
        if not c.caught_up or c.live_hash != c.rebuilt_hash or (c.replaced_hash not in (None, c.rebuilt_hash))
    ]
    summary = ", ".join(
        f"{c.projection} {'=' if c.projection not in differing else '≠'} {c.rebuilt_hash[:8]}"
        + ("" if c.caught_up else " (live not caught up)")
        for c in comparisons
    )
    return Check(READ_MODELS_EQUAL_REBUILD, not differing, summary, {
        c.projection: {"caught_up": c.caught_up, "live": c.live_hash, "rebuilt": c.rebuilt_hash,
                       "replaced": c.replaced_hash}
        for c in comparisons
    })


def every_dead_letter_has_a_reason(letters: Sequence[tuple[int, MessageRejected]]) -> Check:
    """Each (sequence, letter) names why it was rejected. Reasons are counted, to show what the fault caused."""
    blank = [sequence for sequence, letter in letters if not letter.reason.strip()]
    reasons = Counter(f"{letter.service}: {_gist(letter.reason)}" for _, letter in letters)
    summary = f"{len(letters) - len(blank)}/{len(letters)} with a reason"
    return Check(EVERY_DEAD_LETTER_HAS_A_REASON, not blank, summary, {
        "letters": len(letters), "without_reason": blank[:SHOWN],
        "reasons": dict(reasons.most_common(SHOWN)),
    })


def _gist(reason: str, width: int = 100) -> str:
    """The reason's first line, cut short, so letters for the same cause count together."""
    line = reason.strip().splitlines()[0] if reason.strip() else "(no reason)"
    return line if len(line) <= width else line[: width - 1] + "…"


@dataclass(frozen=True)
class Outcomes:
    """How the deliberations of one fault ended: the table shows it beside the invariants."""

    completed: int
    failed: int
    timed_out: int
    failure_reasons: dict[str, int]

    def as_json(self) -> dict:
        return {"completed": self.completed, "failed": self.failed, "timed_out": self.timed_out,
                "failure_reasons": self.failure_reasons}


def outcomes(results: Sequence[DeliberationCompleted | DeliberationFailed]) -> Outcomes:
    failed = [r for r in results if isinstance(r, DeliberationFailed)]
    reasons = Counter(f"{f.phase.value}: {_gist(f.reason, 80)}" for f in failed)
    return Outcomes(
        completed=sum(isinstance(r, DeliberationCompleted) for r in results),
        failed=len(failed),
        timed_out=sum(f.timed_out for f in failed),
        failure_reasons=dict(reasons.most_common(SHOWN)),
    )


@dataclass(frozen=True)
class Availability:
    """How the results kept coming through a fault, from the times they were stored (seconds, wall clock).

    `longest_gap_s`: the longest stretch with no new result, from the fault's injection to the last result
    (a gap that began before the fault counts from the injection). `resumed_after_s`: from the injection
    to the first result stored after it (None if none came). The target (docs/reliability.md): every
    deliberation ends, and results resume within 10 s of a node loss. Measured, never asserted in a test.
    """

    longest_gap_s: float | None
    resumed_after_s: float | None
    share_completed: float

    def as_json(self) -> dict:
        return {"longest_gap_s": self.longest_gap_s, "resumed_after_s": self.resumed_after_s,
                "share_completed": self.share_completed}


def availability(result_times: Iterable[float], injected_at: float, completed: int, expected: int) -> Availability:
    after = sorted(t for t in result_times if t >= injected_at)
    share = round(completed / expected, 3) if expected else 1.0
    if not after:
        return Availability(None, None, share)
    marks = [injected_at, *after]
    gaps = [later - earlier for earlier, later in zip(marks, marks[1:], strict=False)]
    return Availability(round(max(gaps), 1), round(after[0] - injected_at, 1), share)
