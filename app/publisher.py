"""Produce records with confluent-kafka and wait until the broker has acknowledged every one.

The agent acks input offsets only after ``publish`` returns, so a record is never committed past
before its output is durable (acks=all, idempotent producer: retries cannot duplicate within a session).

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
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Producer

log = logging.getLogger(__name__)

_RETRY_PAUSE_S = 1.0


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes


class RecordRejected(RuntimeError):
    """The broker refused a record for good (too large, invalid topic): retrying cannot help."""

    def __init__(self, record: OutRecord, error: KafkaError) -> None:
        super().__init__(f"{record.topic} refused a {len(record.value)}-byte record: {error.str()}")
        self.record = record
        self.error = error


class Publisher:
    def __init__(self, config: dict[str, object], flush_timeout_s: float) -> None:
        self._producer = Producer(
            {
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
                **config,
                "delivery.report.only.error": True,  # publish() relies on it, see the module docstring
            }
        )
        self._flush_timeout_s = flush_timeout_s
        # One I/O thread: flush blocks, and the event loop must not.
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-producer")

    async def publish(self, records: Sequence[OutRecord]) -> list[RecordRejected]:
        """Deliver every record; retry transient failures until they succeed.

        Returns the records the broker refused permanently; the caller decides where they go.
        """
        loop = asyncio.get_running_loop()
        pending = list(records)
        rejected: list[RecordRejected] = []
        while pending:
            failures: list[tuple[OutRecord, KafkaError]] = []
            await loop.run_in_executor(self._io, self._produce_and_flush, pending, failures)
            sent_alone, pending = len(pending) == 1, []
            too_large = []
            for record, error in failures:
                if error.retriable() or error.code() in (KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT):
                    pending.append(record)
                elif error.code() == KafkaError.MSG_SIZE_TOO_LARGE and not sent_alone:
                    too_large.append(record)
                else:
                    rejected.append(RecordRejected(record, error))
            # The broker refuses a whole batch when one record in it is over the topic's limit, so the
            # small records sent with it fail too: alone, each one is judged on its own size.
            for record in too_large:
                rejected.extend(await self.publish([record]))
            if pending:
                log.warning("publish_retry records=%d error=%s", len(pending), failures[0][1].name())
                await asyncio.sleep(_RETRY_PAUSE_S)
        return rejected

    def _produce_and_flush(self, records: Sequence[OutRecord], failures: list[tuple[OutRecord, KafkaError]]) -> None:
        # Only one publish runs at a time (one I/O thread), so the producer's queue holds only these records.
        def on_failure(record: OutRecord):
            def report(error: KafkaError | None, _message: object) -> None:
                if error is not None:
                    failures.append((record, error))

            return report

        for record in records:
            while True:
                try:
                    self._producer.produce(record.topic, record.value, record.key, on_delivery=on_failure(record))
                    break
                except BufferError:
                    self._producer.poll(0.1)  # local queue full: let deliveries drain
                except KafkaException as error:
                    failures.append((record, error.args[0]))
                    break
        while (undelivered := self._producer.flush(self._flush_timeout_s)) > 0:
            log.warning("publish_slow undelivered=%d", undelivered)

    def close(self) -> None:
        self._producer.flush(self._flush_timeout_s)
        self._io.shutdown(wait=True)
