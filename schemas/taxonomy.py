"""The fixed spend-category taxonomy: one JSON file read by training and inference alike."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

TAXONOMY_PATH = Path(__file__).with_name("taxonomy.json")
FALLBACK_CATEGORY_ID = "other"


class UnknownCategory(KeyError):
    """A category id or name that the taxonomy does not contain."""


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    name: str


def _fold(text: str) -> str:
    # Answers differ from the canonical name only in case, ё/е and spacing; none of those change the meaning.
    return " ".join(text.lower().replace("ё", "е").split())


@dataclass(frozen=True)
class Taxonomy:
    version: str
    categories: tuple[Category, ...]

    def __post_init__(self) -> None:
        ids = [c.id for c in self.categories]
        names = [_fold(c.name) for c in self.categories]
        if len(set(ids)) != len(ids) or len(set(names)) != len(names):
            raise ValueError("taxonomy ids and names must be unique")
        if FALLBACK_CATEGORY_ID not in ids:
            raise ValueError(f"taxonomy must contain the fallback category {FALLBACK_CATEGORY_ID!r}")
        lookup = {c.id: c for c in self.categories}
        lookup.update({_fold(c.name): c for c in self.categories})
        object.__setattr__(self, "_lookup", lookup)

    def by_id(self, category_id: str) -> Category:
        for category in self.categories:
            if category.id == category_id:
                return category
        raise UnknownCategory(f"category id {category_id!r} is not in taxonomy {self.version}")

    def resolve(self, text: str) -> Category:
        """Find a category by its id or its Russian name, ignoring case, ё/е and spacing."""
        found = self._lookup.get(_fold(text)) or self._lookup.get(text.strip())  # type: ignore[attr-defined]
        if found is None:
            raise UnknownCategory(f"{text!r} is neither an id nor a name in taxonomy {self.version}")
        return found

    @property
    def fallback(self) -> Category:
        return self.by_id(FALLBACK_CATEGORY_ID)

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.categories]


def parse_taxonomy(document: dict) -> Taxonomy:
    return Taxonomy(
        version=str(document["version"]),
        categories=tuple(Category(id=c["id"], name=c["name"]) for c in document["categories"]),
    )


@lru_cache(maxsize=4)
def load_taxonomy(path: Path = TAXONOMY_PATH) -> Taxonomy:
    return parse_taxonomy(json.loads(Path(path).read_text(encoding="utf-8")))
