"""A durable's routes must fit its filter: every exact subject handled, every handler reachable."""

import pytest

from services.mesh.consuming import DurableConsumer
from streams.definitions import ConsumerSpec


async def handler(incoming):
    return []


def spec(*filters: str) -> ConsumerSpec:
    return ConsumerSpec(durable="test-routes", stream="PLANNING", filter_subjects=filters, service="planning")


def test_a_wildcard_filter_needs_no_route_for_each_subject_it_passes():
    DurableConsumer(spec("planning.>"), {"planning.plan.approved.v1": handler}, publisher=None)


def test_an_exact_filter_without_a_route_is_refused_at_wiring():
    with pytest.raises(ValueError, match=r"no handler for \['planning.b.c.v1'\]"):
        DurableConsumer(spec("planning.a.b.v1", "planning.b.c.v1"), {"planning.a.b.v1": handler}, publisher=None)


def test_a_route_its_filter_never_passes_is_refused_at_wiring():
    with pytest.raises(ValueError, match=r"its filter passes no message to \['config.council.created.v1'\]"):
        DurableConsumer(spec("planning.>"), {"config.council.created.v1": handler}, publisher=None)

