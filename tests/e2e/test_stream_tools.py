"""The stream tools on the running mesh: a finished deliberation traced end to end, and every durable's lag."""

import json

import pytest

from streams.definitions import CONSUMERS
from tests.e2e.flows import a_finished_deliberation
from tests.e2e.flows import fleet_on as fleet

pytestmark = pytest.mark.e2e


async def test_a_finished_deliberation_is_one_causal_tree_and_one_trace_from_approval_to_result(js, mesh):
    stack, _ = mesh
    deliberation = await a_finished_deliberation(js)

    traced = json.loads(await fleet(stack, "trace", deliberation, "--json"))

    events = traced["events"]
    subjects = [e["subject"] for e in events]
    assert events[0]["depth"] == 0 and subjects[0] == "planning.plan.approved.v1"
    assert [e for e in events if e["depth"] == 0] == [events[0]], "every other event hangs under the approval"
    assert {"orchestration.deliberation.started.v1", "agent.turn.completed.v1",
            "orchestration.decision.made.v1", "orchestration.deliberation.completed.v1"} <= set(subjects)
    assert len(traced["trace_ids"]) == 1


async def test_streams_status_lists_every_declared_durable_on_the_mesh(mesh):
    stack, _ = mesh

    status = json.loads(await fleet(stack, "streams", "status", "--json"))

    declared = [c for c in status["consumers"] if c["declared"]]
    assert {c["name"] for c in declared} == {spec.durable for spec in CONSUMERS}
    assert all(c["present"] for c in declared)
    assert all(isinstance(c["pending"], int) and c["pending"] >= 0 for c in declared), "each shows its lag"
    table = (await fleet(stack, "streams", "status")).splitlines()
    for durable in declared:
        assert any(durable["name"] in line for line in table), f"{durable['name']} is in the table"
