"""Choosing dead letters and what redriving one re-publishes."""

import datetime as dt

import msgspec
import pytest

from contracts.envelope import (
    CAUSATION_ID,
    CORRELATION_ID,
    MSG_ID,
    SCHEDULE,
    TRACEPARENT,
    deterministic_id,
    traceparent_for,
)
from contracts.events import MessageRejected
from services.cli.dead_letters import (
    REDRIVE_OF,
    Letter,
    Redrive,
    listed,
    matching,
    plan_redrive,
    redriven_event,
    republish_of,
    select,
    shown_body,
    terminal_safe,
    truncated,
)
from services.mesh.deadletters import DeadLetter, dead_letter_event
from services.mesh.publishing import envelope_for

T0 = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)


def letter(sequence: int, service: str = "planning", stream: str = "PLANNING") -> Letter:
    rejected = MessageRejected(
        service=service, consumer=f"{service}-x", reason="no council for role DEVOPS",
        original_subject="planning.plan.approved.v1",
        original_headers={MSG_ID: "orig-1", CORRELATION_ID: "chain-1", TRACEPARENT: "00-" + "a" * 32 + "-" + "b" * 16
                          + "-01", SCHEDULE: "@at x"},
        original_body=b'{"story_id": "s"}', stream=stream, stream_sequence=40 + sequence, deliveries=1,
    )
    return Letter(sequence, f"letter-{sequence}", T0, {}, rejected)


def test_letters_are_chosen_by_sequence_or_id_and_an_unknown_one_is_named():
    letters = [letter(1), letter(2)]

    assert [x.sequence for x in select(letters, ["2", "letter-1"])] == [2, 1]
    with pytest.raises(ValueError, match="no dead letter '9'"):
        select(letters, ["9"])


def test_letters_are_filtered_by_service_and_stream():
    letters = [letter(1), letter(2, service="agents", stream="AGENT")]

    assert [x.sequence for x in matching(letters, "agents", None)] == [2]
    assert [x.sequence for x in matching(letters, None, "planning")] == [1]
    assert len(matching(letters, None, None)) == 2


def test_a_redrive_republishes_the_original_under_an_id_derived_from_the_letter():
    republished = republish_of(letter(1), b'{"story_id": "s"}')

    assert republished.subject == "planning.plan.approved.v1"
    assert republished.headers[MSG_ID] == deterministic_id("redrive", "letter-1") != "orig-1"
    assert republished.headers[REDRIVE_OF] == "letter-1"
    assert republished.headers[CORRELATION_ID] == "chain-1" and TRACEPARENT in republished.headers
    assert SCHEDULE not in republished.headers
    assert republish_of(letter(1), b"").headers[MSG_ID] == republished.headers[MSG_ID]


def test_a_redrive_of_an_original_that_carried_only_its_id_stays_in_the_originals_chain():
    bare = letter(1)
    bare = Letter(1, "letter-1", T0, {}, msgspec.structs.replace(bare.rejected, original_headers={MSG_ID: "orig-1"}))

    headers = republish_of(bare, b"").headers

    assert (headers[CORRELATION_ID], headers[CAUSATION_ID]) == ("orig-1", "orig-1")
    assert headers[TRACEPARENT] == traceparent_for("orig-1")
    assert headers[MSG_ID] == deterministic_id("redrive", "letter-1")


def test_the_dead_letter_of_a_message_that_carried_only_its_id_is_in_the_trace_that_id_starts():
    rejected = DeadLetter(service="planning", consumer="planning-plan-approvals", stream="PLANNING",
                          stream_sequence=4, deliveries=1, subject="planning.plan.approved.v1",
                          headers={MSG_ID: "orig-1"}, body=b"{}")

    outgoing, cause = dead_letter_event(rejected, "no council for role DEVOPS")
    envelope = envelope_for(outgoing, producer="planning", cause=cause, now=T0)

    assert (envelope.correlation_id, envelope.causation_id) == ("orig-1", "orig-1")
    assert envelope.traceparent.split("-")[1] == traceparent_for("orig-1").split("-")[1]


def test_the_record_of_a_redrive_has_one_id_per_letter():
    first = redriven_event(letter(1), republish_of(letter(1), b""), 77, "alice")
    again = redriven_event(letter(1), republish_of(letter(1), b""), 78, "bob")

    assert first.event_id == again.event_id == deterministic_id("redriven", "letter-1")
    assert first.payload.aggregate_id() == "letter-1" and first.payload.republished_sequence == 77


def test_a_json_body_is_indented_and_any_other_body_is_shown_as_its_bytes_repr():
    assert shown_body('{"a":1,"b":"é"}'.encode()) == '{\n  "a": 1,\n  "b": "é"\n}'
    assert shown_body(b"plain") == "b'plain'"
    assert shown_body(b"\xff\xfe\x1b[2J") == "b'\\xff\\xfe\\x1b[2J'"


def test_characters_that_could_drive_the_terminal_are_escaped_in_what_is_shown():
    assert terminal_safe("line\nnext") == "line\nnext"
    assert terminal_safe("\x1b[31mred\u202e") == "\\u001b[31mred\\u202e"
    assert shown_body('{"a": "\u009b2J"}'.encode()) == '{\n  "a": "\\u009b2J"\n}'


def redrives_of(*letters: Letter) -> dict:
    return {x.event_id: [Redrive(T0, redriven_event(x, republish_of(x, b""), 1, "alice").payload)] for x in letters}


def test_a_letter_already_redriven_is_skipped_with_when_unless_forced():
    one, two = letter(1), letter(2)

    plan = plan_redrive([one, two, one], redrives_of(one), force=False)
    forced = plan_redrive([one, two, one], redrives_of(one), force=True)

    assert [x.sequence for x in plan.todo] == [2] and plan.skipped == [(one, T0)]
    assert [x.sequence for x in forced.todo] == [1, 2] and forced.skipped == []


def test_a_listed_letter_names_where_the_original_sat_and_whether_it_was_redriven():
    row = listed(letter(1), redrives_of(letter(1)))

    assert row == {
        "seq": 1, "id": "letter-1", "at": T0.isoformat(), "service": "planning", "consumer": "planning-x",
        "subject": "planning.plan.approved.v1", "stream": "PLANNING", "stream_seq": 41, "deliveries": 1,
        "reason": "no council for role DEVOPS", "redriven": True, "redriven_at": [T0.isoformat()],
    }
    assert listed(letter(2), {})["redriven"] is False


def test_a_long_reason_is_cut_to_one_line_of_the_width():
    assert truncated("short") == "short"
    assert truncated("a\nb  c") == "a b c"
    cut = truncated("x" * 200, 80)
    assert len(cut) == 80 and cut.endswith("…")
