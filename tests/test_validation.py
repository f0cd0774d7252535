import random

import orjson
import pytest

from app.stages.validation import MAX_EVENT_BYTES, InvalidEvent, decode_event
from app.tools.samples import sample_receipt_event
from schemas.events import _LETTER_OR_DIGIT


def _valid() -> dict:
    event = sample_receipt_event(random.Random(3), ["ХЛЕБ БОРОД 300Г", "МОЛ ПРОСТОКВ 3,2% 930МЛ"], 0)
    return orjson.loads(event.model_dump_json())


def test_a_valid_event_decodes():
    event = decode_event(orjson.dumps(_valid()))
    assert event.receipt.items


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (None, "empty"),
        (b"", "empty"),
        (b"not json at all", "invalid_json"),
        (b"\xff\xfe\x00garbage", "invalid_json"),
        (b"[1, 2, 3]", "invalid_receipt"),
        (b"x" * (MAX_EVENT_BYTES + 1), "too_large"),
    ],
)
def test_malformed_bytes_are_rejected_with_their_kind(value, kind):
    with pytest.raises(InvalidEvent) as caught:
        decode_event(value)
    assert caught.value.kind == kind


def _mutated(mutate) -> bytes:
    document = _valid()
    mutate(document)
    return orjson.dumps(document)


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d["receipt"].pop("items"), "receipt.items"),
        (lambda d: d["receipt"].__setitem__("items", []), "receipt.items"),
        (lambda d: d["receipt"]["items"][0].__setitem__("price", "100"), "receipt.items.0.price"),
        (lambda d: d["receipt"]["items"][0].__setitem__("sum", -5), "receipt.items.0.sum"),
        (lambda d: d["receipt"]["items"][0].__setitem__("name", ""), "receipt.items.0.name"),
        (lambda d: d["receipt"]["items"][0].__setitem__("name", "Я" * 100_000), "receipt.items.0.name"),
        (lambda d: d["receipt"]["items"][0].__setitem__("name", " ## \t\x00 ##"), "receipt.items.0.name"),
        (lambda d: d["receipt"].__setitem__("totalSum", 10**15), "receipt.totalSum"),
        (lambda d: d.__setitem__("received_at", "yesterday"), "received_at"),
        (lambda d: d.pop("event_id"), "event_id"),
    ],
)
def test_wrong_types_and_missing_items_name_the_field_that_is_wrong(mutate, where):
    with pytest.raises(InvalidEvent) as caught:
        decode_event(_mutated(mutate))
    assert caught.value.kind == "invalid_receipt"
    assert where in caught.value.message


def test_error_messages_never_echo_the_offending_value():
    secret_name = "CLIENT-SECRET-" + "Я" * 1000
    with pytest.raises(InvalidEvent) as caught:
        decode_event(_mutated(lambda d: d["receipt"]["items"][0].__setitem__("name", secret_name)))
    assert "CLIENT-SECRET" not in caught.value.message


def test_the_letter_or_digit_check_is_exactly_str_isalnum_on_every_code_point():
    differing = [ch for ch in map(chr, range(0x110000)) if ch.isalnum() != (_LETTER_OR_DIGIT.match(ch) is not None)]
    assert differing == []
