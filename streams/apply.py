"""Create or update the declared streams, consumers and buckets, idempotently."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from streams.definitions import BUCKETS, CONSUMERS, STREAMS, BucketSpec, ConsumerSpec, StreamSpec


@dataclass(frozen=True)
class Change:
    kind: str  # stream | consumer | bucket
    name: str
    action: str  # created | updated | unchanged
    details: str = ""


# How many copies of every stream and bucket a clustered NATS keeps (3 on a 3-node cluster). Unset, each
# spec's own `replicas` holds, and the replicas of what already exists are left as they are, so an apply
# run without it (an operator's laptop) never scales a clustered stream down.
REPLICAS_VARIABLE = "FLEET_STREAM_REPLICAS"


def replicas_from(env: Mapping[str, str]) -> int | None:
    """The replicas asked for in `env`, or None; JetStream allows 1 to 5."""
    raw = env.get(REPLICAS_VARIABLE, "")
    if not raw:
        return None
    if raw not in {"1", "2", "3", "4", "5"}:
        raise ValueError(f"{REPLICAS_VARIABLE}={raw!r} must be a number from 1 to 5 (3 on a 3-node NATS cluster)")
    return int(raw)


def stream_config(spec: StreamSpec, replicas: int | None = None) -> api.StreamConfig:
    return api.StreamConfig(
        name=spec.name,
        description=spec.description,
        subjects=list(spec.subjects),
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        discard=api.DiscardPolicy.OLD,
        max_age=0,
        max_msgs=-1,
        max_bytes=spec.max_bytes,
        max_msg_size=spec.max_msg_size,
        duplicate_window=spec.duplicate_window_s,
        num_replicas=spec.replicas if replicas is None else replicas,
        allow_direct=True,
        allow_msg_schedules=spec.schedules or None,
    )


def consumer_config(spec: ConsumerSpec) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        name=spec.durable,
        durable_name=spec.durable,
        description=f"owned by the {spec.service} service",
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=spec.ack_wait_s,
        max_deliver=-1,
        max_ack_pending=spec.max_ack_pending,
        filter_subjects=list(spec.filter_subjects),
    )


def bucket_config(spec: BucketSpec, replicas: int | None = None) -> api.KeyValueConfig:
    return api.KeyValueConfig(
        bucket=spec.bucket,
        description=spec.description,
        history=spec.history,
        storage=api.StorageType.FILE,
        replicas=1 if replicas is None else replicas,
    )


_STREAM_FIELDS = ("subjects", "max_bytes", "max_msg_size", "duplicate_window", "description")
_CONSUMER_FIELDS = ("ack_wait", "max_deliver", "max_ack_pending", "filter_subjects", "description")


def _differences(wanted: object, actual: object, fields: tuple[str, ...]) -> list[str]:
    changed = []
    for name in fields:
        want, have = getattr(wanted, name), getattr(actual, name)
        if isinstance(want, list):
            want, have = sorted(want), sorted(have or [])
        if want != have:
            changed.append(f"{name}: {have!r} -> {want!r}")
    return changed


async def apply_stream(js: JetStreamContext, spec: StreamSpec, replicas: int | None = None) -> Change:
    wanted = stream_config(spec, replicas)
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        await js.add_stream(wanted)
        return Change("stream", spec.name, "created", ", ".join(spec.subjects))
    fields = _STREAM_FIELDS if replicas is None else (*_STREAM_FIELDS, "num_replicas")
    changed = _differences(wanted, info.config, fields)
    if not changed:
        return Change("stream", spec.name, "unchanged")
    await js.update_stream(wanted)
    return Change("stream", spec.name, "updated", "; ".join(changed))


async def apply_consumer(js: JetStreamContext, spec: ConsumerSpec) -> Change:
    wanted = consumer_config(spec)
    try:
        info = await js.consumer_info(spec.stream, spec.durable)
    except NotFoundError:
        await js.add_consumer(spec.stream, wanted)
        return Change("consumer", spec.durable, "created", f"on {spec.stream}")
    changed = _differences(wanted, info.config, _CONSUMER_FIELDS)
    if not changed:
        return Change("consumer", spec.durable, "unchanged")
    # Adding a consumer that exists with a new config updates it in place.
    await js.add_consumer(spec.stream, wanted)
    return Change("consumer", spec.durable, "updated", "; ".join(changed))


async def apply_bucket(js: JetStreamContext, spec: BucketSpec, replicas: int | None = None) -> Change:
    try:
        info = await js.stream_info(spec.stream_name)
    except NotFoundError:
        await js.create_key_value(bucket_config(spec, replicas))
        return Change("bucket", spec.bucket, "created")
    if replicas is None or info.config.num_replicas == replicas:
        return Change("bucket", spec.bucket, "unchanged")
    before, info.config.num_replicas = info.config.num_replicas, replicas
    await js.update_stream(info.config)
    return Change("bucket", spec.bucket, "updated", f"num_replicas: {before!r} -> {replicas!r}")


async def apply_all(js: JetStreamContext, replicas: int | None = None) -> list[Change]:
    """Streams first, then the consumers on them, then the buckets; replicas default to FLEET_STREAM_REPLICAS."""
    if replicas is None:
        replicas = replicas_from(os.environ)
    changes = [await apply_stream(js, spec, replicas) for spec in STREAMS]
    changes += [await apply_consumer(js, spec) for spec in CONSUMERS]
    changes += [await apply_bucket(js, spec, replicas) for spec in BUCKETS]
    return changes


async def verify_consumer(js: JetStreamContext, spec: ConsumerSpec) -> None:
    """Fail with a clear error when a service starts before `fleet streams apply`."""
    try:
        await js.consumer_info(spec.stream, spec.durable)
    except NotFoundError:
        raise RuntimeError(
            f"durable consumer {spec.durable!r} on stream {spec.stream!r} does not exist; "
            "run `fleet streams apply` first (services never declare streams)"
        ) from None
