"""Create the service's topics through the Kafka Admin API (idempotent)."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

log = logging.getLogger(__name__)


def create_topics(admin_config: dict[str, object], names: list[str], partitions: int, replication: int = 1) -> list[str]:
    """Create missing topics; return the names that were created. Existing topics are left as they are."""
    admin = AdminClient(admin_config)
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=replication) for name in names],
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
