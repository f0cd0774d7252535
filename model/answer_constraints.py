"""Constrained and lexicon-guided decoding of the answer: the product starts with a word the string
prints, the category is a taxonomy name, and what the labelled data knows weighs in.

A small model copies words imperfectly (`Домкрат гидравлический` came out as product `Домавр`) and can
write a category that is not in the taxonomy. Instead of repairing such answers afterwards, the decoder
is only allowed to write:
- as the product's first word: a word of the item string, its nominative (``колготок`` → ``колготки``),
  a known head noun that a printed word abbreviates (``подгуз`` → ``подгузники``), or one a printed word
  implies (``хейнекен`` → ``пиво``): model/lexicon.py, built from the training labels; the rest of the
  product is free;
- as the brand: "no brand" (``-``), or a span of up to ``MAX_BRAND_WORDS`` consecutive words the string
  prints, or the canonical spelling of a brand alias the string prints (model/lexicon.py). The model
  still decides whether there is a brand and where it is; it can no longer misspell it while copying
  (``PAMPERS`` came out as ``Pamamamam``, ``ПРОСТОКВ`` as ``Простоквоквашино``);
- as the category: one of the taxonomy's names, then the end of the answer.
Within those, the model's scores get log-priors added: ``PRODUCT_PRIOR_WEIGHT`` times the head-noun
ranker's (model/head_ranker.py), ``BRAND_PRIOR_WEIGHT`` times the brand ranker's over the spans and "no brand"
(model/brand_ranker.py), ``CATEGORY_PRIOR_WEIGHT`` times the naive-Bayes category prior of the string's
words and of the product's head noun the row wrote (model/lexicon.py). The bias is spread over a word's tokens (each token adds
the change in the best prior still reachable), so a multi-token word gets its full prior once.
The weights were chosen on the validation split (docs/model.md); the gold split never tuned anything.
Strings without a Cyrillic word and without an implied head noun leave the product free.

The two free fields have a length budget: the name at most ``NAME_TOKEN_MARGIN`` tokens longer than the
item, the product at most ``PRODUCT_TOKEN_MARGIN`` longer, both short enough that the fields after them still
fit in ``max_new_tokens``; at the budget the field ends. On strings it cannot read the small model copied
the name in a loop (`зисманло карманом карманом …`) until ``max_new_tokens`` and the answer never reached its
product: 8 of the 1,304 gold items were ``malformed_answer``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
from transformers import LogitsProcessor

from model.brand_ranker import brand_log_priors
from model.head_ranker import head_log_priors, likeliest_head
from model.lexicon import Lexicon, brand_key
from model.prompt import FIELD_SEPARATOR, NO_BRAND, PROMPT_PREFIX, PROMPT_SUFFIX

PRODUCT_FIELD = 1
BRAND_FIELD = 2
CATEGORY_FIELD = 3
# Chosen on the validation split of the default model (2026-12-07). Product, with the head-noun ranker:
# 3 / 6 / 10 / 20 / 100 → 82.0 / 82.2 / 83.0 / 83.0 / 82.8%; category: 0 → 67%, 1.5 → 78.1%.
PRODUCT_PRIOR_WEIGHT = 10.0
CATEGORY_PRIOR_WEIGHT = 1.5
# The brand's: 0 / 1 / 2 / 3 / 5 gave validation brand 67.6 / 68.9 / 70.1 / 69.7 / 70.7% (noisy past 2; 5 ran slower).
BRAND_PRIOR_WEIGHT = 2.0
# Tokens a training answer's field had beyond its item's (training/data, 12,428 answers): the name up to 17
# (capitals and opened abbreviations cost tokens: `йогурт питьевой растишка …` → `Йогурт питьевой Растишка …`),
# 1 answer past 16 and 5 past 15; the product up to 8.
NAME_TOKEN_MARGIN = 16
PRODUCT_TOKEN_MARGIN = 8
# Labelled brands of 4+ words are rare (`Аллея источников` is 2); a longer span is a product description.
MAX_BRAND_WORDS = 3


class _Trie:
    """Weighted token sequences; ``next`` tells which tokens may follow a prefix, the bias each gets, and
    whether the prefix is complete. A prefix's weight is the best weight of the sequences through it."""

    def __init__(self, sequences: Iterable[tuple[Sequence[int], float]]) -> None:
        self._next: dict[tuple[int, ...], set[int]] = {}
        self._complete: set[tuple[int, ...]] = set()
        self._best: dict[tuple[int, ...], float] = {}
        for sequence, weight in sequences:
            sequence = tuple(sequence)
            if not sequence:
                continue
            self._complete.add(sequence)
            for end in range(len(sequence) + 1):
                prefix = sequence[:end]
                self._best[prefix] = max(self._best.get(prefix, weight), weight)
                if end < len(sequence):
                    self._next.setdefault(prefix, set()).add(sequence[end])

    def next(self, prefix: Sequence[int]) -> tuple[set[int], bool]:
        prefix = tuple(prefix)
        return self._next.get(prefix, set()), prefix in self._complete

    def biases(self, prefix: Sequence[int], allowed: Iterable[int]) -> list[float]:
        """For each allowed token: how much the best reachable weight changes by taking it."""
        prefix = tuple(prefix)
        here = self._best.get(prefix, 0.0)
        return [self._best.get(prefix + (token,), here) - here for token in allowed]

    def __bool__(self) -> bool:
        return bool(self._complete)

    def longest(self) -> int:
        return max(map(len, self._complete), default=0)


