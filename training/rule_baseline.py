"""The dictionary rule every real-receipt report shows beside the model (pure, no torch).

product = the first Cyrillic word of the string; brand = the longest name of a brand list (the
VTB Data Fusion Contest 2021 brand labels with at least 50 rows) found in the string as whole words.
It needs no training and reads the string, so a model that scores below it has not learned to read.
A second product rule, the first word that pymorphy3 tags as a noun as written, is reported beside it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

MIN_BRAND_COUNT = 50
_WORD = re.compile(r"[0-9a-zа-яё]+(?:[-'][0-9a-zа-яё]+)*")
_CYRILLIC_WORD = re.compile(r"[а-яё]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("ё", "е"))


def read_brand_counts(path: Path, min_count: int = MIN_BRAND_COUNT) -> list[str]:
    """Brand names of a ``brand,count`` CSV with at least ``min_count`` rows."""
    with Path(path).open(encoding="utf-8", newline="") as source:
        return [row["brand"] for row in csv.DictReader(source) if int(row["count"]) >= min_count and row["brand"].strip()]


class DictionaryRule:
    """First Cyrillic word as product, the longest listed brand printed as whole words as brand."""

    def __init__(self, brands: Iterable[str]) -> None:
        self._by_first: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for brand in brands:
            words = tuple(_words(brand))
            if words:
                self._by_first.setdefault(words[0], []).append((words, brand))

    def product(self, raw_name: str) -> str | None:
        match = _CYRILLIC_WORD.search(raw_name.lower())
        return match.group(0) if match else None

    def brand(self, raw_name: str) -> str | None:
        words = _words(raw_name)
        best: tuple[int, str] | None = None
        for start, word in enumerate(words):
            for candidate, name in self._by_first.get(word, ()):
                if tuple(words[start : start + len(candidate)]) == candidate:
                    length = len(" ".join(candidate))
                    if best is None or length > best[0]:
                        best = (length, name)
        return best[1] if best else None


@lru_cache(maxsize=1)
def _morph():
    import pymorphy3

    return pymorphy3.MorphAnalyzer()


def first_noun(raw_name: str) -> str | None:
    """The first word pymorphy3's best parse tags as a noun, as written."""
    for word in _CYRILLIC_WORD.findall(raw_name.lower()):
        if "NOUN" in _morph().parse(word)[0].tag:
            return word
    return None
