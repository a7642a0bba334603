"""The delta controller's Modbus TCP register map (holding registers, device id 1).

Words are big-endian; 32-bit values take two registers, high word first; floats are
IEEE 754. The client writes the whole command block in one request (function 16), the
handshake register last: the controller takes a command when the handshake changes, and
echoes it with the answer in the status block. docs/robots.md has the same table.

Status block (controller -> client), registers 0..59:

    ===== ====== ==================================================================
    reg   type   meaning
    ===== ====== ==================================================================
    0     u16    heartbeat, +1 per control-loop cycle (the client's watchdog)
    1     u16    state: 0 idle, 1 busy, 2 error
    2     u16    error code (0 none, 10 servo fault)
    3     u16    commands queued, the one in progress included
    4-5   u32    last accepted pick_id
    6-7   u32    last done pick_id
    8     u16    handshake echo: the handshake of the last command taken
    9     u16    answer to it: 0 accepted, 1 queue full, 2 duplicate, 3 workspace,
                 4 in error, 5 bad value
    10    u16    results written so far (wraps at 65536)
    11    u16    picks done so far (wraps)
    12-43 8 x    results ring, oldest first: pick_id u32, status u16 (CONTRACT pick
                 status), spare u16
    44-59 8 x    pick_ids queued (u32, 0 = empty), the one in progress first
    ===== ====== ==================================================================

Command block (client -> controller), registers 100..113:

    ======= ====== ================================================================
    100-101 u32    pick_id
    102-107 3 f32  target x, y, z in the robot base frame, m, valid at ...
    108-111 f64    ... this belt travel, m (the controller tracks from its encoder)
    112     u16    bin
    113     u16    handshake (change it to submit)
    ======= ====== ================================================================

Control (client -> controller): 120 u16 request (1: reset error).
"""
from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

STATUS_ADDR, STATUS_COUNT = 0, 60
COMMAND_ADDR, COMMAND_COUNT = 100, 14
HANDSHAKE_REG = 113
CONTROL_ADDR = 120
REQUEST_RESET = 1
REGISTERS = 128
RING, QUEUE = 8, 8


def pack(fmt: str, *values: float) -> list[int]:
    raw = struct.pack(">" + fmt, *values)
    return [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]


def unpack(fmt: str, regs: Sequence[int]) -> tuple[Any, ...]:
    return struct.unpack(">" + fmt, b"".join(int(r).to_bytes(2, "big") for r in regs))


@dataclass(frozen=True)
class Status:
    heartbeat: int
    state: int
    error: int
    queued: int
    last_accepted: int
    last_done: int
    handshake: int
    answer: int
    result_count: int
    done: int
    results: tuple[tuple[int, int], ...]  # (pick_id, status), oldest first, pick_id 0 = unused
    queue: tuple[int, ...]

    @classmethod
    def decode(cls, regs: Sequence[int]) -> Status:
        if len(regs) < STATUS_COUNT:
            raise ValueError(f"status block needs {STATUS_COUNT} registers, got {len(regs)}")
        hb, state, err, queued, acc, done_id, hs, ans, rc, dn = unpack("HHHHIIHHHH", regs[0:12])
        results = tuple(unpack("IHH", regs[12 + 4 * i:16 + 4 * i])[:2] for i in range(RING))
        queue = unpack("I" * QUEUE, regs[44:60])
        return cls(hb, state, err, queued, acc, done_id, hs, ans, rc, dn,
                   tuple(r for r in results if r[0]), tuple(q for q in queue if q))


def encode_status(*, heartbeat: int, state: int, error: int, queued: int, last_accepted: int, last_done: int,
                  handshake: int, answer: int, result_count: int, done: int,
                  results: Iterable[tuple[int, int]], queue: Iterable[int]) -> list[int]:
    regs = pack("HHHHIIHHHH", heartbeat, state, error, queued, last_accepted, last_done, handshake, answer,
                result_count, done & 0xFFFF)
    ring = list(results)[-RING:]
    ring = [(0, 0)] * (RING - len(ring)) + ring
    for pid, st in ring:
        regs += pack("IHH", pid, st, 0)
    q = list(queue)[:QUEUE]
    regs += pack("I" * QUEUE, *(q + [0] * (QUEUE - len(q))))
    return regs


def encode_command(pick_id: int, x: float, y: float, z: float, belt_position: float, bin_: int,
                   handshake: int) -> list[int]:
    return pack("IfffdHH", pick_id, x, y, z, belt_position, bin_, handshake & 0xFFFF)


def decode_command(regs: Sequence[int]) -> tuple[int, float, float, float, float, int, int]:
    if len(regs) != COMMAND_COUNT:
        raise ValueError(f"command block needs {COMMAND_COUNT} registers, got {len(regs)}")
    return unpack("IfffdHH", regs)
