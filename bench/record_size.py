"""The collector's largest stored record, for a deliberation built through `step` at the limits of the contracts.

`python -m bench.record_size` prints, for 3 agents, 1 to 3 critique rounds, a brief of MAX_BRIEF_BYTES and every
answer as long as Text allows, the largest record, with each outbox removed once published, and if each
lingered until the next one was stored (the removal failed and waits for its redelivery). It does so twice:
answers in ASCII, and answers in the widest character, the one JSON takes most bytes to write (a control
character, escaped as \\u00XX: 6 bytes). Text bounds characters, not bytes, so the second is the worst case
ingress accepts; the collector ends such a deliberation with one failure (`too_large_to_store`) instead of
saving a record NATS would refuse. Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec

from contracts.events import (
    AgentProfile,
    Brief,
    Choice,
    DeliberationRef,
    DeliberationStarted,
    Phase,
    PlannedTask,
    Role,
    Text,
    TurnCompleted,
    TurnRequested,
    Verdict,
)
from services.collector.domain import step
from services.collector.handlers import RECORD_MAX_BYTES, Record
from services.councils.domain import new_council
from services.mesh.outbox import pack
from services.planning.domain import MAX_BRIEF_BYTES

# The most characters a turn's content may have, read from the contract itself.
TEXT_MAX_CHARS = next(m.max_length for m in typing.get_args(Text) if isinstance(m, msgspec.Meta))
# One character of each width as JSON: 1 to 4 bytes of UTF-8, 2 for a short escape, 6 for a \u00XX escape.
_ONE_OF_EACH_WIDTH = ("x", "é", "€", "😀", "\n", "\x01")
ASCII = "x"
WIDEST = max(_ONE_OF_EACH_WIDTH, key=lambda c: len(msgspec.json.encode(c)))
T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Sizes:
    steps: int
    # The largest record when every outbox is removed right after its events are published.
    promptly: int
    # The largest record when each outbox stays until the next one is stored.
    lingering: int
    state_only: int


def brief_of(size: int) -> Brief:
    """A brief of exactly `size` bytes as JSON, padded in constraints of at most 64,000 characters."""
    base = Brief(task=PlannedTask(task_id="t", title="The largest brief"), rubric={"correctness": "works"})
    padding = size - len(msgspec.json.encode(msgspec.structs.replace(base, constraints=[""])))
    chunks, left = [], padding
    while left > 0:
        chunks.append(min(left, 60_000))
        left -= chunks[-1] + 3  # the quotes and the comma of the next constraint
    brief = msgspec.structs.replace(base, constraints=["x" * n for n in chunks])
    short = size - len(msgspec.json.encode(brief))
    return msgspec.structs.replace(brief, constraints=[*brief.constraints[:-1], "x" * (chunks[-1] + short)])


def answer_to(request: TurnRequested, chars: int, fill: str = ASCII) -> TurnCompleted:
    """An answer of `chars` characters, all `fill` but for the turn's key in front (in ASCII, the key
    repeated), with a verdict or a choice where the phase wants one."""
    structured = {}
    if request.turn.phase == Phase.JUDGE:
        structured = {"verdict": Verdict(criteria={"correctness": 8}, justification="j" * 240)}
    elif request.turn.phase == Phase.SELECT:
        structured = {"choice": Choice(winner_id=request.input.candidates[0].agent_id, rationale="r" * 240)}
    content = request.turn.key * chars if fill == ASCII else request.turn.key + fill * chars
    return TurnCompleted(
        deliberation=request.deliberation, turn=request.turn, agent=request.agent,
        content=content[:chars], model="m", temperature=0.3, seed=1, prompt_tokens=1,
        completion_tokens=1, latency_ms=1, **structured,
    )


def worst_case(agents: int = 3, rounds: int = 2, brief_bytes: int = MAX_BRIEF_BYTES,
               chars: int = TEXT_MAX_CHARS, fill: str = ASCII) -> Iterator[tuple[str, int, int, int]]:
    """Each step's (event, record bytes with its outbox only, with the previous outbox too, state alone)."""
    architect = AgentProfile(agent_id="architect-1", role=Role.ARCHITECT, persona="p", temperature=0.0, seed=1)
    pending = [DeliberationStarted(
        deliberation=DeliberationRef(deliberation_id="d", story_id="s", plan_id="p", task_id="t", role=Role.DEV),
        brief=brief_of(brief_bytes), council=new_council(Role.DEV, agents, critique_rounds=rounds),
        architect=architect, started_at=T0,
    )]
    state, previous = None, []
    while pending:
        event = pending.pop(0)
        state, out = step(state, event, T0)
        own = [pack(o, state.brief) for o in out]
        alone = len(msgspec.json.encode(Record(deliberation=state)))
        promptly = len(msgspec.json.encode(Record(deliberation=state, outboxes={"m:2": own} if own else {})))
        lingering = len(msgspec.json.encode(Record(deliberation=state, outboxes={"m:1": previous, "m:2": own})))
        yield type(event).__name__, promptly, lingering, alone
        previous = own or previous
        pending += [answer_to(r, chars, fill) for r in (o.payload for o in out) if isinstance(r, TurnRequested)]


def largest(agents: int = 3, rounds: int = 2, brief_bytes: int = MAX_BRIEF_BYTES, chars: int = TEXT_MAX_CHARS,
            fill: str = ASCII) -> Sizes:
    """The largest records of the whole deliberation, as if every one could be stored (the collector's limit
    is not applied: this is what it would have to store)."""
    rows = list(worst_case(agents, rounds, brief_bytes, chars, fill))
    return Sizes(steps=len(rows), promptly=max(r[1] for r in rows), lingering=max(r[2] for r in rows),
                 state_only=max(r[3] for r in rows))


def first_over_limit(agents: int = 3, rounds: int = 2, brief_bytes: int = MAX_BRIEF_BYTES,
                     chars: int = TEXT_MAX_CHARS, fill: str = ASCII) -> tuple[int, str] | None:
    """The step (1-based) and event at which the record, outbox removed once published, would first pass
    RECORD_MAX_BYTES: where the collector ends the deliberation. None when every record fits."""
    for number, (event, promptly, _, _) in enumerate(worst_case(agents, rounds, brief_bytes, chars, fill), start=1):
        if promptly > RECORD_MAX_BYTES:
            return number, event
    return None


if __name__ == "__main__":
    widest = f"the widest character, {WIDEST!r} ({len(msgspec.json.encode(WIDEST)) - 2} B as JSON)"
    for name, fill in (("ASCII", ASCII), (widest, WIDEST)):
        for rounds in (1, 2, 3):
            sizes = largest(rounds=rounds, fill=fill)
            over = first_over_limit(rounds=rounds, fill=fill)
            print(f"3 agents, {rounds} critique round(s), brief {MAX_BRIEF_BYTES:,} B, answers {TEXT_MAX_CHARS:,} "
                  f"chars in {name}: {sizes.steps} steps; largest record {sizes.promptly:,} B (outboxes removed "
                  f"once published), {sizes.lingering:,} B (one outbox lingering), state alone "
                  f"{sizes.state_only:,} B; limit {RECORD_MAX_BYTES:,} B; "
                  + (f"first over it at step {over[0]} ({over[1]}): the deliberation fails there" if over
                     else "every record fits"))
