"""Agents are prompted per phase in their own voice, and report the LLM's answer or a typed error, never a stand-in."""

import json

import msgspec
import pytest

from contracts.events import (
    AgentProfile,
    Brief,
    Candidate,
    Choice,
    DeliberationRef,
    Phase,
    PlannedTask,
    Role,
    Turn,
    TurnCompleted,
    TurnFailed,
    TurnInput,
    TurnRequested,
    Verdict,
)
from services.agents.adapters.wire import LlmBadResponse, ResponseFormat, chat_request, parse_completion
from services.agents.domain import Completion, LlmFailure, prompt_for
from services.agents.outcomes import GivenContext, given_up, outcome
from services.agents.prompts import ROLE_FOCUS, system_prompt
from services.agents.structured import (
    StructuredOutputInvalid,
    answer_token_bound,
    choice_type,
    inline_refs,
    parse_structured,
    verdict_type,
)

REF = DeliberationRef(deliberation_id="d-1", story_id="s", plan_id="p", task_id="t", role=Role.QA)
BRIEF = Brief(
    task=PlannedTask(task_id="t", title="Harden the parser", description="It crashes on empty input."),
    rubric={"edge cases": "the empty input is named", "clarity": "easy to act on"},
    constraints=["no new dependencies"],
)
SKEPTIC = AgentProfile(agent_id="qa-2", role=Role.QA, persona="The skeptic: hunts for failure modes.",
                       temperature=0.9, seed=1001)
ARCHITECT = AgentProfile(agent_id="architect-1", role=Role.ARCHITECT, persona="The pragmatist.",
                         temperature=0.3, seed=1000)
CANDIDATES = [
    Candidate(agent_id="qa-1", content="Fuzz it.", score=8.5),
    Candidate(agent_id="qa-3", content="Guard it.", score=7.0),
]


def ask(phase: Phase, *, agent: AgentProfile = SKEPTIC, author: str = "qa-2", in_round: int = 0, **given):
    return TurnRequested(
        deliberation=REF, turn=Turn(phase=phase, round=in_round, agent_id=agent.agent_id, author_id=author),
        agent=agent, brief=BRIEF, input=TurnInput(**given),
    )


JUDGE = ask(Phase.JUDGE, agent=ARCHITECT, author="qa-1", proposal="Fuzz it.")
SELECT = ask(Phase.SELECT, agent=ARCHITECT, author="", candidates=CANDIDATES)


def chat(request: TurnRequested, dialect: ResponseFormat = ResponseFormat.JSON_SCHEMA, max_tokens: int = 100,
         thinking: bool = True, context: str = ""):
    """The request body a turn sends: its prompt, in the dialect."""
    return chat_request(prompt_for(request, model="m", max_tokens=max_tokens, context=context), dialect,
                        thinking=thinking)


def prompt(request: TurnRequested) -> str:
    return chat(request).messages[1].content


def completion(content: str = "Fuzz it.") -> Completion:
    return Completion(content=content, model="m", prompt_tokens=9, completion_tokens=3, latency_ms=50)


# --- prompts --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_each_role_has_its_own_focus_in_the_system_prompt(role):
    agent = msgspec.structs.replace(SKEPTIC, role=role)
    assert ROLE_FOCUS[role] in system_prompt(ask(Phase.PROPOSE, agent=agent))


def test_the_system_prompt_gives_the_agent_its_name_and_persona():
    system = system_prompt(ask(Phase.PROPOSE))
    assert "qa-2" in system and "The skeptic: hunts for failure modes." in system


def test_a_judge_speaks_as_an_impartial_judge_not_in_its_persona():
    system = system_prompt(JUDGE)
    assert "impartial judge" in system and "The pragmatist." not in system


@pytest.mark.parametrize("phase", list(Phase))
def test_every_prompt_carries_the_task_its_constraints_and_the_rubric(phase):
    user = prompt(ask(phase, candidates=CANDIDATES))
    for text in ("Harden the parser", "It crashes on empty input.", "no new dependencies",
                 "edge cases: the empty input is named", "clarity: easy to act on"):
        assert text in user


