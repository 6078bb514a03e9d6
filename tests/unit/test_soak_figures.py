"""How the soak turns samples into a growth figure: a least-squares slope per hour, after warm-up."""

import pytest

from bench.soak import growth, live_heap_mib, slope_per_hour


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


def test_a_go_servers_live_heap_is_what_its_latest_collection_left(tmp_path):
    log = tmp_path / "nats.log"
    assert live_heap_mib(log) == 0.0
    log.write_text("[1] 2026/12/04 16:00:00.000 [INF] Starting nats-server\n"
                   "gc 1 @0.011s 2%: 0.01+1.2+0.02 ms clock, 0.02+0.3/1.1/0+0.04 ms cpu, 3->4->1 MB, 4 MB goal, "
                   "0 MB stacks, 0 MB globals, 2 P\n"
                   "[1] 2026/12/04 16:00:01.000 [INF] Server is ready\n"
                   "gc 2 @5.201s 1%: 0.02+3.1+0.03 ms clock, 0.04+0.5/2.9/0+0.06 ms cpu, 61->63->29 MB, 62 MB goal, "
                   "0 MB stacks, 0 MB globals, 2 P\n")
    assert live_heap_mib(log) == 29.0
