"""Log-linear scoring shared by the lexicon's priors and rankers (pure: no torch)."""

from __future__ import annotations

import math
from collections.abc import Mapping


def weighted(weights: Mapping[str, float], options: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Each option's score: the weighted sum of its features (a feature without a weight counts 0)."""
    return {option: sum(weights.get(name, 0.0) * value for name, value in x.items()) for option, x in options.items()}


def log_normalised(scores: Mapping[str, float]) -> dict[str, float]:
    """The scores as log-probabilities over their keys (a log-softmax); empty for no scores."""
    if not scores:
        return {}
    top = max(scores.values())
    norm = top + math.log(sum(math.exp(s - top) for s in scores.values()))
    return {key: score - norm for key, score in scores.items()}
