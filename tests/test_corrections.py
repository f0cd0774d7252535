"""The corrections rules, the override precedence and the training export: plain calls, no Kafka, no torch."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.stages.batcher import BatchLimits
from app.stages.cache import AnswerCache, LruStore, item_digest
from app.stages.corrections import (
    MAX_CORRECTION_BYTES,
    InvalidCorrection,
    ItemCorrections,
    active_override,
    decode_correction,
    fold,
)
from app.stages.enrichment import answer_texts
from app.stages.overrides import OverridesView
from model.parser import ParsedAnswer
from schemas.events import CorrectionEvent, ItemSource, ItemStatus, Override
from schemas.publish import SCHEMA_DIR
from schemas.taxonomy import load_taxonomy
from training.corrections import GUIDELINE, correction_rows
from training.dataset import read_examples
from training.labels import LabeledRow, is_gold, read_rows, training_examples, write_rows

TAXONOMY = load_taxonomy()
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
MILK = "МОЛОКО ПРОСТОКВАШИНО 3,2% 930МЛ"


def _correction(fields: dict, kind: str = "customer", author: str = "c1", raw_name: str = MILK, minutes: int = 0) -> dict:
    return {
        "correction_id": f"{author}-{minutes}",
        "event_id": "evt-1",
        "position": 1,
        "raw_name": raw_name,
        "fields": fields,
        "author": {"kind": kind, "id": author},
        "corrected_at": (T0 + timedelta(minutes=minutes)).isoformat(),
    }


def _event(*args, **kwargs) -> CorrectionEvent:
    return decode_correction(orjson.dumps(_correction(*args, **kwargs)), TAXONOMY)


def _fold_all(corrections: list[CorrectionEvent]) -> ItemCorrections:
    state = None
    for correction in corrections:
        # Through the table's bytes each time, as the agent does.
        state = fold(ItemCorrections.decode(state.encode()) if state is not None else None, correction)
    assert state is not None
    return state


# ---- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (None, "empty"),
        (b"", "empty"),
        (b"x" * (MAX_CORRECTION_BYTES + 1), "too_large"),
        (b"{not json", "invalid_json"),
        (b"[]", "invalid_correction"),
        (orjson.dumps(_correction({})), "invalid_correction"),
        (orjson.dumps(_correction({"colour": "red"})), "invalid_correction"),
        (orjson.dumps(_correction({"product": None})), "invalid_correction"),  # only a brand may be "none"
        (orjson.dumps(_correction({"product": "Сок##Яблоко"})), "invalid_correction"),
        (orjson.dumps(_correction({"normalized_name": "Сок\tяблочный"})), "invalid_correction"),
        (orjson.dumps(_correction({"brand": "  "})), "invalid_correction"),
        (orjson.dumps(_correction({"category_id": "dairy"}, kind="robot")), "invalid_correction"),
        (orjson.dumps({**_correction({"category_id": "dairy"}), "position": 0}), "invalid_correction"),
        (orjson.dumps({k: v for k, v in _correction({"category_id": "dairy"}).items() if k != "author"}), "invalid_correction"),
        (orjson.dumps(_correction({"category_id": "milk-and-more"})), "unknown_category"),
    ],
)
def test_a_correction_that_cannot_be_used_is_refused_with_its_kind(value, kind):
    with pytest.raises(InvalidCorrection) as refused:
        decode_correction(value, TAXONOMY)
    assert refused.value.kind == kind


def test_the_error_message_names_the_field_but_never_echoes_its_value():
    with pytest.raises(InvalidCorrection) as refused:
        decode_correction(orjson.dumps(_correction({"product": "секрет##секрет"})), TAXONOMY)
    assert "fields.product" in refused.value.message and "секрет" not in refused.value.message


def test_a_brand_set_to_null_means_no_brand_and_a_field_left_out_is_not_corrected():
    correction = _event({"brand": None})
    assert correction.fields == {"brand": None}


def test_the_correction_contract_round_trips_through_its_published_json_schema():
    schema = json.loads((SCHEMA_DIR / "correction-event.schema.json").read_text(encoding="utf-8"))
    document = _correction({"normalized_name": "Молоко 3,2% 930 мл", "brand": None, "category_id": "dairy"})
    jsonschema.validate(document, schema)
    correction = CorrectionEvent.model_validate_json(orjson.dumps(document))
    assert orjson.loads(correction.model_dump_json()) == {**document, "schema_version": 1, "corrected_at": "2026-12-01T10:00:00Z"}
    for bad in ({}, {"product": None}, {"category_id": "dairy", "colour": "red"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(_correction(bad), schema)


def test_the_override_contract_validates_against_its_published_json_schema():
    state = _fold_all([_event({"category_id": "dairy", "brand": None}, kind="analyst", author="a1")])
    override = active_override(state, threshold=3)
    assert override is not None
    schema = json.loads((SCHEMA_DIR / "override.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(orjson.loads(override.model_dump_json()), schema)
    assert Override.model_validate_json(override.model_dump_json()) == override


# ---- the rules ---------------------------------------------------------------------------------


def test_an_analyst_fix_is_active_at_once_and_a_later_analyst_fix_replaces_it():
    first = _fold_all([_event({"category_id": "dairy"}, kind="analyst", author="a1")])
    override = active_override(first, threshold=3)
    assert override is not None and override.fields == {"category_id": "dairy"} and override.basis == {"category_id": "analyst"}
    later = fold(first, _event({"category_id": "beverages"}, kind="analyst", author="a2", minutes=5))
    assert active_override(later, threshold=3).fields == {"category_id": "beverages"}


def test_customers_change_an_item_only_when_enough_distinct_customers_agree():
    corrections = [
        _event({"category_id": "dairy"}, author="c1"),
        _event({"category_id": "dairy"}, author="c1", minutes=1),  # the same customer again
        _event({"category_id": "beverages"}, author="c2", minutes=2),
        _event({"category_id": "dairy"}, author="c3", minutes=3),
    ]
    assert active_override(_fold_all(corrections[:3]), threshold=2) is None
    state = _fold_all(corrections)
    override = active_override(state, threshold=2)
    assert override is not None
    assert override.fields == {"category_id": "dairy"} and override.basis == {"category_id": "customers:2"}
    dairy = next(p for p in state.proposals if p.value == "dairy")
    assert (dairy.count, dairy.customers) == (3, ["c1", "c3"])


def test_a_customer_who_changes_their_mind_moves_their_vote():
    state = _fold_all(
        [
            _event({"category_id": "dairy"}, author="c1"),
            _event({"category_id": "dairy"}, author="c2", minutes=1),
            _event({"category_id": "beverages"}, author="c2", minutes=2),
        ]
    )
    assert active_override(state, threshold=2) is None
    assert {p.value: p.customers for p in state.proposals} == {"dairy": ["c1"], "beverages": ["c2"]}


def test_an_analyst_decides_a_field_over_any_number_of_customers_and_fields_are_decided_one_by_one():
    state = _fold_all(
        [
            _event({"category_id": "dairy", "brand": "Простоквашино"}, author="c1"),
            _event({"category_id": "dairy", "brand": "Простоквашино"}, author="c2", minutes=1),
            _event({"category_id": "beverages"}, kind="analyst", author="a1", minutes=2),
        ]
    )
    override = active_override(state, threshold=2)
    assert override.fields == {"category_id": "beverages", "brand": "Простоквашино"}
    assert override.basis == {"category_id": "analyst", "brand": "customers:2"}


def test_a_tie_between_agreed_values_goes_to_the_value_proposed_first():
    state = _fold_all(
        [_event({"category_id": c}, author=a, minutes=i) for i, (a, c) in enumerate([("c1", "dairy"), ("c2", "beverages"), ("c3", "beverages"), ("c4", "dairy")])]
    )
    assert active_override(state, threshold=2).fields == {"category_id": "dairy"}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["c1", "c2", "c3", "a1"]), st.sampled_from(["dairy", "beverages", "bakery"])),
        min_size=1,
        max_size=12,
    ),
    st.integers(min_value=0, max_value=11),
)
def test_replaying_corrections_after_a_crash_decides_the_same_override(votes, crash_at):
    """Faust delivers at least once: after a crash the uncommitted tail is folded again onto a state that
    may already hold it. The override must not change."""
    corrections = [
        _event({"category_id": category}, kind="analyst" if author == "a1" else "customer", author=author, minutes=i)
        for i, (author, category) in enumerate(votes)
    ]
    once = _fold_all(corrections)
    replayed = _fold_all(corrections + corrections[min(crash_at, len(corrections) - 1) :])
    assert active_override(replayed, threshold=2) == active_override(once, threshold=2)


# ---- precedence: overrides, then the cache, then the model -------------------------------------


def _model_answer(text: str) -> ParsedAnswer:
    return ParsedAnswer(f"Модель {text}", "Модель", None, TAXONOMY.by_id("other"), ItemStatus.OK)


class _Model:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, batch):
        self.asked.extend(batch)
        return [_model_answer(text) for text in batch]


def _answer(texts, cache, model, view):
    return answer_texts(texts, cache, lambda ts: [8] * len(ts), BatchLimits(8, 10_000, 16), model, TAXONOMY, view)


def _view(*corrections: CorrectionEvent) -> OverridesView:
    view = OverridesView(TAXONOMY)
    state = _fold_all(list(corrections))
    view.apply(item_digest(state.raw_name), active_override(state, threshold=2))
    return view


def test_an_override_answers_before_the_cache_and_the_model_and_the_cache_keeps_the_models_answer():
    cache = AnswerCache("v1", TAXONOMY, LruStore(100))
    model = _Model()
    first = _answer([MILK, "ХЛЕБ"], cache, model, OverridesView(TAXONOMY))
    assert first.sources == {MILK: ItemSource.MODEL, "ХЛЕБ": ItemSource.MODEL}

    whole = {"normalized_name": "Молоко 3,2% 930 мл", "product": "Молоко", "brand": None, "category_id": "dairy"}
    view = _view(_event(whole, kind="analyst", author="a1"))
    model.asked.clear()
    # The same item spelled differently has the same item key, so the same override.
    second = _answer([MILK, MILK.lower() + "  ", "ХЛЕБ"], cache, model, view)
    assert model.asked == []
    assert second.sources == {MILK: ItemSource.OVERRIDE, MILK.lower() + "  ": ItemSource.OVERRIDE, "ХЛЕБ": ItemSource.CACHE}
    milk = second.answers[MILK]
    assert (milk.normalized_name, milk.product, milk.brand, milk.category.id, milk.status) == (
        "Молоко 3,2% 930 мл", "Молоко", None, "dairy", ItemStatus.OK,
    )
    # No stale cache: the cache still holds the model's answer, and without the override it is served again.
    view.apply(item_digest(MILK), None)
    third = _answer([MILK], cache, model, view)
    assert third.sources == {MILK: ItemSource.CACHE} and third.answers[MILK] == _model_answer(MILK)


def test_a_partial_override_replaces_only_its_fields_of_the_cached_or_generated_answer():
    cache = AnswerCache("v1", TAXONOMY, LruStore(100))
    view = _view(_event({"category_id": "dairy"}, author="c1"), _event({"category_id": "dairy"}, author="c2"))
    model = _Model()
    for expected_calls in (1, 1):  # generated the first time, from the cache the second: the override either way
        outcome = _answer([MILK], cache, model, view)
        assert len(model.asked) == expected_calls
        assert outcome.sources == {MILK: ItemSource.OVERRIDE}
        answer = outcome.answers[MILK]
        assert answer.category.id == "dairy" and answer.normalized_name == f"Модель {MILK}"


def test_an_item_whose_model_call_failed_keeps_status_model_error_under_a_partial_override():
    from model.enricher import ModelBatchFailed

    def failing(batch):
        raise ModelBatchFailed(len(batch), "out of memory")

    view = _view(_event({"category_id": "dairy"}, author="c1"), _event({"category_id": "dairy"}, author="c2"))
    outcome = _answer([MILK], None, failing, view)
    assert outcome.answers[MILK].status is ItemStatus.MODEL_ERROR and outcome.answers[MILK].category.id == "dairy"


def test_a_tombstone_removes_an_override_and_an_override_outside_this_taxonomy_is_not_served():
    view = _view(_event({"category_id": "dairy"}, kind="analyst", author="a1"))
    assert len(view) == 1
    view.apply(item_digest(MILK), None)
    assert len(view) == 0 and view.published() == {}
    foreign = Override(item_key="x", raw_name="X", fields={"category_id": "spaceships"}, basis={"category_id": "analyst"}, updated_at=T0)
    view.apply(item_digest("X"), foreign)
    assert view.lookup(["X"]) == {}


# ---- the training export -----------------------------------------------------------------------


def _override(raw_name: str, fields: dict, basis: str = "analyst") -> Override:
    from model.item_key import item_key

    return Override(item_key=item_key(raw_name), raw_name=raw_name, fields=fields, basis={f: basis for f in fields}, updated_at=T0)


def test_the_export_writes_rows_the_training_loader_reads_back_with_their_provenance(tmp_path):
    labelled = LabeledRow("dfc2021", "7", "кефир 1% 900г", "Кефир 1% 900 г", "Кефир", None, "dairy", "claude-labeller-B", "2026-12-07.2", "gold" if is_gold("кефир 1% 900г") else "train")
    overrides = {
        item_digest(o.raw_name): o
        for o in (
            _override(MILK, {"normalized_name": "Молоко 3,2% 930 мл", "product": "Молоко", "brand": "Простоквашино", "category_id": "dairy"}),
            _override("КЕФИР 1% 900Г", {"brand": "Домик в деревне"}, basis="customers:4"),
            _override("НЕЗНАКОМОЕ 1ШТ", {"category_id": "other"}, basis="customers:3"),
            _override("ТАБ\tЛЕТКИ", {"normalized_name": "Таблетки", "product": "Таблетки", "brand": None, "category_id": "pharmacy"}),
        )
    }
    export = correction_rows(overrides, [labelled])
    assert (len(export.rows), export.completed_from_labels, export.skipped_partial, export.skipped_unwritable) == (2, 1, 1, 1)
    out = tmp_path / "corrections.tsv"
    write_rows(out, export.rows)

    rows = {row.raw_name: row for row in read_rows(out)}
    milk = rows[MILK]
    assert (milk.source, milk.source_id, milk.labeller, milk.guideline) == ("corrections", item_digest(MILK), "analyst", GUIDELINE)
    assert (milk.normalized_name, milk.product, milk.brand, milk.category) == ("Молоко 3,2% 930 мл", "Молоко", "Простоквашино", "dairy")
    kefir = rows["КЕФИР 1% 900Г"]
    assert (kefir.normalized_name, kefir.brand, kefir.labeller) == ("Кефир 1% 900 г", "Домик в деревне", "customers:4+claude-labeller-B")
    assert all(row.split == ("gold" if is_gold(row.raw_name) else "train") for row in rows.values())
    # training.dataset takes the file as an input beside the others; gold rows never reach training.
    examples = read_examples(out, TAXONOMY)
    assert {e.raw_name for e in examples} == {r.raw_name for r in rows.values() if r.split == "train"}
    assert examples == training_examples(list(rows.values()))
