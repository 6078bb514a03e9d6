"""Least privilege on a real nats-server: each service user does its own work and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from pathlib import Path

import nats
import pytest

from contracts import catalog
from contracts.envelope import MSG_ID
from contracts.events import DeliberationFailed, Phase, Role
from services.embedded.servers import nats_plan, running_server
from services.embedded.stack import write_private
from services.mesh.log_reader import Reading, read_to_end
from services.mesh.runtime import connect
from services.mesh.settings import Settings
from services.planning.app import SERVICE, wire
from streams.apply import apply_all
from streams.definitions import CONSUMERS, PROJECTIONS, STREAMS
from streams.permissions import (
    OPERATOR,
    PROVISIONER,
    SERVICE_USERS,
    USERS,
    authorization,
    inbox_prefix,
    password_variable,
)
from tests.integration.test_planning_service import approval
from tests.support import body_of, decode, fleet, read_stream, running_service, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
async def secured(tmp_path):
    """A nats-server with every user of the catalog, streams applied by the provisioner."""
    passwords = {user: secrets.token_urlsafe(16) for user in USERS}
    config = write_private(tmp_path / "auth.conf", authorization(passwords))
    async with running_server(nats_plan(tmp_path, config), tmp_path) as endpoints:
        url = endpoints["nats_url"]
        provisioner = await connect(as_user(url, PROVISIONER, passwords))
        await apply_all(provisioner.jetstream())
        await provisioner.close()
        yield url, passwords


def as_user(url: str, user: str, passwords: dict[str, str]) -> Settings:
    return Settings(data_dir=Path("."), nats_url=url, nats_user=user, nats_password=passwords[user])


async def refusals(url: str, user: str, passwords: dict[str, str], action) -> list[str]:
    """What the server refused `user` while `action(client)` ran."""
    refused: list[str] = []

    async def on_error(error: Exception) -> None:
        refused.append(str(error))

    client = await connect(as_user(url, user, passwords), error_cb=on_error, max_reconnect_attempts=0)
    try:
        await action(client)
        await client.flush()
        await asyncio.sleep(0.2)
    finally:
        await client.close()
    return refused


async def test_a_service_cannot_publish_an_event_it_does_not_produce(secured):
    url, passwords = secured

    async def forge_a_result(client) -> None:
        with pytest.raises(nats.errors.TimeoutError):  # the server drops it, so no PubAck ever comes
            await client.jetstream().publish(catalog.DELIBERATION_COMPLETED.subject, b"{}", timeout=1.0)

    refused = await refusals(url, catalog.DISPATCH, passwords, forge_a_result)

    assert any("permissions violation for publish" in r.lower() and catalog.DELIBERATION_COMPLETED.subject in r
               for r in refused), refused


def refused_publishing(refused: list[str]) -> set[str]:
    """The subjects the server's permission errors name as refused for publishing."""
    return {match[1] for r in refused if (match := re.search(r'permissions violation for publish to "([^"]+)"', r,
                                                              re.IGNORECASE))}


@pytest.mark.parametrize("user", SERVICE_USERS)
async def test_the_server_refuses_a_service_each_event_it_does_not_produce(secured, user):
    url, passwords = secured
    others = {spec.subject for spec in catalog.EVENTS
              if catalog.ANY_SERVICE not in spec.producers and user not in spec.producers}

    async def publish_each(client) -> None:
        for subject in sorted(others):
            await client.publish(subject, b"{}")

    refused = await refusals(url, user, passwords, publish_each)

    # A wildcard grant ("orchestration.>", ">") would let some of them through: each must be refused.
    assert refused_publishing(refused) == others


PROJECTED = {stream for projection in PROJECTIONS for stream in projection.streams}


@pytest.mark.parametrize("reader", [catalog.MONITOR, catalog.PROJECTION])
async def test_a_reader_of_the_log_may_make_its_own_ordered_consumers_but_not_touch_another_services_durable(
        secured, reader):
    url, passwords = secured
    durable = next(spec for spec in CONSUMERS if spec.service not in (reader, catalog.MONITOR)
                   and spec.stream in {s.name for s in STREAMS if reader == catalog.MONITOR or s in PROJECTED})
    operator = await connect(as_user(url, OPERATOR, passwords))
    await operator.jetstream().publish(durable.events[0].subject, b"{}")
    read = []

    async def read_then_meddle(client) -> None:
        js = client.jetstream()
        async for message in read_to_end(js, Reading(durable.stream)):
            read.append(message)
        for action in (js.delete_consumer(durable.stream, durable.durable),
                       js.add_consumer(durable.stream, durable_name=durable.durable, ack_wait=1.0)):
            with contextlib.suppress(nats.errors.Error):
                await action

    refused = await refusals(url, reader, passwords, read_then_meddle)

    # The server lowercases the subjects it names.
    assert refused_publishing(refused) == {
        f"$JS.API.CONSUMER.DELETE.{durable.stream}.{durable.durable}".lower(),
        f"$JS.API.CONSUMER.DURABLE.CREATE.{durable.stream}.{durable.durable}".lower()}
    assert read, "the reader read nothing of the stream it may read"
    info = await operator.jetstream().consumer_info(durable.stream, durable.durable)
    await operator.close()
    assert info.config.ack_wait == durable.ack_wait_s


