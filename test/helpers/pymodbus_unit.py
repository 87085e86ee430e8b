#!/usr/bin/python3
"""One Modbus unit (id 1) served by Debian's python3-pymodbus, over TCP or RTU, for tests that read
one unit through two device entries: vendor registers and a SunSpec chain on the same unit.

Usage: pymodbus_unit.py tcp PORT | pymodbus_unit.py rtu SERIAL_PATH

Vendor registers: holding 0 = 4321 (uint16), holding 1..2 = uint32 70000 (big-endian words),
input 0..1 = float32 230.5. SunSpec at 40000: 'SunS', model 1 (Mn "Holdfast", SN "SU-1"),
model 103 (W 1234 W, PhVphA 2305 with V_SF -1, Hz 5000 with Hz_SF -2), end marker.

Prints READY when serving, CONN <peer> for every TCP connection, and for every request
REQ <peer> unit=<id> fn=<code> addr=<address> count=<count> (peer is "serial" on RTU)."""
import asyncio
import sys

from pymodbus.datastore import ModbusServerContext, ModbusSlaveContext, ModbusSparseDataBlock
from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer
from pymodbus.server.async_io import ModbusConnectedRequestHandler, ModbusSingleRequestHandler
from pymodbus.transaction import ModbusRtuFramer


def text(s, registers):
    b = s.encode().ljust(registers * 2, b"\0")
    return [(b[i] << 8) | b[i + 1] for i in range(0, registers * 2, 2)]


holding = {0: 4321, 1: 70000 >> 16, 2: 70000 & 0xFFFF}
sunspec = [0x5375, 0x6E53]
# Model 1 (common), L = 66: Mn, Md, Opt, Vr, SN, DA, Pad.
sunspec += [1, 66] + text("Holdfast", 16) + text("shared-unit", 16) + text("", 8) + text("1.0", 8) + text("SU-1", 16) + [1, 0x8000]
# Model 103 (three-phase inverter), L = 50; offsets from its ID register as in drivers/modbus/sunspec.ts.
m103 = [0] * 52
m103[0:2] = [103, 50]
m103[10] = 2305  # PhVphA
m103[13] = 0xFFFF  # V_SF -1
m103[14] = 1234  # W
m103[16] = 5000  # Hz
m103[17] = 0xFFFE  # Hz_SF -2
sunspec += m103 + [0xFFFF, 0]
holding.update({40000 + i: v for i, v in enumerate(sunspec)})
unit = ModbusSlaveContext(
    hr=ModbusSparseDataBlock(holding),
    ir=ModbusSparseDataBlock({0: 0x4366, 1: 0x8000}),
    zero_mode=True,
)
# Unit 1 only: a request for any other unit is not this device's.
context = ModbusServerContext(slaves={1: unit}, single=False)


def logged(handler, peer):
    class Logged(handler):
        def connection_made(self, transport):
            super().connection_made(transport)
            if peer(self) != "serial":
                print(f"CONN {peer(self)}", flush=True)

        def execute(self, request, *addr):
            print(f"REQ {peer(self)} unit={request.unit_id} fn={request.function_code} "
                  f"addr={getattr(request, 'address', '-')} count={getattr(request, 'count', '-')}", flush=True)
            super().execute(request, *addr)

    return Logged


async def main():
    mode, where = sys.argv[1], sys.argv[2]
    if mode == "tcp":
        handler = logged(ModbusConnectedRequestHandler, lambda h: h.client_address[1])
        server = await StartAsyncTcpServer(context=context, address=("127.0.0.1", int(where)), handler=handler, defer_start=True)
        task = asyncio.create_task(server.serve_forever())
        await server.serving
    else:
        handler = logged(ModbusSingleRequestHandler, lambda h: "serial")
        server = await StartAsyncSerialServer(context=context, framer=ModbusRtuFramer, port=where, baudrate=9600, handler=handler, defer_start=True)
        await server.start()
        task = asyncio.create_task(server.serve_forever())
    print("READY", flush=True)
    await task


asyncio.run(main())
