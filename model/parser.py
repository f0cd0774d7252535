"""Turn the model's answer text into fields, never dropping an item silently.

An answer that does not parse still yields the best valid fields it holds, with a status saying
what went wrong; the caller counts and publishes that status.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from model.grounding import brand_is_grounded, letter_runs, number_value, numbers, unsupported_words
from model.casing import restore_case
from model.confidence import FieldConfidence, Signals
from model.lexicon import BrandMatch
from model.product_noun import grammar, is_dictionary_word, nominative_head
from model.prompt import FIELD_SEPARATOR, NO_BRAND, clean_raw_name
from schemas.events import ItemStatus
from schemas.taxonomy import Category, Taxonomy, UnknownCategory

MAX_NAME_CHARS = 256
MAX_FIELD_CHARS = 80
_FIELD_COUNT = 4
# `г`, `кг`, `мл`, `шт`: a word this short right after a dropped number is its unit.
_UNIT_CHARS = 3
# Parts of speech that cannot end a product (pymorphy3): prepositions, conjunctions, particles.
_DANGLING = frozenset({"PREP", "CONJ", "PRCL"})
# A printed cut word a product word may spell out: shorter ones (`укр`, `доб`) began garbled copies (`укроскрос`).
_CUT_WORD_LETTERS = 4
# Units a quantity is printed with, as registers spell them, to one spelling each (`1,93Л`, `55 гр`, `20ШТ`).
_UNITS = {
    "г": "г", "гр": "г", "g": "г", "gr": "г", "кг": "кг", "kg": "кг", "мл": "мл", "ml": "мл", "л": "л", "l": "л",
    "шт": "шт", "pcs": "шт", "м": "м", "m": "м", "см": "см", "мм": "мм", "mm": "мм",
}
_PRINTED_QUANTITY = re.compile(r"(\d+(?:[.,]\d+)?)\s*([a-zа-я]+)")


@dataclass(frozen=True, slots=True)
class ParsedAnswer:
    normalized_name: str
    product: str | None
    brand: str | None
    category: Category
    status: ItemStatus
    # Calibrated confidence per field (model/confidence.py); None where the generator reports no probabilities.
    confidence: FieldConfidence | None = None
    # The raw signals behind it: what calibration is fitted on, never published; diagnostics, so two answers
    # that differ only in the last bits of a probability (batched against alone, merged against not) are equal.
    signals: Signals | None = field(default=None, compare=False)


def _field(parts: list[str], index: int, limit: int) -> str | None:
    if index >= len(parts):
        return None
    value = " ".join(parts[index].split())
    if not value or len(value) > limit:
        return None
    return value


def _printed_units(raw_name: str) -> dict[float, set[str]]:
    """Each value the string prints with a unit right after it, and those units (`60Л 20ШТ` → 60: л, 20: шт)."""
    units: dict[float, set[str]] = {}
    for value, unit in _PRINTED_QUANTITY.findall(raw_name.lower()):
        if unit in _UNITS:
            units.setdefault(number_value(value), set()).add(_UNITS[unit])
    return units


def _quantities_checked(words: list[str], raw_name: str) -> list[str]:
    """The name's words without a quantity (a number and its unit) that the string prints with another unit
    (`20 л` for `20ШТ`) or that the name already said (`20 л 20 л 20 л`): the value check alone passes both,
    the value being printed."""
    printed = _printed_units(raw_name)
    said: set[tuple[str, str]] = set()
    kept: list[str] = []
    index = 0
    while index < len(words):
        word, unit = words[index], words[index + 1].lower() if index + 1 < len(words) else ""
        if numbers(word) == [word] and unit in _UNITS:
            value = number_value(word)
            quantity = (f"{value:g}", _UNITS[unit])
            if quantity in said or (value in printed and _UNITS[unit] not in printed[value]):
                index += 2
                continue
            said.add(quantity)
        kept.append(word)
        index += 1
    return kept


def _unstuttered(words: list[str]) -> list[str]:
    """A small model stutters: a run of words right after itself is said once (`вода кубай кубай`, `три корочки
    три корочки`), and a cut word right before its whole form goes (`ультрапастер ультрапастеризованное`; a
    dictionary word stays: `Чай чайный`)."""
    folded = [w.lower() for w in words]
    kept: list[int] = []
    index = 0
    while index < len(words):
        run = next(
            (n for n in range(1, len(kept) + 1) if [folded[i] for i in kept[-n:]] == folded[index : index + n]), 0
        )
        if run:
            index += run
            continue
        cut = folded[kept[-1]] if kept else ""
        if len(cut) >= 3 and folded[index].startswith(cut) and folded[index] != cut and not is_dictionary_word(cut):
            kept.pop()
        kept.append(index)
        index += 1
    return [words[i] for i in kept]


def _grounded_name(normalized: str, raw_name: str, brand: str | None) -> str:
    """The model's name without the words and numbers the string does not support (model/grounding.py), a
    short unit after a dropped number going with it (`90 г`); the string itself, cleaned, when that leaves
    less than half of the name: a name must invent nothing."""
    normalized = " ".join(_quantities_checked(_unstuttered(normalized.split()), raw_name)) or normalized
    unsupported, judged = unsupported_words(normalized, raw_name, brand)
    if not unsupported:
        return normalized
    bad = set(unsupported)
    kept: list[str] = []
    dropped_number = False
    for word in normalized.split():
        unit_of_dropped = dropped_number and word.isalpha() and len(word) <= _UNIT_CHARS
        dropped_number = bool(bad & set(numbers(word)))
        if unit_of_dropped or dropped_number or bad & {run for run in letter_runs(word) if run.isalpha()}:
            continue
        kept.append(word)
    if judged - len(unsupported) < judged / 2 or not kept:
        return clean_raw_name(raw_name).lower()
    return " ".join(kept)


def _garbled(part: str, printed: list[str]) -> bool:
    """An unprinted part of a product word that is no word: a number, or Cyrillic letters neither in pymorphy3's
    dictionary nor spelling out a printed cut word (`антицелл` → `антицеллюлитный`, which the dictionary lacks).
    pymorphy3 judges Cyrillic only: an unprinted Latin term stays (`Кабель USB`)."""
    if part.isdigit():
        return True
    return not part.isascii() and not is_dictionary_word(part) and not any(part.startswith(cut) for cut in printed)


def _grounded_product(product: str, raw_name: str, brand: str | None) -> str:
    """The product's first word (the decoder writes only one the string offers: model/answer_constraints.py)
    and the words after it up to the first that the string does not support and that is no word either: the
    rest of the product is decoded freely, and on strings it cannot read the small model wrote garbled copies
    (`Набор укроскрос` for `нб 3шт укр/roya`, `Печенье кевикевикевикев`). A word it adds that the string does
    not print but the dictionary knows stays (`Резинка жевательная` for `орбит`), and so does a Latin one; a
    preposition or conjunction left at the end goes (`Набор для`)."""
    words = product.split()
    printed = [run for run in letter_runs(raw_name) if run.isalpha() and len(run) >= _CUT_WORD_LETTERS]
    unsupported, _ = unsupported_words(" ".join(words[1:]), raw_name, brand)
    garbled = {part for part in unsupported if _garbled(part, printed)}
    kept = words[:1]
    for word in words[1:]:
        if garbled & (set(letter_runs(word)) | set(numbers(word))):
            # Cut here: a preposition or conjunction left at the end goes with what it introduced.
            while len(kept) > 1 and grammar(kept[-1].lower()) in _DANGLING:
                kept.pop()
            break
        kept.append(word)
    return " ".join(kept)


def parse_answer(answer: str, raw_name: str, taxonomy: Taxonomy, known_brand: BrandMatch | None = None) -> ParsedAnswer:
    """Parse ``normalized##product##brand##category``; fields that cannot be trusted fall back.

    Fallbacks: the cleaned raw name for the normalized name, no product, no brand, and the
    taxonomy's ``other`` category. A brand the raw string does not support is dropped (see
    model/grounding.py): no brand is a better answer than an invented one. A known brand alias printed
    in the string (``known_brand``, the lexicon's match: model/lexicon.py) gives the brand in its canonical spelling, whatever the
    model wrote: the small model misspells brands it reads (`Pamamamam`).
    """
    first_line = answer.strip().split("\n", 1)[0]
    parts = first_line.split(FIELD_SEPARATOR)
    well_formed = len(parts) == _FIELD_COUNT and all(p.strip() for p in parts)

    normalized = _field(parts, 0, MAX_NAME_CHARS)
    product = _field(parts, 1, MAX_FIELD_CHARS)
    if product is not None:
        product = nominative_head(product)
    brand = _field(parts, 2, MAX_FIELD_CHARS)
    if brand is not None and brand != NO_BRAND and not brand_is_grounded(brand, raw_name):
        # An invented brand also leaves the normalized name, which would otherwise still show it.
        if normalized is not None:
            normalized = " ".join(normalized.replace(brand, " ").split()) or None
        brand = None
    elif brand == NO_BRAND:
        brand = None
    if known_brand is not None:
        brand = known_brand.brand
    if normalized is not None:
        normalized = _grounded_name(normalized, raw_name, brand)
    if product is not None:
        product = _grounded_product(product, raw_name, brand)
    category_text = parts[-1] if len(parts) >= _FIELD_COUNT else ""

    normalized, product, brand = restore_case(normalized, product, brand)

    status = ItemStatus.OK if well_formed else ItemStatus.MALFORMED_ANSWER
    if normalized is None or product is None:
        status = ItemStatus.MALFORMED_ANSWER
    try:
        category = taxonomy.resolve(category_text)
    except UnknownCategory:
        category = taxonomy.fallback
        if status is ItemStatus.OK:
            status = ItemStatus.UNKNOWN_CATEGORY

    return ParsedAnswer(
        normalized_name=normalized or clean_raw_name(raw_name) or raw_name[:MAX_NAME_CHARS],
        product=product,
        brand=brand,
        category=category,
        status=status,
    )
