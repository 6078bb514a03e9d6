"""`fleet dlq` against a real nats-server: list, show, and a redrive that happens once per letter."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from contracts import catalog
from contracts.envelope import AGGREGATE_ID, MSG_ID, PRODUCER, deterministic_id, to_headers
from services.cli.dead_letters import REDRIVE_OF
from services.mesh.deadletters import MAX_INLINE_BODY, DeadLetter, dead_letter_event
from services.mesh.publishing import envelope_for
from tests.support import fleet, read_stream

pytestmark = pytest.mark.integration


APPROVAL = b'{"story_id": "s", "plan_id": "p", "approved_by": "x", "roles": ["DEVOPS"]}'


async def dead_letter(js, unique: str, body: bytes = APPROVAL) -> tuple[int, str]:
    """An approval stored in PLANNING and rejected by planning, as the consumer would dead-letter it."""
    headers = {MSG_ID: f"orig-{unique}", "Fleet-Correlation-Id": f"chain-{unique}"}
    stored = await js.publish(catalog.PLAN_APPROVED.subject, body, headers=headers)
    outgoing, cause = dead_letter_event(DeadLetter(
        service="planning", consumer="planning-plan-approvals", stream="PLANNING", stream_sequence=stored.seq,
        deliveries=1, subject=catalog.PLAN_APPROVED.subject, headers=headers, body=body,
    ), f"no council for role DEVOPS ({unique})")
    envelope = envelope_for(outgoing, producer="planning", cause=cause, now=dt.datetime.now(dt.UTC))
    letter = await js.publish(catalog.MESSAGE_REJECTED.subject, catalog.encode(outgoing.payload),
                              headers=to_headers(envelope))
    return letter.seq, outgoing.event_id


async def test_a_letter_is_listed_and_shown_with_its_reason_and_original(js, nats_url, tmp_path, unique):
    sequence, letter_id = await dead_letter(js, unique)

    code, out = await fleet(nats_url, tmp_path, "dlq", "list", "--service", "planning", "--json", "--limit", "1000")
    assert code == 0, out
    [listed] = [x for x in json.loads(out) if x["seq"] == sequence]
    assert (listed["id"], listed["reason"], listed["redriven"]) == (letter_id, f"no council for role DEVOPS ({unique})",
                                                                   False)
    code, out = await fleet(nats_url, tmp_path, "dlq", "show", str(sequence))
    assert code == 0, out
    assert f"no council for role DEVOPS ({unique})" in out and f"orig-{unique}" in out and '"DEVOPS"' in out
    assert "not redriven" in out


async def test_a_letter_redriven_twice_is_republished_and_recorded_once(js, nats_url, tmp_path, unique):
    sequence, letter_id = await dead_letter(js, unique)

    first = await fleet(nats_url, tmp_path, "dlq", "redrive", str(sequence), "--yes", "--by", "alice")
    second = await fleet(nats_url, tmp_path, "dlq", "redrive", letter_id, "--yes")

    assert first[0] == 0 and "redriven" in first[1], first[1]
    assert second[0] == 0 and "already redriven" in second[1], second[1]
    republished = [m for m in await read_stream(js, catalog.PLAN_APPROVED.subject)
                   if (m.headers or {}).get(REDRIVE_OF) == letter_id]
    assert len(republished) == 1
    assert republished[0].headers["Fleet-Correlation-Id"] == f"chain-{unique}"
    records = [m for m in await read_stream(js, catalog.MESSAGE_REDRIVEN.subject)
               if json.loads(m.data)["letter_id"] == letter_id]
    assert len(records) == 1 and json.loads(records[0].data)["redriven_by"] == "alice"
    code, out = await fleet(nats_url, tmp_path, "dlq", "show", str(sequence))
    assert "redriven" in out and "by alice" in out


async def test_an_unknown_letter_or_no_choice_is_a_clear_error(nats_url, tmp_path, unique):
    code, out = await fleet(nats_url, tmp_path, "dlq", "show", f"nope-{unique}")
    assert code == 1 and f"no dead letter 'nope-{unique}'; `fleet dlq list` shows them" in out
    code, out = await fleet(nats_url, tmp_path, "dlq", "redrive")
    assert code == 1 and "--all" in out


async def test_a_forced_redrive_inside_the_duplicate_window_is_still_one_message(js, nats_url, tmp_path, unique):
    sequence, letter_id = await dead_letter(js, unique)

    first = await fleet(nats_url, tmp_path, "dlq", "redrive", str(sequence), "--yes")
    forced = await fleet(nats_url, tmp_path, "dlq", "redrive", str(sequence), "--yes", "--force")

    assert first[0] == 0 and forced[0] == 0, forced[1]
    assert "a duplicate: JetStream kept the earlier one" in forced[1]
    republished = [m for m in await read_stream(js, catalog.PLAN_APPROVED.subject)
                   if (m.headers or {}).get(REDRIVE_OF) == letter_id]
    assert len(republished) == 1 and republished[0].headers[MSG_ID] == deterministic_id("redrive", letter_id)
    records = [m for m in await read_stream(js, catalog.MESSAGE_REDRIVEN.subject)
               if json.loads(m.data)["letter_id"] == letter_id]
    assert len(records) == 1 and records[0].headers[AGGREGATE_ID] == letter_id
    assert records[0].headers[PRODUCER] == catalog.OPERATOR


async def test_redriving_every_letter_of_a_service_skips_the_ones_already_redriven(js, nats_url, tmp_path, unique):
    done, done_id = await dead_letter(js, unique)
    fresh, fresh_id = await dead_letter(js, unique + "-2")
    await fleet(nats_url, tmp_path, "dlq", "redrive", str(done), "--yes")

    code, out = await fleet(nats_url, tmp_path, "dlq", "redrive", "--all", "--service", "planning", "--yes")

    assert code == 0, out
    assert f"letter {done}: already redriven at" in out and f"redriven letter {fresh} to" in out
    republished = [(m.headers or {}).get(REDRIVE_OF) for m in await read_stream(js, catalog.PLAN_APPROVED.subject)]
    assert republished.count(done_id) == 1 and republished.count(fresh_id) == 1


async def test_a_body_too_large_for_the_letter_is_shown_and_redriven_from_the_original_stream(
        js, nats_url, tmp_path, unique):
    large = b"x" * (MAX_INLINE_BODY + 1)
    sequence, letter_id = await dead_letter(js, unique, body=large)

    code, shown = await fleet(nats_url, tmp_path, "dlq", "show", str(sequence))
    redriven = await fleet(nats_url, tmp_path, "dlq", "redrive", str(sequence), "--yes")

    assert code == 0 and "original_body_omitted" in shown and "b'xxxx" in shown, shown[:2000]
    assert redriven[0] == 0, redriven[1]
    [republished] = [m for m in await read_stream(js, catalog.PLAN_APPROVED.subject)
                     if (m.headers or {}).get(REDRIVE_OF) == letter_id]
    assert republished.data == large


async def test_a_letter_shows_its_redrive_with_who_and_where_the_copy_was_stored(js, nats_url, tmp_path, unique):
    sequence, letter_id = await dead_letter(js, unique, body=b"not json \x1b[2J")

    await fleet(nats_url, tmp_path, "dlq", "redrive", str(sequence), "--yes", "--by", "carol")
    code, shown = await fleet(nats_url, tmp_path, "dlq", "show", letter_id)

    [republished] = [m for m in await read_stream(js, catalog.PLAN_APPROVED.subject)
                     if (m.headers or {}).get(REDRIVE_OF) == letter_id]
    assert code == 0 and "b'not json \\x1b[2J'" in shown and "\x1b" not in shown, shown
    assert f"by carol: {catalog.PLAN_APPROVED.subject} seq {republished.metadata.sequence.stream}" in shown
    assert "not redriven" not in shown
