from collections.abc import Sequence

from app.stages.enrichment import enrich_all
from model.enricher import ModelBatchFailed
from model.parser import ParsedAnswer, parse_answer
from schemas.events import ItemStatus
from schemas.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy()


class OutOfMemoryAbove:
    """Stands in for the model (not under test here): fails like CUDA OOM on batches above a size."""

    def __init__(self, max_ok: int, poisoned: str | None = None) -> None:
        self.max_ok = max_ok
        self.poisoned = poisoned
        self.calls: list[int] = []

    def __call__(self, texts: Sequence[str]) -> list[ParsedAnswer]:
        self.calls.append(len(texts))
        if len(texts) > self.max_ok or self.poisoned in texts:
            raise ModelBatchFailed(len(texts), "CUDA out of memory")
        return [parse_answer(f"{t}##Товар##-##Другое", t, TAXONOMY) for t in texts]


def test_a_batch_failing_for_memory_is_split_and_every_item_still_enriched():
    texts = [f"item {i}" for i in range(10)]
    model = OutOfMemoryAbove(max_ok=3)
    outcome = enrich_all([texts], model, TAXONOMY)
    assert set(outcome.answers) == set(texts)
    assert all(a.status is ItemStatus.OK for a in outcome.answers.values())
    assert outcome.failed_items == 0
    assert outcome.failed_calls >= 1 and max(c for c in model.calls if c <= 3) <= 3


def test_an_item_that_always_fails_goes_out_with_model_error_status_and_others_succeed():
    texts = ["ok 1", "poison", "ok 2", "ok 3"]
    outcome = enrich_all([texts], OutOfMemoryAbove(max_ok=100, poisoned="poison"), TAXONOMY)
    assert outcome.answers["poison"].status is ItemStatus.MODEL_ERROR
    assert outcome.answers["poison"].category == TAXONOMY.fallback
    assert outcome.failed_items == 1
    assert all(outcome.answers[t].status is ItemStatus.OK for t in ("ok 1", "ok 2", "ok 3"))


def test_model_calls_are_counted_once_per_batch_when_nothing_fails():
    outcome = enrich_all([["a", "b"], ["c"]], OutOfMemoryAbove(max_ok=10), TAXONOMY)
    assert outcome.model_calls == 2 and outcome.failed_calls == 0


def test_duplicates_are_generated_once_and_repeats_come_from_the_cache():
    from app.stages.batcher import BatchLimits
    from app.stages.cache import AnswerCache, LruStore
    from app.stages.enrichment import answer_texts

    model = OutOfMemoryAbove(max_ok=100)
    cache = AnswerCache("v1", TAXONOMY, LruStore(100))
    limits = BatchLimits(max_items=8, max_tokens=10_000, answer_tokens=16)
    count = lambda texts: [len(t) for t in texts]  # noqa: E731
    first = answer_texts(["ХЛЕБ", "МОЛОКО", "ХЛЕБ", "ХЛЕБ"], cache, count, limits, model, TAXONOMY)
    assert model.calls == [2] and first.cached_items == 0
    assert set(first.answers) == {"ХЛЕБ", "МОЛОКО"}
    second = answer_texts(["ХЛЕБ", "СОК"], cache, count, limits, model, TAXONOMY)
    assert model.calls == [2, 1] and second.cached_items == 1
    assert set(second.answers) == {"ХЛЕБ", "СОК"}


def _count(texts):
    return [len(t) for t in texts]


def test_spellings_of_one_item_inside_a_take_are_generated_once_and_all_answered():
    from app.stages.batcher import BatchLimits
    from app.stages.enrichment import answer_texts

    model = OutOfMemoryAbove(max_ok=100)
    texts = ["СОК ЯБЛ 1Л", "сок  ябл 1л", "36572156371 СОК ЯБЛ 1Л 1.000 x 469.90", "ХЛЕБ", "ХЛЕБ"]
    outcome = answer_texts(texts, None, _count, BatchLimits(8, 10_000, 16), model, TAXONOMY)
    assert model.calls == [2]
    assert set(outcome.answers) == set(texts)
    assert outcome.answers["сок  ябл 1л"] == outcome.answers["СОК ЯБЛ 1Л"]


def test_a_take_planned_while_the_model_ran_the_previous_one_does_not_generate_its_answers_again():
    from app.stages.batcher import BatchLimits
    from app.stages.cache import AnswerCache, LruStore
    from app.stages.enrichment import plan_answers, run_plan

    model = OutOfMemoryAbove(max_ok=100)
    cache = AnswerCache("v1", TAXONOMY, LruStore(100))
    limits = BatchLimits(8, 10_000, 16)
    first = plan_answers(["ХЛЕБ", "МОЛОКО"], cache, _count, limits)
    second = plan_answers(["ХЛЕБ", "СОК"], cache, _count, limits)  # prefetched: the cache knows nothing yet
    assert second.planned_items == 2
    run_plan(first, cache, model, TAXONOMY)
    outcome = run_plan(second, cache, model, TAXONOMY)
    assert model.calls == [2, 1]  # only СОК is new to the model
    assert set(outcome.answers) == {"ХЛЕБ", "СОК"} and outcome.cached_items == 1
