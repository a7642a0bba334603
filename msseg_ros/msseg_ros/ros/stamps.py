"""builtin_interfaces/Time <-> float seconds."""
from builtin_interfaces.msg import Time


def to_seconds(t) -> float:
    return t.sec + t.nanosec * 1e-9


def from_seconds(s: float) -> Time:
    sec = int(s // 1)
    return Time(sec=sec, nanosec=min(int(round((s - sec) * 1e9)), 999_999_999))
