"""The capacity model: what each deliberation stores, how long it is kept, and the limits that follow.

`docs/scaling.md` explains it; `python -m bench capacity` measures the footprints. Every stream and
bucket in `streams/definitions.py` takes its limits from here, so the limits and the model they come
from cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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


# `python -m bench capacity --deliberations 300` at commit b215cd8 on the 2-core VM, stand-in LLM, 300
# deliberations at 148-byte answers and 300 at 1,512 (docs/scaling.md). A plan with one task and one role
# starts one deliberation, so PLANNING's share is one approval; dead letters are not part of a normal
# deliberation, and their stream gets the floor.
MEASURED_ANSWER_BYTES = 148.0
FOOTPRINTS: dict[str, Footprint] = {
    "PLANNING": Footprint(messages=1, bytes=815),
    "ORCHESTRATION": Footprint(messages=12, bytes=13_816, answer_copies=2.07),
    "AGENT": Footprint(messages=26, bytes=39_906, answer_copies=31.54),
    "KV_DISPATCH_CLAIMS": Footprint(messages=1, bytes=210),
    "KV_COLLECTOR_DELIBERATIONS": Footprint(messages=1, bytes=7_087, answer_copies=6.35),
    "KV_PLAN_OUTCOMES": Footprint(messages=1, bytes=684),
}
# What does not grow with the load: a lease per projection, one revision each (a few hundred bytes).
FIXED_BYTES: dict[str, int] = {
    "KV_PROJECTION_LEASES": 1 * MiB,
}


# The smallest limit the model may set: an empty model (no footprint measured) still leaves room to run.
FLOOR_BYTES = 64 * MiB


@dataclass(frozen=True)
class Load:
    """The load a deployment is sized for: FLEET_DELIBERATIONS_PER_DAY where `fleet streams apply` runs."""

    deliberations_per_day: float = 100
    # A mean answer of about 1,000 tokens at about 4 bytes a token (FLEET_LLM_MAX_TOKENS caps one at 2,048).
    answer_bytes: float = 4 * KiB
    # FLEET_STREAM_FLOOR_MIB: smaller where the limits should bite within minutes (the soak).
    floor_bytes: int = FLOOR_BYTES


# Unset, a deployment is sized for 100 deliberations a day (a team trying it: the embedded mesh, the dev
# overlay); the prod overlay sets 1,000.
DESIGN_LOAD = Load()
LOAD_VARIABLE = "FLEET_DELIBERATIONS_PER_DAY"
FLOOR_VARIABLE = "FLEET_STREAM_FLOOR_MIB"
# Room above the load before a byte limit bites: a bad day, a backlog replayed, a retry storm.
HEADROOM = 2.0


def positive_from(env: Mapping[str, str], variable: str, meaning: str) -> float | None:
    """A number above 0 from `env`, or None when unset; `meaning` says what it counts, for the error."""
    raw = env.get(variable, "")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ValueError(f"{variable}={raw!r} must be a number of {meaning} above 0")
    return value


def load_from(env: Mapping[str, str]) -> Load:
    per_day = positive_from(env, LOAD_VARIABLE, "deliberations a day")
    floor_mib = positive_from(env, FLOOR_VARIABLE, "MiB")
    return Load(
        deliberations_per_day=DESIGN_LOAD.deliberations_per_day if per_day is None else per_day,
        floor_bytes=FLOOR_BYTES if floor_mib is None else math.ceil(floor_mib * MiB),
    )

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

# How long the read models keep what an event wrote, after the aggregate's latest event: as long as the
# transcripts are kept, so a rebuild from the log gives back everything the live read models hold.
# Decisions stay in ORCHESTRATION's log for the year, to replay; docs/read-models.md says what expires.
READ_MODEL_RETENTION_S = RETENTION_S["AGENT"]


def stored_bytes(footprint: Footprint, retention_s: float, load: Load = DESIGN_LOAD) -> float:
    """What the footprint adds up to over a retention at a load; a retention of FOREVER counts one year."""
    days = (retention_s or 365 * DAY) / DAY
    return footprint.bytes_at(load.answer_bytes) * load.deliberations_per_day * days


def byte_limit(name: str, retention_s: float, load: Load = DESIGN_LOAD, headroom: float = HEADROOM) -> int:
    """The `max_bytes` of a stream or bucket (by its stream's name, KV_<bucket> for a bucket): its
    footprint over its retention at the load, with headroom, rounded up to a whole MiB and never under
    the load's floor, FLOOR_BYTES unless told (or its FIXED_BYTES). JetStream reserves it on every server that
    holds a copy, at creation."""
    if name in FIXED_BYTES:
        return FIXED_BYTES[name]
    footprint = FOOTPRINTS.get(name, Footprint(0, 0))
    wanted = stored_bytes(footprint, retention_s, load) * headroom
    return max(load.floor_bytes, math.ceil(wanted / MiB) * MiB)
