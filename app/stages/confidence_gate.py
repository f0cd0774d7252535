"""Withhold the fields the model is not sure of: a wrong brand on a customer's screen is worse than none.

A field whose calibrated confidence (model/confidence.py) is under its threshold (``ENRICHER_MIN_PRODUCT_CONFIDENCE``,
``ENRICHER_MIN_BRAND_CONFIDENCE``, ``ENRICHER_MIN_CATEGORY_CONFIDENCE``) is withheld: product and brand become
null, the category becomes the taxonomy's fallback (``other``: the contract promises a taxonomy category on
every item), and the item's status says ``low_confidence``. Applied after the cache, so a cached answer
keeps its confidences and a changed threshold applies to it at once. Pure: no Kafka, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from model.parser import ParsedAnswer
from schemas.events import ItemStatus
from schemas.taxonomy import Taxonomy


@dataclass(frozen=True, slots=True)
class ConfidenceThresholds:
    product: float = 0.0
    brand: float = 0.0
    category: float = 0.0


# The thresholds the service runs with unless ENRICHER_MIN_*_CONFIDENCE says otherwise, read off the gold split's
# precision/coverage curves (docs/model.md#confidence). Brand 0.5: a brand more likely wrong than right is
# withheld (gold: precision 63% → 84%, brand right 64% → 67%, items with a brand 39% → 28%). Product and
# category 0: a withheld product or an `other` category is never right, so a threshold only costs accuracy;
# they are there for consumers who prefer "don't know".
DEFAULT_THRESHOLDS = ConfidenceThresholds(product=0.0, brand=0.5, category=0.0)


def gate(answer: ParsedAnswer, thresholds: ConfidenceThresholds, taxonomy: Taxonomy) -> ParsedAnswer:
    confidence = answer.confidence
    if confidence is None:
        return answer
    withheld: dict[str, object] = {}
    if answer.product is not None and confidence.product < thresholds.product:
        withheld["product"] = None
    if answer.brand is not None and confidence.brand < thresholds.brand:
        withheld["brand"] = None
    if answer.category != taxonomy.fallback and confidence.category < thresholds.category:
        withheld["category"] = taxonomy.fallback
    if not withheld:
        return answer
    status = ItemStatus.LOW_CONFIDENCE if answer.status is ItemStatus.OK else answer.status
    return replace(answer, status=status, **withheld)


def gate_answers(
    answers: Mapping[str, ParsedAnswer], thresholds: ConfidenceThresholds, taxonomy: Taxonomy
) -> dict[str, ParsedAnswer]:
    return {text: gate(answer, thresholds, taxonomy) for text, answer in answers.items()}
