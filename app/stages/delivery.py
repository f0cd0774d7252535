"""Keep the model busy: prepare the next take and publish the previous one while the model runs.

A take moves through three stages (``prepare`` → ``enrich`` → ``publish``), then its messages are
acked. The model stage runs one take at a time, in take order; everything else overlaps it:

    take N-1:  publish (records handed over, then their acks awaited), ack
    take N:    enrich (model thread) .........
    take N+1:  prepare (decode, validate, cache lookup, tokenize, plan), then wait for the model
    take N+2:  collected by the agent's loop while take N+1 is prepared

Rules that keep the delivery order of app/stages/pipeline.py:
  - a take's ``publish`` is called right after its model stage, before the next take may leave the
    model, so records are handed to the producer in take order and outputs of one key leave in
    input order; its acknowledgement wait overlaps the takes after it (one broker round trip per
    round of takes, not per take in a row: app/kafka/publisher.py);
  - a take is acked only after the take before it is acked, so acks are in take order;
  - a take is acked in its own task as soon as its records are acknowledged by the broker, not
    when the next take arrives (Faust's ``noack_take`` yields only when events arrive);
  - the first failure stops the line: that take and every later one are never acked, even if a
    later take was already published (at-least-once: the replay may duplicate, never lose), and
    ``on_failure`` is called once.
``submit`` starts a take's prepare stage and returns as soon as the take before it has left the
model, without waiting for the prepare: the loop collects the next take from Kafka meanwhile
(awaiting the prepare there serialized collecting and preparing, a quarter of the zero-cost rate).
So besides the take in the model at most one take is being prepared or waits for the model, and at
most MAX_UNACKED takes are in flight (a slow broker holds the line instead of piling up model output):
memory and the replay after a crash stay bounded. A prepare that fails stops the line like any
other stage; the next ``submit`` (or ``drain``) raises LineStopped.
No Kafka and no Faust here: the agent passes the callbacks, tests drive it with plain coroutines.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

M = TypeVar("M")
T = TypeVar("T")
P = TypeVar("P")
O = TypeVar("O")  # noqa: E741
R = TypeVar("R")

# One publishing, one in the model, one prepared: enough to keep the model busy.
MAX_UNACKED = 3


class TakeStages(Protocol[M, P, O, R]):
    async def prepare(self, messages: Sequence[M]) -> P: ...

    async def enrich(self, prepared: P) -> O: ...

    def publish(self, prepared: P, outcome: O) -> Awaitable[R]:
        """Hand the take's output over when called; the awaitable completes when it is delivered."""
        ...


class LineStopped(RuntimeError):
    """An earlier take failed; no further take is accepted (the worker is stopping)."""

    def __init__(self, failure: BaseException) -> None:
        super().__init__(f"an earlier take failed, no further take is accepted: {failure!r}")
        self.failure = failure


class OverlappedTakes(Generic[M, T, P, O, R]):
    def __init__(
        self,
        stages: TakeStages[M, P, O, R],
        *,
        on_done: Callable[[T, R], Awaitable[None]],
        on_failure: Callable[[BaseException], Awaitable[None]],
    ) -> None:
        self._stages = stages
        self._on_done = on_done
        self._on_failure = on_failure
        self._model_free: asyncio.Event | None = None  # set when the last submitted take left the model
        self._last_done: asyncio.Task[bool] | None = None  # the last submitted take's task
        self._tasks: deque[asyncio.Task[bool]] = deque()  # in take order
        self.failure: BaseException | None = None

    async def submit(self, messages: Sequence[M], token: T) -> None:
        """Start preparing a take and queue it for the model; returns once the take before it has left the model.

        ``token`` is handed back to ``on_done`` (the agent passes the Faust events to ack).
        Raises LineStopped once any take has failed, this one's prepare included.
        """
        self._raise_if_stopped()
        model_before, done_before = self._model_free, self._last_done
        model_free = asyncio.Event()
        # The prepare runs in the task, not here: the loop goes back to collecting the next take meanwhile.
        task = asyncio.create_task(self._complete(messages, token, model_before, done_before, model_free))
        self._tasks.append(task)
        self._model_free, self._last_done = model_free, task
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

    async def _complete(
        self,
        messages: Sequence[M],
        token: T,
        model_before: asyncio.Event | None,
        done_before: asyncio.Task[bool] | None,
        model_free: asyncio.Event,
    ) -> bool:
        """Run one take; True once it is acked, which needs every earlier take acked first."""
        try:
            try:
                prepared = await self._stages.prepare(messages)
                if model_before is not None:
                    await model_before.wait()
                if self.failure is not None:
                    return False  # the line has stopped: no new model or broker work
                outcome = await self._stages.enrich(prepared)
                if self.failure is not None:
                    return False
                # Before model_free is set: the next take cannot hand its records over before this one.
                delivered = self._stages.publish(prepared, outcome)
            finally:
                model_free.set()
            result = await delivered
            # Never raises: _complete keeps failures in self.failure. A take after a failed one was
            # perhaps delivered, but is not acked: it is replayed.
            if done_before is not None and not await done_before:
                return False
            await self._on_done(token, result)
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
