"""Put the product's head noun in the nominative, keeping its number (pure; pymorphy3, no torch).

The product starts with its head noun (training/labelling.md). A model that copies the word as a
register printed it gives inflected forms (``колготок``, ``йогурта``); the product field is a name,
so the noun is put in the nominative. Only a word that has no nominative noun reading is changed:
``батарейки`` (genitive singular or nominative plural) stays as it is.
"""

from __future__ import annotations

from functools import lru_cache

import pymorphy3


@lru_cache(maxsize=1)
def _analyzer() -> pymorphy3.MorphAnalyzer:
    # ~0.3 s and ~15 MB to load the Russian dictionaries that ship in pymorphy3-dicts-ru.
    return pymorphy3.MorphAnalyzer()


# One parse per word serves every reading below: a parse costs ~0.3 ms, and the decoder's rankers ask
# several questions of each word of every item (model/head_ranker.py).
@lru_cache(maxsize=1 << 15)
def _parses(word: str) -> tuple:
    return tuple(_analyzer().parse(word))


@lru_cache(maxsize=1 << 14)
def _nominative(word: str) -> str:
    nouns = [p for p in _parses(word) if "NOUN" in p.tag and p.is_known]
    if not nouns or any("nomn" in p.tag for p in nouns):
        return word
    best = nouns[0]
    wanted = {"nomn", best.tag.number} if best.tag.number else {"nomn"}
    inflected = best.inflect(wanted)
    return inflected.word if inflected is not None else word


@lru_cache(maxsize=1 << 14)
def is_noun(word: str) -> bool:
    """pymorphy3's likeliest reading of ``word`` is a noun."""
    return _parses(word)[0].tag.POS == "NOUN"


def nominative_head(product: str) -> str:
    """``product`` with its first word in the nominative when that word is an inflected Russian noun."""
    head, _, rest = product.partition(" ")
    if not head.isalpha() or not all("а" <= ch <= "я" or ch == "ё" for ch in head.lower()):
        return product
    lowered = head.lower()
    normal = _nominative(lowered)
    if normal == lowered:
        return product
    if head.isupper() and len(head) > 1:
        normal = normal.upper()
    elif head[0].isupper():
        normal = normal[0].upper() + normal[1:]
    return f"{normal} {rest}" if rest else normal


@lru_cache(maxsize=1 << 14)
def grammar(word: str) -> str:
    """pymorphy3's likeliest part of speech of ``word``, with the case for a noun (``NOUN:gent``, ``ADJF``)."""
    tag = _parses(word)[0].tag
    return f"{tag.POS}:{tag.case}" if tag.POS == "NOUN" else str(tag.POS)


_PROPER = frozenset({"Name", "Surn", "Patr", "Geox", "Orgn", "Trad"})


@lru_cache(maxsize=1 << 14)
def dictionary_reading(word: str) -> str:
    """How pymorphy3's dictionary reads a Cyrillic word: ``p`` a proper name (a name, a place, a trade
    mark), ``k`` another word it knows, ``u`` unknown (a made-up or foreign word: often a brand)."""
    parse = _parses(word)[0]
    if _PROPER & set(parse.tag.grammemes):
        return "p"
    return "k" if _analyzer().word_is_known(word) else "u"


@lru_cache(maxsize=1 << 14)
def is_dictionary_word(word: str) -> bool:
    """pymorphy3's dictionary holds ``word`` (not a guess from its ending)."""
    return _analyzer().word_is_known(word)
