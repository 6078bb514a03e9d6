"""The one vocabulary of the graph read model: labels, relationship types, and the writes made of them.

Every node has a string `id`, unique within its label; writers and readers use these names and no
others. docs/read-models.md documents them, and a unit test keeps that page in step with this module.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

type Scalar = str | int | float | bool
type Property = Scalar | list[str]


class Label(enum.StrEnum):
    STORY = "Story"
    # One move of a story between upstream's states; its id is the event's.
    TRANSITION = "Transition"
    PLAN_VERSION = "PlanVersion"
    TASK = "Task"
    DELIBERATION = "Deliberation"
    PROPOSAL = "Proposal"
    REVISION = "Revision"
    CRITIQUE = "Critique"
    DECISION = "Decision"
    COUNCIL = "Council"
    AGENT = "Agent"
    ACTOR = "Actor"
    # Where the projection stands in each stream; not part of the domain model.
    CHECKPOINT = "Checkpoint"


# Configuration and who acted: few, and kept for good. Every other node belongs to a story's history and
# is deleted the read models' retention after the latest event that wrote it (its `expires_at`).
KEPT_FOR_GOOD = frozenset({Label.COUNCIL, Label.AGENT, Label.ACTOR, Label.CHECKPOINT})
EXPIRING = tuple(label for label in Label if label not in KEPT_FOR_GOOD)
EXPIRES_AT = "expires_at"


class Rel(enum.StrEnum):
    HAS_PLAN = "HAS_PLAN"  # Story -> PlanVersion
    TRANSITIONED = "TRANSITIONED"  # Story -> Transition
    APPROVED = "APPROVED"  # Actor -> PlanVersion
    HAS_TASK = "HAS_TASK"  # PlanVersion -> Task
    DELIBERATED_IN = "DELIBERATED_IN"  # Task -> Deliberation
    HELD_BY = "HELD_BY"  # Deliberation -> Council
    RETRIED_AS = "RETRIED_AS"  # Deliberation -> Deliberation (an ended attempt -> its retry)
    HAS_PROPOSAL = "HAS_PROPOSAL"  # Deliberation -> Proposal
    REVISED_AS = "REVISED_AS"  # Proposal -> Revision
    CRITIQUES = "CRITIQUES"  # Critique -> Proposal
    AUTHORED = "AUTHORED"  # Agent -> Proposal | Revision | Critique
    DECIDED = "DECIDED"  # Deliberation -> Decision
    CHOSE = "CHOSE"  # Decision -> Proposal
    HAS_MEMBER = "HAS_MEMBER"  # Council -> Agent (ever a member; Council.members lists the current ones)


# Which labels each relationship joins: the only edges the projection writes.
EDGES: dict[Rel, tuple[tuple[Label, Label], ...]] = {
    Rel.HAS_PLAN: ((Label.STORY, Label.PLAN_VERSION),),
    Rel.TRANSITIONED: ((Label.STORY, Label.TRANSITION),),
    Rel.APPROVED: ((Label.ACTOR, Label.PLAN_VERSION),),
    Rel.HAS_TASK: ((Label.PLAN_VERSION, Label.TASK),),
    Rel.DELIBERATED_IN: ((Label.TASK, Label.DELIBERATION),),
    Rel.HELD_BY: ((Label.DELIBERATION, Label.COUNCIL),),
    Rel.RETRIED_AS: ((Label.DELIBERATION, Label.DELIBERATION),),
    Rel.HAS_PROPOSAL: ((Label.DELIBERATION, Label.PROPOSAL),),
    Rel.REVISED_AS: ((Label.PROPOSAL, Label.REVISION),),
    Rel.CRITIQUES: ((Label.CRITIQUE, Label.PROPOSAL),),
    Rel.AUTHORED: ((Label.AGENT, Label.PROPOSAL), (Label.AGENT, Label.REVISION), (Label.AGENT, Label.CRITIQUE)),
    Rel.DECIDED: ((Label.DELIBERATION, Label.DECISION),),
    Rel.CHOSE: ((Label.DECISION, Label.PROPOSAL),),
    Rel.HAS_MEMBER: ((Label.COUNCIL, Label.AGENT),),
}


def plan_key(story_id: str, plan_id: str) -> str:
    return f"{story_id}/{plan_id}"


def task_key(story_id: str, plan_id: str, task_id: str) -> str:
    return f"{story_id}/{plan_id}/{task_id}"


def proposal_key(deliberation_id: str, author_id: str) -> str:
    return f"{deliberation_id}/{author_id}"


def revision_key(deliberation_id: str, author_id: str, round_: int) -> str:
    return f"{deliberation_id}/{author_id}/r{round_}"


def critique_key(deliberation_id: str, critic_id: str, author_id: str, round_: int) -> str:
    return f"{deliberation_id}/{critic_id}->{author_id}/r{round_}"


@dataclass(frozen=True)
class NodeWrite:
    """MERGE the node by id, then set these properties (None values are left out, never written)."""

    label: Label
    id: str
    props: dict[str, Property] = field(default_factory=dict)
    # When the event that writes it happened (epoch seconds): the node expires the retention after its latest.
    at: float | None = None


@dataclass(frozen=True)
class EdgeWrite:
    """MERGE both endpoints by id (a stub, if the event that fills it has not arrived yet), then the edge."""

    source: Label
    source_id: str
    rel: Rel
    target: Label
    target_id: str
    props: dict[str, Property] = field(default_factory=dict)
    # Dates both endpoints, as a NodeWrite's `at` does.
    at: float | None = None

    def __post_init__(self) -> None:
        if (self.source, self.target) not in EDGES[self.rel]:
            raise ValueError(f"{self.rel} does not join {self.source} to {self.target}")


type GraphWrite = NodeWrite | EdgeWrite
