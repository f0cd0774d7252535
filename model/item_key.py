"""The identity of an item string, shared by the answer cache and the dataset splitter.

Two strings with the same key get the same answer: case, spacing, ё/е, a leading article code and a
trailing ``1.000 x 469.90`` quantity-times-price tail do not change what the product is. Numbers
inside the name (fat %, volume) are kept: they do.
"""

from __future__ import annotations

import functools
import re

_ARTICLE_PREFIX = re.compile(r"^\s*\d{5,}\s+")
_QUANTITY_TAIL = re.compile(r"\s+\d+(?:[.,]\d+)?\s*[xх×\*]\s*\d+(?:[.,]\d+)?\s*$", re.IGNORECASE)


# Receipts repeat the same strings again and again: a repeat costs a dict lookup instead of three
# regex passes (the key is asked for twice per item: planning, then the cache). 16k entries: a few MB
# for real names (under 100 characters); at most about 64 MB for hostile ones (512 four-byte
# characters, name and key), and as much again for the prompt cache (model/generator.py).
@functools.lru_cache(maxsize=1 << 14)
def item_key(raw_name: str) -> str:
    # Spacing is collapsed first: on single spaces both patterns run in linear time, while a run of
    # 20,000 spaces cost the tail pattern 6.6 s (it backtracks over the run at every position).
    text = " ".join(raw_name.lower().replace("ё", "е").split())
    text = _ARTICLE_PREFIX.sub("", text)
    return _QUANTITY_TAIL.sub("", text)
