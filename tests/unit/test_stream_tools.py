"""The pure side of the stream tools: what a stored event says, filters, times, and causal trees."""

import datetime as dt
import itertools

import pytest

from contracts.envelope import AGGREGATE_ID, CAUSATION_ID, CORRELATION_ID, MSG_ID, OCCURRED_AT, TRACEPARENT
from services.cli.stream_tools import (
    StoredEvent,
    Until,
    body_of,
    causal_tree,
    chain_of,
    parse_moment,
    trace_rows,
)
from streams.definitions import covers_stream, streams_for
from streams.subjects import subject_within, subjects_overlap

T0 = dt.datetime(2026, 11, 23, 4, 0, tzinfo=dt.UTC)
SEQUENCES = itertools.count(1)


def event(event_id, cause=None, corr="c-1", seconds=0.0, aggregate="d-1", seq=None, subject="orchestration.x.y.v1"):
    at = T0 + dt.timedelta(seconds=seconds)
    headers = {MSG_ID: event_id, CAUSATION_ID: cause or event_id, CORRELATION_ID: corr, AGGREGATE_ID: aggregate,
               OCCURRED_AT: at.isoformat(), TRACEPARENT: f"00-{'a' * 32}-{'b' * 16}-01"}
    return StoredEvent("ORCHESTRATION", seq or next(SEQUENCES), subject, at, headers, b"{}")


@pytest.mark.parametrize(("left", "right", "overlap"), [
    (">", "planning.>", True),
    ("orchestration.>", "orchestration.>", True),
    ("orchestration.*.started.v1", "orchestration.>", True),
    ("agent.>", "orchestration.>", False),
    ("planning.plan.approved", "planning.>", True),
    ("planning", "planning.>", False),
    ("a.*", "a.b.c", False),
])
def test_subject_filters_overlap_as_nats_matches_them(left, right, overlap):
    assert subjects_overlap(left, right) is overlap
    assert subjects_overlap(right, left) is overlap


def test_a_filter_reaches_only_the_streams_that_can_hold_its_subjects():
    assert [s.name for s in streams_for("agent.turn.*.v1")] == ["AGENT"]
    assert len(streams_for(">")) == 5


@pytest.mark.parametrize(("inner", "outer", "within"), [
    ("planning.>", ">", True),
    ("planning.plan.approved.v1", "planning.>", True),
    ("planning.>", "planning.>", True),
    ("planning.>", "planning.*", False),
    ("planning.plan", "planning.*", True),
    ("planning.*", "planning.plan", False),
    ("planning", "planning.>", False),
    ("planning.plan.approved", "planning.plan", False),
])
def test_a_subject_pattern_is_within_another_when_the_other_matches_all_it_matches(inner, outer, within):
    assert subject_within(inner, outer) is within


def test_only_a_filter_that_passes_everything_a_stream_holds_covers_it():
    [planning] = streams_for("planning.>")

    assert covers_stream(">", planning) and covers_stream("planning.>", planning)
    assert not covers_stream("planning.plan.approved.v1", planning)


def test_moments_are_iso_times_or_ages():
    assert parse_moment("15m", T0) == T0 - dt.timedelta(minutes=15)
    assert parse_moment("2026-11-23T01:00:00", T0) == dt.datetime(2026, 11, 23, 1, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match="age like"):
        parse_moment("yesterday", T0)


def test_until_stops_after_a_sequence_or_a_time():
    assert Until.parse("5", T0).passed(event("e", seq=6))
    assert not Until.parse("5", T0).passed(event("e", seq=5))
    assert Until.parse("2026-11-23T04:00:01+00:00", T0).passed(event("e", seconds=2))
    assert not Until.parse(None, T0).passed(event("e", seq=10**9))


def test_a_chain_is_found_by_aggregate_id_and_widened_to_its_correlation():
    approval = event("a", corr="c-1", aggregate="plan-1")
    request = event("r", cause="a", corr="c-1", aggregate="d-1", seconds=1)
    other = event("o", corr="c-2", aggregate="d-2", seconds=2)

    assert [e.event_id for e in chain_of([other, request, approval], "d-1")] == ["a", "r"]
    assert chain_of([other], "nothing") == []


def test_each_event_sits_under_its_cause_in_time_order():
    chain = [event("a"), event("r1", "a", seconds=1), event("r2", "a", seconds=2), event("s", "r1", seconds=3),
             event("orphan", "gone", seconds=4)]

    tree = [(depth, e.event_id) for depth, e in causal_tree(chain)]

    assert tree == [(0, "a"), (1, "r1"), (2, "s"), (1, "r2"), (0, "orphan")]


def test_a_cycle_of_causes_still_shows_every_event_once():
    chain = [event("x", "y", seq=1), event("y", "x", seq=2, seconds=1)]

    assert sorted(e.event_id for _, e in causal_tree(chain)) == ["x", "y"]


def test_trace_rows_give_offsets_from_the_first_event_and_each_hop():
    rows = trace_rows([event("a"), event("r", "a", seconds=0.25), event("s", "r", seconds=1.0)])

    assert [(r["event_id"], r["offset_ms"], r["hop_ms"]) for r in rows] == [("a", 0, None), ("r", 250, 250),
                                                                          ("s", 1000, 750)]


def test_a_body_that_breaks_its_contract_is_still_shown():
    broken = StoredEvent("PLANNING", 1, "planning.plan.approved.v1", T0, {}, b'{"story_id": 7}')
    binary = StoredEvent("PLANNING", 2, "planning.plan.approved.v1", T0, {}, b"\xff\xfe")

    assert body_of(broken) == {"story_id": 7}
    assert body_of(binary) == "\ufffd\ufffd"


def test_a_body_is_shown_as_the_services_read_it_legacy_ones_upcast():
    legacy = StoredEvent("PLANNING", 3, "planning.plan.approved", T0, {},
                         b'{"story_id": "s", "plan_id": "p", "approved_by": "alice", "roles": ["DEV"]}')

    body = body_of(legacy)

    assert body["plan_id"] == "p" and [task["task_id"] for task in body["tasks"]] == ["p"]


def test_a_subject_no_contract_names_is_shown_as_stored():
    stray = StoredEvent("PLANNING", 4, "planning.something.else.v9", T0, {MSG_ID: "x"}, b'{"a": [1]}')

    assert body_of(stray) == {"a": [1]}
