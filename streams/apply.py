"""Create or update the declared streams, consumers and buckets, idempotently."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError

from streams.capacity import DESIGN_LOAD, LOAD_VARIABLE, Load, byte_limit, load_from, positive_from
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


def stream_config(spec: StreamSpec, replicas: int | None = None, load: Load = DESIGN_LOAD) -> api.StreamConfig:
    return api.StreamConfig(
        name=spec.name,
        description=spec.description,
        subjects=list(spec.subjects),
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        # Past its bytes a log drops its oldest events rather than refuse new work: the capacity model
        # (docs/scaling.md) sizes the bytes at twice the design load over the retention.
        discard=api.DiscardPolicy.OLD,
        max_age=spec.max_age_s,
        max_msgs=-1,
        max_bytes=byte_limit(spec.name, spec.max_age_s, load),
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


def bucket_config(
    spec: BucketSpec, replicas: int | None = None, ttl_s: float | None = None, load: Load = DESIGN_LOAD,
) -> api.KeyValueConfig:
    return api.KeyValueConfig(
        bucket=spec.bucket,
        description=spec.description,
        history=spec.history,
        storage=api.StorageType.FILE,
        replicas=1 if replicas is None else replicas,
        ttl=bucket_ttl(spec, ttl_s),
        max_bytes=byte_limit(spec.stream_name, spec.ttl_s, load),
    )


# Shortens every bucket's time to live (tests: a record that expires within the test). Unset, each
# spec's own `ttl_s` holds.
RECORD_TTL_VARIABLE = "FLEET_RECORD_TTL_S"


def record_ttl_from(env: Mapping[str, str]) -> float | None:
    return positive_from(env, RECORD_TTL_VARIABLE, "seconds")


def bucket_ttl(spec: BucketSpec, ttl_s: float | None) -> float:
    """A bucket's time to live: the spec's, or `ttl_s` where that is shorter (records only, never a lease)."""
    if ttl_s is None or not spec.holds_records:
        return spec.ttl_s
    return min(spec.ttl_s, ttl_s) if spec.ttl_s else ttl_s


_STREAM_FIELDS = ("subjects", "max_bytes", "max_age", "max_msg_size", "duplicate_window", "description")
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


# JetStream's answer when a stream's max_bytes does not fit what the server may still reserve.
INSUFFICIENT_STORAGE = 10047


@contextlib.asynccontextmanager
async def room_for(name: str, max_bytes: int, load: Load):
    """Turn JetStream's "insufficient storage resources" into what to do about it."""
    try:
        yield
    except APIError as exc:
        if exc.err_code != INSUFFICIENT_STORAGE:
            raise
        raise InsufficientStorage(
            f"nats-server cannot reserve {max_bytes / 2**20:,.0f} MiB for {name}: the limits sized for "
            f"{load.deliberations_per_day:g} deliberations a day ({LOAD_VARIABLE}) need more room than the "
            "server has (75% of its volume or free disk, unless max_file_store says otherwise). Give it more "
            f"disk, or set {LOAD_VARIABLE} lower; docs/scaling.md has the model"
        ) from exc


class InsufficientStorage(RuntimeError):
    """The server cannot hold the limits the capacity model gives a stream or bucket."""


async def apply_stream(
    js: JetStreamContext, spec: StreamSpec, replicas: int | None = None, load: Load = DESIGN_LOAD,
) -> Change:
    wanted = stream_config(spec, replicas, load)
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        async with room_for(spec.name, wanted.max_bytes, load):
            await js.add_stream(wanted)
        return Change("stream", spec.name, "created", ", ".join(spec.subjects))
    fields = _STREAM_FIELDS if replicas is None else (*_STREAM_FIELDS, "num_replicas")
    changed = _differences(wanted, info.config, fields)
    if not changed:
        return Change("stream", spec.name, "unchanged")
    async with room_for(spec.name, wanted.max_bytes, load):
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


async def apply_bucket(
    js: JetStreamContext, spec: BucketSpec, replicas: int | None = None, ttl_s: float | None = None,
    load: Load = DESIGN_LOAD,
) -> Change:
    wanted_config = bucket_config(spec, replicas, ttl_s, load)
    try:
        info = await js.stream_info(spec.stream_name)
    except NotFoundError:
        async with room_for(spec.stream_name, wanted_config.max_bytes, load):
            await js.create_key_value(wanted_config)
        return Change("bucket", spec.bucket, "created")
    config = info.config
    wanted = {"max_age": wanted_config.ttl, "max_bytes": wanted_config.max_bytes}
    if replicas is not None:
        wanted["num_replicas"] = replicas
    changed = [f"{name}: {getattr(config, name)!r} -> {value!r}" for name, value in wanted.items()
               if getattr(config, name) != value]
    if not changed:
        return Change("bucket", spec.bucket, "unchanged")
    for name, value in wanted.items():
        setattr(config, name, value)
    if config.max_age and config.duplicate_window and config.duplicate_window > config.max_age:
        config.duplicate_window = config.max_age  # the server refuses a window longer than the age
    async with room_for(spec.stream_name, wanted_config.max_bytes, load):
        await js.update_stream(config)
    return Change("bucket", spec.bucket, "updated", "; ".join(changed))


async def apply_all(
    js: JetStreamContext, replicas: int | None = None, ttl_s: float | None = None, load: Load | None = None,
) -> list[Change]:
    """Streams first, then the consumers on them, then the buckets; replicas default to FLEET_STREAM_REPLICAS,
    the buckets' time to live to the specs' (or FLEET_RECORD_TTL_S, where shorter), and the bytes to the
    capacity model at FLEET_DELIBERATIONS_PER_DAY."""
    if replicas is None:
        replicas = replicas_from(os.environ)
    if ttl_s is None:
        ttl_s = record_ttl_from(os.environ)
    if load is None:
        load = load_from(os.environ)
    changes = [await apply_stream(js, spec, replicas, load) for spec in STREAMS]
    changes += [await apply_consumer(js, spec) for spec in CONSUMERS]
    changes += [await apply_bucket(js, spec, replicas, ttl_s, load) for spec in BUCKETS]
    return changes


def records_retention_s(env: Mapping[str, str]) -> float | None:
    """The shortest time to live of the mesh's buckets (FLEET_RECORD_TTL_S counted), or None when none
    expires: the age past which an event may meet a record that has gone."""
    ttl_s = record_ttl_from(env)
    expiring = [ttl for ttl in (bucket_ttl(spec, ttl_s) for spec in BUCKETS if spec.holds_records) if ttl > 0]
    return min(expiring) if expiring else None


async def verify_consumer(js: JetStreamContext, spec: ConsumerSpec) -> None:
    """Fail with a clear error when a service starts before `fleet streams apply`."""
    try:
        await js.consumer_info(spec.stream, spec.durable)
    except NotFoundError:
        raise RuntimeError(
            f"durable consumer {spec.durable!r} on stream {spec.stream!r} does not exist; "
            "run `fleet streams apply` first (services never declare streams)"
        ) from None
