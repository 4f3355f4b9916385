"""The direct HTTP protocol (``modelport.server.protocol``): hot-route requests answered
without the ASGI cycle behave on the wire exactly as those that take it: keep-alive,
pipelining in order, HTTP/1.0 and ``Connection: close``, bodies in pieces, errors."""

from __future__ import annotations

import itertools
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tests.conftest import ADMIN_KEY
from tests.servers import ServerProcess

ROW = [0.1, -1.2, 0.3, 0.5, 1.1, -0.4, 0.9, 0.0, -0.7, 0.2]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class Wire:
    """A raw HTTP/1.1 connection: send bytes, read answers one by one."""

    def __init__(self, server: ServerProcess) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        self.buffer = b""

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *_: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def answer(self) -> Answer:
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), f"connection closed mid-answer: {self.buffer!r}"
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            assert name.lower() not in headers, f"header {name} sent twice"
            headers[name.lower()] = value.strip()
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            assert self._fill(), "connection closed mid-body"
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(int(status_line.split()[1]), headers, body)

    def closed_by_server(self) -> bool:
        self.sock.settimeout(10)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


def post(
    path: str,
    body: bytes,
    *,
    key: str = ADMIN_KEY,
    version: str = "1.1",
    extra: str = "",
    chunked: bool = False,
) -> bytes:
    head = (
        f"POST {path} HTTP/{version}\r\nHost: test\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\n{extra}"
    )
    if chunked:  # uvicorn's ASGI path takes chunked bodies
        return (
            f"{head}Transfer-Encoding: chunked\r\n\r\n{len(body):x}\r\n".encode()
            + body
            + b"\r\n0\r\n\r\n"
        )
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def features(*rows: list[float]) -> bytes:
    return orjson.dumps({"features": list(rows)})


def test_direct_and_asgi_answers_are_the_same(server: ServerProcess) -> None:
    bodies = [
        features(ROW),
        features(ROW, [x * 2 for x in ROW]),
        b'{"features": [[1, 2]]}',  # wrong width
        b'{"features": [[1, 2, 3, 4, 5, 6, 7, 8, 9, "x"]]}',
        b"not json",
        b"{}",
        b'{"instances": [[0.1, -1.2, 0.3, 0.5, 1.1, -0.4, 0.9, 0.0, -0.7, 0.2]]}',
    ]
    direct_before = _direct_requests(server)
    with Wire(server) as wire:
        for body in bodies:
            wire.send(post("/predict", body))
            direct = wire.answer()
            wire.send(post("/predict", body, chunked=True))
            through_asgi = wire.answer()
            assert direct.status == through_asgi.status, body
            assert direct.body == through_asgi.body, body
            for name in ("content-type", "x-model-name", "x-model-version", "retry-after"):
                assert direct.headers.get(name) == through_asgi.headers.get(name), (name, body)
            assert "date" in direct.headers
    assert orjson.loads(direct.body)["predictions"]  # the last body was KServe V1
    # One of each pair took the direct path (the chunked one took uvicorn's ASGI path).
    assert _direct_requests(server) == direct_before + len(bodies)


def _direct_requests(server: ServerProcess) -> int:
    with server.http(ADMIN_KEY) as admin:
        count: int = admin.get("/api/v1/serving").json()["direct_requests"]
        return count


def test_keep_alive_serves_many_requests_on_one_connection(server: ServerProcess) -> None:
    with Wire(server) as wire:
        answers = []
        for scale in range(1, 21):
            wire.send(post("/predict", features([x * scale for x in ROW])))
            answers.append(wire.answer())
    predictions = [orjson.loads(a.body)["prediction"][0] for a in answers]
    assert all(a.status == 200 for a in answers)
    # A linear model: the prediction is affine in the scale, so the answers kept their order.
    steps = [b - a for a, b in itertools.pairwise(predictions)]
    assert max(steps) - min(steps) < 1e-6 * max(1.0, abs(steps[0]))


def test_pipelined_requests_are_answered_in_order(server: ServerProcess) -> None:
    health = b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\n\r\n"
    with Wire(server) as wire:
        wire.send(
            post("/predict", features(ROW))
            + health
            + post("/predict", features(ROW, ROW))
            + post("/predict", b"[1]")
            + post("/v2/models/demo-linear/infer", b'{"inputs": []}')
            + post("/predict", features([x * 3 for x in ROW]))
        )
        answers = [wire.answer() for _ in range(6)]
    assert [a.status for a in answers] == [200, 200, 200, 400, 400, 200]
    assert len(orjson.loads(answers[0].body)["prediction"]) == 1
    assert orjson.loads(answers[1].body) == {"live": True}
    assert len(orjson.loads(answers[2].body)["prediction"]) == 2
    assert "object" in orjson.loads(answers[3].body)["error"]["message"]
    assert "error" in orjson.loads(answers[4].body)


