"""Prometheus metrics of the worker, named ``receipt_enricher_<subsystem>_<name>_<unit>``.

Consumer lag uses kafka_exporter's names (``kafka_consumergroup_lag{consumergroup,topic,partition}``,
``kafka_consumergroup_current_offset``, ``kafka_topic_partition_current_offset``,
``kafka_topic_partition_oldest_offset``, ``kafka_consumergroup_lag_sum``) so its dashboards, alerts
and KEDA's expectations fit. Labels are bounded: topics, partitions, kinds, sources; never ids or item text.

Pure bookkeeping: no Kafka client and no torch here (the lag poller is app/kafka/consumer_lag.py).
"""

from __future__ import annotations

import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from model.enricher import FAILURE_KINDS
from model.parser import ParsedAnswer
from schemas.events import AuthorKind, ItemSource, ItemStatus

_NS = "receipt_enricher"
# Model time on a GPU is tens of ms per batch; on this CPU a 64-item batch takes seconds.
_MODEL_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# End to end includes the time a record waited in the topic: up to hours during a catch-up.
_LATENCY_SECONDS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_ITEM_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_TOKEN_BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)

SOURCES = ("model", "cache", "override", "fallback")
# Known label values are created at zero, so rate() sees the first dead letter or failure as an
# increase (a series born at 4 has rate 0) and dashboards show 0 rather than "no data".
DEAD_LETTER_KINDS = ("empty", "too_large", "invalid_json", "invalid_receipt", "publish_rejected", "dead_letter_too_large")
CORRECTION_REJECTIONS = ("empty", "too_large", "invalid_json", "invalid_correction", "unknown_category")
RECORD_KINDS = ("enriched", "dead_letter")


def items_by_source(
    texts: Sequence[str], answers: Mapping[str, ParsedAnswer], sources: Mapping[str, ItemSource], generated: int
) -> dict[str, int]:
    """Line items of one take by where their answer came from.

    ``fallback``: the model failed and the item went out as ``model_error``. ``override``: an active
    override set some or all of its fields. ``model``: the distinct texts the model generated
    (``generated``). ``cache``: every other item: a cache hit, or a repeat (same item key) of a text in
    the same take, which the model answered once.
    """
    fallback = sum(1 for text in texts if _status(answers.get(text)) is ItemStatus.MODEL_ERROR)
    override = sum(
        1 for text in texts if sources.get(text) is ItemSource.OVERRIDE and _status(answers.get(text)) is not ItemStatus.MODEL_ERROR
    )
    model = min(generated, len(texts) - fallback - override)
    return {"model": model, "cache": len(texts) - model - override - fallback, "override": override, "fallback": fallback}


def _status(answer: ParsedAnswer | None) -> ItemStatus | None:
    return answer.status if answer is not None else None


def _category_and_confidence(answer: ParsedAnswer | None) -> tuple[str | None, str]:
    if answer is None:
        return None, "false"
    return answer.category.id, "true" if answer.status is ItemStatus.LOW_CONFIDENCE else "false"


@dataclass(frozen=True, slots=True)
class PartitionOffsets:
    """One partition as Kafka reports it; ``committed`` is None when the group never committed there."""

    topic: str
    partition: int
    oldest: int
    newest: int
    committed: int | None

    @property
    def lag(self) -> int:
        """Records the group still has to read.

        Without a commit the group starts at the oldest offset (``auto.offset.reset=earliest``), so the
        lag is the whole retained log. kafka_exporter reports -1 there instead, which a ``sum`` of lag
        would turn into "less than nothing" for a group that is stuck before its first commit.
        """
        start = self.oldest if self.committed is None or self.committed < self.oldest else self.committed
        return max(self.newest - start, 0)


@dataclass(frozen=True, slots=True)
class LagSnapshot:
    group: str
    partitions: tuple[PartitionOffsets, ...]
    taken_at: float

    def total(self, topic: str) -> int:
        return sum(p.lag for p in self.partitions if p.topic == topic)