def test_a_critique_prompt_shows_the_peers_proposal():
    user = prompt(ask(Phase.CRITIQUE, author="qa-1", proposal="Rewrite it in Rust."))
    assert "Proposal by qa-1:\nRewrite it in Rust." in user


def test_a_revise_prompt_shows_the_agents_own_proposal_and_the_critique_of_it():
    user = prompt(ask(Phase.REVISE, proposal="Add a guard.", critique="Which guard?"))
    assert "Your proposal:\nAdd a guard." in user
    assert "A peer's critique of it:\nWhich guard?" in user


def test_a_judge_prompt_shows_the_proposal_to_score():
    assert "Proposal:\nFuzz it." in prompt(JUDGE)


def test_a_select_prompt_lists_every_candidate_with_its_score():
    user = prompt(SELECT)
    assert "Candidate qa-1 (score 8.5):\nFuzz it." in user
    assert "Candidate qa-3 (score 7.0):\nGuard it." in user


# --- chat requests ----------------------------------------------------------------------------


def test_the_chat_request_carries_the_agents_temperature_seed_and_persona_with_the_default_model():
    sent = chat(ask(Phase.PROPOSE))
    system, user = sent.messages
    assert (system.role, user.role) == ("system", "user")
    assert "The skeptic" in system.content
    assert (sent.model, sent.temperature, sent.seed, sent.max_tokens) == ("m", 0.9, 1001, 100)


def test_a_model_asked_not_to_think_gets_it_in_its_chat_template_and_otherwise_nothing_extra_is_sent():
    quiet = chat(ask(Phase.PROPOSE), thinking=False)
    default = chat(ask(Phase.PROPOSE))

    assert json.loads(msgspec.json.encode(quiet))["chat_template_kwargs"] == {"enable_thinking": False}
    assert "chat_template_kwargs" not in json.loads(msgspec.json.encode(default))


def test_an_agents_own_model_overrides_the_default():
    agent = msgspec.structs.replace(SKEPTIC, model="qwen-7b")
    sent = chat(ask(Phase.PROPOSE, agent=agent))
    assert sent.model == "qwen-7b"


@pytest.mark.parametrize(
    ("request_", "max_tokens"),
    [(ask(Phase.PROPOSE), 1000), (ask(Phase.REVISE), 1000), (ask(Phase.CRITIQUE), 500),
     (JUDGE, answer_token_bound(verdict_type(BRIEF.rubric))),
     (SELECT, answer_token_bound(choice_type(["qa-1", "qa-3"])))],
    ids=["propose", "revise", "critique", "judge", "select"],
)
def test_a_critique_gets_half_the_token_budget_and_a_structured_answer_the_most_its_schema_admits(request_, max_tokens):
    assert chat(request_, max_tokens=1000).max_tokens == max_tokens


@pytest.mark.parametrize("phase", [Phase.PROPOSE, Phase.CRITIQUE, Phase.REVISE])
def test_a_free_text_turn_asks_for_no_response_format(phase):
    sent = chat(ask(phase))
    assert sent.response_format is None
    assert "response_format" not in json.loads(msgspec.json.encode(sent))


@pytest.mark.parametrize(("request_", "name"), [(JUDGE, "JudgeAnswer"), (SELECT, "ArchitectAnswer")])
def test_a_structured_turn_asks_for_json_schema_the_openai_and_vllm_way(request_, name):
    sent = chat(request_)
    assert sent.response_format["type"] == "json_schema"
    spec = sent.response_format["json_schema"]
    assert (spec["name"], spec["strict"], spec["schema"]["type"]) == (name, True, "object")


@pytest.mark.parametrize("request_", [JUDGE, SELECT], ids=["judge", "select"])
def test_a_structured_turn_asks_for_a_json_object_the_llama_cpp_way(request_):
    sent = chat(request_, ResponseFormat.JSON_OBJECT)
    assert set(sent.response_format) == {"type", "schema"}
    assert sent.response_format["type"] == "json_object"
    assert sent.response_format["schema"]["type"] == "object"


@pytest.mark.parametrize("dialect", list(ResponseFormat))
@pytest.mark.parametrize("request_", [JUDGE, SELECT], ids=["judge", "select"])
def test_the_schema_is_inline_with_no_refs_for_grammar_builders_that_cannot_follow_them(request_, dialect):
    schema = json.dumps(chat(request_, dialect).response_format)
    assert "$ref" not in schema and "$defs" not in schema


