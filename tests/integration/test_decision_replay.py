"""`fleet deliberation replay --dry-run` against a real nats-server holding a recorded deliberation."""

from __future__ import annotations

import json

import msgspec
import pytest

from contracts import catalog
from contracts.envelope import MSG_ID
from contracts.events import DeliberationCompleted, DeliberationStarted, Event
from services.collector.replay import INPUTS, RESULTS
from services.mesh.messages import utc_now
from tests.support import fleet
from tests.unit.test_collector import recorded_deliberation, verdict, with_judge_verdict

pytestmark = pytest.mark.integration


def renamed(event: Event, deliberation_id: str) -> Event:
    """The event as if it belonged to `deliberation_id`."""
    if (ref := getattr(event, "deliberation", None)) is not None:
        ref = msgspec.structs.replace(ref, deliberation_id=deliberation_id)
        return msgspec.structs.replace(event, deliberation=ref)
    return msgspec.structs.replace(event, deliberation_id=deliberation_id)


async def record(js, unique: str, tamper=lambda event: event, architect_answers: bool = True,
                 tamper_inputs=lambda inputs: inputs) -> str:
    """Store a whole deliberation's inputs, then its results (those `tamper` keeps), as the services would have."""
    deliberation_id = f"d-{unique}"
    inputs, published = recorded_deliberation(architect_answers)
    results = [tamper(e) for e in published if isinstance(e, RESULTS)]
    events = [e for _, e in tamper_inputs(inputs) if isinstance(e, INPUTS)] + [e for e in results if e is not None]
    for index, event in enumerate(events):
        event = renamed(event, deliberation_id)
        if isinstance(event, DeliberationStarted):
            # Started when stored, as dispatch stamps it: the replay runs the inputs at their stored times,
            # and a start long before them would be past its overall deadline.
            event = msgspec.structs.replace(event, started_at=utc_now())
        await js.publish(catalog.spec_for_payload(event).subject, catalog.encode(event),
                         headers={MSG_ID: f"{unique}-{index}"})
    return deliberation_id


async def test_a_recorded_deliberation_replays_to_the_same_winner(js, nats_url, tmp_path, unique):
    deliberation_id = await record(js, unique)

    code, out = await fleet(nats_url, tmp_path, "deliberation", "replay", deliberation_id, "--dry-run")
    json_code, json_out = await fleet(nats_url, tmp_path, "deliberation", "replay", deliberation_id, "--dry-run",
                                      "--json")

    assert code == 0 and "same winner" in out and "no LLM call" in out, out
    replayed = json.loads(json_out)
    assert json_code == 0 and replayed["verdict"] == "same winner" and replayed["differences"] == []
    assert replayed["recorded"]["decided_by"] == replayed["recomputed"]["decided_by"] == "architect-1"


async def test_a_tampered_recorded_winner_replays_to_a_different_winner_and_exits_2(js, nats_url, tmp_path, unique):
    def tamper(event):
        if not isinstance(event, DeliberationCompleted):
            return event
        return msgspec.structs.replace(event, winner=msgspec.structs.replace(event.winner, agent_id="dev-9"))

    deliberation_id = await record(js, unique, tamper)

    code, out = await fleet(nats_url, tmp_path, "deliberation", "replay", deliberation_id, "--dry-run")

    assert code == 2, out
    assert "DIFFERENT winner" in out and "winner: recorded dev-9 (completed)" in out


async def test_an_unknown_deliberation_or_a_replay_without_dry_run_is_an_error(nats_url, tmp_path, unique):
    code, out = await fleet(nats_url, tmp_path, "deliberation", "replay", f"nope-{unique}", "--dry-run")
    assert code == 1 and f"no recorded event of deliberation 'nope-{unique}'" in out

    code, out = await fleet(nats_url, tmp_path, "deliberation", "replay", f"nope-{unique}")
    assert code == 1 and "only --dry-run exists" in out


async def test_a_deliberation_with_no_recorded_result_yet_has_nothing_to_compare(js, nats_url, tmp_path, unique):
    deliberation_id = await record(js, unique, tamper=lambda event: None)

    code, out = await fleet(nats_url, tmp_path, "deliberation", "replay", deliberation_id, "--dry-run")

    assert code == 1 and "has no recorded result yet" in out, out


async def test_a_tampered_recorded_judge_score_replays_to_a_different_winner_and_exits_2(js, nats_url, tmp_path,
                                                                                        unique):
    _, published = recorded_deliberation(architect_answers=False)
    [completed] = [e for e in published if isinstance(e, DeliberationCompleted)]
    winner = completed.winner.agent_id

    deliberation_id = await record(js, unique, architect_answers=False,
                                   tamper_inputs=lambda inputs: with_judge_verdict(inputs, winner, verdict(0, 0)))
    code, out = await fleet(nats_url, tmp_path, "deliberation", "replay", deliberation_id, "--dry-run", "--json")

    assert code == 2, out
    replayed = json.loads(out)
    assert replayed["verdict"] == "DIFFERENT winner" and replayed["recorded"]["winner"] == winner
    assert replayed["recomputed"]["scores"][winner] == 0.0 != replayed["recorded"]["scores"][winner]
    assert replayed["recomputed"]["winner"] != winner
