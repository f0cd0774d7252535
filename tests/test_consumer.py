"""The Faust consumer's rebalance steps (app/kafka/consumer.py), on the real class with only the broker call faked.

The hand-over itself runs against the real broker in tests/test_rebalance.py; these pin the order that test
caught going wrong: records must not flow while the input partitions are sought back to their committed offsets.
"""

from __future__ import annotations

import asyncio

import faust

from app.kafka import consumer


def _consumer_seeking(flow_during_seek: list[bool]) -> consumer.Consumer:
    """Our consumer on an app that never connects; its seek records whether records could flow meanwhile."""
    app = faust.App("test-consumer-seek", broker="kafka://127.0.0.1:1", web_enabled=False)
    app.transport = consumer.Transport(app.conf.broker_consumer, app)
    kafka_consumer = app.consumer
    assert isinstance(kafka_consumer, consumer.Consumer)

    async def seek_to_committed() -> dict:
        flow_during_seek.append(kafka_consumer.flow_active)
        return {}

    kafka_consumer.seek_to_committed = seek_to_committed
    return kafka_consumer


def test_the_seek_to_committed_offsets_holds_the_flow_and_lets_it_go_on_after():
    # Faust's table recovery calls the seek with the flow running and the input partitions already resumed.
    flow_during_seek: list[bool] = []
    kafka_consumer = _consumer_seeking(flow_during_seek)
    assert kafka_consumer.flow_active

    asyncio.run(kafka_consumer.perform_seek())

    assert flow_during_seek == [False]
    assert kafka_consumer.flow_active


def test_a_seek_while_the_flow_is_stopped_leaves_it_stopped_for_faust_to_resume():
    # Faust's rebalance without tables, and its fetcher during a revocation, seek with the flow stopped.
    flow_during_seek: list[bool] = []
    kafka_consumer = _consumer_seeking(flow_during_seek)
    kafka_consumer.stop_flow()

    asyncio.run(kafka_consumer.perform_seek())

    assert flow_during_seek == [False]
    assert not kafka_consumer.flow_active
