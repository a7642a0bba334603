import math

from msseg_ros.core.telemetry import LatencyStats, RateMeter


def test_rate_meter_window():
    now = [0.0]
    r = RateMeter(window=2.0, clock=lambda: now[0])
    for _ in range(11):
        r.tick()
        now[0] += 0.1
    assert abs(r.hz - 10.0) < 1e-9
    now[0] += 5.0
    assert r.hz == 0.0


def test_latency_percentiles_ms():
    s = LatencyStats(size=5)
    assert math.isnan(s.percentile_ms(50))
    for v in (0.01, 0.02, 0.03, 0.04, 0.05, 1.0):  # the first falls out of the window
        s.add(v)
    s.add(math.inf)  # ignored
    assert len(s) == 5
    assert abs(s.percentile_ms(50) - 40.0) < 1e-9
    assert abs(s.percentile_ms(100) - 1000.0) < 1e-9