async def test_a_service_cannot_read_events_or_replies_meant_for_others(secured):
    url, passwords = secured

    async def eavesdrop(client) -> None:
        await client.subscribe("agent.>")
        await client.subscribe(f"{inbox_prefix(catalog.COLLECTOR)}.>")

    refused = await refusals(url, catalog.DISPATCH, passwords, eavesdrop)

    assert sum("permissions violation for subscription" in r.lower() for r in refused) == 2, refused


async def test_a_wrong_password_is_refused(secured):
    url, passwords = secured

    with pytest.raises(Exception, match="(?i)authorization"):
        await connect(as_user(url, catalog.PLANNING, {catalog.PLANNING: "guess"}), max_reconnect_attempts=0,
                      allow_reconnect=False)


async def test_planning_does_its_work_as_its_own_user(secured, unique):
    url, passwords = secured
    plan = approval(unique)
    operator = await connect(as_user(url, OPERATOR, passwords))
    js = operator.jetstream()
    try:
        async with running_service(SERVICE, url, wire, nats_user=catalog.PLANNING,
                                   nats_password=passwords[catalog.PLANNING]):
            await js.publish(catalog.PLAN_APPROVED.subject, body_of(plan), headers={MSG_ID: f"approval-{unique}"})
            requests = await wait_for(js, catalog.DELIBERATION_REQUESTED.subject,
                                      lambda m: decode(m).deliberation.plan_id == plan.plan_id,
                                      len(plan.roles) * len(plan.tasks))
            # Its answer, and its plan's conclusion once each deliberation ended (its own bucket holds the plan).
            await wait_for(js, catalog.PLAN_ACCEPTED.subject, lambda m: decode(m).plan_id == plan.plan_id, 1)
            for message in requests:
                ref = decode(message).deliberation
                failed = DeliberationFailed(deliberation_id=ref.deliberation_id, story_id=ref.story_id,
                                            plan_id=ref.plan_id, task_id=ref.task_id, role=ref.role,
                                            phase=Phase.PROPOSE, reason="test", duration_ms=1)
                await js.publish(catalog.DELIBERATION_FAILED.subject, body_of(failed),
                                 headers={MSG_ID: f"failed-{ref.deliberation_id}"})
            [concluded] = await wait_for(js, catalog.PLAN_CONCLUDED.subject,
                                         lambda m: decode(m).plan_id == plan.plan_id, 1)
    finally:
        await operator.close()

    assert {decode(m).deliberation.role for m in requests} == set(plan.roles)
    assert decode(concluded).failed == len(requests)


async def test_the_clusters_users_file_takes_each_password_from_the_servers_environment(tmp_path, monkeypatch):
    # Hex, as k8s/create-secrets.sh makes them: nats-server parses a variable's value as a config value,
    # so a URL-safe token such as "12-ab..." reads as a malformed date and the server does not start.
    passwords = {user: secrets.token_hex(24) for user in USERS}
    for user, password in passwords.items():
        monkeypatch.setenv(password_variable(user), password)
    config = tmp_path / "auth.conf"
    config.write_text(authorization())  # as k8s/base/nats/auth.conf has it: no password written in

    async with running_server(nats_plan(tmp_path, config), tmp_path) as endpoints:
        url = endpoints["nats_url"]
        client = await connect(as_user(url, catalog.COLLECTOR, passwords))
        connected = client.is_connected
        await client.close()
        # Another user's password, which the server also read from its environment, is not the collector's.
        with pytest.raises(nats.errors.Error, match="(?i)authorization"):
            await connect(as_user(url, catalog.COLLECTOR, {catalog.COLLECTOR: passwords[catalog.PLANNING]}),
                          max_reconnect_attempts=0, allow_reconnect=False)

    assert connected


async def test_the_provisioning_jobs_declare_the_streams_and_seed_the_councils_once_as_the_provisioner(
        secured, tmp_path):
    url, passwords = secured
    provisioner = {"FLEET_NATS_USER": PROVISIONER, "FLEET_NATS_PASSWORD": passwords[PROVISIONER]}

    applied = await fleet(url, tmp_path, "streams", "apply", env=provisioner)
    first = await fleet(url, tmp_path, "council", "seed", env=provisioner)
    second = await fleet(url, tmp_path, "council", "seed", env=provisioner)

    assert applied[0] == 0 and "unchanged" in applied[1], applied[1]
    assert first[0] == 0 and "seeded" in first[1], first[1]
    assert second[0] == 0 and "nothing seeded" in second[1], second[1]
    operator = await connect(as_user(url, OPERATOR, passwords))
    try:
        seeded = await read_stream(operator.jetstream(), catalog.COUNCIL_CREATED.subject)
    finally:
        await operator.close()
    assert sorted(decode(m).council.role for m in seeded) == sorted(Role)


async def test_seeding_before_the_streams_exist_fails_saying_so_so_the_job_is_retried(tmp_path):
    async with running_server(nats_plan(tmp_path), tmp_path) as endpoints:
        code, out = await fleet(endpoints["nats_url"], tmp_path, "council", "seed")

    assert code != 0
    assert "the CONFIG stream does not exist yet: run `fleet streams apply` first" in out
