"""Corrections flow back, against the real broker and the real worker (the real default model).

Corrections go to the run's corrections topic as the mobile app and the analysts' tool would send them;
what they change is read where a consumer reads it: the enriched transactions of the next receipts.
"""

from __future__ import annotations

import random
import signal
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from app.kafka.topics import corrections_by_item_topic, corrections_changelog_topic
from app.tools.samples import sample_receipt_event
from harness.http_probe import http_get
from harness.worker_process import WorkerProcess
from schemas.events import DeadLetter, EnrichedTransaction, ItemSource, ReceiptEvent
from schemas.taxonomy import load_taxonomy
from tests.delivery import Run, TopicReader, read_topic, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.model]

PARTITIONS = 3
MILK = "МОЛОКО ПРОСТОКВАШИНО 3,2% 930МЛ"
BREAD = "ХЛЕБ БОРОДИНСКИЙ НАРЕЗ 300Г"
APPLES = "ЯБЛОКИ ГОЛДЕН ВЕС"
TAXONOMY = load_taxonomy()


class Scenario:
    """One run's topics, a producer for receipts and corrections, and a reader of the enriched output."""

    def __init__(self, bootstrap: str) -> None:
        self.run = Run(bootstrap, PARTITIONS)
        self.run.create_topics()
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
        self.output = TopicReader(self.run, self.run.output)
        self._rng = random.Random(16)
        self._sent = 0

    def worker(self, model, tmp_path, name: str, **settings: object) -> WorkerProcess:
        settings = {"commit_interval_s": 1, **settings}
        return self.run.worker(model, tmp_path / f"{name}.log", **settings).start()

    def receipt(self, *names: str) -> str:
        """Send a receipt whose lines are exactly ``names``; returns its event id."""
        event = sample_receipt_event(self._rng, [names[0]], self._sent, max_items=1)
        template = event.receipt.items[0]
        items = [template.model_copy(update={"name": name}) for name in names]
        event = event.model_copy(update={"receipt": event.receipt.model_copy(update={"items": items})})
        ReceiptEvent.model_validate_json(event.model_dump_json())  # still a valid receipt
        self._sent += 1
        self.producer.produce(self.run.input, event.model_dump_json().encode(), event.client_id.encode())
        assert self.producer.flush(30) == 0
        return event.event_id

    def correct(self, raw_name: str, fields: dict, kind: str, author: str) -> None:
        correction = {
            "correction_id": uuid.uuid4().hex,
            "event_id": "evt-corrected",
            "position": 1,
            "raw_name": raw_name,
            "fields": fields,
            "author": {"kind": kind, "id": author},
            "corrected_at": datetime.now(UTC).isoformat(),
        }
        self.send_raw(orjson.dumps(correction), key=author.encode())

    def send_raw(self, value: bytes, key: bytes = b"app") -> None:
        self.producer.produce(self.run.corrections, value, key)
        assert self.producer.flush(30) == 0

    def items(self, event_id: str, timeout_s: float = 300) -> dict:
        """The enriched items of one receipt, by raw name."""
        found: list[EnrichedTransaction] = []

        def arrived() -> bool:
            for _, _, value in self.output.snapshot():
                if orjson.loads(value)["event_id"] == event_id:
                    found.append(EnrichedTransaction.model_validate_json(value))
                    return True
            return False

        wait_until(arrived, timeout_s, f"the enriched receipt {event_id}")
        return {item.raw_name: item for item in found[0].items}

    def close(self) -> None:
        self.output.close()
        self.producer.flush(10)


def _metric(worker: WorkerProcess, name: str, **labels: str) -> float:
    """One sample of the worker's /metrics (0 while the worker is not serving yet)."""
    try:
        _, body = http_get(f"http://127.0.0.1:{worker.metrics_port}/metrics")
    except OSError:
        return 0.0
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def _another_category(than: str) -> str:
    return next(c.id for c in TAXONOMY.categories if c.id not in (than, TAXONOMY.fallback.id))


