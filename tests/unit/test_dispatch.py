"""Dispatch asks every member of the role's council, the same way on every redelivery."""

import datetime as dt

from contracts import catalog
from contracts.events import DeliberationRef, DeliberationRequested, PlannedTask, ProposalRequested, Role
from services.dispatch.domain import CouncilPolicy, claim_for, council_for, start

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
REQUEST = DeliberationRequested(
    deliberation=DeliberationRef(deliberation_id="d-1", story_id="s", plan_id="p", task_id="t", role=Role.DEVOPS),
    task=PlannedTask(task_id="t", title="Ship it"),
    approved_by="alice",
    rubric={"safety": "no downtime"},
)


def test_a_council_has_the_configured_number_of_agents_named_after_the_role():
    assert council_for(Role.DEVOPS, 3) == ["devops-1", "devops-2", "devops-3"]
    assert council_for(Role.QA, 5)[-1] == "qa-5"


def test_starting_asks_each_council_member_once_and_announces_the_start():
    policy = CouncilPolicy(size=3, temperature=0.5, max_tokens=100)
    events = start(REQUEST, claim_for(7, Role.DEVOPS, policy, NOW), policy)
    assert catalog.spec_for_payload(events[0].payload) is catalog.DELIBERATION_STARTED
    asks = [e.payload for e in events[1:]]
    assert all(isinstance(a, ProposalRequested) for a in asks)
    assert [a.agent.agent_id for a in asks] == ["devops-1", "devops-2", "devops-3"]
    assert all(a.council == ["devops-1", "devops-2", "devops-3"] for a in asks)
    assert all(a.agent.temperature == 0.5 and a.agent.max_tokens == 100 for a in asks)
    assert all(a.rubric == {"safety": "no downtime"} and a.started_at == NOW for a in asks)


def test_event_ids_name_the_deliberation_and_agent_never_when_or_by_which_message_it_started():
    policy = CouncilPolicy()
    early = start(REQUEST, claim_for(7, Role.DEVOPS, policy, NOW), policy)
    late = start(REQUEST, claim_for(9, Role.DEVOPS, policy, NOW + dt.timedelta(hours=2)), policy)
    assert [e.event_id for e in early] == [e.event_id for e in late]
    assert len({e.event_id for e in early}) == 4
