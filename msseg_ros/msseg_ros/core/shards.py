"""Segmenters that scale out: N segmenter instances share a frame stream, each taking the
frames of its shard.

A frame's index is its stamp in microseconds. Its shard comes from that index through
Knuth's multiplicative hash, whose high bits are scaled to 0 .. N-1 (the low bits of
stamps at a fixed period repeat, so a plain index modulo N could send every frame to one
shard). Every shard computes the same partition from the stamp alone: the instances
need no coordination, can start at different times, and every frame is segmented by
exactly one of them.
"""
from __future__ import annotations

_GOLDEN = 2654435761  # Knuth's multiplicative hash constant, ~2**32 / golden ratio


def frame_shard(stamp_ns: int, shards: int) -> int:
    """The shard in ``0 .. shards - 1`` that segments the frame stamped ``stamp_ns``."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    index = stamp_ns // 1000
    return (((index * _GOLDEN) & 0xFFFFFFFF) * shards) >> 32