def test_refs_are_inlined_inside_arrays_too():
    schema = inline_refs(msgspec.json.schema(TurnInput))
    assert "$ref" not in json.dumps(schema)
    assert schema["properties"]["candidates"]["items"]["title"] == "Candidate"


def test_the_judge_schema_asks_for_each_rubric_criterion_scored_from_0_to_10_as_an_enum_any_grammar_expresses():
    format_ = chat(JUDGE, ResponseFormat.JSON_OBJECT).response_format
    criteria = format_["schema"]["properties"]["criteria"]
    assert criteria["required"] == ["edge cases", "clarity"]
    assert criteria["additionalProperties"] is False
    assert criteria["properties"]["edge cases"] == {"enum": list(range(11))}


def test_the_select_schema_allows_only_the_candidates_ids():
    format_ = chat(SELECT, ResponseFormat.JSON_OBJECT).response_format
    assert format_["schema"]["properties"]["winner_id"]["enum"] == ["qa-1", "qa-3"]


# --- structured answers ----------------------------------------------------------------------


def test_a_judges_scores_are_read_back_under_the_rubrics_own_names():
    answer = '{"criteria": {"edge cases": 7, "clarity": 9}, "justification": "Names the empty input."}'
    assert parse_structured(JUDGE, answer) == Verdict(
        criteria={"edge cases": 7, "clarity": 9}, justification="Names the empty input."
    )


def test_an_answer_in_a_code_fence_is_read_from_inside_it():
    answer = '```json\n{"winner_id": "qa-3", "rationale": "Simplest."}\n```'
    assert parse_structured(SELECT, answer) == Choice(winner_id="qa-3", rationale="Simplest.")


@pytest.mark.parametrize(
    ("request_", "answer"),
    [
        (JUDGE, '{"criteria": {"edge cases": 11, "clarity": 9}, "justification": "x"}'),
        (JUDGE, '{"criteria": {"edge cases": -1, "clarity": 9}, "justification": "x"}'),
        (JUDGE, '{"criteria": {"edge cases": 7}, "justification": "x"}'),
        (JUDGE, '{"criteria": {"edge cases": 7, "clarity": 9, "speed": 3}, "justification": "x"}'),
        (JUDGE, "The proposal is good: 9/10."),
        (SELECT, '{"winner_id": "qa-2", "rationale": "Not a candidate."}'),
        (SELECT, '{"winner_id": "qa-1", "rationale": ""}'),
        (SELECT, '{"winner_id": "qa-1", "rationale": '),
    ],
    ids=["score-above-10", "score-below-0", "criterion-missing", "criterion-unknown", "prose", "unknown-winner",
         "no-rationale", "truncated-json"],
)
def test_a_structured_answer_that_breaks_its_schema_is_invalid(request_, answer):
    with pytest.raises(StructuredOutputInvalid, match="does not match its schema"):
        parse_structured(request_, answer)


# --- outcomes --------------------------------------------------------------------------------


def test_a_completion_becomes_a_completed_turn_with_the_agents_sampling_and_tokens():
    event = outcome(ask(Phase.PROPOSE), completion()).payload
    assert isinstance(event, TurnCompleted)
    assert (event.content, event.model, event.temperature, event.seed) == ("Fuzz it.", "m", 0.9, 1001)
    assert (event.prompt_tokens, event.completion_tokens, event.latency_ms, event.attempts) == (9, 3, 50, 1)
    assert (event.turn, event.agent, event.deliberation) == (ask(Phase.PROPOSE).turn, SKEPTIC, REF)
    assert event.verdict is None and event.choice is None


def test_a_structured_completion_carries_its_verdict_or_choice():
    verdict = Verdict(criteria={"edge cases": 7, "clarity": 9}, justification="ok")
    choice = Choice(winner_id="qa-1", rationale="best")
    judged = outcome(JUDGE, completion("{}"), structured=verdict, attempts=2).payload
    selected = outcome(SELECT, completion("{}"), structured=choice).payload
    assert (judged.verdict, judged.choice, judged.attempts) == (verdict, None, 2)
    assert (selected.verdict, selected.choice) == (None, choice)


