"""What a robot backend reports: typed, immutable snapshots that a node publishes without
knowing the backend (the robot_bridge turns them into /diagnostics key-values)."""
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from msseg_ros.core.robots.delta_controller import ControllerState


class LinkState(str, enum.Enum):
    """The bridge's link to one controller."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"  # Modbus: connected, heartbeat alive
    STALE = "stale"  # Modbus: TCP up but the heartbeat stopped (the controller hangs)
    READY = "ready"  # RMI: session initialised
    RECOVERING = "recovering"  # RMI: after a fault, until reset
    NO_CONTROLLER = "dry_run"  # the dry_run backend: nothing to connect to

    def __str__(self) -> str:
        return self.value


#: links on which a robot can take picks
USABLE_LINKS = frozenset({LinkState.CONNECTED, LinkState.READY, LinkState.NO_CONTROLLER})


@dataclass(frozen=True)
class RobotStatus:
    """One robot as its backend sees it.

    Attributes:
        name: the robot's name.
        link: the link to its controller.
        controller: the controller's own state, where the protocol reports one (Modbus).
        error_code: the controller's last error code (0: none).
        queued: picks planned for it and not yet finished.
        reconnects: successful reconnections after a loss.
        busy: a pick is in progress (RMI).
        session_port: the RMI session port, once connected.
    """

    name: str
    link: LinkState
    controller: ControllerState | None = None
    error_code: int = 0
    queued: int = 0
    reconnects: int = 0
    busy: bool = False
    session_port: int | None = None

    @property
    def available(self) -> bool:
        return self.link in USABLE_LINKS and self.controller != ControllerState.ERROR


@dataclass(frozen=True)
class BackendStatus:
    """A snapshot of a backend, safe to read on any thread.

    Attributes:
        kind: the backend's registered name.
        robots: one status per robot, in the backend's order.
        errors: link and controller errors by kind, counted since start.
        picks_done: done picks by robot index.
        ledger: the pick ledger's counters (repeated candidates, refused re-sends, ...).
        in_flight: picks assigned or sent and not finished.
        encoder_stalled: no fresh belt state: nothing new is sent.
    """

    kind: str
    robots: tuple[RobotStatus, ...]
    errors: Mapping[str, int] = field(default_factory=dict)
    picks_done: Mapping[int, int] = field(default_factory=dict)
    ledger: Mapping[str, int] = field(default_factory=dict)
    in_flight: int = 0
    encoder_stalled: bool = False

    def robot(self, name: str) -> RobotStatus:
        for r in self.robots:
            if r.name == name:
                return r
        raise KeyError(f"no robot {name!r}; robots: {', '.join(r.name for r in self.robots)}")

    @property
    def down(self) -> list[str]:
        """Robots that cannot take picks now."""
        return [r.name for r in self.robots if not r.available]

    def key_values(self) -> dict[str, Any]:
        """Flat ``{key: value}`` for diagnostics: ``NAME.field``, ``done_robot_N``,
        ``error_KIND``, ``ledger_COUNTER``."""
        out: dict[str, Any] = {"in_flight": self.in_flight}
        for r in self.robots:
            out[f"{r.name}.state"] = str(r.link)
            if r.controller is not None:
                out[f"{r.name}.controller"] = r.controller.name.lower()
                out[f"{r.name}.error_code"] = r.error_code
            out[f"{r.name}.queued"] = r.queued
            out[f"{r.name}.reconnects"] = r.reconnects
            if r.session_port is not None or r.busy:
                out[f"{r.name}.busy"] = r.busy
                out[f"{r.name}.session_port"] = r.session_port
        out.update({f"done_robot_{k}": v for k, v in sorted(self.picks_done.items())})
        out.update({f"error_{k}": v for k, v in sorted(self.errors.items())})
        out.update({f"ledger_{k}": v for k, v in sorted(self.ledger.items())})
        return out