def brand_choices(item: str, lexicon: Lexicon, head: str | None = None) -> tuple[dict[str, float], float]:
    """What the brand field may hold, with its log-prior (model/brand_ranker.py): the item's
    spans of up to ``MAX_BRAND_WORDS`` words and the canonical spelling of the known brand aliases among
    them, in the model's lower case; and the log-prior of "no brand"."""
    priors, none = brand_log_priors(lexicon, item, MAX_BRAND_WORDS, head)
    choices = dict(priors)
    for span, prior in priors.items():
        known = lexicon.brands.get(brand_key(span))
        if known is not None:
            canonical = known[0].lower()
            choices[canonical] = max(choices.get(canonical, prior), prior)
    return choices, none


def item_text(prompt: str) -> str:
    """The item string inside a serving prompt (model/prompt.py)."""
    start = prompt.find(PROMPT_PREFIX)
    end = prompt.rfind(PROMPT_SUFFIX)
    return prompt[start + len(PROMPT_PREFIX) : end] if start >= 0 and end > start else prompt


class AnswerGrammar:
    """What the constraint needs of one model, built once: separator tokens, the taxonomy's token
    sequences, the sorted head nouns, word encodings; ``processor`` makes the one batch's processor."""

    def __init__(
        self,
        tokenizer,
        categories: Mapping[str, str],
        lexicon: Lexicon,
        product_weight: float = PRODUCT_PRIOR_WEIGHT,
        category_weight: float = CATEGORY_PRIOR_WEIGHT,
        brand_weight: float = BRAND_PRIOR_WEIGHT,
        tokenizer_lock: threading.Lock | None = None,
    ) -> None:
        """``categories``: taxonomy id → name; ``tokenizer_lock``: the lock its other users hold (a fast
        tokenizer is not thread-safe, model/generation.py)."""
        self._tokenizer = tokenizer
        self._tokenizer_lock = tokenizer_lock or threading.Lock()
        self.separators, self.stray = _separator_tokens(tokenizer)
        self.word_ends = _word_end_tokens(tokenizer)
        self.brand_ends, self.no_brand = _brand_end_tokens(tokenizer)
        # The bare separator, which a field over its budget is made to write.
        self.separator = min(self.brand_ends)
        self.eos = tokenizer.eos_token_id
        self._categories = {category_id: self.encode(name.lower()) for category_id, name in categories.items()}
        self._longest_category = max(map(len, self._categories.values()))
        self._lexicon = lexicon
        self._product_weight = product_weight
        self._category_weight = category_weight
        self._brand_weight = brand_weight

    # One grammar per loaded model, kept for the model's life: the cache holding it alive costs nothing.
    @lru_cache(maxsize=1 << 14)
    def encode(self, text: str) -> tuple[int, ...]:
        return tuple(self._tokenizer.encode(text, add_special_tokens=False))

    def field_probabilities(self, tokens: Sequence[int], probabilities: Sequence[float]) -> tuple[float | None, float | None, float | None]:
        """From one row's generated tokens and the probability each had when chosen: the probability of
        the product's first word, of the brand field and of the category field (``None`` when absent)."""
        fields: dict[int, float] = {}
        field, first_word_done = 0, False
        for token, probability in zip(tokens, probabilities):
            if token in (self.eos, self._tokenizer.pad_token_id):
                if field == CATEGORY_FIELD:
                    fields[field] = fields.get(field, 1.0) * probability
                break
            if field == PRODUCT_FIELD and not first_word_done:
                if token in self.word_ends and PRODUCT_FIELD in fields:
                    first_word_done = True
                else:
                    fields[field] = fields.get(field, 1.0) * probability
            elif field in (BRAND_FIELD, CATEGORY_FIELD):
                # A separator token can hold the field's last characters (`-##`): it counts for the field it ends.
                fields[field] = fields.get(field, 1.0) * probability
            field += self.separators.get(token, 0)
        return fields.get(PRODUCT_FIELD), fields.get(BRAND_FIELD), fields.get(CATEGORY_FIELD)

    def processor(self, prompts: Sequence[str], max_new_tokens: int, guard: LogitsProcessor | None = None) -> AnswerConstraints:
        """The processor for one batch of answers of at most ``max_new_tokens``; the caller holds the tokenizer
        (encoding new words). ``guard``: the repetition guard (model/generation.py), applied here to every row
        except those the grammar pins."""
        products, brands, items, budgets = [], [], [], []
        for prompt in prompts:
            item = item_text(prompt)
            heads = head_log_priors(self._lexicon, item)
            products.append(_Trie((self.encode(word), self._product_weight * prior) for word, prior in sorted(heads.items())))
            choices, none = brand_choices(item, self._lexicon, likeliest_head(self._lexicon, item, heads))
            brands.append(
                _Trie(
                    [(self.encode(NO_BRAND), self._brand_weight * none)]
                    + [((token,), self._brand_weight * none) for token in self.no_brand]
                    + [(self.encode(brand), self._brand_weight * prior) for brand, prior in sorted(choices.items())]
                )
            )
            items.append(item)
            budgets.append(self._budget(item, brands[-1], max_new_tokens))
        return AnswerConstraints(self, products, brands, items, guard, budgets)

    def _budget(self, item: str, brands: _Trie, max_new_tokens: int) -> _Budget:
        """Where one row's free fields must end: the name's last position, and the product's length and last
        position, leaving room for a product's first word, the longest brand, the longest category and the seams."""
        length = len(self.encode(item))
        after_product = brands.longest() + self._longest_category + 3
        product_end = max_new_tokens - after_product
        return _Budget(
            name_end=max(1, min(length + NAME_TOKEN_MARGIN, product_end - PRODUCT_TOKEN_MARGIN)),
            product_length=length + PRODUCT_TOKEN_MARGIN,
            product_end=product_end,
        )

    def category_trie(self, item: str, product_tokens: Sequence[int]) -> _Trie:
        """The taxonomy's names, weighted by the prior of the string's words and of the product the row wrote."""
        with self._tokenizer_lock:
            product = self._tokenizer.decode(list(product_tokens), skip_special_tokens=True)
        words = product.split(FIELD_SEPARATOR, 1)[0].split()
        prior = self._lexicon.category_log_prior(item, words[0] if words else "")
        return _Trie((tokens, self._category_weight * prior.get(category_id, 0.0)) for category_id, tokens in self._categories.items())


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


