"""The fault runs, short: a few approvals through a representative fault of each kind, on the real SmolLM2
(llama.cpp behind the stand-in in proxy mode, which only injects the LLM fault); every invariant holds.

The full run (`just chaos`: 50 approvals through every fault) is in docs/reliability.md.
"""

import pytest

from contracts.events import Role
from services.mesh.settings import Settings
from tests.chaos.faults import chosen
from tests.chaos.run import EMBEDDED, SERVICES_UNDER_TEST, Options, run

pytestmark = pytest.mark.e2e

# One of each kind: the stateful orchestrator killed, the event log's server killed (SIGKILL) and started
# again, the LLM failing, the read models' server restarted. The other kills are left to the full run: a
# turn the agents held comes back only after its 150 s ack wait, and tests/e2e kills the projection
# mid-deliberation.
CI_FAULTS = ["kill-collector", "nats-kill", "llm-http500", "store-restart"]
# The faults that are not the LLM's: they may delay a deliberation, never fail it.
MESH_FAULTS = ["kill-collector", "nats-kill", "store-restart"]
# One task and one role an approval: one deliberation each.
APPROVALS = 2


async def test_every_invariant_holds_through_a_fault_of_each_kind(tmp_path_factory):
    # Councils of two and no critique round: five LLM calls a deliberation keep this to minutes on 2 cores.
    # The agents wait for the LLM as long as they do by default (60 s): on a CI machine shared with other
    # jobs a SmolLM2 call can take over the run's usual 20 s, and a turn failed for that is not the fault's.
    options = Options(approvals=APPROVALS, faults=chosen(CI_FAULTS), llm=EMBEDDED, roles=(Role.DEV,), agents=2,
                      critique_rounds=0, spread_s=4.0, result_timeout_s=300.0, llm_timeout=Settings.llm_timeout_s,
                      data_dir=tmp_path_factory.mktemp("chaos"))
    runs = await run(options)

    assert [r.fault for r in runs] == CI_FAULTS
    assert {r.fault: r.observed.get("not_healed") for r in runs if not r.healed} == {}
    broken = {f"{r.fault} / {c.name}": (c.summary, c.evidence) for r in runs for c in r.checks if not c.held}
    assert broken == {}
    by_fault = {r.fault: r for r in runs}
    # Through a killed service, a killed NATS and a restarted store, every deliberation completed.
    ended = {name: (by_fault[name].deliberations, by_fault[name].outcomes.completed, by_fault[name].outcomes.failed)
             for name in MESH_FAULTS}
    assert ended == dict.fromkeys(MESH_FAULTS, (APPROVALS, APPROVALS, 0)), {
        name: by_fault[name].outcomes.failure_reasons for name in MESH_FAULTS}
    # The faults did bite: the kill met messages the collector held unacknowledged, the supervisor
    # restarted it, and the LLM refused requests meanwhile.
    killed = by_fault["kill-collector"].observed
    assert killed["unacked_at_kill"] > 0, killed["work_at_kill"]
    assert killed["service_restarts"] == {"collector": 1}
    assert by_fault["llm-http500"].observed["requests_while_faulty"] > 0
    # nats-server killed outright while the services held work lost no message it had acknowledged.
    nats = by_fault["nats-kill"].observed
    assert nats["unacked_at_kill"] > 0 and nats["lost"] == {}, nats


# On `fleet up --cluster`, what production runs: the busiest stream's leader lost, a collector replica holding
# work killed, the projection replica holding the leases killed, every replica restarted in turn, and a Ray
# worker node lost with its actors.
CLUSTER_CI_FAULTS = ["nats-leader-kill", "kill-collector-replica", "kill-projection-replica", "rolling-restart",
                     "ray-node-kill"]


async def test_every_invariant_holds_on_the_cluster_through_node_loss_and_a_rollout(tmp_path_factory):
    options = Options(approvals=APPROVALS, faults=chosen(CLUSTER_CI_FAULTS, cluster=True), llm=EMBEDDED,
                      roles=(Role.DEV,), agents=2, critique_rounds=0, spread_s=4.0, result_timeout_s=400.0,
                      llm_timeout=Settings.llm_timeout_s, data_dir=tmp_path_factory.mktemp("chaos-cluster"),
                      cluster=True)
    runs = await run(options)

    assert [r.fault for r in runs] == CLUSTER_CI_FAULTS
    assert {r.fault: r.observed.get("not_healed") for r in runs if not r.healed} == {}
    broken = {f"{r.fault} / {c.name}": (c.summary, c.evidence) for r in runs for c in r.checks if not c.held}
    assert broken == {}
    # None of these faults is the LLM's: each may delay a deliberation, never fail it.
    ended = {r.fault: (r.deliberations, r.outcomes.completed, r.outcomes.failed) for r in runs}
    assert ended == dict.fromkeys(CLUSTER_CI_FAULTS, (APPROVALS, APPROVALS, 0)), {
        r.fault: r.outcomes.failure_reasons for r in runs}
    by_fault = {r.fault: r.observed for r in runs}
    # The faults bit: the leader's node went while work was unacknowledged and another node took over with
    # nothing acknowledged lost; the killed collector replica was the one holding messages; every replica
    # was restarted; the lost Ray node hosted actors.
    leader = by_fault["nats-leader-kill"]
    assert leader["unacked_at_kill"] > 0 and leader["lost"] == {} and leader["new_leader"] != leader["leader"], leader
    replica = by_fault["kill-collector-replica"]
    assert replica["unacked_at_kill"] > 0 and replica["killed"].startswith("collector-"), replica
    assert replica["service_restarts"] == {replica["killed"]: 1}
    # The projection replica killed was the one writing: it held the read models' leases.
    projection = by_fault["kill-projection-replica"]
    assert projection["held_by_killed"] > 0 and projection["killed"].startswith("projection-"), projection
    assert set(by_fault["rolling-restart"]["back_after_s"]) == {
        f"{name}-{i}" for name in SERVICES_UNDER_TEST for i in (1, 2)}
    assert by_fault["ray-node-kill"]["actors_on_node"] > 0
