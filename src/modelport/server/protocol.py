"""uvicorn's httptools protocol, answering the hot inference routes without the ASGI cycle.

A one-row prediction costs less than uvicorn's ASGI machinery around it: per request a
scope, an event, a cycle object, a task running it, receive and send messages and a
header check per response header. For a POST to a hot route (``HOT_ROUTES`` in
``modelport.api.fastpath``) with a ``Content-Length`` body of at most
``DIRECT_BODY_LIMIT`` bytes, on a connection with no other request in progress, this
protocol takes the body from the parser's callbacks and answers it with the same checks
and handlers as the ASGI route, writing the whole response with one ``transport.write``.
A one-input model's ``{"features": ...}`` request from a known key is checked and queued
right in the parser's callback and answered from its batch's completion, with no task or
coroutine at all (``FastPath.start_now``); any other runs ``FastPath.answer`` in a task.

Everything else takes uvicorn's own path, unchanged: other routes and methods, chunked or
large bodies, ``Expect: 100-continue``, percent-encoded or absolute-form targets, and a
request pipelined behind one still being answered (uvicorn queues it until then, since the
exchange below stands in for its cycle).
"""

from __future__ import annotations

import asyncio
import http
from collections import deque
from typing import Any, Protocol

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from modelport.api.fastpath import (
    FastPath,
    HotHeaders,
    HotRoute,
    Screened,
    failure_reply,
    match_hot_route,
)
from modelport.api.handlers import OFF_LOOP_BYTES, Reply, predict_reply
from modelport.serving.dataplane import RowsCall

DIRECT_BODY_LIMIT = OFF_LOOP_BYTES
"""Larger bodies take the ASGI path, which reads them incrementally and bounded."""

_STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode()
    for status in http.HTTPStatus
}


class _Exchange:
    """One request answered directly. It stands in for uvicorn's request cycle while it
    runs, so uvicorn's own logic applies: a request pipelined behind it waits, a shutdown
    closes the connection after the answer, a lost connection marks it disconnected."""

    __slots__ = (
        "_gone",
        "call",
        "chunks",
        "disconnected",
        "head",
        "keep_alive",
        "params",
        "path",
        "response_complete",
        "route",
        "screened",
    )

    def __init__(
        self, path: str, route: HotRoute, params: list[str], head: HotHeaders, keep_alive: bool
    ) -> None:
        self.path = path
        self.route = route
        self.params = params
        self.head = head
        self.chunks: list[bytes] = []
        self.keep_alive = keep_alive
        self.disconnected = False
        self.response_complete = False
        self.call: RowsCall | None = None
        self.screened: Screened | None = None
        self._gone: asyncio.Future[None] | None = None

    @property
    def message_event(self) -> _Exchange:
        """uvicorn calls ``cycle.message_event.set()`` when the connection is lost (a
        property, not an attribute: a reference to itself would make every exchange a
        reference cycle, left to the garbage collector)."""
        return self

    def set(self) -> None:
        if not self.disconnected:
            return
        if self.call is not None:
            self.call.abandon()  # its rows leave the queue
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(None)

    async def client_gone(self) -> None:
        """Completes when the client disconnects (the batcher then drops its rows)."""
        if self.disconnected:
            return
        if self._gone is None:
            self._gone = asyncio.get_running_loop().create_future()
        await self._gone


