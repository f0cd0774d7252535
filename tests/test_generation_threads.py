"""The pipeline tokenizes the next take in one thread while the model thread pads and decodes this one."""

import random
import threading

import pytest

from app.tools.samples import load_item_names
from model.generation import BatchGenerator
from model.loader import ModelSpec, load_model

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
