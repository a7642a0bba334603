"""FANUC Remote Motion Interface (RMI): packets and a client.

The packet format follows FANUC's RMI operator's manual (B-84184EN) as published in
FANUC's open-source RMI client: one JSON object per packet, terminated by CR LF.
``{"Communication": "FRC_Connect"}`` on port 16001 answers the session port; on that
port, ``Command`` packets are answered at once and ``Instruction`` packets (motions,
waits) carry consecutive ``SequenceID`` s from 1 after ``FRC_Initialize`` and are
answered when the instruction completes. Positions are mm and degrees (X Y Z W P R) in
the user frame. The controller may send ``FRC_SystemFault`` or ``FRC_Terminate`` unasked.
"""
from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from msseg_ros.core.robots.errors import ConnectionLost, ControllerError, RobotConfigError

CONNECT_PORT = 16001
TERMINATOR = b"\r\n"
#: instructions a client may have outstanding (sent, not answered): FANUC's limit (RMIT-028)
MAX_OUTSTANDING = 8

#: ErrorID -> meaning (values from FANUC's published RMI client)
ERROR_TEXT = {
    2556933: "Invalid Speed Override",
    2556935: "Controller Servo is Off",
    2556937: "RMI is Not Running",
    2556941: "Invalid RMI Command",
    2556943: "Invalid Controller State",
    2556948: "Invalid RMI Instruction",
    2556952: "RMI is In HOLD State",
    2556954: "Robot is Already Connected",
    2556957: "Invalid sequence ID number",
    2556959: "Invalid Speed Value",
    2556964: "Invalid Destination Position",
    2556966: "Invalid Port Number",
}
E_OVERRIDE, E_SERVO_OFF, E_NOT_RUNNING, E_INVALID_COMMAND = 2556933, 2556935, 2556937, 2556941
E_HOLD, E_ALREADY_CONNECTED, E_SEQUENCE, E_DESTINATION = 2556952, 2556954, 2556957, 2556964
E_INVALID_INSTRUCTION, E_SPEED, E_PORT = 2556948, 2556959, 2556966


def error_text(code: int) -> str:
    return ERROR_TEXT.get(code, f"error {code}")


def encode(packet: dict[str, Any]) -> bytes:
    return json.dumps(packet, separators=(",", ":")).encode() + TERMINATOR


def configuration(uframe: int = 1, utool: int = 1) -> dict[str, int]:
    return {"UToolNumber": utool, "UFrameNumber": uframe, "Front": 1, "Up": 1, "Left": 0, "Flip": 0,
            "Turn4": 0, "Turn5": 0, "Turn6": 0}


def position(x: float, y: float, z: float, w: float = 180.0, p: float = 0.0, r: float = 0.0) -> dict[str, float]:
    """A Cartesian position, mm and degrees (default: tool pointing down)."""
    return {"X": round(x, 3), "Y": round(y, 3), "Z": round(z, 3), "W": w, "P": p, "R": r}


