"""A prompt far beyond the model's context is cut to fit it and answered, against the real embedded llama server."""

import random
import string

import pytest

from contracts.events import (
    AgentProfile,
    Brief,
    Candidate,
    DeliberationRef,
    Phase,
    PlannedTask,
    Role,
    Turn,
    TurnCompleted,
    TurnInput,
    TurnRequested,
)
from services.agents.adapters.llm import LlmConfig
from services.agents.adapters.ray_agents import AgentActor
from services.agents.adapters.wire import LlmContextExceeded
from services.agents.domain import Completion, LlmFailure, Prompt
from services.agents.handlers import AgentHandlers
from services.agents.outcomes import GivenContext
from services.embedded.servers import LLM_CONTEXT_PER_SLOT
from services.planning.domain import MAX_BRIEF_BYTES

pytestmark = pytest.mark.integration

ANSWER_TOKENS = 48
LONGEST_TEXT = 64_000  # contracts.events.Text


class ActorsInProcess:
    """The agents' pool without Ray: the same actor class and LLM client, called in this process. It keeps
    what the server answered to each call, so a spec can tell a second, stricter call from the first."""

    def __init__(self, base_url: str) -> None:
        self.config = LlmConfig(base_url=base_url, timeout_s=120.0)
        self.actors: dict[str, AgentActor] = {}
        self.answers: list[str] = []

    async def complete(self, agent_id: str, prompt: Prompt) -> Completion | LlmFailure:
        actor = self.actors.setdefault(agent_id, AgentActor(agent_id, self.config))
        answer = await actor.complete(prompt)
        self.answers.append(answer.error_class if isinstance(answer, LlmFailure) else "completed")
        return answer

    async def close(self) -> None:
        for actor in self.actors.values():
            await actor.close()


def big_turn(phase: Phase, text: str) -> TurnRequested:
    """A turn whose brief is as large as ingress admits, `text` in every long field."""
    constraints = [text[i:i + LONGEST_TEXT] for i in range(LONGEST_TEXT, MAX_BRIEF_BYTES - LONGEST_TEXT,
                                                              LONGEST_TEXT)]
    agent = AgentProfile(agent_id=f"architect-{phase}", role=Role.ARCHITECT, persona="The pragmatist.",
                         temperature=0.0, seed=7)
    ref = DeliberationRef(deliberation_id="d-big", story_id="s", plan_id="p", task_id="t", role=Role.DEV)
    brief = Brief(task=PlannedTask(task_id="t", title="Cache the story view", description=text[:LONGEST_TEXT]),
                  rubric={"correctness": "it works"}, constraints=constraints)
    return TurnRequested(
        deliberation=ref, turn=Turn(phase=phase, round=0, agent_id=agent.agent_id, author_id="dev-1"), agent=agent,
        brief=brief, input=TurnInput(proposal=text[:LONGEST_TEXT],
                                     candidates=[Candidate(agent_id="dev-1", content=text[:LONGEST_TEXT])]),
    )


def prose(size: int) -> str:
    sentence = "The story view is read often and written rarely, so its reads are cached for a minute. "
    return (sentence * (size // len(sentence) + 1))[:size]


@pytest.fixture
async def pool(llm_endpoints):
    pool = ActorsInProcess(llm_endpoints["llm_base_url"])
    yield pool
    await pool.close()


def handlers(pool: ActorsInProcess, model: str, context: str = "") -> AgentHandlers:
    async def read_models(request: TurnRequested) -> GivenContext:
        return GivenContext(text=context, context_hash="h")

    return AgentHandlers(pool=pool, model=model, max_tokens=ANSWER_TOKENS, context=read_models,
                         context_window=LLM_CONTEXT_PER_SLOT)


@pytest.mark.parametrize("phase", [Phase.PROPOSE, Phase.JUDGE])
async def test_a_brief_of_256_kib_with_a_long_context_completes_its_turn_and_records_the_cut(
        pool, llm_endpoints, phase):
    request = big_turn(phase, prose(MAX_BRIEF_BYTES))
    outcome = await handlers(pool, llm_endpoints["llm_model"], context=prose(40_000)).take_turn(request)

    completed = outcome.payload
    assert isinstance(completed, TurnCompleted), completed
    assert completed.prompt_tokens + ANSWER_TOKENS <= LLM_CONTEXT_PER_SLOT
    assert completed.prompt_cut_chars > MAX_BRIEF_BYTES - 20_000
    assert pool.answers[0] == "completed"  # ordinary text fits at the first call
    if phase == Phase.JUDGE:
        assert completed.verdict is not None


async def test_text_the_ordinary_estimate_undercounts_is_cut_again_strictly_and_completes(pool, llm_endpoints):
    # Random letters take a token for every two characters or so: more than the estimate for ordinary text.
    letters = "".join(random.Random(5).choices(string.ascii_lowercase, k=MAX_BRIEF_BYTES))
    outcome = await handlers(pool, llm_endpoints["llm_model"]).take_turn(big_turn(Phase.PROPOSE, letters))

    assert pool.answers == [LlmContextExceeded.__name__, "completed"]
    assert isinstance(outcome.payload, TurnCompleted)
    assert outcome.payload.prompt_tokens + ANSWER_TOKENS <= LLM_CONTEXT_PER_SLOT
