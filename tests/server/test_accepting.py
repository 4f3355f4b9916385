"""The server accepts every connection waiting on its socket at once (libuv alone accepts
one per turn of the event loop, so a flood starved new connections, health probes among
them), and one turn of the loop reads only so many requests before the loop runs its
timers and callbacks."""

from __future__ import annotations

import asyncio
import socket
from typing import cast

import uvloop

from modelport.server.accepting import ACCEPT_BATCH, ConnectionAcceptor
from modelport.server.protocol import _Turn

WAITING = ACCEPT_BATCH  # what one turn takes at most
_MADE: list[asyncio.Protocol] = []


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        _MADE.append(self)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data.upper())


def test_every_waiting_connection_is_accepted_in_one_turn() -> None:
    async def scenario() -> None:
        listening = socket.create_server(("127.0.0.1", 0), backlog=1024)
        listening.setblocking(False)
        address = listening.getsockname()
        # Their handshakes complete in the kernel: all of them wait in the accept queue.
        clients = [socket.create_connection(address, timeout=10) for _ in range(WAITING)]
        acceptor = ConnectionAcceptor(asyncio.get_running_loop(), listening, _Echo)
        try:
            await asyncio.sleep(0)  # one turn: the socket is ready once
            try:
                listening.accept()
            except BlockingIOError:
                pass  # the queue was emptied in that one turn
            else:
                raise AssertionError("connections were left waiting after the socket's turn")
            while len(_MADE) < WAITING:  # their protocols start on the next turns
                await asyncio.sleep(0)
            loop = asyncio.get_running_loop()
            for index, client in enumerate(clients):
                client.sendall(b"ping %d" % index)
            answers = await asyncio.gather(
                *(loop.run_in_executor(None, client.recv, 64) for client in clients)
            )
            assert answers == [b"PING %d" % index for index in range(WAITING)]
        finally:
            acceptor.close()
            listening.close()
            for client in clients:
                client.close()

    _MADE.clear()
    uvloop.run(scenario())


class _Connection:
    """What ``_Turn`` holds back: a connection whose reading can pause."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.held = False

    def hold_for_later_turn(self) -> bool:
        if self.held:
            return False
        self.held = True
        return True

    def release_turn_hold(self) -> None:
        self.held = False


def test_a_turn_reads_up_to_its_limit_then_holds_connections_back_in_order() -> None:
    async def scenario() -> None:
        turn = _Turn(limit=4)
        connections = [_Connection(asyncio.get_running_loop()) for _ in range(10)]
        for connection in connections:  # ten connections read in one turn
            turn.read(connection)
        assert [c.held for c in connections] == [False] * 4 + [True] * 6
        await asyncio.sleep(0)  # the next turn takes back the four held longest
        assert [c.held for c in connections] == [False] * 8 + [True] * 2
        assert turn.reads == 0
        turn.read(connections[0])  # read again in this turn: under the limit
        await asyncio.sleep(0)  # the rest come back though nothing else was read
        assert not any(c.held for c in connections)
        for connection in connections * 2:  # twenty reads: the first four pass
            turn.read(connection)
        assert all(c.held for c in connections)
        assert list(turn.held) == connections[4:] + connections[:4]  # each queued once

    uvloop.run(scenario())
