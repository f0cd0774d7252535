"""Faust's aiokafka transport, with a consumer that hands a fetched message to the streams without a task.

Faust's consumer loop (``Consumer._drain_messages``) delivers each fetched message with
``wait_first(callback(message), suspend_flow.wait())``: four tasks, an ``asyncio.wait`` and three
cancellations per message, so that a rebalance (which sets ``suspend_flow``) can interrupt a
delivery blocked on a full stream buffer. In the zero-cost benchmark that machinery took half the
worker's CPU. Here the delivery is first run by hand up to its first wait; almost always the buffer
has room and it finishes there, with no task at all. Only a delivery that has to wait is resumed
under the same ``wait_first``, so a rebalance interrupts it exactly as before.

The transport is registered as ``kafka-eager`` (the ``faust.transports`` entry point in
pyproject.toml); app/kafka/agent.py builds its broker URLs with that scheme. Everything else is Faust's
own aiokafka transport.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import AsyncIterator, Coroutine, Generator
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as aiokafka_driver
from mode import Service

SCHEME = "kafka-eager"

# The faust-streaming release whose Consumer._drain_messages the method below is copied from
# (tests/test_faust_transport.py fails when the installed one differs, so an upgrade re-derives it).
DERIVED_FROM = ("0.15.3", "44a2500309e83c63")


@types.coroutine
def _resumed(delivery: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """The rest of a coroutine that was started by hand and stopped at its first wait."""
    while True:
        try:
            sent = yield waiting_on
        except BaseException as error:  # thrown in by the driving task: cancellation
            try:
                waiting_on = delivery.throw(error)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_on = delivery.send(sent)
            except StopIteration as stop:
                return stop.value


async def _finish(delivery: Coroutine[Any, Any, Any], waiting_on: Any) -> Any:
    return await _resumed(delivery, waiting_on)


async def hand_off(service: Service, delivery: Coroutine[Any, Any, Any], interrupt: asyncio.Event) -> None:
    """Run ``delivery``; if it has to wait, let ``interrupt`` (or the service stopping) abandon it.

    The same outcome as ``service.wait_first(delivery, interrupt.wait())``, without its tasks when
    the delivery does not wait.
    """
    try:
        waiting_on = delivery.send(None)
    except StopIteration:
        return
    await service.wait_first(_finish(delivery, waiting_on), interrupt.wait())


class Consumer(aiokafka_driver.Consumer):
    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover (Faust's own loop)
        # Faust 0.15.3's loop, unchanged except for the marked line.
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(flag_consumer_fetching)
                ait = cast(AsyncIterator, getmany(timeout=1.0))

                # Sleeping because sometimes getmany is called in a loop
                # never releasing to the event loop
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            # We have a gap in income messages
                            if gap > 1 and r_offset:
                                acks_enabled = acks_enabled_for(message.topic)
                                if acks_enabled:
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None:
                                if self._n_acked >= commit_every:
                                    self._n_acked = 0
                                    await self.commit()
                            await hand_off(self, callback(message), self.suspend_flow)  # changed line
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev(
                                "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                                offset,
                                message.key,
                                message.value,
                            )
                    unset_flag(flag_consumer_fetching)

        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(flag_consumer_fetching)


class Transport(aiokafka_driver.Transport):
    Consumer = Consumer
