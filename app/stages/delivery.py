"""The delivery order of the worker, and the code that keeps it.

Every take of input messages goes through these steps, in this order; this module enforces it:

  1. prepare: every message of the take becomes exactly one output record, an enriched transaction
     or, for a message that is not a valid receipt, a dead letter (app/stages/pipeline.py);
  2. enrich: the model stage runs one take at a time, in take order;
  3. hand over: as a take leaves the model, and before the next take may leave it, its records go
     to the producer. Records leave in hand-over order, one round at a time (what is handed over
     while a round waits for the broker goes with the next round); a record sent again after a
     failure goes before anything handed over after it. So outputs of one key leave in input order;
  4. acknowledge: the take waits until the broker has acknowledged every one of its records
     (acks=all, idempotent producer). A record refused for good is replaced by a dead letter,
     which must be acknowledged in turn;
  5. ack: only then are the take's messages acked, and never before every earlier take's. Faust
     commits the highest contiguous acked offset of each partition at its commit interval and
     before it gives a partition up (app/kafka/consumer.py);
  6. stop: the first take that fails stops the line. Neither it nor any later take is acked, even
     one already on the broker; the worker stops and its replacement starts from the last commit.

A crash before step 5 leaves a take uncommitted: it is redone (duplicates possible, loss
impossible). A graceful stop or rebalance lets the takes in flight finish, and commits them, first.

Overlap keeps the model busy within that order: while take N is in the model, take N+1 is prepared
and take N-1 waits for the broker, and the agent collects the next take from Kafka. Besides the take
in the model, at most one take is prepared and waiting for it, and at most MAX_UNACKED takes are in
flight: a slow broker holds the line instead of piling up model output, and a crash's replay stays
bounded.

No Kafka or Faust here: the take stages and the producer come in through the two protocols below
(app/stages/pipeline.py and app/kafka/publisher.py implement them; the tests use plain coroutines).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

M = TypeVar("M")
T = TypeVar("T")
P = TypeVar("P")
O = TypeVar("O")  # noqa: E741
R = TypeVar("R")

# One publishing, one in the model, one prepared: enough to keep the model busy.
MAX_UNACKED = 3


# ---- steps 1-6 for whole takes ------------------------------------------------------------------


class TakeStages(Protocol[M, P, O, R]):
    """What one take goes through (app/stages/pipeline.py)."""

    async def prepare(self, messages: Sequence[M]) -> P: ...

    async def enrich(self, prepared: P) -> O: ...

    def publish(self, prepared: P, outcome: O) -> Awaitable[R]:
        """Hand the take's records over when called (step 3); the awaitable completes at step 4."""
        ...


class LineStopped(RuntimeError):
    """An earlier take failed; no further take is accepted (the worker is stopping)."""

    def __init__(self, failure: BaseException) -> None:
        super().__init__(f"an earlier take failed, no further take is accepted: {failure!r}")
        self.failure = failure


