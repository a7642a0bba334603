"""Errors shared across core. Each subpackage derives its own specific errors from these."""


class MssegError(Exception):
    """Base class of every error raised on purpose by msseg_ros."""


class ConfigError(MssegError, ValueError):
    """A configuration value is invalid; the message names the key and the value."""


class RegistryError(MssegError, KeyError):
    """A registry lookup or registration failed."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""
