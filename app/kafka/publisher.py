"""The producer: one round of records to the broker with confluent-kafka, and what became of each.

Delivery reports come only for failures (``delivery.report.only.error``): a record leaves the
producer's queue only when the broker acknowledged it or it failed for good, so an empty queue
after ``flush`` with no report means every record is acknowledged. One Python callback per
successful record would take the GIL a thousand times per take; each time it waited for the
prepare thread's switch interval, and publishing a take took 50-200 ms instead of a few.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from confluent_kafka import KafkaError, KafkaException, Producer

from app.stages.delivery import FailureKind, OutRecord, RecordFailure

log = logging.getLogger(__name__)
# librdkafka's own log lines (connection failures, retries) as log records instead of raw stderr text.
_LIBRDKAFKA_LOG = logging.getLogger("librdkafka")


def _failure(error: KafkaError) -> RecordFailure:
    if error.retriable() or error.code() in (KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT):
        kind = FailureKind.TRANSIENT
    elif error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
        kind = FailureKind.TOO_LARGE
    else:
        kind = FailureKind.REFUSED
    return RecordFailure(kind, f"{error.name()}: {error.str()}")


class Publisher:
    """Sends one round of records and reports, per record, whether the broker acknowledged it.

    Idempotent with acks=all, so the retries librdkafka makes inside a round cannot duplicate. Which
    records go in a round, in what order, and what happens to a failed one is the delivery line's
    (app/stages/delivery.py): this class only talks to Kafka.
    """

    def __init__(self, config: dict[str, object], flush_timeout_s: float) -> None:
        self._producer = Producer(
            {
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
                **config,
                "delivery.report.only.error": True,  # send_round relies on it, see the module docstring
                "logger": _LIBRDKAFKA_LOG,  # served by flush, in the I/O thread
            }
        )
        self._flush_timeout_s = flush_timeout_s
        # One I/O thread: flush blocks, and the event loop must not. It also means one round at a time,
        # so the producer's queue holds only the current round's records.
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-producer")

    async def send_round(self, records: Sequence[OutRecord]) -> list[RecordFailure | None]:
        return await asyncio.get_running_loop().run_in_executor(self._io, self._produce_and_flush, records)

    def _produce_and_flush(self, records: Sequence[OutRecord]) -> list[RecordFailure | None]:
        outcomes: list[RecordFailure | None] = [None] * len(records)

        def on_failure(index: int):
            def report(error: KafkaError | None, _message: object) -> None:
                if error is not None:
                    outcomes[index] = _failure(error)

            return report

        for index, record in enumerate(records):
            while True:
                try:
                    self._producer.produce(record.topic, record.value, record.key, on_delivery=on_failure(index))
                    break
                except BufferError:
                    self._producer.poll(0.1)  # local queue full: let deliveries drain
                except KafkaException as error:
                    outcomes[index] = _failure(error.args[0])
                    break
        while (undelivered := self._producer.flush(self._flush_timeout_s)) > 0:
            log.warning("publish_slow undelivered=%d", undelivered)
        return outcomes

    def close(self) -> None:
        self._producer.flush(self._flush_timeout_s)
        self._io.shutdown(wait=True)
