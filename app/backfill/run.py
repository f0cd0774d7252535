"""``receipt-enricher backfill``: replay a range of the input topic through the live pipeline, bounded and resumable.

The range and its semantics are defined in app/backfill/plan.py. Delivery is the worker's
(app/stages/delivery.py): a take is published and every broker ack awaited, and only then are its offsets
committed, to the job's own consumer group (the live group is never touched). Resume: before the first
record is read, the plan (start and end of every partition, the job's fingerprint) is committed as
offset metadata of that group; a later run in the same group reads it back, refuses a different job,
skips finished partitions and continues the others from their committed offset to the stored end.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from confluent_kafka import Consumer, ConsumerGroupState, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from app.backfill.plan import (
    BackfillRefused,
    BackfillRequest,
    BackfillSummary,
    JobSpec,
    PartitionRange,
    Resume,
    Throttle,
    Watermarks,
    encode_metadata,
    plan_by_offsets,
    plan_by_time,
    resume_from,
)
from app.settings import Settings
from app.kafka.overrides_reader import start_overrides
from app.stages.pipeline import InMessage, Pipeline
from schemas.taxonomy import load_taxonomy

log = logging.getLogger(__name__)

_POLL_TIMEOUT_S = 1.0
_REPORT_EVERY_S = 30.0
_COORDINATOR_BUSY = (
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
)


class BackfillFailed(RuntimeError):
    """The broker reported an error mid-job; what was committed stays committed, rerun to resume."""


def run_backfill(settings: Settings, request: BackfillRequest) -> BackfillSummary:
    """Plan (or resume) the job, refuse what is unsafe before the model loads, then replay the range."""
    started = time.monotonic()
    spec = request.spec
    throttle = Throttle(request.max_receipts_per_s)
    consumer = Consumer(
        {
            **settings.consumer_config(request.group),
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # End-of-partition events tell the job a partition is done even when its last offsets are
            # transaction markers, which are never delivered as messages.
            "enable.partition.eof": True,
            "auto.offset.reset": "error",
        }
    )
    try:
        partitions = _partitions(consumer, spec.input_topic)
        for topic in (spec.output_topic, spec.dlq_topic):
            _partitions(consumer, topic, hint="create it first (e.g. with the input topic's partition count)")
        _check_group_idle(AdminClient(settings.admin_config()), request.group)
        watermarks = {
            p: consumer.get_watermark_offsets(TopicPartition(spec.input_topic, p), timeout=30) for p in partitions
        }
        fingerprint = spec.fingerprint()
        resume = resume_from(
            fingerprint, _committed(consumer, spec.input_topic, partitions), lambda: _plan(consumer, spec, watermarks)
        )
        if not resume.resumed:
            _commit(consumer, spec.input_topic, fingerprint, resume.plan, {p: r.start for p, r in resume.plan.items()})
        summary = BackfillSummary(
            job=request.job,
            group=request.group,
            output_topic=spec.output_topic,
            partitions=len(resume.plan),
            finished_before=sorted(resume.finished) if resume.resumed else [],
        )
        log.info(
            "backfill_planned job=%s group=%s resumed=%s records_to_read=%d partitions_todo=%s partitions_finished=%s",
            request.job,
            request.group,
            resume.resumed,
            sum(r.size for r in resume.todo.values()),
            ",".join(map(str, sorted(resume.todo))) or "-",
            ",".join(map(str, sorted(resume.finished))) or "-",
        )
        for partition, scope in sorted(resume.todo.items()):
            log.info("partition_todo partition=%d from=%d end=%d", partition, scope.start, scope.end)
        if resume.todo:
            # imports torch: only a job with work to do pays for it
            from app.worker import build_pipeline, freeze_loaded_heap

            if settings.torch_threads:
                import torch

                torch.set_num_threads(settings.torch_threads)
            # A replay answers like the live worker: active overrides first, so history reflects them.
            overrides, reader = start_overrides(settings, load_taxonomy())
            try:
                pipeline = build_pipeline(
                    settings.model_copy(
                        update={"output_topic": spec.output_topic, "dlq_topic": spec.dlq_topic, "group_id": request.group}
                    ),
                    overrides=overrides,
                )
                freeze_loaded_heap()
                try:
                    job = _Replay(
                        consumer, pipeline, spec, fingerprint, resume, throttle, settings.take_max_events, summary
                    )
                    asyncio.run(job.run(request.progress))
                finally:
                    pipeline.close()
            finally:
                reader.stop()
        summary.duration_s = time.monotonic() - started
        log.info("%s", summary.line())
        return summary
    finally:
        consumer.close()


def _partitions(consumer: Consumer, topic: str, hint: str = "check ENRICHER_INPUT_TOPIC") -> list[int]:
    metadata = consumer.list_topics(topic, timeout=30).topics.get(topic)
    if metadata is None or metadata.error is not None:
        reason = metadata.error.str() if metadata is not None and metadata.error else "unknown"
        raise BackfillRefused(f"topic {topic} does not exist ({reason}); {hint}")
    return sorted(metadata.partitions)


def _check_group_idle(admin: AdminClient, group: str, timeout_s: float = 60.0) -> None:
    """Refuse a group with members. A second run of the same job is not one: its consumer is assigned,
    not subscribed, so it never joins; one run at a time is the operator's (or the Job's) part."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            description = admin.describe_consumer_groups([group], request_timeout=30)[group].result(timeout=60)
            break
        except KafkaException as error:
            code = error.args[0].code()
            if code == KafkaError.GROUP_ID_NOT_FOUND:
                return
            # A coordinator still loading (a broker just started or moved) answers again within seconds.
            if (error.args[0].retriable() or code in _COORDINATOR_BUSY) and time.monotonic() < deadline:
                time.sleep(1.0)
                continue
            raise BackfillFailed(f"cannot describe consumer group {group}: {error.args[0].str()}") from None
    if description.members or description.state not in (ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD):
        raise BackfillRefused(
            f"group {group} is in use ({description.state.name.lower()}, {len(description.members)} member(s)): "
            "a subscribed consumer such as the live worker; stop it first, or choose another --group"
        )


