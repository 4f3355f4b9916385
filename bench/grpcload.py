"""The gRPC load generator: N concurrent ModelInfer calls for a fixed time, or one checked call.

Runs in bench/.envs/grpcclient (tritonclient's generated stubs, so the same client drives
every server), pinned by the runner to the client core:

    python grpcload.py TARGET MODEL INPUT DIMS RAW_FILE --verify
    python grpcload.py TARGET MODEL INPUT DIMS RAW_FILE --concurrency 32 --duration 10

DIMS is the shape, e.g. 32x30; RAW_FILE holds the FP32 tensor's little-endian bytes, sent as
`raw_input_contents`. `--verify` prints the first output's values as JSON. A load run prints
one JSON line: completed calls, seconds, p50/p99/max latency, failed calls and the CPU seconds
the generator itself used while loading (its own measure of being the bottleneck).

The request is serialised once and sent as bytes (the channel skips the serialiser), and the
answers are not parsed under load, so the client spends its time on the calls themselves.
With `--processes P` the calls are spread over P processes, each with its own channel, which
start loading at the same moment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

METHOD = "/inference.GRPCInferenceService/ModelInfer"
DECODE = {"FP32": "<f4", "FP64": "<f8", "INT64": "<i8", "INT32": "<i4"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("target", help="host:port")
    parser.add_argument("model")
    parser.add_argument("input", help="input tensor name")
    parser.add_argument("dims", help="shape, e.g. 1x1024")
    parser.add_argument("raw_file", type=Path, help="the FP32 tensor's little-endian bytes")
    parser.add_argument("--token", default="", help="sent as `authorization: Bearer TOKEN`")
    parser.add_argument("--verify", action="store_true", help="one call; print the outputs")
    parser.add_argument("--concurrency", type=int, default=1, help="calls in flight (1)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load (10)")
    parser.add_argument("--processes", type=int, default=1, help="client processes (1)")
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def build_request(args: argparse.Namespace) -> service_pb2.ModelInferRequest:
    shape = [int(d) for d in args.dims.split("x")]
    request = service_pb2.ModelInferRequest(model_name=args.model)
    tensor = request.inputs.add()
    tensor.name = args.input
    tensor.datatype = "FP32"
    tensor.shape.extend(shape)
    raw = args.raw_file.read_bytes()
    count = 1
    for dim in shape:
        count *= dim
    if len(raw) != 4 * count:
        raise SystemExit(f"{args.raw_file}: {len(raw)} bytes, a {args.dims} FP32 tensor needs")
    request.raw_input_contents.append(raw)
    return request


def metadata(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {args.token}"),) if args.token else ()


def verify(args: argparse.Namespace) -> None:
    """One typed call through the generated stub; print the first output's values."""
    with grpc.insecure_channel(args.target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        response = stub.ModelInfer(build_request(args), metadata=metadata(args), timeout=10)
    output = response.outputs[0]
    if response.raw_output_contents:
        import numpy as np

        kind = DECODE.get(output.datatype)
        if kind is None:
            raise SystemExit(f"cannot decode raw {output.datatype}")
        values = np.frombuffer(response.raw_output_contents[0], dtype=kind).tolist()
    else:
        contents = output.contents
        values = list(
            contents.fp64_contents
            or contents.fp32_contents
            or contents.int64_contents
            or contents.int_contents
        )
    print(json.dumps({"name": output.name, "datatype": output.datatype, "values": values}))


async def load(args: argparse.Namespace, concurrency: int) -> dict[str, object]:
    """Keep `concurrency` calls in flight from `start_at` for `duration` seconds."""
    payload = build_request(args).SerializeToString()
    md = metadata(args)
    latencies: list[float] = []
    failures = 0
    async with grpc.aio.insecure_channel(args.target) as channel:
        await asyncio.wait_for(channel.channel_ready(), 10)
        call = channel.unary_unary(METHOD)  # no (de)serialiser: bytes in, bytes out
        await call(payload, metadata=md, timeout=10)  # the connection is warm
        start = args.start_at or time.time()
        await asyncio.sleep(max(0.0, start - time.time()))
        begin = time.perf_counter()
        deadline = begin + args.duration
        cpu_before = time.process_time()

        async def caller() -> None:
            nonlocal failures
            clock = time.perf_counter
            while True:
                sent = clock()
                if sent >= deadline:
                    return
                try:
                    await call(payload, metadata=md, timeout=5)
                except grpc.aio.AioRpcError:
                    failures += 1
                    continue
                latencies.append(clock() - sent)

        await asyncio.gather(*(caller() for _ in range(concurrency)))
        seconds = time.perf_counter() - begin
        cpu = time.process_time() - cpu_before
    return {
        "requests": len(latencies),
        "failures": failures,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "latencies_us": [round(x * 1e6) for x in latencies],
    }


def run_processes(args: argparse.Namespace, argv: list[str]) -> dict[str, object]:
    """Spread the calls over `processes` copies of this script; merge their results."""
    start = time.time() + 3.0  # time for every copy to import grpc and connect
    shares = [
        args.concurrency // args.processes + (n < args.concurrency % args.processes)
        for n in range(args.processes)
    ]
    children = []
    for share in shares:
        child = [
            sys.executable,
            __file__,
            *_without(argv, ("--processes", "--concurrency")),
            "--concurrency",
            str(share),
            "--start-at",
            repr(start),
        ]
        children.append(subprocess.Popen(child, stdout=subprocess.PIPE, text=True))
    results = []
    for child in children:
        out, _ = child.communicate()
        if child.returncode != 0:
            raise SystemExit(f"a client process failed with exit code {child.returncode}")
        results.append(json.loads(out))
    return {
        "requests": sum(r["requests"] for r in results),
        "failures": sum(r["failures"] for r in results),
        "seconds": max(r["seconds"] for r in results),
        "cpu_seconds": sum(r["cpu_seconds"] for r in results),
        "latencies_us": [x for r in results for x in r["latencies_us"]],
    }


def _without(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """`argv` without the given options and their values."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in options:
            skip = True
        elif not any(arg.startswith(f"{o}=") for o in options):
            out.append(arg)
    return out


def summarise(result: dict[str, object]) -> dict[str, object]:
    latencies = sorted(result.pop("latencies_us"))  # type: ignore[call-overload]

    def percentile(p: float) -> float:
        if not latencies:
            return 0.0
        return float(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))])

    longest = float(latencies[-1]) if latencies else 0.0
    return {**result, "p50_us": percentile(50), "p99_us": percentile(99), "max_us": longest}


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.verify:
        verify(args)
        return
    if args.start_at:  # a child of run_processes: raw results for the parent to merge
        print(json.dumps(asyncio.run(load(args, args.concurrency))))
        return
    if args.processes > 1:
        result = run_processes(args, argv)
    else:
        result = asyncio.run(load(args, args.concurrency))
    print(json.dumps(summarise(result)))


if __name__ == "__main__":
    main(sys.argv[1:])
