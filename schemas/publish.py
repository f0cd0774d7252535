"""Write the JSON Schema files the mobile-app team reads: ``python -m schemas.publish``.

The files are generated from the pydantic contracts; tests/test_schemas.py fails when they drift.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.events import CorrectionEvent, DeadLetter, EnrichedTransaction, Override, ReceiptEvent

SCHEMA_DIR = Path(__file__).with_name("jsonschema")

# (file name, model, mode): inputs are described as accepted, outputs as produced.
PUBLISHED: tuple[tuple[str, type[BaseModel], str], ...] = (
    ("receipt-event.schema.json", ReceiptEvent, "validation"),
    ("enriched-transaction.schema.json", EnrichedTransaction, "serialization"),
    ("dead-letter.schema.json", DeadLetter, "serialization"),
    ("correction-event.schema.json", CorrectionEvent, "validation"),
    ("override.schema.json", Override, "serialization"),
)


def render(model: type[BaseModel], mode: str) -> str:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **model.model_json_schema(mode=mode)}
    return json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def main() -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for file_name, model, mode in PUBLISHED:
        (SCHEMA_DIR / file_name).write_text(render(model, mode), encoding="utf-8")
        print(SCHEMA_DIR / file_name)


if __name__ == "__main__":
    main()
