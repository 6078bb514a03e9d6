"""Council configuration as a fold of events, and the default councils. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable

from contracts.events import (
    DEFAULT_DELIBERATION_DEADLINE_S,
    AgentProfile,
    Council,
    CouncilCreated,
    CouncilDeleted,
    Protocol,
    Role,
)

# Three voices that disagree usefully. Agents beyond the third reuse them with other seeds.
PERSONAS = (
    "The pragmatist: favours the simplest design that fully solves the task, and says what it leaves out.",
    "The skeptic: hunts for failure modes, edge cases and hidden costs before anything else.",
    "The innovator: looks for a better approach than the obvious one, and argues for it with evidence.",
)
TEMPERATURES = (0.3, 0.7, 1.0)

type CouncilEvent = CouncilCreated | CouncilDeleted


def agent_profiles(role: Role, size: int, model: str | None = None) -> list[AgentProfile]:
    """`dev-1`, `dev-2`, ...: each with its own persona, temperature and seed."""
    return [
        AgentProfile(
            agent_id=f"{role.value.lower()}-{index + 1}",
            role=role,
            persona=PERSONAS[index % len(PERSONAS)],
            temperature=TEMPERATURES[index % len(TEMPERATURES)],
            seed=1000 + index,
            model=model,
        )
        for index in range(size)
    ]


def majority(size: int) -> int:
    return size // 2 + 1


def new_council(
    role: Role,
    size: int = 3,
    *,
    model: str | None = None,
    critique_rounds: int = 1,
    quorum: int | None = None,
    top_k: int = 3,
    phase_deadline_s: float = 300.0,
    deliberation_deadline_s: float = DEFAULT_DELIBERATION_DEADLINE_S,
) -> Council:
    """A council of `size` agents; the quorum defaults to a majority (2 of 3)."""
    quorum = majority(size) if quorum is None else quorum
    if not 1 <= quorum <= size:
        raise ValueError(f"quorum {quorum} is impossible for a council of {size}")
    protocol = Protocol(
        critique_rounds=critique_rounds, quorum=quorum, top_k=top_k, phase_deadline_s=phase_deadline_s,
        deliberation_deadline_s=deliberation_deadline_s,
    )
    return Council(role=role, agents=agent_profiles(role, size, model), protocol=protocol)


def default_councils() -> list[Council]:
    """What a fresh mesh starts with: every role, three agents each."""
    return [new_council(role) for role in Role]


def current_councils(events: Iterable[CouncilEvent]) -> dict[Role, Council]:
    """The councils in force after these events, in log order: the latest event per role wins."""
    councils: dict[Role, Council] = {}
    for event in events:
        if isinstance(event, CouncilCreated):
            councils[event.council.role] = event.council
        else:
            councils.pop(event.role, None)
    return councils


def architect_of(councils: dict[Role, Council]) -> AgentProfile | None:
    """Who judges and selects winners: the first agent of the ARCHITECT council."""
    council = councils.get(Role.ARCHITECT)
    return council.agents[0] if council else None
