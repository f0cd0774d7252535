"""The pipeline tokenizes the next take in one thread while the model thread pads and decodes this one."""

import random
import threading
import uuid
from collections import Counter

import pytest

import model.prompt
from app.tools.samples import load_item_names
from model.enricher import Enricher
from model.generation import BatchGenerator
from model.loader import ModelSpec, load_model
from schemas.taxonomy import load_taxonomy

pytestmark = pytest.mark.model

ROUNDS = 2000


def test_counting_tokens_while_another_thread_pads_a_batch_never_fails(default_model):
    generator = BatchGenerator(load_model(ModelSpec(base_path=default_model.base, adapter_path=default_model.adapter)))
    rng = random.Random(5)
    names = load_item_names()
    batches = [rng.sample(names, rng.randint(2, 12)) for _ in range(ROUNDS)]
    failures: list[BaseException] = []

    def count_forever(stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                generator.count_tokens(rng.sample(names, 8))
            except Exception as error:  # collected: the assertion below reports them
                failures.append(error)

    stop = threading.Event()
    counter = threading.Thread(target=count_forever, args=(stop,))
    counter.start()
    try:
        for batch in batches:
            try:
                generator.encode_padded(batch)
            except Exception as error:
                failures.append(error)
    finally:
        stop.set()
        counter.join()
    assert not failures, f"{len(failures)} tokenizer calls failed, first: {failures[0]!r}"


def test_an_item_name_is_cleaned_once_though_its_tokens_are_counted_and_it_is_generated(default_model, monkeypatch):
    generator = BatchGenerator(load_model(ModelSpec(base_path=default_model.base, adapter_path=default_model.adapter)))
    cleaned: Counter[str] = Counter()
    clean = model.prompt.clean_raw_name

    def counting(raw_name: str) -> str:
        cleaned[raw_name] += 1
        return clean(raw_name)

    monkeypatch.setattr(model.prompt, "clean_raw_name", counting)
    # Names never seen before in this process, as in a fresh take: the planner counts, then the model generates.
    names = [f"{name} {uuid.uuid4().hex[:6]}" for name in random.Random(3).sample(load_item_names(), 6)]
    generator.count_tokens(names)
    Enricher(generator, load_taxonomy()).enrich(names)
    assert {name: cleaned[name] for name in names} == {name: 1 for name in names}
