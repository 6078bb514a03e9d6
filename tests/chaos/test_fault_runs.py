"""The fault runs, short: a few approvals through a representative fault of each kind, on the real SmolLM2
(llama.cpp behind the stand-in in proxy mode, which only injects the LLM fault); every invariant holds.

The full run (`just chaos`: 50 approvals through every fault) is in docs/reliability.md.
"""

import pytest

from contracts.events import Role
from tests.chaos.faults import chosen
from tests.chaos.run import EMBEDDED, Options, run

pytestmark = pytest.mark.e2e

# One of each kind: the stateful orchestrator killed, the event log's server restarted, the LLM failing,
# the read models' server restarted. The other kills are left to the full run: a turn the agents held
# comes back only after its 150 s ack wait, and tests/e2e kills the projection mid-deliberation.
CI_FAULTS = ["kill-collector", "nats-restart", "llm-http500", "store-restart"]


async def test_every_invariant_holds_through_a_fault_of_each_kind(tmp_path_factory):
    # Councils of two and no critique round: five LLM calls a deliberation keep this to minutes on 2 cores.
    options = Options(approvals=2, faults=chosen(CI_FAULTS), llm=EMBEDDED, roles=(Role.DEV,), agents=2,
                      critique_rounds=0, spread_s=4.0, result_timeout_s=300.0,
                      data_dir=tmp_path_factory.mktemp("chaos"))
    runs = await run(options)

    assert [r.fault for r in runs] == CI_FAULTS
    assert {r.fault: r.observed.get("not_healed") for r in runs if not r.healed} == {}
    broken = {f"{r.fault} / {c.name}": (c.summary, c.evidence) for r in runs for c in r.checks if not c.held}
    assert broken == {}
    by_fault = {r.fault: r for r in runs}
    # The faults did bite: the supervisor restarted what was killed, and the LLM refused requests meanwhile.
    assert by_fault["kill-collector"].observed["service_restarts"]["collector"] == 1
    assert by_fault["llm-http500"].observed["requests_while_faulty"] > 0
