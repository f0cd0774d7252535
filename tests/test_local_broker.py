"""The local broker (deploy/local/kafka.sh through harness/kafka_broker.py) behaves as the other integration tests need."""

import time
import uuid

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from harness.kafka_broker import LocalKafka

pytestmark = pytest.mark.integration


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _produce(bootstrap: str, topic: str, count: int, partition: int | None = None) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(count):
        extra = {} if partition is None else {"partition": partition}
        producer.produce(topic, f"value-{i}".encode(), f"key-{i}".encode(), **extra)
    assert producer.flush(30) == 0


def _consume(consumer: Consumer, count: int, timeout_s: float = 60) -> list[Message]:
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while len(messages) < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None:
            assert message.error() is None, message.error()
            messages.append(message)
    return messages


def _consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )


def _committed(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions}


def _watermarks(bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": _unique("watermarks")})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        consumer.close()


def test_a_three_partition_topic_round_trips_every_record_across_partitions(kafka_broker):
    topic = _unique("round-trip")
    kafka_broker.create_topic(topic, partitions=3)
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 3

    _produce(kafka_broker.bootstrap, topic, 60)
    consumer = _consumer(kafka_broker.bootstrap, _unique("group"))
    consumer.subscribe([topic])
    messages = _consume(consumer, 60)
    consumer.close()

    assert sorted(m.value() for m in messages) == sorted(f"value-{i}".encode() for i in range(60))
    assert {m.partition() for m in messages} == {0, 1, 2}


def test_a_consumer_groups_committed_offset_is_visible_to_the_admin_client(kafka_broker):
    topic, group = _unique("offsets"), _unique("group")
    kafka_broker.create_topic(topic, partitions=3)
    _produce(kafka_broker.bootstrap, topic, 10, partition=1)
    consumer = _consumer(kafka_broker.bootstrap, group)
    consumer.subscribe([topic])
    first_four = _consume(consumer, 4)
    consumer.commit(message=first_four[-1], asynchronous=False)
    consumer.close()

    committed = _committed(kafka_broker.bootstrap, group)
    low, high = _watermarks(kafka_broker.bootstrap, topic, 1)

    assert committed[(topic, 1)] == 4
    assert (low, high) == (0, 10)


def test_a_restarted_broker_keeps_its_port_records_and_committed_offsets(tmp_path):
    broker = LocalKafka(tmp_path / "kafka")
    bootstrap = broker.start()
    try:
        topic, group = _unique("restart"), _unique("group")
        broker.create_topic(topic, partitions=1)
        _produce(bootstrap, topic, 5)
        consumer = _consumer(bootstrap, group)
        consumer.subscribe([topic])
        consumer.commit(message=_consume(consumer, 3)[-1], asynchronous=False)
        consumer.close()

        assert broker.restart() == bootstrap

        assert _watermarks(bootstrap, topic, 0) == (0, 5)
        assert _committed(bootstrap, group)[(topic, 0)] == 3
    finally:
        broker.stop()

