"""JSON answers are valid by construction: every schema is one a grammar enforces, and no valid answer is cut off."""

import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.events import (
    AgentProfile,
    Brief,
    DeliberationRef,
    Phase,
    PlanApproved,
    PlannedTask,
    Role,
    Turn,
    TurnInput,
    TurnRequested,
)
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
