"""The corrections agents: validate → re-key by item → fold into the corrections table → publish the override.

Two agents in the worker's Faust app (docs/corrections.md draws the flow):

1. ``route-corrections`` reads ``transactions.corrections`` (keyed however the producer likes) and
   sends each valid correction, unchanged, to the internal topic ``<group>-corrections-by-item`` keyed by
   its item key digest; an invalid one goes to the dead-letter topic with its kind. This is Faust's
   ``group_by`` written out, so a bad correction becomes a dead letter instead of a crashed agent.
2. ``fold-corrections`` reads that topic, so each item's corrections arrive in order at the one worker
   owning its partition, and folds each into the item's entry of the ``corrections`` table
   (app/stages/corrections.py decides). The table's changelog topic is what survives a crash: Faust
   replays it into the table on start and on every rebalance. After every correction the item's
   current override (or a tombstone) is sent to the compacted overrides topic, which every worker reads
   whole (app/kafka/overrides_reader.py), so any worker can answer any item.

Delivery: Faust acks each event when the agent asks for the next, and before it commits an offset it
flushes its producer (the re-keyed correction, the dead letter, the changelog write, the override), so a
crash repeats corrections and never loses one. Folding is replay-safe, and the override is sent after
every correction, so a crash between the table write and the send is repaired by the replay.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import faust
from faust.types import EventT

from app.kafka.topics import corrections_by_item_topic, corrections_changelog_topic
from app.ops.metrics import Metrics
from app.settings import Settings
from app.stages.cache import item_digest
from app.stages.corrections import InvalidCorrection, ItemCorrections, active_override, decode_correction, fold
from app.stages.dead_letter import dead_letter
from schemas.events import CorrectionEvent
from schemas.taxonomy import Taxonomy

log = logging.getLogger(__name__)

# app/kafka/topics.py names its changelog topic after it.
TABLE_NAME = "corrections"


class _OneLine(logging.Filter):
    """Faust's table recovery logs its offsets as multi-line ASCII tables at INFO; a log collector wants one
    record per line, so the table's cells are joined into the record's single line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "\n" in message:
            record.msg, record.args = " ".join(message.split()), None
        return True


def add_corrections(app: faust.App, settings: Settings, taxonomy: Taxonomy, metrics: Metrics) -> None:
    """Add the two agents and the corrections table to the worker's app."""
    logging.getLogger("faust.tables.recovery").addFilter(_OneLine())
    corrections = app.topic(settings.corrections_topic, key_type=bytes, value_type=bytes, allow_empty=True)
    # The table's partitions are this topic's: Faust writes each change to the changelog partition of
    # the event being processed, so the two must have the same count.
    by_item = app.topic(
        corrections_by_item_topic(settings.group_id),
        key_type=bytes,
        value_type=bytes,
        partitions=settings.topic_partitions,
        internal=True,
    )
    overrides = app.topic(settings.overrides_topic, key_type=bytes, value_type=bytes)
    dead_letters = app.topic(settings.dlq_topic, key_type=bytes, value_type=bytes)
    table = app.Table(TABLE_NAME, partitions=settings.topic_partitions, key_type=bytes, value_type=bytes)
    if table.changelog_topic.get_topic_name() != corrections_changelog_topic(settings.group_id):
        raise RuntimeError(
            f"Faust names the corrections changelog {table.changelog_topic.get_topic_name()!r}, app/kafka/topics.py "
            f"expects {corrections_changelog_topic(settings.group_id)!r}: align corrections_changelog_topic with this Faust"
        )
    threshold = settings.corrections_customer_threshold

    async def reject(event: EventT, error: InvalidCorrection) -> None:
        message = event.message
        log.info("correction_dead_letter kind=%s partition=%d offset=%d", error.kind, message.partition, message.offset)
        letter = dead_letter(
            kind=error.kind,
            message=error.message,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
            key=message.key,
            value=message.value,
            failed_at=datetime.now(UTC),
        )
        await dead_letters.send(key=message.key, value=letter.model_dump_json().encode())
        metrics.correction_rejected(error.kind)

    async def decoded(event: EventT) -> CorrectionEvent | None:
        """The event's correction; an invalid one is dead-lettered with its kind (None)."""
        try:
            return decode_correction(event.message.value, taxonomy)
        except InvalidCorrection as error:
            await reject(event, error)
            return None

    @app.agent(corrections, name="route-corrections")
    async def route_corrections(stream: faust.StreamT) -> None:
        async for event in stream.events():
            correction = await decoded(event)
            if correction is None:
                continue
            await by_item.send(key=item_digest(correction.raw_name).encode("ascii"), value=event.message.value)

    @app.agent(by_item, name="fold-corrections")
    async def fold_corrections(stream: faust.StreamT) -> None:
        async for event in stream.events():
            # Validated by route-corrections; checked again because anything may write to a topic.
            correction = await decoded(event)
            if correction is None:
                continue
            key = event.message.key
            stored = table.get(key)
            state = fold(ItemCorrections.decode(stored) if stored is not None else None, correction)
            table[key] = state.encode()
            override = active_override(state, threshold)
            await overrides.send(key=key, value=override.model_dump_json().encode() if override is not None else None)
            metrics.correction_received(correction.author.kind)
            log.info(
                "correction_folded author=%s corrections=%d override_fields=%s",
                correction.author.kind.value,
                state.received,
                ",".join(sorted(override.fields)) if override is not None else "-",
            )
