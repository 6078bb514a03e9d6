"""JSON answers are valid by construction: every schema is one a grammar enforces, and no valid answer is cut off.

And a prompt never crowds out its answer: over the model's context window, the long parts are cut, the
instructions never.
"""

import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.events import (
    AgentProfile,
    Brief,
    Candidate,
    DeliberationRef,
    Phase,
    PlanApproved,
    PlannedTask,
    Role,
    Turn,
    TurnInput,
    TurnRequested,
)
from services.agents.adapters.wire import ResponseFormat, chat_request
from services.agents.domain import prompt_for
from services.agents.prompts import TEMPLATE_TOKENS, Part, fit
from services.agents.structured import (
    WHITESPACE_TOKENS,
    UnboundedSchema,
    answer_schema,
    answer_token_bound,
    choice_type,
    parse_structured,
    schema_token_bound,
    verdict_type,
)

# What the contract admits as a criterion's name (contracts.events.CriterionName).
criterion_names = st.text(st.characters(exclude_characters='"\\', exclude_categories=("Cc", "Cs")),
                          min_size=1, max_size=40)
rubrics = st.dictionaries(criterion_names, st.text(max_size=20), min_size=1, max_size=6)
agent_ids = st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=5, unique=True)


def longest_text(schema: dict) -> str:
    """The valid answer with the most bytes: every string full, every character escaped, the most whitespace."""
    pad = " " + "\n" + " " * (WHITESPACE_TOKENS - 2)
    if "enum" in schema:
        return max((json.dumps(v) for v in schema["enum"]), key=len) + pad
    if schema["type"] == "string":
        return '"' + "\\u00e9" * schema["maxLength"] + '"' + pad
    members = [f"{json.dumps(name)}{pad}:{pad}{longest_text(value)}" for name, value in schema["properties"].items()]
    return "{" + pad + f",{pad}".join(members) + "}" + pad


def judge_turn(rubric: dict[str, str]) -> TurnRequested:
    ref = DeliberationRef(deliberation_id="d", story_id="s", plan_id="p", task_id="t", role=Role.QA)
    judge = AgentProfile(agent_id="architect-1", role=Role.ARCHITECT, persona="", temperature=0.0, seed=1)
    return TurnRequested(deliberation=ref, turn=Turn(phase=Phase.JUDGE, round=0, agent_id="architect-1",
                                                     author_id="qa-1"),
                         agent=judge, brief=Brief(task=PlannedTask(task_id="t", title="T"), rubric=rubric),
                         input=TurnInput(proposal="Fuzz it."))


@given(rubrics)
def test_any_rubric_gives_a_judge_schema_with_its_own_keys_and_only_bounded_strings(rubric):
    schema = answer_schema(verdict_type(rubric))
    assert list(schema["properties"]["criteria"]["properties"]) == list(rubric)
    assert schema_token_bound(schema) > 0  # raises for a string without maxLength


@given(rubrics)
def test_the_longest_valid_verdict_fits_the_tokens_a_judge_is_given(rubric):
    kind = verdict_type(rubric)
    text = longest_text(answer_schema(kind))
    msgspec.json.decode(text, type=kind)  # it is valid
    assert len(text.encode()) + 1 <= answer_token_bound(kind)  # no token is shorter than a byte


@given(agent_ids)
def test_the_longest_valid_choice_fits_the_tokens_an_architect_is_given(candidates):
    kind = choice_type(candidates)
    text = longest_text(answer_schema(kind))
    msgspec.json.decode(text, type=kind)
    assert len(text.encode()) + 1 <= answer_token_bound(kind)


@given(rubrics, st.data())
def test_scores_are_read_back_under_any_rubrics_own_names(rubric, data):
    scores = {name: data.draw(st.integers(0, 10)) for name in rubric}
    answer = json.dumps({"criteria": scores, "justification": "why"}, ensure_ascii=False)
    assert parse_structured(judge_turn(rubric), answer).criteria == scores


