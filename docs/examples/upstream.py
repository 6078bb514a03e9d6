"""Approve a plan as the `upstream` NATS user, then follow what becomes of it as the `subscriber` user.

    NATS_URL=nats://127.0.0.1:4222 NATS_UPSTREAM_PASSWORD=... NATS_SUBSCRIBER_PASSWORD=... \
        python docs/examples/upstream.py docs/examples/plan.json

It prints one line per answer: accepted (or rejected), each deliberation's result, the plan's conclusion.
Exit status: 0 when every deliberation completed, 1 otherwise. docs/clients.md explains each step.
"""

import asyncio
import os
import sys
from pathlib import Path

import nats

from contracts.events import DeliberationCompleted, DeliberationFailed, PlanAccepted, PlanConcluded, PlanRejected
from services.planning.client import approval_event_id, approve_plan, deliberation_ids, follow_plan
from services.planning.domain import read_approval


async def connect_as(user: str, password: str | None) -> nats.NATS:
    # Each user may read replies only under its own inbox prefix. No password: a NATS without users
    # (`fleet up` without --auth).
    return await nats.connect(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"), user=user if password else None,
                              password=password, inbox_prefix=f"_INBOX.{user}".encode())


async def main(path: str) -> int:
    approval = read_approval(Path(path).read_bytes())  # the contract's checks, before anything is sent
    upstream = await connect_as("upstream", os.environ.get("NATS_UPSTREAM_PASSWORD"))
    subscriber = await connect_as("subscriber", os.environ.get("NATS_SUBSCRIBER_PASSWORD"))
    try:
        print(f"publishing {approval_event_id(approval)}: deliberations {', '.join(deliberation_ids(approval))}",
              flush=True)
        sent = await approve_plan(upstream.jetstream(), approval, by="python-example")
        timeout_s = float(os.environ.get("FOLLOW_TIMEOUT_S", "3600"))
        try:
            async with asyncio.timeout(timeout_s):
                async for update in follow_plan(subscriber.jetstream(), sent):
                    match update:
                        case PlanAccepted():
                            print(f"accepted {len(update.deliberations)}", flush=True)
                        case PlanRejected():
                            print(f"rejected {'; '.join(update.reasons)}", flush=True)
                            return 1
                        case DeliberationCompleted():
                            print(f"completed {update.deliberation_id} winner {update.winner.agent_id}", flush=True)
                        case DeliberationFailed():
                            print(f"failed {update.deliberation_id} {update.reason}", flush=True)
                        case PlanConcluded():
                            print(f"concluded {update.completed} completed {update.failed} not", flush=True)
                            return 0 if update.failed == 0 else 1
        except TimeoutError:
            print(f"timeout: no conclusion within {timeout_s:g}s", flush=True)
        return 1
    finally:
        await upstream.close()
        await subscriber.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
