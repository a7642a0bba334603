"""Modbus TCP for the delta controllers (pymodbus): the bridge's client and the emulated
controller's server. The register map is in :mod:`msseg_ros.core.robots.modbus_map`.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from msseg_ros.core.robots import modbus_map as mm
from msseg_ros.core.robots.delta_controller import DeltaCommand, DeltaController
from msseg_ros.core.robots.errors import ConnectionLost, ControllerError
from msseg_ros.core.robots.status import LinkState

DEVICE_ID = 1
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # it logs every refused connect


class DeltaModbusServer:
    """Serves one :class:`DeltaController` on ``host:port`` (a thread with its own event loop).

    ``stop()`` closes the listener and every connection (a dropped controller);
    ``start()`` serves again on the same port. The controller keeps running meanwhile:
    a :class:`~msseg_ros.core.robots.delta_controller.ControllerLoop` runs it (reads only
    report its state, so the heartbeat counts control-loop cycles, not requests).
    """

    def __init__(self, controller: DeltaController, host: str = "127.0.0.1", port: int = 5020,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.controller, self.host, self.port, self.clock = controller, host, port, clock
        self._handshake = 0
        self._answer = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusTcpServer | None = None
        self._thread: threading.Thread | None = None

    # pymodbus calls this before every access; it may edit ``registers`` in place.
    async def _action(self, function_code: int, start_address: int, address: int, count: int,
                      registers: list[int], set_values: list[int] | list[bool] | None) -> None:
        c = self.controller
        now = self.clock()
        if set_values is None:
            if address < mm.STATUS_ADDR + mm.STATUS_COUNT:
                with c.lock:
                    registers[0:mm.STATUS_COUNT] = mm.encode_status(
                        heartbeat=c.heartbeat, state=int(c.state), error=int(c.error), queued=len(c.queued_ids()),
                        last_accepted=c.last_accepted, last_done=c.last_done, handshake=self._handshake,
                        answer=self._answer, result_count=c.result_count, done=c.done, results=list(c.results),
                        queue=c.queued_ids())
            return None
        values = list(set_values)
        if address == mm.COMMAND_ADDR and len(values) == mm.COMMAND_COUNT:
            pick_id, x, y, z, belt, bin_, hs = mm.decode_command(values)
            if hs != self._handshake:
                self._answer = int(c.submit(DeltaCommand(pick_id, x, y, z, belt, bin_), now))
                self._handshake = hs
                registers[8] = hs
                registers[9] = self._answer
        elif address == mm.CONTROL_ADDR and values and values[0] == mm.REQUEST_RESET:
            c.reset()
        return None

    def start(self) -> DeltaModbusServer:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            device = SimDevice(id=0, simdata=[SimData(0, count=mm.REGISTERS, values=0, datatype=DataType.REGISTERS)],
                               action=self._action)
            async def serve() -> None:  # the server must be built inside a running loop
                self._server = ModbusTcpServer(device, address=(self.host, self.port))
                await self._server.serve_forever(background=True)

            try:
                loop.run_until_complete(serve())
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            assert self._server is not None  # set before the loop ran
            loop.run_until_complete(self._server.shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"modbus-{self.port}", daemon=True)
        self._thread.start()
        ready.wait(5.0)
        if errors:
            raise ControllerError(f"emulated delta controller cannot serve on {self.host}:{self.port}: {errors[0]}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5.0)
        self._loop = self._server = self._thread = None


class DeltaModbusClient:
    """The bridge's side of one delta controller.

    Every call is bounded by ``timeout``. A failed call closes the connection; the next
    :meth:`poll` reconnects after a backoff that doubles up to ``backoff_max``. The
    heartbeat watchdog marks the link ``stale`` when the heartbeat has not changed for
    ``watchdog`` seconds (the controller hangs while TCP stays up).

    Attributes:
        state: a LinkState: ``DISCONNECTED``, ``CONNECTED`` or ``STALE``.
        reconnects: successful reconnections after a loss.
    """

    def __init__(self, host: str, port: int, *, timeout: float = 0.3, watchdog: float = 1.0,
                 backoff: float = 0.2, backoff_max: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.host, self.port, self.timeout, self.watchdog = host, port, timeout, watchdog
        self.backoff0, self.backoff_max, self.clock = backoff, backoff_max, clock
        self._client = ModbusTcpClient(host, port=port, timeout=timeout, retries=0)
        self.state = LinkState.DISCONNECTED
        self._next_try = 0.0
        self._backoff = backoff
        self._heartbeat: int | None = None
        self._heartbeat_at = 0.0
        self._handshake = 0
        self.reconnects = 0
        self._ever_connected = False
        self.just_reconnected = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _lost(self, why: str) -> ConnectionLost:
        self._client.close()
        self.state = LinkState.DISCONNECTED
        self._heartbeat = None
        self._next_try = self.clock() + self._backoff
        self._backoff = min(self._backoff * 2, self.backoff_max)
        return ConnectionLost(f"delta controller {self.address}: {why}")

    def ensure_connected(self) -> bool:
        if self.state != LinkState.DISCONNECTED:
            return True
        if self.clock() < self._next_try:
            return False
        if not self._client.connect():
            self._lost("connection refused")
            return False
        self.state = LinkState.CONNECTED
        self._backoff = self.backoff0
        if self._ever_connected:
            self.reconnects += 1
            self.just_reconnected = True
        self._ever_connected = True
        return True

    def read_status(self) -> mm.Status:
        """Read the status block; checks the heartbeat watchdog.

        Raises:
            ConnectionLost: not connected, a timeout, or a Modbus error.
        """
        if not self.ensure_connected():
            raise ConnectionLost(f"delta controller {self.address}: not connected")
        try:
            rr = self._client.read_holding_registers(mm.STATUS_ADDR, count=mm.STATUS_COUNT, device_id=DEVICE_ID)
        except (ModbusException, OSError) as exc:
            raise self._lost(f"read failed: {exc}") from None
        if rr.isError():
            raise self._lost(f"read refused: {rr}")
        status = mm.Status.decode(rr.registers)
        now = self.clock()
        if status.heartbeat != self._heartbeat:
            self._heartbeat, self._heartbeat_at = status.heartbeat, now
            self.state = LinkState.CONNECTED
        elif now - self._heartbeat_at > self.watchdog:
            self.state = LinkState.STALE
        if self._handshake == 0:
            self._handshake = status.handshake  # continue the controller's sequence
        return status

    def send(self, cmd: DeltaCommand) -> int:
        """Submit one command; returns the controller's answer (0 accepted).

        Raises:
            ConnectionLost: the link failed; the command may or may not have been taken
                (reconcile from the status block, never resend).
        """
        if self.state == LinkState.STALE:
            raise ConnectionLost(f"delta controller {self.address}: heartbeat stopped; not sending")
        if not self.ensure_connected():
            raise ConnectionLost(f"delta controller {self.address}: not connected")
        self._handshake = (self._handshake % 0xFFFF) + 1
        regs = mm.encode_command(cmd.pick_id, cmd.x, cmd.y, cmd.z, cmd.belt_position, cmd.bin, self._handshake)
        try:
            wr = self._client.write_registers(mm.COMMAND_ADDR, regs, device_id=DEVICE_ID)
        except (ModbusException, OSError) as exc:
            raise self._lost(f"write failed: {exc}") from None
        if wr.isError():
            raise self._lost(f"write refused: {wr}")
        status = self.read_status()
        if status.handshake != self._handshake:
            raise self._lost(f"command {cmd.pick_id} not acknowledged (handshake {status.handshake}, "
                             f"expected {self._handshake})")
        return status.answer

    def reset_error(self) -> None:
        if not self.ensure_connected():
            raise ConnectionLost(f"delta controller {self.address}: not connected")
        try:
            self._client.write_registers(mm.CONTROL_ADDR, [mm.REQUEST_RESET], device_id=DEVICE_ID)
        except (ModbusException, OSError) as exc:
            raise self._lost(f"reset failed: {exc}") from None

    def close(self) -> None:
        self._client.close()
        self.state = LinkState.DISCONNECTED
