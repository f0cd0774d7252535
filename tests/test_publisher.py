"""The publisher against a real broker: every record acknowledged, a refused one reported, never silently lost.

Delivery reports come only for failures (app/publisher.py), so these tests are what shows that an
acknowledged take really is on the broker and that a refusal still reaches the caller.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from app.publisher import OutRecord, Publisher
from app.topics import create_topics
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
        assert asyncio.run(publisher.publish(records)) == []
    finally:
        publisher.close()
    stored = read_topic({"bootstrap.servers": kafka_bootstrap}, topic, expected=5000, timeout_s=60, linger_s=1)
    assert sorted(m.value() for m in stored) == sorted(r.value for r in records)


def test_a_record_the_topic_refuses_is_returned_and_the_others_are_delivered(kafka_bootstrap):
    topic = _topic(kafka_bootstrap, **{"max.message.bytes": "4096"})
    small = [OutRecord(topic, b"k", f"small-{n}".encode()) for n in range(300)]
    # Incompressible, so lz4 cannot bring it under the topic's limit.
    large = OutRecord(topic, b"k", os.urandom(64_000))
    publisher = Publisher({"bootstrap.servers": kafka_bootstrap}, flush_timeout_s=30)
    try:
        rejected = asyncio.run(publisher.publish(small[:150] + [large] + small[150:]))
    finally:
        publisher.close()
    assert [r.record for r in rejected] == [large]
    assert "MSG_SIZE_TOO_LARGE" in rejected[0].error.name() or "too large" in str(rejected[0]).lower()
    stored = read_topic({"bootstrap.servers": kafka_bootstrap}, topic, expected=300, timeout_s=60, linger_s=1)
    assert sorted(m.value() for m in stored) == sorted(r.value for r in small)
