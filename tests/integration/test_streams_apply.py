"""`fleet streams apply` creates what is missing, fixes what drifted, and touches nothing else."""

import pytest
from nats.js import api

from streams.apply import apply_all, apply_stream, stream_config
from streams.definitions import BUCKETS, CONSUMERS, PLANNING, STREAMS

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


async def test_event_logs_keep_everything_so_read_models_can_be_rebuilt(js):
    for spec in STREAMS:
        config = (await js.stream_info(spec.name)).config
        assert config.retention == api.RetentionPolicy.LIMITS
        assert (config.max_age or 0) == 0 and config.max_msgs == -1


async def test_durables_never_give_up_on_their_own_so_services_dead_letter_instead(js):
    for spec in CONSUMERS:
        info = await js.consumer_info(spec.stream, spec.durable)
        assert info.config.max_deliver == -1
        assert sorted(info.config.filter_subjects) == sorted(spec.filter_subjects)
