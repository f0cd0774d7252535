import json
import random
from datetime import UTC, datetime

import jsonschema
import orjson
import pytest

from app.tools.samples import sample_receipt_event
from schemas.events import DeadLetter, EnrichedTransaction, ReceiptEvent
from schemas.publish import PUBLISHED, SCHEMA_DIR, render
from schemas.taxonomy import UnknownCategory, load_taxonomy, parse_taxonomy


@pytest.mark.parametrize(("file_name", "model", "mode"), PUBLISHED)
def test_published_json_schema_files_match_the_code_models(file_name, model, mode):
    published = (SCHEMA_DIR / file_name).read_text(encoding="utf-8")
    assert published == render(model, mode), f"run `python -m schemas.publish` to refresh {file_name}"


def _event_dict(**receipt_overrides):
    event = sample_receipt_event(random.Random(7), ["СОК СОЧН ДОЛ ПЕРСИК ЯБЛ 1,93Л", "ХЛЕБ БОРОД 300Г"], 1)
    document = orjson.loads(event.model_dump_json())
    document["receipt"].update(receipt_overrides)
    return document


def test_receipt_event_round_trips_and_validates_against_its_published_schema():
    document = _event_dict()
    schema = json.loads((SCHEMA_DIR / "receipt-event.schema.json").read_text())
    jsonschema.validate(document, schema)
    event = ReceiptEvent.model_validate_json(orjson.dumps(document))
    assert orjson.loads(event.model_dump_json()) == document


def test_unknown_fields_in_the_receipt_are_kept_not_rejected():
    document = _event_dict(retailPlace="Магазин 42", kktRegIdExtra={"nested": [1, 2]})
    document["receipt"]["items"][0]["paymentAgentByProductType"] = 4
    event = ReceiptEvent.model_validate_json(orjson.dumps(document))
    round_tripped = orjson.loads(event.model_dump_json())
    assert round_tripped["receipt"]["retailPlace"] == "Магазин 42"
    assert round_tripped["receipt"]["kktRegIdExtra"] == {"nested": [1, 2]}
    assert round_tripped["receipt"]["items"][0]["paymentAgentByProductType"] == 4


def test_output_and_dead_letter_examples_validate_against_their_published_schemas():
    taxonomy = load_taxonomy()
    category = taxonomy.by_id("beverages")
    enriched = {
        "schema_version": 1,
        "event_id": "e1",
        "client_id": "c1",
        "received_at": "2026-11-01T10:00:00Z",
        "enriched_at": "2026-11-01T10:00:01Z",
        "receipt": {
            "fiscal_drive_number": "1",
            "fiscal_document_number": 2,
            "fiscal_sign": 3,
            "kkt_reg_id": "4",
            "date_time": "2026-11-01T09:59:00",
            "total_sum": 10000,
            "seller": None,
            "seller_inn": "7825706086",
            "operation_type": 1,
        },
        "items": [
            {
                "position": 1,
                "raw_name": "СОК СОЧН ДОЛ ПЕРСИК ЯБЛ 1,93Л",
                "price": 10000,
                "quantity": 1.0,
                "sum": 10000,
                "normalized_name": "Сок Сочная Долина персик-яблоко 1,93 л",
                "product": "Сок",
                "brand": "Сочная Долина",
                "category": {"id": category.id, "name": category.name},
                "status": "ok",
            }
        ],
        "model": {"base_model": "default", "adapter": "default-lora", "version": "abc"},
    }
    model = EnrichedTransaction.model_validate(enriched)
    jsonschema.validate(orjson.loads(model.model_dump_json()), json.loads((SCHEMA_DIR / "enriched-transaction.schema.json").read_text()))

    letter = DeadLetter.model_validate(
        {
            "error": {"kind": "invalid_json", "message": "x"},
            "source": {"topic": "receipts", "partition": 0, "offset": 5, "timestamp_ms": None},
            "original_key_b64": None,
            "original_value_b64": "bm90IGpzb24=",
            "failed_at": datetime.now(UTC),
        }
    )
    jsonschema.validate(orjson.loads(letter.model_dump_json()), json.loads((SCHEMA_DIR / "dead-letter.schema.json").read_text()))


def test_output_schema_rejects_a_category_without_a_name():
    schema = json.loads((SCHEMA_DIR / "enriched-transaction.schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"schema_version": 1}, schema)


def test_taxonomy_has_the_required_breadth_and_resolves_names_and_ids():
    taxonomy = load_taxonomy()
    assert 30 <= len(taxonomy.categories) <= 60
    for required in ("alcohol", "beverages", "dairy", "bakery", "pharmacy", "tobacco", "fuel", "pets", "other"):
        assert required in taxonomy.ids
    assert taxonomy.resolve("алкоголь").id == "alcohol"
    assert taxonomy.resolve("  Овощи,  фрукты, ягоды ").id == "fruits_vegetables"
    assert taxonomy.resolve("dairy").id == "dairy"
    with pytest.raises(UnknownCategory):
        taxonomy.resolve("Фруктовый сок")


def test_taxonomy_without_fallback_category_is_refused():
    with pytest.raises(ValueError, match="fallback"):
        parse_taxonomy({"version": "x", "categories": [{"id": "a", "name": "А"}]})