class LineReader:
    """Splits a byte stream into CR LF terminated JSON packets."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def read(self, timeout: float) -> dict[str, Any] | None:
        """The next packet, or None after ``timeout`` s. Raises ConnectionLost on EOF."""
        deadline = time.monotonic() + timeout
        while TERMINATOR not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            except OSError as exc:
                raise ConnectionLost(f"RMI socket error: {exc}") from None
            if not chunk:
                raise ConnectionLost("RMI controller closed the connection")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(TERMINATOR)
        try:
            packet = json.loads(line)
        except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
            raise ControllerError(f"RMI packet is not JSON ({exc}): {line[:80]!r}") from None
        if not isinstance(packet, dict):
            raise ControllerError(f"RMI packet is not a JSON object: {line[:80]!r}")
        return packet


class RmiClient:
    """A blocking RMI client for one controller (use it from one thread).

    Args:
        host: controller address.
        port: the connect port (16001).
        timeout: for connects and command replies, s.
        max_in_flight: instructions sent and not yet completed (the controller buffers them);
            1..MAX_OUTSTANDING (8, RMIT-028).
        motion_timeout: longest wait for one instruction to complete, s.

    After an instruction is answered "Invalid sequence ID" or "RMI is In HOLD State", the
    client sends no new instruction until :meth:`recover` (abort, reset, initialise): it
    raises :class:`ControllerError` (code ``E_HOLD``) instead.

    Unsolicited packets: ``FRC_SystemFault`` raises :class:`ControllerError` (code
    ``E_SERVO_OFF``) from the next call, and sets ``fault``; ``FRC_Terminate`` raises
    :class:`ConnectionLost`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = CONNECT_PORT, *, timeout: float = 3.0,
                 max_in_flight: int = 2, motion_timeout: float = 30.0) -> None:
        if not 1 <= max_in_flight <= MAX_OUTSTANDING:
            raise RobotConfigError(f"RMI max_in_flight must be 1..{MAX_OUTSTANDING} (RMIT-028: at most "
                                   f"{MAX_OUTSTANDING} instructions outstanding), got {max_in_flight}")
        self.host, self.port, self.timeout = host, port, timeout
        self.max_in_flight, self.motion_timeout = max_in_flight, motion_timeout
        self.held = False  # the controller is in HOLD: nothing new until recover()
        self.sock: socket.socket | None = None
        self.reader: LineReader | None = None
        self.next_sequence = 1
        self.in_flight: set[int] = set()
        self.completed: dict[int, int] = {}  # SequenceID -> ErrorID
        self.replies: list[dict[str, Any]] = []
        self.fault: dict[str, Any] | None = None
        self.session_port: int | None = None

    # ---- connection --------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.sock is not None

    def connect(self) -> int:
        """FRC_Connect on the connect port, then open the session port it answers."""
        self.close()
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as s:
                s.sendall(encode({"Communication": "FRC_Connect"}))
                reply = LineReader(s).read(self.timeout)
        except OSError as exc:
            raise ConnectionLost(f"RMI connect to {self.host}:{self.port} failed: {exc}") from None
        if reply is None:
            raise ConnectionLost(f"RMI connect to {self.host}:{self.port}: no answer")
        if reply.get("ErrorID", 0):
            code = int(reply["ErrorID"])
            raise ControllerError(f"FRC_Connect refused: {error_text(code)}", code)
        self.session_port = int(reply["PortNumber"])
        try:
            self.sock = socket.create_connection((self.host, self.session_port), timeout=self.timeout)
        except OSError as exc:
            raise ConnectionLost(f"RMI session port {self.session_port}: {exc}") from None
        self.reader = LineReader(self.sock)
        self.in_flight.clear()
        self.completed.clear()
        self.replies.clear()
        self.fault = None
        return self.session_port

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
                self.reader = None

    def disconnect(self) -> None:
        if self.sock is not None:
            try:
                self._send({"Communication": "FRC_Disconnect"})
                self._wait_reply("Communication", "FRC_Disconnect")
            except (ConnectionLost, ControllerError):
                pass
        self.close()

    # ---- packets -----------------------------------------------------------------
    def _send(self, packet: dict[str, Any]) -> None:
        if self.sock is None:
            raise ConnectionLost("RMI: not connected")
        try:
            self.sock.sendall(encode(packet))
        except OSError as exc:
            self.close()
            raise ConnectionLost(f"RMI send failed: {exc}") from None

    def _pump(self, timeout: float) -> bool:
        """Read one packet and file it; False on timeout."""
        if self.reader is None:
            raise ConnectionLost("RMI: not connected")
        try:
            packet = self.reader.read(timeout)
        except ConnectionLost:
            self.close()
            raise
        if packet is None:
            return False
        comm = packet.get("Communication")
        if comm == "FRC_SystemFault":
            self.fault = packet
        elif comm == "FRC_Terminate":
            self.close()
            raise ConnectionLost("RMI controller terminated the session (FRC_Terminate)")
        elif "Instruction" in packet:
            seq = int(packet.get("SequenceID", -1))
            self.in_flight.discard(seq)
            code = int(packet.get("ErrorID", 0))
            self.completed[seq] = code
            if code in (E_SEQUENCE, E_HOLD):
                self.held = True
        else:
            self.replies.append(packet)
        return True

    def drain(self) -> None:
        """Read what the controller sent unasked (FRC_Terminate, FRC_SystemFault) before
        starting something new; raises as the packets say."""
        while self.sock is not None and self._pump(0.01):
            pass
        self._check_fault()

    def _check_fault(self) -> None:
        if self.fault is not None:
            raise ControllerError(f"RMI system fault (SequenceID {self.fault.get('SequenceID')})", E_SERVO_OFF)

    def _wait_reply(self, key: str, name: str, timeout: float | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, r in enumerate(self.replies):
                if r.get(key) == name:
                    return self.replies.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConnectionLost(f"RMI: no reply to {name} within {timeout or self.timeout:.1f} s")
            self._pump(left)
            if key == "Command":
                self._check_fault()

    def command(self, name: str, **fields: Any) -> dict[str, Any]:
        """Send a Command packet and return its reply.

        Raises:
            ControllerError: ErrorID != 0 (the code and FANUC's text in the message).
        """
        self._check_fault()
        self._send({"Command": name, **fields})
        reply = self._wait_reply("Command", name)
        code = int(reply.get("ErrorID", 0))
        if code:
            raise ControllerError(f"{name} failed: {error_text(code)} ({code})", code)
        return reply

    def initialize(self) -> None:
        self.command("FRC_Initialize")
        self.next_sequence = 1
        self.in_flight.clear()
        self.completed.clear()

    def instruction(self, name: str, **fields: Any) -> int:
        """Queue an Instruction; blocks while ``max_in_flight`` are pending. Returns its SequenceID.

        Raises:
            ControllerError: the controller is in HOLD (``E_HOLD``; recover first), or faulted.
        """
        while len(self.in_flight) >= self.max_in_flight:
            self._wait_any()
        self._check_fault()
        if self.held:
            raise ControllerError("RMI is in HOLD: no new instruction before FRC_Reset (recover())", E_HOLD)
        seq = self.next_sequence
        self._send({"Instruction": name, "SequenceID": seq, **fields})
        self.next_sequence += 1
        self.in_flight.add(seq)
        return seq

    def _wait_any(self) -> None:
        deadline = time.monotonic() + self.motion_timeout
        n = len(self.completed)
        while len(self.completed) == n:
            self._check_fault()
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConnectionLost(f"RMI: no instruction completed within {self.motion_timeout:.0f} s")
            self._pump(min(left, 0.5))
        self._raise_errors()

    def _raise_errors(self) -> None:
        for seq, code in sorted(self.completed.items()):
            if code:
                del self.completed[seq]
                raise ControllerError(f"instruction {seq} failed: {error_text(code)} ({code})", code)

    def wait(self, seq: int) -> None:
        """Block until instruction ``seq`` completes; raises its error."""
        deadline = time.monotonic() + self.motion_timeout
        while seq not in self.completed:
            self._check_fault()
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConnectionLost(f"RMI: instruction {seq} did not complete within {self.motion_timeout:.0f} s")
            self._pump(min(left, 0.5))
        self._check_fault()
        code = self.completed.pop(seq)
        if code:
            raise ControllerError(f"instruction {seq} failed: {error_text(code)} ({code})", code)

    # ---- helpers -----------------------------------------------------------------
    def linear(self, xyz_mm: Sequence[float], speed_mm_s: float, uframe: int = 1, utool: int = 1) -> int:
        return self.instruction("FRC_LinearMotion", Configuration=configuration(uframe, utool),
                                Position=position(*xyz_mm), SpeedType="mmSec", Speed=int(round(speed_mm_s)),
                                TermType="FINE", TermValue=0)

    def joint(self, xyz_mm: Sequence[float], speed_percent: int, uframe: int = 1, utool: int = 1) -> int:
        return self.instruction("FRC_JointMotion", Configuration=configuration(uframe, utool),
                                Position=position(*xyz_mm), SpeedType="Percent", Speed=int(speed_percent),
                                TermType="FINE", TermValue=0)

    def wait_time(self, seconds: float) -> int:
        return self.instruction("FRC_WaitTime", Time=float(seconds))

    def status(self) -> dict[str, Any]:
        return self.command("FRC_GetStatus")

    def set_override(self, value: int) -> None:
        self.command("FRC_SetOverRide", Value=int(value))

    def set_frames(self, uframe: int, utool: int) -> None:
        self.command("FRC_SetUFrameUTool", UFrameNumber=uframe, UToolNumber=utool)

    def read_position(self) -> tuple[float, float, float]:
        p = self.command("FRC_ReadCartesianPosition")["Position"]
        return float(p["X"]), float(p["Y"]), float(p["Z"])

    def write_dout(self, port: int, on: bool) -> None:
        self.command("FRC_WriteDOUT", PortNumber=port, PortValue="ON" if on else "OFF")

    def read_din(self, port: int) -> bool:
        return bool(int(self.command("FRC_ReadDIN", PortNumber=port)["PortValue"]))

    def recover(self) -> None:
        """Out of HOLD or a fault: FRC_Abort (its refusal when nothing runs is fine),
        FRC_Reset, FRC_Initialize."""
        self.fault = None
        try:
            self.command("FRC_Abort")
        except ControllerError:
            pass
        self.command("FRC_Reset")
        self.initialize()
        self.held = False


def retry_connect(client: RmiClient, attempts: int = 5, backoff: float = 0.2,
                  sleep: Callable[[float], None] = time.sleep) -> None:
    """Connect with a doubling backoff; raises the last error after ``attempts``."""
    delay = backoff
    for i in range(attempts):
        try:
            client.connect()
            return
        except (ConnectionLost, ControllerError):
            if i == attempts - 1:
                raise
            sleep(delay)
            delay = min(delay * 2, 5.0)
