"""Serving options of the real default model: a LoRA adapter merged at load answers as the unmerged one."""

import random

import pytest

from app.tools.samples import load_item_names
from model.enricher import Enricher
from model.generation import BatchGenerator
from model.loader import ModelSpec, load_model
from schemas.taxonomy import load_taxonomy

pytestmark = pytest.mark.model


def _answers(spec: ModelSpec, names: list[str]):
    loaded = load_model(spec)
    enricher = Enricher(BatchGenerator(loaded), load_taxonomy())
    return loaded, [answer for start in range(0, len(names), 16) for answer in enricher.enrich(names[start : start + 16])]


def test_a_merged_adapter_gives_the_unmerged_models_answers_with_no_lora_layers_left(default_model):
    names = random.Random(11).sample(load_item_names(), 48)
    unmerged, expected = _answers(ModelSpec(base_path=default_model.base, adapter_path=default_model.adapter), names)
    merged, answers = _answers(
        ModelSpec(base_path=default_model.base, adapter_path=default_model.adapter, merge_adapter=True), names
    )
    assert merged.merged and not unmerged.merged
    assert not any("lora" in name for name, _ in merged.model.named_modules())
    assert any("lora" in name for name, _ in unmerged.model.named_modules())
    assert merged.identity == unmerged.identity and merged.max_new_tokens == unmerged.max_new_tokens
    # float32 on CPU: merging changes rounding only; greedy answers came out identical (48/48) here.
    same = sum(a == b for a, b in zip(answers, expected))
    assert same >= len(names) - 1, f"{same}/{len(names)} answers agree"


def test_merging_refuses_a_4bit_base_and_a_missing_adapter(default_model):
    with pytest.raises(ValueError, match="4-bit"):
        load_model(ModelSpec(base_path=default_model.base, adapter_path=default_model.adapter, merge_adapter=True, quantize_4bit=True))
    with pytest.raises(ValueError, match="needs an adapter"):
        load_model(ModelSpec(base_path=default_model.base, adapter_path=None, merge_adapter=True))
