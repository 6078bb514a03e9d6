"""FLEET_STREAM_REPLICAS: how many copies of each stream and bucket a clustered NATS keeps."""

import pytest

from streams.apply import bucket_config, replicas_from, stream_config
from streams.definitions import BUCKETS, STREAMS


def test_without_the_variable_each_stream_keeps_the_replicas_of_its_spec():
    assert replicas_from({}) is None
    assert replicas_from({"FLEET_STREAM_REPLICAS": ""}) is None
    assert all(stream_config(spec).num_replicas == spec.replicas for spec in STREAMS)
    assert all(bucket_config(spec).replicas == 1 for spec in BUCKETS)


def test_a_three_node_cluster_keeps_three_copies_of_every_stream_and_bucket():
    replicas = replicas_from({"FLEET_STREAM_REPLICAS": "3"})
    assert replicas == 3
    assert {stream_config(spec, replicas).num_replicas for spec in STREAMS} == {3}
    assert {bucket_config(spec, replicas).replicas for spec in BUCKETS} == {3}


@pytest.mark.parametrize("raw", ["0", "6", "three", "-1", "3.0"])
def test_replicas_outside_what_jetstream_allows_are_refused_naming_the_variable(raw):
    with pytest.raises(ValueError, match="FLEET_STREAM_REPLICAS"):
        replicas_from({"FLEET_STREAM_REPLICAS": raw})
