"""The stages of one take: prepare (validate, plan against the cache) → enrich (the model) → publish.

In which order takes go through them and when their messages are acked is app/stages/delivery.py's,
written there once as a numbered list. The stages are separate methods so takes can overlap: ``prepare``
of take N+1 and the broker wait of take N-1 run while the model thread runs ``enrich`` of take N.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from app.stages.assembler import encode_transaction
from app.stages.confidence_gate import ConfidenceThresholds, gate_answers
from app.stages.batcher import BatchLimits, padded_tokens
from app.stages.cache import AnswerCache
from app.stages.dead_letter import dead_letter
from app.stages.delivery import OutRecord, ProducerRounds, RecordRejected, RecordSink
from app.stages.enrichment import AnswerPlan, EnrichFn, EnrichmentOutcome, plan_answers, run_plan
from app.stages.model_watch import ModelWatch
from app.stages.overrides import OverridesView
from app.stages.validation import InvalidEvent, decode_event
from model.parser import ParsedAnswer
from schemas.events import ItemSource, ItemStatus, ModelIdentity, ReceiptEvent
from schemas.taxonomy import Taxonomy

log = logging.getLogger(__name__)


class TakeMetrics(Protocol):
    """What the pipeline reports as a take goes through (app/ops/metrics.py's Metrics; NO_METRICS when nothing listens)."""

    def take_started(self, items: int) -> None: ...

    def dead_letter(self, kind: str) -> None: ...

    def planned_batch(self, items: int, padded_tokens: int) -> None: ...

    def take_published(
        self,
        *,
        input_topic: str,
        timestamps_ms: Iterable[int | None],
        texts: Sequence[str],
        answers: Mapping[str, ParsedAnswer],
        sources: Mapping[str, ItemSource],
        generated: int,
        enriched: int,
        dead_letters: int,
        published_at: float,
    ) -> None: ...


class _NoMetrics:
    """Reports nothing: for tools, benchmarks and tests that do not look at metrics."""

    def take_started(self, items: int) -> None:
        pass

    def dead_letter(self, kind: str) -> None:
        pass

    def planned_batch(self, items: int, padded_tokens: int) -> None:
        pass

    def take_published(self, **_take: object) -> None:
        pass


NO_METRICS: TakeMetrics = _NoMetrics()


class DeadLetterRefused(RuntimeError):
    """Even the dead-letter topic refused a record: the take cannot be acked; check the DLQ topic's limits."""

    def __init__(self, refusal: Exception) -> None:
        super().__init__(f"the dead-letter topic refused a record, nothing of this take is acked: {refusal}")


@dataclass(frozen=True, slots=True)
class InMessage:
    """What the pipeline needs of a consumed Kafka message, independent of the client library."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Topics:
    output: str
    dlq: str


@dataclass(frozen=True, slots=True)
class PreparedTake:
    """A take after the pre-model work: its dead letters are decided and its model work is planned."""

    started_at: datetime
    valid: list[tuple[InMessage, ReceiptEvent]]
    dead_letters: list[tuple[InMessage, OutRecord]]
    texts: list[str]  # the name of every line item, in receipt order
    plan: AnswerPlan

    @property
    def items(self) -> int:
        return len(self.texts)


@dataclass(frozen=True, slots=True)
class TakeResult:
    receipts: int
    items: int
    dead_letters: int
    outcome: EnrichmentOutcome


class Pipeline:
    """Its one job: turn a take of input messages into output records the broker has acknowledged.

    Three stages (``prepare``, ``enrich``, ``publish``) that app/stages/delivery.py runs in its order; the
    pipeline owns the threads they run in (the model's, and one preparing the next take) and the producer
    rounds. The agent, a backfill and the benchmark workers drive it the same way.
    """

    def __init__(
        self,
        *,
        enrich: EnrichFn,
        count_tokens: Callable[[Sequence[str]], list[int]],
        limits: BatchLimits,
        taxonomy: Taxonomy,
        identity: ModelIdentity,
        sink: RecordSink,
        topics: Topics,
        model_stuck_s: float,
        cache: AnswerCache | None = None,
        thresholds: ConfidenceThresholds = ConfidenceThresholds(),
        overrides: OverridesView | None = None,
        metrics: TakeMetrics = NO_METRICS,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        # Watched: a call that outruns model_stuck_s makes the worker not live (app/stages/model_watch.py).
        self.model_watch = ModelWatch(model_stuck_s)
        self._enrich = self.model_watch.watched(enrich)
        self._count_tokens = count_tokens
        self._limits = limits
        self._taxonomy = taxonomy
        self._identity = identity
        self._rounds = ProducerRounds(sink)
        self._topics = topics
        self._cache = cache
        self._thresholds = thresholds
        self._overrides = overrides
        self._metrics = metrics
        self._on_close = on_close
        # The model gets one thread of its own: the event loop keeps heartbeats and fetches going.
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        # The next take's decoding, cache lookup (a Redis round trip) and tokenizing run here,
        # beside the model thread, so they neither block the event loop nor wait for the model.
        self._prepare_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare")

    async def process(self, messages: Sequence[InMessage]) -> TakeResult:
        """One take through every stage, without overlap (tools and tests; the agent overlaps them)."""
        prepared = await self.prepare(messages)
        return await self.publish(prepared, await self.enrich(prepared))

    async def prepare(self, messages: Sequence[InMessage]) -> PreparedTake:
        return await asyncio.get_running_loop().run_in_executor(self._prepare_thread, self._prepare, messages)

    def _prepare(self, messages: Sequence[InMessage]) -> PreparedTake:
        now = datetime.now(UTC)
        valid: list[tuple[InMessage, ReceiptEvent]] = []
        dead_letters: list[tuple[InMessage, OutRecord]] = []
        for message in messages:
            try:
                valid.append((message, decode_event(message.value)))
            except InvalidEvent as error:
                log.info("dead_letter kind=%s partition=%d offset=%d", error.kind, message.partition, message.offset)
                dead_letters.append((message, self._dead_letter(message, error.kind, error.message, now)))
        # The item names go to the model as they are: the model cleans each once, when it builds its prompt.
        texts = [item.name for _, event in valid for item in event.receipt.items]
        plan = plan_answers(texts, self._cache, self._count_tokens, self._limits, self._overrides)
        self._metrics.take_started(len(texts))
        return PreparedTake(started_at=now, valid=valid, dead_letters=dead_letters, texts=texts, plan=plan)

    async def enrich(self, prepared: PreparedTake) -> EnrichmentOutcome:
        outcome = await self._run_model(prepared)
        outcome.answers = gate_answers(outcome.answers, self._thresholds, self._taxonomy)
        return outcome

    def publish(self, prepared: PreparedTake, outcome: EnrichmentOutcome) -> Coroutine[Any, Any, TakeResult]:
        """Hand the take's records to the producer now; await the result for their acknowledgement.

        The hand-over happens in this call, not when the result is awaited (delivery step 3).
        """
        outputs = list(prepared.dead_letters)
        enriched_at = datetime.now(UTC)
        output, answers, sources, identity = self._topics.output, outcome.answers, outcome.sources, self._identity
        for message, event in prepared.valid:
            value = encode_transaction(event, answers, identity, enriched_at, sources)
            outputs.append((message, OutRecord(output, message.key, value)))
        return self._delivered(prepared, outcome, outputs, self._rounds.hand_over([record for _, record in outputs]))

    async def _delivered(
        self,
        prepared: PreparedTake,
        outcome: EnrichmentOutcome,
        outputs: list[tuple[InMessage, OutRecord]],
        delivery: Awaitable[list[RecordRejected]],
    ) -> TakeResult:
        rejected = await delivery
        if rejected:
            await self._dead_letter_refused(outputs, rejected, prepared.started_at)
        self._record_take(prepared, outcome, rejected)
        return TakeResult(
            receipts=len(prepared.valid), items=prepared.items, dead_letters=len(prepared.dead_letters), outcome=outcome
        )

    def _record_take(self, prepared: PreparedTake, outcome: EnrichmentOutcome, rejected: list[RecordRejected]) -> None:
        # A refused record was replaced by a dead letter, and that one was acknowledged (else we raised).
        refused_transactions = sum(1 for r in rejected if r.record.topic == self._topics.output)
        messages = [message for message, _ in prepared.dead_letters] + [message for message, _ in prepared.valid]
        for batch in prepared.plan.batches:
            self._metrics.planned_batch(len(batch.texts), padded_tokens(batch.prompt_tokens, self._limits.answer_tokens))
        self._metrics.take_published(
            input_topic=messages[0].topic if messages else "",
            timestamps_ms=[message.timestamp_ms for message in messages],
            texts=prepared.texts,
            answers=outcome.answers,
            sources=outcome.sources,
            generated=sum(
                1
                for text in set(prepared.plan.aliases.values())
                if outcome.sources[text] is ItemSource.MODEL and outcome.answers[text].status is not ItemStatus.MODEL_ERROR
            ),
            enriched=len(prepared.valid) - refused_transactions,
            dead_letters=len(prepared.dead_letters) + refused_transactions,
            published_at=time.time(),
        )

    async def _dead_letter_refused(
        self, outputs: list[tuple[InMessage, OutRecord]], rejected: list[RecordRejected], now: datetime
    ) -> None:
        """Records the broker refused for good go to the DLQ; if even that is refused (a dead letter
        too large for the DLQ topic), the letter goes without the original bytes, which stay
        findable at their source offset until retention removes them."""
        refusals = {id(r.record): r for r in rejected}
        sources = {id(record): message for message, record in outputs}
        letters = []
        for record_id, refusal in refusals.items():
            message = sources[record_id]
            if refusal.record.topic == self._topics.dlq:
                reason = f"original dropped from the dead letter, the DLQ topic refused it: {refusal}"
                letters.append(self._dead_letter(message, "dead_letter_too_large", reason, now, with_original=False))
            else:
                letters.append(self._dead_letter(message, "publish_rejected", str(refusal), now))
        still_rejected = await self._rounds.deliver(letters)
        if still_rejected:
            raise DeadLetterRefused(still_rejected[0])

    async def _run_model(self, prepared: PreparedTake) -> EnrichmentOutcome:
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self._model_thread, run_plan, prepared.plan, self._cache, self._enrich, self._taxonomy)
        watch, reported = self.model_watch, False
        # A take is many model calls; each ends at its own deadline (model/generation.py). A call that does
        # not is a forward pass that hangs: only a restart frees the thread, so say so once, and the
        # liveness probe (reading the same watch) turns red.
        check_every_s = min(1.0, watch.stuck_after_s / 4)
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(work), timeout=check_every_s)
            except TimeoutError:
                if not reported and watch.stuck() is not None:
                    reported = True
                    log.error(
                        "model_stuck busy_s=%.0f bound_s=%g planned_items=%d action=liveness_fails",
                        watch.busy_s(),
                        watch.stuck_after_s,
                        prepared.plan.planned_items,
                    )

    def _dead_letter(
        self, message: InMessage, kind: str, reason: str, now: datetime, *, with_original: bool = True
    ) -> OutRecord:
        self._metrics.dead_letter(kind)
        letter = dead_letter(
            kind=kind,
            message=reason,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            timestamp_ms=message.timestamp_ms,
            key=message.key,
            value=message.value if with_original else None,
            failed_at=now,
        )
        return OutRecord(self._topics.dlq, message.key, letter.model_dump_json().encode())

    def close(self) -> None:
        self._prepare_thread.shutdown(wait=True)
        self._model_thread.shutdown(wait=True)
        if self._on_close is not None:
            self._on_close()
        self._rounds.close()
