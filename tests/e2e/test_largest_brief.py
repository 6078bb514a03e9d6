"""A brief at the largest size ingress accepts goes through the whole mesh, as `fleet up` runs it, and ends in
one result. The LLM is the stand-in (`bench/llm_standin.py`): what is under test is the mesh carrying the brief
(approval, request, start, nine turn requests, the collector's stored state), not a model reading 256 KiB."""

import msgspec
import pytest

from bench.deliberating import standin_mesh
from contracts import catalog
from contracts.events import Brief, PlanApproved, PlannedTask, Role
from services.planning.client import Results, approve_plan
from services.planning.domain import DEFAULT_RUBRIC, MAX_BRIEF_BYTES
from tests.support import decode, read_stream

pytestmark = pytest.mark.e2e


def approval_with_largest_brief(unique: str) -> PlanApproved:
    """One task whose brief (task, rubric, constraints) is exactly MAX_BRIEF_BYTES as JSON."""
    task = PlannedTask(task_id="t-1", title="Migrate the billing ledger")
    approval = PlanApproved(story_id=f"s-{unique}", plan_id=f"p-{unique}", approved_by="alice", roles=[Role.DEV],
                            tasks=[task], constraints=[])

    def size(constraints: list[str]) -> int:
        return len(msgspec.json.encode(Brief(task=task, rubric=DEFAULT_RUBRIC, constraints=constraints)))

    chunks = [60_000] * 4
    chunks.append(MAX_BRIEF_BYTES - size(["x" * n for n in chunks] + [""]))
    constraints = ["x" * n for n in chunks]
    assert size(constraints) == MAX_BRIEF_BYTES
    return msgspec.structs.replace(approval, constraints=constraints)


async def test_a_brief_at_the_largest_accepted_size_ends_in_one_result(tmp_path, unique):
    approval = approval_with_largest_brief(unique)
    async with standin_mesh(tmp_path) as mesh:
        results = Results()
        await results.subscribe(mesh.client)
        [deliberation] = (await approve_plan(mesh.js, approval, by="alice")).deliberation_ids
        outcome = await results.wait(deliberation, timeout_s=240)
        await results.close()
        stored = [m for subject in (catalog.DELIBERATION_COMPLETED.subject, catalog.DELIBERATION_FAILED.subject)
                  for m in await read_stream(mesh.js, subject) if decode(m).aggregate_id() == deliberation]
        requests = [m for m in await read_stream(mesh.js, catalog.TURN_REQUESTED.subject)
                    if decode(m).aggregate_id() == deliberation]

    assert outcome == "completed", [decode(m) for m in stored]
    assert len(stored) == 1
    # Every turn request carried the whole brief, not a cut one.
    assert requests and all(len(msgspec.json.encode(decode(m).brief)) == MAX_BRIEF_BYTES for m in requests)
