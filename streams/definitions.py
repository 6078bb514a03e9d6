"""Every stream, durable consumer and KV bucket of the mesh. Nothing else declares them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from contracts import catalog
from streams.capacity import CLAIM_RETENTION_S, RECORD_RETENTION_S, RETENTION_S
from streams.subjects import subject_matches, subject_within, subjects_overlap

MINUTE = 60.0
HOUR = 60 * MINUTE
MiB = 1024 * 1024


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    description: str
    duplicate_window_s: float = 10 * MINUTE
    max_msg_size: int = 1 * MiB
    # How long an event is kept (0: for ever). Its bytes come from the capacity model at the load the
    # deployment is sized for (streams/capacity.py); past them, the oldest events go first.
    max_age_s: float = 0.0
    replicas: int = 1
    # Holds JetStream message schedules (deadlines) besides events.
    schedules: bool = False


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer, owned by one service."""

    durable: str
    stream: str
    filter_subjects: tuple[str, ...]
    service: str
    ack_wait_s: float = 30.0
    # After this many deliveries the service dead-letters the message with its last error.
    # The server itself never gives up (max_deliver=-1), so a message whose handler crashed
    # the process on its last try is still dead-lettered, never silently parked.
    max_deliveries: int = 5
    max_ack_pending: int = 1000
    # A handler still running after this long is cancelled, and the attempt counts as a failure.
    handler_timeout_s: float = 30.0

    @property
    def events(self) -> tuple[catalog.EventSpec, ...]:
        """The catalogued events its filter passes (a wildcard filter passes unknown subjects too)."""
        return tuple(spec for spec in catalog.EVENTS
                     if any(subject_matches(f, spec.subject) for f in self.filter_subjects))


@dataclass(frozen=True)
class BucketSpec:
    """A JetStream KV bucket: durable service state, rebuilt only through its own history."""

    bucket: str
    description: str
    # The one service that reads and writes it.
    service: str
    history: int = 1
    # How long a key outlives its last write (0: for ever). Its bytes come from the capacity model; past
    # them, a write is refused rather than an older key dropped.
    ttl_s: float = 0.0
    # False for a bucket of leases, whose keys live seconds: not a record an event may meet, so
    # FLEET_RECORD_TTL_S does not shorten it and it does not bound the age of events a service takes.
    holds_records: bool = True

    @property
    def stream_name(self) -> str:
        return f"KV_{self.bucket}"


CONFIG = StreamSpec(
    name="CONFIG",
    subjects=("config.>",),
    description="Configuration as events: councils created and deleted.",
    max_age_s=RETENTION_S["CONFIG"],
)
PLANNING = StreamSpec(
    name="PLANNING",
    subjects=("planning.>",),
    description="Ingress from upstream planning services, legacy and versioned.",
    duplicate_window_s=1 * HOUR,
    max_age_s=RETENTION_S["PLANNING"],
)
ORCHESTRATION = StreamSpec(
    name="ORCHESTRATION",
    subjects=("orchestration.>",),
    description="The deliberation aggregate, from request to result, and the schedules of its phase deadlines.",
    schedules=True,
    max_age_s=RETENTION_S["ORCHESTRATION"],
)
AGENT = StreamSpec(
    name="AGENT",
    subjects=("agent.>",),
    description="Work asked of agents and what they answered.",
    max_age_s=RETENTION_S["AGENT"],
)
DEAD_LETTERS = StreamSpec(
    name="DEAD_LETTERS",
    subjects=("deadletter.>",),
    description="Messages a service rejected, each with its reason and original headers and body.",
    max_age_s=RETENTION_S["DEAD_LETTERS"],
)

STREAMS: tuple[StreamSpec, ...] = (CONFIG, PLANNING, ORCHESTRATION, AGENT, DEAD_LETTERS)

# Planning owns every ingress subject, known or not: it answers approvals, checks story transitions, and
# dead-letters anything else once (the projections skip what it owns). The durable keeps the name it had
# when it took approvals alone: `fleet streams apply` widens its filter in place, at its position, where a
# new durable would start from the stream's first message and request every approved plan again.
PLANNING_APPROVALS = ConsumerSpec(
    durable="planning-plan-approvals",
    stream=PLANNING.name,
    filter_subjects=PLANNING.subjects,
    service=catalog.PLANNING,
)
DISPATCH_REQUESTS = ConsumerSpec(
    durable="dispatch-deliberation-requests",
    stream=ORCHESTRATION.name,
    filter_subjects=(catalog.DELIBERATION_REQUESTED.subject,),
    service=catalog.DISPATCH,
)
AGENTS_TURNS = ConsumerSpec(
    durable="agents-turn-requests",
    stream=AGENT.name,
    filter_subjects=(catalog.TURN_REQUESTED.subject,),
    service=catalog.AGENTS,
    # The consumer heartbeats in_progress() while an LLM call runs. A fetched request may also wait
    # in the worker queue for one whole call before its handler starts, so the ack wait is longer.
    ack_wait_s=150.0,
    # Above the LLM timeout (60 s by default, at most 60 s with a structured retry): a slow LLM is a
    # typed LlmTimeout outcome; only a hung Ray call reaches this deadline.
    handler_timeout_s=130.0,
    # How many turn requests may be out at once: the start of backpressure toward the actors.
    max_ack_pending=256,
)
COLLECTOR_DELIBERATIONS_IN = ConsumerSpec(
    durable="collector-deliberation-events",
    stream=ORCHESTRATION.name,
    filter_subjects=(
        catalog.DELIBERATION_STARTED.subject,
        catalog.DEADLINE_PASSED.subject,
        catalog.DELIBERATION_CANCEL_REQUESTED.subject,
        catalog.DELIBERATION_RETRY_REQUESTED.subject,
    ),
    service=catalog.COLLECTOR,
)
COLLECTOR_TURNS = ConsumerSpec(
    durable="collector-turn-outcomes",
    stream=AGENT.name,
    filter_subjects=(catalog.TURN_COMPLETED.subject, catalog.TURN_FAILED.subject),
    service=catalog.COLLECTOR,
)
# What became of each accepted plan: its deliberations' requests (a retry's replaces its slot) and results.
PLANNING_PLAN_OUTCOMES = ConsumerSpec(
    durable="planning-plan-outcomes",
    stream=ORCHESTRATION.name,
    filter_subjects=(
        catalog.PLAN_ACCEPTED.subject,
        catalog.DELIBERATION_REQUESTED.subject,
        catalog.DELIBERATION_COMPLETED.subject,
        catalog.DELIBERATION_FAILED.subject,
    ),
    service=catalog.PLANNING,
)