class LagMetrics(Collector):
    """Serves the last snapshot a poller stored; a scrape never waits for Kafka."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: LagSnapshot | None = None
        self._errors = 0

    def update(self, snapshot: LagSnapshot) -> None:
        with self._lock:
            self._snapshot = snapshot

    def failed(self) -> None:
        with self._lock:
            self._errors += 1

    @property
    def snapshot(self) -> LagSnapshot | None:
        with self._lock:
            return self._snapshot

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        with self._lock:
            snapshot, errors = self._snapshot, self._errors
        errors_family = CounterMetricFamily(
            f"{_NS}_lag_poll_errors", "Consumer-lag polls that failed (the last good snapshot stays served)"
        )
        errors_family.add_metric([], errors)
        yield errors_family
        if snapshot is None:
            return
        group_labels = ["consumergroup", "topic", "partition"]
        lag = GaugeMetricFamily("kafka_consumergroup_lag", "Records between the group's committed offset and the high watermark", labels=group_labels)
        current = GaugeMetricFamily("kafka_consumergroup_current_offset", "The group's committed offset (-1: none)", labels=group_labels)
        newest = GaugeMetricFamily("kafka_topic_partition_current_offset", "High watermark of the partition", labels=["topic", "partition"])
        oldest = GaugeMetricFamily("kafka_topic_partition_oldest_offset", "Oldest retained offset of the partition", labels=["topic", "partition"])
        lag_sum = GaugeMetricFamily("kafka_consumergroup_lag_sum", "Lag of the group summed over the topic's partitions", labels=["consumergroup", "topic"])
        for p in snapshot.partitions:
            labels = [snapshot.group, p.topic, str(p.partition)]
            lag.add_metric(labels, p.lag)
            current.add_metric(labels, -1 if p.committed is None else p.committed)
            newest.add_metric([p.topic, str(p.partition)], p.newest)
            oldest.add_metric([p.topic, str(p.partition)], p.oldest)
        for topic in sorted({p.topic for p in snapshot.partitions}):
            lag_sum.add_metric([snapshot.group, topic], snapshot.total(topic))
        polled = GaugeMetricFamily(f"{_NS}_lag_last_poll_timestamp_seconds", "When the served lag was read from Kafka")
        polled.add_metric([], snapshot.taken_at)
        yield from (lag, current, newest, oldest, lag_sum, polled)


class Metrics:
    """Every metric of one worker in its own registry (tests build as many as they like)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_consumed = Counter(f"{_NS}_consumer_events", "Messages taken from the input topic", ["topic"], registry=r)
        self.records_produced = Counter(
            f"{_NS}_producer_records", "Records the broker acknowledged, by kind (enriched, dead_letter)", ["kind"], registry=r
        )
        self.items_enriched = Counter(f"{_NS}_enrich_items", "Line items enriched, by where the answer came from", ["source"], registry=r)
        self.item_status = Counter(f"{_NS}_enrich_item_status", "Line items by answer status", ["status"], registry=r)
        # The low-confidence share per category is where drift shows first (docs/operations.md): items the
        # model was unsure of rise in the categories whose items changed.
        self.item_category = Counter(
            f"{_NS}_enrich_item_category",
            "Line items by published category, and whether a field was withheld for low confidence",
            ["category", "low_confidence"],
            registry=r,
        )
        # Counted where the dead letter is decided; a take that then fails to publish stops the worker.
        self.dead_letters = Counter(f"{_NS}_dlq_events", "Dead letters written for input messages, by error kind", ["kind"], registry=r)
        self.batch_items = Histogram(f"{_NS}_model_batch_items", "Distinct items per model batch", buckets=_ITEM_BUCKETS, registry=r)
        self.batch_tokens = Histogram(
            f"{_NS}_model_batch_tokens", "Padded tokens per model batch: rows × (longest prompt + answer budget)", buckets=_TOKEN_BUCKETS, registry=r
        )
        self.model_seconds = Histogram(f"{_NS}_model_batch_duration_seconds", "Model time per batch", buckets=_MODEL_SECONDS, registry=r)
        self.batch_failures = Counter(
            f"{_NS}_model_batch_failures", "Model batches that raised (then split and retried), by failure kind", ["kind"], registry=r
        )
        self.model_call_seconds = Gauge(
            f"{_NS}_model_call_running_seconds", "How long the model thread has been in its current call (0: idle)", registry=r
        )
        self.model_stuck = Gauge(
            f"{_NS}_model_stuck",
            "1 while the current model call has outrun ENRICHER_MODEL_STUCK_S: /healthz fails so the worker is restarted",
            registry=r,
        )
        self.batch_max_items = Gauge(f"{_NS}_model_batch_max_items", "Configured item limit of a model batch", registry=r)
        self.batch_max_tokens = Gauge(f"{_NS}_model_batch_max_tokens", "Configured padded-token limit of a model batch", registry=r)
        self.latency = Histogram(
            f"{_NS}_pipeline_end_to_end_latency_seconds",
            "From the input record's Kafka timestamp to the broker's ack of its output",
            buckets=_LATENCY_SECONDS,
            registry=r,
        )
        self.in_flight = Gauge(f"{_NS}_pipeline_items_in_flight", "Line items taken but not yet published", registry=r)
        self.ready = Gauge(f"{_NS}_worker_ready", "1 when the model is loaded and partitions are assigned", registry=r)
        self.assigned_partitions = Gauge(f"{_NS}_consumer_assigned_partitions", "Input partitions assigned to this worker", registry=r)
        self.corrections_received = Counter(
            f"{_NS}_corrections_received", "Valid corrections folded into the corrections table, by author kind", ["author"], registry=r
        )
        self.corrections_rejected = Counter(
            f"{_NS}_corrections_rejected", "Corrections sent to the dead-letter topic, by error kind", ["kind"], registry=r
        )
        self.overrides_active = Gauge(
            f"{_NS}_corrections_overrides_active", "Items with an active override in this worker's view (all partitions)", registry=r
        )
        self.lag = LagMetrics()
        r.register(self.lag)
        for counter, values in (
            (self.records_produced, RECORD_KINDS),
            (self.items_enriched, SOURCES),
            (self.item_status, [status.value for status in ItemStatus]),
            (self.dead_letters, DEAD_LETTER_KINDS),
            (self.batch_failures, FAILURE_KINDS),
            (self.corrections_received, [kind.value for kind in AuthorKind]),
            (self.corrections_rejected, CORRECTION_REJECTIONS),
        ):
            for value in values:
                counter.labels(value)

    def model_loaded(self, *, base_model: str, adapter: str, version: str, device: str) -> None:
        """The model identity as an info metric; registered only now, so no empty-labelled series exists before."""
        info = Info(f"{_NS}_model", "The model that produces the answers", registry=self.registry)
        info.info({"base_model": base_model, "adapter": adapter, "version": version, "device": device})

    def watch_model(self, busy_s: Callable[[], float], stuck: Callable[[], str | None]) -> None:
        """The model thread's gauges, read at each scrape (app/stages/model_watch.py)."""
        self.model_call_seconds.set_function(busy_s)
        self.model_stuck.set_function(lambda: 0.0 if stuck() is None else 1.0)

    def watch_overrides(self, active: Callable[[], int]) -> None:
        """The overrides gauge, read at each scrape from the worker's overrides view."""
        self.overrides_active.set_function(active)

    def correction_received(self, author: AuthorKind) -> None:
        self.corrections_received.labels(author.value).inc()

    def correction_rejected(self, kind: str) -> None:
        self.corrections_rejected.labels(kind).inc()

    def set_batch_limits(self, max_items: int, max_tokens: int) -> None:
        self.batch_max_items.set(max_items)
        self.batch_max_tokens.set(max_tokens)

    def take_started(self, items: int) -> None:
        self.in_flight.inc(items)

    def dead_letter(self, kind: str) -> None:
        self.dead_letters.labels(kind).inc()

    def take_published(
        self,
        *,
        input_topic: str,
        timestamps_ms: Iterable[int | None],
        texts: Sequence[str],
        answers: Mapping[str, ParsedAnswer],
        sources: Mapping[str, ItemSource],
        generated: int,
        enriched: int,
        dead_letters: int,
        published_at: float,
    ) -> None:
        """One take whose every output the broker acknowledged: the last stage before the ack."""
        timestamps = list(timestamps_ms)
        self.events_consumed.labels(input_topic).inc(len(timestamps))
        self.records_produced.labels("enriched").inc(enriched)
        self.records_produced.labels("dead_letter").inc(dead_letters)
        for source, count in items_by_source(texts, answers, sources, generated).items():
            self.items_enriched.labels(source).inc(count)
        for status, count in Tally(_status(answers.get(text)) for text in texts).items():
            if status is not None:
                self.item_status.labels(status.value).inc(count)
        for (category, low), count in Tally(_category_and_confidence(answers.get(text)) for text in texts).items():
            if category is not None:
                self.item_category.labels(category, low).inc(count)
        for timestamp_ms in timestamps:
            # Producers may leave the timestamp unset (-1); such records have no latency to report.
            if timestamp_ms is not None and timestamp_ms > 0:
                self.latency.observe(max(published_at - timestamp_ms / 1000, 0.0))
        self.in_flight.dec(len(texts))

    def planned_batch(self, items: int, padded_tokens: int) -> None:
        """A model batch as the batcher planned it (a failing batch is later split; its halves are not re-counted)."""
        self.batch_items.observe(items)
        self.batch_tokens.observe(padded_tokens)

    def timed_model(self, enrich: Callable[[Sequence[str]], list[ParsedAnswer]]) -> Callable[[Sequence[str]], list[ParsedAnswer]]:
        """Wrap the model call: every call (also one that raises, and each half of a split) is timed.

        No tokenizer call here: a fast tokenizer is not thread-safe (transformers#47085), and the
        prepare thread tokenizes the next take while this runs.
        """

        def observed(batch: Sequence[str]) -> list[ParsedAnswer]:
            started = time.perf_counter()
            try:
                return enrich(batch)
            except Exception as error:
                # ModelBatchFailed.kind is a bounded set (model.enricher.FAILURE_KINDS); anything else is "error".
                self.batch_failures.labels(getattr(error, "kind", "error")).inc()
                raise
            finally:
                self.model_seconds.observe(time.perf_counter() - started)

        return observed
