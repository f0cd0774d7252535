"""``receipt-enricher corrections export``: the active overrides, read from Kafka, as labelled training rows."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from app.kafka.overrides_reader import start_overrides
from app.settings import Settings
from schemas.taxonomy import load_taxonomy
from training.corrections import correction_rows
from training.labels import read_rows, write_rows


def export_corrections(settings: Settings, out: Path, labels: Path) -> str:
    """Write the rows to ``out``; returns the summary line. Raises OverridesNotLoaded or LabelError."""
    taxonomy = load_taxonomy()
    labelled = read_rows(labels, taxonomy)
    view, reader = start_overrides(settings, taxonomy)
    reader.stop()  # start() returned once the topic was read to its end: the view holds every override
    export = correction_rows(view.published(), labelled)
    written = write_rows(out, export.rows)
    by_labeller = Counter(row.labeller.split("+", 1)[0] for row in export.rows)
    return (
        f"exported {written} corrected item(s) to {out} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(by_labeller.items())) or 'none'}); "
        f"{export.completed_from_labels} completed from {labels.name}, "
        f"{export.skipped_partial} partial override(s) skipped (item not in the labels, fields left open), "
        f"{export.skipped_unwritable} skipped (tab or line break in the raw name)"
    )