@pytest.mark.parametrize("name", ['say "why"', "back\\slash", "tab\there"])
def test_a_criterion_name_no_json_key_can_hold_unescaped_is_refused_at_ingress_naming_the_field(name):
    approval = {"story_id": "s", "plan_id": "p", "approved_by": "u", "roles": ["QA"], "tasks": [],
                "rubric": {name: "meaning"}}
    with pytest.raises(msgspec.ValidationError, match=r"at `key` in `\$.rubric`"):
        msgspec.json.decode(json.dumps(approval), type=PlanApproved)


@pytest.mark.parametrize("schema", [{"type": "string"}, {"type": "integer"},
                                    {"type": "string", "maxLength": 9, "pattern": "a+"},
                                    {"type": "object", "properties": {}}])
def test_a_schema_that_admits_answers_of_any_length_has_no_bound(schema):
    with pytest.raises(UnboundedSchema):
        schema_token_bound(schema)


# --- fitting the prompt to the context window ---------------------------------------------------


def test_a_prompt_within_its_budget_is_left_whole():
    parts = [Part("Task t: T"), Part("a description", cuttable=True), Part("Answer.")]
    assert fit(parts, 1000) == "Task t: T\na description\nAnswer."


def test_over_its_budget_only_the_long_cuttable_parts_are_cut_and_each_says_so():
    parts = [Part("FIXED-HEAD"), Part("short", cuttable=True), Part("q" * 5000, cuttable=True),
             Part("z" * 3000, cuttable=True), Part("FIXED-TAIL")]
    prompt = fit(parts, 2000)
    assert len(prompt.encode()) <= 2000
    assert prompt.startswith("FIXED-HEAD\nshort\n") and prompt.endswith("FIXED-TAIL")
    assert prompt.count("more characters cut to fit the model's context window") == 2
    assert prompt.count("q") == prompt.count("z") > 500  # what is left is shared equally


@given(st.lists(st.tuples(st.text(max_size=3000), st.booleans()), max_size=8), st.integers(1500, 20_000))
def test_a_fitted_prompt_never_exceeds_its_budget_when_the_fixed_parts_fit(pieces, budget):
    parts = [Part("instructions that are never cut")] + [Part(text, cuttable) for text, cuttable in pieces]
    fixed = sum(len(p.text.encode()) + 1 for p in parts if not p.cuttable)
    if fixed + 80 * len(parts) > budget:
        return
    assert len(fit(parts, budget).encode()) <= budget


@pytest.mark.parametrize("phase", [Phase.PROPOSE, Phase.JUDGE, Phase.SELECT])
def test_a_brief_near_the_size_limit_is_cut_so_that_prompt_and_answer_fit_the_window(phase):
    brief = Brief(task=PlannedTask(task_id="t", title="Big", description="log line é 漢字\n" * 15_000),
                  rubric={"correctness": "holds"}, constraints=["c" * 60_000, "d" * 60_000])
    agent = AgentProfile(agent_id="architect-1", role=Role.ARCHITECT, persona="p", temperature=0.0, seed=1)
    ref = DeliberationRef(deliberation_id="d", story_id="s", plan_id="p", task_id="t", role=Role.DEV)
    given_input = TurnInput(proposal="z" * 20_000, candidates=[Candidate(agent_id="dev-1", content="w" * 9000,
                                                                         score=5.0)])
    request = TurnRequested(deliberation=ref, turn=Turn(phase=phase, round=0, agent_id="architect-1", author_id="a"),
                            agent=agent, brief=brief, input=given_input)
    chat = chat_request(prompt_for(request, model="m", max_tokens=256, context_window=4096), ResponseFormat.JSON_SCHEMA)
    prompt_bytes = sum(len(m.content.encode()) for m in chat.messages)
    assert prompt_bytes + chat.max_tokens + TEMPLATE_TOKENS <= 4096
    user = chat.messages[1].content
    assert "Task t: Big" in user and "more characters cut to fit" in user
    if phase == Phase.JUDGE:
        assert 'a score for each of "correctness"' in user  # the instructions and the answer's shape survive the cut
