"""Run planned batches through the model; a failing batch is split and retried, never dropped.

Runs inside the model thread: no asyncio and no Kafka here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from app.stages.batcher import BatchLimits, ModelBatch, plan_batches
from app.stages.cache import AnswerCache
from app.stages.overrides import ItemOverride, OverridesView
from model.enricher import ModelBatchFailed
from model.item_key import item_key
from model.parser import ParsedAnswer
from model.prompt import clean_raw_name
from schemas.events import ItemSource, ItemStatus
from schemas.taxonomy import Taxonomy

log = logging.getLogger(__name__)

EnrichFn = Callable[[Sequence[str]], list[ParsedAnswer]]


@dataclass
class EnrichmentOutcome:
    answers: dict[str, ParsedAnswer] = field(default_factory=dict)
    model_calls: int = 0
    failed_calls: int = 0
    # Failed model calls by ModelBatchFailed.kind (model.enricher.FAILURE_KINDS): what an error counter records.
    failed_calls_by_kind: dict[str, int] = field(default_factory=dict)
    failed_items: int = 0
    cached_items: int = 0
    # Where each text's answer came from (text → source), for the output's ``source`` and the metrics.
    sources: dict[str, ItemSource] = field(default_factory=dict)


def enrich_all(batches: Sequence[Sequence[str]], enrich: EnrichFn, taxonomy: Taxonomy) -> EnrichmentOutcome:
    """Answer every text of every batch.

    A batch that raises ModelBatchFailed is halved and each half retried (an out-of-memory batch
    usually fits once smaller); a single item that still fails gets fallback fields and
    status ``model_error``, so the receipt is still published and the failure is visible.
    """
    outcome = EnrichmentOutcome()
    pending: list[Sequence[str]] = [batch for batch in batches if batch]
    while pending:
        batch = pending.pop()
        outcome.model_calls += 1
        try:
            answers = enrich(batch)
        except ModelBatchFailed as error:
            outcome.failed_calls += 1
            outcome.failed_calls_by_kind[error.kind] = outcome.failed_calls_by_kind.get(error.kind, 0) + 1
            log.warning("model_batch_failed size=%d kind=%s reason=%s", len(batch), error.kind, error.reason)
            if len(batch) > 1:
                middle = len(batch) // 2
                pending.extend([batch[middle:], batch[:middle]])
            else:
                outcome.failed_items += 1
                outcome.answers[batch[0]] = fallback_answer(batch[0], taxonomy)
            continue
        outcome.answers.update(zip(batch, answers))
    return outcome


@dataclass(frozen=True, slots=True)
class AnswerPlan:
    """What one take asks of the model, decided before the model is free (so it can be prefetched)."""

    cached: dict[str, ParsedAnswer]
    batches: list[ModelBatch]
    # Every distinct text of the take → the text that stands for its item key and is generated.
    aliases: dict[str, str]
    # Texts whose active override sets only some fields: laid over the cached or generated answer.
    overridden: dict[str, ItemOverride] = field(default_factory=dict)
    # Texts whose override sets every field: neither the cache nor the model is asked.
    overridden_whole: dict[str, ParsedAnswer] = field(default_factory=dict)

    @property
    def planned_items(self) -> int:
        return sum(len(batch.texts) for batch in self.batches)


def plan_answers(
    texts: Sequence[str],
    cache: AnswerCache | None,
    count_tokens: Callable[[Sequence[str]], list[int]],
    limits: BatchLimits,
    overrides: OverridesView | None = None,
) -> AnswerPlan:
    """Deduplicate by item key; answer from active overrides first, then the cache; cut the rest into model batches."""
    representative: dict[str, str] = {}
    aliases: dict[str, str] = {}
    for text in dict.fromkeys(texts):
        aliases[text] = representative.setdefault(item_key(text), text)
    unique = list(representative.values())
    found = overrides.lookup(unique) if overrides is not None else {}
    whole = {text: override.answer() for text, override in found.items() if override.complete}
    unique = [text for text in unique if text not in whole]
    cached = cache.lookup(unique) if cache is not None else {}
    todo = [text for text in unique if text not in cached]
    return AnswerPlan(
        cached=cached,
        batches=plan_batches(todo, count_tokens(todo), limits),
        aliases=aliases,
        overridden={text: override for text, override in found.items() if not override.complete},
        overridden_whole=whole,
    )


def run_plan(plan: AnswerPlan, cache: AnswerCache | None, enrich: EnrichFn, taxonomy: Taxonomy) -> EnrichmentOutcome:
    """Generate what the plan left to the model, store it, and answer every text of the take.

    A plan made while the model was busy with the previous take may ask for texts that take has
    answered since; the local cache is asked again first, so they are not generated twice. Only the
    model's own answers are stored: overrides are laid over them afterwards, at every lookup.
    """
    batches: list[Sequence[str]] = [batch.texts for batch in plan.batches]
    late: dict[str, ParsedAnswer] = {}
    if cache is not None and batches:
        late = cache.lookup_recent([text for batch in batches for text in batch])
        if late:
            batches = [[text for text in batch if text not in late] for batch in batches]
    outcome = enrich_all(batches, enrich, taxonomy)
    if cache is not None:
        cache.store(outcome.answers)
    answered = {**outcome.answers, **plan.cached, **late}
    sources = {text: ItemSource.MODEL for text in outcome.answers}
    sources.update({text: ItemSource.CACHE for text in [*plan.cached, *late]})
    for text, override in plan.overridden.items():
        answered[text] = override.over(answered[text])
        sources[text] = ItemSource.OVERRIDE
    answered.update(plan.overridden_whole)
    sources.update({text: ItemSource.OVERRIDE for text in plan.overridden_whole})
    outcome.answers = {text: answered[stand_in] for text, stand_in in plan.aliases.items()}
    outcome.sources = {text: sources[stand_in] for text, stand_in in plan.aliases.items()}
    outcome.cached_items = len(plan.cached) + len(late)
    return outcome


def answer_texts(
    texts: Sequence[str],
    cache: AnswerCache | None,
    count_tokens: Callable[[Sequence[str]], list[int]],
    limits: BatchLimits,
    enrich: EnrichFn,
    taxonomy: Taxonomy,
    overrides: OverridesView | None = None,
) -> EnrichmentOutcome:
    """Answer every distinct text once: from an override, the cache where known, else in planned model batches."""
    return run_plan(plan_answers(texts, cache, count_tokens, limits, overrides), cache, enrich, taxonomy)


def fallback_answer(raw_name: str, taxonomy: Taxonomy) -> ParsedAnswer:
    return ParsedAnswer(
        normalized_name=clean_raw_name(raw_name) or raw_name[:256],
        product=None,
        brand=None,
        category=taxonomy.fallback,
        status=ItemStatus.MODEL_ERROR,
    )