def test_a_failure_becomes_a_typed_failed_turn_with_the_same_id_a_completion_would_have():
    request = ask(Phase.CRITIQUE, author="qa-1", proposal="x")
    failed = outcome(request, LlmFailure(error_class="LlmTimeout", message="slow"))
    succeeded = outcome(request, completion())
    assert isinstance(failed.payload, TurnFailed)
    assert (failed.payload.error_class, failed.payload.message) == ("LlmTimeout", "slow")
    assert failed.payload.turn == request.turn
    assert failed.event_id == succeeded.event_id


def test_each_turn_has_its_own_outcome_id():
    turns = [
        ask(Phase.CRITIQUE, author="qa-1"),
        ask(Phase.CRITIQUE, author="qa-3"),
        ask(Phase.CRITIQUE, author="qa-1", in_round=1),
        ask(Phase.REVISE, author="qa-1"),
        ask(Phase.CRITIQUE, author="qa-1", agent=msgspec.structs.replace(SKEPTIC, agent_id="qa-3")),
        msgspec.structs.replace(ask(Phase.CRITIQUE, author="qa-1"),
                                deliberation=msgspec.structs.replace(REF, deliberation_id="d-2")),
    ]
    assert len({outcome(turn, completion()).event_id for turn in turns}) == len(turns)


def test_a_request_given_up_on_fails_as_agent_gave_up_in_place_of_its_outcome():
    request = ask(Phase.PROPOSE)
    gave_up = given_up(request, "no outcome after 5 deliveries")
    assert isinstance(gave_up.payload, TurnFailed)
    assert (gave_up.payload.error_class, gave_up.payload.message) == ("AgentGaveUp", "no outcome after 5 deliveries")
    assert gave_up.event_id == outcome(request, completion()).event_id


# --- the LLM adapter --------------------------------------------------------------------------


def test_a_well_formed_chat_completion_is_read_with_its_usage():
    body = b'{"model":"smol","choices":[{"message":{"role":"assistant","content":"  Plan A  "}}],' \
           b'"usage":{"prompt_tokens":12,"completion_tokens":4}}'
    completion = parse_completion(body, requested_model="x", latency_ms=7)
    assert completion == Completion(content="Plan A", model="smol", prompt_tokens=12, completion_tokens=4, latency_ms=7)


def test_a_completion_without_model_or_usage_is_credited_to_the_requested_model():
    body = b'{"choices":[{"message":{"content":"Plan B"}}]}'
    completion = parse_completion(body, requested_model="x", latency_ms=7)
    assert (completion.model, completion.prompt_tokens, completion.completion_tokens) == ("x", 0, 0)


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


def test_the_read_model_context_comes_before_the_brief_in_the_user_prompt():
    request = chat(ask(Phase.PROPOSE), context="Decisions already made:\n- task t, DEV: dev-1 won.")
    user = request.messages[1].content
    assert user.index("dev-1 won.") < user.index("Task t")


def test_no_secret_in_a_task_reaches_the_prompt():
    leaky = msgspec.structs.replace(BRIEF, task=msgspec.structs.replace(
        BRIEF.task, description="Connect with postgres://app:s3cr3t@db/app and api_key=AKIA0123456789ABCDEF."))
    request = msgspec.structs.replace(ask(Phase.PROPOSE), brief=leaky)
    sent = " ".join(m.content for m in chat(request, context="token: abc123def456").messages)
    assert "s3cr3t" not in sent and "AKIA0123456789ABCDEF" not in sent and "abc123def456" not in sent
    assert "postgres://app:[REDACTED]@db/app" in sent


def test_a_turn_written_with_a_context_records_its_hash_and_one_without_says_why():
    given = GivenContext(text="x", context_hash="ab12")
    with_context = outcome(ask(Phase.PROPOSE), completion(), context=given).payload
    without = outcome(ask(Phase.PROPOSE), completion(), context=GivenContext(error="503: nobody answers")).payload
    assert (with_context.context_hash, with_context.context_error) == ("ab12", None)
    assert (without.context_hash, without.context_error) == (None, "503: nobody answers")