class OverlappedTakes(Generic[M, T, P, O, R]):
    """Runs takes through the steps above, several at once, in the order above."""

    def __init__(
        self,
        stages: TakeStages[M, P, O, R],
        *,
        on_done: Callable[[T, R], Awaitable[None]],
        on_failure: Callable[[BaseException], Awaitable[None]],
    ) -> None:
        self._stages = stages
        self._ack = on_done
        self._on_failure = on_failure
        self._model_free: asyncio.Event | None = None  # set when the last submitted take left the model
        self._last_take: asyncio.Task[bool] | None = None
        self._tasks: deque[asyncio.Task[bool]] = deque()  # in take order
        self.failure: BaseException | None = None

    async def submit(self, messages: Sequence[M], token: T) -> None:
        """Start a take; returns once the take before it has left the model (the agent collects the next meanwhile).

        ``token`` is handed back to ``on_done`` to ack (the agent passes the Faust events).
        Raises LineStopped once any take has failed, this one's prepare included.
        """
        self._raise_if_stopped()
        model_before, take_before = self._model_free, self._last_take
        model_free = asyncio.Event()
        # The prepare runs in the take's task, not here: awaiting it here serialized collecting and
        # preparing, a quarter of the zero-cost rate.
        task = asyncio.create_task(self._take(messages, token, model_before, take_before, model_free))
        self._tasks.append(task)
        self._model_free, self._last_take = model_free, task
        if model_before is not None:
            # Waiting here, not in the task, is what bounds the queue to one take beside the model.
            await model_before.wait()
        while self._forget_done() > MAX_UNACKED:
            await asyncio.wait([self._tasks[0]])
        self._raise_if_stopped()

    async def drain(self) -> None:
        """Wait until every submitted take is acked or the line has stopped."""
        while self._forget_done():
            await asyncio.gather(*list(self._tasks))

    async def cancel(self) -> None:
        """Abandon takes in flight (worker shutdown): none of them is acked, so all are replayed."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _take(
        self,
        messages: Sequence[M],
        token: T,
        model_before: asyncio.Event | None,
        take_before: asyncio.Task[bool] | None,
        model_free: asyncio.Event,
    ) -> bool:
        """One take, steps 1 to 5; True once it is acked."""
        try:
            try:
                prepared = await self._stages.prepare(messages)  # 1
                if model_before is not None:
                    await model_before.wait()  # 2: the model takes one take at a time, in take order
                if self.failure is not None:
                    return False  # 6: the line has stopped, no new model or broker work
                outcome = await self._stages.enrich(prepared)
                if self.failure is not None:
                    return False
                delivered = self._stages.publish(prepared, outcome)  # 3: before the next take leaves the model
            finally:
                model_free.set()
            result = await delivered  # 4
            if take_before is not None and not await take_before:  # 5: acks in take order
                return False  # 6: an earlier take failed; this one may be on the broker, it is replayed
            await self._ack(token, result)
            return True
        except asyncio.CancelledError as cancelled:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this take was abandoned (``cancel``): nothing to report
            # Something this take waited on was cancelled (a delivery, at teardown): a failure like any other.
            await self._fail(cancelled)
            return False
        except Exception as error:
            await self._fail(error)
            return False

    async def _fail(self, error: BaseException) -> None:
        if self.failure is not None:
            log.warning("take_failed_after_stop error=%s", type(error).__name__)
            return
        self.failure = error
        await self._on_failure(error)

    def _forget_done(self) -> int:
        """Drop finished takes from the front; returns how many are still in flight."""
        while self._tasks and self._tasks[0].done():
            self._tasks.popleft()
        return sum(1 for task in self._tasks if not task.done())

    def _raise_if_stopped(self) -> None:
        if self.failure is not None:
            raise LineStopped(self.failure)


# ---- steps 3 and 4 for records --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes


class FailureKind(enum.Enum):
    TRANSIENT = "transient"  # a timeout, a lost connection, a retriable broker error: send it again
    TOO_LARGE = "too_large"  # refused as too large, perhaps for a batch-mate's size: judge it alone
    REFUSED = "refused"  # refused for good: sending it again cannot help


@dataclass(frozen=True, slots=True)
class RecordFailure:
    kind: FailureKind
    reason: str  # the client's own words: the error's name and message


class RecordSink(Protocol):
    """A producer seen from the delivery line (app/kafka/publisher.py)."""

    async def send_round(self, records: Sequence[OutRecord]) -> list[RecordFailure | None]:
        """Produce the records in order and wait until each is acknowledged or has failed.

        One outcome per record, in order: None when the broker acknowledged it.
        """
        ...

    def close(self) -> None: ...


class RecordRejected(RuntimeError):
    """The broker refused a record for good (too large, invalid topic): retrying cannot help."""

    def __init__(self, record: OutRecord, reason: str) -> None:
        super().__init__(f"{record.topic} refused a {len(record.value)}-byte record: {reason}")
        self.record = record
        self.reason = reason


@dataclass(slots=True)
class _Delivery:
    """One hand-over: complete when every record of it is acknowledged or refused for good."""

    result: asyncio.Future[list[RecordRejected]]
    rejected: list[RecordRejected] = field(default_factory=list)
    parts: int = 0  # parts waiting or in a round


@dataclass(slots=True)
class _Part:
    """Records of one hand-over that go in the same round."""

    records: list[OutRecord]
    delivery: _Delivery
    resent: bool = False  # a re-send: rounds of re-sends only, ahead of later hand-overs
    alone: bool = False  # a round of its own: a size refusal then concerns this record only


class ProducerRounds:
    """Steps 3 and 4 for records: rounds in hand-over order, re-sends first, each hand-over's refusals reported.

    One round produces everything handed over since the last one and waits for the broker, so that
    wait (tens of milliseconds on a busy broker) is paid once per round, not once per take in a row.
    One event loop at a time.
    """

    def __init__(self, sink: RecordSink, retry_pause_s: float = 1.0) -> None:
        self._sink = sink
        self._retry_pause_s = retry_pause_s
        self._waiting: list[_Part] = []
        self._rounds: asyncio.Task[None] | None = None

    def hand_over(self, records: Sequence[OutRecord]) -> asyncio.Future[list[RecordRejected]]:
        """Queue the records now, behind every earlier hand-over; await the result for their acknowledgement.

        The result lists the records the broker refused for good; the caller decides where they go.
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

    async def deliver(self, records: Sequence[OutRecord]) -> list[RecordRejected]:
        return await self.hand_over(records)

    def close(self) -> None:
        self._sink.close()

    def _queue(self, parts: list[_Part], *, first: bool = False) -> None:
        for part in parts:
            part.delivery.parts += 1
        self._waiting = parts + self._waiting if first else self._waiting + parts

    async def _send_rounds(self) -> None:
        batch: list[_Part] = []
        try:
            while self._waiting:
                batch = self._next_round()
                try:
                    outcomes = await self._sink.send_round([record for part in batch for record in part.records])
                except Exception as error:
                    for part in batch:
                        if not part.delivery.result.done():
                            part.delivery.result.set_exception(error)
                    self._waiting = [part for part in self._waiting if not part.delivery.result.done()]
                    continue
                resend, transient = self._settle(batch, outcomes)
                batch = []
                if resend:
                    self._queue(resend, first=True)
                    if transient:
                        log.warning("publish_retry records=%d", sum(len(part.records) for part in resend))
                        await asyncio.sleep(self._retry_pause_s)
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
    def _settle(batch: list[_Part], outcomes: Sequence[RecordFailure | None]) -> tuple[list[_Part], bool]:
        """Complete the hand-overs this round finished; returns the parts to send again, in order."""
        resend: list[_Part] = []
        transient = False
        start = 0
        for part in batch:
            delivery = part.delivery
            again: list[_Part] = []
            pending: list[OutRecord] = []
            for record, failure in zip(part.records, outcomes[start : start + len(part.records)]):
                if failure is None:
                    continue
                if failure.kind is FailureKind.TRANSIENT:
                    pending.append(record)
                    transient = True
                elif failure.kind is FailureKind.TOO_LARGE and not part.alone:
                    # The broker refuses a whole batch when one record in it is over the topic's limit, so
                    # the small records sent with it fail too: alone in a round, each is judged on its own size.
                    if pending:
                        again.append(_Part(pending, delivery, resent=True))
                        pending = []
                    again.append(_Part([record], delivery, resent=True, alone=True))
                else:
                    delivery.rejected.append(RecordRejected(record, failure.reason))
            start += len(part.records)
            if pending:
                again.append(_Part(pending, delivery, resent=True, alone=part.alone))
            delivery.parts -= 1  # this part; the new ones are counted when queued
            resend.extend(again)
            if delivery.parts == 0 and not again and not delivery.result.done():
                delivery.result.set_result(delivery.rejected)
        return resend, transient
