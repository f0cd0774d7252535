"""Scores for enrichment answers: pure functions, no torch.

Two scorings:
- exact, per field, on our own labeled data (product, brand, category; macro-F1 over categories;
  character similarity of normalized names as difflib's ratio; share of answers that parsed);
- the receipt-parser benchmark's rule, +1 right and +0.5 partly right, so our numbers stand next to
  the published ones. "Partly right" here: product — one head noun is a prefix of the other or they
  share a 4-letter stem (``йогурт``/``биойогурт`` is not partial, ``сок``/``сок яблочный`` is right
  because the head noun matches); brand — one contains the other after folding case, quotes and
  script (``Nescafe``/``НЕСКАФЕ``); category — no partial credit.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from model.grounding import to_cyrillic


def fold(text: str | None) -> str:
    text = (text or "").lower().replace("ё", "е")
    text = re.sub(r"[\"'«»`.,!]", "", text)
    return " ".join(text.split())


def fold_brand(brand: str | None) -> str:
    folded = fold(brand)
    if folded in ("", "-"):
        return ""
    return fold(to_cyrillic(folded)) if re.search(r"[a-z]", folded) else folded


def head_noun(product: str | None) -> str:
    words = fold(product).split()
    return words[0] if words else ""


def product_points(predicted: str | None, gold: str) -> float:
    p, g = head_noun(predicted), head_noun(gold)
    if not p or not g:
        return 0.0
    if p == g:
        return 1.0
    if p.startswith(g) or g.startswith(p) or p[:4] == g[:4]:
        return 0.5
    return 0.0


def brand_points(predicted: str | None, gold: str | None) -> float:
    p, g = fold_brand(predicted), fold_brand(gold)
    if p == g:
        return 1.0
    if p and g and (p in g or g in p):
        return 0.5
    return 0.0


def macro_f1(predicted: Sequence[str], gold: Sequence[str]) -> float:
    labels = set(gold) | set(predicted)
    if not labels:
        return 0.0
    scores = []
    for label in labels:
        tp = sum(p == g == label for p, g in zip(predicted, gold))
        fp = sum(p == label != g for p, g in zip(predicted, gold))
        fn = sum(g == label != p for p, g in zip(predicted, gold))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


def name_similarity(predicted: str, gold: str) -> float:
    return difflib.SequenceMatcher(None, fold(predicted), fold(gold)).ratio()


@dataclass(frozen=True)
class Prediction:
    normalized_name: str
    product: str | None
    brand: str | None
    category: str
    parsed: bool


@dataclass(frozen=True)
class Gold:
    normalized_name: str | None
    product: str
    brand: str | None
    category: str


def exact_scores(predictions: Sequence[Prediction], golds: Sequence[Gold]) -> dict[str, float]:
    n = max(1, len(golds))
    return {
        "items": len(golds),
        "parsed": sum(p.parsed for p in predictions) / n,
        "product": sum(fold(p.product) == fold(g.product) for p, g in zip(predictions, golds)) / n,
        "brand": sum(fold_brand(p.brand) == fold_brand(g.brand) for p, g in zip(predictions, golds)) / n,
        "category": sum(p.category == g.category for p, g in zip(predictions, golds)) / n,
        "category_macro_f1": macro_f1([p.category for p in predictions], [g.category for g in golds]),
        "name_similarity": sum(name_similarity(p.normalized_name, g.normalized_name or "") for p, g in zip(predictions, golds)) / n,
    }


def benchmark_scores(predictions: Sequence[Prediction], golds: Sequence[Gold]) -> dict[str, float]:
    """receipt-parser's rule (+1 right, +0.5 partly right); categories already in the benchmark's classes."""
    n = max(1, len(golds))
    return {
        "items": len(golds),
        "product": sum(product_points(p.product, g.product) for p, g in zip(predictions, golds)) / n,
        "brand": sum(brand_points(p.brand, g.brand) for p, g in zip(predictions, golds)) / n,
        "category": sum(fold(p.category) == fold(g.category) for p, g in zip(predictions, golds)) / n,
    }


def worst_confusions(predicted: Sequence[str], gold: Sequence[str], top: int = 10) -> list[tuple[str, str, int]]:
    pairs = Counter((g, p) for p, g in zip(predicted, gold) if p != g)
    return [(g, p, count) for (g, p), count in pairs.most_common(top)]
