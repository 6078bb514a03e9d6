"""The capacity model gives every stream and bucket its limits; an event past the records' life is refused."""

import datetime as dt

import pytest

from contracts.envelope import MSG_ID, from_headers
from contracts.events import Role
from services.mesh.consuming import too_old
from services.mesh.messages import Incoming
from streams.apply import bucket_config, bucket_ttl, record_ttl_from, records_retention_s, stream_config
from streams.capacity import (
    DAY,
    DESIGN_LOAD,
    FLOOR_BYTES,
    HEADROOM,
    MEASURED_ANSWER_BYTES,
    RECORD_RETENTION_S,
    RETENTION_S,
    Footprint,
    Load,
    MiB,
    byte_limit,
    load_from,
    stored_bytes,
)
from streams.definitions import AGENT, BUCKETS, COLLECTOR_DELIBERATIONS, DISPATCH_CLAIMS, STREAMS

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)


def test_a_footprint_swaps_the_measured_answer_length_for_the_one_it_is_sized_for():
    footprint = Footprint(messages=26, bytes=40_000, answer_copies=13)
    assert footprint.bytes_at(MEASURED_ANSWER_BYTES) == 40_000
    assert footprint.bytes_at(8_192) - footprint.bytes_at(4_096) == 13 * 4_096


def test_stored_bytes_are_the_footprint_times_the_load_times_the_days_kept():
    footprint = Footprint(messages=10, bytes=1_000)
    load = Load(deliberations_per_day=100)
    assert stored_bytes(footprint, 30 * DAY, load) == 1_000 * 100 * 30
    # Kept for ever: the model sizes one year.
    assert stored_bytes(footprint, 0.0, load) == 1_000 * 100 * 365


def test_a_limit_has_headroom_is_whole_mebibytes_and_never_below_the_floor():
    assert byte_limit("NO-SUCH-STREAM", 30 * DAY) == FLOOR_BYTES
    limit = byte_limit("AGENT", RETENTION_S["AGENT"])
    assert limit % MiB == 0 and limit >= FLOOR_BYTES
    assert byte_limit("AGENT", RETENTION_S["AGENT"], Load(deliberations_per_day=1e6)) >= limit


def test_every_stream_and_bucket_is_bounded_in_bytes_at_the_load_and_every_record_in_time():
    busy = Load(deliberations_per_day=1_000)
    for spec in STREAMS:
        config, busier = stream_config(spec), stream_config(spec, load=busy)
        assert config.max_bytes == byte_limit(spec.name, RETENTION_S[spec.name]) >= FLOOR_BYTES, spec.name
        assert busier.max_bytes >= config.max_bytes and config.max_age == RETENTION_S[spec.name], spec.name
    assert all(stream_config(spec).max_age > 0 for spec in STREAMS if spec.name != "CONFIG")
    assert stream_config(AGENT, load=busy).max_bytes > 5 * stream_config(AGENT).max_bytes
    for spec in BUCKETS:
        config = bucket_config(spec, load=busy)
        assert config.max_bytes == byte_limit(spec.stream_name, spec.ttl_s, busy) and config.ttl == spec.ttl_s > 0
    # A claim must outlive every request that could repeat it; the bulky records go after a week.
    assert DISPATCH_CLAIMS.ttl_s == RETENTION_S["ORCHESTRATION"]
    assert COLLECTOR_DELIBERATIONS.ttl_s == RECORD_RETENTION_S == 7 * DAY
    assert HEADROOM >= 1.5


def test_the_load_is_read_from_the_environment():
    assert load_from({}) == DESIGN_LOAD
    assert load_from({"FLEET_DELIBERATIONS_PER_DAY": "1000"}).deliberations_per_day == 1000


def test_a_lower_floor_asked_for_in_the_environment_is_where_an_idle_streams_limit_stops():
    small = load_from({"FLEET_STREAM_FLOOR_MIB": "8"})

    assert small.floor_bytes == 8 * MiB
    assert byte_limit("NO-SUCH-STREAM", 30 * DAY, small) == 8 * MiB
    # A busy stream's limit is the model's, floor or not.
    assert byte_limit("AGENT", 30 * DAY, small) == byte_limit("AGENT", 30 * DAY) > 8 * MiB


@pytest.mark.parametrize(("variable", "read"), [("FLEET_DELIBERATIONS_PER_DAY", load_from),
                                                ("FLEET_STREAM_FLOOR_MIB", load_from),
                                                ("FLEET_RECORD_TTL_S", record_ttl_from)])
@pytest.mark.parametrize("bad", ["0", "-5", "soon"])
def test_a_number_that_is_not_above_zero_is_refused_naming_its_variable(variable, read, bad):
    with pytest.raises(ValueError, match=f"{variable}='{bad}' must be a number of .* above 0"):
        read({variable: bad})


def test_a_shorter_ttl_asked_for_in_the_environment_shortens_every_bucket_never_lengthens():
    assert record_ttl_from({}) is None
    assert record_ttl_from({"FLEET_RECORD_TTL_S": "2.5"}) == 2.5
    assert bucket_ttl(COLLECTOR_DELIBERATIONS, 2.5) == 2.5
    assert bucket_ttl(COLLECTOR_DELIBERATIONS, 30 * DAY) == RECORD_RETENTION_S
    assert records_retention_s({}) == RECORD_RETENTION_S
    assert records_retention_s({"FLEET_RECORD_TTL_S": "2.5"}) == 2.5


def incoming(occurred_at: dt.datetime | None) -> Incoming:
    headers = {MSG_ID: "e-1"}
    if occurred_at is not None:
        headers["Fleet-Occurred-At"] = occurred_at.isoformat()
    envelope = from_headers(headers, event_type="t", schema_version=1, aggregate_type="deliberation",
                            aggregate_id="d-1", received_at=NOW)
    return Incoming(payload=Role.DEV, envelope=envelope, subject="s", stream_sequence=1, deliveries=1)


def test_an_event_within_the_records_life_is_handled():
    assert too_old(incoming(NOW - dt.timedelta(days=6)), NOW - dt.timedelta(days=6), NOW, 7 * DAY) is None
    assert too_old(incoming(NOW - dt.timedelta(days=60)), NOW, NOW, None) is None  # nothing expires


def test_an_old_event_is_refused_whether_its_envelope_or_its_storage_shows_the_age():
    week_and_a_day = NOW - dt.timedelta(days=8)
    # A fresh copy (stored now) of an event that happened 8 days ago: a redrive, a republish.
    assert "8.0 days old" in too_old(incoming(week_and_a_day), NOW, NOW, 7 * DAY)
    # An event stored 8 days ago whose producer's clock ran fast.
    assert too_old(incoming(NOW + dt.timedelta(hours=1)), week_and_a_day, NOW, 7 * DAY) is not None
    reason = too_old(incoming(week_and_a_day), week_and_a_day, NOW, 7 * DAY)
    assert reason.startswith("too old to handle") and "last 7.0 days" in reason and "publish it anew" in reason
