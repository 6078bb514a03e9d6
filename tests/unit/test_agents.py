"""Agents prompt by role and report either the LLM's proposal or a typed error, never a stand-in."""

import datetime as dt

import pytest

from contracts.events import (
    AgentProfile,
    DeliberationRef,
    PlannedTask,
    ProposalCompleted,
    ProposalFailed,
    ProposalRequested,
    Role,
)
from services.agents.adapters.llm import LlmBadResponse, parse_completion
from services.agents.domain import ROLE_FOCUS, Completion, LlmFailure, chat_request, outcome, system_prompt

REQUEST = ProposalRequested(
    deliberation=DeliberationRef(deliberation_id="d-1", story_id="s", plan_id="p", task_id="t", role=Role.QA),
    agent=AgentProfile(agent_id="qa-2", role=Role.QA, temperature=0.9, max_tokens=128),
    council=["qa-1", "qa-2", "qa-3"],
    task=PlannedTask(task_id="t", title="Harden the parser", description="It crashes on empty input."),
    rubric={"coverage": "edge cases named"},
    constraints=["no new dependencies"],
    started_at=dt.datetime(2026, 11, 22, tzinfo=dt.UTC),
)


@pytest.mark.parametrize("role", list(Role))
def test_each_role_has_its_own_focus_in_the_system_prompt(role):
    assert ROLE_FOCUS[role] in system_prompt(role)


def test_the_chat_request_carries_the_task_rubric_constraints_and_the_agents_sampling():
    chat = chat_request(REQUEST, model="m")
    system, user = chat.messages
    assert system.role == "system" and "QA" in system.content
    for text in ("Harden the parser", "It crashes on empty input.", "no new dependencies", "coverage"):
        assert text in user.content
    assert (chat.model, chat.temperature, chat.max_tokens) == ("m", 0.9, 128)


def test_a_completion_becomes_a_proposal_with_its_model_and_tokens():
    completion = Completion(content="Fuzz it.", model="m", prompt_tokens=9, completion_tokens=3, latency_ms=50)
    event = outcome(REQUEST, completion)
    assert isinstance(event.payload, ProposalCompleted)
    assert (event.payload.content, event.payload.completion_tokens, event.payload.temperature) == ("Fuzz it.", 3, 0.9)


def test_a_failure_becomes_a_typed_failure_event_with_the_same_id_a_proposal_would_have():
    failed = outcome(REQUEST, LlmFailure(error_class="LlmTimeout", message="slow"))
    succeeded = outcome(REQUEST, Completion(content="x", model="m", prompt_tokens=1, completion_tokens=1, latency_ms=1))
    assert isinstance(failed.payload, ProposalFailed)
    assert (failed.payload.error_class, failed.payload.message) == ("LlmTimeout", "slow")
    assert failed.event_id == succeeded.event_id


def test_a_well_formed_chat_completion_is_read_with_its_usage():
    body = b'{"model":"smol","choices":[{"message":{"role":"assistant","content":"  Plan A  "}}],' \
           b'"usage":{"prompt_tokens":12,"completion_tokens":4}}'
    completion = parse_completion(body, requested_model="x", latency_ms=7)
    assert completion == Completion(content="Plan A", model="smol", prompt_tokens=12, completion_tokens=4, latency_ms=7)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>oops</html>", "malformed chat completion"),
        (b'{"choices": []}', "no choices"),
        (b'{"choices": [{"message": {"content": "   "}}]}', "content is empty"),
        (b'{"choices": [{"message": {"content": null}}]}', "content is empty"),
        (b'{"choices": "nope"}', "malformed chat completion"),
    ],
)
def test_an_empty_or_malformed_completion_is_an_error_not_a_proposal(body, reason):
    with pytest.raises(LlmBadResponse, match=reason):
        parse_completion(body, requested_model="x", latency_ms=1)
