"""Follow the compacted overrides topic into an OverridesView: every partition, from the beginning.

Each worker (and each backfill) reads the whole topic with a plain assigned consumer (no group, no
commits): overrides are few (one record per corrected item, compacted), and an item's override must be
found by whichever worker a receipt with that item lands on. ``start`` returns once everything already
on the topic is in the view, so the first take sees every override that was active at start-up.
"""

from __future__ import annotations

import logging
import threading

import pydantic
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from app.settings import Settings
from app.stages.overrides import OverridesView
from schemas.events import Override
from schemas.taxonomy import Taxonomy

log = logging.getLogger(__name__)

_POLL_S = 0.5


class OverridesNotLoaded(RuntimeError):
    """The overrides topic is missing or could not be read to its end in time; the message says which."""


class OverridesReader:
    def __init__(self, consumer_config: dict[str, object], topic: str, view: OverridesView) -> None:
        self._config = {
            **consumer_config,
            "enable.auto.commit": False,
            # End-of-partition events say when a partition has been read up to its end: the catch-up.
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
        self._topic = topic
        self._view = view
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout_s: float) -> "OverridesReader":
        """Read what the topic holds now; keep following it in a thread. Raises OverridesNotLoaded."""
        consumer = Consumer(self._config)
        try:
            metadata = consumer.list_topics(self._topic, timeout=timeout_s).topics.get(self._topic)
            if metadata is None or metadata.error is not None or not metadata.partitions:
                reason = metadata.error.str() if metadata is not None and metadata.error else "no partitions"
                raise OverridesNotLoaded(
                    f"overrides topic {self._topic} cannot be read ({reason}); create it with "
                    "`receipt-enricher create-topics` or check ENRICHER_OVERRIDES_TOPIC"
                )
            partitions = sorted(metadata.partitions)
            consumer.assign([TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in partitions])
        except BaseException:
            consumer.close()
            raise
        self._thread = threading.Thread(
            target=self._follow, args=(consumer, set(partitions)), name="overrides-reader", daemon=True
        )
        self._thread.start()
        if not self._caught_up.wait(timeout_s):
            self.stop()
            raise OverridesNotLoaded(
                f"overrides topic {self._topic} was not read to its end within {timeout_s:g} s "
                "(ENRICHER_OVERRIDES_LOAD_TIMEOUT_S); check the broker and the topic's size"
            )
        log.info("overrides_loaded topic=%s partitions=%d active=%d", self._topic, len(partitions), len(self._view))
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _follow(self, consumer: Consumer, not_at_end: set[int]) -> None:
        try:
            while not self._stop.is_set():
                message = consumer.poll(_POLL_S)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        not_at_end.discard(message.partition())
                        if not not_at_end:
                            self._caught_up.set()
                    else:
                        log.warning("overrides_read_error topic=%s error=%s", self._topic, error.str())
                    continue
                self._apply(message.key(), message.value(), message.partition(), message.offset())
        finally:
            consumer.close()

    def _apply(self, key: bytes | None, value: bytes | None, partition: int, offset: int) -> None:
        if key is None:
            log.warning("override_unreadable reason=no_key partition=%d offset=%d", partition, offset)
            return
        if value is None:
            self._view.apply(key.decode("ascii", "replace"), None)
        else:
            try:
                override = Override.model_validate_json(value)
            except pydantic.ValidationError as error:
                log.warning(
                    "override_unreadable reason=invalid errors=%d partition=%d offset=%d",
                    error.error_count(),
                    partition,
                    offset,
                )
                return
            self._view.apply(key.decode("ascii", "replace"), override)


def start_overrides(settings: Settings, taxonomy: Taxonomy) -> tuple[OverridesView, OverridesReader]:
    """Every active override in a view that keeps following the overrides topic; stop the reader when done."""
    view = OverridesView(taxonomy)
    reader = OverridesReader(settings.consumer_config(f"{settings.group_id}-overrides-reader"), settings.overrides_topic, view)
    return view, reader.start(settings.overrides_load_timeout_s)
