"""What an agent is asked in each phase, cut to fit the model's context window when it must be. Pure: no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass

from contracts.events import Phase, Role, TurnRequested

ROLE_FOCUS = {
    Role.DEV: "clean, maintainable, tested code",
    Role.QA: "test strategy, edge cases and the bugs others will miss",
    Role.ARCHITECT: "design, scalability, boundaries and proven patterns",
    Role.DEVOPS: "deployment, pipelines, Kubernetes and operability",
    Role.DATA: "data models, pipelines and safe migrations",
}

# The chat template's own tokens around two messages (ChatML: about 10), with room to spare.
TEMPLATE_TOKENS = 64
# Room kept for the note that says how much of a text was cut.
CUT_NOTE_BYTES = 80


@dataclass(frozen=True)
class Part:
    """A piece of the prompt; a cuttable one (a description, a proposal) may be shortened to fit."""

    text: str
    cuttable: bool = False


def system_prompt(request: TurnRequested) -> str:
    agent = request.agent
    if request.turn.phase == Phase.JUDGE:
        return (
            "You are an impartial judge of software engineering proposals. Score strictly against the "
            "rubric, from 0 (absent) to 10 (excellent), and justify the scores in one or two sentences."
        )
    return (
        f"You are {agent.agent_id}, a senior {agent.role.value} engineer on a council of agents that "
        f"deliberates on software engineering tasks. Your focus: {ROLE_FOCUS[agent.role]}. {agent.persona}"
    )


def _brief(request: TurnRequested) -> list[Part]:
    task, brief = request.brief.task, request.brief
    parts = [Part(f"Task {task.task_id}: {task.title}")]
    if task.description:
        parts.append(Part(task.description, cuttable=True))
    if brief.constraints:
        parts += [Part("Constraints:"), Part("\n".join(f"- {c}" for c in brief.constraints), cuttable=True)]
    if brief.rubric:
        rubric = "\n".join(f"- {criterion}: {meaning}" for criterion, meaning in brief.rubric.items())
        parts += [Part("Proposals are judged on:"), Part(rubric, cuttable=True)]
    return parts


def user_prompt_parts(request: TurnRequested, context: str = "") -> list[Part]:
    parts, given = _brief(request), request.input
    if context:
        parts = [Part("What the project has recorded around this task:"), Part(context, cuttable=True), Part(""),
                 *parts]
    match request.turn.phase:
        case Phase.PROPOSE:
            parts.append(Part("Write your proposal: the approach, the key steps, and the main risks."))
        case Phase.CRITIQUE:
            parts += [
                Part(f"Proposal by {request.turn.author_id}:"), Part(given.proposal, cuttable=True),
                Part("Critique this proposal against the criteria: its weaknesses and the concrete changes that "
                     "would fix them. Be brief."),
            ]
        case Phase.REVISE:
            parts += [
                Part("Your proposal:"), Part(given.proposal, cuttable=True),
                Part("A peer's critique of it:"), Part(given.critique, cuttable=True),
                Part("Rewrite your proposal so that it answers the critique. Write only the revised proposal."),
            ]
        case Phase.JUDGE:
            # The shape in words: a model shown an example answer copies its scores.
            names = ", ".join(json.dumps(criterion, ensure_ascii=False) for criterion in request.brief.rubric)
            parts += [Part("Proposal:"), Part(given.proposal, cuttable=True),
                      Part("Score the proposal on each criterion from 0 (absent) to 10 (excellent), then say why in "
                           f'one or two sentences. Answer in JSON: an object "criteria" with a score for each of '
                           f'{names}, then "justification".')]
        case Phase.SELECT:
            for candidate in given.candidates:
                score = "not scored" if candidate.score is None else f"score {candidate.score:.1f}"
                parts += [Part(f"Candidate {candidate.agent_id} ({score}):"),
                          Part(candidate.content, cuttable=True)]
            ids = ", ".join(json.dumps(c.agent_id, ensure_ascii=False) for c in given.candidates)
            parts.append(Part(
                "As the architect, choose the winner among the candidates and explain why in two or three "
                f'sentences. Answer in JSON: "winner_id", one of {ids}, then "rationale".'
            ))
    return parts


def prompt_byte_budget(context_window: int, answer_tokens: int, system: str) -> int:
    """How many bytes the user prompt may take. No token is shorter than a byte, so bytes bound tokens."""
    return max(context_window - answer_tokens - TEMPLATE_TOKENS - len(system.encode()), 0)


def _cut(text: str, keep_bytes: int) -> str:
    kept = text.encode()[:keep_bytes].decode("utf-8", "ignore")
    return f"{kept}\n[{len(text) - len(kept):,} more characters cut to fit the model's context window]"


def fit(parts: list[Part], budget_bytes: int | None) -> str:
    """The parts joined by lines; over the budget, the longest cuttable parts are cut to one common length."""
    texts = [part.text for part in parts]
    sizes = [len(text.encode()) + 1 for text in texts]
    if budget_bytes is None or sum(sizes) <= budget_bytes:
        return "\n".join(texts)
    cuttable = [i for i, part in enumerate(parts) if part.cuttable]
    room = budget_bytes - sum(size for i, size in enumerate(sizes) if i not in cuttable)
    room -= CUT_NOTE_BYTES * len(cuttable)
    # Water-filling: the shortest parts keep all they have, and the rest share what is left equally.
    share, waiting = 0, len(cuttable)
    for size in sorted(sizes[i] for i in cuttable):
        if size * waiting <= room:
            room, waiting = room - size, waiting - 1
            continue
        share = max(room // waiting, 0)
        break
    else:
        share = max(sizes)
    for i in cuttable:
        if sizes[i] > share:
            texts[i] = _cut(texts[i], max(share - 1, 0))
    return "\n".join(texts)
