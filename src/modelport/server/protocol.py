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
import logging
import math
import time
import weakref
from collections import deque
from collections.abc import Callable
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

log = logging.getLogger(__name__)

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
        "waited",
    )

    def __init__(
        self,
        path: str,
        route: HotRoute,
        params: list[str],
        head: HotHeaders,
        keep_alive: bool,
        waited: float,
    ) -> None:
        self.path = path
        self.waited = waited
        """Seconds its bytes waited unparsed (``_Turn``); they count against its deadline."""
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
    __slots__ = (
        "_answering",
        "_deferred",
        "_fast",
        "_paused_for_writes",
        "_reading",
        "_turn",
        "_waited",
        "deferred_at",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        app = self.app
        self._fast: FastPath | None = app if isinstance(app, FastPath) else None
        self._reading: _Exchange | None = None
        """The direct request whose body the parser is delivering."""
        self._answering: _Exchange | None = None
        self._paused_for_writes = False
        self._deferred: bytes | None = None
        """Bytes read past the turn's budget, parsed when ``_Turn`` takes them back."""
        self.deferred_at = 0.0
        """When the deferred bytes were read (``time.perf_counter``)."""
        self._waited = 0.0
        """While deferred bytes are parsed: how long they waited."""
        self._turn = _turn_of(self.loop)

    def data_received(self, data: bytes) -> None:
        deferred = self._deferred
        if deferred is not None:  # uvicorn's flow control resumed a deferred connection
            self._deferred = deferred + data
            self.transport.pause_reading()
        elif self._turn.admit(self) or self._continues_a_request() or self.transport.is_closing():
            super().data_received(data)
        else:
            self._deferred = data
            self.deferred_at = time.perf_counter()
            if self._fast is not None:
                self._fast.services.deferred_reads += 1
            self._unset_keepalive_if_required()  # a request has come; it waits its turn
            self.transport.pause_reading()
            self._turn.defer(self, urgent=data.startswith(b"GET "))

    def _continues_a_request(self) -> bool:
        """A request of this connection is being read or answered: more of its body (or a
        request pipelined behind it, which uvicorn queues) is parsed at once, not sent to
        the back of the queue again."""
        cycle = self.cycle
        return self._reading is not None or (cycle is not None and not cycle.response_complete)

    def timeout_keep_alive_handler(self) -> None:
        if self._deferred is None:  # else its request is read already and waits its turn
            super().timeout_keep_alive_handler()

    def shutdown(self) -> None:
        if self._deferred is not None:  # read already: answered before the connection closes
            self.take_back()
        super().shutdown()

    def close(self) -> None:
        self._deferred = None
        self.transport.close()

    @property
    def patience_s(self) -> float:
        """How long a request may wait: the server's default timeout."""
        fast = self._fast
        return fast.services.settings.request_timeout_s if fast is not None else math.inf

    def take_back(self) -> None:
        """Parse the bytes deferred by ``data_received`` and read this connection again."""
        data, self._deferred = self._deferred, None
        transport = self.transport
        if data is None or transport.is_closing():
            return
        self._waited = time.perf_counter() - self.deferred_at
        try:
            super().data_received(data)
        finally:
            self._waited = 0.0
        if not transport.is_closing() and not self.flow.read_paused and self._deferred is None:
            transport.resume_reading()

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
            exchange.screened = fast.screen_now(
                exchange.route, exchange.params, exchange.head, exchange.waited
            )
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
            call = fast.start_now(
                exchange.route, exchange.params, exchange.head, body, screened, exchange.waited
            )
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
        self._deferred = None
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
        return _Exchange(path, matched[0], matched[1], head, keep_alive, self._waited)

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
                exchange.waited,
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


TURN_BUDGET_S = 0.01
"""Seconds of request parsing one turn of the event loop spends before later reads wait
for a later turn (``_Turn``). About 100 one-row predictions under a flood; a turn also runs
the batch these requests make, their answers and the loop's timers."""


class _Deferring(Protocol):
    """What ``_Turn`` needs of a connection."""

    deferred_at: float
    """When its bytes were read (``time.perf_counter``)."""

    @property
    def patience_s(self) -> float:
        """How long its request may wait in all."""

    def take_back(self) -> None:
        """Parse what was deferred, and read the connection again."""

    def close(self) -> None:
        """Drop the connection."""


class _Turn:
    """Bounds the request parsing done in one turn of the event loop.

    libuv polls in rounds of up to 1,024 ready connections and keeps polling, up to 48
    rounds, while a round comes back full; only then does the loop run its callbacks and
    timers. Under thousands of connections that each send again as soon as they are
    answered (a refusal is answered on the spot), the rounds stayed full: one turn read
    about 49,000 requests and lasted ~5 s, while timers (request deadlines), tasks and new
    connections, health probes among them, waited.

    So a turn parses requests for ``budget_s`` at most. A connection read after that, or
    while others wait, keeps its bytes unparsed and stops being read (``defer``); each
    turn takes connections back in the order they came, for its budget, GET requests
    (health probes, metrics) first. A turn then lasts about its budget plus the batch its
    requests make, however many connections press, so deadlines fire on time.

    The time a request waits unparsed counts against its deadline. While the oldest has
    waited less than the server's timeout, connections come back in order. Past that, in
    order would mean parsing only requests too old to predict (every one refused, none
    predicted: a collapse), so the turn takes the newest and the oldest in turn: the
    newest still get predictions within their deadline, the oldest get their 503 (cheap:
    refused on their headers) and are not starved.
    """

    __slots__ = (
        "__weakref__",
        "_scheduled",
        "budget_s",
        "clock",
        "loop",
        "started",
        "urgent",
        "waiting",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        budget_s: float = TURN_BUDGET_S,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.loop = loop
        self.budget_s = budget_s
        self.clock = clock
        self.started = 0.0
        self.waiting: deque[_Deferring] = deque()
        self.urgent: deque[_Deferring] = deque()
        self._scheduled = False

    def admit(self, connection: _Deferring) -> bool:
        """Whether a request read now may be parsed now (else ``defer`` it)."""
        now = self.clock()
        if not self._scheduled:  # the turn's first read; its callbacks run after polling
            self._scheduled = True
            self.started = now
            self.loop.call_soon(self._next_turn)
        return not (self.waiting or self.urgent) and now - self.started < self.budget_s

    def defer(self, connection: _Deferring, urgent: bool = False) -> None:
        """``connection`` keeps its bytes unparsed until a later turn takes it back."""
        (self.urgent if urgent else self.waiting).append(connection)

    def _next_turn(self) -> None:
        started = self.started = self.clock()
        urgent, waiting = self.urgent, self.waiting
        # Every connection of a server has the server's timeout: asked once per turn.
        patience = waiting[0].patience_s if waiting else math.inf
        oldest_next = True
        try:
            while urgent or waiting:  # at least one per turn
                # GETs first, for half the budget at most: a flood of them starves no one.
                if urgent and (not waiting or self.clock() - started < self.budget_s / 2):
                    connection = urgent.popleft()
                elif started - waiting[0].deferred_at < patience:
                    connection = waiting.popleft()
                else:  # overloaded: see the class
                    connection = waiting.popleft() if oldest_next else waiting.pop()
                    oldest_next = not oldest_next
                try:
                    connection.take_back()
                except Exception:  # that connection is dropped, the turns go on
                    log.exception("parsing a deferred request failed")
                    connection.close()
                if self.clock() - started >= self.budget_s:
                    break
        finally:
            self._scheduled = bool(urgent or waiting)
            if self._scheduled:  # the rest next turn, even if idle
                self.loop.call_soon(self._next_turn)


_TURNS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Turn] = weakref.WeakKeyDictionary()


def _turn_of(loop: asyncio.AbstractEventLoop) -> _Turn:
    """The turns of ``loop``: one per event loop, shared by all its connections."""
    turn = _TURNS.get(loop)
    if turn is None:
        turn = _TURNS[loop] = _Turn(loop)
    return turn


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