def test_http_1_0_and_connection_close_end_the_connection(server: ServerProcess) -> None:
    for request in (
        post("/predict", features(ROW), version="1.0"),
        post("/predict", features(ROW), extra="Connection: close\r\n"),
        post("/predict", b"broken", extra="Connection: close\r\n"),
    ):
        with Wire(server) as wire:
            wire.send(request)
            answer = wire.answer()
            assert answer.status in (200, 400)
            assert answer.headers["connection"] == "close"
            assert wire.closed_by_server()


def test_a_body_in_pieces_and_expect_continue(server: ServerProcess) -> None:
    body = features(ROW, ROW, ROW)
    request = post("/predict", body)
    with Wire(server) as wire:
        split = len(request) - len(body)
        wire.send(request[: split - 3])
        time.sleep(0.05)  # the server sees the header end and the body in separate reads
        wire.send(request[split - 3 : split + 5])
        time.sleep(0.05)
        wire.send(request[split + 5 :])
        answer = wire.answer()
        assert answer.status == 200
        assert len(orjson.loads(answer.body)["prediction"]) == 3
    with Wire(server) as wire:  # uvicorn's path asks for the body first
        head = post("/predict", body, extra="Expect: 100-continue\r\n")[: -len(body)]
        wire.send(head)
        while b"\r\n\r\n" not in wire.buffer:
            assert wire._fill()
        assert wire.buffer.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        wire.buffer = wire.buffer[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
        wire.send(body)
        assert wire.answer().status == 200


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (post("/predict", features(ROW), key="mp_not-a-key"), 401),
        (b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", 401),
        (b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Length: nope\r\n\r\n", 400),
        (b"POST /models/%2e%2e/predict HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 401),
        (post("/models/no-such-model/predict", features(ROW)), 404),
        (post("/models/demo-linear@@x/predict", features(ROW)), 400),
    ],
)
def test_hostile_requests_get_clear_errors(
    server: ServerProcess, request_bytes: bytes, status: int
) -> None:
    with Wire(server) as wire:
        wire.send(request_bytes)
        answer = wire.answer()
    assert answer.status == status, answer.body
    if answer.headers.get("content-type") == "application/json":
        assert orjson.loads(answer.body)["error"]
    if status == 401:
        assert answer.headers["www-authenticate"] == "Bearer"
    assert server.is_healthy()


def test_refused_requests_leave_no_reference_cycles() -> None:
    """A failed request's exception is kept by its batcher future; its traceback must not
    tie that future and the request into a cycle (freed only by full GC passes, which
    stall the event loop under overload)."""
    import asyncio
    import gc

    import numpy as np

    from modelport.api.fastpath import failure_reply
    from modelport.serving.batching import Batcher, BatchPolicy, Pending, QueueLimits
    from modelport.serving.predictors import InlinePredictor

    class Model:
        finite_inputs_only = True
        default_outputs = ("y",)

        def predict(self, inputs: dict[str, np.ndarray], outputs: frozenset[str]) -> dict:
            return {"y": inputs["x"]}

        def unload(self) -> None:
            pass

    async def fail_once(batcher: Batcher) -> None:
        item = batcher.enqueue({"x": np.ones((1, 1))}, frozenset({"y"}))
        batcher.abandon(item)  # as a disconnect does: the future holds the error
        try:
            await batcher.wait(item)
            item.future.result()
        except Exception as exc:
            failure_reply("/predict", exc)

    async def scenario() -> None:
        batcher = Batcher(InlinePredictor(Model()), BatchPolicy(), True, QueueLimits())  # type: ignore[arg-type]
        for _ in range(50):
            await fail_once(batcher)
        await batcher.close()

    gc.collect()
    gc.disable()
    try:
        asyncio.run(scenario())
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        cyclic = [o for o in gc.garbage if isinstance(o, Pending)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert cyclic == []


def test_a_request_refused_on_its_headers_still_ends_idle(server: ServerProcess) -> None:
    """Refused before its body arrived, the connection still closes after the keep-alive
    timeout once it goes idle (uvicorn's 5 s)."""
    with Wire(server) as wire:
        wire.send(b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n")
        assert wire.answer().status == 401  # no key: answered on the headers
        wire.send(b"0123456789")  # the body, after its answer
        started = time.monotonic()
        assert wire.closed_by_server()
        assert time.monotonic() - started < 9


def test_an_upgrade_request_on_a_hot_route_is_answered(server: ServerProcess) -> None:
    with Wire(server) as wire:
        wire.send(
            b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n"
            b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        wire.sock.settimeout(10)
        first = wire.sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 "), first  # an answer (uvicorn's), not a hang
    assert server.is_healthy()


def test_a_client_that_never_reads_is_not_read_either(server: ServerProcess) -> None:
    """Pipelined requests answered on their headers from a client that reads nothing: the
    server stops reading once its answers pile up, instead of buffering them all."""

    refused = b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
    batch = refused * 2000
    sent = 0
    with Wire(server) as wire:
        wire.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        wire.sock.settimeout(0.5)
        stop = time.monotonic() + 6
        while time.monotonic() < stop and sent < 200 * 1024 * 1024:
            try:
                sent += wire.sock.send(batch)
            except TimeoutError:
                continue
        assert sent < 100 * 1024 * 1024, sent  # the server stopped taking requests
    assert server.is_healthy()


def test_a_model_unloaded_between_headers_and_body_answers(
    server: ServerProcess, tmp_path: Path
) -> None:
    """The screening on the headers is not trusted once the body arrives: a version
    unloaded meanwhile answers 503 (no request hangs on its closed queue)."""
    from tests.api.test_management import upload
    from tests.models import regression, save_skops

    estimator, x = regression(n_features=3, seed=21)
    with server.http(ADMIN_KEY) as admin:
        assert upload(
            admin, "unloaded-late", save_skops(estimator, tmp_path / "m.skops")
        ).is_success
        assert admin.post(
            "/models/unloaded-late/predict", json={"features": x[:1].tolist()}
        ).is_success
        body = features(x[0].tolist())
        request = post("/models/unloaded-late/predict", body)
        with Wire(server) as wire:
            wire.send(request[: -len(body)])  # headers: screened, admitted
            time.sleep(0.2)  # let the server screen the headers before the unload
            assert admin.post("/v2/repository/models/unloaded-late/unload").is_success
            wire.send(body)
            answer = wire.answer()
        assert answer.status == 503, answer.body
        assert "unloaded" in orjson.loads(answer.body)["error"]["message"]
        assert admin.post("/v2/repository/models/unloaded-late/load").is_success


def _serving(server: ServerProcess) -> dict[str, int]:
    with server.http(ADMIN_KEY) as admin:
        state = admin.get("/api/v1/serving").json()
    return {"direct": state["direct_requests"], "deferred": state["deferred_reads"]}


def test_a_flood_waits_unparsed_and_every_request_is_answered_in_order(
    server: ServerProcess,
) -> None:
    """More requests at once than one turn of the loop parses: the rest wait unparsed for
    later turns (their bytes kept, their connections not read meanwhile), and then every
    request is answered, on each connection in order, pipelined ones and GETs included."""
    health = b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\n\r\n"
    with Wire(server) as wire:  # the model is linear: two answers give every other one
        wire.send(post("/predict", features([0.0] * len(ROW))) + post("/predict", features(ROW)))
        base, step = (orjson.loads(wire.answer().body)["prediction"][0] for _ in range(2))
    step -= base
    before = _serving(server)
    wires = [Wire(server) for _ in range(700)]
    try:
        requests = []
        for scale in range(len(wires)):
            request = post("/predict", features([x * scale for x in ROW]))
            if scale % 10 == 0:  # some connections pipeline a GET and a second prediction
                request += health + post("/predict", features(ROW))
            requests.append(request)
        for wire, request in zip(wires, requests, strict=True):
            wire.send(request)
        for scale, wire in enumerate(wires):
            first = wire.answer()
            assert first.status == 200, first.body
            predicted = orjson.loads(first.body)["prediction"][0]
            assert predicted == pytest.approx(base + scale * step, rel=1e-6, abs=1e-9)
            if scale % 10 == 0:
                assert orjson.loads(wire.answer().body) == {"live": True}
                second = orjson.loads(wire.answer().body)["prediction"][0]
                assert second == pytest.approx(base + step, rel=1e-6, abs=1e-9)
    finally:
        for wire in wires:
            wire.sock.close()
    after = _serving(server)
    assert after["deferred"] > before["deferred"]  # the flood did wait for later turns
    assert after["direct"] - before["direct"] >= 700  # a pipelined one takes uvicorn's path
    assert server.is_healthy()
