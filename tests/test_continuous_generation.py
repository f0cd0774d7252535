"""Continuous batching on the real default model: the static generator's answers, its deadline, its shutdown."""

import random

import pytest

from app.tools.samples import load_item_names
from model.continuous_generation import ContinuousGenerator
from model.generation import BatchGenerator
from model.generator import GenerationTimeout
from model.loader import ModelSpec, load_model
from model.prompt import build_prompt

pytestmark = [pytest.mark.model]


@pytest.fixture(scope="module")
def loaded(default_model):
    return load_model(ModelSpec(base_path=default_model.base, adapter_path=default_model.adapter))


@pytest.fixture(scope="module")
def prompts():
    return [build_prompt(name) for name in random.Random(7).sample(load_item_names(), 48)]


@pytest.fixture(scope="module")
def static_answers(loaded, prompts):
    # The continuous generator does not yet decode under the answer constraints (docs/model.md).
    generator = BatchGenerator(loaded, constrained=False)
    return [answer for start in range(0, len(prompts), 16) for answer in generator.generate(prompts[start : start + 16])]


def test_answers_equal_the_static_generators_on_every_item(loaded, prompts, static_answers):
    with ContinuousGenerator(loaded, max_concurrent=16) as generator:
        answers = generator.generate(prompts[:8]) + generator.generate(prompts[8:])
        assert generator._ngram.overflow_steps == 0
    mismatched = [(i, a, b) for i, (a, b) in enumerate(zip(answers, static_answers)) if a != b]
    assert len(answers) == len(static_answers) and not mismatched, mismatched[:3]


def test_a_passed_deadline_raises_and_the_same_manager_answers_the_next_call(loaded, prompts, static_answers):
    generator = ContinuousGenerator(loaded, max_time_s=0.005, max_concurrent=16)
    try:
        with pytest.raises(GenerationTimeout, match="still generating after 0.005 s"):
            generator.generate(prompts[:16])
        assert generator.is_running()
        # The deadline is fixed at construction; lifting it shows the cancelled requests left nothing behind
        # (no stale result is taken for this call's, no cache blocks held) on the same manager.
        generator._max_time_s = None
        assert generator.generate(prompts[16:24]) == static_answers[16:24]
    finally:
        generator.close()


def test_close_stops_the_manager_and_refuses_later_calls(loaded, prompts):
    generator = ContinuousGenerator(loaded)
    assert not generator.is_running()
    generator.generate(prompts[:2])
    manager = generator._manager
    assert manager.is_running()
    generator.close()
    assert not manager.is_running() and not generator.is_running()
    with pytest.raises(RuntimeError, match="closed"):
        generator.generate(prompts[:1])
    generator.close()
