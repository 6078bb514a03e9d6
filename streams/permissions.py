"""Who may publish and subscribe to what on NATS: one user per service, least privilege.

Derived from the catalog (who produces which event), the durables, buckets and read models declared
in `streams/`, and the queries, so a new event or consumer changes the permissions with it. The
same permissions serve `fleet up --auth` and the cluster (`k8s/base/nats/auth.conf`, generated).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from contracts import catalog
from contracts.queries import AGENT_CONTEXT, QUERIES
from streams.definitions import (
    BUCKETS,
    CONFIG,
    CONSUMERS,
    DEAD_LETTERS,
    PROJECTIONS,
    STREAMS,
    BucketSpec,
    ConsumerSpec,
    StreamSpec,
    schedule_subject,
    stream_for_subject,
)

MONITOR = catalog.MONITOR
# Runs the provisioning Jobs: declares streams, durables and buckets, and seeds the default councils.
PROVISIONER = "provisioner"
# The `fleet` CLI in an operator's hands: reads everything, redrives dead letters, manages councils.
OPERATOR = catalog.OPERATOR
SERVICE_USERS = catalog.SERVICES
# Clients outside the mesh (docs/deploy.md, docs/clients.md), each reading for one consumer the catalog
# names: an upstream planner publishes approvals and story transitions and follows their answers; a
# monitoring subscriber only reads results and decisions.
UPSTREAM_USER = "upstream"
SUBSCRIBER_USER = "subscriber"
CLIENT_READERS: Mapping[str, str] = {UPSTREAM_USER: catalog.UPSTREAM, SUBSCRIBER_USER: catalog.MONITORING_SUBSCRIBERS}
CLIENT_USERS = tuple(CLIENT_READERS)
USERS = (*SERVICE_USERS, PROVISIONER, OPERATOR, *CLIENT_USERS)

# Events stored through the JetStream scheduler, on a schedule subject of their stream, by their producer.
SCHEDULED = (catalog.DEADLINE_PASSED,)
# Reads by stream sequence (direct get), with no durable: the council directory.
DIRECT_READERS: Mapping[str, tuple[StreamSpec, ...]] = {catalog.PLANNING: (CONFIG,)}
# Asks the read models over request/reply; the projection answers.
QUERY_ASKERS: Mapping[str, tuple[str, ...]] = {catalog.AGENTS: (AGENT_CONTEXT.subject,)}


@dataclass(frozen=True)
class Permissions:
    user: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    # May reply to whoever asked it, and only to them, once per request.
    allow_responses: bool = False
    # Refused even where an allow matches: the durables of others, which an ordered reader's wildcards reach.
    deny_publish: tuple[str, ...] = ()


def inbox_prefix(user: str) -> str:
    """Each user's replies (PubAcks, pulled messages, query answers) come on inboxes only it may read."""
    return f"_INBOX.{user}"


def permissions_for(user: str) -> Permissions:
    if user == OPERATOR:
        return Permissions(user, publish=(">",), subscribe=(">",))
    inbox = (f"{inbox_prefix(user)}.>",)
    if user == PROVISIONER:
        seeds = _produced_by(catalog.PLANNING, only=(catalog.COUNCIL_CREATED,))
        return Permissions(user, publish=("$JS.API.>", *seeds), subscribe=inbox)
    if user in CLIENT_READERS:
        return _client(user)
    publish: list[str] = ["$JS.API.INFO", *_produced_by(user)]
    publish += [subject for spec in CONSUMERS if spec.service == user for subject in _durable(spec)]
    publish += [subject for spec in BUCKETS if spec.service == user for subject in _bucket(spec)]
    publish += [subject for stream in DIRECT_READERS.get(user, ()) for subject in _direct_get(stream)]
    publish += [subject for stream in _ordered_reads(user) for subject in _ordered_consumer(stream)]
    publish += [spec.subject for spec in QUERIES if spec.subject in QUERY_ASKERS.get(user, ())]
    if user == MONITOR:
        publish += [f"$JS.API.CONSUMER.INFO.{spec.stream}.{spec.durable}" for spec in CONSUMERS]
        publish += [f"$JS.API.STREAM.INFO.{DEAD_LETTERS.name}"]
    subscribe = list(inbox)
    answers = user == catalog.PROJECTION
    if answers:
        subscribe += [spec.subject for spec in QUERIES]
    ordered_streams = {stream.name for stream in _ordered_reads(user)}
    deny = [subject for spec in CONSUMERS if spec.stream in ordered_streams for subject in _durable_changes(spec)]
    return Permissions(user, publish=_unique(publish), subscribe=_unique(subscribe), allow_responses=answers,
                       deny_publish=_unique(deny))


