"""Scores for enrichment answers: pure functions, no torch.

Scoring on our own labelled data follows the real-receipt rules (further below):
- brands are compared after folding case, ё/е, quotes, punctuation and spacing, and across scripts
  (Latin → Cyrillic register spelling, so ``Nescafe`` = ``НЕСКАФЕ``);
- category: taxonomy ids equal; macro-F1 is the unweighted mean of per-class F1 over every class that
  occurs in the gold labels or the predictions (a class the model never predicts counts as F1 0);
- name similarity: ``difflib.SequenceMatcher(None, a, b).ratio()`` of the folded normalized names,
  i.e. 2·M/T with M the characters in matching blocks and T the total length of both (1.0 = identical);
- parsed: share of answers the service's parser returned with status ``ok``;
- brand_when_present: brand score over the items whose gold has a brand only (answering "no brand"
  everywhere already scores the share of brandless items on ``brand``).

Benchmark scoring, receipt-parser's 45 items. Its authors graded the published peers by hand
(their benchmarks/evaluate.ipynb asks a person for 1, 0.5 or 0 per item and field), so "partly right"
was never written down. This module's rule, applied the same way to every system:
- product (their "name"): the gold is a lower-case head noun with optional qualifiers
  (``молоко сгущенное``). Words are compared after folding, cutting one inflection ending
  (``огурцы`` = ``огурец``, ``персики`` = ``персик``), tolerating one typo in stems of 5+ letters (the gold has
  ``товрог``) and compounds (``биойогурт`` contains ``йогурт``).
  Right (1): every gold word is in the answer (extra qualifiers are fine: ``Желудки куриные`` for ``желудки``).
  Partly right (0.5): some gold word is in the answer but not all (``Молоко`` for ``молоко сгущенное``), or the
  answer's head is a cut form of the gold head or the reverse, 3+ letters (``слив`` / ``сливки``).
- brand: gold ``-`` means no brand, and only no answer is right. Otherwise both are folded to one
  script without spaces or punctuation. Right: equal, or one typo apart at 5+ letters. Partly right:
  one contains the other, 3+ letters (``озби`` / ``семейка озби``).
- both fields: an answer listing several candidates (``яйцо, майонез``, Tinkoff's service does this)
  earns at most 0.5 — it hedges — and nothing if no candidate is right or partly right.
- category: single label, no partial credit; our taxonomy ids are mapped to their 21 classes first
  (training/benchmark_category_map.json).
The rule is stricter than a lenient human on hedged lists and looser on inflections; scoring
Tinkoff's published predictions with it (training/evaluate.py) shows how far it sits from the hand grades.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz.distance import OSA

from model.grounding import to_cyrillic, unsupported_words

RIGHT = 1.0
PARTLY_RIGHT = 0.5
WRONG = 0.0

# Noun and adjective endings, longest first; one is cut so that number and case do not decide a match.
_ENDINGS = sorted(
    "ами ями ого его ому ему ыми ими ых их ая яя ое ее ые ие ый ий ой ов ев ей ам ям ах ях ом ем ы и а я о е у ю ь й".split(),
    key=len,
    reverse=True,
)
_MIN_STEM = 3
_TYPO_MIN_LETTERS = 5
_COMPOUND_MIN_LETTERS = 4
_CANDIDATE_SEPARATORS = re.compile(r"[,;/]")


def fold(text: str | None) -> str:
    """Lower case, ё → е, no quotes or sentence punctuation, single spaces."""
    text = (text or "").lower().replace("ё", "е")
    text = re.sub(r"[\"'«»`.,!]", " ", text)
    return " ".join(text.split())


def fold_brand(brand: str | None) -> str:
    """A brand in one script, without spaces or punctuation; ``-``/``—`` (no brand) folds to ``""``."""
    folded = fold(brand)
    if re.search(r"[a-z]", folded):
        folded = to_cyrillic(folded).lower()
    return re.sub(r"[^0-9а-я]", "", folded.replace("э", "е"))


def _words(text: str | None) -> list[str]:
    return re.findall(r"[0-9a-zа-я]+", fold(text))


def _stem(word: str) -> str:
    for ending in _ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= _MIN_STEM:
            return word[: -len(ending)]
    return word


def _same_word(a: str, b: str) -> bool:
    a, b = _stem(a), _stem(b)
    if a == b:
        return True
    shorter, longer = sorted((a, b), key=len)
    if len(shorter) >= _COMPOUND_MIN_LETTERS and longer.endswith(shorter):
        return True
    return len(shorter) >= _TYPO_MIN_LETTERS and OSA.distance(a, b) <= 1


def _is_cut_form(a: str, b: str) -> bool:
    a, b = _stem(a), _stem(b)
    return min(len(a), len(b)) >= _MIN_STEM and (a.startswith(b) or b.startswith(a))


def _product_candidate_points(words: list[str], gold_words: list[str]) -> float:
    matched = [any(_same_word(g, w) for w in words) for g in gold_words]
    if all(matched):
        return RIGHT
    if any(matched) or _is_cut_form(words[0], gold_words[0]):
        return PARTLY_RIGHT
    return WRONG


def _hedged(points: list[float]) -> float:
    """One candidate keeps its points; a list of candidates earns at most partial credit."""
    if not points:
        return WRONG
    best = max(points)
    return min(best, PARTLY_RIGHT) if len(points) > 1 else best


def product_points(predicted: str | None, gold: str) -> float:
    """Benchmark points for a product answer (rule in the module docstring)."""
    gold_words = _words(gold)
    candidates = [_words(part) for part in _CANDIDATE_SEPARATORS.split(predicted or "")]
    candidates = [words for words in candidates if words]
    if not gold_words:
        return WRONG
    return _hedged([_product_candidate_points(words, gold_words) for words in candidates])


def _brand_candidate_points(candidate: str, gold: str) -> float:
    if candidate == gold or (min(len(candidate), len(gold)) >= _TYPO_MIN_LETTERS and OSA.distance(candidate, gold) <= 1):
        return RIGHT
    shorter, longer = sorted((candidate, gold), key=len)
    return PARTLY_RIGHT if len(shorter) >= _MIN_STEM and shorter in longer else WRONG


def brand_points(predicted: str | None, gold: str | None) -> float:
    """Benchmark points for a brand answer; no brand on both sides is right (rule in the module docstring)."""
    gold_key = fold_brand(gold)
    candidates = [key for key in (fold_brand(part) for part in re.split(r"[,;]", predicted or "")) if key]
    if not gold_key:
        return RIGHT if not candidates else WRONG
    return _hedged([_brand_candidate_points(candidate, gold_key) for candidate in candidates])


def macro_f1(predicted: Sequence[str], gold: Sequence[str]) -> float:
    report = per_class(predicted, gold)
    return sum(row["f1"] for row in report.values()) / len(report) if report else 0.0


def per_class(predicted: Sequence[str], gold: Sequence[str]) -> dict[str, dict[str, float]]:
    """Support, precision, recall and F1 for every class in the gold labels or the predictions."""
    pairs = list(zip(predicted, gold, strict=True))
    report: dict[str, dict[str, float]] = {}
    for label in sorted(set(gold) | set(predicted)):
        tp = sum(p == g == label for p, g in pairs)
        fp = sum(p == label != g for p, g in pairs)
        fn = sum(g == label != p for p, g in pairs)
        report[label] = {
            "support": tp + fn,
            "precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / (tp + fn) if tp + fn else 0.0,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
        }
    return report


def name_similarity(predicted: str | None, gold: str | None) -> float:
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


def benchmark_points(prediction: Prediction, gold: Gold) -> dict[str, float]:
    """One item's benchmark points (+1 right, +0.5 partly right); categories already in the benchmark's classes."""
    return {
        "product": product_points(prediction.product, gold.product),
        "brand": brand_points(prediction.brand, gold.brand),
        "category": RIGHT if fold(prediction.category) == fold(gold.category) else WRONG,
    }


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _field_scores(points: Sequence[dict[str, float]], predictions: Sequence[Prediction], golds: Sequence[Gold]) -> dict[str, float]:
    scores: dict[str, float] = {"items": len(golds), "parsed": _mean([float(p.parsed) for p in predictions])}
    for field in ("product", "brand", "category"):
        scores[field] = _mean([row[field] for row in points])
    # Most items carry no brand, so answering "no brand" always scores well on brand; this is the part that is not free.
    scores["brand_when_present"] = _mean([row["brand"] for row, g in zip(points, golds) if fold_brand(g.brand)])
    return scores


def benchmark_scores(predictions: Sequence[Prediction], golds: Sequence[Gold]) -> dict[str, float]:
    points = [benchmark_points(p, g) for p, g in zip(predictions, golds, strict=True)]
    return _field_scores(points, predictions, golds)


def worst_confusions(predicted: Sequence[str], gold: Sequence[str], top: int = 10) -> list[tuple[str, str, int]]:
    """The most frequent (gold, predicted) category pairs among the errors."""
    pairs = Counter((g, p) for p, g in zip(predicted, gold, strict=True) if p != g)
    return [(g, p, count) for (g, p), count in pairs.most_common(top)]


# Real-receipt scoring: the rules the real-receipt issues state for the hand-labelled held-out set,
# applied to our gold split. The gold head noun is the first word of the gold product.
# - product: right when the answer's first word equals the gold head noun (folded: lower case, ё → е),
#   or the gold head noun is one of the answer's words;
# - brand: right when both are empty or they are equal ignoring case, punctuation and script;
# - brand precision: share of output brands that are right; brand coverage: share of items with a brand;
# - names grounded: share of normalized-name words that are a word of the string, open an abbreviation
#   printed in it (``ПЕРС`` → персик) or are one cut short (``гр`` → г), correct a typo in it, or belong
#   to the answer's brand.


def head_noun(product: str | None) -> str:
    words = _words(product)
    return words[0] if words else ""


def real_product_right(predicted: str | None, gold_product: str) -> bool:
    gold = head_noun(gold_product)
    words = _words(predicted)
    return bool(gold) and bool(words) and (words[0] == gold or gold in words)


def real_brand_right(predicted: str | None, gold: str | None) -> bool:
    return fold_brand(predicted) == fold_brand(gold)


def grounded_words(normalized_name: str | None, raw_name: str, brand: str | None) -> tuple[int, int]:
    """(words of the normalized name that the string supports, its words); numbers are not counted
    (model/grounding.py's rule, the one the parser enforces)."""
    unsupported, judged = unsupported_words(normalized_name, raw_name, brand)
    return judged - len(unsupported), judged


def real_points(prediction: Prediction, gold: Gold) -> dict[str, float]:
    """One item's points under the real-receipt rules, the unit real_scores averages."""
    return {
        "product": float(real_product_right(prediction.product, gold.product)),
        "brand": float(real_brand_right(prediction.brand, gold.brand)),
        "category": float(prediction.category == gold.category),
        "name_similarity": name_similarity(prediction.normalized_name, gold.normalized_name),
    }


def real_scores(raws: Sequence[str], predictions: Sequence[Prediction], golds: Sequence[Gold]) -> dict[str, float]:
    """Product, brand, brand precision and coverage, categories and grounded names under the real-receipt rules."""
    points = [real_points(p, g) for p, g in zip(predictions, golds, strict=True)]
    scores = _field_scores(points, predictions, golds)
    with_brand = [row["brand"] for row, p in zip(points, predictions) if fold_brand(p.brand)]
    grounded = [grounded_words(p.normalized_name, raw, p.brand) for raw, p in zip(raws, predictions, strict=True)]
    words = sum(total for _, total in grounded)
    return {
        **scores,
        "brand_precision": _mean(with_brand),
        "brand_coverage": len(with_brand) / len(points) if points else 0.0,
        "category_macro_f1": macro_f1([p.category for p in predictions], [g.category for g in golds]),
        "name_similarity": _mean([row["name_similarity"] for row in points]),
        "names_grounded": sum(s for s, _ in grounded) / words if words else 1.0,
    }

# Confidence (model/confidence.py): how well each field's confidence says whether the field is right, and
# what a threshold keeps. A field under its threshold is withheld (null; category `other`), so:
# - coverage at t: share of all items that keep the field (for the brand: keep a brand, not "no brand");
# - precision at t: share of the kept fields that are right.
CURVE_THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
CONFIDENCE_FIELDS = ("product", "brand", "category")


def calibration_errors(confidences: Sequence[dict[str, float]], points: Sequence[dict[str, float]]) -> dict[str, float]:
    """Expected calibration error per field (10 equal-width bins) over the items that have a confidence."""
    from model.confidence import expected_calibration_error

    return {
        f"ece_{name}": expected_calibration_error([c[name] for c in confidences], [p[name] == 1.0 for p in points])
        for name in CONFIDENCE_FIELDS
    }


def keep_curve(
    confidences: Sequence[float], right: Sequence[bool], present: Sequence[bool], thresholds: Sequence[float] = CURVE_THRESHOLDS
) -> list[dict[str, float]]:
    """Coverage and precision of a field at each threshold; ``present``: the item outputs the field at all.
    Where a threshold keeps nothing, precision is None: no kept answer is right or wrong."""
    rows = []
    for threshold in thresholds:
        kept = [r for c, r, p in zip(confidences, right, present, strict=True) if p and c >= threshold]
        rows.append(
            {
                "threshold": threshold,
                "coverage": len(kept) / len(confidences) if confidences else 0.0,
                "precision": sum(kept) / len(kept) if kept else None,
            }
        )
    return rows
