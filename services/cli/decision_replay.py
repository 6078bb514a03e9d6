"""`fleet deliberation replay ID --dry-run`: a recorded decision recomputed from the log and compared.

The recomputing is the collector's own (services/collector/replay.py); this module reads the
deliberation's events from its streams and prints what was recorded beside what was recomputed.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict

import msgspec
from nats.js import JetStreamContext
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from contracts import catalog
from contracts.events import Event
from services.cli.stream_tools import read_events
from services.collector.replay import INPUTS, RESULTS, UNFINISHED, Decision, Replay, replay
from streams.definitions import stream_for_subject

SAME, DIFFERENT = "same winner", "DIFFERENT winner"
SOURCE = ("no LLM call: the turns' answers, the judges' verdicts and the architect's choice are the ones "
          "recorded in their turns")

# The subjects replay reads, and the streams that store them.
SUBJECTS = frozenset(spec.subject for spec in catalog.EVENTS if spec.payload in (*INPUTS, *RESULTS))
STREAMS = tuple(sorted({stream_for_subject(subject).name for subject in SUBJECTS}))


def verdict_of(result: Replay) -> str:
    return SAME if result.same_winner else DIFFERENT


def report(deliberation_id: str, events: int, result: Replay) -> dict[str, object]:
    """The comparison as `--json` gives it."""
    return {
        "deliberation_id": deliberation_id, "events": events, "verdict": verdict_of(result), "source": SOURCE,
        "recorded": asdict(result.recorded), "recomputed": asdict(result.recomputed),
        "differences": result.differences,
    }


def shown_score(decision: Decision, agent: str) -> str:
    """An agent's score ("unscored" when the judge gave no verdict), marked when a check disqualified it."""
    score = decision.scores.get(agent)
    shown = "unscored" if score is None else str(score)
    return shown if decision.qualified.get(agent, True) else f"{shown} (disqualified)"


def comparison_rows(result: Replay) -> list[tuple[str, str, str]]:
    """(what, recorded, recomputed): each score, the ranking, the candidates, outcome, who decided, the winner."""
    before, after = result.recorded, result.recomputed
    rows = [(f"score of {agent}", shown_score(before, agent), shown_score(after, agent))
            for agent in sorted(set(before.scores) | set(after.scores))]
    return rows + [
        ("ranking", ", ".join(before.ranking), ", ".join(after.ranking)),
        ("architect chose among", ", ".join(before.candidates), ", ".join(after.candidates)),
        ("outcome", before.outcome, after.outcome),
        ("decided by", before.decided_by, after.decided_by),
        ("winner", str(before.winner), str(after.winner)),
    ]


async def recorded_events(js: JetStreamContext, deliberation_id: str) -> list[tuple[dt.datetime, Event]]:
    """The deliberation's inputs and results, with when each was stored."""
    found = []
    for subject in sorted(SUBJECTS):
        stream = stream_for_subject(subject).name
        async for event in read_events(js, stream, subject=subject):
            try:
                payload = catalog.spec_for_subject(subject).decoder.decode(event.data)
            except msgspec.MsgspecError:
                continue  # it broke its contract, so the collector never folded it either
            if payload.aggregate_id() == deliberation_id:
                found.append(((event.stored_at, event.stream, event.sequence), payload))
    # Stored time is the one order across streams; within a stream, ties keep the stream's order.
    return [(stored_at, payload) for (stored_at, _, _), payload in sorted(found, key=lambda item: item[0])]


async def print_decision_replay(
    js: JetStreamContext, console: Console, deliberation_id: str, as_json: bool, outcome: list[bool],
) -> None:
    """Recompute and print; `outcome` receives whether the winner is the same."""
    events = await recorded_events(js, deliberation_id)
    if not events:
        raise ValueError(f"no recorded event of deliberation {deliberation_id!r}")
    try:
        result = replay(events, [payload for _, payload in events])
    except LookupError as exc:
        raise ValueError(str(exc)) from None
    if result.recorded.outcome == UNFINISHED:
        raise ValueError(f"deliberation {deliberation_id!r} has no recorded result yet: there is no decision to "
                         "compare (`fleet deliberation show` says where it is)")
    outcome.append(result.same_winner)
    if as_json:
        print(json.dumps(report(deliberation_id, len(events), result), indent=2))
        return
    console.print(f"replayed {len(events)} recorded events of {deliberation_id} through the collector's logic; "
                  f"{SOURCE}")
    table = Table("", "recorded", "recomputed")
    for row in comparison_rows(result):
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    console.print(f"[{'green' if result.same_winner else 'red'}]{verdict_of(result)}[/]")
    for difference in result.differences:
        console.print(f"  - {escape(difference)}")
