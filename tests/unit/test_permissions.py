"""NATS permissions follow the catalog: who produces an event may publish it, and nobody else.

A grant is read as nats-server reads it, a pattern (`*` one token, `>` the rest), so a wildcard added
to a service's grants lets it through to subjects the catalog gives to others, and these specs fail.
"""

from pathlib import Path

import pytest

from contracts import catalog
from contracts.queries import AGENT_CONTEXT, QUERIES
from streams.definitions import BUCKETS, CONSUMERS, STREAMS
from streams.permissions import (
    MONITOR,
    OPERATOR,
    PROVISIONER,
    SERVICE_USERS,
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