class DirectHttpProtocol(HttpToolsProtocol):
    """``uvicorn --http modelport.server.protocol:DirectHttpProtocol``."""

    # Slots, not instance attributes: uvicorn's protocol already fills its instance
    # dictionary's shared keys, and five more made every connection's dictionary grow
    # (about 800 bytes per connection, measured with tracemalloc under 4,000 connections).
    __slots__ = ("_answering", "_fast", "_held_for_turn", "_paused_for_writes", "_reading")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        app = self.app
        self._fast: FastPath | None = app if isinstance(app, FastPath) else None
        self._reading: _Exchange | None = None
        """The direct request whose body the parser is delivering."""
        self._answering: _Exchange | None = None
        self._paused_for_writes = False
        self._held_for_turn = False

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        _TURN.read(self)

    def hold_for_later_turn(self) -> bool:
        """Stop reading this connection until a later turn of the event loop takes it
        back (``_Turn``); False when it is closing or held already."""
        if self._held_for_turn or self.transport.is_closing():
            return False
        self._held_for_turn = True
        self.transport.pause_reading()
        return True

    def release_turn_hold(self) -> None:
        self._held_for_turn = False
        if not self.transport.is_closing() and not self.flow.read_paused:
            self.transport.resume_reading()

    def on_message_begin(self) -> None:
        # uvicorn builds the request's ASGI scope here. A direct request never needs one,
        # so it is built once a request turns out to take uvicorn's path.
        self._reading = None
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def on_headers_complete(self) -> None:
        exchange = self._direct_exchange()
        if exchange is None:
            url, headers, expect = self.url, self.headers, self.expect_100_continue
            super().on_message_begin()  # the scope; it resets what the parser delivered
            self.url, self.expect_100_continue = url, expect
            self.headers.extend(headers)  # the list the scope holds
            super().on_headers_complete()
            return
        self._reading = exchange
        self.cycle = exchange  # type: ignore[assignment]
        fast = self._fast
        assert fast is not None
        try:
            exchange.screened = fast.screen_now(exchange.route, exchange.params, exchange.head)
        except Exception as exc:
            # Refused on its headers (an overloaded model, a bad key...): answered now,
            # while the parser skips its body; shedding load costs no body decoding.
            self._answering = exchange
            self._respond(exchange, failure_reply(exchange.path, exc))

    def on_body(self, body: bytes) -> None:
        exchange = self._reading
        if exchange is None:
            super().on_body(body)
            return
        if not exchange.response_complete:
            exchange.chunks.append(body)

    def on_message_complete(self) -> None:
        exchange = self._reading
        if exchange is None:
            super().on_message_complete()
            return
        self._reading = None
        if exchange.response_complete:  # refused on its headers; its body is now read
            if not self.transport.is_closing():
                self._response_done()
            return
        self._answering = exchange
        fast = self._fast
        screened = exchange.screened
        assert fast is not None and screened is not None
        chunks = exchange.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        try:
            call = fast.start_now(exchange.route, exchange.params, exchange.head, body, screened)
        except Exception as exc:
            self._respond(exchange, failure_reply(exchange.path, exc))
            return
        if call is not None:
            exchange.call = call
            call.future.add_done_callback(lambda _: self._finish(exchange, call))
            return
        task = self.loop.create_task(self._answer(exchange, body, screened.authorized))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def connection_lost(self, exc: Exception | None) -> None:
        answering = self._answering
        if answering is not None and answering is not self.cycle:  # type: ignore[comparison-overlap]
            answering.disconnected = True  # a pipelined cycle has replaced it as self.cycle
            answering.set()
        super().connection_lost(exc)

    def _direct_exchange(self) -> _Exchange | None:
        """The request as a direct exchange, or None when uvicorn's path must take it."""
        fast = self._fast
        if fast is None or self.expect_100_continue or self.parser.get_method() != b"POST":
            return None
        if self.parser.should_upgrade():  # uvicorn answers upgrade requests
            return None
        if (self.cycle is not None and not self.cycle.response_complete) or self.pipeline:
            return None
        target = self.url
        if not target.startswith(b"/") or b"%" in target or not target.isascii():
            return None
        path = target.partition(b"?")[0].decode("ascii")
        matched = match_hot_route(path)
        if matched is None:
            return None
        head = HotHeaders.of(self.headers)
        length = head.content_length
        if (
            head.transfer_encoding
            or length is None
            or not (length.isascii() and length.isdigit())
            or int(length) > DIRECT_BODY_LIMIT
        ):
            return None
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        return _Exchange(path, matched[0], matched[1], head, keep_alive)

    async def _answer(self, exchange: _Exchange, body: bytes, authorized: bool) -> None:
        fast = self._fast
        assert fast is not None
        try:
            reply = await fast.answer(
                exchange.route,
                exchange.params,
                exchange.head,
                body,
                exchange.client_gone,
                authorized,
            )
        except Exception as exc:
            reply = failure_reply(exchange.path, exc)
        self._respond(exchange, reply)

    def _finish(self, exchange: _Exchange, call: RowsCall) -> None:
        try:
            reply = predict_reply(call)
        except Exception as exc:
            reply = failure_reply(exchange.path, exc)
        self._respond(exchange, reply)

    def _respond(self, exchange: _Exchange, reply: Reply) -> None:
        if self._answering is exchange:
            self._answering = None
        fast = self._fast
        assert fast is not None
        fast.services.direct_requests += 1
        exchange.response_complete = True
        transport = self.transport
        if exchange.disconnected or transport.is_closing():
            return
        transport.write(self._encode(reply, exchange.keep_alive))
        if not exchange.keep_alive:
            transport.close()
        if self.cycle is exchange:  # type: ignore[comparison-overlap]
            # Nothing of the request stays with the idle connection.
            self.cycle = None  # type: ignore[assignment]
            self.headers = []
        if self._reading is not exchange:  # else once its body is read (on_message_complete)
            self._response_done()

    def _response_done(self) -> None:
        self.on_response_complete()  # uvicorn's: next pipelined request, or keep-alive timer
        if self.flow.write_paused:
            # The client does not read its answers: stop reading its requests until it
            # does (answers given inside the parser's callbacks never wait for a drain).
            self.flow.pause_reading()
            self._paused_for_writes = True

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._paused_for_writes:
            self._paused_for_writes = False
            self.flow.resume_reading()

    def _encode(self, reply: Reply, keep_alive: bool) -> bytes:
        body = reply.body
        extra = reply.headers
        return b"".join(
            (
                _STATUS_LINES[reply.status],
                _HEADS.defaults(self.server_state.default_headers),
                _HEADS.fixed(reply.media_type, reply.raw_headers),
                b"content-length: %d\r\n" % len(body),
                b"".join(b"%s: %s\r\n" % (k.lower().encode(), v.encode()) for k, v in extra.items())
                if extra
                else b"",
                b"\r\n" if keep_alive else b"connection: close\r\n\r\n",
                body,
            )
        )


