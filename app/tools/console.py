"""Demo and operator tools: put sample receipts on the input topic, print enriched transactions."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import orjson
from confluent_kafka import Consumer, KafkaError, Producer

from app.settings import Settings
from app.tools.samples import load_item_names, sample_receipt_event
from schemas.events import EnrichedTransaction

MALFORMED_SAMPLES: tuple[bytes, ...] = (
    b"this is not json",
    b'{"event_id": "broken", "receipt": {"items": "none"}}',
    b"\xff\xfe not utf-8",
)


def produce_samples(producer_config: dict[str, object], topic: str, count: int, seed: int, malformed: int) -> int:
    rng = random.Random(seed)
    names = load_item_names()
    producer = Producer(producer_config)
    for index in range(count):
        event = sample_receipt_event(rng, names, index)
        producer.produce(topic, event.model_dump_json().encode(), event.client_id.encode())
        producer.poll(0)
    for index in range(malformed):
        producer.produce(topic, MALFORMED_SAMPLES[index % len(MALFORMED_SAMPLES)], b"malformed")
    remaining = producer.flush(30)
    if remaining:
        raise TimeoutError(f"{remaining} sample receipts were not acknowledged by the broker within 30 s")
    return count + malformed


def consume(settings: Settings, topic: str, max_messages: int, timeout_s: float) -> Iterator[bytes]:
    """Read a topic from the beginning with a throwaway group until max_messages or timeout."""
    consumer = Consumer(
        {
            **settings.consumer_config(f"console-{time.time_ns()}"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + timeout_s
    seen = 0
    try:
        while seen < max_messages and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"consume failed: {message.error()}")
            seen += 1
            yield message.value()
    finally:
        consumer.close()


def render_transaction(value: bytes) -> str:
    transaction = EnrichedTransaction.model_validate_json(value)
    lines = [
        f"receipt {transaction.event_id} · {transaction.receipt.seller or '?'} · "
        f"{transaction.receipt.total_sum / 100:.2f} ₽ · model {transaction.model.version}"
    ]
    for item in transaction.items:
        lines.append(
            f"  {item.position:>2}. {item.raw_name[:42]:<42} → {item.normalized_name[:40]:<40} | "
            f"{item.product or '-'} | {item.brand or '-'} | {item.category.name} [{item.status}]"
        )
    return "\n".join(lines)


def render_dead_letter(value: bytes) -> str:
    letter = orjson.loads(value)
    return f"dead letter {letter['source']['topic']}/{letter['source']['partition']}@{letter['source']['offset']}: {letter['error']['kind']}"
