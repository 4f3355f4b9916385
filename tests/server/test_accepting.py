"""The server accepts every connection waiting on its socket at once (libuv alone accepts
one per turn of the event loop, so a flood starved new connections, health probes among
them), and one turn of the loop parses requests for a bounded time: the rest wait
unparsed, in order, health probes first, and newest with oldest under a stale backlog."""

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


class _Clock:
    """Time that passes only when a connection's request is parsed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Connection:
    """What ``_Turn`` defers: parsing a request costs ``PARSE_S`` of the clock."""

    PARSE_S = 0.25

    def __init__(self, name: str, turn: _Turn, clock: _Clock, parsed: list[str]) -> None:
        self.name = name
        self.loop = asyncio.get_running_loop()
        self.deferred_at = 0.0
        self.patience_s = 10.0
        self._turn = turn
        self._clock = clock
        self._parsed = parsed

    def read(self, urgent: bool = False) -> None:
        """A request arrives, as ``DirectHttpProtocol.data_received`` handles it."""
        if self._turn.admit(self):
            self.take_back()
        else:
            self.deferred_at = self._clock()
            self._turn.defer(self, urgent)

    def take_back(self) -> None:
        self._clock.now += self.PARSE_S
        self._parsed.append(self.name)


def _connections(
    count: int, budget_s: float = 1.0
) -> tuple[_Turn, _Clock, list[str], list[_Connection]]:
    clock = _Clock()
    turn = _Turn(budget_s=budget_s, clock=clock)
    parsed: list[str] = []
    return turn, clock, parsed, [_Connection(str(i), turn, clock, parsed) for i in range(count)]


def test_a_turn_parses_for_its_budget_and_defers_the_rest_in_order() -> None:
    async def scenario() -> None:
        turn, clock, parsed, connections = _connections(10)
        for connection in connections:  # ten requests read in one turn
            connection.read()
        # 0.25 s each against a 1 s budget: four parsed, six deferred unparsed.
        assert parsed == ["0", "1", "2", "3"]
        assert list(turn.waiting) == connections[4:]
        await asyncio.sleep(0)  # the next turn parses the four deferred longest
        assert parsed[4:] == ["4", "5", "6", "7"]
        connections[0].read()  # read while others wait: deferred too, behind them
        assert parsed[8:] == []
        await asyncio.sleep(0)  # and the rest come back though nothing else was read
        assert parsed[8:] == ["8", "9", "0"]
        assert not turn.waiting
        await asyncio.sleep(0)
        clock.now += 5
        connections[1].read()  # a quiet turn: parsed at once
        assert parsed[-1] == "1"

    uvloop.run(scenario())


def test_get_requests_come_back_first() -> None:
    async def scenario() -> None:
        _, _, parsed, connections = _connections(6)
        for connection in connections[:5]:
            connection.read()
        connections[5].read(urgent=True)  # a health probe, read last
        assert parsed == ["0", "1", "2", "3"]
        await asyncio.sleep(0)
        assert parsed[4:] == ["5", "4"]

    uvloop.run(scenario())


def test_past_its_patience_a_turn_takes_the_newest_and_the_oldest_in_turn() -> None:
    """In order, a backlog older than the timeout would only ever parse requests too old
    to answer in time (all refused, none predicted); the newest still can be."""

    async def scenario() -> None:
        _, clock, parsed, connections = _connections(12)
        for connection in connections[:6]:
            connection.read()
        assert parsed == ["0", "1", "2", "3"]  # 4 and 5 wait
        clock.now = 15.0
        for connection in connections[6:]:  # read 14 s later
            connection.read()
        clock.now = 20.0  # 4 and 5 have waited 19 s, past their 10 s patience; 6-11 5 s
        await asyncio.sleep(0)
        assert parsed[4:] == ["4", "11", "5", "6"]  # once 5 is gone, 6 is the oldest
        await asyncio.sleep(0)  # and it waited less than its patience: in order again
        assert parsed[8:] == ["7", "8", "9", "10"]

    uvloop.run(scenario())
