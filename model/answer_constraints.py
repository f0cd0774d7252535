"""Constrained decoding of the answer: the product starts with a word the string prints, the category is
a taxonomy name.

A small model copies words imperfectly (`Домкрат гидравлический` came out as product `Домавр`) and can
write a category that is not in the taxonomy. Instead of repairing such answers afterwards, the decoder
is only allowed to write:
- as the product's first word: a word of the item string, its nominative (``колготок`` → ``колготки``),
  or a known head noun that a printed word abbreviates (``подгуз`` → ``подгузники``; the model's
  ``head_nouns.txt``, the head nouns of its training labels); the model chooses which, by its own
  probabilities, and writes the rest of the product freely;
- as the category: one of the taxonomy's names, then the end of the answer.
The model still decides everything; the constraint removes only the answers no reading of the string
could give. On the gold split (trial model, 2026-12-07) the gold head noun is among these candidates for
90% of items. Strings without a Cyrillic word leave the product free.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

import torch
from transformers import LogitsProcessor

from model.product_noun import nominative_head
from model.prompt import FIELD_SEPARATOR, PROMPT_PREFIX, PROMPT_SUFFIX

PRODUCT_FIELD = 1
CATEGORY_FIELD = 3
_WORD = re.compile(r"[а-яё]{2,}")
# An abbreviation opens to a head noun only from 3 letters on: `мол` → молоко, but `с` would allow everything.
_MIN_ABBREVIATION = 3


class _Trie:
    """Token sequences; ``next`` tells which tokens may follow a prefix and whether the prefix is complete."""

    def __init__(self, sequences: Iterable[Sequence[int]]) -> None:
        self._next: dict[tuple[int, ...], set[int]] = {}
        self._complete: set[tuple[int, ...]] = set()
        for sequence in sequences:
            sequence = tuple(sequence)
            if not sequence:
                continue
            self._complete.add(sequence)
            for end in range(len(sequence)):
                self._next.setdefault(sequence[:end], set()).add(sequence[end])

    def next(self, prefix: Sequence[int]) -> tuple[set[int], bool]:
        prefix = tuple(prefix)
        return self._next.get(prefix, set()), prefix in self._complete

    def __bool__(self) -> bool:
        return bool(self._complete)


def item_text(prompt: str) -> str:
    """The item string inside a serving prompt (model/prompt.py)."""
    start = prompt.find(PROMPT_PREFIX)
    end = prompt.rfind(PROMPT_SUFFIX)
    return prompt[start + len(PROMPT_PREFIX) : end] if start >= 0 and end > start else prompt


def head_candidates(item: str, head_nouns: Sequence[str]) -> set[str]:
    """Words the product may start with: printed words, their nominatives, head nouns they abbreviate.

    ``head_nouns`` must be sorted: the nouns a word opens to are one bisected range, not a scan of
    all ~2,000 nouns for every word of every row of every batch.
    """
    words = set(_WORD.findall(item.lower().replace("ё", "е")))
    candidates = set(words) | {nominative_head(w) for w in words}
    for word in words:
        if len(word) >= _MIN_ABBREVIATION:
            start = bisect.bisect_left(head_nouns, word)
            end = bisect.bisect_left(head_nouns, word + "\U0010ffff", start)
            candidates.update(head_nouns[start:end])
    return candidates


class AnswerGrammar:
    """What the constraint needs of one model, built once: separator tokens, the taxonomy's token
    sequences, the sorted head nouns, word encodings; ``processor`` makes the one batch's processor."""

    def __init__(self, tokenizer, category_names: Sequence[str], head_nouns: Sequence[str]) -> None:
        """``head_nouns`` sorted, as model/loader.py reads them."""
        self._tokenizer = tokenizer
        self.separators, self.stray = _separator_tokens(tokenizer)
        self.eos = tokenizer.eos_token_id
        self.categories = _Trie(self.encode(name.lower()) for name in category_names)
        self._head_nouns = tuple(head_nouns)

    # One grammar per loaded model, kept for the model's life: the cache holding it alive costs nothing.
    @lru_cache(maxsize=1 << 14)
    def encode(self, text: str) -> tuple[int, ...]:
        return tuple(self._tokenizer.encode(text, add_special_tokens=False))

    def processor(self, prompts: Sequence[str]) -> AnswerConstraints:
        """The processor for one batch; the caller holds the tokenizer (encoding new words)."""
        products = [
            _Trie(self.encode(word) for word in sorted(head_candidates(item_text(prompt), self._head_nouns)))
            for prompt in prompts
        ]
        return AnswerConstraints(self, products)


@lru_cache(maxsize=4)
def _separator_tokens(tokenizer) -> tuple[dict[int, int], list[int]]:
    """Tokens that end in the separator, with how many separators each holds (BPE merges `-##`, `##-##`,
    `%##`), and the tokens holding a `#` that do not end a separator (banned inside answers)."""
    separators: dict[int, int] = {}
    stray: list[int] = []
    for token in range(len(tokenizer)):
        text = tokenizer.decode([token])
        if FIELD_SEPARATOR in text and text.endswith(FIELD_SEPARATOR):
            separators[token] = text.count(FIELD_SEPARATOR)
        elif "#" in text:
            stray.append(token)
    if not separators:
        raise ValueError(f"the tokenizer has no token for the field separator {FIELD_SEPARATOR!r}")
    return separators, stray


class AnswerConstraints(LogitsProcessor):
    """A logits processor for one batch of serving prompts (greedy or sampled, left-padded)."""

    def __init__(self, grammar: AnswerGrammar, products: list[_Trie]) -> None:
        self._separators, self._stray, self._eos = grammar.separators, grammar.stray, grammar.eos
        self._categories = grammar.categories
        self._products = products
        self._prompt_length: int | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._prompt_length is None:
            self._prompt_length = input_ids.shape[1]
        generated = input_ids[:, self._prompt_length :].tolist()
        if self._stray:
            # A lone `#` could make a separator the field count below would not see.
            scores[:, self._stray] = float("-inf")
        for row, tokens in enumerate(generated):
            field, field_start = 0, 0
            for position, token in enumerate(tokens):
                if token in self._separators:
                    field += self._separators[token]
                    field_start = position + 1
            if field == PRODUCT_FIELD:
                trie, end_tokens = self._products[row], None
            elif field == CATEGORY_FIELD:
                trie, end_tokens = self._categories, {self._eos}
            else:
                continue
            if not trie:
                continue
            allowed, complete = trie.next(tokens[field_start:])
            if complete:
                if end_tokens is None:
                    continue  # the first word is written; the rest of the product is free
                allowed = allowed | end_tokens
            if not allowed:
                continue  # off the trie (cannot happen under this processor); never block a row
            keep = torch.tensor(sorted(allowed), device=scores.device)
            if torch.isinf(scores[row, keep]).all():
                continue  # every allowed token is already banned (the repetition guard): leave the row be
            masked = torch.full_like(scores[row], float("-inf"))
            masked[keep] = scores[row, keep]
            scores[row] = masked
        return scores
