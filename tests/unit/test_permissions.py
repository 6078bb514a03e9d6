"""NATS permissions follow the catalog: who produces an event may publish it, and nobody else.

A grant is read as nats-server reads it, a pattern (`*` one token, `>` the rest), so a wildcard added
to a service's grants lets it through to subjects the catalog gives to others, and these specs fail.
"""

from pathlib import Path

import pytest

from contracts import catalog
from contracts.queries import AGENT_CONTEXT, QUERIES
from streams.definitions import BUCKETS, CONSUMERS, STREAMS, stream_for_subject
from streams.permissions import (
    CLIENT_USERS,
    MONITOR,
    OPERATOR,
    PROVISIONER,
    SERVICE_USERS,
    SUBSCRIBER_USER,
    UPSTREAM_USER,
    USERS,
    authorization,
    inbox_prefix,
    password_variable,
    permissions_for,
)
from streams.subjects import subject_matches

CHECKED_IN = Path(__file__).parents[2] / "k8s" / "base" / "nats" / "auth.conf"


EVENT_SUBJECTS = {spec.subject for spec in catalog.EVENTS}


def may_publish(user: str, subject: str) -> bool:
    """Whether one of `user`'s publish grants lets `subject` through, as the server matches them."""
    return any(subject_matches(grant, subject) for grant in permissions_for(user).publish)


def acked(spec) -> str:
    """A subject the server acks one message of durable `spec` on (delivery count, sequences, time, pending)."""
    return f"$JS.ACK.{spec.stream}.{spec.durable}.1.7.7.1764676800000000000.0"


@pytest.mark.parametrize("spec", [s for s in catalog.EVENTS if catalog.ANY_SERVICE not in s.producers],
                         ids=lambda s: s.subject)
def test_an_event_is_published_by_its_producers_only(spec):
    publishers = {user for user in SERVICE_USERS if may_publish(user, spec.subject)}

    assert publishers == set(spec.producers) & set(SERVICE_USERS)


def test_every_service_that_handles_messages_may_dead_letter_them_and_the_monitor_only_reads():
    rejected = catalog.MESSAGE_REJECTED.subject

    assert {user for user in SERVICE_USERS if may_publish(user, rejected)} == set(SERVICE_USERS) - {MONITOR}
    assert not any(may_publish(MONITOR, spec.subject) for spec in catalog.EVENTS)


@pytest.mark.parametrize("spec", CONSUMERS, ids=lambda s: s.durable)
def test_a_durable_is_pulled_and_acked_by_the_service_that_owns_it_alone(spec):
    pull = f"$JS.API.CONSUMER.MSG.NEXT.{spec.stream}.{spec.durable}"

    assert {user for user in SERVICE_USERS if may_publish(user, pull)} == {spec.service}
    assert {user for user in SERVICE_USERS if may_publish(user, acked(spec))} == {spec.service}


@pytest.mark.parametrize("spec", BUCKETS, ids=lambda s: s.bucket)
def test_a_bucket_is_written_by_the_service_that_owns_it_alone(spec):
    assert {user for user in SERVICE_USERS if may_publish(user, f"$KV.{spec.bucket}.d-1")} == {spec.service}


@pytest.mark.parametrize("stream", [s.name for s in STREAMS])
def test_no_service_may_declare_change_or_delete_a_stream_only_the_provisioner(stream):
    for action in ("CREATE", "UPDATE", "DELETE"):
        api = f"$JS.API.STREAM.{action}.{stream}"
        assert {user for user in USERS if may_publish(user, api)} == {PROVISIONER, OPERATOR}, api


@pytest.mark.parametrize("user", SERVICE_USERS)
def test_a_service_is_granted_each_event_subject_by_name_never_by_a_wildcard(user):
    # The catalog names every event subject, so a pattern that covers one (">", "orchestration.>")
    # grants what nothing asked for, now or when an event is added.
    covering = {grant for grant in permissions_for(user).publish
                if any(subject_matches(grant, subject) for subject in EVENT_SUBJECTS)}

    assert covering <= EVENT_SUBJECTS, covering - EVENT_SUBJECTS


def test_each_user_reads_only_its_own_inboxes_and_only_the_projection_answers_queries():
    for user in SERVICE_USERS:
        allowed = permissions_for(user)
        extra = {spec.subject for spec in QUERIES} if user == catalog.PROJECTION else set()
        assert set(allowed.subscribe) == {f"{inbox_prefix(user)}.>"} | extra
        assert allowed.allow_responses == (user == catalog.PROJECTION)
    assert {user for user in SERVICE_USERS if may_publish(user, AGENT_CONTEXT.subject)} == {catalog.AGENTS}


def test_the_operator_may_do_anything_and_the_provisioner_seeds_councils():
    assert permissions_for(OPERATOR).publish == (">",) and permissions_for(OPERATOR).subscribe == (">",)
    assert may_publish(PROVISIONER, catalog.COUNCIL_CREATED.subject)
    assert not may_publish(PROVISIONER, catalog.DELIBERATION_COMPLETED.subject)


