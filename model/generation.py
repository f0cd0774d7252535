"""Batched greedy generation: one ``generate`` call per batch, left padding, stop when all rows end."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import torch
from transformers import LogitsProcessor, LogitsProcessorList, NoRepeatNGramLogitsProcessor, StoppingCriteria, StoppingCriteriaList

from model.answer_constraints import AnswerGrammar
from model.generator import GenerationTimeout, ScoredAnswer, prompts
from model.loader import LoadedModel
from schemas.taxonomy import load_taxonomy


class _Deadline(StoppingCriteria):
    """Stops generation between two decoding steps once the batch is past its time, and remembers it did.

    transformers' own ``max_time`` stops just as quietly but returns the cut answers as if complete.
    A single forward pass is never interrupted: the deadline can be overrun by one step.
    """

    def __init__(self, max_time_s: float) -> None:
        self._ends_at = time.monotonic() + max_time_s
        self.expired = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None, **kwargs) -> torch.BoolTensor:
        self.expired = self.expired or time.monotonic() > self._ends_at
        return torch.full((input_ids.shape[0],), self.expired, device=input_ids.device, dtype=torch.bool)


# The small default model loops on strings it cannot read (`ведьведьведь…` up to max_new_tokens). Forbidding a
# repeated 6-gram ends those rows. Measured 2026-12-01 on the default model (off → 6): answers that parse on
# 300 real dfc2021 items 87% → 96%; held-out product 82% → 84%, category 84% → 87%, brand 46% → 46%; the 45
# real benchmark items product 72% → 74%, category 71% → 76%; items/s up (looping rows no longer run to the
# token limit). n=3 cost held-out product (→ 66%); n=8 parsed fewer real items (94%). The n-gram must stay
# longer than what an answer legitimately repeats (the brand, in the name and in the brand field).
NO_REPEAT_NGRAM_SIZE = 6


class _ChosenProbability(LogitsProcessor):
    """Placed last among the processors: records, per step and row, the probability of the token greedy
    decoding then takes (the largest, after the constraints and priors)."""

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.steps.append(torch.softmax(scores.float(), dim=-1).max(dim=-1).values.cpu())
        return scores


class TokenizingGenerator:
    """Tokenizer access shared by the generators: token counting for the batcher and padded encoding."""

    def __init__(self, loaded: LoadedModel) -> None:
        self._tokenizer = loaded.tokenizer
        self._device = loaded.device
        self.max_new_tokens = loaded.max_new_tokens
        # A fast tokenizer is not thread-safe: padding mutates the shared Rust object, and the
        # pipeline counts the next take's tokens while the model thread pads this one's ("Already
        # borrowed" / "Unable to create tensor", transformers #47085; 16 of 2,000 padded calls here).
        self._tokenizer_lock = threading.Lock()

    def count_tokens(self, raw_names: Sequence[str]) -> list[int]:
        """Prompt tokens of each item as the model will see it (the Enricher's prompts, model/generator.py).

        The batcher's token budget and padding are about whole rows: counting only the item text
        left the fixed prompt out of the budget and overstated the padding share.
        """
        if not raw_names:
            return []
        with self._tokenizer_lock:
            encoded = self._tokenizer(prompts(raw_names), add_special_tokens=True)["input_ids"]
        return [len(ids) for ids in encoded]

    def count_answer_tokens(self, answers: Sequence[str]) -> list[int]:
        """Tokens of generated answers as decoded (no special tokens): the benchmark's answer padding."""
        if not answers:
            return []
        with self._tokenizer_lock:
            encoded = self._tokenizer(list(answers), add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def encode_padded(self, prompts: Sequence[str]):
        """Left-padded input tensors of one batch, on the model's device."""
        with self._tokenizer_lock:
            encoded = self._tokenizer(list(prompts), return_tensors="pt", padding=True)
        return encoded.to(self._device)


class BatchGenerator(TokenizingGenerator):
    def __init__(self, loaded: LoadedModel, max_time_s: float | None = None, constrained: bool = True) -> None:
        """``max_time_s`` bounds one ``generate`` call; past it the batch raises GenerationTimeout.

        ``constrained``: decode under model/answer_constraints.py (product from the string's words,
        category from the taxonomy); off only to measure what the constraint changes.
        """
        super().__init__(loaded)
        self._model = loaded.model
        self._grammar = (
            AnswerGrammar(
                self._tokenizer,
                {c.id: c.name for c in load_taxonomy().categories},
                loaded.lexicon,
                tokenizer_lock=self._tokenizer_lock,
            )
            if constrained
            else None
        )
        self._max_time_s = max_time_s
        self.no_repeat_ngram_size = NO_REPEAT_NGRAM_SIZE
        # generate() is not re-entrant on one model; the service calls from one thread, tools may not.
        self._lock = threading.Lock()

    def generate(self, prompts: Sequence[str]) -> list[str]:
        return [answer if isinstance(answer, str) else answer.text for answer in self.generate_scored(prompts)]

    def generate_scored(self, prompts: Sequence[str]) -> list[ScoredAnswer | str]:
        """Answers with the probabilities of their decisions (model/confidence.py); without the answer
        grammar (``constrained=False``) the fields cannot be told apart: plain answers, no confidence."""
        if not prompts:
            return []
        inputs = self.encode_padded(prompts)
        recorder = _ChosenProbability()
        with self._lock, torch.inference_mode():
            # Started inside the lock: time spent waiting for another caller is not this batch's fault.
            deadline = _Deadline(self._max_time_s) if self._max_time_s else None
            guard = NoRepeatNGramLogitsProcessor(self.no_repeat_ngram_size) if self.no_repeat_ngram_size else None
            with self._tokenizer_lock:
                # Under the grammar the guard is applied by the grammar's processor, outside the spans it pins.
                processors = LogitsProcessorList([self._grammar.processor(prompts, self.max_new_tokens, guard), recorder] if self._grammar else [])
            output = self._model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                num_beams=1,
                use_cache=True,
                no_repeat_ngram_size=0 if self._grammar else self.no_repeat_ngram_size,
                pad_token_id=self._tokenizer.pad_token_id,
                eos_token_id=self._tokenizer.eos_token_id,
                stopping_criteria=StoppingCriteriaList([deadline] if deadline else []),
                logits_processor=processors,
            )
        if deadline is not None and deadline.expired:
            raise GenerationTimeout(
                f"{len(prompts)} prompts still generating after {self._max_time_s:g} s "
                "(ENRICHER_MODEL_TIMEOUT_S); the batch was stopped and its answers discarded"
            )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        with self._tokenizer_lock:
            texts = self._tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        if self._grammar is None or not recorder.steps:
            return list(texts)
        probabilities = torch.stack(recorder.steps, dim=1).tolist()
        return [
            ScoredAnswer(text, *self._grammar.field_probabilities(tokens, row_probabilities))
            for text, tokens, row_probabilities in zip(texts, new_tokens.tolist(), probabilities)
        ]
