"""An emulated FANUC controller speaking RMI on loopback (sim mode and tests).

It enforces the protocol as the bridge must expect it from a real controller:

* one client at a time (a second ``FRC_Connect`` gets "Robot is Already Connected");
* instructions only after ``FRC_Initialize``, with SequenceIDs 1, 2, 3...; a gap puts
  it in HOLD (that packet answers "Invalid sequence ID", the next ones "RMI is In HOLD
  State") until FRC_Abort / FRC_Reset / FRC_Initialize;
* at most 8 instructions outstanding (RMIT-028): a 9th is refused with "Invalid RMI
  Instruction" (FANUC's published error list has no code of its own for this case);
* motions outside its envelope are refused ("Invalid Destination Position");
  overrides outside 1..100 too;
* each instruction is answered when it completes; a move lasts distance / speed
  (x override) plus acceleration ramps;
* faults on demand: :meth:`EmulatedRmiController.system_fault` (FRC_SystemFault, servo
  off), :meth:`terminate` (FRC_Terminate), :meth:`drop_on_next_motion` (the socket is
  cut during the next move).

Suction: ``FRC_WriteDOUT`` on ``suction_port`` calls ``on_suction(xyz_m)`` (the sim
decides whether something was gripped) and sets DIN ``vacuum_port``; OFF calls
``on_release(xyz_m)``.
"""
from __future__ import annotations

import collections
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from msseg_ros.core.robots import rmi
from msseg_ros.core.robots.kinematics import Box, move_time, vec3

MOTIONS = ("FRC_LinearMotion", "FRC_JointMotion")
INSTRUCTIONS = MOTIONS + ("FRC_WaitTime", "FRC_WaitDIN", "FRC_SetUFrame", "FRC_SetUTool", "FRC_Call")


