"""Produce records with confluent-kafka and wait until the broker has acknowledged every one.

The agent acks input offsets only after ``publish`` returns, so a record is never committed past
before its output is durable (acks=all, idempotent producer: retries cannot duplicate within a session).

Delivery reports come only for failures (``delivery.report.only.error``): a record leaves the
producer's queue only when the broker acknowledged it or it failed for good, so an empty queue
after ``flush`` with no report means every record is acknowledged. One Python callback per
successful record would take the GIL a thousand times per take; each time it waited for the
prepare thread's switch interval, and publishing a take took 50-200 ms instead of a few.

Records are sent in rounds: one round produces everything handed over since the last one, then
flushes. A take handed over while a round waits for the broker goes with the next round, together
with any others that arrived meanwhile, so the acknowledgement wait (tens of milliseconds on a busy
broker) is paid once per round, not once per take in a row. Records leave in the order ``send`` was
called: one round at a time, each in call order, so outputs of one key stay in input order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

log = logging.getLogger(__name__)

_RETRY_PAUSE_S = 1.0


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes


Failures = list[tuple[OutRecord, KafkaError]]


@dataclass(slots=True)
class _Handover:
    """Records from one ``send`` (or one retry), waiting for a round."""

    records: Sequence[OutRecord]
    delivered: asyncio.Future[Failures]
    alone: bool = False  # a round of its own: a size refusal then concerns this record only
    failures: Failures = field(default_factory=list)


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
        self._waiting: list[_Handover] = []
        self._rounds: asyncio.Task[None] | None = None

    def send(self, records: Sequence[OutRecord]) -> Coroutine[Any, Any, list[RecordRejected]]:
        """Hand the records over now, behind every earlier ``send``; await the result for their delivery.

        The result completes when every record is acknowledged, retrying transient failures, and
        lists the records the broker refused permanently; the caller decides where they go.
        """
        return self._settle(self._hand_over(list(records)), alone=False)

    async def publish(self, records: Sequence[OutRecord]) -> list[RecordRejected]:
        return await self.send(records)

    async def _settle(self, delivered: asyncio.Future[Failures], *, alone: bool) -> list[RecordRejected]:
        """Wait for a handover's round; retry its transient failures, and re-send size refusals alone."""
        rejected: list[RecordRejected] = []
        while True:
            pending: list[OutRecord] = []
            too_large: list[OutRecord] = []
            failures = await delivered
            for record, error in failures:
                if error.retriable() or error.code() in (KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT):
                    pending.append(record)
                elif error.code() == KafkaError.MSG_SIZE_TOO_LARGE and not alone:
                    too_large.append(record)
                else:
                    rejected.append(RecordRejected(record, error))
            # The broker refuses a whole batch when one record in it is over the topic's limit, so the
            # small records sent with it fail too: alone in a round, each one is judged on its own size.
            for record in too_large:
                rejected.extend(await self._settle(self._hand_over([record], alone=True), alone=True))
            if not pending:
                return rejected
            log.warning("publish_retry records=%d error=%s", len(pending), failures[0][1].name())
            await asyncio.sleep(_RETRY_PAUSE_S)
            delivered = self._hand_over(pending, alone=alone)

    def _hand_over(self, records: list[OutRecord], *, alone: bool = False) -> asyncio.Future[Failures]:
        loop = asyncio.get_running_loop()
        handover = _Handover(records, loop.create_future(), alone)
        self._waiting.append(handover)
        if self._rounds is None:
            self._rounds = loop.create_task(self._send_rounds())
        return handover.delivered

    async def _send_rounds(self) -> None:
        loop = asyncio.get_running_loop()
        batch: list[_Handover] = []
        try:
            while self._waiting:
                batch = self._next_round()
                try:
                    await loop.run_in_executor(self._io, self._produce_and_flush, batch)
                except Exception as error:
                    for handover in batch:
                        if not handover.delivered.done():
                            handover.delivered.set_exception(error)
                    continue
                for handover in batch:
                    if not handover.delivered.done():
                        handover.delivered.set_result(handover.failures)
        except asyncio.CancelledError:
            for handover in batch + self._waiting:
                handover.delivered.cancel()
            self._waiting.clear()
            raise
        finally:
            self._rounds = None

    def _next_round(self) -> list[_Handover]:
        """Everything waiting, in order, up to a handover that must go alone (which then goes by itself)."""
        waiting = self._waiting
        if waiting[0].alone:
            count = 1
        else:
            count = next((n for n, handover in enumerate(waiting) if handover.alone), len(waiting))
        batch, self._waiting = waiting[:count], waiting[count:]
        return batch

    def _produce_and_flush(self, batch: Sequence[_Handover]) -> None:
        # Only one round runs at a time (one I/O thread), so the producer's queue holds only its records.
        def on_failure(record: OutRecord, failures: Failures):
            def report(error: KafkaError | None, _message: object) -> None:
                if error is not None:
                    failures.append((record, error))

            return report

        for handover in batch:
            for record in handover.records:
                while True:
                    try:
                        self._producer.produce(
                            record.topic, record.value, record.key, on_delivery=on_failure(record, handover.failures)
                        )
                        break
                    except BufferError:
                        self._producer.poll(0.1)  # local queue full: let deliveries drain
                    except KafkaException as error:
                        handover.failures.append((record, error.args[0]))
                        break
        while (undelivered := self._producer.flush(self._flush_timeout_s)) > 0:
            log.warning("publish_slow undelivered=%d", undelivered)

    def close(self) -> None:
        self._producer.flush(self._flush_timeout_s)
        self._io.shutdown(wait=True)
