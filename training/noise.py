"""How cash registers mangle product names: the noise model of the synthetic generator.

Every rate is a probability per generated string (or per word where it says so). Shares measured
on real strings (regexes as in tests/test_synth.py): of the 45 items of the receipt-parser benchmark
44% are all upper case and 49% carry a glued unit (``500Г``), 11% a ``БЗМЖ`` mark; of the 10,000
dfc2021 names (lower-cased by the organizers) 31% carry a glued unit, 0.8% a ``2 x 99.90`` tail
and none a leading article code (the seed article's example has one, so a small rate is kept).
The defaults follow those shares loosely; tests/test_synth.py measures that generated strings
follow the configured rates.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from model.grounding import to_cyrillic

_VOWELS = set("аеёиоуыэюяАЕЁИОУЫЭЮЯaeiouAEIOU")
_CYRILLIC_TO_LATIN = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i", "й": "y",
    "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f",
    "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "sch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya",
}
_UNIT_RE = re.compile(r"^(\d+(?:[.,]\d+)?)\s+(л|мл|г|кг|шт|м|см)$")


@dataclass(frozen=True)
class NoiseConfig:
    upper_case: float = 0.55  # register style: everything upper case
    lower_case: float = 0.25  # dfc2021 style: everything lower case (the rest keeps the written case)
    abbreviated_head: float = 0.7  # the product head printed as a register abbreviation (СОК СОЧН → НЕК)
    cut_word: float = 0.45  # per other word: cut to 3–5 letters (СОЧНАЯ → СОЧН)
    drop_vowels: float = 0.06  # per other word: drop inner vowels (ПРСК)
    drop_variant: float = 0.2  # the flavour/kind is left out
    drop_size: float = 0.15  # the pack size is left out
    glue_unit: float = 0.6  # 1,93 л → 1,93Л
    dot_decimal: float = 0.3  # 1,93 → 1.93
    grams_as_gr: float = 0.2  # 400 г → 400ГР
    brand_quoted: float = 0.12  # "ВОЛЖСКИЕ ДАЛИ"
    brand_first: float = 0.12  # РОГАЧЕВ Молоко сгущенное ...
    brand_last: float = 0.15  # ... 2 ШТ.ENERGIZER
    brand_transliterated: float = 0.2  # Latin brand printed in Cyrillic (ЛИПТОН) or the reverse (5% of that)
    brand_cut: float = 0.35  # brand words cut like other words (СОЧН ДОЛ)
    article_code: float = 0.04  # 36572156371 вино ...
    quantity_tail: float = 0.03  # ... 1.000 x 469.90
    piece_tail: float = 0.03  # ... (шт.)
    article_tail: float = 0.02  # ... Арт. 14803000
    dairy_prefix: float = 0.3  # БЗМЖ before dairy (the legal no-milk-fat-substitute mark)
    typo: float = 0.05  # one swapped, dropped or doubled letter
    truncate: float = 0.06  # cut at a register's field width (28–40 characters)


def cut_word(rng: random.Random, word: str) -> str:
    if len(word) <= 5 or not word.isalpha():
        return word
    return word[: rng.randint(3, 5)]


def drop_vowels(word: str) -> str:
    if len(word) <= 3 or not word.isalpha():
        return word
    return word[0] + "".join(ch for ch in word[1:-1] if ch not in _VOWELS) + word[-1]


def to_latin(text: str) -> str:
    return "".join(_CYRILLIC_TO_LATIN.get(ch, ch) for ch in text.lower()).upper()


def is_latin(text: str) -> bool:
    return bool(re.search(r"[A-Za-z]", text)) and not re.search(r"[А-Яа-яЁё]", text)


def format_size(rng: random.Random, size: str, config: NoiseConfig) -> str:
    match = _UNIT_RE.match(size)
    if not match:
        return size
    number, unit = match.groups()
    if rng.random() < config.dot_decimal:
        number = number.replace(",", ".")
    if unit == "г" and rng.random() < config.grams_as_gr:
        unit = "гр"
    return f"{number}{unit}" if rng.random() < config.glue_unit else f"{number} {unit}"


def typo(rng: random.Random, text: str) -> str:
    letters = [i for i, ch in enumerate(text) if ch.isalpha()]
    if len(letters) < 4:
        return text
    i = rng.choice(letters[1:-1])
    kind = rng.randrange(3)
    if kind == 0 and i + 1 < len(text):
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if kind == 1:
        return text[:i] + text[i + 1 :]
    return text[:i] + text[i] + text[i:]