def _wait_metric(worker: WorkerProcess, name: str, value: float, timeout_s: float = 120, **labels: str) -> None:
    wait_until(
        lambda: _metric(worker, name, **labels) >= value or not worker.running,
        timeout_s,
        f"{name}{labels} to reach {value}",
    )
    assert worker.running, worker.log_text()[-3000:]


def test_analyst_fixes_change_the_next_receipts_one_customer_changes_nobody_elses_and_bad_corrections_are_dead_lettered(
    kafka_bootstrap, default_model, tmp_path
):
    scenario = Scenario(kafka_bootstrap)
    worker = scenario.worker(default_model, tmp_path, "worker", corrections_customer_threshold=2)
    try:
        before = scenario.items(scenario.receipt(MILK, BREAD))
        assert {item.source for item in before.values()} == {ItemSource.MODEL}
        milk_category = _another_category(before[MILK].category.id)
        bread_category = _another_category(before[BREAD].category.id)
        analyst_fix = {
            "normalized_name": "Молоко Простоквашино 3,2% 930 мл",
            "product": "Молоко",
            "brand": "Простоквашино",
            "category_id": milk_category,
        }
        # Bad corrections between good ones: each becomes a dead letter, the stream goes on.
        bad = {
            b"not json": "invalid_json",
            b"": "empty",
            orjson.dumps({"raw_name": BREAD, "fields": {"category_id": bread_category}}): "invalid_correction",
        }
        for value in bad:
            scenario.send_raw(value)
        scenario.correct(MILK, analyst_fix, "analyst", "analyst-7")
        scenario.correct(BREAD, {"category_id": "no-such-category"}, "customer", "customer-x")
        scenario.correct(BREAD, {"category_id": bread_category}, "customer", "customer-a")
        _wait_metric(worker, "receipt_enricher_corrections_received_total", 1, author="analyst")
        _wait_metric(worker, "receipt_enricher_corrections_received_total", 1, author="customer")
        _wait_metric(worker, "receipt_enricher_corrections_overrides_active", 1)

        # The analyst's fix is the very next receipt's answer; one customer's changes nothing for anyone.
        after = scenario.items(scenario.receipt(MILK, BREAD, APPLES))
        milk = after[MILK]
        assert milk.source is ItemSource.OVERRIDE
        assert (milk.normalized_name, milk.product, milk.brand, milk.category.id) == tuple(analyst_fix.values())
        assert milk.category.name == TAXONOMY.by_id(milk_category).name
        assert after[BREAD].source is ItemSource.CACHE
        assert after[BREAD].category == before[BREAD].category
        assert after[APPLES].source is ItemSource.MODEL

        # The same customer again is still one customer; a second one reaches the threshold of 2.
        scenario.correct(BREAD, {"category_id": bread_category}, "customer", "customer-a")
        _wait_metric(worker, "receipt_enricher_corrections_received_total", 2, author="customer")
        again = scenario.items(scenario.receipt(BREAD))
        assert again[BREAD].source is ItemSource.CACHE and again[BREAD].category == before[BREAD].category
        scenario.correct(BREAD, {"category_id": bread_category}, "customer", "customer-b")
        _wait_metric(worker, "receipt_enricher_corrections_overrides_active", 2)
        agreed = scenario.items(scenario.receipt(BREAD))[BREAD]
        assert agreed.source is ItemSource.OVERRIDE
        assert agreed.category.id == bread_category
        # Only the category was corrected: the other fields are the model's (from the cache).
        assert (agreed.normalized_name, agreed.product, agreed.brand) == (
            before[BREAD].normalized_name,
            before[BREAD].product,
            before[BREAD].brand,
        )

        letters = [DeadLetter.model_validate_json(m.value()) for m in read_topic({"bootstrap.servers": kafka_bootstrap}, scenario.run.dlq, 4, 60)]
        assert sorted(letter.error.kind for letter in letters) == sorted([*bad.values(), "unknown_category"])
        assert {letter.source.topic for letter in letters} == {scenario.run.corrections}
        for kind in ("invalid_json", "empty", "invalid_correction", "unknown_category"):
            assert _metric(worker, "receipt_enricher_corrections_rejected_total", kind=kind) == 1, kind
        assert _metric(worker, "receipt_enricher_enrich_items_total", source="override") == 2
        assert worker.stop() == 0, worker.log_text()[-3000:]
        # The table's recovery logs offset tables over many lines; a log collector still gets one record per line.
        raw = [line for line in worker.log_text().splitlines() if not line.startswith("ts=")]
        assert not raw, f"{len(raw)} lines of the worker's log are not log records, e.g. {raw[:3]}"
    finally:
        if worker.running:
            worker.stop(signal.SIGKILL)
        scenario.close()


