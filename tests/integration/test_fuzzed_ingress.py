"""The planning service under fuzzed ingress, on a real JetStream.

Every malformed approval is dead-lettered at once with a reason that names its flaw, and its original
headers and body; approvals sent in between still become their requests, and the service keeps
consuming. A message over NATS's 1 MiB payload limit never reaches the service: its publisher is refused.
"""

import msgspec
import nats
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from nats.errors import MaxPayloadError

from contracts import catalog
from contracts.envelope import MSG_ID
from contracts.events import PlanApproved, PlannedTask, Role
from services.mesh.deadletters import MAX_INLINE_BODY
from services.planning.app import SERVICE, wire
from tests.malformed import FLAWS, Ingress
from tests.strategies import MiB, approvals
from tests.support import body_of, decode, read_stream, running_service, wait_for, wait_until_idle

pytestmark = pytest.mark.integration

CASE = "Fuzz-Case"


def generated(strategy, count: int) -> list:
    """`count` examples of `strategy`, the same on every run: drawn by a seeded @given function that keeps them."""
    drawn = []

    @seed(7)
    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def keep(example):
        drawn.append(example)

    keep()
    return drawn[:count]


def as_sent(message: Ingress, case: str) -> dict[str, str]:
    """The case's headers, tagged; a message id made unique, so JetStream de-duplicates no case away."""
    unique_ids = {name: f"fuzz-{case}" for name, value in message.headers.items()
                  if name.lower() == MSG_ID.lower() and value}
    return {**message.headers, **unique_ids, CASE: case}