@dataclass(frozen=True)
class _Budget:
    name_end: int
    product_length: int
    product_end: int


@lru_cache(maxsize=4)
def _brand_end_tokens(tokenizer) -> tuple[frozenset[int], frozenset[int]]:
    """The tokens that end a written brand (the bare separator) and those that say "no brand" and end the
    field in one (BPE merges ``-##``)."""
    ends, no_brand = set(), set()
    for token in _separator_tokens(tokenizer)[0]:
        text = tokenizer.decode([token])
        if text == FIELD_SEPARATOR:
            ends.add(token)
        elif text == NO_BRAND + FIELD_SEPARATOR:
            no_brand.add(token)
    return frozenset(ends), frozenset(no_brand)


@lru_cache(maxsize=4)
def _word_end_tokens(tokenizer) -> frozenset[int]:
    """Tokens that start with neither a letter nor a digit (a space, a hyphen, a separator): what may follow
    a complete first word. Without them the model glued letters to a right word (``дихлофослофа``)."""
    ends = set()
    for token in range(len(tokenizer)):
        text = tokenizer.decode([token])
        if text and not text[0].isalnum():
            ends.add(token)
    return frozenset(ends)


class AnswerConstraints(LogitsProcessor):
    """A logits processor for one batch of serving prompts (greedy or sampled, left-padded)."""

    def __init__(
        self,
        grammar: AnswerGrammar,
        products: list[_Trie],
        brands: list[_Trie],
        items: list[str],
        guard: LogitsProcessor | None,
        budgets: list[_Budget],
    ) -> None:
        self._grammar = grammar
        # Not applied where the grammar pins a row to its trie: there every sequence is finite, so nothing can
        # loop, and a brand that repeats the product (a medicine's name is both) is a repeated 6-gram the
        # guard would cut short (`тестогенон` → `тестоген`).
        self._guard = guard
        self._separators, self._stray, self._eos = grammar.separators, grammar.stray, grammar.eos
        self._word_ends = grammar.word_ends
        self._products = products
        self._brands = brands
        self._items = items
        self._budgets = budgets
        # A row's category trie is built when the row reaches its category, weighted by the product it wrote.
        self._categories: list[_Trie | None] = [None] * len(items)
        self._prompt_length: int | None = None
        # Per row, read incrementally (one new token per step): its tokens, the field it is in, where that
        # field started, and where each field started; a full rescan per step cost O(length²) per row.
        self._tokens: list[list[int]] = [[] for _ in items]
        self._field = [0] * len(items)
        self._field_start = [0] * len(items)
        self._starts: list[dict[int, int]] = [{} for _ in items]

    def _advance(self, input_ids: torch.LongTensor) -> None:
        if self._prompt_length is None:
            self._prompt_length = input_ids.shape[1]
        new = input_ids[:, self._prompt_length + len(self._tokens[0]) :].tolist() if self._tokens else []
        for row, tokens in enumerate(new):
            for token in tokens:
                self._tokens[row].append(token)
                if token in self._separators:
                    self._field[row] += self._separators[token]
                    self._field_start[row] = len(self._tokens[row])
                    self._starts[row].setdefault(self._field[row], self._field_start[row])

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self._advance(input_ids)
        out = self._guard(input_ids, scores) if self._guard is not None else scores
        if self._stray:
            # A lone `#` could make a separator the field count below would not see.
            out[:, self._stray] = float("-inf")
        for row, tokens in enumerate(self._tokens):
            field, field_start, starts = self._field[row], self._field_start[row], self._starts[row]
            if self._over_budget(row, field, len(tokens), field_start):
                out[row] = torch.full_like(scores[row], float("-inf"))
                out[row, self._grammar.separator] = 0.0
                continue
            if field == PRODUCT_FIELD:
                trie, end_tokens = self._products[row], self._word_ends
            elif field == BRAND_FIELD:
                trie, end_tokens = self._brands[row], self._grammar.brand_ends
            elif field == CATEGORY_FIELD:
                if self._categories[row] is None:
                    end = min((start for f, start in starts.items() if f > PRODUCT_FIELD), default=len(tokens))
                    product = tokens[starts.get(PRODUCT_FIELD, end) : end]
                    self._categories[row] = self._grammar.category_trie(self._items[row], product)
                trie, end_tokens = self._categories[row], {self._eos}
            else:
                continue
            if not trie:
                continue
            allowed, complete = trie.next(tokens[field_start:])
            if complete:
                # A complete first word may go on to a longer candidate or end; after the end the product is free.
                allowed = allowed | end_tokens
            if not allowed:
                continue  # off the trie: past the product's first word; never block a row (a brand never leaves it)
            ordered = sorted(allowed)
            keep = torch.tensor(ordered, device=scores.device)
            bias = torch.tensor(trie.biases(tokens[field_start:], ordered), device=scores.device, dtype=scores.dtype)
            masked = torch.full_like(scores[row], float("-inf"))
            masked[keep] = scores[row, keep] + bias
            out[row] = masked
        return out

    def _over_budget(self, row: int, field: int, position: int, field_start: int) -> bool:
        budget = self._budgets[row]
        if field == 0:
            return position >= budget.name_end
        if field == PRODUCT_FIELD and position > field_start:
            return position - field_start >= budget.product_length or position >= budget.product_end
        return False
