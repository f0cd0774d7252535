"""The whole path against the real broker: receipts → Faust agent → model → enriched transactions."""

from __future__ import annotations

import base64
import random
import uuid

import orjson
import pytest
from confluent_kafka import Producer

from app.kafka.topics import create_service_topics
from app.tools.samples import load_item_names, sample_receipt_event
from harness.worker_process import WorkerProcess
from schemas.events import DeadLetter, EnrichedTransaction
from schemas.taxonomy import load_taxonomy
from tests.delivery import committed_at_end, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.model]

VALID_RECEIPTS = 200
PARTITIONS = 3


def _malformed_messages(rng: random.Random) -> list[tuple[str, bytes]]:
    """(expected error kind, message) — twenty bad messages of different kinds."""
    good = orjson.loads(sample_receipt_event(rng, load_item_names(), 0).model_dump_json())

    def variant(mutate) -> bytes:
        document = orjson.loads(orjson.dumps(good))
        mutate(document)
        return orjson.dumps(document)

    one_megabyte_name = variant(lambda d: d["receipt"]["items"][0].__setitem__("name", "Я" * 500_000))
    return [
        ("invalid_json", b"not json"),
        ("invalid_json", b"{\"event_id\": "),
        ("invalid_json", b"\xff\xfe\xfd invalid utf-8"),
        ("empty", b""),
        ("invalid_receipt", b"[]"),
        ("invalid_receipt", b"42"),
        ("invalid_receipt", variant(lambda d: d["receipt"].pop("items"))),
        ("invalid_receipt", variant(lambda d: d["receipt"].__setitem__("items", []))),
        ("invalid_receipt", variant(lambda d: d["receipt"]["items"][0].__setitem__("price", "дорого"))),
        ("invalid_receipt", variant(lambda d: d["receipt"]["items"][0].__setitem__("quantity", -1))),
        ("invalid_receipt", variant(lambda d: d["receipt"].__setitem__("totalSum", 10**17))),
        ("invalid_receipt", variant(lambda d: d["receipt"].__setitem__("dateTime", "вчера"))),
        ("invalid_receipt", variant(lambda d: d.pop("client_id"))),
        ("invalid_receipt", variant(lambda d: d.__setitem__("receipt", None))),
        ("invalid_receipt", variant(lambda d: d["receipt"]["items"][0].pop("name"))),
        ("invalid_receipt", variant(lambda d: d["receipt"]["items"][0].__setitem__("name", ""))),
        ("invalid_receipt", variant(lambda d: d["receipt"].__setitem__("operationType", 9))),
        ("invalid_receipt", variant(lambda d: d["receipt"].__setitem__("items", [{"name": 5}]))),
        ("too_large", one_megabyte_name),
        ("invalid_receipt", variant(lambda d: d["receipt"].__setitem__("items", ["x"] * 3))),
    ]


@pytest.mark.parametrize("generator", ["BatchGenerator", "ContinuousGenerator"])
def test_valid_receipts_are_enriched_exactly_once_and_malformed_ones_go_to_the_dlq(
    kafka_bootstrap, default_model, tmp_path, generator
):
    run = uuid.uuid4().hex[:8]
    topics = {"input": f"receipts-{run}", "output": f"enriched-{run}", "dlq": f"dlq-{run}"}
    create_service_topics(
        {"bootstrap.servers": kafka_bootstrap},
        input_topic=topics["input"],
        output_topic=topics["output"],
        dlq_topic=topics["dlq"],
        partitions=PARTITIONS,
    )

    rng = random.Random(2026)
    names = load_item_names()
    receipts = [sample_receipt_event(rng, names, i) for i in range(VALID_RECEIPTS)]
    malformed = _malformed_messages(rng)
    # Upstream producers compress; the worker's consumer must read compressed batches.
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 1_040_000, "compression.type": "lz4"})
    stream = [(r.client_id.encode(), r.model_dump_json().encode()) for r in receipts]
    stream += [(f"bad-{i}".encode(), value) for i, (_, value) in enumerate(malformed)]
    rng.shuffle(stream)
    for key, value in stream:
        producer.produce(topics["input"], value, key)
    assert producer.flush(30) == 0

    group = f"enricher-{run}"
    worker = WorkerProcess(
        {
            "ENRICHER_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "ENRICHER_INPUT_TOPIC": topics["input"],
            "ENRICHER_OUTPUT_TOPIC": topics["output"],
            "ENRICHER_DLQ_TOPIC": topics["dlq"],
            "ENRICHER_GROUP_ID": group,
            "ENRICHER_MODEL_BASE_PATH": str(default_model.base),
            "ENRICHER_MODEL_ADAPTER_PATH": str(default_model.adapter),
            "ENRICHER_CONTINUOUS_BATCHING": str(generator == "ContinuousGenerator").lower(),
        },
        tmp_path / "worker.log",
    ).start()
    try:
        outputs = read_topic({"bootstrap.servers": kafka_bootstrap}, topics["output"], VALID_RECEIPTS, timeout_s=600)
        letters = read_topic({"bootstrap.servers": kafka_bootstrap}, topics["dlq"], len(malformed), timeout_s=60)
        offsets = committed_at_end({"bootstrap.servers": kafka_bootstrap}, group, topics["input"], PARTITIONS, timeout_s=60)
    finally:
        exit_code = worker.stop()
    log = worker.log_text()

    taxonomy = load_taxonomy()
    by_event = {}
    for message in outputs:
        transaction = EnrichedTransaction.model_validate_json(message.value())
        assert transaction.event_id not in by_event, f"duplicate output for {transaction.event_id}"
        by_event[transaction.event_id] = (message.key(), transaction)
    assert set(by_event) == {r.event_id for r in receipts}, log[-3000:]
    for receipt in receipts:
        key, transaction = by_event[receipt.event_id]
        assert key == receipt.client_id.encode()
        assert [i.raw_name for i in transaction.items] == [i.name for i in receipt.receipt.items]
        for item in transaction.items:
            assert item.normalized_name
            assert taxonomy.by_id(item.category.id).name == item.category.name
        assert transaction.model.version

    kinds_seen = []
    for message in letters:
        letter = DeadLetter.model_validate_json(message.value())
        original = base64.b64decode(letter.original_value_b64 or "")
        expected = [kind for kind, value in malformed if value == original]
        assert expected, "dead letter does not carry an original message untouched"
        assert letter.error.kind == expected[0], letter.error
        assert letter.source.topic == topics["input"]
        kinds_seen.append(letter.error.kind)
    assert len(letters) == len(malformed)

    assert all(committed == high for committed, high in offsets.values()), offsets
    # Exit 0 on SIGTERM also shows the continuous-batching manager's thread was stopped, not left running.
    assert exit_code == 0, log[-3000:]
    assert f"generator={generator}" in log
    # A log collector gets one structured record per line: no progress bars, raw warnings or terminal codes.
    raw = [line for line in log.splitlines() if not line.startswith("ts=")]
    assert not raw, f"{len(raw)} lines of the worker's log are not log records, e.g. {raw[:3]}"