class EmulatedRmiController:
    """Args:
        envelope_mm: the box (user frame, mm) motions must stay in.
        home_mm: where the tool starts.
        port: connect port; the session port is ``port + 1``.
        accel_mm_s2: acceleration of every move.
        joint_speed_mm_s: tool speed of a joint move at 100 %.
        on_suction / on_release: the sim's hooks (metres, user frame).
    """

    def __init__(self, envelope_mm: Box, home_mm: tuple[float, float, float], *, host: str = "127.0.0.1",
                 port: int = rmi.CONNECT_PORT, accel_mm_s2: float = 5000.0, joint_speed_mm_s: float = 2000.0,
                 suction_port: int = 1, vacuum_port: int = 1,
                 on_suction: Callable[[tuple[float, float, float]], bool] | None = None,
                 on_release: Callable[[tuple[float, float, float]], None] | None = None) -> None:
        self.envelope, self.host, self.port = envelope_mm, host, port
        self.accel, self.joint_speed = accel_mm_s2, joint_speed_mm_s
        self.suction_port, self.vacuum_port = suction_port, vacuum_port
        self.on_suction, self.on_release = on_suction, on_release
        self.position = list(home_mm)
        self.override = 100
        self.initialized = False
        self.hold = False
        self.servo_fault = False
        self.next_sequence = 1
        self.dout: dict[int, bool] = collections.defaultdict(bool)
        self.din: dict[int, bool] = collections.defaultdict(bool)
        self.motions: list[tuple[str, tuple[float, float, float]]] = []  # executed moves (tests)
        self.packets: list[dict[str, Any]] = []  # every packet received (tests)
        self._drop_next = False
        self._reserved_until = 0.0
        self._lock = threading.RLock()
        self._send_lock = threading.Lock()
        self._session: socket.socket | None = None
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._executing = False  # an instruction is being carried out (outstanding too)
        self._work = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listeners: list[socket.socket] = []

    # ---- lifecycle ---------------------------------------------------------------
    def start(self) -> EmulatedRmiController:
        connect = self._listen(self.port)
        session = self._listen(self.port + 1)
        for target, sock in ((self._accept_connect, connect), (self._accept_session, session)):
            t = threading.Thread(target=target, args=(sock,), daemon=True, name=f"rmi-{self.port}")
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._motion_loop, daemon=True, name="rmi-motion")
        t.start()
        self._threads.append(t)
        return self

    def _listen(self, port: int) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, port))
        s.listen(4)
        s.settimeout(0.2)
        self._listeners.append(s)
        return s

    def stop(self) -> None:
        self._stop.set()
        with self._work:
            self._work.notify_all()
        self._close_session()
        for s in self._listeners:
            s.close()
        for t in self._threads:
            t.join(timeout=2.0)

    # ---- sockets -----------------------------------------------------------------
    def _accept_connect(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                try:
                    packet = rmi.LineReader(conn).read(2.0)
                except Exception:  # noqa: BLE001 - a bad client must not stop the controller
                    continue
                if not packet or packet.get("Communication") != "FRC_Connect":
                    continue
                with self._lock:  # a granted connect holds the session port until it is opened
                    busy = self._session is not None or time.monotonic() < self._reserved_until
                    if not busy:
                        self._reserved_until = time.monotonic() + 5.0
                reply = ({"Communication": "FRC_Connect", "ErrorID": rmi.E_ALREADY_CONNECTED} if busy else
                         {"Communication": "FRC_Connect", "ErrorID": 0, "PortNumber": self.port + 1,
                          "MajorVersion": 5, "MinorVersion": 0})
                conn.sendall(rmi.encode(reply))

    def _accept_session(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                if self._session is not None:
                    conn.close()
                    continue
                self._session = conn
                self._reserved_until = 0.0
            self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        reader = rmi.LineReader(conn)
        try:
            while not self._stop.is_set():
                try:
                    packet = reader.read(0.2)
                except Exception:  # noqa: BLE001 - closed or garbage: end the session
                    break
                if packet is None:
                    continue
                self.packets.append(packet)
                if not self._handle(packet):
                    break
        finally:
            self._end_session(conn)

    def _end_session(self, conn: socket.socket) -> None:
        with self._lock:
            if self._session is conn:
                self._session = None
                self.initialized = False  # RMI_MOVE is aborted when the client goes
                self._queue.clear()
        try:
            conn.close()
        except OSError:
            pass

    def _close_session(self) -> None:
        with self._lock:
            conn = self._session
        if conn is not None:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._end_session(conn)

    def _reply(self, packet: dict[str, Any]) -> None:
        with self._lock:
            conn = self._session
        if conn is None:
            return
        with self._send_lock:
            try:
                conn.sendall(rmi.encode(packet))
            except OSError:
                pass

    # ---- protocol ----------------------------------------------------------------
    def _handle(self, p: dict[str, Any]) -> bool:
        if p.get("Communication") == "FRC_Disconnect":
            self._reply({"Communication": "FRC_Disconnect", "ErrorID": 0})
            return False
        if "Command" in p:
            self._reply({"Command": p["Command"], **self._command(p)})
            return True
        if "Instruction" in p:
            err = self._accept_instruction(p)
            if err:
                self._reply({"Instruction": p["Instruction"], "ErrorID": err, "SequenceID": p.get("SequenceID", 0)})
            return True
        self._reply({"Command": "Unknown", "ErrorID": rmi.E_INVALID_COMMAND})
        return True

    def _command(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["Command"]
        with self._lock:
            if name == "FRC_Initialize":
                if self.servo_fault or self.hold:
                    return {"ErrorID": rmi.E_SERVO_OFF if self.servo_fault else rmi.E_HOLD}
                self.initialized, self.next_sequence = True, 1
                return {"ErrorID": 0, "GroupMask": 1}
            if name == "FRC_Abort":
                if not self.initialized and not self.hold:
                    return {"ErrorID": rmi.E_NOT_RUNNING}
                self.initialized, self.hold = False, False
                self._queue.clear()
                return {"ErrorID": 0}
            if name == "FRC_Reset":
                self.servo_fault = False
                self.hold = False
                return {"ErrorID": 0}
            if name == "FRC_GetStatus":
                return {"ErrorID": 0, "ServoReady": int(not self.servo_fault), "TPMode": 1,
                        "RMIMotionStatus": int(self.initialized), "ProgramStatus": int(self.initialized),
                        "SingleStepMode": 0, "NumberUTool": 1, "NextSequenceID": self.next_sequence,
                        "NumberUFrame": 1, "Override": self.override}
            if name == "FRC_SetOverRide":
                v = p.get("Value")
                if not isinstance(v, int) or not 1 <= v <= 100:
                    return {"ErrorID": rmi.E_OVERRIDE}
                self.override = v
                return {"ErrorID": 0}
            if name == "FRC_SetUFrameUTool":
                return {"ErrorID": 0, "Group": 1}
            if name == "FRC_ReadCartesianPosition":
                x, y, z = self.position
                return {"ErrorID": 0, "TimeTag": int(time.monotonic() * 1000) & 0x7FFFFFFF,
                        "Configuration": rmi.configuration(), "Position": rmi.position(x, y, z), "Group": 1}
            if name == "FRC_WriteDOUT":
                port, value = p.get("PortNumber"), p.get("PortValue")
                if not isinstance(port, int) or value not in ("ON", "OFF"):
                    return {"ErrorID": rmi.E_PORT}
                self.dout[port] = value == "ON"
                if port == self.suction_port:
                    xyz = vec3([v / 1000.0 for v in self.position])
                    if value == "ON":
                        self.din[self.vacuum_port] = bool(self.on_suction(xyz)) if self.on_suction else False
                    else:
                        if self.din[self.vacuum_port] and self.on_release:
                            self.on_release(xyz)
                        self.din[self.vacuum_port] = False
                return {"ErrorID": 0}
            if name == "FRC_ReadDIN":
                port = p.get("PortNumber")
                if not isinstance(port, int):
                    return {"ErrorID": rmi.E_PORT}
                return {"ErrorID": 0, "PortNumber": port, "PortValue": int(self.din[port])}
        return {"ErrorID": rmi.E_INVALID_COMMAND}

    def _accept_instruction(self, p: dict[str, Any]) -> int:
        with self._lock:
            if self.servo_fault:
                return rmi.E_SERVO_OFF
            if self.hold:
                return rmi.E_HOLD
            if not self.initialized:
                return rmi.E_NOT_RUNNING
            if p["Instruction"] not in INSTRUCTIONS:
                return rmi.E_INVALID_INSTRUCTION
            if p.get("SequenceID") != self.next_sequence:
                self.hold = True
                return rmi.E_SEQUENCE
            if len(self._queue) + int(self._executing) >= rmi.MAX_OUTSTANDING:
                return rmi.E_INVALID_INSTRUCTION
            self.next_sequence += 1
            self._queue.append(p)
            self._work.notify_all()
            return 0

    # ---- motion ------------------------------------------------------------------
    def _motion_loop(self) -> None:
        while not self._stop.is_set():
            with self._work:
                while not self._queue and not self._stop.is_set():
                    self._work.wait(0.2)
                if self._stop.is_set():
                    return
                p = self._queue.popleft()
                self._executing = True
            err = self._execute(p)
            with self._lock:
                self._executing = False
            with self._lock:
                live = self.initialized
            if live:
                self._reply({"Instruction": p["Instruction"], "ErrorID": err, "SequenceID": p["SequenceID"]})

    def _execute(self, p: dict[str, Any]) -> int:
        name = p["Instruction"]
        if name == "FRC_WaitTime":
            return self._sleep(float(p.get("Time", 0.0)))
        if name not in MOTIONS:
            return 0
        try:
            pos = p["Position"]
            target = (float(pos["X"]), float(pos["Y"]), float(pos["Z"]))
            speed = float(p.get("Speed", 0))
        except (KeyError, TypeError, ValueError):
            return rmi.E_INVALID_INSTRUCTION
        if not self.envelope.contains(target):
            return rmi.E_DESTINATION
        if speed <= 0:
            return rmi.E_SPEED
        v = (speed if name == "FRC_LinearMotion" else self.joint_speed * min(speed, 100) / 100) * self.override / 100
        dist = sum((a - b) ** 2 for a, b in zip(target, self.position, strict=True)) ** 0.5
        duration = move_time(dist, v, self.accel)
        if self._drop_next:
            self._drop_next = False
            start = list(self.position)
            err = self._sleep(duration / 2)
            with self._lock:  # stopped half way when the link went
                self.position = [a + (b - a) / 2 for a, b in zip(start, target, strict=True)]
            self._close_session()
            return err or rmi.E_NOT_RUNNING
        err = self._sleep(duration)
        if err:
            return err
        with self._lock:
            self.position = list(target)
            self.motions.append((name, target))
        return 0

    def _sleep(self, seconds: float) -> int:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self._stop.wait(min(0.01, max(0.0, end - time.monotonic()))):
                return rmi.E_NOT_RUNNING
            with self._lock:
                if self.servo_fault:
                    return rmi.E_SERVO_OFF
                if not self.initialized:
                    return rmi.E_NOT_RUNNING
        return 0

    # ---- faults ------------------------------------------------------------------
    def system_fault(self) -> None:
        """Servo off; sends FRC_SystemFault unasked. Needs FRC_Reset, then FRC_Initialize."""
        with self._lock:
            self.servo_fault = True
            self.initialized = False
            self._queue.clear()
            seq = self.next_sequence - 1
        self._reply({"Communication": "FRC_SystemFault", "SequenceID": seq})

    def terminate(self) -> None:
        """Sends FRC_Terminate and closes the session (the controller's idle timeout)."""
        self._reply({"Communication": "FRC_Terminate"})
        self._close_session()

    def drop_on_next_motion(self) -> None:
        """Cut the socket half way through the next move."""
        self._drop_next = True

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._session is not None

