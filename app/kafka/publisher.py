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
called, one round at a time. Records that failed and are sent again (a transient error, or a batch
refused as too large) go in rounds of their own, in their original order, before anything handed
over later, so outputs of one key stay in input order across takes. One event loop at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

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
class _Delivery:
    """One ``send``: complete when every part of it is acknowledged or refused for good."""

    result: asyncio.Future[list[RecordRejected]]
    rejected: list[RecordRejected] = field(default_factory=list)
    parts: int = 0  # parts queued or in a round


@dataclass(slots=True)
class _Part:
    """Records of one delivery that go in the same round."""

    records: list[OutRecord]
    delivery: _Delivery
    resent: bool = False  # a re-send: rounds of re-sends only, ahead of later handovers
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
        self._waiting: list[_Part] = []
        self._rounds: asyncio.Task[None] | None = None

    def send(self, records: Sequence[OutRecord]) -> asyncio.Future[list[RecordRejected]]:
        """Hand the records over now, behind every earlier ``send``; await the result for their delivery.

        The result completes when every record is acknowledged, retrying transient failures, and
        lists the records the broker refused permanently; the caller decides where they go.
        """
        loop = asyncio.get_running_loop()
        if self._rounds is not None and self._rounds.get_loop() is not loop:
            self._rounds, self._waiting = None, []  # left behind by a loop that was closed
        delivery = _Delivery(loop.create_future())
        if not records:
            delivery.result.set_result([])
            return delivery.result
        self._queue([_Part(list(records), delivery)])
        if self._rounds is None:
            self._rounds = loop.create_task(self._send_rounds())
        return delivery.result

    async def publish(self, records: Sequence[OutRecord]) -> list[RecordRejected]:
        return await self.send(records)

    def _queue(self, parts: list[_Part], *, first: bool = False) -> None:
        for part in parts:
            part.delivery.parts += 1
        self._waiting = parts + self._waiting if first else self._waiting + parts

    async def _send_rounds(self) -> None:
        loop = asyncio.get_running_loop()
        batch: list[_Part] = []
        try:
            while self._waiting:
                batch = self._next_round()
                try:
                    await loop.run_in_executor(self._io, self._produce_and_flush, batch)
                except Exception as error:
                    for part in batch:
                        if not part.delivery.result.done():
                            part.delivery.result.set_exception(error)
                    self._waiting = [part for part in self._waiting if not part.delivery.result.done()]
                    continue
                resend, transient = self._settle(batch)
                batch = []
                if resend:
                    self._queue(resend, first=True)
                    if transient:
                        log.warning("publish_retry records=%d", sum(len(part.records) for part in resend))
                        await asyncio.sleep(_RETRY_PAUSE_S)
        except asyncio.CancelledError:
            for part in batch + self._waiting:
                part.delivery.result.cancel()
            self._waiting = []
            raise
        finally:
            self._rounds = None

    def _next_round(self) -> list[_Part]:
        """The next parts in order, up to one that may not share their round (which then goes next)."""
        waiting = self._waiting
        head = waiting[0]
        if head.alone:
            count = 1
        else:
            count = next(
                (n for n, part in enumerate(waiting) if part.alone or part.resent != head.resent), len(waiting)
            )
        batch, self._waiting = waiting[:count], waiting[count:]
        return batch

    @staticmethod
    def _settle(batch: list[_Part]) -> tuple[list[_Part], bool]:
        """Complete the deliveries this round finished; returns the parts to send again, in order."""
        resend: list[_Part] = []
        transient = False
        for part in batch:
            delivery = part.delivery
            again: list[_Part] = []
            pending: list[OutRecord] = []
            order = {id(record): n for n, record in enumerate(part.records)} if part.failures else {}
            for record, error in sorted(part.failures, key=lambda failure: order[id(failure[0])]):
                if error.retriable() or error.code() in (KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT):
                    pending.append(record)
                    transient = True
                elif error.code() == KafkaError.MSG_SIZE_TOO_LARGE and not part.alone:
                    # The broker refuses a whole batch when one record in it is over the topic's limit, so
                    # the small records sent with it fail too: alone in a round, each is judged on its own size.
                    if pending:
                        again.append(_Part(pending, delivery, resent=True, alone=part.alone))
                        pending = []
                    again.append(_Part([record], delivery, resent=True, alone=True))
                else:
                    delivery.rejected.append(RecordRejected(record, error))
            if pending:
                again.append(_Part(pending, delivery, resent=True, alone=part.alone))
            delivery.parts -= 1  # this part; the new ones are counted when queued
            resend.extend(again)
            if delivery.parts == 0 and not again and not delivery.result.done():
                delivery.result.set_result(delivery.rejected)
        return resend, transient

    def _produce_and_flush(self, batch: Sequence[_Part]) -> None:
        # Only one round runs at a time (one I/O thread), so the producer's queue holds only its records.
        def on_failure(record: OutRecord, failures: Failures):
            def report(error: KafkaError | None, _message: object) -> None:
                if error is not None:
                    failures.append((record, error))

            return report

        for part in batch:
            for record in part.records:
                while True:
                    try:
                        self._producer.produce(
                            record.topic, record.value, record.key, on_delivery=on_failure(record, part.failures)
                        )
                        break
                    except BufferError:
                        self._producer.poll(0.1)  # local queue full: let deliveries drain
                    except KafkaException as error:
                        part.failures.append((record, error.args[0]))
                        break
        while (undelivered := self._producer.flush(self._flush_timeout_s)) > 0:
            log.warning("publish_slow undelivered=%d", undelivered)

    def close(self) -> None:
        self._producer.flush(self._flush_timeout_s)
        self._io.shutdown(wait=True)
