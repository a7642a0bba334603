"""Message classes by their type name, for nodes that pass raw CDR through (replay, recorder)."""
from __future__ import annotations

import importlib


def message_class(msgtype: str):
    """'std_msgs/msg/String' (or 'std_msgs/String') -> the Python class, or None when the
    interface package is not installed."""
    pkg, _, name = msgtype.rpartition("/")
    if "/" not in pkg:
        pkg += "/msg"
    try:
        return getattr(importlib.import_module(pkg.replace("/", ".")), name)
    except (ImportError, AttributeError, ValueError):
        return None
