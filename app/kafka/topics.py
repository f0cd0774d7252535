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


def corrections_by_item_topic(group_id: str) -> str:
    """The corrections re-keyed by item (app/kafka/corrections_agent.py); internal to the worker's group."""
    return f"{group_id}-corrections-by-item"


def corrections_changelog_topic(group_id: str) -> str:
    """The corrections table's changelog, named as Faust names it (``<app id>-<table>-changelog``)."""
    return f"{group_id}-corrections-changelog"


def create_corrections_topics(
    admin_config: dict[str, object], *, corrections_topic: str, overrides_topic: str, group_id: str, partitions: int
) -> list[str]:
    """The corrections topic, the overrides topic and the two internal topics of the corrections table.

    The internal ones exist before the worker's consumer joins: Faust creates them too, but concurrently
    with the join, and a first start whose join won that race was never assigned the re-keyed topic
    (the assignor skips a topic missing from its metadata) and folded no correction until a rebalance.
    """
    # Compacted: the overrides topic is the current override of every item (a tombstone removes one), read
    # whole by every worker at start; compaction keeps that read as long as the number of corrected items.
    compacted = {"cleanup.policy": "compact"}
    return create_topics(
        admin_config,
        [corrections_topic, overrides_topic, corrections_by_item_topic(group_id), corrections_changelog_topic(group_id)],
        partitions,
        configs={overrides_topic: compacted, corrections_changelog_topic(group_id): compacted},
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
