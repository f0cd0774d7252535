"""Accepted corrections as labelled rows in training/labels.py's format, so the next training run learns from them.

``receipt-enricher corrections export`` reads the active overrides from Kafka and writes these rows; this
module only turns overrides into rows (no Kafka). An override sets some fields; a row needs all four.
The fields nobody corrected come from the item's labelled row, when the labels have one (its labeller
is kept in the provenance); an override of an item nobody labelled that leaves a field open is skipped
and counted, never completed with a guess.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from model.item_key import item_key
from schemas.events import CORRECTABLE_FIELDS, Override
from training.labels import LabeledRow, is_gold

SOURCE = "corrections"
# The rows follow the corrections flow's rules (docs/corrections.md), not the labelling guideline's.
GUIDELINE = "corrections.1"


@dataclass(frozen=True, slots=True)
class Export:
    rows: list[LabeledRow]
    completed_from_labels: int  # partial overrides whose other fields came from a labelled row
    skipped_partial: int  # partial overrides of items without a labelled row
    skipped_unwritable: int  # raw names with a tab or line break, which the TSV format cannot hold


def correction_rows(overrides: Mapping[str, Override], labelled: Sequence[LabeledRow]) -> Export:
    """One row per override (``overrides`` by item key digest, the row's ``source_id``), in digest order."""
    by_key = {item_key(row.raw_name): row for row in labelled}
    rows: list[LabeledRow] = []
    completed = skipped = unwritable = 0
    for digest, override in sorted(overrides.items()):
        if "\t" in override.raw_name or "\n" in override.raw_name or "\r" in override.raw_name:
            unwritable += 1
            continue
        base = by_key.get(override.item_key)
        labeller = ",".join(sorted(set(override.basis.values())))
        values: dict[str, str | None] = {}
        if not set(CORRECTABLE_FIELDS) <= override.fields.keys():
            if base is None:
                skipped += 1
                continue
            completed += 1
            labeller = f"{labeller}+{base.labeller}"
            values = {
                "normalized_name": base.normalized_name,
                "product": base.product,
                "brand": base.brand,
                "category_id": base.category,
            }
        values.update(override.fields)
        rows.append(
            LabeledRow(
                source=SOURCE,
                source_id=digest,
                raw_name=override.raw_name,
                normalized_name=str(values["normalized_name"]),
                product=str(values["product"]),
                brand=values["brand"],
                category=str(values["category_id"]),
                labeller=labeller,
                guideline=GUIDELINE,
                split="gold" if is_gold(override.raw_name) else "train",
            )
        )
    return Export(rows=rows, completed_from_labels=completed, skipped_partial=skipped, skipped_unwritable=unwritable)
