"""A prompt always fits the model's context: what is cut goes first by kind, says so where it was, and is
recorded; the instructions and the answer's shape never are. Pure functions."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.events import (
    AgentProfile,
    Brief,
    Candidate,
    DeliberationRef,
    Phase,
    PlannedTask,
    Role,
    Turn,
    TurnInput,
    TurnRequested,
)
from services.agents.adapters.wire import LlmContextExceeded, LlmHttpError, ResponseFormat, chat_request, http_error
from services.agents.domain import Completion, prompt_for
from services.agents.outcomes import outcome
from services.agents.prompts import NOTE_TOKENS, TEMPLATE_TOKENS, Cut, Part, fit
from services.mesh.tokens import cut_to_tokens, estimate_tokens

NOTE = re.compile(r"\[… ([\d,]+) characters cut to fit the model's context\]")


def notes(text: str) -> list[int]:
    """The number each note of a cut says was cut."""
    return [int(n.replace(",", "")) for n in NOTE.findall(text)]


def turn(phase: Phase, description: str = "Cache the story view.", proposal: str = "Use Valkey.",
         constraints: tuple[str, ...] = ("no new services",)) -> TurnRequested:
    agent = AgentProfile(agent_id="architect-1", role=Role.ARCHITECT, persona="The pragmatist.", temperature=0.0,
                         seed=1)
    ref = DeliberationRef(deliberation_id="d", story_id="s", plan_id="p", task_id="t", role=Role.DEV)
    brief = Brief(task=PlannedTask(task_id="t", title="Big", description=description),
                  rubric={"correctness": "holds"}, constraints=list(constraints))
    given_input = TurnInput(proposal=proposal, candidates=[Candidate(agent_id="dev-1", content=proposal, score=5.0)])
    return TurnRequested(deliberation=ref, turn=Turn(phase=phase, round=0, agent_id="architect-1", author_id="a"),
                         agent=agent, brief=brief, input=given_input)


# --- the token estimate -------------------------------------------------------------------------


def test_ordinary_text_is_three_characters_a_token_and_digits_and_other_bytes_one_each():
    assert estimate_tokens("abcdef") == 2
    assert estimate_tokens("2026") == 4
    assert estimate_tokens("漢") == 3
    assert estimate_tokens("abcdef", strict=True) == 6


def test_a_word_with_digits_in_it_is_a_token_a_character_and_the_words_around_it_are_not():
    assert estimate_tokens("id 3fa9c0d1 ok") == 1 + 8 + 1  # "id " and " ok" are three characters each
    assert estimate_tokens("c" * 60_000) == 20_000


@given(st.text(max_size=400), st.integers(0, 200), st.booleans())
def test_a_text_cut_to_a_number_of_tokens_is_its_longest_beginning_within_them(text, tokens, strict):
    kept = cut_to_tokens(text, tokens, strict=strict)
    assert text.startswith(kept)
    assert estimate_tokens(kept, strict=strict) <= tokens
    if kept != text:
        assert estimate_tokens(text[:len(kept) + 1], strict=strict) > tokens


# --- fitting --------------------------------------------------------------------------------------


def test_a_prompt_within_its_budget_is_left_whole_and_records_no_cut():
    parts = [Part("Task t: T"), Part("a description", Cut.BRIEF), Part("Answer.")]
    fitted = fit(parts, 1000)
    assert (fitted.text, fitted.cut_chars) == ("Task t: T\na description\nAnswer.", 0)


def test_the_read_model_context_is_cut_first_and_the_rest_stays_whole_when_that_is_enough():
    parts = [Part("INSTRUCTIONS"), Part("#" * 6000, Cut.CONTEXT), Part("@" * 1500, Cut.BRIEF),
             Part("%" * 1500, Cut.PEERS)]
    fitted = fit(parts, 2000)
    assert estimate_tokens(fitted.text) <= 2000
    assert "@" * 1500 in fitted.text and "%" * 1500 in fitted.text
    assert 0 < fitted.text.count("#") < 6000
    assert notes(fitted.text) == [fitted.cut_chars] == [6000 - fitted.text.count("#")]


def test_past_the_context_the_brief_is_cut_then_the_peers_material_and_the_instructions_never():
    parts = [Part("INSTRUCTIONS-HEAD"), Part("#" * 3000, Cut.CONTEXT), Part("@" * 9000, Cut.BRIEF),
             Part("%" * 3000, Cut.PEERS), Part("~" * 300, Cut.RUBRIC), Part("INSTRUCTIONS-TAIL")]
    fitted = fit(parts, 1500)
    assert estimate_tokens(fitted.text) <= 1500
    assert fitted.text.startswith("INSTRUCTIONS-HEAD") and fitted.text.endswith("INSTRUCTIONS-TAIL")
    assert "#" not in fitted.text  # the context went whole
    assert 0 < fitted.text.count("@") < 9000  # then the brief, in part
    assert "%" * 3000 in fitted.text and "~" * 300 in fitted.text  # the peers' material and the rubric stayed
    assert notes(fitted.text) == [3000, 9000 - fitted.text.count("@")]
    assert fitted.cut_chars == sum(notes(fitted.text))


def test_the_longest_parts_of_a_kind_are_cut_to_one_length_and_a_short_one_is_kept():
    parts = [Part("HEAD"), Part("short", Cut.PEERS), Part("@" * 5000, Cut.PEERS), Part("%" * 3000, Cut.PEERS)]
    fitted = fit(parts, 1000)
    assert fitted.text.startswith("HEAD\nshort\n")
    assert fitted.text.count("@") == fitted.text.count("%") > 1000
    assert len(notes(fitted.text)) == 2


@given(st.lists(st.tuples(st.text(max_size=3000), st.sampled_from([None, *Cut])), max_size=8),
       st.integers(200, 6000), st.booleans())
def test_a_fitted_prompt_never_exceeds_its_budget_when_the_instructions_fit(pieces, budget, strict):
    parts = [Part("instructions that are never cut")] + [Part(text, cut) for text, cut in pieces]
    fixed = sum(estimate_tokens(p.text + "\n", strict=strict) for p in parts if p.cut is None)
    if fixed + NOTE_TOKENS * sum(p.cut is not None for p in parts) > budget:
        return
    fitted = fit(parts, budget, strict=strict)
    assert estimate_tokens(fitted.text, strict=strict) <= budget
    assert sum(notes(fitted.text)) <= fitted.cut_chars  # a part's own text may look like a note, never fewer
    for part in parts:
        if part.cut is None:
            assert part.text in fitted.text


# --- a whole turn's prompt --------------------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("phase", [Phase.PROPOSE, Phase.CRITIQUE, Phase.JUDGE, Phase.SELECT])
def test_a_brief_near_the_size_limit_is_cut_so_that_prompt_and_answer_fit_the_window(phase, strict):
    request = turn(phase, description="log line é 漢字\n" * 4000, proposal="z" * 20_000,
                   constraints=("c" * 60_000, "d" * 60_000))
    sent = prompt_for(request, model="m", max_tokens=256, context="k" * 30_000, context_window=4096, strict=strict)
    chat = chat_request(sent, ResponseFormat.JSON_SCHEMA)
    prompt_tokens = sum(estimate_tokens(m.content, strict=strict) for m in chat.messages)
    assert prompt_tokens + chat.max_tokens + TEMPLATE_TOKENS <= 4096
    user = chat.messages[1].content
    assert "Task t: Big" in user and sent.cut_chars > 100_000 and sum(notes(user)) == sent.cut_chars
    if phase == Phase.JUDGE:
        assert 'a score for each of "correctness"' in user  # the instructions and the answer's shape survive the cut
    if phase == Phase.SELECT:
        assert '"winner_id", one of "dev-1"' in user


def test_a_turn_without_a_window_is_never_cut():
    sent = prompt_for(turn(Phase.PROPOSE, description="d" * 60_000), model="m", max_tokens=256)
    assert sent.cut_chars == 0 and "d" * 60_000 in sent.user


def test_the_completed_turn_records_how_much_of_its_prompt_was_cut():
    answer = Completion(content="Fuzz it.", model="m", prompt_tokens=4000, completion_tokens=3, latency_ms=50)
    assert outcome(turn(Phase.PROPOSE), answer, prompt_cut_chars=12_345).payload.prompt_cut_chars == 12_345
    assert outcome(turn(Phase.PROPOSE), answer).payload.prompt_cut_chars == 0


# --- the server's own word ----------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    b'{"error":{"code":400,"message":"request (5031 tokens) exceeds the available context size (4096 tokens), '
    b'try increasing it","type":"exceed_context_size_error","n_prompt_tokens":5031,"n_ctx":4096}}',
    b'{"object":"error","message":"This model\'s maximum context length is 16384 tokens. However, you requested '
    b'17000 tokens.","type":"BadRequestError","code":400}',
    b'{"error":{"message":"too long","type":"invalid_request_error","code":"context_length_exceeded"}}',
])
def test_a_server_saying_the_prompt_exceeds_its_context_is_a_typed_context_error(body):
    error = http_error(400, body, "http://llm/v1/chat/completions")
    assert isinstance(error, LlmContextExceeded) and isinstance(error, LlmHttpError)


def test_any_other_http_error_stays_a_plain_http_error():
    error = http_error(400, b'{"error":"bad grammar"}', "http://llm/v1/chat/completions")
    assert type(error) is LlmHttpError
