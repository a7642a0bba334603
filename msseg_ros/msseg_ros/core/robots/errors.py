"""Errors of the robots subpackage; each message names the bad value."""
from __future__ import annotations

from msseg_ros.core.errors import ConfigError, MssegError


class RobotError(MssegError, RuntimeError):
    """Base class of robot errors."""


class RobotConfigError(ConfigError):
    """A robot, cell or speed parameter is invalid."""


class WorkspaceError(RobotError):
    """A pose lies outside a robot's workspace or joint limits."""


class DuplicatePickError(RobotError):
    """A pick_id was about to be sent a second time (never allowed)."""


class ControllerError(RobotError):
    """The controller refused a request or reported a fault; ``code`` is its error code."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class ConnectionLost(RobotError, ConnectionError):
    """The connection to a controller dropped or timed out."""
