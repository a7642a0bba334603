"""The typed robot backend seam: one factory, typed options per backend (a typo is an
error, not silently dropped), frozen status snapshots the node publishes without knowing
the backend, and error counts that a worker thread and a reader can share."""
import dataclasses
import threading

import pytest

from msseg_ros.core.errors import RegistryError
from msseg_ros.core.robots.backends import (
    ROBOT_BACKENDS,
    BridgeSettings,
    DeltaBackend,
    DeltaOptions,
    DryRunBackend,
    FanucBackend,
    LineOptions,
    create_backend,
)
from msseg_ros.core.robots.cell import Speeds, line_robots
from msseg_ros.core.robots.config import CellRobots
from msseg_ros.core.robots.delta_controller import ControllerState
from msseg_ros.core.robots.status import BackendStatus, LinkState, RobotStatus

from conftest import free_ports


def _cell(n=2, places=None):
    robots = line_robots(n, port0=free_ports(1))
    return CellRobots(robots, Speeds(), None, {1: 1}, {1: 1.0}, ["a"], places or {}, 3)


SETTINGS = BridgeSettings(beltless=True, encoder_timeout=0.7, modbus_timeout=0.25, modbus_watchdog=2.0,
                          fanuc_override=40, suction_port=3, vacuum_port=4)


def test_the_factory_builds_each_backend_with_its_typed_options():
    assert ROBOT_BACKENDS.names() == ["delta", "dry_run", "fanuc"]
    dry = create_backend("dry_run", _cell(), SETTINGS)
    assert isinstance(dry, DryRunBackend) and dry.options == LineOptions(3, {1: 1.0}, None, 0.7, True)
    delta = create_backend("delta", _cell(), SETTINGS)
    try:
        assert isinstance(delta, DeltaBackend)
        assert (delta.options.timeout, delta.options.watchdog, delta.options.max_in_flight) == (0.25, 2.0, 3)
        assert all(c.timeout == 0.25 and c.watchdog == 2.0 for c in delta.clients.values())
    finally:
        delta.close()
    fanuc = create_backend("fanuc", _cell(1, {1: (0.0, 0.5, 0.3)}), SETTINGS)
    try:
        assert isinstance(fanuc, FanucBackend)
        assert (fanuc.override, fanuc.suction_port, fanuc.vacuum_port) == (40, 3, 4)
        assert fanuc.place_positions == {1: (0.0, 0.5, 0.3)}
    finally:
        fanuc.close()


def test_unknown_backend_and_misspelt_option_are_refused():
    with pytest.raises(RegistryError, match="unknown robot backend 'kuka'; registered: delta, dry_run, fanuc"):
        create_backend("kuka", _cell(), SETTINGS)
    with pytest.raises(TypeError, match="watchdgo"):
        DeltaOptions(watchdgo=1.0)


def test_status_is_a_frozen_snapshot_with_enums():
    be = create_backend("dry_run", _cell(), SETTINGS)
    st = be.status()
    assert isinstance(st, BackendStatus) and st.kind == "dry_run"
    assert [r.link for r in st.robots] == [LinkState.NO_CONTROLLER] * 2 and st.down == []
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.in_flight = 3
    kv = st.key_values()
    assert kv["delta_1.state"] == "dry_run" and kv["delta_2.queued"] == 0 and kv["in_flight"] == 0
    assert st.robot("delta_2").name == "delta_2"
    with pytest.raises(KeyError, match="no robot 'delta_9'"):
        st.robot("delta_9")


def test_availability_follows_link_and_controller_state():
    assert RobotStatus("r", LinkState.CONNECTED, ControllerState.BUSY).available
    assert not RobotStatus("r", LinkState.CONNECTED, ControllerState.ERROR).available
    assert not RobotStatus("r", LinkState.STALE, ControllerState.IDLE).available
    assert not RobotStatus("r", LinkState.RECOVERING).available
    st = BackendStatus("delta", (RobotStatus("a", LinkState.CONNECTED, ControllerState.ERROR, error_code=7),
                                 RobotStatus("b", LinkState.CONNECTED, ControllerState.IDLE)),
                       errors={"poll_lost": 2}, picks_done={2: 5}, ledger={"repeated_candidates": 1})
    assert st.down == ["a"]
    kv = st.key_values()
    assert (kv["a.controller"], kv["a.error_code"], kv["done_robot_2"], kv["error_poll_lost"],
            kv["ledger_repeated_candidates"]) == ("error", 7, 5, 2, 1)


def test_error_counts_are_exact_under_concurrent_reads():
    be = create_backend("dry_run", _cell(), SETTINGS)
    stop = threading.Event()
    seen = []

    def reader():
        while not stop.is_set():
            seen.append(be.status().errors.get("x", 0))

    t = threading.Thread(target=reader)
    t.start()
    workers = [threading.Thread(target=lambda: [be.count_error("x") for _ in range(2000)]) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    t.join()
    assert be.status().errors == {"x": 8000}
    assert seen == sorted(seen)  # snapshots never go backwards