def test_the_server_reads_each_password_from_its_environment_unless_given_one():
    from_env = authorization()
    literal = authorization({user: f"pw-{user}" for user in USERS})

    assert all(f"password: ${password_variable(user)}," in from_env for user in USERS)
    assert "pw-" not in from_env
    assert all(f'password: "pw-{user}",' in literal for user in USERS)


def test_the_cluster_gets_the_permissions_the_code_derives():
    assert CHECKED_IN.read_text() == authorization(), "run `just contracts` to regenerate k8s/base/nats/auth.conf"


CLIENTS = {UPSTREAM_USER: catalog.UPSTREAM, SUBSCRIBER_USER: catalog.MONITORING_SUBSCRIBERS}


def allowed_despite_denials(user: str, subject: str) -> bool:
    """An allow that no deny overrides: nats-server applies a user's deny before its allow."""
    denied = any(subject_matches(grant, subject) for grant in permissions_for(user).deny_publish)
    return may_publish(user, subject) and not denied


def read_for(user: str) -> set[str]:
    return {spec.subject for spec in catalog.EVENTS if CLIENTS[user] in spec.consumers}


def test_the_clients_outside_the_mesh_are_users_each_reading_for_a_consumer_the_catalog_names():
    assert set(CLIENT_USERS) == set(CLIENTS) and set(CLIENT_USERS) <= set(USERS)
    assert set(CLIENTS.values()) == set(catalog.OUTSIDE_READERS)
    assert read_for(UPSTREAM_USER) and read_for(SUBSCRIBER_USER)


def test_upstream_publishes_the_ingress_events_and_the_subscriber_no_event_at_all():
    ingress = {spec.subject for spec in catalog.EVENTS if spec.is_ingress}

    assert {subject for subject in EVENT_SUBJECTS if may_publish(UPSTREAM_USER, subject)} == ingress
    assert {subject for subject in EVENT_SUBJECTS if may_publish(SUBSCRIBER_USER, subject)} == set()
    assert catalog.PLAN_APPROVED.subject in ingress and catalog.STORY_TRANSITIONED.subject in ingress


@pytest.mark.parametrize("user", CLIENT_USERS)
def test_a_client_subscribes_to_its_own_inboxes_and_to_the_events_read_for_it_alone(user):
    allowed = permissions_for(user)

    assert set(allowed.subscribe) == {f"{inbox_prefix(user)}.>"} | read_for(user)
    assert not allowed.allow_responses


@pytest.mark.parametrize("user", CLIENT_USERS)
@pytest.mark.parametrize("spec", [s for s in catalog.EVENTS if not s.legacy], ids=lambda s: s.subject)
def test_a_clients_ordered_consumer_may_read_only_the_events_read_for_it(user, spec):
    stream = stream_for_subject(spec.subject).name
    filtered = f"$JS.API.CONSUMER.CREATE.{stream}.someName1.{spec.subject}"

    assert allowed_despite_denials(user, filtered) == (spec.subject in read_for(user))
    # Unfiltered, or under the durable API, a consumer would read the whole stream.
    assert not may_publish(user, f"$JS.API.CONSUMER.CREATE.{stream}.someName1")
    assert not may_publish(user, f"$JS.API.CONSUMER.CREATE.{stream}")
    assert not may_publish(user, f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.someName1")


@pytest.mark.parametrize("user", CLIENT_USERS)
@pytest.mark.parametrize("spec", CONSUMERS, ids=lambda s: s.durable)
def test_a_client_may_neither_change_nor_delete_nor_pull_nor_ack_a_declared_durable(user, spec):
    for subject in read_for(user):
        assert not allowed_despite_denials(user, f"$JS.API.CONSUMER.CREATE.{spec.stream}.{spec.durable}.{subject}")
    assert not may_publish(user, f"$JS.API.CONSUMER.DELETE.{spec.stream}.{spec.durable}")
    assert not allowed_despite_denials(user, f"$JS.API.CONSUMER.MSG.NEXT.{spec.stream}.{spec.durable}")
    assert not may_publish(user, acked(spec))


@pytest.mark.parametrize("user", CLIENT_USERS)
@pytest.mark.parametrize("stream", [s.name for s in STREAMS])
def test_a_client_may_pull_from_no_consumer_at_all_not_even_one_of_its_own(user, stream):
    # A pull names the stream and the consumer alone: a client's own consumers cannot be told from
    # another client's or an operator's, whose messages it would take (read without an ack, they are gone).
    for consumer in ("mine1", "theirs1", *(spec.durable for spec in CONSUMERS if spec.stream == stream)):
        assert not may_publish(user, f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"), consumer


@pytest.mark.parametrize("user", CLIENT_USERS)
def test_a_client_may_not_touch_streams_buckets_or_queries(user):
    for stream in STREAMS:
        for action in ("CREATE", "UPDATE", "DELETE", "PURGE", "MSG.GET", "MSG.DELETE"):
            assert not may_publish(user, f"$JS.API.STREAM.{action}.{stream.name}"), (action, stream.name)
    assert not any(may_publish(user, f"$KV.{spec.bucket}.k") for spec in BUCKETS)
    assert not any(may_publish(user, spec.subject) for spec in QUERIES)
