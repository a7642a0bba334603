"""`msseg run --mode replay` without --duration: after the bag has played, the run goes
on while the pipeline's counters still move (frames queued when the bag ended), and
stops once they are still, or at the cap. No timing is asserted: only the order of
events, which holds on a machine of any speed."""
import time

from msseg_ros.cli import graph_commands


class _Runner:
    """runner.wait(t): sleeps t, the graph never ends by itself."""

    def wait(self, t):
        time.sleep(t)
        return False


def test_the_drain_waits_until_the_counters_are_still(monkeypatch):
    monkeypatch.setattr(graph_commands, "REPLAY_DRAIN_S", 0.2)
    monkeypatch.setattr(graph_commands, "REPLAY_DRAIN_MAX_S", 60.0)
    seen = []

    def progress():  # the segmenter handles one more frame on each of the first 8 looks
        seen.append(min(len(seen), 8))
        return seen[-1]

    graph_commands._wait_with(_Runner(), None, lambda: None, 10.0, until=lambda: True, progress=progress)
    assert len(seen) > 9  # it looked again after the last change, and only then stopped
    assert seen[-1] == seen[-2] == 8


def test_the_drain_stops_at_its_cap_while_counters_still_move(monkeypatch):
    monkeypatch.setattr(graph_commands, "REPLAY_DRAIN_S", 0.2)
    monkeypatch.setattr(graph_commands, "REPLAY_DRAIN_MAX_S", 0.6)
    calls = []

    def progress():  # never still
        calls.append(len(calls))
        return len(calls)

    graph_commands._wait_with(_Runner(), None, lambda: None, 10.0, until=lambda: True, progress=progress)
    assert len(calls) >= 2  # it returned (no hang) after following the moving counters
