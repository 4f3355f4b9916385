"""Prometheus metrics of the data plane, read from the live counters at scrape time (no
work on the request path)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from modelport.serving.model_cache import ModelCache

LABELS = ["model", "version"]


class DataPlaneCollector(Collector):
    """Model cache (loads, evictions, load time, memory) and per-version request,
    queue and batch metrics."""

    def __init__(self, cache: ModelCache) -> None:
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        yield from self._cache_metrics()
        yield from self._version_metrics()
        yield from self._generation_metrics()

    def _cache_metrics(self) -> Iterator[Metric]:
        cache, counters = self._cache, self._cache.counters
        yield CounterMetricFamily(
            "modelport_model_loads", "Versions loaded into memory", value=counters.loads
        )
        yield CounterMetricFamily(
            "modelport_model_evictions",
            "Versions unloaded to stay within the memory budget",
            value=counters.evictions,
        )
        yield from counters.load_time.collect()
        yield GaugeMetricFamily(
            "modelport_models_loaded", "Versions in memory", value=len(cache.loaded())
        )
        yield GaugeMetricFamily(
            "modelport_model_memory_bytes",
            "Memory the loaded versions count for against the budget",
            value=cache.memory_used(),
        )
        if cache.memory_limit is not None:
            yield GaugeMetricFamily(
                "modelport_model_memory_limit_bytes",
                "The memory budget for loaded versions",
                value=cache.memory_limit,
            )

    def _version_metrics(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "modelport_requests", "Inference requests answered", labels=[*LABELS, "outcome"]
        )
        latency = SummaryMetricFamily(
            "modelport_request_duration_seconds", "Time from arrival to answer", labels=LABELS
        )
        longest = GaugeMetricFamily(
            "modelport_request_longest_seconds",
            "Longest time from arrival to answer of one request since the version loaded",
            labels=[*LABELS, "outcome"],
        )
        queue = SummaryMetricFamily(
            "modelport_queue_duration_seconds", "Time requests waited for a batch", labels=LABELS
        )
        infer = SummaryMetricFamily(
            "modelport_batch_duration_seconds", "Time of each predict call", labels=LABELS
        )
        rows = CounterMetricFamily("modelport_inference_rows", "Rows predicted", labels=LABELS)
        queued = GaugeMetricFamily("modelport_queued_rows", "Rows waiting", labels=LABELS)
        shed = CounterMetricFamily(
            "modelport_requests_shed",
            "Requests refused at once: full queue, or their deadline could not be met",
            labels=LABELS,
        )
        cold = GaugeMetricFamily(
            "modelport_model_cold_load_seconds",
            "How long the loaded version took to load and warm up",
            labels=LABELS,
        )
        workers = GaugeMetricFamily(
            "modelport_model_workers",
            "Predict processes of a version (0: in-process)",
            labels=LABELS,
        )
        restarts = CounterMetricFamily(
            "modelport_worker_restarts", "Predict processes replaced after dying", labels=LABELS
        )
        for served in self._cache.loaded():
            labels = [served.version.model, str(served.version.version)]
            stats, batches = served.stats, served.batcher.stats
            requests.add_metric([*labels, "success"], stats.success.count)
            requests.add_metric([*labels, "failure"], stats.fail.count)
            done = stats.success.count + stats.fail.count
            latency.add_metric(labels, done, (stats.success.ns + stats.fail.ns) / 1e9)
            longest.add_metric([*labels, "success"], stats.success.longest_ns / 1e9)
            longest.add_metric([*labels, "failure"], stats.fail.longest_ns / 1e9)
            queue.add_metric(labels, batches.queue.count, batches.queue.ns / 1e9)
            infer.add_metric(labels, batches.compute_infer.count, batches.compute_infer.ns / 1e9)
            rows.add_metric(labels, stats.inference_count)
            queued.add_metric(labels, served.batcher.queued_rows)
            shed.add_metric(labels, served.batcher.shed)
            cold.add_metric(labels, served.load_seconds)
            workers.add_metric(labels, served.workers)
            restarts.add_metric(labels, served.pool.replaced if served.pool else 0)
        yield from (
            *(requests, latency, longest, queue, infer, rows),
            *(queued, shed, cold, workers, restarts),
        )

    def _generation_metrics(self) -> Iterator[Metric]:
        """Text-generation models: decoding steps, tokens, batch size, cancellations."""
        steps = CounterMetricFamily(
            "modelport_generation_steps", "Decoding steps (one model call each)", labels=LABELS
        )
        tokens = CounterMetricFamily(
            "modelport_generation_tokens", "Tokens generated", labels=LABELS
        )
        largest = GaugeMetricFamily(
            "modelport_generation_largest_batch",
            "Most sequences one decoding step served",
            labels=LABELS,
        )
        active = GaugeMetricFamily(
            "modelport_generation_active_sequences", "Sequences being decoded", labels=LABELS
        )
        cancelled = CounterMetricFamily(
            "modelport_generation_cancelled",
            "Requests stopped early because their client went away",
            labels=LABELS,
        )
        for served in self._cache.loaded():
            scheduler = served.generation
            if scheduler is None:
                continue
            labels = [served.version.model, str(served.version.version)]
            counters = scheduler.counters
            steps.add_metric(labels, counters.steps)
            tokens.add_metric(labels, counters.tokens)
            largest.add_metric(labels, counters.largest_batch)
            active.add_metric(labels, scheduler.active)
            cancelled.add_metric(labels, counters.cancelled)
        yield from (steps, tokens, largest, active, cancelled)
