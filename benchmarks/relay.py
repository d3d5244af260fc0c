"""A TCP relay on 127.0.0.1 that adds a network round trip (these kernels have no netem).

Each accepted connection is joined to the server. Bytes going either way are held for
half the round trip before they are passed on, in order, without limiting bandwidth
(a delay line, not a queue: chunks in flight overlap). The client's ``connect()``
returns at once (the kernel completes the handshake), so the relay charges the
handshake's round trip to the first bytes the client sends instead: a request is
delivered no earlier than one round trip after the connection was accepted, plus half
a round trip. Time to the first byte of a new connection is therefore 2 RTT, of a
reused one 1 RTT, as on a real link; only curl's ``time_connect`` reads ~0 instead of
1 RTT. Not modelled: TCP slow start and window limits at that RTT, and loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque

_READ = 256 * 1024


class DelayRelay:
    """Listen on 127.0.0.1 (ephemeral port); forward to ``127.0.0.1:target`` with *rtt* seconds."""

    def __init__(self, target: int, rtt: float) -> None:
        self.target = target
        self.rtt = rtt
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._alive: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._run, name="delay-relay", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the relay did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._join, "127.0.0.1", 0, backlog=4096)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stopped.wait()
            server.close()
            while others := asyncio.all_tasks() - {asyncio.current_task()}:
                for task in others:
                    task.cancel()
                await asyncio.gather(*others, return_exceptions=True)

    async def _join(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        accepted = time.monotonic()
        this = asyncio.current_task()
        if this is not None:  # the loop holds tasks weakly; keep this one and its pumps alive
            self._alive.add(this)
            this.add_done_callback(self._alive.discard)
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            client_w.close()
            return
        half = self.rtt / 2
        pumps = {
            asyncio.ensure_future(_pump(client_r, server_w, half, accepted + self.rtt)),
            asyncio.ensure_future(_pump(server_r, client_w, half, 0.0)),
        }
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
        except asyncio.CancelledError:  # the relay is stopping: end quietly
            pass
        finally:
            for writer in (client_w, server_w):
                writer.close()  # a reset on one side ends the other side's pump too
            for pump in pumps:
                pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)

    def stop(self) -> None:
        if self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(10)


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, not_before: float
) -> None:
    """Pass chunks from *reader* to *writer*, each *delay* seconds after it arrived, in order."""
    line: deque[tuple[float, bytes]] = deque()
    arrived = asyncio.Event()

    async def deliver() -> None:
        while True:
            while not line:
                arrived.clear()
                await arrived.wait()
            due, data = line.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.ensure_future(deliver())
    try:
        while True:
            data = await reader.read(_READ)
            line.append((max(time.monotonic(), not_before) + delay, data))
            arrived.set()
            if not data:
                break
        await sender
    except (OSError, asyncio.CancelledError):
        sender.cancel()
        raise
