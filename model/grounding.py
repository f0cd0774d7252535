"""Keep a brand only if the raw string supports it: a small model must not invent brands.

A brand is grounded when each of its words of 3+ letters (in its own script or transliterated
Latin → Cyrillic, the way registers print ``ЛИПТОН`` for Lipton) is printed in the raw string: as
it is, cut (registers cut words to 3–5 letters: ``СОЧН ДОЛ`` for Сочная Долина), or one typo away
(rapidfuzz ratio ≥ 80). Sharing three first letters was not enough: the model's ``Pamamamam`` passed
for ``PAMPERS``.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from rapidfuzz import fuzz
from rapidfuzz.distance import OSA

from model.product_noun import is_dictionary_word

_LATIN_TO_CYRILLIC = [
    ("sch", "ш"), ("sh", "ш"), ("ch", "ч"), ("zh", "ж"), ("kh", "х"), ("ts", "ц"), ("ya", "я"), ("yu", "ю"),
    ("yo", "е"), ("ee", "и"), ("oo", "у"), ("ph", "ф"), ("th", "т"), ("ck", "к"), ("qu", "кв"), ("x", "кс"),
    ("a", "а"), ("b", "б"), ("c", "к"), ("d", "д"), ("e", "е"), ("f", "ф"), ("g", "г"), ("h", "х"), ("i", "и"),
    ("j", "дж"), ("k", "к"), ("l", "л"), ("m", "м"), ("n", "н"), ("o", "о"), ("p", "п"), ("q", "к"), ("r", "р"),
    ("s", "с"), ("t", "т"), ("u", "у"), ("v", "в"), ("w", "в"), ("y", "и"), ("z", "з"),
]
_PREFIX = 3
_LATIN = re.compile(r"[a-z]")
_LATIN_ACCENTED = re.compile(r"[\u00c0-\u024f]")
_TYPO_RATIO = 80.0


@lru_cache(maxsize=1 << 16)
def to_cyrillic(text: str) -> str:
    """Latin letters to their usual Cyrillic register spelling, upper case (``Lipton`` → ``ЛИПТОН``); accented
    Latin letters as their base letter (registers print ``NESCAFE`` for Nescafé, ``PRESIDENT`` for Président)."""
    lower = _LATIN_ACCENTED.sub(lambda m: unicodedata.normalize("NFKD", m.group(0))[0], text.lower())
    if not _LATIN.search(lower):
        return lower.upper()  # most spans of a Russian register string: nothing to transliterate
    out, i = [], 0
    while i < len(lower):
        for latin, cyrillic in _LATIN_TO_CYRILLIC:
            if lower.startswith(latin, i):
                out.append(cyrillic)
                i += len(latin)
                break
        else:
            out.append(lower[i])
            i += 1
    return "".join(out).upper()


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower().replace("ё", "е"))


def _printed(word: str, raw_words: list[str]) -> bool:
    return any(
        word == raw or (len(raw) >= _PREFIX and word.startswith(raw)) or fuzz.ratio(word, raw) >= _TYPO_RATIO
        for raw in raw_words
    )


def brand_is_grounded(brand: str, raw_name: str) -> bool:
    raw_words = _words(raw_name) + _words(to_cyrillic(raw_name))
    for spelling in (brand, to_cyrillic(brand)):
        words = _words(spelling)
        long_words = [w for w in words if len(w) >= _PREFIX]
        if long_words and all(_printed(w, raw_words) for w in long_words):
            return True
        if not long_words and any(w in raw_words for w in words):
            return True
    return False


# Names: a word of a normalized name is supported when the string prints it, it spells out an abbreviation
# the string prints (``ПЕРС`` → персик, ``СЛД`` → сельдь) or one cut short (``гр`` → г), it corrects one typo of
# a printed word of 5+ letters, or it belongs to the answer's brand. A number is supported when the string prints
# the same value (`0,9` for `0,900`, `1,93` for `1.93`): the model used to change them (`90 г` for `55Г`).
_TYPO_MIN_LETTERS = 5
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


def numbers(text: str | None) -> list[str]:
    return _NUMBER.findall(text or "")


def number_value(number: str) -> float:
    return float(number.replace(",", "."))


def letter_runs(text: str | None) -> list[str]:
    # Registers glue units to numbers (``1,93Л``): letters and digits are separate words here.
    return re.findall(r"[a-zа-я]+|[0-9]+", (text or "").lower().replace("ё", "е"))


def _opens(abbreviation: str, word: str) -> bool:
    """``word`` spells out ``abbreviation``: same first letter, its letters in order (ПЕРС → персик, СЛД → сельдь)."""
    if not abbreviation or abbreviation[0] != word[0]:
        return False
    position = 0
    for letter in abbreviation:
        position = word.find(letter, position) + 1
        if position == 0:
            return False
    return True


def unsupported_words(normalized_name: str | None, raw_name: str, brand: str | None) -> tuple[list[str], int]:
    """(the words and numbers of the name that the string does not support, how many were judged)."""
    raw_words = set(letter_runs(raw_name)) | set(letter_runs(to_cyrillic(raw_name)))
    # Digit runs count too, for lists printed without spaces (`2110,2170`, which reads as one decimal), but not a
    # single digit: the `0` of `0,5Л` is no value of the string (`Водка пять озер 0% 0,5 л` passed).
    raw_values = {number_value(n) for n in numbers(raw_name)} | {float(run) for run in re.findall(r"\d{2,}", raw_name)}
    brand_words = set(letter_runs(brand)) | set(letter_runs(to_cyrillic(brand or "")))
    unsupported, judged = [], 0
    for word in letter_runs(normalized_name):
        if word.isdigit():
            continue
        judged += 1
        if word in raw_words or word in brand_words or to_cyrillic(word).lower() in raw_words:
            continue
        if word in ("x", "х") or any(raw.startswith(word) for raw in raw_words if raw.isalpha()):
            continue
        # Spelling out an abbreviation gives a dictionary word: a garbled copy (`белизнабелии` of БЕЛИЗНА,
        # `snickersnickers`) also holds the printed letters in order, but is no word.
        if is_dictionary_word(word) and any(_opens(raw, word) for raw in raw_words if raw.isalpha()):
            continue
        if len(word) >= _TYPO_MIN_LETTERS and any(
            OSA.distance(word, raw) <= 1 for raw in raw_words if abs(len(raw) - len(word)) <= 1
        ):
            continue
        unsupported.append(word)
    for number in numbers(normalized_name):
        judged += 1
        if number_value(number) not in raw_values:
            unsupported.append(number)
    return unsupported, judged
