"""Host hygiene for Fast DDS shared memory (Linux).

Every DDS participant maps a shared-memory segment (``/dev/shm/fastdds_*``, the size of
the profile's ``segment_size``) and holds a ``flock`` on its ``*_el`` companion while it
lives. A process that is killed (SIGKILL, OOM) leaves both behind, and /dev/shm is RAM:
on a machine that runs graphs all day they add up until the OOM killer strikes (seen:
20 GB of stale segments). :func:`clean_stale_segments` removes the segments whose lock no
living process holds; live ones are never touched.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

SHM = Path("/dev/shm")


def clean_stale_segments(folder: Path = SHM) -> int:
    """Remove Fast DDS segments (and their lock files and named mutexes) that no process
    holds; returns how many segments were removed. Never raises."""
    removed = 0
    try:
        locks = sorted(folder.glob("fastdds_*_el"))
    except OSError:
        return 0
    for lock in locks:
        segment = lock.with_name(lock.name[: -len("_el")])
        try:
            fd = os.open(lock, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # held: its participant is alive
        try:  # unlink while holding the lock, so a participant starting now cannot adopt it
            for path in (segment, folder / f"sem.{segment.name}_mutex", lock):
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
            removed += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed
