"""The capacity model: what each deliberation stores, how long it is kept, and the limits that follow.

`docs/scaling.md` explains it; `python -m bench capacity` measures the footprints. Every stream and
bucket in `streams/definitions.py` takes its limits from here, so the limits and the model they come
from cannot drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DAY = 86_400.0
KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True)
class Footprint:
    """What one full deliberation (3 agents, 1 critique round) adds to one stream or bucket."""

    messages: float
    # Bytes stored with the stand-in LLM's answers, which were `MEASURED_ANSWER_BYTES` long on average.
    bytes: float
    # How many answers' worth of text it stores: each answer's own event, the prompts that quote it, the
    # result that carries the winner. The model swaps the stand-in's answer length for the production one.
    answer_copies: float = 0.0

    def bytes_at(self, answer_bytes: float) -> float:
        return self.bytes + self.answer_copies * (answer_bytes - MEASURED_ANSWER_BYTES)


# `python -m bench capacity --deliberations 300` at commit 8b5e66c on the 2-core VM, stand-in LLM: see
# docs/scaling.md. A plan approval with one task and one role starts one deliberation, so PLANNING's
# share is one approval; each result and conclusion is on ORCHESTRATION.
MEASURED_ANSWER_BYTES = 0.0
FOOTPRINTS: dict[str, Footprint] = {}


@dataclass(frozen=True)
class Load:
    """The load a deployment is sized for."""

    deliberations_per_day: float = 10_000
    # A production answer: 2,048 tokens at most (FLEET_LLM_MAX_TOKENS), about 4 bytes a token.
    answer_bytes: float = 8 * KiB


# The design point the shipped limits are derived from: 10,000 deliberations a day, long answers.
DESIGN_LOAD = Load()
# Room above the design point before a byte limit bites: a bad day, a backlog replayed, a retry storm.
HEADROOM = 2.0

# How long each log keeps its events. Councils are configuration, tiny, and every rebuild needs them all.
# Plans and outcomes are kept a year: a read model rebuilt from the log still shows a year of decisions.
# The transcripts (every prompt and answer) are the bulk, and are kept 30 days; a rebuild then shows the
# decisions of the year, and the turns of the last 30 days. Dead letters are kept as long as the turns.
FOREVER = 0.0
RETENTION_S: dict[str, float] = {
    "CONFIG": FOREVER,
    "PLANNING": 365 * DAY,
    "ORCHESTRATION": 365 * DAY,
    "AGENT": 30 * DAY,
    "DEAD_LETTERS": 30 * DAY,
}

# How long the working records of a deliberation and of a plan outlive their last change. A deliberation
# ends within its deadline (30 minutes by default), so a week is long past any redelivery; every consumer
# refuses an event older than this (services/mesh/consuming.py), so no late copy meets a missing record.
RECORD_RETENTION_S = 7 * DAY
# A dispatch claim is what keeps a deliberation id from ever starting twice; it is a few hundred bytes,
# and lives as long as the requests that could repeat it (ORCHESTRATION's retention).
CLAIM_RETENTION_S = RETENTION_S["ORCHESTRATION"]

# The smallest limit the model may set: an empty model (no footprint measured) still leaves room to run.
FLOOR_BYTES = 64 * MiB


def stored_bytes(footprint: Footprint, retention_s: float, load: Load = DESIGN_LOAD) -> float:
    """What the footprint adds up to over a retention at a load; a retention of FOREVER counts one year."""
    days = (retention_s or 365 * DAY) / DAY
    return footprint.bytes_at(load.answer_bytes) * load.deliberations_per_day * days


def byte_limit(name: str, retention_s: float, load: Load = DESIGN_LOAD, headroom: float = HEADROOM) -> int:
    """The `max_bytes` of a stream or bucket: its footprint over its retention at the load, with headroom,
    rounded up to a whole MiB and never under FLOOR_BYTES."""
    footprint = FOOTPRINTS.get(name, Footprint(0, 0))
    wanted = stored_bytes(footprint, retention_s, load) * headroom
    return max(FLOOR_BYTES, math.ceil(wanted / MiB) * MiB)
