"""One take of receipt messages, start to finish: validate → plan → enrich → assemble → publish.

Delivery order (the only place it is decided):
  1. every message of the take is turned into exactly one output record: an enriched
     transaction, or a dead letter when it is not a valid receipt;
  2. all records are produced and the broker's acknowledgement of each is awaited;
  3. only then does the agent ack the messages, and faust commits the highest contiguous acked
     offset per partition at its next commit.
A crash anywhere before step 3 leaves the offsets uncommitted: the take is redone (duplicates
possible, loss impossible). A record the broker refuses for good becomes a dead letter instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from app.assembler import assemble, model_text
from app.batcher import BatchLimits
from app.cache import AnswerCache
from app.dead_letter import dead_letter
from app.enrichment import EnrichFn, EnrichmentOutcome, answer_texts
from app.publisher import OutRecord, Publisher, RecordRejected
from app.validation import InvalidEvent, decode_event
from schemas.events import ModelIdentity, ReceiptEvent
from schemas.taxonomy import Taxonomy

log = logging.getLogger(__name__)


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
class TakeResult:
    receipts: int
    items: int
    dead_letters: int
    outcome: EnrichmentOutcome


class Pipeline:
    def __init__(
        self,
        *,
        enrich: EnrichFn,
        count_tokens: Callable[[Sequence[str]], list[int]],
        limits: BatchLimits,
        taxonomy: Taxonomy,
        identity: ModelIdentity,
        publisher: Publisher,
        topics: Topics,
        model_timeout_s: float,
        cache: AnswerCache | None = None,
    ) -> None:
        self._enrich = enrich
        self._count_tokens = count_tokens
        self._limits = limits
        self._taxonomy = taxonomy
        self._identity = identity
        self._publisher = publisher
        self._topics = topics
        self._model_timeout_s = model_timeout_s
        self._cache = cache
        # The model gets one thread of its own: the event loop keeps heartbeats and fetches going.
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    async def process(self, messages: Sequence[InMessage]) -> TakeResult:
        now = datetime.now(UTC)
        valid: list[tuple[InMessage, ReceiptEvent]] = []
        outputs: list[tuple[InMessage, OutRecord]] = []
        for message in messages:
            try:
                valid.append((message, decode_event(message.value)))
            except InvalidEvent as error:
                log.info("dead_letter kind=%s partition=%d offset=%d", error.kind, message.partition, message.offset)
                outputs.append((message, self._dead_letter(message, error.kind, error.message, now)))

        texts = [model_text(item.name) for _, event in valid for item in event.receipt.items]
        outcome = await self._run_model(texts)
        enriched_at = datetime.now(UTC)
        for message, event in valid:
            transaction = assemble(event, outcome.answers, self._identity, enriched_at)
            outputs.append((message, OutRecord(self._topics.output, message.key, transaction.model_dump_json().encode())))

        rejected = await self._publisher.publish([record for _, record in outputs])
        if rejected:
            await self._dead_letter_refused(outputs, rejected, now)
        return TakeResult(receipts=len(valid), items=len(texts), dead_letters=len(messages) - len(valid), outcome=outcome)

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
        still_rejected = await self._publisher.publish(letters)
        if still_rejected:
            raise DeadLetterRefused(still_rejected[0])

    async def _run_model(self, texts: list[str]) -> EnrichmentOutcome:
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self._model_thread, self._plan_and_enrich, texts)
        waited = 0.0
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(work), timeout=self._model_timeout_s)
            except TimeoutError:
                # A stuck GPU cannot be interrupted from here; say so loudly and let the liveness probe decide.
                waited += self._model_timeout_s
                log.error("model_slow waited_s=%.0f items=%d", waited, len(texts))

    def _plan_and_enrich(self, texts: list[str]) -> EnrichmentOutcome:
        return answer_texts(texts, self._cache, self._count_tokens, self._limits, self._enrich, self._taxonomy)

    def _dead_letter(
        self, message: InMessage, kind: str, reason: str, now: datetime, *, with_original: bool = True
    ) -> OutRecord:
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
        self._model_thread.shutdown(wait=True)
        self._publisher.close()
