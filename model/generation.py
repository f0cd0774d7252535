"""Batched greedy generation: one ``generate`` call per batch, left padding, stop when all rows end."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch

from model.loader import LoadedModel


class BatchGenerator:
    def __init__(self, loaded: LoadedModel) -> None:
        self._model = loaded.model
        self._tokenizer = loaded.tokenizer
        self._device = loaded.device
        self.max_new_tokens = loaded.max_new_tokens
        # generate() is not re-entrant on one model; the service calls from one thread, tools may not.
        self._lock = threading.Lock()

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self._tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        return [len(ids) for ids in encoded]

    def generate(self, prompts: Sequence[str]) -> list[str]:
        if not prompts:
            return []
        inputs = self._tokenizer(list(prompts), return_tensors="pt", padding=True).to(self._device)
        with self._lock, torch.inference_mode():
            output = self._model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                num_beams=1,
                use_cache=True,
                pad_token_id=self._tokenizer.pad_token_id,
                eos_token_id=self._tokenizer.eos_token_id,
            )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return self._tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