CONSUMERS: tuple[ConsumerSpec, ...] = (
    PLANNING_APPROVALS,
    PLANNING_PLAN_OUTCOMES,
    DISPATCH_REQUESTS,
    AGENTS_TURNS,
    COLLECTOR_DELIBERATIONS_IN,
    COLLECTOR_TURNS,
)

DISPATCH_CLAIMS = BucketSpec(
    bucket="DISPATCH_CLAIMS",
    description="Which event first started each deliberation, so a duplicate never starts another.",
    service=catalog.DISPATCH,
    ttl_s=CLAIM_RETENTION_S,
)
COLLECTOR_DELIBERATIONS = BucketSpec(
    bucket="COLLECTOR_DELIBERATIONS",
    description="The state of each deliberation, folded from its events, updated by compare-and-set.",
    service=catalog.COLLECTOR,
    ttl_s=RECORD_RETENTION_S,
)

PLAN_OUTCOMES = BucketSpec(
    bucket="PLAN_OUTCOMES",
    description="Each accepted plan's deliberations and how each ended, updated by compare-and-set.",
    service=catalog.PLANNING,
    ttl_s=RECORD_RETENTION_S,
)

# How long a projection's lease outlives its holder's last renewal: a standby takes over this long after
# the holder dies (the holder renews every third of it, and hands it back at once when it stops).
PROJECTION_LEASE_S = 10.0
PROJECTION_LEASES = BucketSpec(
    bucket="PROJECTION_LEASES",
    description="Which projection replica writes each read model, and its fencing token (the lease's revision).",
    service=catalog.PROJECTION,
    ttl_s=PROJECTION_LEASE_S,
    holds_records=False,
)

BUCKETS: tuple[BucketSpec, ...] = (DISPATCH_CLAIMS, COLLECTOR_DELIBERATIONS, PLAN_OUTCOMES, PROJECTION_LEASES)


@dataclass(frozen=True)
class ProjectionSpec:
    """A read model the projection service folds from whole streams.

    It has no durable: its position in each stream is the checkpoint stored with its own writes, so a
    store dropped or rebuilt from zero knows where it stands, and the log is read with ordered consumers.
    """

    name: str
    streams: tuple[StreamSpec, ...]
    service: str = catalog.PROJECTION
    # Events applied in one atomic write when the live projection is behind.
    batch_size: int = 500
    # The same when catching up (a rebuild, a replay): fewer, larger writes; the live batches stay
    # small so that a follower's writes stay short.
    catch_up_batch_size: int = 2_000


GRAPH_PROJECTION = ProjectionSpec(name="graph", streams=(CONFIG, PLANNING, ORCHESTRATION, AGENT))
KV_PROJECTION = ProjectionSpec(name="kv", streams=STREAMS)

PROJECTIONS: tuple[ProjectionSpec, ...] = (GRAPH_PROJECTION, KV_PROJECTION)


def schedule_subject(target_subject: str, aggregate_id: str) -> str:
    """Where the schedule of an aggregate is kept, in the same stream as its target."""
    return f"{target_subject.split('.', 1)[0]}.schedule.{aggregate_id}"


def stream_for_subject(subject: str) -> StreamSpec:
    """The one stream that stores `subject`."""
    matches = [s for s in STREAMS if any(subject_matches(p, subject) for p in s.subjects)]
    if len(matches) != 1:
        raise LookupError(f"subject {subject!r} is covered by {len(matches)} streams, not 1")
    return matches[0]


def streams_for(subject_filter: str, streams: Sequence[StreamSpec] = STREAMS) -> list[StreamSpec]:
    return [s for s in streams if any(subjects_overlap(subject_filter, own) for own in s.subjects)]


def covers_stream(subject_filter: str, stream: StreamSpec) -> bool:
    """Whether the filter passes every message of the stream, so its last N are its last N sequences."""
    return all(subject_within(own, subject_filter) for own in stream.subjects)