def _committed(consumer: Consumer, topic: str, partitions: list[int]) -> dict[int, tuple[int, str | None]]:
    answers = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=30)
    committed = {}
    for answer in answers:
        if answer.error is not None:
            raise BackfillFailed(f"reading the group's committed offsets failed: {answer.error.str()}")
        if answer.offset >= 0:
            committed[answer.partition] = (answer.offset, answer.metadata)
    return committed


def _plan(consumer: Consumer, spec: JobSpec, watermarks: Watermarks) -> dict[int, PartitionRange]:
    if spec.window is None:
        assert spec.from_offsets is not None
        return plan_by_offsets(watermarks, spec.from_offsets, spec.to_offsets)
    end_ms = spec.window.to_ms + spec.window.late_ms
    return plan_by_time(
        watermarks,
        _offsets_for_time(consumer, spec.input_topic, list(watermarks), spec.window.from_ms),
        _offsets_for_time(consumer, spec.input_topic, list(watermarks), end_ms),
    )


def _offsets_for_time(consumer: Consumer, topic: str, partitions: list[int], ms: int) -> dict[int, int | None]:
    answers = consumer.offsets_for_times([TopicPartition(topic, p, ms) for p in partitions], timeout=30)
    found: dict[int, int | None] = {}
    for answer in answers:
        if answer.error is not None:
            raise BackfillFailed(f"ListOffsets by time failed on {topic}/{answer.partition}: {answer.error.str()}")
        found[answer.partition] = answer.offset if answer.offset >= 0 else None  # -1: nothing stamped that late
    return found


def _commit(
    consumer: Consumer, topic: str, fingerprint: str, plan: Mapping[int, PartitionRange], positions: Mapping[int, int]
) -> None:
    offsets = [
        TopicPartition(topic, p, offset, metadata=encode_metadata(fingerprint, plan[p]))
        for p, offset in positions.items()
    ]
    for answer in consumer.commit(offsets=offsets, asynchronous=False) or []:
        if answer.error is not None:
            raise BackfillFailed(f"commit of {topic}/{answer.partition}@{answer.offset} failed: {answer.error.str()}")


