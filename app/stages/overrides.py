"""Active overrides, answered before the cache and the model.

``OverridesView`` holds every active override of every item (all partitions of the compacted overrides
topic; app/kafka/overrides_reader.py fills it), so any worker can answer any item. An override may set
only some fields (a customer re-categorizes, nothing else): those fields replace the cached or generated
answer's, which is why the cache only ever holds the model's own answers and an override never goes
stale behind one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace

from app.stages.cache import item_digest
from model.confidence import FieldConfidence
from model.parser import ParsedAnswer
from schemas.events import CORRECTABLE_FIELDS, ItemStatus, Override
from schemas.taxonomy import Category, Taxonomy, UnknownCategory

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ItemOverride:
    """An override with its category resolved in this worker's taxonomy."""

    fields: frozenset[str]
    normalized_name: str | None = None
    product: str | None = None
    brand: str | None = None
    category: Category | None = None

    @classmethod
    def from_contract(cls, override: Override, taxonomy: Taxonomy) -> "ItemOverride":
        """Raises UnknownCategory when the category is not in this worker's taxonomy."""
        values = override.fields
        category_id = values.get("category_id")
        return cls(
            fields=frozenset(values),
            normalized_name=values.get("normalized_name"),
            product=values.get("product"),
            brand=values.get("brand"),
            category=taxonomy.by_id(category_id) if category_id is not None else None,
        )

    @property
    def complete(self) -> bool:
        """Every field is set: the answer needs neither the cache nor the model."""
        return self.fields.issuperset(CORRECTABLE_FIELDS)

    def answer(self) -> ParsedAnswer:
        """The whole answer of a complete override."""
        assert self.complete and self.normalized_name is not None and self.category is not None
        # People decided every field: nothing for the confidence gate to withhold.
        return ParsedAnswer(self.normalized_name, self.product, self.brand, self.category, ItemStatus.OK, FieldConfidence(1.0, 1.0, 1.0))

    def over(self, base: ParsedAnswer) -> ParsedAnswer:
        """``base`` (a cached or generated answer) with this override's fields in place of its own.

        The status stays the base's: it says how the model did on the fields nobody corrected.
        """
        fields = self.fields
        confidence = base.confidence
        if confidence is not None:
            # A corrected field is what people decided: certain, never withheld by the confidence gate.
            confidence = FieldConfidence(
                product=1.0 if "product" in fields else confidence.product,
                brand=1.0 if "brand" in fields else confidence.brand,
                category=1.0 if self.category is not None else confidence.category,
            )
        return replace(
            base,
            confidence=confidence,
            normalized_name=self.normalized_name if "normalized_name" in fields else base.normalized_name,
            product=self.product if "product" in fields else base.product,
            brand=self.brand if "brand" in fields else base.brand,
            category=self.category if self.category is not None else base.category,
        )


class OverridesView:
    """Item key digest → its active override. Written by the reader's thread, read by the prepare thread."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self._taxonomy = taxonomy
        self._overrides: dict[str, ItemOverride] = {}
        self._contracts: dict[str, Override] = {}  # as published: what the training export writes
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._overrides)

    def apply(self, digest: str, override: Override | None) -> None:
        """Set or (``None``: a tombstone) remove the override of one item."""
        resolved = None
        if override is not None:
            try:
                resolved = ItemOverride.from_contract(override, self._taxonomy)
            except UnknownCategory:
                # The corrections agent checked it against its taxonomy: this worker runs another taxonomy version.
                log.warning("override_skipped reason=unknown_category taxonomy=%s", self._taxonomy.version)
        with self._lock:
            if resolved is None:
                self._overrides.pop(digest, None)
                self._contracts.pop(digest, None)
            else:
                self._overrides[digest] = resolved
                self._contracts[digest] = override

    def published(self) -> dict[str, Override]:
        """Every active override as published, by item key digest."""
        with self._lock:
            return dict(self._contracts)

    def lookup(self, texts: Iterable[str]) -> dict[str, ItemOverride]:
        """The active override of each text that has one."""
        with self._lock:
            found = {text: self._overrides.get(item_digest(text)) for text in texts}
        return {text: override for text, override in found.items() if override is not None}
