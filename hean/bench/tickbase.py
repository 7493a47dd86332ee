"""The tick bench's baseline: a bare three-hop pipeline, one uvloop + orjson process per hop.

    python -m hean.bench.tickbase ws|filter|post IPC_BASE WS_PORT N

ws: WS client -> ZeroMQ PUSH; filter: decodes, keeps every Nth tick -> ZeroMQ PUSH; post: an aiohttp
POST per kept tick to the bench. No validation, no journal, no risk: the floor HEAN is measured against.
"""

from __future__ import annotations

import sys
from decimal import Decimal

import aiohttp
import orjson
import uvloop
import zmq
import zmq.asyncio


async def main(role: str, ipc: str, port: int, n: int) -> None:
    ctx = zmq.asyncio.Context()
    if role == "ws":
        out = ctx.socket(zmq.PUSH)
        out.connect(f"ipc://{ipc}-1")
        async with aiohttp.ClientSession() as s, s.ws_connect(f"ws://127.0.0.1:{port}/v5/public/linear") as ws:
            await ws.send_str(orjson.dumps({"op": "subscribe", "args": ["tickers.BTCUSDT"]}).decode())
            async for msg in ws:
                await out.send(msg.data.encode() if isinstance(msg.data, str) else msg.data)
    elif role == "filter":
        inp, out = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
        inp.bind(f"ipc://{ipc}-1")
        out.connect(f"ipc://{ipc}-2")
        while True:
            frame = orjson.loads(await inp.recv())
            data = frame.get("data")
            if not data:
                continue
            i = int((Decimal(data["lastPrice"]) - 40000) * 10)
            if i % n == 0:
                await out.send(orjson.dumps({"i": i}))
    else:
        inp = ctx.socket(zmq.PULL)
        inp.bind(f"ipc://{ipc}-2")
        async with aiohttp.ClientSession() as s:
            while True:
                body = await inp.recv()
                async with s.post(f"http://127.0.0.1:{port}/order", data=body) as resp:
                    await resp.read()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