def _ends(bootstrap: str, topic: str) -> dict[int, int]:
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4()}"})
    try:
        return {p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in range(PARTITIONS)}
    finally:
        probe.close()


def _committed_to_the_end(bootstrap: str, group: str, topic: str) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(30)
    committed = {tp.partition: tp.offset for tp in result.topic_partitions if tp.topic == topic}
    ends = _ends(bootstrap, topic)
    return sum(ends.values()) > 0 and all(committed.get(p, -1) == end for p, end in ends.items() if end > 0)


def test_a_sigkilled_worker_comes_back_with_every_override_and_every_customer_vote_from_the_changelog(
    kafka_bootstrap, default_model, tmp_path
):
    scenario = Scenario(kafka_bootstrap)
    settings = {"corrections_customer_threshold": 3}
    worker = scenario.worker(default_model, tmp_path, "first", **settings)
    try:
        before = scenario.items(scenario.receipt(MILK, BREAD))
        milk_category = _another_category(before[MILK].category.id)
        bread_category = _another_category(before[BREAD].category.id)
        scenario.correct(MILK, {"category_id": milk_category}, "analyst", "analyst-7")
        scenario.correct(BREAD, {"category_id": bread_category}, "customer", "customer-a")
        scenario.correct(BREAD, {"category_id": bread_category}, "customer", "customer-b")
        _wait_metric(worker, "receipt_enricher_corrections_received_total", 2, author="customer")
        _wait_metric(worker, "receipt_enricher_corrections_overrides_active", 1)
        # Committed: the restart replays none of these corrections, so the two votes can only come back
        # from the table's changelog (Faust flushes the changelog writes before it commits).
        by_item = corrections_by_item_topic(scenario.run.group)
        wait_until(lambda: _committed_to_the_end(kafka_bootstrap, scenario.run.group, by_item), 60, "the folded corrections to be committed")
        assert sum(_ends(kafka_bootstrap, corrections_changelog_topic(scenario.run.group)).values()) == 3  # one write per fold
        worker.stop(signal.SIGKILL)

        worker = scenario.worker(default_model, tmp_path, "second", **settings)
        _wait_metric(worker, "receipt_enricher_corrections_overrides_active", 1)
        restarted = scenario.items(scenario.receipt(MILK, BREAD))
        assert restarted[MILK].source is ItemSource.OVERRIDE and restarted[MILK].category.id == milk_category
        assert restarted[BREAD].source is not ItemSource.OVERRIDE  # two customers are below the threshold of 3

        scenario.correct(BREAD, {"category_id": bread_category}, "customer", "customer-c")
        _wait_metric(worker, "receipt_enricher_corrections_overrides_active", 2)
        agreed = scenario.items(scenario.receipt(BREAD))[BREAD]
        assert agreed.source is ItemSource.OVERRIDE and agreed.category.id == bread_category
        assert worker.stop() == 0, worker.log_text()[-3000:]
    finally:
        if worker.running:
            worker.stop(signal.SIGKILL)
        scenario.close()
