"""How the soak turns samples into a growth figure: a least-squares slope per hour, after warm-up."""

import pytest

from bench.soak import growth, slope_per_hour


def test_a_flat_series_grows_by_nothing_and_a_steady_one_by_its_rate():
    assert slope_per_hour([(0, 50.0), (60, 50.0), (120, 50.0)]) == 0.0
    assert slope_per_hour([(0, 10.0), (1800, 15.0), (3600, 20.0)]) == pytest.approx(10.0)
    assert slope_per_hour([(0, 1.0)]) == 0.0


def test_the_warm_up_is_left_out_so_a_start_up_climb_is_not_counted_as_growth():
    samples = [{"t": t, "v": v} for t, v in [(0, 10.0), (100, 60.0), (300, 100.0), (600, 100.0), (900, 100.0),
                                             (1200, 100.0)]]
    start, end, slope = growth(samples, lambda s: s["v"])
    assert (start, end, slope) == (100.0, 100.0, 0.0)


def test_growth_is_counted_only_once_every_window_of_the_mesh_has_filled():
    # Memory that grows until the duplicate windows fill (ten minutes) is warm-up, not growth.
    samples = [{"t": t, "v": v} for t, v in [(0, 10.0), (300, 40.0), (600, 70.0), (720, 80.0), (1200, 80.0),
                                             (1800, 80.0)]]
    assert growth(samples, lambda s: s["v"], warm_up_s=720) == (80.0, 80.0, 0.0)
    # A run too short to leave two samples past it counts its last three quarters instead.
    assert growth(samples[:3], lambda s: s["v"], warm_up_s=720)[1] == 70.0
