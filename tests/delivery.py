"""What the delivery tests (crash, rebalance, broker restart, hostile stream, end to end, security, backfill)
share: a steady producer that remembers where every receipt landed, readers of the output topics, the group's
committed offsets, and condition waits. Everything talks to the real broker."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from app.kafka.topics import create_corrections_topics, create_service_topics
from app.tools.samples import load_item_names, sample_receipt_event
from harness.worker_process import WorkerProcess


def read_topic(config: dict[str, object], topic: str, expected: int, timeout_s: float, linger_s: float = 3.0) -> list:
    """Every record of ``topic`` from the beginning, once ``expected`` arrived (or ``timeout_s`` passed), plus
    ``linger_s`` more: anything beyond ``expected`` is a duplicate and must be seen. ``config`` is a confluent
    client config (bootstrap and security); the reader gets a group of its own."""
    consumer = Consumer({**config, "group.id": f"reader-{uuid.uuid4()}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                messages.append(message)
        linger_until = time.monotonic() + linger_s
        while time.monotonic() < linger_until:
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                messages.append(message)
    finally:
        consumer.close()
    return messages


def committed_at_end(
    config: dict[str, object], group: str, topic: str, partitions: int, timeout_s: float
) -> dict[int, tuple[int, int]]:
    """(committed, high watermark) per partition, once they are equal everywhere or ``timeout_s`` passed."""
    admin = AdminClient(config)
    probe = Consumer({**config, "group.id": f"probe-{uuid.uuid4()}"})
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(30)
            committed = {tp.partition: tp.offset for tp in result.topic_partitions if tp.topic == topic}
            positions = {
                p: (committed.get(p, -1), probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
                for p in range(partitions)
            }
            if all(c == h for c, h in positions.values()) or time.monotonic() > deadline:
                return positions
            time.sleep(1)
    finally:
        probe.close()


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.5) -> None:
    """Poll ``condition`` until it holds; the timeouts are generous because the machine is shared and slow."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)


