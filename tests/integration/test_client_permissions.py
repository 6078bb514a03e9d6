"""Clients outside the mesh on a real nats-server: the upstream planner and a monitoring subscriber each do
their own job (publish, follow the answers live and in order) and nothing more."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path

import nats
import pytest
from nats.js.api import AckPolicy

from contracts import catalog
from contracts.events import StoryTransitioned
from services.embedded.stack import EmbeddedStack, password_file_endpoint
from services.mesh.log_reader import FIRST, Reading, follow, read_log, read_to_end
from services.mesh.messages import Outgoing
from services.mesh.publishing import EventPublisher
from services.mesh.runtime import connect
from services.mesh.settings import Settings, load_settings, read_endpoints
from services.planning.client import approve_plan
from streams.definitions import CONSUMERS, stream_for_subject
from streams.permissions import OPERATOR, SUBSCRIBER_USER, UPSTREAM_USER
from tests.integration import test_nats_permissions
from tests.integration.test_nats_permissions import as_user, refusals, refused_publishing
from tests.integration.test_planning_service import approval

pytestmark = pytest.mark.integration

# A nats-server with every user of the catalog, streams applied by the provisioner.
secured = test_nats_permissions.secured

ANSWERS = [spec for spec in catalog.EVENTS if catalog.UPSTREAM in spec.consumers]
RESULTS_AND_DECISIONS = [spec for spec in catalog.EVENTS if catalog.MONITORING_SUBSCRIBERS in spec.consumers]
ORCHESTRATION = stream_for_subject(catalog.DELIBERATION_COMPLETED.subject).name


async def store(url: str, passwords: dict[str, str], specs, unique: str) -> None:
    """One message on each event's subject, as the mesh's services would store it."""
    operator = await connect(as_user(url, OPERATOR, passwords))
    for spec in specs:
        await operator.jetstream().publish(spec.subject, f'{{"case": "{unique}"}}'.encode())
    await operator.close()


async def stored_in(js, stream: str, subject: str) -> list:
    """What `stream` holds on `subject`, whether or not the stream's own subjects take it in."""
    return [message async for message in read_to_end(js, Reading(stream, subject))]


def refused_subscribing(refused: list[str]) -> int:
    return sum("permissions violation for subscription" in r.lower() for r in refused)


async def test_upstream_publishes_an_approval_and_a_story_transition_and_gets_their_pubacks(secured, unique):
    url, passwords = secured
    upstream = await connect(as_user(url, UPSTREAM_USER, passwords))
    js = upstream.jetstream(timeout=5.0)
    try:
        deliberations = (await approve_plan(js, approval(unique), by=catalog.UPSTREAM)).deliberation_ids
        transition = StoryTransitioned(story_id=f"s-{unique}", from_state="DESIGN", to_state="BUILD",
                                       transitioned_by="alice")
        await EventPublisher(js, producer=catalog.UPSTREAM).publish(Outgoing(transition, event_id=f"t-{unique}"))
    finally:
        await upstream.close()

    assert len(deliberations) == 4


@pytest.mark.parametrize("user,specs", [(UPSTREAM_USER, ANSWERS), (SUBSCRIBER_USER, RESULTS_AND_DECISIONS)],
                         ids=[UPSTREAM_USER, SUBSCRIBER_USER])
async def test_a_client_follows_what_is_meant_for_it_live_and_in_order_from_the_log(secured, unique, user, specs):
    url, passwords = secured
    client = await connect(as_user(url, user, passwords))
    live: list[str] = []

    async def arrived(message) -> None:
        live.append(message.subject)

    try:
        for spec in specs:
            await client.subscribe(spec.subject, cb=arrived)
        await client.flush()
        await store(url, passwords, specs, unique)
        js = client.jetstream(timeout=5.0)
        replayed = [message.subject for spec in specs
                    async for message in read_to_end(js, Reading(ORCHESTRATION, spec.subject))]
        followed: list[str] = []
        async with asyncio.timeout(60):  # a guard against a hang, not a measure
            async for message in follow(js, [Reading(ORCHESTRATION, spec.subject, FIRST) for spec in specs]):
                followed.append(message.subject)
                if len(followed) == len(specs):
                    break
        await client.flush()
    finally:
        await client.close()

    subjects = sorted(spec.subject for spec in specs)
    assert sorted(live) == subjects
    assert sorted(replayed) == subjects
    assert sorted(followed) == subjects


async def test_a_clients_ordered_reading_goes_on_after_nats_py_re_creates_its_consumer(secured, unique):
    url, passwords = secured
    spec = catalog.DELIBERATION_COMPLETED
    subscriber = await connect(as_user(url, SUBSCRIBER_USER, passwords))
    js = subscriber.jetstream(timeout=5.0)
    try:
        await store(url, passwords, [spec], unique)
        async with read_log(js, Reading(ORCHESTRATION, spec.subject, FIRST)) as reader:
            first = await reader.next_batch(10, wait_s=5.0)
            # What nats-py does on a gap or missed heartbeats: a new consumer from the next sequence.
            ordered = reader._subscription._sub._jsi
            await ordered.reset_ordered_consumer(ordered._sseq + 1)
            await store(url, passwords, [spec], unique)
            second = await reader.next_batch(10, wait_s=10.0)
    finally:
        await subscriber.close()

    assert len(first) == 1
    assert len(second) == 1 and second[0].metadata.sequence.stream > first[0].metadata.sequence.stream


