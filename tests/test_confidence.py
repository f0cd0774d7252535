"""Field confidences: calibration (model/confidence.py), the threshold gate (app/stages/confidence_gate.py),
and confidences through the cache and the output contract. Pure: no torch, no Kafka."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from app.stages.assembler import encode_transaction
from app.stages.cache import decode_answer, encode_answer
from app.stages.confidence_gate import ConfidenceThresholds, gate
from app.tools.samples import sample_receipt_event
from model.confidence import (
    Calibration,
    FieldConfidence,
    Signals,
    expected_calibration_error,
    fit_calibration,
    fit_isotonic,
    read_calibration,
)
from model.parser import ParsedAnswer
from schemas.events import EnrichedTransaction, ItemSource, ItemStatus, ModelIdentity
from schemas.taxonomy import load_taxonomy
from training.scoring import keep_curve

TAXONOMY = load_taxonomy()


def answer(brand: str | None = "Zewa", confidence: FieldConfidence | None = FieldConfidence(0.9, 0.4, 0.8)) -> ParsedAnswer:
    return ParsedAnswer("Бумага туалетная Zewa 8 рулонов", "Бумага туалетная", brand, TAXONOMY.by_id("personal_care"), ItemStatus.OK, confidence)


def test_isotonic_map_is_monotone_and_never_certain_from_a_few_items():
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    outcomes = [False, False, True, False, True, True, False, True, True, True]
    mapping = fit_isotonic(scores, outcomes)
    values = [mapping(x / 100) for x in range(101)]
    assert values == sorted(values)
    assert 0.0 < values[0] and values[-1] < 1.0


def test_items_of_one_score_are_calibrated_together_whatever_their_outcomes():
    # The shape of a product signal: most items at exactly 1.0, 88% of them right, a few below at 50%.
    scores = [0.4] * 20 + [1.0] * 100
    outcomes = [i % 2 == 0 for i in range(20)] + [i % 100 < 88 for i in range(100)]
    mapping = fit_isotonic(scores, outcomes)
    assert mapping(1.0) == pytest.approx(88.5 / 101)
    assert mapping(0.4) == pytest.approx(10.5 / 21)
    assert expected_calibration_error([mapping(s) for s in scores], outcomes) < 0.01


def test_calibration_fixes_an_overconfident_signal():
    # A raw signal of 0.9 that is right half the time: ECE 0.4 raw, near 0 once calibrated.
    signals = [Signals(0.9, 0.9, 0.9, "model")] * 200
    right = [{"product": i % 2 == 0, "brand": i % 2 == 0, "category": i % 2 == 0} for i in range(200)]
    outcomes = [r["product"] for r in right]
    assert expected_calibration_error([0.9] * 200, outcomes) == pytest.approx(0.4)
    calibration = fit_calibration(signals, right)
    calibrated = calibration.confidence(signals[0])
    assert calibrated.product == pytest.approx(0.5, abs=0.01)
    assert expected_calibration_error([calibrated.product] * 200, outcomes) < 0.01


def test_brand_confidence_is_calibrated_by_where_the_brand_came_from():
    signals = [Signals(0.5, 0.5, 0.9, "lexicon")] * 50 + [Signals(0.5, 0.5, 0.9, "model")] * 50
    right = [{"product": True, "brand": True, "category": True}] * 50 + [{"product": True, "brand": False, "category": True}] * 50
    calibration = fit_calibration(signals, right)
    assert calibration.confidence(signals[0]).brand > 0.9
    assert calibration.confidence(signals[-1]).brand < 0.1


def test_calibration_file_round_trips(tmp_path):
    calibration = fit_calibration([Signals(i / 40, 0.5, 0.5, "none") for i in range(40)], [{"product": i > 20, "brand": True, "category": True} for i in range(40)])
    calibration.write(tmp_path)
    assert read_calibration(tmp_path) == calibration
    assert read_calibration(tmp_path / "nowhere") is None
    (tmp_path / "calibration.json").write_text('{"format": 0}', encoding="utf-8")
    with pytest.raises(ValueError, match="rebuild"):
        read_calibration(tmp_path)
    assert Calibration().confidence(Signals(0.3, 0.7, 0.2, "model")) == FieldConfidence(0.3, 0.2, 0.7)


def test_a_low_confidence_brand_becomes_null_and_the_item_says_low_confidence():
    gated = gate(answer(), ConfidenceThresholds(brand=0.5), TAXONOMY)
    assert gated.brand is None and gated.status is ItemStatus.LOW_CONFIDENCE
    assert gated.product == "Бумага туалетная" and gated.category.id == "personal_care"
    assert gate(answer(), ConfidenceThresholds(brand=0.3), TAXONOMY) == answer()


def test_a_low_confidence_category_becomes_the_fallback_and_a_product_null():
    gated = gate(answer(), ConfidenceThresholds(product=0.95, category=0.85), TAXONOMY)
    assert gated.product is None and gated.category == TAXONOMY.fallback and gated.status is ItemStatus.LOW_CONFIDENCE


def test_answers_without_confidence_or_already_failing_keep_their_status():
    assert gate(answer(confidence=None), ConfidenceThresholds(0.99, 0.99, 0.99), TAXONOMY) == answer(confidence=None)
    malformed = ParsedAnswer("x", None, "Zewa", TAXONOMY.fallback, ItemStatus.MALFORMED_ANSWER, FieldConfidence(0.1, 0.1, 0.1))
    assert gate(malformed, ConfidenceThresholds(brand=0.5), TAXONOMY).status is ItemStatus.MALFORMED_ANSWER


def test_confidence_survives_the_cache_and_old_entries_without_it_still_decode():
    assert decode_answer(encode_answer(answer()), TAXONOMY) == answer()
    assert decode_answer(encode_answer(answer(confidence=None)), TAXONOMY) == answer(confidence=None)


def test_output_contract_round_trip_with_confidence():
    event = sample_receipt_event(random.Random(1), ["Т/БУМАГА ZEWA 8РУЛ"], 0, max_items=1)
    name = event.receipt.items[0].name
    gated = gate(answer(), ConfidenceThresholds(brand=0.5), TAXONOMY)
    identity = ModelIdentity(base_model="b", adapter=None, version="v")
    data = encode_transaction(event, {name: gated}, identity, datetime.now(UTC), {name: ItemSource.MODEL})
    item = EnrichedTransaction.model_validate_json(data).items[0]
    assert item.confidence.model_dump() == {"product": 0.9, "brand": 0.4, "category": 0.8}
    assert item.brand is None and item.status == "low_confidence"


def test_keep_curve_trades_coverage_for_precision():
    confidences = [0.1, 0.5, 0.9, 0.95]
    right = [False, False, True, True]
    curve = {row["threshold"]: row for row in keep_curve(confidences, right, [True] * 4, (0.0, 0.5, 0.9, 0.99))}
    assert (curve[0.0]["coverage"], curve[0.0]["precision"]) == (1.0, 0.5)
    assert (curve[0.9]["coverage"], curve[0.9]["precision"]) == (0.5, 1.0)
    # Nothing kept: no precision to report (not a 0% that a plot would draw as the worst point).
    assert (curve[0.99]["coverage"], curve[0.99]["precision"]) == (0.0, None)


def test_a_field_people_corrected_is_never_withheld_for_the_models_doubt():
    from app.stages.overrides import ItemOverride

    override = ItemOverride(fields=frozenset({"brand"}), normalized_name=None, product=None, brand="Zewa", category=None)
    corrected = override.over(answer(confidence=FieldConfidence(0.9, 0.1, 0.8)))
    assert corrected.confidence == FieldConfidence(0.9, 1.0, 0.8)
    assert gate(corrected, ConfidenceThresholds(brand=0.5), TAXONOMY).brand == "Zewa"
