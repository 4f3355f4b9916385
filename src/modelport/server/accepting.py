"""uvicorn's server, accepting every waiting connection whenever its socket is ready.

libuv (under uvloop) accepts one connection each time the event loop reports the listening
socket ready (libuv/libuv#3696). Under a flood of requests one turn of the loop reads
thousands of connections and takes a few hundred milliseconds, so new connections were
accepted at a few per second: measured under 3,000 busy connections, 250-280 waited in the
kernel's accept queue for seconds, and a health probe on a new connection went unanswered
for 5 s, even with a raw ASGI app. Here the listening socket has a second watcher (a
duplicate of its descriptor, sharing its accept queue) that accepts everything waiting (up
to ``ACCEPT_BATCH`` connections per turn) and hands each to uvloop with the same protocol
uvicorn uses; libuv's own one-at-a-time accepting carries on beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import Callable

import uvicorn

log = logging.getLogger(__name__)

ACCEPT_BATCH = 512
"""Connections accepted per turn of the event loop at most. Each is set up by a task that
runs later in the turn, so a larger batch raises the memory high-water mark: the overload
bench's 4,000 new connections were accepted in 8 turns with RSS +25 MB at 512, against
+44-51 MB at 1,024."""


class AcceptingServer(uvicorn.Server):
    """``uvicorn.Server`` with a ``ConnectionAcceptor`` on each of its listening sockets."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._acceptors: list[ConnectionAcceptor] = []

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit:  # it could not listen
            return
        protocol_class: Callable[..., asyncio.Protocol] = self.config.http_protocol_class
        factory = functools.partial(
            protocol_class,
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        loop = asyncio.get_running_loop()
        for server in self.servers:
            for listening in server.sockets:
                if listening.family in (socket.AF_INET, socket.AF_INET6):
                    self._acceptors.append(ConnectionAcceptor(loop, listening, factory))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for acceptor in self._acceptors:
            acceptor.close()
        self._acceptors.clear()
        await super().shutdown(sockets)


class ConnectionAcceptor:
    """Accepts all connections waiting on a listening socket each time it is ready."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        listening: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
    ) -> None:
        self._loop = loop
        self._factory = protocol_factory
        # A descriptor of its own: the event loop watches descriptors, and libuv watches
        # the original one.
        self._socket = socket.socket(fileno=os.dup(listening.fileno()))
        self._socket.setblocking(False)
        self._connecting: set[asyncio.Task[object]] = set()
        self._accepted_this_turn = 0
        loop.add_reader(self._socket.fileno(), self._accept_waiting)

    def _accept_waiting(self) -> None:
        # libuv may report the socket ready in each of a turn's polling rounds: the
        # budget is per turn, restored once the turn's callbacks run.
        budget = ACCEPT_BATCH - self._accepted_this_turn
        if budget <= 0:
            return
        if self._accepted_this_turn == 0:
            self._loop.call_soon(self._next_turn)
        for _ in range(budget):
            try:
                connection, _ = self._socket.accept()
            except (BlockingIOError, InterruptedError):
                return  # none left (or libuv took it)
            except ConnectionAbortedError:
                continue
            except OSError as exc:  # out of descriptors or memory: libuv reports it too
                log.warning("accepting a connection failed: %s", exc)
                return
            self._accepted_this_turn += 1
            connection.setblocking(False)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = self._loop.create_task(
                self._loop.connect_accepted_socket(self._factory, connection)
            )
            self._connecting.add(task)
            task.add_done_callback(functools.partial(self._connected, connection))

    def _next_turn(self) -> None:
        self._accepted_this_turn = 0

    def _connected(self, connection: socket.socket, task: asyncio.Task[object]) -> None:
        self._connecting.discard(task)
        if task.cancelled() or task.exception() is not None:
            connection.close()  # the peer left before its transport was made

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._socket.fileno())
        self._socket.close()
        for task in self._connecting:
            task.cancel()
