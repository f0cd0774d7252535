"""Prometheus metrics of the worker, named ``receipt_enricher_<subsystem>_<name>_<unit>``.

Consumer lag uses kafka_exporter's names (``kafka_consumergroup_lag`` and friends) so existing
dashboards and alerts fit. Labels are bounded: topics, partitions, kinds; never ids or item text.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

_NS = "receipt_enricher"
# Model time on a GPU is tens of ms to seconds; on CPU seconds to minutes.
_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_ITEM_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_TOKEN_BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_consumed = Counter(f"{_NS}_events_consumed_total", "Messages taken from the input topic", ["topic"], registry=r)
        self.events_produced = Counter(
            f"{_NS}_events_produced_total", "Records acknowledged by the broker", ["topic", "kind"], registry=r
        )
        self.items_enriched = Counter(
            f"{_NS}_items_enriched_total", "Line items enriched, by where the answer came from", ["source"], registry=r
        )
        self.item_status = Counter(f"{_NS}_items_status_total", "Line items by parse status", ["status"], registry=r)
        self.dead_letters = Counter(f"{_NS}_dlq_events_total", "Messages sent to the dead-letter topic", ["kind"], registry=r)
        self.model_failures = Counter(f"{_NS}_model_batch_failures_total", "Model batches that failed and were split", registry=r)
        self.batch_items = Histogram(f"{_NS}_batch_items", "Unique items per model batch", buckets=_ITEM_BUCKETS, registry=r)
        self.batch_tokens = Histogram(
            f"{_NS}_batch_tokens", "Padded tokens per model batch (prompt rows + answer budget)", buckets=_TOKEN_BUCKETS, registry=r
        )
        self.model_seconds = Histogram(
            f"{_NS}_model_batch_duration_seconds", "Model time per batch", buckets=_SECONDS_BUCKETS, registry=r
        )
        self.latency = Histogram(
            f"{_NS}_end_to_end_latency_seconds",
            "From the input record's Kafka timestamp to the broker's ack of its output",
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(f"{_NS}_items_in_flight", "Line items taken but not yet published", registry=r)
        self.model_info = Info(f"{_NS}_model", "The model that produces the answers", registry=r)
        self.ready = Gauge(f"{_NS}_ready", "1 when the model is loaded and partitions are assigned", registry=r)
