"""Fit the head-noun ranker's weights (model/head_ranker.py) on labelled training items (torch).

A conditional logit: for each training item whose labelled head noun is among its candidates, the
softmax over the candidates' weighted features should put it first. Each item's own count is left
out of the lexicon's word records while it is scored, or the fit would learn that a word's record
is always right. Full-batch Adam from zero weights with a fixed thread count: the same examples give
the same weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from model.head_ranker import candidate_features
from model.lexicon import Lexicon
from training.examples import LabeledExample
from training.scoring import fold, head_noun

STEPS = 400
LEARNING_RATE = 0.05
# Chosen on the validation split (2026-12-07): 1e-3 and 1e-4 gave the same top-1 (84.3% / 83.9%).
L2 = 1e-3


def fit_head_weights(lexicon: Lexicon, examples: Sequence[LabeledExample]) -> dict[str, float]:
    items = []
    for example in examples:
        head = fold(head_noun(example.product))
        features = candidate_features(lexicon, example.raw_name, leave_out=head)
        if head in features and len(features) > 1:
            items.append((list(features.values()), list(features).index(head)))
    if not items:
        return {}
    names = sorted({name for candidates, _ in items for x in candidates for name in x})
    column = {name: i for i, name in enumerate(names)}
    widest = max(len(candidates) for candidates, _ in items)
    features = torch.zeros(len(items), widest, len(names))
    padding = torch.full((len(items), widest), float("-inf"))
    for row, (candidates, _) in enumerate(items):
        padding[row, : len(candidates)] = 0.0
        for slot, x in enumerate(candidates):
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


def with_head_ranker(lexicon: Lexicon, examples: Sequence[LabeledExample]) -> Lexicon:
    """``lexicon`` with head-noun ranker weights fitted on ``examples`` (the items it was built from)."""
    return dataclasses.replace(lexicon, head_weights=fit_head_weights(lexicon, examples))
