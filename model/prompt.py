"""The prompt and answer format shared by training and serving.

One prompt per line item, answered as ``normalized name##product##brand##category`` (the seed
article's format; ``-`` when there is no brand). Every item is its own sequence in the batch, so
text inside one item can never spill into another item's answer.
"""

from __future__ import annotations

import re
import unicodedata

FIELD_SEPARATOR = "##"
NO_BRAND = "-"
PROMPT_PREFIX = "Чек: "
PROMPT_SUFFIX = "\nОтвет: "
# FNS limits an item name to 128 characters; anything longer is noise or an attack, and tokens cost money.
MAX_RAW_CHARS = 160

_CONTROL_OR_SEPARATOR = re.compile(r"[#\s]+")


def clean_raw_name(raw_name: str) -> str:
    """Make a raw item name safe to embed in a prompt.

    Control characters and ``#`` would let an item name fake the answer format (``...##Алкоголь``),
    so they become spaces; the result is NFC-normalized, single-spaced and cut to MAX_RAW_CHARS.
    """
    text = unicodedata.normalize("NFC", raw_name)
    # isprintable() is False for every category-C character, so printable text skips the per-character
    # pass, which was the pipeline's largest single cost (bench/run.py, zero-cost worker profile).
    if not text.isprintable():
        text = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    text = _CONTROL_OR_SEPARATOR.sub(" ", text).strip()
    return text[:MAX_RAW_CHARS].rstrip()


def build_prompt(raw_name: str) -> str:
    """The model reads the item in lower case: registers print the same item in any case
    (``СОК``, ``Сок``, ``сок``), and a small model would otherwise need every item in every case to learn it."""
    return f"{PROMPT_PREFIX}{clean_raw_name(raw_name).lower()}{PROMPT_SUFFIX}"


def format_answer(normalized_name: str, product: str, brand: str | None, category_name: str) -> str:
    """The target text the model learns to produce (without the end-of-sequence token), in lower case.

    Lower case like the prompt, so a word of the string is the same tokens in the answer; the parser
    restores the display case (model/casing.py).
    """
    fields = [normalized_name, product, brand or NO_BRAND, category_name]
    for field in fields:
        if FIELD_SEPARATOR in field or "\n" in field or not field.strip():
            raise ValueError(f"answer field {field!r} is empty or contains the separator or a newline")
    return FIELD_SEPARATOR.join(field.strip() for field in fields).lower()
