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


def test_pick_id_audit_finds_reused_ids_and_double_endings():
    from msseg_ros.core import tables
    from msseg_ros.core.telemetry import PickIdAudit

    audit = PickIdAudit(tolerance=0.05)
    c = tables.empty(tables.CANDIDATES, 3)
    c["pick_id"] = [1, 2, 3]
    c["x"], c["y"], c["belt_position"] = [0.1, 0.2, 0.3], [0.0, 0.1, 0.2], 1.0
    audit.add_candidates(c)
    later = c.copy()
    later["x"] += 0.25  # the belt moved 0.25 m: the same objects, same ids
    later["belt_position"] = 1.25
    audit.add_candidates(later)
    assert audit.summary()["reused"] == 0
    other = c[:1].copy()
    other["x"] = 0.4  # id 1 on an object 0.3 m away on the belt
    audit.add_candidates(other)
    off_line = c[:1].copy()
    off_line["pick_id"], off_line["belt_position"] = 9, float("nan")  # camera cell: not audited
    audit.add_candidates(off_line)
    r = tables.empty(tables.PICK_RESULTS, 3)
    r["pick_id"] = [1, 2, 2]
    audit.add_results(r)
    assert audit.summary() == {"issued": 3, "reused": 1, "ended": 2, "ended_twice": 1}
