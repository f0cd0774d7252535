"""Restore the case of the model's lower-case answer fields (pure).

The model reads and writes lower case (model/prompt.py): registers print one item in any case, and a
small model copies a word of the string into its answer far more easily when both are the same tokens.
What a customer sees is cased here: the name and the product start with a capital, the brand's words
start with capitals (``сочная долина`` → ``Сочная Долина``, ``coca-cola`` → ``Coca-Cola``) and keep
that spelling inside the name. A field the model already wrote with capitals is left as written.
"""

from __future__ import annotations

import re

_WORD_START = re.compile(r"(^|[\s\-&/.])(\w)")


def brand_case(brand: str) -> str:
    if brand != brand.lower():
        return brand
    return _WORD_START.sub(lambda m: m.group(1) + m.group(2).upper(), brand)


def sentence_case(text: str) -> str:
    if text != text.lower():
        return text
    return text[:1].upper() + text[1:]


def restore_case(normalized_name: str | None, product: str | None, brand: str | None) -> tuple[str | None, str | None, str | None]:
    """(name, product, brand) in display case; ``None`` stays ``None``."""
    cased_brand = brand_case(brand) if brand else brand
    name = normalized_name
    if name is not None:
        lowered = name == name.lower()
        name = sentence_case(name)
        if lowered and brand and cased_brand != brand:
            name = re.sub(re.escape(brand), lambda _: cased_brand, name, flags=re.IGNORECASE)
    return name, sentence_case(product) if product else product, cased_brand
