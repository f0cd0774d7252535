import random
from datetime import UTC, datetime

from app.assembler import assemble, model_text
from app.samples import sample_receipt_event
from model.parser import parse_answer
from schemas.events import ModelIdentity
from schemas.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy()
IDENTITY = ModelIdentity(base_model="base", adapter="adapter", version="v1")


def test_receipt_is_reassembled_in_its_original_order_with_every_field():
    names = ["ХЛЕБ БОРОД 300Г", "СОК СОЧН ДОЛ ПЕРСИК ЯБЛ 1,93Л", "ХЛЕБ БОРОД 300Г", "БАНАНЫ ВЕС"]
    event = sample_receipt_event(random.Random(1), names, 0, max_items=1)
    event = event.model_copy(
        update={"receipt": event.receipt.model_copy(update={"items": [event.receipt.items[0].model_copy(update={"name": n}) for n in names]})}
    )
    answers = {
        model_text(n): parse_answer(f"{n.title()}##{n.split()[0].title()}##-##Другое", n, TAXONOMY) for n in set(names)
    }
    enriched = assemble(event, answers, IDENTITY, datetime.now(UTC))
    assert [i.position for i in enriched.items] == [1, 2, 3, 4]
    assert [i.raw_name for i in enriched.items] == names
    assert enriched.items[1].product == "Сок"
    assert enriched.event_id == event.event_id and enriched.client_id == event.client_id
    assert enriched.receipt.total_sum == event.receipt.totalSum
    assert enriched.model == IDENTITY