TURN_READ_LIMIT = 128
"""Reads in one turn of the event loop after which a connection read is held back for a
later turn (``_Turn``); also how many held connections each turn takes back. As many as
the bench's 128 busy connections, so that a turn serving them all holds none back; under
the overload bench's 4,000 it kept turns to ~70 ms on average (192: ~80 ms)."""


class _Holdable(Protocol):
    """What ``_Turn`` needs of a connection."""

    loop: asyncio.AbstractEventLoop

    def hold_for_later_turn(self) -> bool: ...

    def release_turn_hold(self) -> None: ...


class _Turn:
    """Counts the reads of one turn of the event loop and holds back connections past
    ``TURN_READ_LIMIT``.

    libuv polls in rounds of up to 1,024 ready connections and keeps polling, up to 48
    rounds, while a round comes back full; only then does the loop run its callbacks and
    timers. Under thousands of connections that each send again as soon as they are
    answered (a refusal is answered on the spot), the rounds stayed full: one turn read
    about 49,000 requests and lasted ~5 s, while timers (request deadlines), tasks and new
    connections, health probes among them, waited. Past the limit a connection is read
    once, then not again until a later turn takes it back: each turn takes back the
    ``TURN_READ_LIMIT`` held longest. A turn then reads about twice the limit however many
    connections press, so timers, deadlines and new connections are served every few tens
    of milliseconds, while the flood waits its turn in order, unread in the kernel.
    """

    __slots__ = ("_loop", "_scheduled", "held", "limit", "reads")

    def __init__(self, limit: int = TURN_READ_LIMIT) -> None:
        self.limit = limit
        self.reads = 0
        self.held: deque[_Holdable] = deque()
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def read(self, connection: _Holdable) -> None:
        """``connection`` was read (once per ``data_received``)."""
        self.reads += 1
        if not self._scheduled:  # the turn's callbacks run after its polling
            self._scheduled = True
            self._loop = connection.loop
            self._loop.call_soon(self._next_turn)
        if self.reads > self.limit and connection.hold_for_later_turn():
            self.held.append(connection)

    def _next_turn(self) -> None:
        self.reads = 0
        held = self.held
        for _ in range(min(len(held), self.limit)):
            held.popleft().release_turn_hold()
        self._scheduled = bool(held)
        if held and self._loop is not None:  # the rest on the next turn, even if idle
            self._loop.call_soon(self._next_turn)


_TURN = _Turn()


class _HeaderBlocks:
    """Encoded header lines: uvicorn's default headers (the date; uvicorn replaces the
    list when the second changes) and the fixed headers of each kind of reply."""

    def __init__(self) -> None:
        self._defaults_of: list[tuple[bytes, bytes]] | None = None
        self._defaults = b""
        self._fixed: dict[tuple[str, tuple[tuple[bytes, bytes], ...]], bytes] = {}

    def defaults(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        if headers is not self._defaults_of:
            self._defaults = b"".join(b"%s: %s\r\n" % pair for pair in headers)
            self._defaults_of = headers
        return self._defaults

    def fixed(self, media_type: str, raw_headers: tuple[tuple[bytes, bytes], ...]) -> bytes:
        key = (media_type, raw_headers)
        block = self._fixed.get(key)
        if block is None:
            lines = [b"content-type: %s\r\n" % media_type.encode()]
            lines += (b"%s: %s\r\n" % pair for pair in raw_headers)
            block = b"".join(lines)
            if len(self._fixed) >= 4096:  # model names come from the registry: bounded
                self._fixed.clear()
            self._fixed[key] = block
        return block


_HEADS = _HeaderBlocks()
