import uuid

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer
from confluent_kafka.admin import AdminClient

from app.topics import create_topics

pytestmark = pytest.mark.integration


def test_the_local_broker_creates_partitioned_topics_and_round_trips_records(kafka_bootstrap):
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    assert create_topics({"bootstrap.servers": kafka_bootstrap}, [topic], partitions=3) == [topic]
    assert create_topics({"bootstrap.servers": kafka_bootstrap}, [topic], partitions=3) == []  # idempotent

    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(30):
        producer.produce(topic, f"value-{i}".encode(), f"key-{i}".encode())
    assert producer.flush(30) == 0

    group = f"group-{topic}"
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen = set()
    for _ in range(200):
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            seen.add(message.value())
        if len(seen) == 30:
            break
    consumer.commit(asynchronous=False)
    consumer.close()
    assert seen == {f"value-{i}".encode() for i in range(30)}

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 3
    committed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result()
    assert sum(tp.offset for tp in committed.topic_partitions) == 30