@dataclass(frozen=True)
class Run:
    """One test's topics and consumer group, unique so tests sharing a broker never see each other's data."""

    bootstrap: str
    partitions: int
    name: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def input(self) -> str:
        return f"receipts-{self.name}"

    @property
    def output(self) -> str:
        return f"enriched-{self.name}"

    @property
    def dlq(self) -> str:
        return f"dlq-{self.name}"

    @property
    def corrections(self) -> str:
        return f"corrections-{self.name}"

    @property
    def overrides(self) -> str:
        return f"overrides-{self.name}"

    @property
    def group(self) -> str:
        return f"enricher-{self.name}"

    def create_topics(self) -> None:
        create_service_topics(
            {"bootstrap.servers": self.bootstrap},
            input_topic=self.input,
            output_topic=self.output,
            dlq_topic=self.dlq,
            partitions=self.partitions,
        )
        create_corrections_topics(
            {"bootstrap.servers": self.bootstrap},
            corrections_topic=self.corrections,
            overrides_topic=self.overrides,
            group_id=self.group,
            partitions=self.partitions,
        )

    def worker(self, model, log_path: Path, module: str = "app.cli", **settings: object) -> WorkerProcess:
        env = {
            "ENRICHER_BOOTSTRAP_SERVERS": self.bootstrap,
            "ENRICHER_INPUT_TOPIC": self.input,
            "ENRICHER_OUTPUT_TOPIC": self.output,
            "ENRICHER_DLQ_TOPIC": self.dlq,
            # Topics of this run only: the session's broker is shared, and an override is everyone's answer.
            "ENRICHER_CORRECTIONS_TOPIC": self.corrections,
            "ENRICHER_OVERRIDES_TOPIC": self.overrides,
            "ENRICHER_GROUP_ID": self.group,
            # The worker creates the corrections table's internal topics with this count, as create_topics does.
            "ENRICHER_TOPIC_PARTITIONS": str(self.partitions),
            "ENRICHER_MODEL_BASE_PATH": str(model.base),
            "ENRICHER_MODEL_ADAPTER_PATH": str(model.adapter),
            # A killed member's partitions move after the session timeout; 10 s keeps five kills affordable.
            "ENRICHER_SESSION_TIMEOUT_S": "10",
            "ENRICHER_HEARTBEAT_INTERVAL_S": "2",
            "ENRICHER_TORCH_THREADS": "1",
        }
        env.update({f"ENRICHER_{name.upper()}": str(value) for name, value in settings.items()})
        return WorkerProcess(env, log_path, module)

    def committed(self) -> dict[int, int]:
        """The group's committed offset per input partition (-1 where it has none)."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(self.group)])[self.group].result(30)
        found = {tp.partition: tp.offset for tp in result.topic_partitions if tp.topic == self.input}
        # A partition without a commit reports a negative sentinel (OFFSET_INVALID); -1 says "none" plainly.
        return {p: max(found.get(p, -1), -1) for p in range(self.partitions)}

    def high_watermarks(self, topic: str) -> dict[int, int]:
        probe = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"probe-{uuid.uuid4()}"})
        try:
            return {p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in range(self.partitions)}
        finally:
            probe.close()

    def committed_reaches_end(self) -> bool:
        """No partition stuck: the group has committed every input partition up to its end."""
        committed, ends = self.committed(), self.high_watermarks(self.input)
        return all(max(committed[p], 0) == ends[p] for p in ends)


class SteadyProducer:
    """Produces sample receipts at a steady rate from a thread and records each one's input position."""

    def __init__(self, run: Run, seed: int, per_second: float, extra: Callable[[random.Random, int], list] | None = None):
        self._run = run
        self._rng = random.Random(seed)
        self._names = load_item_names()
        self._interval = 1.0 / per_second
        self._producer = Producer(
            {"bootstrap.servers": run.bootstrap, "compression.type": "lz4", "linger.ms": 5, "enable.idempotence": True}
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="steady-producer", daemon=True)
        self._lock = threading.Lock()
        self.sent = 0
        self._burst = 0
        self._closed = False
        # event_id → (partition, offset), filled in from the broker's delivery reports.
        self.positions: dict[str, tuple[int, int]] = {}
        self.errors: list[str] = []

    def start(self) -> "SteadyProducer":
        self._thread.start()
        return self

    def _report(self, event_id: str):
        def on_delivery(error, message) -> None:
            with self._lock:
                if error is not None:
                    self.errors.append(f"{event_id}: {error}")
                else:
                    self.positions[event_id] = (message.partition(), message.offset())

        return on_delivery

    def burst(self, count: int) -> None:
        """Send ``count`` extra receipts at once, so the worker certainly has a backlog to work on."""
        self._burst += count

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            burst, self._burst = self._burst, 0
            for _ in range(1 + burst):
                event = sample_receipt_event(self._rng, self._names, self.sent)
                value, key = event.model_dump_json().encode(), event.client_id.encode()
                self._producer.produce(self._run.input, value, key, on_delivery=self._report(event.event_id))
                self.sent += 1
                self._producer.poll(0)
            next_at += self._interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def delivered(self) -> int:
        with self._lock:
            return len(self.positions)

    def stop(self) -> dict[str, tuple[int, int]]:
        """Stop producing, wait for every delivery report, and return the positions of all receipts sent."""
        self._stop.set()
        self._thread.join(30)
        remaining = self._producer.flush(120)
        assert remaining == 0 and not self.errors, f"{remaining} undelivered, errors: {self.errors[:3]}"
        assert len(self.positions) == self.sent
        self.close()
        return dict(self.positions)


    def close(self) -> None:
        """Stop without checking (for ``finally``); safe after ``stop``. A producer left open would keep
        reconnecting, and logging so, after the test stopped its broker."""
        self._stop.set()
        self._thread.join(30)
        if not self._closed:
            self._closed = True
            self._producer.flush(30)
            self._producer.close()


class TopicReader:
    """Reads a topic from the beginning in a thread (no consumer group) and keeps every record's value."""

    def __init__(self, run: Run, topic: str) -> None:
        self._consumer = Consumer(
            {"bootstrap.servers": run.bootstrap, "group.id": f"reader-{uuid.uuid4()}", "enable.auto.commit": False}
        )
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(run.partitions)])
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.records: list[tuple[int, int, bytes]] = []  # (partition, offset, value)
        self._thread = threading.Thread(target=self._loop, name=f"reader-{topic}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            message = self._consumer.poll(0.5)
            if message is not None and not message.error():
                with self._lock:
                    self.records.append((message.partition(), message.offset(), message.value()))
        self._consumer.close()

    def __len__(self) -> int:
        with self._lock:
            return len(self.records)

    def snapshot(self) -> list[tuple[int, int, bytes]]:
        with self._lock:
            return list(self.records)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)


def event_ids(records: list[tuple[int, int, bytes]]) -> Counter:
    """How many times each event id is in the output topic."""
    return Counter(orjson.loads(value)["event_id"] for _, _, value in records)


def outputs_settle(reader: TopicReader, expected: int, timeout_s: float) -> None:
    """Wait until the reader holds at least ``expected`` distinct events."""
    wait_until(lambda: len(event_ids(reader.snapshot())) >= expected, timeout_s, f"{expected} distinct enriched receipts")