def crowded_brief(unique: str) -> Ingress:
    """Valid types, 1,500 bytes under 1 MiB: one deliberation request for it would have been a few hundred
    bytes under the payload limit, its headers over, and the server would have dropped planning's connection."""
    approval = PlanApproved(story_id=f"s-{unique}", plan_id=f"p-{unique}-big", approved_by="alice",
                            roles=[Role.DEV], tasks=[PlannedTask(task_id="t-1", title="Ship it")], constraints=[])
    room = MiB - 1_500 - len(catalog.encode(approval)) - len(b'""') * 18 - len(b",") * 17
    chunks = [room // 18] * 17 + [room - room // 18 * 17]
    approval = msgspec.structs.replace(approval, constraints=["x" * n for n in chunks])
    assert len(catalog.encode(approval)) == MiB - 1_500
    return Ingress("a crowded brief", catalog.PLAN_APPROVED.subject, {MSG_ID: "big"}, catalog.encode(approval),
                   ("over the 262,144 a deliberation carries",))


def of_plans(plan_ids: set[str]):
    return lambda message: decode(message).deliberation.plan_id in plan_ids


async def test_fuzzed_approvals_are_dead_lettered_one_by_one_while_valid_approvals_complete(js, nats_url, unique):
    # Six cases of each flaw. A huge body over the payload limit cannot be sent (see below); JSON nested too
    # deeply never reaches the service's handler (see the expected failure at the end).
    malformed = [m for flaw in FLAWS.values() for m in generated(flaw, 6) if m.fits and m.flaw != "nested too deeply"]
    malformed.append(crowded_brief(unique))
    valid = [msgspec.structs.replace(a, story_id=f"s-{unique}", plan_id=f"p-{unique}-{i}")
             for i, a in enumerate(generated(approvals, 10))]
    async with running_service(SERVICE, nats_url, wire):
        for i, message in enumerate(malformed):
            await js.publish(message.subject, message.body, headers=as_sent(message, f"{unique}-{i}"))
            if i % 5 == 0 and valid[i // 5 :]:
                approval = valid[i // 5]
                await js.publish(catalog.PLAN_APPROVED.subject, body_of(approval), headers={MSG_ID: approval.plan_id})
        letters = {decode(m).original_headers[CASE]: decode(m) for m in await wait_for(
            js, catalog.MESSAGE_REJECTED.subject,
            lambda m: decode(m).original_headers.get(CASE, "").startswith(f"{unique}-"), len(malformed))}
        wanted = sum(max(len(a.tasks), 1) * len(a.roles) for a in valid)
        requests = await wait_for(js, catalog.DELIBERATION_REQUESTED.subject, of_plans({a.plan_id for a in valid}),
                                  wanted)
        # Still consuming, and nothing left unacknowledged: no message is stuck being redelivered.
        after = PlanApproved(story_id=f"s-{unique}", plan_id=f"p-{unique}-after", approved_by="alice",
                             roles=[Role.QA], tasks=[])
        await js.publish(catalog.PLAN_APPROVED.subject, body_of(after), headers={MSG_ID: after.plan_id})
        await wait_for(js, catalog.DELIBERATION_REQUESTED.subject, of_plans({after.plan_id}), 1)
        await wait_until_idle(js, "PLANNING", ["planning-plan-approvals"])
    assert len(letters) == len(malformed) and len(requests) == wanted
    for i, message in enumerate(malformed):
        letter, sent = letters[f"{unique}-{i}"], as_sent(message, f"{unique}-{i}")
        assert all(part in letter.reason for part in message.says), f"{message.flaw}: {letter.reason}"
        assert letter.deliveries == 1, f"{message.flaw}: dead-lettered only after {letter.deliveries} deliveries"
        assert letter.original_headers == sent and letter.original_subject == message.subject
        if len(message.body) <= MAX_INLINE_BODY:
            assert letter.original_body == message.body
        else:
            assert letter.original_body_omitted and letter.original_body == b""


async def test_a_body_over_the_payload_limit_is_refused_to_its_publisher_and_never_stored(js, nats_url, unique):
    with pytest.raises(MaxPayloadError):
        await js.publish(catalog.PLAN_APPROVED.subject, b"x" * (MiB + 1), headers={MSG_ID: f"over-{unique}"})
    # A body under the limit whose headers take it over: the server closes the publisher's connection.
    publisher = await nats.connect(nats_url, allow_reconnect=False)
    with pytest.raises(Exception):  # noqa: B017 - a timeout or a closed connection, depending on the race
        await publisher.jetstream().publish(catalog.PLAN_APPROVED.subject, b"x" * (MiB - 16),
                                            headers={MSG_ID: f"over-{unique}"}, timeout=2)
    assert not publisher.is_connected
    await publisher.close()
    stored = await read_stream(js, catalog.PLAN_APPROVED.subject)
    assert [m for m in stored if (m.headers or {}).get(MSG_ID) == f"over-{unique}"] == []


# FastStream decodes every body before the handler runs, as JSON or as the content-type says, unless the
# subscriber gives it a decoder. What that decoding raised kept the handler from running: the message was
# neither acknowledged nor dead-lettered, and was redelivered every ack wait, forever. The consumer now
# takes the body as bytes and decodes it itself.
async def test_a_body_that_fails_before_the_handler_is_dead_lettered_too(empty_log, unique):
    # A server of its own: the poison stays unacknowledged, and would keep a shared durable busy.
    nats_url, js = empty_log
    poison = {
        "nested too deeply": (b'{"note":' + b"[" * 5_000 + b"]" * 5_000 + b"}", {}),
        "not JSON, said to be JSON": (b"not json", {"content-type": "application/json"}),
        "not UTF-8, said to be text": (b'{"story_id": "\xff"}', {"content-type": "text/plain"}),
    }
    async with running_service(SERVICE, nats_url, wire):
        for i, (body, headers) in enumerate(poison.values()):
            await js.publish(catalog.PLAN_APPROVED.subject, body,
                             headers={MSG_ID: f"poison-{unique}-{i}", CASE: f"{unique}-{i}", **headers})
        await wait_for(js, catalog.MESSAGE_REJECTED.subject,
                       lambda m: decode(m).original_headers.get(CASE, "").startswith(f"{unique}-"), len(poison),
                       timeout_s=10)