@pytest.mark.parametrize("user", [UPSTREAM_USER, SUBSCRIBER_USER])
async def test_a_client_may_not_pull_even_from_a_consumer_of_its_own(secured, unique, user):
    # A pull names only the stream and the consumer: were a client's own allowed, so would anyone's be.
    url, passwords = secured
    spec = catalog.DELIBERATION_COMPLETED
    await store(url, passwords, [spec], unique)
    pulled: list[str] = []

    async def pull(client) -> None:
        js = client.jetstream(timeout=5.0)
        await js.add_consumer(ORCHESTRATION, name=f"mine-{unique}", filter_subject=spec.subject,
                              ack_policy=AckPolicy.NONE, inactive_threshold=60.0)
        with contextlib.suppress(nats.errors.TimeoutError):  # the server drops the request: nothing comes
            fetched = await (await js.pull_subscribe_bind(f"mine-{unique}", ORCHESTRATION)).fetch(1, timeout=1.0)
            pulled.extend(message.subject for message in fetched)

    refused = await refusals(url, user, passwords, pull)

    assert pulled == []
    assert refused_publishing(refused) == {f"$js.api.consumer.msg.next.{ORCHESTRATION}.mine-{unique}".lower()}


async def test_a_client_may_have_the_server_deliver_its_answers_onto_a_subject_it_may_not_publish_to(
        secured, unique):
    """What nats-server does today (nats-io/nats-server#8274), recorded so that a fix shows up here.

    The subscriber publishes nothing itself, yet a push consumer of its own may deliver onto any
    subject: the server does not check the deliver_subject against the creator's publish grants. It
    delivers only while someone listens there; each message keeps its own subject, so a stream that
    captures the deliver subject stores a copy under the original subject, not as the event it forges.
    """
    url, passwords = secured
    answer, forged = catalog.DELIBERATION_COMPLETED, catalog.PLAN_APPROVED
    planning = stream_for_subject(forged.subject).name
    operator = await connect(as_user(url, OPERATOR, passwords))
    heard: list[str] = []

    async def listened(message) -> None:
        heard.append(message.subject)

    try:
        # Someone listening on the forged subject: an operator's tail, a client's core subscription.
        await operator.subscribe(forged.subject, cb=listened)
        await operator.flush()
        await store(url, passwords, [answer], unique)

        async def hijack(client) -> None:
            await client.jetstream(timeout=5.0).add_consumer(
                ORCHESTRATION, name=f"hijack-{unique}", filter_subject=answer.subject,
                deliver_subject=forged.subject, ack_policy=AckPolicy.NONE, inactive_threshold=60.0)

        refused = await refusals(url, SUBSCRIBER_USER, passwords, hijack)
        js = operator.jetstream(timeout=5.0)
        async with asyncio.timeout(60):  # a guard against a hang, not a measure
            while not (copies := await stored_in(js, planning, answer.subject)) or not heard:
                await asyncio.sleep(0.1)
        under_the_forged_subject = await stored_in(js, planning, forged.subject)
    finally:
        await operator.close()

    assert refused == []
    assert heard == [answer.subject]
    assert [message.data for message in copies] == [f'{{"case": "{unique}"}}'.encode()]
    assert under_the_forged_subject == []


async def test_upstream_publishes_nothing_but_its_ingress_events(secured):
    url, passwords = secured
    others = {spec.subject for spec in catalog.EVENTS if not spec.is_ingress}

    async def publish_each(client) -> None:
        for subject in sorted(others):
            await client.publish(subject, b"{}")

    refused = await refusals(url, UPSTREAM_USER, passwords, publish_each)

    assert refused_publishing(refused) == others


async def test_the_subscriber_publishes_no_event_at_all(secured, unique):
    url, passwords = secured
    everything = {spec.subject for spec in catalog.EVENTS}

    async def publish_each(client) -> None:
        with pytest.raises(nats.errors.TimeoutError):  # the server drops it, so no PubAck ever comes
            await approve_plan(client.jetstream(), approval(unique), by=catalog.UPSTREAM)
        for subject in sorted(everything):
            await client.publish(subject, b"{}")

    refused = await refusals(url, SUBSCRIBER_USER, passwords, publish_each)

    assert refused_publishing(refused) == everything


