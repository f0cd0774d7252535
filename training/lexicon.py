"""Build the model's lexicon (model/lexicon.py) from labelled training examples (pure, no torch).

    lexicon = build_lexicon(training_examples(read_rows()), shipped_brands())

Only training examples go in: the gold split never reaches a lexicon (the caller passes
``training.labels.training_examples``, which refuses gold rows). Brand aliases are the spans of the
strings that print the labelled brand: verbatim, transliterated, cut word by word (`сочн дол` for
Сочная Долина) or one typo away (rapidfuzz); the receipt-parser brand lists (MIT, training/data) add
brands the labels lack. Every alias carries how often it meant its brand in the training strings.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from rapidfuzz import fuzz

from model.lexicon import Lexicon, brand_key, brand_word_flags, spans, tokens
from training.examples import LabeledExample
from training.scoring import fold, head_noun

BRAND_LISTS_DIR = Path(__file__).resolve().parent / "data" / "receipt-parser-benchmark"
BRAND_LISTS = ("brands_ru.csv", "brands_en.csv")
# A word implies a head noun it does not print (`хейнекен` → пиво) when it did so at least twice and in at
# least a quarter of the training strings that hold it, or when that noun headed the labels of at least 70% of
# them, printed or not (`доширак` → лапша). 0.6 / 0.7 / 0.8 gave validation products of 87.9 / 88.5 / 87.5%
# (86.7% with the first rule alone).
IMPLIED_MIN_COUNT = 2
IMPLIED_MIN_SHARE = 0.25
IMPLIED_MOST_SHARE = 0.7
IMPLIED_PER_WORD = 3
# Fuzzy aliases: a span of 5+ letters within this rapidfuzz ratio of the brand (one typo in a short brand).
FUZZY_MIN_LETTERS = 5
FUZZY_MIN_RATIO = 85.0
# An alias that meant its brand in fewer than this share of 3+ strings holding it is a common word, not an alias.
ALIAS_MIN_SHARE = 0.2


def shipped_brands() -> list[str]:
    names = []
    for name in BRAND_LISTS:
        with (BRAND_LISTS_DIR / name).open(encoding="utf-8") as source:
            names.extend(row["brand"].strip() for row in csv.DictReader(source) if row["brand"].strip())
    return names


def _cut_word_by_word(printed: Sequence[str], brand_words: Sequence[str]) -> bool:
    """``printed`` opens to ``brand_words`` word by word: each printed word starts its brand word (3+ letters)."""
    return len(printed) == len(brand_words) and all(
        b.startswith(p) and (len(p) >= 3 or p == b) for p, b in zip(printed, brand_words)
    )


def brand_aliases(raw_name: str, brand: str) -> list[str]:
    """The spans of ``raw_name`` that print ``brand`` (as brand keys, model/lexicon.py)."""
    target = brand_key(brand)
    if not target:
        return []
    brand_words = [brand_key(w) for w in tokens(brand)]
    words = tokens(raw_name)
    found = []
    for start, end in spans(words):
        printed = words[start:end]
        key = brand_key(" ".join(printed))
        if not key:
            continue
        if (
            key == target
            or _cut_word_by_word([brand_key(w) for w in printed], brand_words)
            or (len(key) >= FUZZY_MIN_LETTERS and fuzz.ratio(key, target) >= FUZZY_MIN_RATIO)
        ):
            found.append(key)
    return found


def _head(product: str) -> str:
    return fold(head_noun(product))


def build_lexicon(examples: Sequence[LabeledExample], extra_brands: Iterable[str] = ()) -> Lexicon:
    head_nouns = tuple(sorted({_head(e.product) for e in examples} - {""}))
    plain = Lexicon(head_nouns=head_nouns)

    # Words that imply a head noun they do not print: in the strings that do not print their label's head noun
    # (`хейнекен` → пиво, `т/б` → бумага), or in most of the strings that hold them, printed or not (`доширак` →
    # лапша, `балтика` → пиво: the labels there mostly print the head noun too, so the first count misses them).
    word_count: Counter[str] = Counter()
    unprinted: defaultdict[str, Counter[str]] = defaultdict(Counter)
    labelled: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for example in examples:
        words = {word for word in tokens(example.raw_name) if not word.isdigit()}
        word_count.update(words)
        head = _head(example.product)
        if not head:
            continue
        printed = head in plain.head_candidates(example.raw_name)
        for word in words - {head}:
            labelled[word][head] += 1
            if not printed:
                unprinted[word][head] += 1
    implied_heads = {}
    for word in labelled:
        heads = [h for h, n in unprinted[word].most_common(IMPLIED_PER_WORD) if n >= IMPLIED_MIN_COUNT and n / word_count[word] >= IMPLIED_MIN_SHARE]
        heads += [h for h, n in labelled[word].most_common(1) if n >= IMPLIED_MIN_COUNT and n / word_count[word] >= IMPLIED_MOST_SHARE and h not in heads]
        if heads:
            implied_heads[word] = tuple(heads)
    with_implied = Lexicon(head_nouns=head_nouns, implied_heads=implied_heads)

    # How often each candidate was the head noun, and the words' categories.
    offered: Counter[str] = Counter()
    chosen: Counter[str] = Counter()
    feature_offered: Counter[str] = Counter()
    feature_chosen: Counter[str] = Counter()
    category_counts: Counter[str] = Counter()
    word_categories: defaultdict[str, Counter[str]] = defaultdict(Counter)
    head_categories: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for example in examples:
        head = _head(example.product)
        for candidate, feature in with_implied.head_candidates(example.raw_name).items():
            offered[candidate] += 1
            chosen[candidate] += candidate == head
            feature_offered[feature] += 1
            feature_chosen[feature] += candidate == head
        category_counts[example.category] += 1
        if head:
            head_categories[head][example.category] += 1
        for word in set(tokens(example.raw_name)):
            if len(word) >= 3 and not word.isdigit():
                word_categories[word][example.category] += 1

    # How often each printed word, and each kind of word, was part of the item's brand.
    word_printed: Counter[str] = Counter()
    word_in_brand: Counter[str] = Counter()
    feature_printed: Counter[str] = Counter()
    feature_in_brand: Counter[str] = Counter()
    for example in examples:
        for word, feature, in_brand in brand_word_flags(example.raw_name, example.brand):
            word_printed[word] += 1
            word_in_brand[word] += in_brand
            feature_printed[feature] += 1
            feature_in_brand[feature] += in_brand

    # Brand aliases with their canonical spelling: the labels' most common spelling of the brand.
    spellings: defaultdict[str, Counter[str]] = defaultdict(Counter)
    alias_brand: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for example in examples:
        if example.brand:
            spellings[brand_key(example.brand)][example.brand] += 1
            for alias in brand_aliases(example.raw_name, example.brand):
                alias_brand[alias][brand_key(example.brand)] += 1
    for name in extra_brands:
        key = brand_key(name)
        if len(key) >= 3 and key not in spellings:
            spellings[key][name if any(c.isupper() for c in name) else name.title()] += 1
        if len(key) >= 3:
            alias_brand[key][key] += 1
    canonical = {key: counts.most_common(1)[0][0] for key, counts in spellings.items()}
    alias_target = {alias: brands.most_common(1)[0][0] for alias, brands in alias_brand.items()}

    hits: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for example in examples:
        words = tokens(example.raw_name)
        label = brand_key(example.brand or "")
        for alias in {brand_key(" ".join(words[s:e])) for s, e in spans(words)} & alias_target.keys():
            seen[alias] += 1
            hits[alias] += alias_target[alias] == label
    brands = {
        alias: (canonical[target], hits[alias], seen[alias])
        for alias, target in alias_target.items()
        if not (seen[alias] >= 3 and hits[alias] / seen[alias] < ALIAS_MIN_SHARE)
    }
    return Lexicon(
        head_nouns=head_nouns,
        head_prior={c: (chosen[c], n) for c, n in offered.items()},
        feature_prior={f: (feature_chosen[f], n) for f, n in feature_offered.items()},
        implied_heads=with_implied.implied_heads,
        category_counts=dict(category_counts),
        word_categories={w: dict(c) for w, c in word_categories.items()},
        head_categories={h: dict(c) for h, c in head_categories.items()},
        brands=brands,
        brand_word_prior={w: (word_in_brand[w], n) for w, n in word_printed.items()},
        brand_feature_prior={f: (feature_in_brand[f], n) for f, n in feature_printed.items()},
    )
