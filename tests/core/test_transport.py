"""The server's write coalescing (server/_transport.py), over a real socket pair: while
more than one call is in flight the frames written in one turn of the event loop leave
in one write; with one call in flight each leaves at once."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from blazerpc.server._transport import CoalescingTransport


async def _pair() -> tuple[asyncio.Transport, socket.socket, list[bytes]]:
    """A real transport over one end of a socket pair, its writes recorded."""
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    writes: list[bytes] = []
    write = transport.write

    def recording_write(data: Any) -> None:
        writes.append(bytes(data))
        write(data)

    transport.write = recording_write  # type: ignore[method-assign]
    theirs.setblocking(False)
    return transport, theirs, writes


async def _received(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        data += await asyncio.wait_for(loop.sock_recv(sock, size - len(data)), 5)
    return data


async def test_one_call_in_flight_writes_each_frame_at_once() -> None:
    transport, theirs, writes = await _pair()
    coalescing = CoalescingTransport(transport, busy=lambda: False)
    for frame in (b"headers", b"data", b"trailers"):
        coalescing.write(frame)
    at_once = list(writes)  # before the loop's turn ends
    got = await _received(theirs, len(b"headersdatatrailers"))
    coalescing.close()
    theirs.close()
    assert at_once == [b"headers", b"data", b"trailers"]
    assert got == b"headersdatatrailers"


async def test_several_calls_in_flight_share_one_write_per_turn() -> None:
    transport, theirs, writes = await _pair()
    busy = [True]
    coalescing = CoalescingTransport(transport, busy=lambda: busy[0])
    for frame in (b"a1", b"a2", b"b1"):
        coalescing.write(frame)
    during_turn = list(writes)
    await asyncio.sleep(0)  # the turn ends: one write of all three
    await asyncio.sleep(0)
    after_turn = list(writes)
    coalescing.write(b"x")  # buffered again...
    busy[0] = False
    coalescing.write(b"y")  # ...so this one waits behind it: the order holds
    coalescing.close()  # close sends what is buffered first
    got = await _received(theirs, len(b"a1a2b1xy"))
    theirs.close()
    assert during_turn == []
    assert after_turn == [b"a1a2b1"]
    assert got == b"a1a2b1xy"


async def test_a_large_buffer_goes_out_before_the_turn_ends() -> None:
    transport, theirs, writes = await _pair()
    coalescing = CoalescingTransport(transport, busy=lambda: True)
    coalescing.write(b"h")
    coalescing.write(b"\0" * (256 * 1024))
    sizes = [len(w) for w in writes]
    coalescing.abort()
    theirs.close()
    assert sizes == [1 + 256 * 1024]
