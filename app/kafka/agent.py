"""The Faust app and its one agent: take → prepare → enrich → publish → ack, in the order of app/stages/delivery.py."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import faust
from faust.types import EventT

from app.kafka import consumer
from app.ops.health import Health
from app.settings import Settings
from app.stages.delivery import OverlappedTakes
from app.stages.pipeline import InMessage, Pipeline, TakeResult

log = logging.getLogger(__name__)


def _in_message(event: EventT) -> InMessage:
    message = event.message
    timestamp = message.timestamp
    return InMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=int(timestamp * 1000) if timestamp else None,
        key=message.key,
        value=message.value,
    )


def create_app(settings: Settings, pipeline: Pipeline, health: Health | None = None) -> faust.App:
    """Build the app without touching the network (a factory, so tests and tools can build their own)."""
    datadir = settings.state_dir / settings.group_id
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = faust.App(
        settings.group_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers.split(",")],
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        broker_credentials=settings.faust_credentials(),
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_commit_interval=settings.commit_interval_s,
        # A model batch may take long on a busy GPU; the poll interval must outlast it or the group evicts us.
        broker_max_poll_interval=max(300.0, settings.model_timeout_s * 3),
        stream_processing_timeout=max(300.0, settings.model_timeout_s * 3),
        stream_buffer_maxsize=settings.stream_buffer_max_events,
        topic_partitions=settings.topic_partitions,
        topic_disable_leader=True,
        web_enabled=False,
        datadir=str(datadir),
    )
    # Set before anything asks for it: Faust would build its own from the broker URL's scheme.
    app.transport = consumer.Transport(app.conf.broker_consumer, app)
    receipts = app.topic(settings.input_topic, key_type=bytes, value_type=bytes, allow_empty=True)
    if health is not None:
        _report_health(app, settings.input_topic, health)

    async def stop_worker(error: BaseException) -> None:
        # Unknown failure: nothing of this take (or any later one) is acked. Restarting only the actor
        # would resume after these messages, so stop the worker and let it replay from the last commit.
        log.error("take_failed error=%s", type(error).__name__, exc_info=error)
        if health is not None:
            health.crashed(type(error).__name__)
        await app.crash(error)

    @app.agent(receipts, name="enrich-receipts")
    async def enrich_receipts(stream: faust.StreamT) -> None:
        async def ack(events: Sequence[EventT], result: TakeResult) -> None:
            for event in events:
                await stream.ack(event)
            log.info(
                "take_done receipts=%d items=%d cached=%d dead_letters=%d model_calls=%d failed_items=%d",
                result.receipts,
                result.items,
                result.outcome.cached_items,
                result.dead_letters,
                result.outcome.model_calls,
                result.outcome.failed_items,
            )

        line = OverlappedTakes(pipeline, on_done=ack, on_failure=stop_worker)
        try:
            # take → prepare → enrich → publish → ack: ``submit`` starts the steps after the take, in their
            # order, and returns as soon as the line can hold another take (the model is busy meanwhile).
            async for events in stream.noack_take(settings.take_max_events, within=settings.max_wait_s):
                await line.submit([_in_message(event) for event in events], events)
            await line.drain()
        finally:
            await line.cancel()

    return app


def run_app(app: faust.App, log_level: str) -> None:
    """Run the Faust worker until it is stopped; its output is log records only."""
    worker = faust.Worker(app, loglevel=log_level, redirect_stdouts=False, override_logging=False, quiet=True)
    # Faust's start-up spinner writes terminal control codes and " OK ^" to stdout even when stdout is a
    # log file; without it Faust logs "Ready" instead. A log collector wants one structured line per event.
    worker.spinner = None
    worker.execute_from_commandline()


def _report_health(app: faust.App, input_topic: str, health: Health) -> None:
    """Readiness follows the assignment of input partitions; liveness follows an event-loop beat."""

    @app.on_partitions_assigned.connect
    async def assigned(_sender: object, assigned: set, **_kwargs: object) -> None:
        health.partitions_assigned(frozenset(tp.partition for tp in assigned if tp.topic == input_topic))

    @app.on_partitions_revoked.connect
    async def revoked(_sender: object, revoked: set, **_kwargs: object) -> None:
        health.partitions_assigned(health.assigned - {tp.partition for tp in revoked if tp.topic == input_topic})

    @app.timer(interval=1.0)
    async def beat() -> None:
        health.beat()
