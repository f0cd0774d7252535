"""Put a receipt back together from the answers of its line items, as the bytes of an EnrichedTransaction.

The output is built as plain data and serialized with orjson, not through the pydantic models:
every value comes from an already validated ReceiptEvent or a parsed answer, and building and
validating nine models per receipt was the largest cost of the publish stage (bench/run.py).
``EnrichedTransaction`` stays the contract; tests/test_assembler.py checks that these bytes are
exactly what ``EnrichedTransaction(...).model_dump_json()`` gives.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import orjson

from model.parser import ParsedAnswer
from schemas.events import SCHEMA_VERSION, ItemSource, ModelIdentity, ReceiptEvent

# pydantic writes UTC as "Z" and keeps any other offset; so does orjson with this option.
_JSON_OPTIONS = orjson.OPT_UTC_Z


def encode_transaction(
    event: ReceiptEvent,
    answers: Mapping[str, ParsedAnswer],
    model: ModelIdentity,
    enriched_at: datetime,
    sources: Mapping[str, ItemSource],
) -> bytes:
    """The enriched transaction of one receipt, JSON-encoded; ``answers`` and ``sources`` by item name.

    Raises KeyError if an item has no answer or no source: the enrichment stage guarantees both for every name.
    """
    receipt = event.receipt
    items = []
    for position, item in enumerate(receipt.items, start=1):
        answer = answers[item.name]
        category = answer.category
        items.append(
            {
                "position": position,
                "raw_name": item.name,
                "price": item.price,
                "quantity": item.quantity,
                "sum": item.sum,
                "normalized_name": answer.normalized_name,
                "product": answer.product,
                "brand": answer.brand,
                "category": {"id": category.id, "name": category.name},
                "status": answer.status.value,
                "confidence": (
                    None
                    if answer.confidence is None
                    else {"product": answer.confidence.product, "brand": answer.confidence.brand, "category": answer.confidence.category}
                ),
                "source": sources[item.name].value,
            }
        )
    return orjson.dumps(
        {
            "schema_version": SCHEMA_VERSION,
            "event_id": event.event_id,
            "client_id": event.client_id,
            "received_at": event.received_at,
            "enriched_at": enriched_at,
            "receipt": {
                "fiscal_drive_number": receipt.fiscalDriveNumber,
                "fiscal_document_number": receipt.fiscalDocumentNumber,
                "fiscal_sign": receipt.fiscalSign,
                "kkt_reg_id": receipt.kktRegId,
                "date_time": receipt.dateTime,
                "total_sum": receipt.totalSum,
                "seller": receipt.user,
                "seller_inn": receipt.userInn,
                "operation_type": receipt.operationType,
            },
            "items": items,
            "model": {"base_model": model.base_model, "adapter": model.adapter, "version": model.version},
        },
        option=_JSON_OPTIONS,
    )
