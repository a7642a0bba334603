"""What every ``msseg`` command module shares: the usage error, the parser class and
``KEY=VALUE`` parsing."""
from __future__ import annotations

import argparse


class UsageError(Exception):
    """A user mistake: reported as one line, exit code 2."""


class CliParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are UsageErrors (one line, exit 2, no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def parse_key_values(items: list[str], what: str = "--set") -> dict:
    """``KEY=VALUE`` items (VALUE in YAML) -> dict; raises UsageError on bad syntax."""
    import yaml

    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} {item!r}: expected KEY=VALUE")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise UsageError(f"{what} {item!r}: value is not valid YAML") from None
        out[key.strip()] = tuple(value) if isinstance(value, list) else value
    return out
