"""The publisher and its rounds against a real broker: every record acknowledged, a refused one reported,
never silently lost.

Delivery reports come only for failures (app/kafka/publisher.py), so these tests are what shows that an
acknowledged take really is on the broker and that a refusal still reaches the caller.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from app.kafka.publisher import Publisher
from app.kafka.topics import create_topics
from app.stages.delivery import FailureKind, OutRecord, ProducerRounds
from tests.delivery import read_topic

pytestmark = pytest.mark.integration


def _topic(bootstrap: str, **config: str) -> str:
    name = f"publisher-{uuid.uuid4().hex[:8]}"
    create_topics({"bootstrap.servers": bootstrap}, [name], partitions=3, configs={name: config})
    return name


def test_every_record_of_a_large_take_is_on_the_broker_when_publish_returns(kafka_bootstrap):
    topic = _topic(kafka_bootstrap)
    records = [OutRecord(topic, f"k{n % 50}".encode(), f"v{n}".encode() * 20) for n in range(5000)]
    publisher = Publisher({"bootstrap.servers": kafka_bootstrap}, flush_timeout_s=30)
    try:
        assert asyncio.run(publisher.send_round(records)) == [None] * len(records)
    finally:
        publisher.close()
    stored = read_topic({"bootstrap.servers": kafka_bootstrap}, topic, expected=5000, timeout_s=60, linger_s=1)
    assert sorted(m.value() for m in stored) == sorted(r.value for r in records)


def test_a_record_the_topic_refuses_is_returned_and_the_others_are_delivered(kafka_bootstrap):
    topic = _topic(kafka_bootstrap, **{"max.message.bytes": "4096"})
    small = [OutRecord(topic, b"k", f"small-{n}".encode()) for n in range(300)]
    # Incompressible, so lz4 cannot bring it under the topic's limit.
    large = OutRecord(topic, b"k", os.urandom(64_000))
    rounds = ProducerRounds(Publisher({"bootstrap.servers": kafka_bootstrap}, flush_timeout_s=30))
    try:
        rejected = asyncio.run(rounds.deliver(small[:150] + [large] + small[150:]))
    finally:
        rounds.close()
    assert [r.record for r in rejected] == [large]
    assert "MSG_SIZE_TOO_LARGE" in rejected[0].reason
    stored = read_topic({"bootstrap.servers": kafka_bootstrap}, topic, expected=300, timeout_s=60, linger_s=1)
    assert sorted(m.value() for m in stored) == sorted(r.value for r in small)



def _in_one_round(publisher: Publisher, *takes: list[OutRecord]) -> list[list]:
    rounds = ProducerRounds(publisher)

    async def together() -> list[list]:
        # Handed over back to back, before any is delivered: they share producer rounds.
        return await asyncio.gather(*[rounds.hand_over(take) for take in takes])

    try:
        return asyncio.run(together())
    finally:
        rounds.close()


def test_takes_handed_over_together_reach_the_broker_in_handover_order_per_key(kafka_bootstrap):
    topic = _topic(kafka_bootstrap)
    takes = [[OutRecord(topic, f"k{n % 7}".encode(), f"{t}-{n:04d}".encode()) for n in range(700)] for t in range(3)]
    refused = _in_one_round(Publisher({"bootstrap.servers": kafka_bootstrap}, flush_timeout_s=30), *takes)
    assert refused == [[], [], []]
    stored = read_topic({"bootstrap.servers": kafka_bootstrap}, topic, expected=2100, timeout_s=60, linger_s=1)
    by_key: dict[bytes, list[bytes]] = {}
    for message in stored:
        by_key.setdefault(message.key(), []).append(message.value())
    assert len(by_key) == 7
    for key, values in by_key.items():
        expected = [record.value for take in takes for record in take if record.key == key]
        assert values == expected, f"records of {key!r} left out of order"


def test_a_refusal_in_one_take_spares_the_take_sent_with_it(kafka_bootstrap):
    topic = _topic(kafka_bootstrap, **{"max.message.bytes": "4096"})
    first = [OutRecord(topic, b"k", f"first-{n}".encode()) for n in range(200)]
    large = OutRecord(topic, b"k", os.urandom(64_000))
    second = [OutRecord(topic, b"k", f"second-{n}".encode()) for n in range(200)]  # same partition: same batch
    publisher = Publisher({"bootstrap.servers": kafka_bootstrap}, flush_timeout_s=30)
    refused_first, refused_second = _in_one_round(publisher, first[:100] + [large] + first[100:], second)
    assert [r.record for r in refused_first] == [large]
    assert refused_second == []
    stored = read_topic({"bootstrap.servers": kafka_bootstrap}, topic, expected=400, timeout_s=60, linger_s=1)
    assert sorted(m.value() for m in stored) == sorted(r.value for r in first + second)


def test_a_round_reports_a_refused_record_as_too_large_in_its_place(kafka_bootstrap):
    topic = _topic(kafka_bootstrap, **{"max.message.bytes": "4096"})
    large = OutRecord(topic, b"k", os.urandom(64_000))
    publisher = Publisher({"bootstrap.servers": kafka_bootstrap}, flush_timeout_s=30)
    try:
        outcomes = asyncio.run(publisher.send_round([large]))
    finally:
        publisher.close()
    assert len(outcomes) == 1 and outcomes[0] is not None
    assert outcomes[0].kind is FailureKind.TOO_LARGE and "MSG_SIZE_TOO_LARGE" in outcomes[0].reason
