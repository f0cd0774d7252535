"""Corrections flow back, against the real broker: the real worker (the real default model), the backfill
and the training export as an operator runs them.

Corrections go to the run's corrections topic as the mobile app and the analysts' tool would send them;
what they change is read where a consumer reads it: the enriched transactions of the next receipts.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from app import cli
from app.kafka.topics import corrections_by_item_topic, corrections_changelog_topic, create_topics
from app.stages.cache import item_digest
from app.tools.samples import sample_receipt_event
from harness.http_probe import http_get
from harness.worker_process import OFFLINE_ENV, REPO_ROOT, WorkerProcess
from model.item_key import item_key
from schemas.events import DeadLetter, EnrichedTransaction, ItemSource, Override, ReceiptEvent
from schemas.taxonomy import load_taxonomy
from training.labels import read_rows
from tests.delivery import Run, TopicReader, read_topic, wait_until

pytestmark = [pytest.mark.integration]

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


@pytest.mark.model
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


@pytest.mark.model
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


def _publish_overrides(scenario: Scenario, overrides: list[tuple[str, Override | None]]) -> None:
    """Put overrides on the run's overrides topic exactly as the corrections agent does (key: the item key digest)."""
    for raw_name, override in overrides:
        value = override.model_dump_json().encode() if override is not None else None
        scenario.producer.produce(scenario.run.overrides, value, item_digest(raw_name).encode())
    assert scenario.producer.flush(30) == 0


def _override(raw_name: str, fields: dict, basis: str = "analyst") -> Override:
    return Override(
        item_key=item_key(raw_name), raw_name=raw_name, fields=fields, basis={f: basis for f in fields}, updated_at=datetime.now(UTC)
    )


def _settings_env(scenario: Scenario) -> dict[str, str]:
    run = scenario.run
    return {
        "ENRICHER_BOOTSTRAP_SERVERS": run.bootstrap,
        "ENRICHER_INPUT_TOPIC": run.input,
        "ENRICHER_OUTPUT_TOPIC": run.output,
        "ENRICHER_DLQ_TOPIC": run.dlq,
        "ENRICHER_CORRECTIONS_TOPIC": run.corrections,
        "ENRICHER_OVERRIDES_TOPIC": run.overrides,
        "ENRICHER_GROUP_ID": run.group,
    }


def test_the_export_writes_the_active_overrides_as_rows_the_training_loader_reads_back(kafka_bootstrap, tmp_path, monkeypatch, capsys):
    scenario = Scenario(kafka_bootstrap)
    try:
        whole = {"normalized_name": "Молоко Простоквашино 3,2% 930 мл", "product": "Молоко", "brand": "Простоквашино", "category_id": "dairy"}
        _publish_overrides(
            scenario,
            [
                (MILK, _override(MILK, {**whole, "category_id": "beverages"})),
                (MILK, _override(MILK, whole)),  # the later value of the key is the active one
                (BREAD, _override(BREAD, {"normalized_name": "Хлеб", "product": "Хлеб", "brand": None, "category_id": "bakery"})),
                (BREAD, None),  # a tombstone: no override any more
                (APPLES, _override(APPLES, {"category_id": "fruits_vegetables"}, basis="customers:3")),  # partial, not labelled
            ],
        )
        for name, value in _settings_env(scenario).items():
            monkeypatch.setenv(name, value)
        out = tmp_path / "corrections.tsv"
        assert cli.main(["corrections", "export", "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        assert "exported 1 corrected item(s)" in printed and "1 partial override(s) skipped" in printed, printed

        (row,) = read_rows(out)
        assert (row.source, row.source_id, row.labeller) == ("corrections", item_digest(MILK), "analyst")
        assert (row.raw_name, row.normalized_name, row.product, row.brand, row.category) == (MILK, *whole.values())

        monkeypatch.setenv("ENRICHER_OVERRIDES_TOPIC", f"missing-{scenario.run.name}")
        assert cli.main(["corrections", "export", "--out", str(out)]) == 2
        assert "create-topics" in capsys.readouterr().err
    finally:
        scenario.close()


@pytest.mark.model
def test_a_backfill_answers_from_the_overrides_so_history_reflects_them(kafka_bootstrap, default_model, tmp_path):
    scenario = Scenario(kafka_bootstrap)
    try:
        events = [scenario.receipt(MILK, BREAD), scenario.receipt(BREAD), scenario.receipt(APPLES, MILK)]
        whole = {"normalized_name": "Молоко Простоквашино 3,2% 930 мл", "product": "Молоко", "brand": "Простоквашино", "category_id": "dairy"}
        _publish_overrides(scenario, [(MILK, _override(MILK, whole)), (BREAD, _override(BREAD, {"category_id": "pets"}, "customers:3"))])
        backfill_topic = f"backfill-{scenario.run.name}"
        create_topics({"bootstrap.servers": kafka_bootstrap}, [backfill_topic, f"{backfill_topic}-dlq"], PARTITIONS)
        env = {
            **os.environ,
            **OFFLINE_ENV,
            **_settings_env(scenario),
            "ENRICHER_MODEL_BASE_PATH": str(default_model.base),
            "ENRICHER_MODEL_ADAPTER_PATH": str(default_model.adapter),
            "ENRICHER_TORCH_THREADS": "1",
        }
        offsets = ",".join(f"{p}:0" for p in range(PARTITIONS))
        job = subprocess.run(
            [sys.executable, "-m", "app.cli", "backfill", "--from-offsets", offsets, "--output-topic", backfill_topic,
             "--dlq-topic", f"{backfill_topic}-dlq", "--no-progress"],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
        )
        assert job.returncode == 0, job.stderr[-3000:]
        replayed = {
            transaction.event_id: {item.raw_name: item for item in transaction.items}
            for transaction in (
                EnrichedTransaction.model_validate_json(m.value())
                for m in read_topic({"bootstrap.servers": kafka_bootstrap}, backfill_topic, len(events), 120)
            )
        }
        assert set(replayed) == set(events)
        items = [item for receipt in replayed.values() for item in receipt.values()]
        milk = [item for item in items if item.raw_name == MILK]
        assert len(milk) == 2 and all(
            item.source is ItemSource.OVERRIDE and (item.normalized_name, item.product, item.brand, item.category.id) == tuple(whole.values())
            for item in milk
        )
        bread = [item for item in items if item.raw_name == BREAD]
        assert len(bread) == 2 and all(item.source is ItemSource.OVERRIDE and item.category.id == "pets" for item in bread)
        (apples,) = [item for item in items if item.raw_name == APPLES]
        assert apples.source is ItemSource.MODEL
    finally:
        scenario.close()
