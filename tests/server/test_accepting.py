"""The server accepts every connection waiting on its socket at once (libuv alone accepts
one per turn of the event loop, so a flood starved new connections, health probes among
them), and one turn of the loop parses requests for a bounded time: the rest wait
unparsed, in order, health probes first (for half a turn at most), and newest with oldest
under a stale backlog; a deferred request keeps its connection through the keep-alive
timeout and a shutdown, and the rest of a request already parsed does not wait again."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, cast

import uvicorn
import uvloop
from uvicorn.server import ServerState

from modelport.server.accepting import ACCEPT_BATCH, ConnectionAcceptor
from modelport.server.protocol import DirectHttpProtocol, _Turn, _turn_of

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
        if self.name == "broken":
            raise RuntimeError("a bug while parsing")
        self._clock.now += self.PARSE_S
        self._parsed.append(self.name)

    def close(self) -> None:
        self._parsed.append(f"closed {self.name}")


def _connections(
    count: int, budget_s: float = 1.0
) -> tuple[_Turn, _Clock, list[str], list[_Connection]]:
    clock = _Clock()
    turn = _Turn(asyncio.get_running_loop(), budget_s=budget_s, clock=clock)
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


def test_a_failure_while_parsing_drops_that_connection_and_the_turns_go_on() -> None:
    async def scenario() -> None:
        _, _, parsed, connections = _connections(7)
        connections[5].name = "broken"
        for connection in connections:
            connection.read()
        await asyncio.sleep(0)
        assert parsed == ["0", "1", "2", "3", "4", "closed broken", "6"]

    uvloop.run(scenario())


def test_gets_come_back_first_for_half_a_turn_at_most() -> None:
    async def scenario() -> None:
        _, _, parsed, connections = _connections(12)
        for connection in connections[:6]:
            connection.read()
        for connection in connections[6:]:  # GETs (health probes) read after two POSTs
            connection.read(urgent=True)
        assert parsed == ["0", "1", "2", "3"]
        await asyncio.sleep(0)  # GETs for half the 1 s budget, then the POSTs' turn
        assert parsed[4:] == ["6", "7", "4", "5"]
        await asyncio.sleep(0)
        assert parsed[8:] == ["8", "9", "10", "11"]

    uvloop.run(scenario())


class _Transport:
    """What uvicorn's protocol writes to, without a socket."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False
        self.reading = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 8000) if name in ("sockname", "peername") else default

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


async def _echo(scope: dict[str, object], receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"echo:" + body})


def _deferring_connection() -> tuple[DirectHttpProtocol, _Transport]:
    """A connection whose every new request waits for a later turn (no budget at all)."""
    config = uvicorn.Config(_echo, lifespan="off")
    protocol = DirectHttpProtocol(config=config, server_state=ServerState(), app_state={})
    _turn_of(asyncio.get_running_loop()).budget_s = 0.0
    transport = _Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


async def _answered(transport: _Transport) -> bytes:
    for _ in range(50):
        if transport.written.endswith(b"0\r\n\r\n"):  # the last chunk
            return transport.written
        await asyncio.sleep(0)
    raise AssertionError(f"no answer: {transport.written!r}")


REQUEST_HEAD = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n"


def test_a_deferred_request_is_parsed_on_a_later_turn_and_answered() -> None:
    async def scenario() -> None:
        protocol, transport = _deferring_connection()
        protocol.data_received(REQUEST_HEAD + b"hello")
        assert not transport.reading and transport.written == b""  # read, not parsed
        protocol.timeout_keep_alive_handler()  # its request waits: the connection stays
        assert not transport.closed
        assert (await _answered(transport)).count(b"echo:hello") == 1
        assert transport.reading and not transport.closed

    uvloop.run(scenario())


def test_the_rest_of_a_request_already_parsed_does_not_wait_again() -> None:
    async def scenario() -> None:
        protocol, transport = _deferring_connection()
        protocol.data_received(REQUEST_HEAD)  # its headers wait for a turn
        await asyncio.sleep(0)
        assert transport.reading  # taken back: headers parsed, body awaited
        protocol.data_received(b"hello")  # parsed at once, not queued behind others
        assert transport.reading
        assert (await _answered(transport)).count(b"echo:hello") == 1

    uvloop.run(scenario())


def test_shutdown_answers_a_deferred_request_before_closing() -> None:
    async def scenario() -> None:
        protocol, transport = _deferring_connection()
        protocol.data_received(REQUEST_HEAD + b"hello")
        protocol.shutdown()  # uvicorn closes idle connections at once; this one is not
        assert not transport.closed
        assert (await _answered(transport)).count(b"echo:hello") == 1
        assert transport.closed  # closed after its answer

    uvloop.run(scenario())
