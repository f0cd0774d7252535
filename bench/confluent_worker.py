"""The zero-cost pipeline driven by a confluent-kafka consumer instead of the Faust agent (a measurement only).

Used by bench/run.py to show what the pipeline's own work allows once Faust's per-message machinery is out
of the way: the same Pipeline, the same overlapped takes (app/stages/delivery.py), the same publisher; takes come
from ``Consumer.consume`` and are committed, in take order, after their records are acknowledged.
It is not a product path: no rebalance handling beyond what the consumer does itself, no health,
no metrics. ``python -m bench.confluent_worker [--stats PATH]`` with the usual ENRICHER_* settings;
SIGTERM drains the takes in flight and exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from confluent_kafka import Consumer, Message, TopicPartition

from app.settings import Settings
from app.stages.delivery import OverlappedTakes
from app.stages.pipeline import InMessage, TakeResult
from bench.zero_cost_worker import ZeroCostRun, parse_bench_args

log = logging.getLogger(__name__)


def _in_message(message: Message) -> InMessage:
    kind, stamp = message.timestamp()
    return InMessage(
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        timestamp_ms=stamp if kind else None,
        key=message.key(),
        value=message.value(),
    )


async def _consume(settings: Settings, run: ZeroCostRun) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    consumer = Consumer(
        {**settings.consumer_config(settings.group_id), "enable.auto.commit": False, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([settings.input_topic])
    # The consumer is not thread-safe: every call to it runs on this one thread.
    kafka = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-consumer")

    async def commit(messages: Sequence[InMessage], _result: TakeResult) -> None:
        ends: dict[tuple[str, int], int] = {}
        for message in messages:
            ends[(message.topic, message.partition)] = max(ends.get((message.topic, message.partition), 0), message.offset + 1)
        offsets = [TopicPartition(topic, partition, end) for (topic, partition), end in ends.items()]
        await loop.run_in_executor(kafka, lambda: consumer.commit(offsets=offsets, asynchronous=False))

    async def fail(error: BaseException) -> None:
        log.error("take_failed error=%s", type(error).__name__, exc_info=error)
        stopping.set()

    takes = OverlappedTakes(run.pipeline, on_done=commit, on_failure=fail)
    try:
        while not stopping.is_set():
            batch = await loop.run_in_executor(kafka, consumer.consume, settings.take_max_events, settings.max_wait_s)
            messages = [_in_message(m) for m in batch if m.error() is None]
            if messages:
                await takes.submit(messages, messages)
        await takes.drain()
    finally:
        await takes.cancel()
        await loop.run_in_executor(kafka, consumer.close)
        kafka.shutdown(wait=True)


def main(argv: list[str] | None = None) -> None:
    stats_path = parse_bench_args(argv, __doc__).stats
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="ts=%(asctime)s level=%(levelname)s logger=%(name)s event=%(message)s")
    run = ZeroCostRun(settings)
    run.start_counting_collections()
    try:
        asyncio.run(_consume(settings, run))
    finally:
        run.pipeline.close()
        run.write_stats(stats_path)


if __name__ == "__main__":
    main()
