"""Fit the lexicon's rankers on labelled training items (torch): the head noun's (model/head_ranker.py)
and the brand's (model/brand_ranker.py).

Both are conditional logits: for each training item whose label is among its options, the softmax over
the options' weighted features should put the label first. Each item's own counts are left out of the
lexicon's records while it is scored, or the fit would learn that a word's record is always right.
Full-batch Adam from zero weights with a fixed thread count: the same examples give the same weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from model.answer_constraints import MAX_BRAND_WORDS
from model.brand_ranker import NO_BRAND_OPTION, brand_options
from model.head_ranker import candidate_features
from model.lexicon import Lexicon, brand_key
from training.examples import LabeledExample
from training.scoring import fold, head_noun

STEPS = 400
LEARNING_RATE = 0.05
# Chosen on the validation split (2026-12-07): 1e-3 and 1e-4 gave the same head-noun top-1 (84.3% / 83.9%).
L2 = 1e-3

Options = list[dict[str, float]]


def fit_conditional_logit(items: Sequence[tuple[Options, int]]) -> dict[str, float]:
    """Weights per feature name such that ``softmax(options · weights)`` puts each item's chosen option first."""
    if not items:
        return {}
    names = sorted({name for options, _ in items for x in options for name in x})
    column = {name: i for i, name in enumerate(names)}
    widest = max(len(options) for options, _ in items)
    features = torch.zeros(len(items), widest, len(names))
    padding = torch.full((len(items), widest), float("-inf"))
    for row, (options, _) in enumerate(items):
        padding[row, : len(options)] = 0.0
        for slot, x in enumerate(options):
            for name, value in x.items():
                features[row, slot, column[name]] = value
    labels = torch.tensor([chosen for _, chosen in items])
    weights = torch.zeros(len(names), requires_grad=True)
    optimizer = torch.optim.Adam([weights], lr=LEARNING_RATE)
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(features @ weights + padding, labels) + L2 * (weights**2).sum()
        loss.backward()
        optimizer.step()
    return dict(zip(names, weights.detach().tolist()))


def fit_head_weights(lexicon: Lexicon, examples: Sequence[LabeledExample]) -> dict[str, float]:
    items = []
    for example in examples:
        head = fold(head_noun(example.product))
        features = candidate_features(lexicon, example.raw_name, leave_out=head)
        if head in features and len(features) > 1:
            items.append((list(features.values()), list(features).index(head)))
    return fit_conditional_logit(items)


def _labelled_option(lexicon: Lexicon, options: Sequence[str], brand: str | None) -> str | None:
    """The option that writes ``brand``: no brand, the span that prints it, or an alias of it."""
    if not brand:
        return NO_BRAND_OPTION
    label = brand_key(brand)
    for option in options:
        if option == NO_BRAND_OPTION:
            continue
        known = lexicon.brands.get(brand_key(option))
        if brand_key(option) == label or (known is not None and brand_key(known[0]) == label):
            return option
    return None


def fit_brand_weights(lexicon: Lexicon, examples: Sequence[LabeledExample]) -> dict[str, float]:
    items = []
    for example in examples:
        options = brand_options(lexicon, example.raw_name, MAX_BRAND_WORDS, leave_out=True, brand=example.brand)
        chosen = _labelled_option(lexicon, list(options), example.brand)
        if chosen is not None and len(options) > 1:
            items.append((list(options.values()), list(options).index(chosen)))
    return fit_conditional_logit(items)


def with_rankers(lexicon: Lexicon, examples: Sequence[LabeledExample]) -> Lexicon:
    """``lexicon`` with the head-noun and brand rankers fitted on ``examples`` (the items it was built from)."""
    heads = dataclasses.replace(lexicon, head_weights=fit_head_weights(lexicon, examples))
    # The brand ranker reads the head ranker's choice (a span holding the product's head noun is rarely the brand).
    return dataclasses.replace(heads, brand_weights=fit_brand_weights(heads, examples))