@pytest.mark.parametrize("user", [UPSTREAM_USER, SUBSCRIBER_USER])
async def test_a_client_cannot_read_agent_turns_or_the_mesh_s_inner_events(secured, unique, user):
    url, passwords = secured
    inner = [catalog.TURN_REQUESTED, catalog.DELIBERATION_REQUESTED]
    await store(url, passwords, inner, unique)
    read: list[str] = []

    async def eavesdrop(client) -> None:
        for spec in inner:
            await client.subscribe(spec.subject)
        js = client.jetstream(timeout=1.0)
        for reading in [*(Reading(stream_for_subject(spec.subject).name, spec.subject) for spec in inner),
                        Reading(ORCHESTRATION)]:
            with contextlib.suppress(nats.errors.TimeoutError):
                read.extend([message.subject async for message in read_to_end(js, reading)])

    refused = await refusals(url, user, passwords, eavesdrop)

    assert read == []
    assert refused_subscribing(refused) == len(inner)
    # Consumer names are the client's own; the server lowercases the subjects it names.
    creates = {re.sub(r"^(\$js\.api\.consumer\.create\.[a-z_]+)\.[^.]+", r"\1.NAME", subject)
               for subject in refused_publishing(refused)}
    assert f"$js.api.stream.info.{stream_for_subject(catalog.TURN_REQUESTED.subject).name.lower()}" in creates
    assert f"$js.api.consumer.create.{ORCHESTRATION.lower()}.NAME.{catalog.DELIBERATION_REQUESTED.subject}" in creates
    assert f"$js.api.consumer.create.{ORCHESTRATION.lower()}.NAME" in creates


@pytest.mark.parametrize("user", [UPSTREAM_USER, SUBSCRIBER_USER])
async def test_a_client_may_neither_ack_nor_touch_a_declared_durable(secured, user):
    url, passwords = secured
    durable = next(spec for spec in CONSUMERS if spec.stream == ORCHESTRATION)
    answer = catalog.DELIBERATION_COMPLETED.subject

    async def meddle(client) -> None:
        js = client.jetstream(timeout=1.0)
        for action in (js.add_consumer(ORCHESTRATION, durable_name="mine", filter_subject=answer),
                       js.add_consumer(ORCHESTRATION, name=durable.durable, durable_name=durable.durable,
                                       filter_subject=answer),
                       js.delete_consumer(durable.stream, durable.durable)):
            with contextlib.suppress(nats.errors.Error):
                await action
        with contextlib.suppress(nats.errors.Error):
            await (await js.pull_subscribe_bind(durable.durable, durable.stream)).fetch(1, timeout=1.0)
        await client.publish(f"$JS.ACK.{durable.stream}.{durable.durable}.1.7.7.1764676800000000000.0", b"")

    refused = await refusals(url, user, passwords, meddle)

    prefix = f"$JS.API.CONSUMER.{{}}.{ORCHESTRATION}".lower()
    assert refused_publishing(refused) == {
        f"{prefix.format('durable.create')}.mine",
        f"{prefix.format('create')}.{durable.durable}.{answer}".lower(),
        f"{prefix.format('delete')}.{durable.durable}".lower(),
        f"{prefix.format('msg.next')}.{durable.durable}".lower(),
        f"$js.ack.{durable.stream}.{durable.durable}.1.7.7.1764676800000000000.0".lower()}


async def test_fleet_up_with_auth_tells_each_client_where_its_password_is(tmp_path, unique):
    # Only NATS is started: the other servers are "external", and no service runs.
    elsewhere = {"FLEET_VALKEY_URL": "redis://127.0.0.1:1", "FLEET_GRAPH_URI": "falkor://127.0.0.1:1",
                 "FLEET_LLM_BASE_URL": "http://127.0.0.1:1/v1", "RAY_ADDRESS": "127.0.0.1:1"}
    stack = EmbeddedStack(tmp_path / "fleet", env=elsewhere, report=lambda line: None, services=(), auth=True)
    await stack.start()
    try:
        written = read_endpoints(stack.data_dir)
        clients = {user: Settings(data_dir=stack.data_dir, nats_url=written["nats_url"], nats_user=user,
                                  nats_password=Path(written[password_file_endpoint(user)]).read_text())
                   for user in (UPSTREAM_USER, SUBSCRIBER_USER)}
        operator = await connect(load_settings({"FLEET_DATA_DIR": str(stack.data_dir)}))
        await operator.jetstream().publish(catalog.PLAN_ACCEPTED.subject, b"{}")
        await operator.close()
        upstream = await connect(clients[UPSTREAM_USER])
        subscriber = await connect(clients[SUBSCRIBER_USER])
        try:
            published = await approve_plan(upstream.jetstream(timeout=5.0), approval(unique), by=catalog.UPSTREAM)
            answers = [message async for message in read_to_end(subscriber.jetstream(timeout=5.0),
                                                                Reading(ORCHESTRATION, catalog.PLAN_ACCEPTED.subject))]
        finally:
            await upstream.close()
            await subscriber.close()
    finally:
        await stack.stop()

    assert published and len(answers) == 1
    assert {clients[user].inbox_prefix for user in clients} == {"_INBOX.upstream", "_INBOX.subscriber"}
