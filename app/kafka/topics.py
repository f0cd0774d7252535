"""Create the service's topics through the Kafka Admin API (idempotent)."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

log = logging.getLogger(__name__)


# A dead letter carries the rejected message base64-encoded (4/3 of its size) plus the error, so the
# DLQ topic must accept records larger than the input topic's 1 MB default.
DLQ_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def create_service_topics(
    admin_config: dict[str, object], *, input_topic: str, output_topic: str, dlq_topic: str, partitions: int
) -> list[str]:
    return create_topics(
        admin_config,
        [input_topic, output_topic, dlq_topic],
        partitions,
        configs={dlq_topic: {"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)}},
    )


def create_topics(
    admin_config: dict[str, object],
    names: list[str],
    partitions: int,
    replication: int = 1,
    configs: dict[str, dict[str, str]] | None = None,
) -> list[str]:
    """Create missing topics; return the names that were created. Existing topics are left as they are."""
    admin = AdminClient(admin_config)
    configs = configs or {}
    futures = admin.create_topics(
        [
            NewTopic(name, num_partitions=partitions, replication_factor=replication, config=configs.get(name, {}))
            for name in names
        ],
        operation_timeout=30,
        request_timeout=30,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=60)
            created.append(name)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    log.info("topics_ready created=%s", ",".join(created) or "-")
    return created
