"""Councils are configuration as events: each agent a distinct voice, the latest event per role in force."""

import pytest

from contracts.events import CouncilCreated, CouncilDeleted, Role
from services.councils.domain import architect_of, current_councils, default_councils, new_council


def created(role: Role, size: int = 3) -> CouncilCreated:
    return CouncilCreated(council=new_council(role, size), created_by="alice")


def deleted(role: Role) -> CouncilDeleted:
    return CouncilDeleted(role=role, deleted_by="alice")


def test_a_councils_agents_are_named_after_its_role():
    council = new_council(Role.DEVOPS, 3)
    assert council.role == Role.DEVOPS
    assert [a.agent_id for a in council.agents] == ["devops-1", "devops-2", "devops-3"]
    assert {a.role for a in council.agents} == {Role.DEVOPS}


def test_each_agent_has_its_own_persona_temperature_and_seed():
    agents = new_council(Role.DEV, 3).agents
    assert len({a.persona for a in agents}) == 3
    assert len({a.temperature for a in agents}) == 3
    assert len({a.seed for a in agents}) == 3


def test_agents_beyond_the_third_reuse_a_voice_with_a_seed_of_their_own():
    agents = new_council(Role.DEV, 5).agents
    assert agents[3].persona == agents[0].persona
    assert len({a.seed for a in agents}) == 5


def test_a_council_may_name_the_model_of_its_agents_or_leave_it_to_the_agents_service():
    assert {a.model for a in new_council(Role.QA, 3, model="qwen-7b").agents} == {"qwen-7b"}
    assert {a.model for a in new_council(Role.QA, 3).agents} == {None}


@pytest.mark.parametrize(("size", "quorum"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)])
def test_the_quorum_defaults_to_a_majority(size, quorum):
    assert new_council(Role.DEV, size).protocol.quorum == quorum


@pytest.mark.parametrize(("size", "quorum"), [(3, 0), (3, 4), (1, 2)])
def test_an_impossible_quorum_is_refused(size, quorum):
    with pytest.raises(ValueError, match=f"quorum {quorum} is impossible for a council of {size}"):
        new_council(Role.DEV, size, quorum=quorum)


def test_the_protocol_is_taken_as_given():
    protocol = new_council(Role.DEV, 5, critique_rounds=2, quorum=5, top_k=2, phase_deadline_s=60).protocol
    assert (protocol.critique_rounds, protocol.quorum, protocol.top_k, protocol.phase_deadline_s) == (2, 5, 2, 60)


def test_a_fresh_mesh_has_a_council_of_three_for_every_role():
    councils = default_councils()
    assert [c.role for c in councils] == list(Role)
    assert {len(c.agents) for c in councils} == {3}


def test_without_events_there_are_no_councils():
    assert current_councils([]) == {}


def test_the_latest_event_per_role_wins():
    councils = current_councils([created(Role.DEV, 3), created(Role.QA), created(Role.DEV, 5)])
    assert set(councils) == {Role.DEV, Role.QA}
    assert len(councils[Role.DEV].agents) == 5


def test_a_deleted_council_is_gone_until_it_is_created_again():
    assert Role.DEV not in current_councils([created(Role.DEV), deleted(Role.DEV)])
    assert len(current_councils([created(Role.DEV), deleted(Role.DEV), created(Role.DEV, 4)])[Role.DEV].agents) == 4


def test_deleting_a_role_that_has_no_council_changes_nothing():
    assert set(current_councils([created(Role.QA), deleted(Role.DEV)])) == {Role.QA}


def test_the_architect_is_the_first_agent_of_the_architect_council():
    councils = current_councils([created(Role.ARCHITECT, 3), created(Role.DEV)])
    assert architect_of(councils) == councils[Role.ARCHITECT].agents[0]
    assert architect_of(councils).agent_id == "architect-1"


def test_without_an_architect_council_there_is_no_architect():
    assert architect_of(current_councils([created(Role.DEV)])) is None