class _Replay:
    """The read → process → commit loop; stops after the current take on SIGTERM/SIGINT."""

    def __init__(
        self,
        consumer: Consumer,
        pipeline: Pipeline,
        spec: JobSpec,
        fingerprint: str,
        resume: Resume,
        throttle: Throttle,
        take_max_events: int,
        summary: BackfillSummary,
    ) -> None:
        self._consumer = consumer
        self._pipeline = pipeline
        self._spec = spec
        self._fingerprint = fingerprint
        self._plan = resume.plan
        self._remaining = {p: r.end for p, r in resume.todo.items()}
        self._positions = {p: r.start for p, r in resume.todo.items()}
        self._total = sum(r.size for r in resume.todo.values())
        self._throttle = throttle
        self._take_size = throttle.take_size(take_max_events)
        self._summary = summary
        self._stop = asyncio.Event()
        # consume() blocks; it runs here so the pipeline's own threads and the signal handler keep going.
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-consumer")

    async def run(self, show_progress: bool) -> None:
        from tqdm import tqdm

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, sig)
        topic = self._spec.input_topic
        self._consumer.assign([TopicPartition(topic, p, offset) for p, offset in self._positions.items()])
        started = last_report = time.monotonic()
        self._throttle.start()
        processed = 0
        with tqdm(total=self._total, unit="rec", disable=not show_progress, mininterval=1.0, dynamic_ncols=True) as bar:
            try:
                while self._remaining and not self._stop.is_set():
                    messages = await loop.run_in_executor(
                        self._io, self._consumer.consume, self._take_size, _POLL_TIMEOUT_S
                    )
                    before = dict(self._positions)
                    take = self._select(messages)
                    if take:
                        result = await self._pipeline.process(take)
                        self._summary.receipts += result.receipts
                        self._summary.items += result.items
                        self._summary.dead_letters += result.dead_letters
                        processed += len(take)
                    moved = {p: o for p, o in self._positions.items() if o != before.get(p)}
                    if moved:
                        # Only now, after every output of the take is acknowledged (pipeline.process returned).
                        _commit(self._consumer, topic, self._fingerprint, self._plan, moved)
                        bar.update(sum(o - before[p] for p, o in moved.items()))
                    self._finish_partitions()
                    elapsed = max(time.monotonic() - started, 1e-6)
                    bar.set_postfix(
                        items_per_s=f"{self._summary.items / elapsed:.1f}",
                        dlq=self._summary.dead_letters,
                        refresh=False,
                    )
                    if not show_progress and time.monotonic() - last_report >= _REPORT_EVERY_S:
                        last_report = time.monotonic()
                        self._report(bar.n, elapsed)
                    delay = self._throttle.delay_s(processed)
                    if delay:
                        try:
                            await asyncio.wait_for(self._stop.wait(), timeout=delay)
                        except TimeoutError:
                            pass
            finally:
                self._io.shutdown(wait=True)
        self._summary.interrupted = bool(self._remaining)

    def _report(self, read: int, elapsed: float) -> None:
        """The progress bar's content as a log line, for a job without a terminal (a Kubernetes Job)."""
        rate = read / elapsed
        eta = f"{(self._total - read) / rate:.0f}" if rate > 0 else "-"
        log.info(
            "backfill_progress read=%d of=%d receipts=%d items_per_s=%.1f dead_letters=%d eta_s=%s",
            read,
            self._total,
            self._summary.receipts,
            self._summary.items / elapsed,
            self._summary.dead_letters,
            eta,
        )

    def _request_stop(self, sig: int) -> None:
        log.warning("backfill_stopping signal=%s after=current_take", signal.Signals(sig).name)
        self._stop.set()

    def _select(self, messages: list[Message]) -> list[InMessage]:
        """The messages of the take inside the job; moves each partition's position past what it read."""
        take = []
        for message in messages:
            error = message.error()
            partition = message.partition()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    # Everything up to the current high watermark, which is at or past the job's end, was read.
                    if partition in self._remaining:
                        self._positions[partition] = self._remaining[partition]
                    continue
                if error.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
                    raise BackfillFailed(
                        f"{self._spec.input_topic}/{partition}: records of the job were deleted (retention) before "
                        f"it read them ({error.str()}); only what is still in the log can be replayed"
                    )
                raise BackfillFailed(f"consuming {self._spec.input_topic}/{partition} failed: {error.str()}")
            end = self._remaining.get(partition)
            if end is None or message.offset() >= end:
                continue  # past the job's end: the live worker's records, not the job's
            self._positions[partition] = message.offset() + 1
            _kind, timestamp_ms = message.timestamp()
            if self._spec.window is not None and not self._spec.window.contains(timestamp_ms):
                self._summary.out_of_window += 1
                continue
            take.append(
                InMessage(
                    topic=message.topic(),
                    partition=partition,
                    offset=message.offset(),
                    timestamp_ms=timestamp_ms,
                    key=message.key(),
                    value=message.value(),
                )
            )
        return take

    def _finish_partitions(self) -> None:
        done = [p for p, end in self._remaining.items() if self._positions[p] >= end]
        if done:
            self._consumer.incremental_unassign([TopicPartition(self._spec.input_topic, p) for p in done])
            for partition in done:
                del self._remaining[partition]
                log.info("partition_finished partition=%d end=%d", partition, self._plan[partition].end)
