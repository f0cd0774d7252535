"""Read a consumer group's lag from Kafka (committed offsets and watermarks) in a thread of its own.

The same numbers ``kafka-consumer-groups.sh --describe`` shows, from the Admin API: committed offsets
(``list_consumer_group_offsets``) and the oldest/newest offsets (``list_offsets``) of every partition of
the topic. The poll never runs on the event loop: a slow broker delays the next snapshot, not a heartbeat.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from app.ops.metrics import LagMetrics, LagSnapshot, PartitionOffsets
from app.settings import Settings

log = logging.getLogger(__name__)


class LagUnavailable(RuntimeError):
    """Kafka did not answer the lag queries; the message names the group, topic and Kafka's error."""


def read_lag(admin: AdminClient, group: str, topic: str, timeout_s: float) -> LagSnapshot:
    """One consistent-enough snapshot: committed offsets are read before the watermarks, so a commit
    racing the read can only make the lag look larger by what arrived in between, never negative."""
    try:
        cluster = admin.list_topics(timeout=timeout_s)
        meta = cluster.topics.get(topic)
        if meta is None or meta.error is not None:
            raise LagUnavailable(f"topic {topic} has no metadata: {meta.error if meta else 'not found'}")
        partitions = sorted(meta.partitions)
        request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])
        result = admin.list_consumer_group_offsets([request], request_timeout=timeout_s)[group].result(timeout_s)
        committed = {tp.partition: tp.offset for tp in result.topic_partitions if tp.topic == topic and tp.error is None}
        taken_at = time.time()
        newest = _offsets(admin, topic, partitions, OffsetSpec.latest(), timeout_s)
        oldest = _offsets(admin, topic, partitions, OffsetSpec.earliest(), timeout_s)
    except KafkaException as error:
        raise LagUnavailable(f"lag of group {group} on {topic}: {error.args[0]}") from error
    except TimeoutError as error:
        raise LagUnavailable(f"lag of group {group} on {topic}: no answer within {timeout_s:.0f} s") from error
    rows = tuple(
        PartitionOffsets(
            topic=topic,
            partition=p,
            oldest=oldest[p],
            newest=newest[p],
            # librdkafka reports "no commit" as a negative offset (OFFSET_INVALID = -1001).
            committed=committed[p] if committed.get(p, -1) >= 0 else None,
        )
        for p in partitions
    )
    return LagSnapshot(group=group, partitions=rows, taken_at=taken_at)


def _offsets(admin: AdminClient, topic: str, partitions: list[int], spec: OffsetSpec, timeout_s: float) -> dict[int, int]:
    futures = admin.list_offsets({TopicPartition(topic, p): spec for p in partitions}, request_timeout=timeout_s)
    return {tp.partition: future.result(timeout_s).offset for tp, future in futures.items()}


class LagPoller:
    """Polls every ``interval_s`` and hands each snapshot to ``LagMetrics`` (served at the next scrape)."""

    def __init__(self, admin_config: dict[str, object], group: str, topic: str, sink: LagMetrics, interval_s: float) -> None:
        # librdkafka's log lines as log records (served by the poll's own requests), not raw stderr text.
        self._admin = AdminClient({**admin_config, "logger": logging.getLogger("librdkafka")})
        self._group = group
        self._topic = topic
        self._sink = sink
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="consumer-lag", daemon=True)
        self._failing = False

    def start(self) -> "LagPoller":
        self._thread.start()
        return self

    def poll_once(self) -> LagSnapshot | None:
        try:
            snapshot = read_lag(self._admin, self._group, self._topic, timeout_s=max(self._interval_s, 10.0))
        except LagUnavailable as error:
            self._sink.failed()
            # Log the first failure of a run of failures, not one line per poll.
            if not self._failing:
                log.warning("lag_poll_failed group=%s topic=%s error=%s", self._group, self._topic, error)
            self._failing = True
            return None
        if self._failing:
            log.info("lag_poll_recovered group=%s topic=%s", self._group, self._topic)
        self._failing = False
        self._sink.update(snapshot)
        return snapshot

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self._interval_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=max(self._interval_s, 10.0) * 3)


def serve_lag(settings: Settings, stop: threading.Event | None = None) -> None:
    """``receipt-enricher lag-exporter``: the group's lag on /metrics without consuming anything.

    Workers report lag too, but a group scaled to zero (KEDA) or crashed has no worker to report it,
    and that is when the lag matters most. Ready once the first poll has succeeded.
    """
    from prometheus_client import CollectorRegistry

    from app.ops.health import HealthServer

    registry = CollectorRegistry()
    lag = LagMetrics()
    registry.register(lag)
    poller = LagPoller(settings.admin_config(), settings.group_id, settings.input_topic, lag, settings.lag_poll_interval_s)
    server = HealthServer(
        settings.metrics_host,
        settings.metrics_port,
        registry,
        not_live=lambda: [],
        not_ready=lambda: [] if lag.snapshot is not None else ["no lag read from Kafka yet"],
    ).start()
    poller.start()
    stop = stop or threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("lag_exporter_started group=%s topic=%s port=%d", settings.group_id, settings.input_topic, server.port)
    try:
        stop.wait()
    finally:
        poller.stop()
        server.stop()
