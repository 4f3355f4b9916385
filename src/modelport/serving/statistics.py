"""Inference statistics per loaded version, as the V2 statistics extension reports them:
success and failure counts, and cumulative durations of queueing, input decoding,
inference and output encoding (count + nanoseconds each)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Duration:
    count: int = 0
    ns: int = 0
    longest_ns: int = 0

    def add(self, ns: int) -> None:
        self.count += 1
        self.ns += max(ns, 0)
        if ns > self.longest_ns:
            self.longest_ns = ns


@dataclass
class BatchSizeStats:
    compute_infer: Duration = field(default_factory=Duration)


@dataclass
class BatchStatistics:
    """Filled by the batcher: time spent queued, and each predict call by batch size."""

    queue: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    execution_count: int = 0
    by_batch_size: dict[int, BatchSizeStats] = field(default_factory=dict)

    def add_queue(self, ns: int) -> None:
        self.queue.add(ns)

    def add_batch(self, callers: int, rows: int, ns: int) -> None:
        self.execution_count += 1
        self.compute_infer.add(ns)
        self.by_batch_size.setdefault(rows, BatchSizeStats()).compute_infer.add(ns)
        del callers


@dataclass
class ModelStatistics:
    """Request-level counters kept by the DataPlane for one version."""

    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)
    inference_count: int = 0
    last_inference_ms: int = 0

    def succeeded(self, total_ns: int, rows: int) -> None:
        self.success.add(total_ns)
        self.inference_count += rows
        self.last_inference_ms = int(time.time() * 1000)

    def failed(self, total_ns: int) -> None:
        self.fail.add(total_ns)
        self.last_inference_ms = int(time.time() * 1000)