def _client(user: str) -> Permissions:
    """A client outside the mesh: what it produces, and the events read for it, live or in order from the log.

    No ack, no pull, and no durable of the mesh's: it makes consumers of its own, each named and created
    with the one subject it reads in the request's subject (`...CONSUMER.CREATE.<stream>.<name>.<subject>`),
    as the mesh's ordered reader (services/mesh/log_reader) does, so a grant per subject keeps every
    reading to those subjects. They push to it; it never pulls: a pull (`CONSUMER.MSG.NEXT`) names only the
    stream and the consumer, so a grant for its own consumers would let it drain anyone's (another
    client's, an operator's) on the same stream, the upstream planner the decisions read for the
    subscriber among them. The same subjects are its core subscriptions.

    Not kept out: where a push consumer delivers. nats-server does not check a consumer's
    deliver_subject against its creator's publish grants (nats-io/nats-server#8274), so a client may
    have the server deliver the events read for it onto any subject someone listens on, one it may not
    publish to (`planning.plan.approved.v1`) included. Each keeps its own subject, so a stream that
    captures the deliver subject stores a copy of the event read, under that event's subject, never a
    forged one: a durable filtered on the stream's own subjects never sees it, a reader of the whole
    stream does (tests/integration/test_client_permissions.py records what the server does). The fix,
    not done: the clients in a NATS account of their own that imports only their subjects.
    """
    answers = [spec.subject for spec in catalog.EVENTS if CLIENT_READERS[user] in spec.consumers]
    streams = {stream_for_subject(subject).name for subject in answers}
    publish = _produced_by(CLIENT_READERS[user])
    publish += [subject for stream in sorted(streams) for subject in (
        f"$JS.API.STREAM.INFO.{stream}", f"$JS.API.CONSUMER.INFO.{stream}.*", f"$JS.FC.{stream}.>")]
    publish += [f"$JS.API.CONSUMER.CREATE.{stream_for_subject(subject).name}.*.{subject}" for subject in answers]
    deny = [subject for spec in CONSUMERS if spec.stream in streams for subject in _durable_changes(spec)]
    return Permissions(user, publish=_unique(publish), subscribe=(f"{inbox_prefix(user)}.>", *answers),
                       deny_publish=_unique(deny))


def _produced_by(user: str, only: Iterable[catalog.EventSpec] | None = None) -> list[str]:
    """The subjects of the events `user` publishes; every service but the read-only monitor dead-letters."""
    events = catalog.EVENTS if only is None else tuple(only)
    subjects = []
    for spec in events:
        if user in spec.producers or (catalog.ANY_SERVICE in spec.producers and user in SERVICE_USERS
                                      and user != MONITOR):
            subjects.append(spec.subject)
        if spec in SCHEDULED and user in spec.producers:
            stream = stream_for_subject(spec.subject).name
            # The schedule of each aggregate, and removing it when the aggregate is done.
            subjects += [schedule_subject(spec.subject, "*"), f"$JS.API.STREAM.PURGE.{stream}"]
    return subjects


def _durable(spec: ConsumerSpec) -> list[str]:
    return [f"$JS.API.STREAM.INFO.{spec.stream}", f"$JS.API.CONSUMER.INFO.{spec.stream}.{spec.durable}",
            f"$JS.API.CONSUMER.MSG.NEXT.{spec.stream}.{spec.durable}", f"$JS.ACK.{spec.stream}.{spec.durable}.>"]


def _bucket(spec: BucketSpec) -> list[str]:
    return [f"$KV.{spec.bucket}.>", *_direct_get(StreamSpec(spec.stream_name, (), ""))]


def _direct_get(stream: StreamSpec) -> list[str]:
    return [f"$JS.API.STREAM.INFO.{stream.name}", f"$JS.API.STREAM.MSG.GET.{stream.name}",
            f"$JS.API.DIRECT.GET.{stream.name}", f"$JS.API.DIRECT.GET.{stream.name}.>"]


def _ordered_reads(user: str) -> list[StreamSpec]:
    if user == MONITOR:
        return list(STREAMS)
    return [stream for projection in PROJECTIONS if projection.service == user for stream in projection.streams]


def _ordered_consumer(stream: StreamSpec) -> list[str]:
    """An ordered consumer: created (and re-created after a gap) by the client, flow-controlled."""
    return [f"$JS.API.STREAM.INFO.{stream.name}", f"$JS.API.CONSUMER.CREATE.{stream.name}",
            f"$JS.API.CONSUMER.CREATE.{stream.name}.>", f"$JS.API.CONSUMER.INFO.{stream.name}.*",
            f"$JS.API.CONSUMER.DELETE.{stream.name}.*", f"$JS.FC.{stream.name}.>"]


def _durable_changes(spec: ConsumerSpec) -> list[str]:
    """Creating, changing or deleting a declared durable: for the provisioner and the operator alone.

    An ordered consumer's name is the server's choice, so its reader is allowed any name on its stream;
    this keeps the declared durables out of that reach (nats-server applies a deny before an allow).
    """
    prefix = "$JS.API.CONSUMER"
    return [f"{prefix}.CREATE.{spec.stream}.{spec.durable}", f"{prefix}.CREATE.{spec.stream}.{spec.durable}.>",
            f"{prefix}.DURABLE.CREATE.{spec.stream}.{spec.durable}", f"{prefix}.DELETE.{spec.stream}.{spec.durable}"]


def _unique(subjects: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(subjects))


def password_variable(user: str) -> str:
    """The environment variable the NATS server reads `user`'s password from, in the cluster."""
    return f"NATS_PASSWORD_{user.upper()}"


def authorization(passwords: Mapping[str, str] | None = None) -> str:
    """A nats-server `authorization` block for every user.

    With `passwords`, they are written in (the embedded server's private file); without, each is
    `$NATS_PASSWORD_<USER>`, which the server reads from its environment (a Secret in the cluster).
    """
    lines = ["# Generated from the catalog and streams/ by `fleet nats auth`: do not edit.", "authorization {",
             "  users: ["]
    for user in USERS:
        allowed = permissions_for(user)
        secret = _quoted(passwords[user]) if passwords is not None else f"${password_variable(user)}"
        lines += [f"    {{user: {_quoted(user)}, password: {secret}, permissions: {{",
                  f"      publish: {{allow: {_list(allowed.publish)}"
                  + (f", deny: {_list(allowed.deny_publish)}" if allowed.deny_publish else "") + "},",
                  f"      subscribe: {{allow: {_list(allowed.subscribe)}}}"]
        if allowed.allow_responses:
            lines[-1] += ","
            lines.append("      allow_responses: true")
        lines.append("    }},")
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _list(subjects: Iterable[str]) -> str:
    return "[" + ", ".join(_quoted(subject) for subject in subjects) + "]"
