"""What an agent is asked in each phase, cut to fit the model's context window when it must be. Pure: no I/O."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from contracts.events import Phase, Role, TurnRequested
from services.mesh.tokens import cut_to_tokens, estimate_tokens

ROLE_FOCUS = {
    Role.DEV: "clean, maintainable, tested code",
    Role.QA: "test strategy, edge cases and the bugs others will miss",
    Role.ARCHITECT: "design, scalability, boundaries and proven patterns",
    Role.DEVOPS: "deployment, pipelines, Kubernetes and operability",
    Role.DATA: "data models, pipelines and safe migrations",
}

# The chat template's own tokens around two messages (ChatML: about 10), with room to spare.
TEMPLATE_TOKENS = 64


class Cut(enum.IntEnum):
    """What may be cut to fit the model's context, in the order it is cut. The instructions and the answer's
    shape never are: without them the model cannot do the turn at all."""

    CONTEXT = 1  # what the read models recorded around the task: helpful, never essential
    BRIEF = 2  # the task's description and constraints: the title stays
    PEERS = 3  # what the turn works on: the proposal, the critique, the candidates
    RUBRIC = 4  # what each criterion means; the criteria's names are in the instructions


@dataclass(frozen=True)
class Part:
    """A piece of the prompt, and when it may be cut (None: never)."""

    text: str
    cut: Cut | None = None


@dataclass(frozen=True)
class Fitted:
    text: str
    cut_chars: int = 0


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
        parts.append(Part(task.description, Cut.BRIEF))
    if brief.constraints:
        parts += [Part("Constraints:"), Part("\n".join(f"- {c}" for c in brief.constraints), Cut.BRIEF)]
    if brief.rubric:
        rubric = "\n".join(f"- {criterion}: {meaning}" for criterion, meaning in brief.rubric.items())
        parts += [Part("Proposals are judged on:"), Part(rubric, Cut.RUBRIC)]
    return parts


def user_prompt_parts(request: TurnRequested, context: str = "") -> list[Part]:
    parts, given = _brief(request), request.input
    if context:
        parts = [Part("What the project has recorded around this task:"), Part(context, Cut.CONTEXT), Part(""),
                 *parts]
    match request.turn.phase:
        case Phase.PROPOSE:
            parts.append(Part("Write your proposal: the approach, the key steps, and the main risks."))
        case Phase.CRITIQUE:
            parts += [
                Part(f"Proposal by {request.turn.author_id}:"), Part(given.proposal, Cut.PEERS),
                Part("Critique this proposal against the criteria: its weaknesses and the concrete changes that "
                     "would fix them. Be brief."),
            ]
        case Phase.REVISE:
            parts += [
                Part("Your proposal:"), Part(given.proposal, Cut.PEERS),
                Part("A peer's critique of it:"), Part(given.critique, Cut.PEERS),
                Part("Rewrite your proposal so that it answers the critique. Write only the revised proposal."),
            ]
        case Phase.JUDGE:
            # The shape in words: a model shown an example answer copies its scores.
            names = ", ".join(json.dumps(criterion, ensure_ascii=False) for criterion in request.brief.rubric)
            parts += [Part("Proposal:"), Part(given.proposal, Cut.PEERS),
                      Part("Score the proposal on each criterion from 0 (absent) to 10 (excellent), then say why in "
                           f'one or two sentences. Answer in JSON: an object "criteria" with a score for each of '
                           f'{names}, then "justification".')]
        case Phase.SELECT:
            for candidate in given.candidates:
                score = "not scored" if candidate.score is None else f"score {candidate.score:.1f}"
                parts += [Part(f"Candidate {candidate.agent_id} ({score}):"),
                          Part(candidate.content, Cut.PEERS)]
            ids = ", ".join(json.dumps(c.agent_id, ensure_ascii=False) for c in given.candidates)
            parts.append(Part(
                "As the architect, choose the winner among the candidates and explain why in two or three "
                f'sentences. Answer in JSON: "winner_id", one of {ids}, then "rationale".'
            ))
    return parts


def prompt_token_budget(context_window: int, answer_tokens: int, system: str, *, strict: bool = False) -> int:
    """How many tokens the user prompt may take: the window less the answer, the template and the instructions."""
    return max(context_window - answer_tokens - TEMPLATE_TOKENS - estimate_tokens(system, strict=strict), 0)


def cut_note(cut_chars: int) -> str:
    return f"[… {cut_chars:,} characters cut to fit the model's context]"


# The most a part's note of what was cut takes, and the line break after it.
NOTE_TOKENS = estimate_tokens("\n" + cut_note(10**9) + "\n", strict=True)


def fit(parts: list[Part], budget_tokens: int | None, *, strict: bool = False) -> Fitted:
    """The parts joined by lines, within the budget if cutting can get them there: one kind of part after
    another (Cut's order), the longest of a kind first, cut to one common length, each saying so."""
    texts = [part.text for part in parts]
    if budget_tokens is None or estimate_tokens("\n".join(texts), strict=strict) <= budget_tokens:
        return Fitted("\n".join(texts))
    sizes = [estimate_tokens(text + "\n", strict=strict) for text in texts]
    cut_chars = 0
    for kind in sorted({part.cut for part in parts if part.cut is not None}):
        members = [i for i, part in enumerate(parts) if part.cut == kind]
        room = budget_tokens - sum(size for i, size in enumerate(sizes) if i not in members)
        share = _water_level(sorted(sizes[i] for i in members), room)
        for i in members:
            if sizes[i] > share:
                kept = cut_to_tokens(texts[i], max(share - NOTE_TOKENS, 0), strict=strict)
                cut_chars += len(texts[i]) - len(kept)
                texts[i] = f"{kept}\n{cut_note(len(texts[i]) - len(kept))}" if kept else cut_note(len(texts[i]))
                sizes[i] = estimate_tokens(texts[i] + "\n", strict=strict)
        if sum(sizes) <= budget_tokens:
            break
    return Fitted("\n".join(texts), cut_chars)


def _water_level(sizes: list[int], room: int) -> int:
    """The length that `sizes` (ascending) are cut to so that they share `room`: the short keep all they have."""
    waiting = len(sizes)
    for size in sizes:
        if size * waiting <= room:
            room, waiting = room - size, waiting - 1
            continue
        return max(room // waiting, 0)
    return sizes[-1] if sizes else 0
