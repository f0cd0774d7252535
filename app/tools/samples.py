"""Sample receipt events in the FNS receipt-check format, built from a list of item names.

Used by the demo (``receipt-enricher produce-samples``), the tests and the benchmarks. The names ship
inside the package (``sample_items.txt``, package data), so an installed worker image has them too.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from importlib import resources

from schemas.events import Receipt, ReceiptEvent, ReceiptItem

SAMPLE_ITEMS = "sample_items.txt"
_SELLERS = (
    ("ООО \"Агроторг\"", "7825706086"),
    ("АО \"Тандер\"", "2310031475"),
    ("ООО \"Лента\"", "7814148471"),
    ("ООО \"Ашан\"", "7703270067"),
    ("АО \"Дикси Юг\"", "5036045205"),
)


def sample_items_bytes() -> bytes:
    """The sample item file as shipped (the benchmark records its hash)."""
    return resources.files(__package__).joinpath(SAMPLE_ITEMS).read_bytes()


def load_item_names() -> list[str]:
    names = [line.strip() for line in sample_items_bytes().decode("utf-8").splitlines()]
    return [name for name in names if name and not name.startswith("#")]


def sample_receipt_event(rng: random.Random, item_names: list[str], index: int, max_items: int = 8) -> ReceiptEvent:
    """A plausible receipt: 1..max_items lines, amounts consistent in kopecks."""
    items = []
    for name in rng.sample(item_names, k=rng.randint(1, min(max_items, len(item_names)))):
        price = rng.randint(20, 3000) * 100 + rng.choice((0, 90, 99, 50))
        quantity = rng.choice((1, 1, 1, 2, 3)) if rng.random() < 0.8 else round(rng.uniform(0.1, 2.5), 3)
        items.append(ReceiptItem(name=name, price=price, quantity=quantity, sum=round(price * quantity)))
    seller, inn = rng.choice(_SELLERS)
    issued = datetime(2026, 11, 1, 9, 0) + timedelta(minutes=7 * index + rng.randint(0, 6))
    receipt = Receipt(
        dateTime=issued,
        totalSum=sum(item.sum for item in items),
        user=seller,
        userInn=inn,
        kktRegId=f"{rng.randint(10**15, 10**16 - 1)}",
        fiscalDriveNumber=f"{rng.randint(10**15, 10**16 - 1)}",
        fiscalDocumentNumber=rng.randint(1, 200_000),
        fiscalSign=rng.randint(10**8, 4 * 10**9),
        operationType=1,
        items=items,
    )
    return ReceiptEvent(
        event_id=f"evt-{index:08d}-{rng.randrange(16**8):08x}",
        client_id=f"client-{rng.randint(1, 5000):05d}",
        received_at=datetime.now(UTC),
        receipt=receipt,
    )
