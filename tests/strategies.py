"""Hypothesis strategies for every event the catalog carries (malformed ingress: tests/malformed.py).

Valid payloads are derived from the msgspec types and their constraints (`msgspec.inspect`):
`hypothesis.strategies.from_type` ignores `msgspec.Meta` bounds and cannot build msgspec's default
factories, so nearly everything it drew for these Structs failed to decode.

The profile is `ci` (50 examples a property) unless HYPOTHESIS_PROFILE names another: `fuzz` runs 2000.
"""

from __future__ import annotations

import datetime as dt
import os
import re

import msgspec.inspect as mi
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from contracts import catalog
from contracts.catalog import EventSpec
from contracts.envelope import Envelope
from contracts.events import CriterionName, Event, LegacyPlanApproved, PlanApproved, PlannedTask, Role

# No example database: failures print their example, and the working tree stays clean.
_QUIET = {"database": None, "deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=50, **_QUIET)
settings.register_profile("fuzz", max_examples=2000, **_QUIET)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

MiB = 1024 * 1024
# Drawn strings and lists stay short; the size limits get cases of their own.
LONGER_BY = 12
MORE_BY = 3
INT64 = (-(2**63), 2**63 - 1)

# Any Unicode scalar value (no lone surrogates: they are not UTF-8).
text_chars = st.characters(codec="utf-8")
# What survives a trip through NATS headers: nats-py strips ASCII whitespace around a value.
header_values = st.text(st.characters(exclude_categories=("C", "Z")), min_size=1, max_size=40)


# --- valid payloads ------------------------------------------------------------------------


def _bounded(low: int | None, high: int | None, more: int) -> tuple[int, int]:
    low = low or 0
    return low, low + more if high is None else min(high, low + more)


def from_info(info: mi.Type) -> st.SearchStrategy:
    """Values of a msgspec type that its decoder accepts: constraints included, no NaN or infinity."""
    match info:
        case mi.StrType(min_length=low, max_length=high, pattern=pattern):
            low, high = _bounded(low, high, LONGER_BY)
            text = st.text(text_chars, min_size=low, max_size=high)
            return text if pattern is None else text.filter(re.compile(pattern).search)
        case mi.IntType(ge=ge, gt=gt, le=le, lt=lt):
            low = ge if ge is not None else gt + 1 if gt is not None else INT64[0]
            high = le if le is not None else lt - 1 if lt is not None else INT64[1]
            return st.integers(low, high)
        case mi.FloatType(ge=ge, gt=gt, le=le, lt=lt):
            return st.floats(min_value=ge if ge is not None else gt, max_value=le if le is not None else lt,
                             exclude_min=gt is not None, exclude_max=lt is not None,
                             allow_nan=False, allow_infinity=False)
        case mi.BoolType():
            return st.booleans()
        case mi.NoneType():
            return st.none()
        case mi.EnumType(cls=cls):
            return st.sampled_from(cls)
        case mi.BytesType(min_length=low, max_length=high):
            low, high = _bounded(low, high, LONGER_BY)
            return st.binary(min_size=low, max_size=high)
        case mi.DateTimeType():
            # The services write UTC times; msgspec keeps microseconds and the offset.
            return st.datetimes(timezones=st.just(dt.UTC))
        case mi.ListType(item_type=item, min_length=low, max_length=high):
            low, high = _bounded(low, high, MORE_BY)
            return st.lists(from_info(item), min_size=low, max_size=high)
        case mi.DictType(key_type=key, value_type=value, min_length=low, max_length=high):
            low, high = _bounded(low, high, MORE_BY)
            return st.dictionaries(from_info(key), from_info(value), min_size=low, max_size=high)
        case mi.UnionType(types=types):
            return st.one_of(*(from_info(t) for t in types))
        case mi.StructType(cls=cls, fields=fields):
            required = {f.name: from_info(f.type) for f in fields if f.required}
            optional = {f.name: from_info(f.type) for f in fields if not f.required}
            return st.fixed_dictionaries(required, optional=optional).map(lambda kwargs: cls(**kwargs))
    raise TypeError(f"no strategy for {info!r}")


def payloads(payload: type[Event]) -> st.SearchStrategy[Event]:
    return from_info(mi.type_info(payload))


# Every event in the catalog, on its subject.
events: st.SearchStrategy[tuple[EventSpec, Event]] = st.sampled_from(catalog.EVENTS).flatmap(
    lambda spec: st.tuples(st.just(spec), payloads(spec.payload))
)


def envelopes(spec: EventSpec, payload: Event) -> st.SearchStrategy[Envelope]:
    """The envelope a producer would send `payload` in, every header filled."""
    return st.builds(
        Envelope, event_id=header_values, event_type=st.just(spec.event_type), schema_version=st.just(spec.version),
        occurred_at=st.datetimes(timezones=st.just(dt.UTC)), producer=header_values, correlation_id=header_values,
        causation_id=header_values, aggregate_type=st.just(spec.aggregate_type),
        aggregate_id=st.just(payload.aggregate_id()), traceparent=header_values,
    )


non_empty = st.text(text_chars, min_size=1, max_size=LONGER_BY)
tasks = st.builds(PlannedTask, task_id=non_empty, title=non_empty, description=st.text(text_chars, max_size=40))
# Approvals the planning service turns into requests: no role or task twice.
approvals: st.SearchStrategy[PlanApproved] = st.builds(
    PlanApproved, story_id=non_empty, plan_id=non_empty, approved_by=non_empty,
    roles=st.lists(st.sampled_from(Role), min_size=1, max_size=3, unique=True),
    tasks=st.lists(tasks, max_size=3, unique_by=lambda task: task.task_id),
    rubric=st.dictionaries(from_info(mi.type_info(CriterionName)), st.text(text_chars, max_size=20), max_size=2),
    constraints=st.lists(st.text(text_chars, max_size=20), max_size=2),
)
legacy_approvals: st.SearchStrategy[LegacyPlanApproved] = st.builds(
    LegacyPlanApproved, story_id=non_empty, plan_id=non_empty, approved_by=non_empty,
    roles=st.lists(st.sampled_from(Role), min_size=1, max_size=3, unique=True),
    timestamp=st.one_of(st.none(), non_empty, st.integers(*INT64), st.floats(allow_nan=False, allow_infinity=False)),
)
