"""Put a receipt back together from the answers of its line items."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from model.parser import ParsedAnswer
from model.prompt import clean_raw_name
from schemas.events import (
    CategoryRef,
    EnrichedItem,
    EnrichedTransaction,
    ModelIdentity,
    ReceiptEvent,
    ReceiptSummary,
)


def model_text(item_name: str) -> str:
    """The text the model sees for an item; identical texts share one answer."""
    return clean_raw_name(item_name)


def assemble(
    event: ReceiptEvent, answers: Mapping[str, ParsedAnswer], model: ModelIdentity, enriched_at: datetime
) -> EnrichedTransaction:
    """Raises KeyError if an item has no answer: the enrichment stage guarantees one for every text."""
    receipt = event.receipt
    items = []
    for position, item in enumerate(receipt.items, start=1):
        answer = answers[model_text(item.name)]
        items.append(
            EnrichedItem(
                position=position,
                raw_name=item.name,
                price=item.price,
                quantity=item.quantity,
                sum=item.sum,
                normalized_name=answer.normalized_name,
                product=answer.product,
                brand=answer.brand,
                category=CategoryRef(id=answer.category.id, name=answer.category.name),
                status=answer.status,
            )
        )
    return EnrichedTransaction(
        event_id=event.event_id,
        client_id=event.client_id,
        received_at=event.received_at,
        enriched_at=enriched_at,
        receipt=ReceiptSummary(
            fiscal_drive_number=receipt.fiscalDriveNumber,
            fiscal_document_number=receipt.fiscalDocumentNumber,
            fiscal_sign=receipt.fiscalSign,
            kkt_reg_id=receipt.kktRegId,
            date_time=receipt.dateTime,
            total_sum=receipt.totalSum,
            seller=receipt.user,
            seller_inn=receipt.userInn,
            operation_type=receipt.operationType,
        ),
        items=items,
        model=model,
    )
