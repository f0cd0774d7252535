import random
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from app.stages.assembler import encode_transaction
from app.tools.samples import load_item_names, sample_receipt_event
from model.parser import ParsedAnswer, parse_answer
from schemas.events import (
    CategoryRef,
    EnrichedItem,
    EnrichedTransaction,
    ItemSource,
    ItemStatus,
    ModelIdentity,
    ReceiptEvent,
    ReceiptSummary,
)
from schemas.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy()
IDENTITY = ModelIdentity(base_model="base", adapter="adapter", version="v1")


def _with_names(event: ReceiptEvent, names: list[str]) -> ReceiptEvent:
    template = event.receipt.items[0]
    items = [template.model_copy(update={"name": n}) for n in names]
    return event.model_copy(update={"receipt": event.receipt.model_copy(update={"items": items})})


def _encode(event: ReceiptEvent, answers, model=IDENTITY, enriched_at=None, sources=None) -> bytes:
    sources = sources if sources is not None else {name: ItemSource.MODEL for name in answers}
    return encode_transaction(event, answers, model, enriched_at or datetime.now(UTC), sources)


def _through_the_contract(event: ReceiptEvent, answers, model: ModelIdentity, enriched_at: datetime, sources) -> bytes:
    """The same transaction built field by field through the pydantic output models."""
    receipt = event.receipt
    items = []
    for position, item in enumerate(receipt.items, start=1):
        answer = answers[item.name]
        items.append(
            EnrichedItem(
                position=position, raw_name=item.name, price=item.price, quantity=item.quantity, sum=item.sum,
                normalized_name=answer.normalized_name, product=answer.product, brand=answer.brand,
                category=CategoryRef(id=answer.category.id, name=answer.category.name), status=answer.status,
                source=sources[item.name],
            )
        )
    summary = ReceiptSummary(
        fiscal_drive_number=receipt.fiscalDriveNumber, fiscal_document_number=receipt.fiscalDocumentNumber,
        fiscal_sign=receipt.fiscalSign, kkt_reg_id=receipt.kktRegId, date_time=receipt.dateTime,
        total_sum=receipt.totalSum, seller=receipt.user, seller_inn=receipt.userInn,
        operation_type=receipt.operationType,
    )
    transaction = EnrichedTransaction(
        event_id=event.event_id, client_id=event.client_id, received_at=event.received_at,
        enriched_at=enriched_at, receipt=summary, items=items, model=model,
    )
    return transaction.model_dump_json().encode()


def test_receipt_is_reassembled_in_its_original_order_with_every_field():
    names = ["ХЛЕБ БОРОД 300Г", "СОК СОЧН ДОЛ ПЕРСИК ЯБЛ 1,93Л", "ХЛЕБ БОРОД 300Г", "БАНАНЫ ВЕС"]
    event = _with_names(sample_receipt_event(random.Random(1), names, 0, max_items=1), names)
    answers = {
        n: parse_answer(f"{n.title()}##{n.split()[0].title()}##-##Другое", n, TAXONOMY) for n in set(names)
    }
    enriched = EnrichedTransaction.model_validate_json(_encode(event, answers))
    assert [i.position for i in enriched.items] == [1, 2, 3, 4]
    assert [i.raw_name for i in enriched.items] == names
    assert enriched.items[1].product == "Сок"
    assert enriched.event_id == event.event_id and enriched.client_id == event.client_id
    assert enriched.receipt.total_sum == event.receipt.totalSum
    assert enriched.model == IDENTITY


@pytest.mark.parametrize(
    "received_at",
    [
        datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
        datetime(2026, 12, 1, 10, 0, 0, 120, tzinfo=UTC),
        datetime(2026, 12, 1, 13, 0, 5, 999999, tzinfo=timezone(timedelta(hours=3))),
        datetime(2026, 12, 1, 1, 0, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
        datetime(2026, 12, 1, 10, 0),  # naive: kept naive, as the producer sent it
    ],
)
def test_the_bytes_are_exactly_what_the_pydantic_contract_serializes(received_at):
    rng = random.Random(7)
    names = load_item_names()
    taxonomy_categories = list(TAXONOMY.categories)
    model = ModelIdentity(base_model="/models/llama «3»", adapter=None, version="v\u00e92")
    for index in range(200):
        event = sample_receipt_event(rng, names, index).model_copy(update={"received_at": received_at})
        quirks = ['Сок "Добрый" \\ 1л', "tab\there", "emoji 🍏 яблоко", "x" * 400]
        if index % 4 == 0:
            event = _with_names(event, [item.name for item in event.receipt.items] + [rng.choice(quirks)])
        answers = {}
        for item in event.receipt.items:
            answers[item.name] = ParsedAnswer(
                normalized_name=item.name.title(),
                product=rng.choice([None, "Сок", 'Хлеб "Бородинский"']),
                brand=rng.choice([None, "Сочная Долина", "Ёлки\u2028Палки"]),
                category=rng.choice(taxonomy_categories),
                status=rng.choice(list(ItemStatus)),
            )
        sources = {name: rng.choice(list(ItemSource)) for name in answers}
        enriched_at = datetime(2026, 12, 1, 10, 0, 1, rng.randrange(10**6), tzinfo=UTC)
        ours = _encode(event, answers, model, enriched_at, sources)
        assert ours == _through_the_contract(event, answers, model, enriched_at, sources)
        assert orjson.loads(ours)["items"][0]["position"] == 1


def test_every_item_says_where_its_answer_came_from():
    names = ["ХЛЕБ БОРОД 300Г", "СОК СОЧН ДОЛ ПЕРСИК ЯБЛ 1,93Л", "БАНАНЫ ВЕС"]
    event = _with_names(sample_receipt_event(random.Random(3), names, 0, max_items=1), names)
    answers = {n: parse_answer(f"{n.title()}##{n.split()[0].title()}##-##Другое", n, TAXONOMY) for n in names}
    sources = dict(zip(names, [ItemSource.OVERRIDE, ItemSource.CACHE, ItemSource.MODEL]))
    enriched = EnrichedTransaction.model_validate_json(_encode(event, answers, sources=sources))
    assert [item.source for item in enriched.items] == [ItemSource.OVERRIDE, ItemSource.CACHE, ItemSource.MODEL]


def test_an_item_without_an_answer_is_a_key_error_not_a_silent_gap():
    event = sample_receipt_event(random.Random(2), ["ХЛЕБ БОРОД 300Г"], 0, max_items=1)
    with pytest.raises(KeyError):
        _encode(event, {})
