"""``receipt-enricher backfill`` against the real broker and the real model, beside a running live worker.

One scenario (2.3-3.5 min in four runs on the shared 2-core machine, mostly loading the model in four processes):
  an old, time-stamped part of the input topic (with out-of-order timestamps, a malformed message
  and records after the window) and newer records → the live worker enriches all of it → a backfill
  of the window into a backfill topic → a throttled backfill of the same window into a second topic,
  stopped by SIGTERM midway and run again → refusals of unsafe jobs.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from app import cli
from app.backfill.plan import EXIT_INTERRUPTED, decode_metadata, default_group, parse_time
from app.kafka.topics import create_topics
from app.tools.samples import load_item_names, sample_receipt_event
from harness.worker_process import OFFLINE_ENV, REPO_ROOT, WorkerProcess
from schemas.events import DeadLetter, EnrichedTransaction
from tests.delivery import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.model]

PARTITIONS = 3
FROM = "2026-06-01T10:00:00Z"
TO = "2026-06-01T11:00:00Z"
LATE_S = 600
FROM_MS, TO_MS = parse_time(FROM), parse_time(TO)
MINUTE = 60_000


@dataclass(frozen=True)
class Produced:
    partition: int
    timestamp_ms: int
    key: bytes
    value: bytes
    event_id: str | None  # None: a malformed message


def _layout() -> dict[int, list[tuple[int, str]]]:
    """Per partition, in offset order: (timestamp, what) — 'r' a receipt, 'bad' a malformed message."""
    before = [(FROM_MS - 60 * MINUTE + i, "r") for i in range(2)]
    newer = [(int(time.time() * 1000) - 1000 + i, "r") for i in range(2)]
    far_after = (TO_MS + LATE_S * 1000 + 5 * MINUTE, "r")  # at/after to + late: the scan ends here
    return {
        # A small partition: it finishes first when the job is throttled.
        0: before
        + [(FROM_MS + i * MINUTE, "r") for i in range(3)]
        + [(FROM_MS + 30 * MINUTE, "bad"), far_after]
        + newer,
        1: before
        + [(FROM_MS + i * MINUTE, "r") for i in range(4)]
        + [(FROM_MS - 10 * MINUTE, "r")]  # out of order, stamped before the window: skipped
        + [(FROM_MS + (10 + i) * MINUTE, "r") for i in range(4)]
        + [(TO_MS + 2 * MINUTE, "r")]  # after the window but within `late`
        + [(TO_MS - MINUTE, "r")]  # written late, stamped inside the window: replayed
        + [far_after]
        + [(TO_MS - 2 * MINUTE, "r")]  # stamped inside, but written after to + late: beyond the documented bound
        + newer,
        2: before + [(FROM_MS + i * 2 * MINUTE, "r") for i in range(20)] + [far_after] + newer,
    }


def _produce(bootstrap: str, topic: str) -> list[Produced]:
    rng = random.Random(5)
    names = load_item_names()
    producer = Producer({"bootstrap.servers": bootstrap, "compression.type": "lz4", "linger.ms": 0})
    produced = []
    index = 0
    for partition, records in _layout().items():
        for timestamp_ms, what in records:
            if what == "bad":
                key, value, event_id = b"bad-0", b'{"event_id": "broken", "receipt": {"items": "none"}}', None
            else:
                event = sample_receipt_event(rng, names, index, max_items=4)
                key, value, event_id = event.client_id.encode(), event.model_dump_json().encode(), event.event_id
            index += 1
            producer.produce(topic, value, key, partition=partition, timestamp=timestamp_ms)
            # One at a time: the offset order within a partition must be the layout's order.
            assert producer.flush(30) == 0
            produced.append(Produced(partition, timestamp_ms, key, value, event_id))
    return produced


def _expected_window(produced: list[Produced]) -> tuple[set[str], int, int]:
    """(event ids, dead letters, out-of-window reads) of the window by the documented semantics."""
    event_ids, bad, out_of_window = set(), 0, 0
    for partition in range(PARTITIONS):
        records = [p for p in produced if p.partition == partition]
        start = next((i for i, r in enumerate(records) if r.timestamp_ms >= FROM_MS), len(records))
        end = next((i for i, r in enumerate(records) if r.timestamp_ms >= TO_MS + LATE_S * 1000), len(records))
        for record in records[start:end]:
            if not FROM_MS <= record.timestamp_ms < TO_MS:
                out_of_window += 1
            elif record.event_id is None:
                bad += 1
            else:
                event_ids.add(record.event_id)
    return event_ids, bad, out_of_window


def _group_offsets(bootstrap: str, group: str, topic: str) -> dict[int, tuple[int, str]]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
    return {
        tp.partition: (tp.offset, tp.metadata) for tp in result.topic_partitions if tp.topic == topic and tp.offset >= 0
    }


def _high_watermarks(bootstrap: str, topic: str) -> dict[int, int]:
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4()}"})
    try:
        return {p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
    finally:
        probe.close()


def _wait_for(condition, timeout_s: float, what: str, poll_s: float = 0.3):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


class BackfillProcess:
    def __init__(self, env: dict[str, str], args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "backfill", "--no-progress", *args],
            cwd=REPO_ROOT,
            env={**os.environ, **OFFLINE_ENV, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait(self, timeout_s: float) -> int:
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"backfill did not finish within {timeout_s:.0f} s:\n{self.text()[-3000:]}") from None
        finally:
            self._log.close()

    def text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def summary(self) -> dict[str, str]:
        lines = [line for line in self.text().splitlines() if line.startswith("backfill_summary ")]
        assert lines, self.text()[-3000:]
        return dict(part.split("=", 1) for part in lines[-1].split()[1:])


def _transactions(messages: list) -> dict[str, tuple[bytes, EnrichedTransaction, dict]]:
    by_event = {}
    for message in messages:
        transaction = EnrichedTransaction.model_validate_json(message.value())
        assert transaction.event_id not in by_event, f"duplicate output for {transaction.event_id}"
        by_event[transaction.event_id] = (message.key(), transaction, orjson.loads(message.value()))
    return by_event


def _shape(document):
    """The JSON structure without the values: keys of objects, shapes of list elements, value types."""
    if isinstance(document, dict):
        return {key: _shape(value) for key, value in document.items()}
    if isinstance(document, list):
        return [_shape(value) for value in document]
    return type(document).__name__ if document is not None else "null-or-value"


def test_backfill_replays_exactly_the_window_once_beside_the_live_worker_and_resumes_after_sigterm(
    kafka_bootstrap, default_model, tmp_path, monkeypatch, capsys
):
    run = uuid.uuid4().hex[:8]
    topics = {name: f"{name}-{run}" for name in ("receipts", "enriched", "dlq", "bf-a", "bf-a-dlq", "bf-b", "bf-b-dlq")}
    # Records stamped months ago are past the default 7-day retention: Kafka deletes their segment at its
    # first retention check. A topic kept for replays has a retention longer than the windows replayed.
    create_topics(
        {"bootstrap.servers": kafka_bootstrap},
        list(topics.values()),
        PARTITIONS,
        configs={topics["receipts"]: {"retention.ms": "-1"}},
    )
    produced = _produce(kafka_bootstrap, topics["receipts"])
    window_ids, window_bad, out_of_window = _expected_window(produced)
    assert len(window_ids) == 32 and window_bad == 1 and out_of_window == 2  # the layout is what this test thinks
    live_group = f"enricher-{run}"
    env = {
        "ENRICHER_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ENRICHER_INPUT_TOPIC": topics["receipts"],
        "ENRICHER_OUTPUT_TOPIC": topics["enriched"],
        "ENRICHER_DLQ_TOPIC": topics["dlq"],
        "ENRICHER_GROUP_ID": live_group,
        "ENRICHER_MODEL_BASE_PATH": str(default_model.base),
        "ENRICHER_MODEL_ADAPTER_PATH": str(default_model.adapter),
        "ENRICHER_TORCH_THREADS": "1",
    }
    receipts_total = sum(1 for p in produced if p.event_id)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        live = _transactions(read_topic({"bootstrap.servers": kafka_bootstrap}, topics["enriched"], receipts_total, timeout_s=600))
        highs = _high_watermarks(kafka_bootstrap, topics["receipts"])
        live_offsets = _wait_for(
            lambda: (o := _group_offsets(kafka_bootstrap, live_group, topics["receipts"]))
            and all(o.get(p, (-1, ""))[0] == highs[p] for p in range(PARTITIONS))
            and o,
            120,
            "the live worker to commit the end of every partition",
        )
        assert len(live) == receipts_total, worker.log_text()[-3000:]

        # 1. A whole backfill of the window.
        window_args = ["--from", FROM, "--to", TO, "--late-s", str(LATE_S)]
        full = BackfillProcess(
            env,
            [*window_args, "--output-topic", topics["bf-a"], "--dlq-topic", topics["bf-a-dlq"]],
            tmp_path / "bf-a.log",
        )
        assert full.wait(300) == 0, full.text()[-3000:]
        summary = full.summary()
        assert summary["status"] == "done"
        assert (summary["receipts"], summary["dead_letters"], summary["out_of_window"]) == (
            str(len(window_ids)),
            str(window_bad),
            str(out_of_window),
        )
        backfilled = _transactions(read_topic({"bootstrap.servers": kafka_bootstrap}, topics["bf-a"], len(window_ids), timeout_s=60))
        assert set(backfilled) == window_ids
        for event_id, (key, transaction, document) in backfilled.items():
            live_key, live_transaction, live_document = live[event_id]
            assert key == live_key  # keyed like the input (and the live output): the client id
            assert _shape(document).keys() == _shape(live_document).keys()
            assert [_shape(i).keys() for i in document["items"]] == [_shape(i).keys() for i in live_document["items"]]
            assert transaction.receipt == live_transaction.receipt
            assert [i.raw_name for i in transaction.items] == [i.raw_name for i in live_transaction.items]
            assert transaction.model == live_transaction.model
        letters = read_topic({"bootstrap.servers": kafka_bootstrap}, topics["bf-a-dlq"], window_bad, timeout_s=30)
        assert len(letters) == window_bad
        assert DeadLetter.model_validate_json(letters[0].value()).source.topic == topics["receipts"]

        # 2. The same window into another topic, throttled, stopped by SIGTERM once a partition is finished.
        job = f"resume-{run}"
        job_group = default_group(live_group, job)
        into_b = ["--output-topic", topics["bf-b"], "--dlq-topic", topics["bf-b-dlq"], "--job", job]
        resumable = [*window_args, *into_b]

        def midway():
            """Committed offsets once one partition is finished and another is part-way through."""
            offsets = _group_offsets(kafka_bootstrap, job_group, topics["receipts"])
            plan = {p: decode_metadata(meta)[1:] for p, (_offset, meta) in offsets.items()}
            finished = {p for p, (offset, _) in offsets.items() if offset == plan[p][1]}
            started = {p for p, (offset, _) in offsets.items() if plan[p][0] < offset < plan[p][1]}
            return len(offsets) == PARTITIONS and finished and started and offsets

        slow = BackfillProcess(env, [*resumable, "--max-receipts-per-s", "1"], tmp_path / "bf-b-1.log")
        try:
            _wait_for(midway, 300, "the throttled backfill to finish one partition and be part-way through another")
        finally:
            slow.process.send_signal(signal.SIGTERM)
        assert slow.wait(120) == EXIT_INTERRUPTED, slow.text()[-3000:]
        assert slow.summary()["status"] == "interrupted"
        offsets = _group_offsets(kafka_bootstrap, job_group, topics["receipts"])
        ends = {p: decode_metadata(meta)[2] for p, (_offset, meta) in offsets.items()}
        finished = sorted(p for p, (offset, _) in offsets.items() if offset == ends[p])
        unfinished = sorted(set(range(PARTITIONS)) - set(finished))
        assert finished and unfinished, offsets
        assert any(decode_metadata(offsets[p][1])[1] < offsets[p][0] for p in unfinished), offsets  # one part-way
        first_part = _transactions(read_topic({"bootstrap.servers": kafka_bootstrap}, topics["bf-b"], len(window_ids), timeout_s=10))
        assert first_part.keys() < window_ids  # stopped midway, nothing beyond the window

        resumed = BackfillProcess(env, resumable, tmp_path / "bf-b-2.log")
        assert resumed.wait(300) == 0, resumed.text()[-3000:]
        assert resumed.summary()["finished_before"] == ",".join(map(str, finished))
        todo = {
            int(p): int(start) for p, start in re.findall(r"partition_todo partition=(\d+) from=(\d+)", resumed.text())
        }
        assert sorted(todo) == unfinished  # no finished partition is read again
        assert all(todo[p] == offsets[p][0] for p in unfinished)  # the others continue at their commit
        assert set(_transactions(read_topic({"bootstrap.servers": kafka_bootstrap}, topics["bf-b"], len(window_ids), timeout_s=60))) == window_ids
        final = _group_offsets(kafka_bootstrap, job_group, topics["receipts"])
        assert all(final[p][0] == ends[p] for p in range(PARTITIONS))

        # 3. Unsafe jobs are refused before any model loads (in-process: the same CLI entrypoint).
        for name, value in env.items():
            monkeypatch.setenv(name, value)

        def refusal(*args: str) -> str:
            capsys.readouterr()
            assert cli.main(["backfill", "--no-progress", *args]) == 2
            return capsys.readouterr().err

        into_a = ["--output-topic", topics["bf-a"]]
        assert "live worker's group" in refusal(*window_args, *into_a, "--group", live_group)
        assert "empty or reversed" in refusal("--from", TO, "--to", FROM, *into_a)
        assert f"topic missing-{run} does not exist" in refusal(*window_args, "--output-topic", f"missing-{run}")
        # The same job name with another window is not silently continued.
        assert "another backfill job" in refusal("--from", FROM, "--to", "2026-06-01T10:30:00Z", *into_b)
        # The live worker's group under another ENRICHER_GROUP_ID: refused because it has a live member.
        monkeypatch.setenv("ENRICHER_GROUP_ID", f"other-{run}")
        assert f"group {live_group} is in use" in refusal(*window_args, *into_a, "--group", live_group)
        monkeypatch.setenv("ENRICHER_INPUT_TOPIC", f"missing-{run}")
        assert f"topic missing-{run} does not exist" in refusal(*window_args, *into_a)
        assert (
            not AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics.get(f"missing-{run}")
        )

        # The live consumer never noticed: same committed offsets, nothing extra on its output topic.
        assert _group_offsets(kafka_bootstrap, live_group, topics["receipts"]) == live_offsets
        assert (
            len(_transactions(read_topic({"bootstrap.servers": kafka_bootstrap}, topics["enriched"], receipts_total + 1, timeout_s=5)))
            == receipts_total
        )
        assert worker.running, worker.log_text()[-3000:]
    finally:
        exit_code = worker.stop()
    assert exit_code == 0, worker.log_text()[-3000:]
