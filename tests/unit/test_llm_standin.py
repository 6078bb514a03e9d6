"""The benchmarks' stand-in LLM answers every structured phase with JSON the agents accept."""

import msgspec
import pytest

from bench.llm_standin import CANNED, answer
from services.agents.adapters.wire import ResponseFormat, response_format
from services.agents.structured import answer_schema, choice_type, verdict_type


@pytest.mark.parametrize("dialect", list(ResponseFormat))
@pytest.mark.parametrize("kind", [verdict_type({"correctness": "works", "clarity": "reads well"}),
                                  choice_type(["dev-1:1", "dev-2:1"])], ids=["judge", "select"])
def test_a_schema_request_gets_a_document_that_follows_the_schema(kind, dialect):
    request = {"messages": [], "response_format": response_format(kind.__name__, answer_schema(kind), dialect)}
    content = answer(request)["choices"][0]["message"]["content"]
    msgspec.json.decode(content, type=kind)


def test_a_free_text_request_gets_the_canned_answer_and_a_usage_block():
    reply = answer({"messages": [{"role": "user", "content": "propose"}]})
    assert reply["choices"][0]["message"]["content"] == CANNED
    assert reply["usage"]["completion_tokens"] == 0
