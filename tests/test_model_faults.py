"""A model fault on one batch (exception, out of memory, timeout) never stops the stream.

The batch is split and retried; an item that still fails goes out with status ``model_error``; every
failed call is counted by kind. The real default model answers everything that does not fail; the
only fake is the wrapper that injects the fault.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pytest
import torch

from app.stages.enrichment import enrich_all
from model.enricher import Enricher
from model.generation import BatchGenerator
from model.generator import GenerationTimeout, ScoredAnswer
from model.loader import ModelSpec, load_model
from model.prompt import build_prompt
from schemas.events import ItemStatus
from schemas.taxonomy import load_taxonomy

pytestmark = pytest.mark.model

TAXONOMY = load_taxonomy()
NORMAL = ["СОК ФРУКТ САД АПЕЛЬС 1,93Л", "КОФЕ ЗЕРН LAVAZZA ORO 1КГ", "БЗМЖ КЕФИР САВУШК 1% 0,9КГ"]
POISON = "ЧАЙ ХОЛ LIPTON ЗЕЛ 1Л"


@pytest.fixture(scope="module")
def loaded(default_model):
    return load_model(ModelSpec(base_path=default_model.base, adapter_path=default_model.adapter))


@pytest.fixture(scope="module")
def alone(loaded) -> dict[str, object]:
    """Each item's answer from the real model when it is the only item of its batch."""
    enricher = Enricher(BatchGenerator(loaded), TAXONOMY)
    return {text: enricher.enrich([text])[0] for text in [*NORMAL, POISON]}


class FaultInjector:
    """Wraps the real generator and raises ``fault(prompts)`` instead of generating when it is not None."""

    def __init__(self, real: BatchGenerator, fault: Callable[[Sequence[str]], BaseException | None]) -> None:
        self._real = real
        self._fault = fault
        self.calls: list[int] = []

    def generate(self, prompts: Sequence[str]) -> list[str]:
        return [answer if isinstance(answer, str) else answer.text for answer in self.generate_scored(prompts)]

    def generate_scored(self, prompts: Sequence[str]) -> list[ScoredAnswer | str]:
        self.calls.append(len(prompts))
        error = self._fault(prompts)
        if error is not None:
            raise error
        return self._real.generate_scored(prompts)


def _poisoned(prompts: Sequence[str]) -> bool:
    return build_prompt(POISON) in prompts


def test_out_of_memory_on_large_batches_is_split_until_it_fits_and_every_item_gets_its_real_answer(loaded, alone):
    texts = [*NORMAL, POISON]
    oom = FaultInjector(
        BatchGenerator(loaded),
        lambda prompts: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB") if len(prompts) > 2 else None,
    )
    outcome = enrich_all([texts], Enricher(oom, TAXONOMY).enrich, TAXONOMY)

    assert outcome.answers == {text: alone[text] for text in texts}
    assert outcome.failed_items == 0
    assert outcome.failed_calls_by_kind == {"out_of_memory": 1}
    assert oom.calls == [4, 2, 2]


@pytest.mark.parametrize("error", [RuntimeError("CUDA error: device-side assert triggered"), ValueError("bad token id")])
def test_an_error_that_follows_one_item_fails_only_that_item_with_model_error_and_is_counted(loaded, alone, error):
    texts = [*NORMAL, POISON]
    faulty = FaultInjector(BatchGenerator(loaded), lambda prompts: error if _poisoned(prompts) else None)
    outcome = enrich_all([texts], Enricher(faulty, TAXONOMY).enrich, TAXONOMY)

    assert outcome.answers[POISON].status is ItemStatus.MODEL_ERROR
    assert outcome.answers[POISON].category == TAXONOMY.fallback
    assert {text: outcome.answers[text] for text in NORMAL} == {text: alone[text] for text in NORMAL}
    assert outcome.failed_items == 1
    # 4 items → halves of 2 → the poisoned half split to 1: the poison fails at every level.
    assert outcome.failed_calls_by_kind == {"error": 3}


def test_generation_stops_at_its_deadline_and_raises_instead_of_returning_cut_answers(loaded):
    generator = BatchGenerator(loaded, max_time_s=1e-6)
    started = time.monotonic()
    with pytest.raises(GenerationTimeout, match="ENRICHER_MODEL_TIMEOUT_S"):
        generator.generate([build_prompt(text) for text in NORMAL])
    # One decoding step ran; a run to the answer budget takes many. Loose bound, just "not forever".
    assert time.monotonic() - started < 60


def test_a_slow_batch_is_stopped_at_the_deadline_split_and_only_the_slow_item_fails(loaded, alone):
    """The model slows down (3.5 s per decoding step) whenever the poisoned item is in the batch.

    The 10 s deadline cuts such a batch after three steps; the halves without the poison answer
    normally, so only the poison ends as ``model_error``. The model thread is free afterwards: the
    call returns, and the same generator answers the next batch.
    """
    slow = threading.Event()

    def slow_step(_module, _args):
        if slow.is_set():
            time.sleep(3.5)

    generator = BatchGenerator(loaded, max_time_s=10)

    def mark_slow(prompts: Sequence[str]) -> None:
        if _poisoned(prompts):
            slow.set()
        else:
            slow.clear()

    # The embedding runs once per decoding step whatever wraps the model (PEFT calls the base's forward).
    hook = loaded.model.get_input_embeddings().register_forward_pre_hook(slow_step)
    try:
        injector = FaultInjector(generator, mark_slow)
        outcome = enrich_all([[*NORMAL, POISON]], Enricher(injector, TAXONOMY).enrich, TAXONOMY)
    finally:
        hook.remove()
        slow.clear()

    assert outcome.answers[POISON].status is ItemStatus.MODEL_ERROR
    assert {text: outcome.answers[text] for text in NORMAL} == {text: alone[text] for text in NORMAL}
    assert outcome.failed_calls_by_kind == {"timeout": 3}
    assert outcome.failed_items == 1
    assert Enricher(generator, TAXONOMY).enrich([POISON]) == [alone[POISON]]
