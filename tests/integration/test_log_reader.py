"""The one log reader: every message of a stream, in order, by either path, from wherever it is asked to start."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from services.mesh.decoding import stored_position, stream_of
from services.mesh.log_reader import NEW, Reading, Start, fast_read_applies, follow, read_log, read_to_end
from streams.definitions import AGENT, ORCHESTRATION

RAW = f"{ORCHESTRATION.subjects[0][:-1]}reader.raw"


def test_the_fast_path_applies_only_to_the_nats_py_minor_version_it_knows():
    assert fast_read_applies("2.16.0") and fast_read_applies("2.16.7")
    assert not fast_read_applies("2.17.0") and not fast_read_applies("3.16.0") and not fast_read_applies("2.1.6")


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "plain path"])
async def test_a_long_stream_is_read_whole_and_in_order_in_full_batches(empty_log, fast):
    """About 20 MB: enough that the server waits for flow-control replies. The reader must send them itself:
    nats-py's task that sends any still owed, every 0.25 s, is stopped here, so a reader that left them
    to it would stall the stream and never catch up."""
    _, js = empty_log
    bodies = [f"{index:06d}".encode() * 1_700 for index in range(2_000)]
    for body in bodies:
        await js.publish_async(RAW, body)
    await js.publish_async_completed()

    batches = []
    async with read_log(js, Reading(ORCHESTRATION.name), fast=fast) as reader:
        reader._subscription._sub._jsi._fctask.cancel()
        for _ in range(12):
            if reader.caught_up:
                break
            batches.append(await reader.next_batch(500, wait_s=2.0))
    assert reader.caught_up, f"stalled after {sum(len(batch) for batch in batches)} of 2000 messages"

    if fast:
        assert [len(batch) for batch in batches] == [500, 500, 500, 500]
    taken = [message for batch in batches for message in batch]
    assert [stored_position(message)[0] for message in taken] == list(range(1, 2_001))
    assert [message.data for message in taken] == bodies
    assert [stored_position(message)[1] for message in taken] == [message.metadata.timestamp for message in taken]
    assert {stream_of(message) for message in taken} == {ORCHESTRATION.name}


async def test_reading_to_the_end_starts_at_a_sequence_or_a_time_and_keeps_to_its_subjects(empty_log):
    _, js = empty_log
    for index in range(10):
        await js.publish(RAW, f"early {index}".encode())
    await asyncio.sleep(0.05)
    between = dt.datetime.now(dt.UTC)
    await asyncio.sleep(0.05)
    for index in range(5):
        await js.publish(RAW, f"late {index}".encode())
        await js.publish(f"{ORCHESTRATION.subjects[0][:-1]}reader.other", b"other")

    async def read(reading: Reading) -> list[bytes]:
        return [message.data async for message in read_to_end(js, reading, batch=3)]

    assert await read(Reading(ORCHESTRATION.name, RAW, Start(sequence=9))) == [
        b"early 8", b"early 9", b"late 0", b"late 1", b"late 2", b"late 3", b"late 4"]
    assert await read(Reading(ORCHESTRATION.name, RAW, Start(time=between))) == [f"late {i}".encode() for i in range(5)]
    assert await read(Reading(ORCHESTRATION.name, "orchestration.nothing.here.v1")) == []
    assert await read(Reading(AGENT.name)) == []


async def test_following_gives_only_what_is_stored_from_now_on_from_every_stream_it_follows(empty_log):
    _, js = empty_log
    await js.publish(RAW, b"before")
    agent_subject = f"{AGENT.subjects[0][:-1]}reader.raw"
    seen: list[bytes] = []

    async def take_four() -> None:
        async for message in follow(js, [Reading(ORCHESTRATION.name, RAW, NEW), Reading(AGENT.name, start=NEW)]):
            seen.append(message.data)
            if len(seen) == 4:
                return

    following = asyncio.create_task(take_four())
    await asyncio.sleep(0.5)  # the ordered consumers exist before anything is published
    for index in range(2):
        await js.publish(RAW, f"orchestration {index}".encode())
        await js.publish(agent_subject, f"agent {index}".encode())
    await asyncio.wait_for(following, timeout=15)

    assert sorted(seen) == [b"agent 0", b"agent 1", b"orchestration 0", b"orchestration 1"]
    assert seen.index(b"orchestration 0") < seen.index(b"orchestration 1")
    assert seen.index(b"agent 0") < seen.index(b"agent 1")

