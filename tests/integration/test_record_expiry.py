"""Bounded growth: every stream and bucket has the capacity model's limits, a finished deliberation's
record expires, and a late copy of its events is then dead-lettered, never run again."""

import asyncio
import time

import nats
import pytest
from nats.js.errors import KeyNotFoundError

from contracts import catalog
from contracts.envelope import MSG_ID, OCCURRED_AT, format_time
from contracts.events import DeliberationCancelRequested
from services.collector.app import SERVICE, wire
from services.embedded.servers import nats_plan
from services.mesh.messages import utc_now
from streams.apply import RECORD_TTL_VARIABLE, apply_all
from streams.capacity import CLAIM_RETENTION_S, RECORD_RETENTION_S, byte_limit
from streams.definitions import BUCKETS, COLLECTOR_DELIBERATIONS, DISPATCH_CLAIMS
from tests.integration.test_deadlines import of, started
from tests.servers import nats_container, real_server
from tests.support import body_of, decode, read_stream, running_service, wait_for, wait_until_idle

pytestmark = pytest.mark.integration

TTL_S = 2.0


async def test_every_bucket_has_the_time_to_live_and_bytes_of_the_capacity_model(js):
    for spec in BUCKETS:
        config = (await js.stream_info(spec.stream_name)).config
        assert (config.max_age, config.max_bytes) == (spec.ttl_s, byte_limit(spec.stream_name, spec.ttl_s)), spec.bucket
        assert config.max_bytes > 0, spec.bucket
    assert DISPATCH_CLAIMS.ttl_s == CLAIM_RETENTION_S > COLLECTOR_DELIBERATIONS.ttl_s == RECORD_RETENTION_S


@pytest.fixture
async def short_lived_records(tmp_path, monkeypatch):
    """A server of this test's own whose buckets keep a key TTL_S seconds after its last write, and
    services told so, as `fleet streams apply` and the services are by FLEET_RECORD_TTL_S."""
    monkeypatch.setenv(RECORD_TTL_VARIABLE, str(TTL_S))
    async with real_server(nats_container, nats_plan(tmp_path), tmp_path) as endpoints:
        client = await nats.connect(endpoints["nats_url"])
        await apply_all(client.jetstream())
        yield endpoints["nats_url"], client.jetstream()
        await client.drain()


async def gone(js, bucket: str, key: str, within_s: float = 20.0) -> None:
    store = await js.key_value(bucket)
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            await store.get(key)
        except KeyNotFoundError:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"{bucket}/{key} still there after {within_s}s")


async def test_a_finished_deliberation_expires_and_a_late_copy_of_its_start_is_dead_lettered_not_run_again(
        short_lived_records, unique):
    url, js = short_lived_records
    deliberation = f"d-{unique}"
    async with running_service(SERVICE, url, wire):
        # As dispatch stores it: with the envelope's time, which a redrive or a republish keeps.
        await js.publish(catalog.DELIBERATION_STARTED.subject, body_of(started(unique)),
                         headers={MSG_ID: f"start-{unique}", OCCURRED_AT: format_time(utc_now())})
        await wait_for(js, catalog.TURN_REQUESTED.subject, of(deliberation), 3)
        cancel = DeliberationCancelRequested(deliberation_id=deliberation, requested_by="alice", reason="done")
        await js.publish(catalog.DELIBERATION_CANCEL_REQUESTED.subject, body_of(cancel),
                         headers={MSG_ID: f"cancel-{unique}"})
        await wait_for(js, catalog.DELIBERATION_FAILED.subject, of(deliberation), 1)
        await gone(js, COLLECTOR_DELIBERATIONS.bucket, deliberation)

        # The same start stored again, as a redrive or a republish would, after its record expired.
        [first] = [m for m in await read_stream(js, catalog.DELIBERATION_STARTED.subject) if of(deliberation)(m)]
        await js.publish(first.subject, first.data, headers={**first.headers, MSG_ID: f"late-{unique}"})
        [letter] = await wait_for(js, catalog.MESSAGE_REJECTED.subject,
                                  lambda m: decode(m).original_headers.get(MSG_ID) == f"late-{unique}", 1)
        await wait_until_idle(js, "ORCHESTRATION", ["collector-deliberation-events"])

    assert decode(letter).reason.startswith("too old to handle: the event is ")
    assert f"the records that keep its handling idempotent last {TTL_S:.1f} s" in decode(letter).reason
    assert len([m for m in await read_stream(js, catalog.TURN_REQUESTED.subject) if of(deliberation)(m)]) == 3
    assert len([m for m in await read_stream(js, catalog.DELIBERATION_FAILED.subject) if of(deliberation)(m)]) == 1
    with pytest.raises(KeyNotFoundError):
        await (await js.key_value(COLLECTOR_DELIBERATIONS.bucket)).get(deliberation)
