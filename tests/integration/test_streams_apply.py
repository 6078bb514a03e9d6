"""`fleet streams apply` creates what is missing, fixes what drifted, and touches nothing else."""

import nats
import pytest
from nats.js import api

from contracts import catalog
from contracts.envelope import MSG_ID
from services.embedded.servers import nats_plan
from streams.apply import InsufficientStorage, apply_all, apply_consumer, apply_stream, consumer_config, stream_config
from streams.capacity import RETENTION_S, Load, byte_limit
from streams.definitions import BUCKETS, CONSUMERS, PLANNING, PLANNING_APPROVALS, STREAMS
from tests.servers import nats_container, real_server

pytestmark = pytest.mark.integration


async def test_applying_twice_changes_nothing_the_second_time(js):
    await apply_all(js)
    changes = await apply_all(js)
    assert {c.action for c in changes} == {"unchanged"}
    assert len(changes) == len(STREAMS) + len(CONSUMERS) + len(BUCKETS)


async def test_a_drifted_stream_is_updated_back_and_the_change_is_reported(js):
    drifted = stream_config(PLANNING)
    drifted.max_msg_size = 1234
    await js.update_stream(drifted)
    change = await apply_stream(js, PLANNING)
    assert change.action == "updated" and "max_msg_size: 1234 -> 1048576" in change.details
    assert (await js.stream_info(PLANNING.name)).config.max_msg_size == PLANNING.max_msg_size


async def test_event_logs_keep_events_for_the_capacity_models_time_within_its_bytes_never_by_count(js):
    for spec in STREAMS:
        config = (await js.stream_info(spec.name)).config
        assert config.retention == api.RetentionPolicy.LIMITS and config.max_msgs == -1, spec.name
        assert (config.max_age or 0) == RETENTION_S[spec.name], spec.name
        assert config.max_bytes == byte_limit(spec.name, RETENTION_S[spec.name]), spec.name
        assert config.max_bytes > 0 and config.discard == api.DiscardPolicy.OLD, spec.name
    # Councils are configuration: every rebuild needs them all.
    assert (await js.stream_info("CONFIG")).config.max_age in (0, None)


async def test_durables_never_give_up_on_their_own_so_services_dead_letter_instead(js):
    for spec in CONSUMERS:
        info = await js.consumer_info(spec.stream, spec.durable)
        assert info.config.max_deliver == -1
        assert sorted(info.config.filter_subjects) == sorted(spec.filter_subjects)


async def test_widening_the_ingress_durable_on_upgrade_keeps_its_place_so_nothing_old_is_handled_again(empty_log):
    _, js = empty_log
    # The durable as it was declared before it took all of planning.>: approvals alone.
    before = consumer_config(PLANNING_APPROVALS)
    before.filter_subjects = [catalog.PLAN_APPROVED.subject, catalog.LEGACY_PLAN_APPROVED.subject]
    await js.delete_consumer(PLANNING.name, PLANNING_APPROVALS.durable)
    await js.add_consumer(PLANNING.name, before)
    await js.publish("planning.story.renamed.v1", b"{}", headers={MSG_ID: "old-unknown"})
    await js.publish(catalog.PLAN_APPROVED.subject, b"{}", headers={MSG_ID: "old-approval"})
    old = await js.pull_subscribe_bind(PLANNING_APPROVALS.durable, PLANNING.name)
    [handled] = await old.fetch(1, timeout=5)
    await handled.ack_sync()
    await old.unsubscribe()

    change = await apply_consumer(js, PLANNING_APPROVALS)

    assert change.action == "updated" and "planning.>" in change.details
    info = await js.consumer_info(PLANNING.name, PLANNING_APPROVALS.durable)
    assert info.config.filter_subjects == ["planning.>"]
    assert (info.num_pending, info.num_ack_pending) == (0, 0)


async def test_a_server_without_room_for_the_limits_is_refused_with_what_to_do(tmp_path):
    """JetStream reserves each stream's max_bytes when it is created; a server that cannot is named, with
    the load the limits were sized for and the two ways out."""
    config = tmp_path / "small.conf"
    config.write_text("jetstream { max_file_store: 1GB }\n")
    async with real_server(nats_container, nats_plan(tmp_path, config), tmp_path) as endpoints:
        client = await nats.connect(endpoints["nats_url"])
        try:
            with pytest.raises(InsufficientStorage, match="FLEET_DELIBERATIONS_PER_DAY") as refused:
                await apply_all(client.jetstream(), load=Load(deliberations_per_day=100))
            assert "cannot reserve" in str(refused.value) and "docs/scaling.md" in str(refused.value)
            # Sized for a lighter load, the same server takes every stream and bucket.
            await apply_all(client.jetstream(), load=Load(deliberations_per_day=0.01))
        finally:
            await client.close()
